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

__all__ = ["device_for", "refuse_tracers"]


def device_for(tree: Any) -> contextlib.AbstractContextManager[Any]:
    """Run kernels on host data on the CPU, so that host stores never visit an accelerator."""
    if on_host(tree):
        return cast(
            contextlib.AbstractContextManager[Any],
            jax.default_device(jax.local_devices(backend="cpu")[0]),
        )
    return contextlib.nullcontext()


def refuse_tracers(tree: Any, call: str) -> None:
    """Host-only calls say so when they meet a tracer (instead of JAX's concretization error)."""
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(tree)):
        raise TypeError(
            f"MetricStore.{call}() was called inside a jax.jit (or other transformed) function, "
            f"on traced values; {call}() is host-side: return the store from the jitted "
            f"function and call {call}() on it outside"
        )
