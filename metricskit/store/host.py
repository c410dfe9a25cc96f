"""Where a store's kernels run, and which of its calls are host-side.

Stores of NumPy leaves (evaluation results, ``jax.device_get`` of a store) run their kernels
on the CPU, so host data never visits an accelerator; host-only calls refuse tracers with
their own message instead of JAX's concretization error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, cast

import jax

from metricskit.store.entries import on_host
from metricskit.store.parse import Entry, is_jax

__all__ = ["device_for", "device_mismatch", "refuse_tracers", "traced"]


def device_for(tree: Any) -> contextlib.AbstractContextManager[Any]:
    """Run kernels on host data on the CPU, so that host stores never visit an accelerator."""
    if on_host(tree):
        return cast(
            contextlib.AbstractContextManager[Any],
            jax.default_device(jax.local_devices(backend="cpu")[0]),
        )
    return contextlib.nullcontext()


_TRACER = jax.core.Tracer


def traced(tree: Any) -> bool:
    """Whether a leaf of ``tree`` is a tracer (the call runs inside ``jax.jit`` or a map)."""
    if isinstance(tree, _TRACER):
        return True
    if tree is None or is_jax(tree):  # one leaf (a store's first): no flattening
        return False
    return any(isinstance(x, _TRACER) for x in jax.tree.leaves(tree))


def refuse_tracers(tree: Any, call: str) -> None:
    """Host-only calls say so when they meet a tracer (instead of JAX's concretization error).

    Args:
        tree: What the call was given.
        call: The call's name as a user writes it (``"MetricStore.compute"``).

    Raises:
        TypeError: If a leaf of ``tree`` is a tracer.
    """
    if traced(tree):
        short = call.rsplit(".", 1)[-1]
        raise TypeError(
            f"{call}() was called inside a jax.jit (or other transformed) function, on traced "
            f"values; {short}() is host-side: return the metrics from the jitted function and "
            f"call {short}() on them outside"
        )


def _placement(x: Any) -> str:
    devices = sorted(str(d) for d in x.devices())
    return devices[0] if len(devices) == 1 else f"{len(devices)} devices"


def device_mismatch(entries: Sequence[Entry], state_leaf: Any) -> str:
    """The message for an eager update whose committed arrays lie on different devices.

    Args:
        entries: The step's parsed entries.
        state_leaf: A leaf of the store's state (or ``None`` for an empty store).

    Returns:
        The message: where the store's state and each device-committed value lie, and the fix.
    """
    where = [
        f"{e.key!r} on {_placement(x)}"
        for e in entries
        for x in (e.value, e.count)
        if isinstance(x, jax.Array) and getattr(x, "committed", False)
    ]
    if isinstance(state_leaf, jax.Array) and getattr(state_leaf, "committed", False):
        where.insert(0, f"the store's state on {_placement(state_leaf)}")
    return (
        "MetricStore.update: the step's values and the store's state are committed to different "
        f"devices ({', '.join(where)}); an eager update is one computation on one placement. "
        "Put them on one device (jax.device_put), or update the store inside the jitted or "
        "sharded step that computes the values"
    )
