"""Where a store's kernels run, and which of its calls are host-side.

Stores of NumPy leaves (evaluation results, ``jax.device_get`` of a store) run their kernels
on the CPU, so host data never visits an accelerator; host-only calls refuse tracers with
their own message instead of JAX's concretization error.
"""

from __future__ import annotations

import contextlib
from typing import Any, cast

import jax

from metricskit.store.entries import on_host

__all__ = ["device_for", "refuse_tracers", "traced"]


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
