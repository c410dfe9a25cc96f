"""Packing: one step's entries stacked into one input per plan slot, and decoded in the kernel.

Host values (Python numbers, NumPy) of a slot are stacked on the host with one
``np.array`` call and cross to the device as one array; 64-bit values (x64 off) are split on
the host into exact 32-bit words (:func:`metricskit.exact.split_int`,
:func:`metricskit.exact.split_float`). A slot with JAX arrays (or tracers) is passed as a
tuple and stacked inside the compiled update by :func:`decode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from metricskit import exact
from metricskit.dtypes import INT_LIMIT, is_wide, kind, upcast, x64
from metricskit.fields import Spec
from metricskit.log import LOGGER
from metricskit.store.parse import Entry, is_jax
from metricskit.store.plan import Plan

__all__ = ["decode", "pack", "plain"]

_WARNED: set[str] = set()
_DEFAULT_COUNT = Spec((), "int32")  # the spec of the default count 1


def _host_dtype(spec: Spec) -> Any:
    return np.dtype(spec.dtype) if spec.dtype != "bool" else np.dtype(bool)


def _encode(arr: np.ndarray, spec: Spec, keys: Sequence[str], what: str) -> Any:
    """Host values of logical dtype ``spec.dtype`` in their travelling form."""
    if spec.dtype == "int64" and arr.size and arr.dtype.kind in "iu":
        low, high = (-INT_LIMIT, INT_LIMIT) if not x64() else (-(2**63), 2**63 - 1)
        big = arr > high if arr.dtype.kind == "u" else (arr > high) | (arr < low)
        if big.any():
            at = np.argwhere(big.reshape(len(keys), -1))[0]
            bad, value = keys[int(at[0])], int(arr.reshape(len(keys), -1)[at[0], at[1]])
            scope = "int64 (jax_enable_x64 on)" if x64() else "±2**60 (jax_enable_x64 off)"
            raise ValueError(
                f"{what} of metric {bad!r} is {value}, beyond {scope}, the exact range of "
                "metricskit's integer accumulators; split it over several steps, or pass it "
                "as a float"
            )
    if not is_wide(spec.dtype):
        return arr.astype(_host_dtype(spec), copy=False)
    if kind(spec.dtype) == "int":
        return exact.split_int(arr)
    pair, overflow = exact.split_float(arr)
    if overflow:
        rows = np.asarray(pair.hi).reshape(len(keys), -1)
        finite = np.isfinite(arr.reshape(len(keys), -1))
        for key, hit in zip(keys, (np.isinf(rows) & finite).any(axis=1), strict=True):
            if hit and key not in _WARNED:
                _WARNED.add(key)
                LOGGER.warning(
                    "Metric %r has a finite float64 %s beyond float32's range (about 3.4e38); "
                    "with jax_enable_x64 off it is accumulated as inf of its sign. Turn on "
                    "jax_enable_x64 for float64 range.",
                    key,
                    what,
                )
    return pair


def _stack_host(xs: Sequence[Any], spec: Spec, keys: Sequence[str], what: str) -> Any:
    try:
        if spec.dtype == "int64":  # keep uint64 as it is: it may not fit int64
            arr = np.asarray(xs)
            if arr.dtype.kind not in "iub":
                arr = np.asarray(xs, np.int64)
        else:
            arr = np.asarray(xs, _host_dtype(spec))
    except OverflowError:
        raise ValueError(
            f"{what} of one of the metrics {list(keys)} is an integer beyond ±2**60, the exact "
            "range of metricskit's integer accumulators; split it over several steps"
        ) from None
    return _encode(arr, spec, keys, what)


def _slot_input(entries: Sequence[Entry], spec: Spec, what: str) -> Any:
    xs = [getattr(e, what) for e in entries]
    if what == "count" and spec == _DEFAULT_COUNT and all(type(x) is int for x in xs):
        # default counts (all 1) are no input at all: the kernel makes them (one less
        # argument and host-to-device copy per eager call; ``None`` is part of the jit key)
        return None if all(x == 1 for x in xs) else np.asarray(xs, np.int32)
    on_device = list(map(is_jax, xs))
    if all(on_device):
        return tuple(xs)  # stacked in the kernel
    if not any(on_device):
        return _stack_host(xs, spec, [e.key for e in entries], what)
    return tuple(
        x
        if is_jax(x)
        else jax.tree.map(lambda y: np.asarray(y[0]), _stack_host([x], spec, [e.key], what))
        for x, e in zip(xs, entries, strict=True)
    )


def pack(entries: Sequence[Entry], plan: Plan) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The values and counts of every slot of ``plan``.

    Returns:
        ``(values, counts)``: per slot, a stacked host array (or exact Pair/Words of them),
        a tuple of per-entry items when some are JAX arrays, or (for counts that are all the
        default 1) ``None``.

    Raises:
        ValueError: If an integer is beyond the exact range (±2**60 with x64 off).
    """
    values, counts = [], []
    for slot in plan.slots:
        chosen = [entries[i] for i in slot.entries]
        values.append(_slot_input(chosen, slot.value, "value"))
        counts.append(_slot_input(chosen, slot.count, "count"))
    return tuple(values), tuple(counts)


def _device(x: Any, spec: Spec) -> Any:
    """One JAX array in the travelling form of ``spec`` (inside the compiled update)."""
    if is_wide(spec.dtype):
        return exact.as_words(x) if kind(spec.dtype) == "int" else exact.as_pair(x, jnp.float32)
    return upcast(x, _host_dtype(spec))


def decode(packed: Any, spec: Spec, n: int) -> Any:
    """A slot's input as one stacked array (or Pair/Words) with a leading axis of ``n`` entries."""
    if packed is None:  # default counts
        return jnp.ones((n, *spec.shape), _host_dtype(spec))
    if not isinstance(packed, tuple):
        return jax.tree.map(jnp.asarray, packed)
    if all(map(is_jax, packed)) and len({p.dtype for p in packed}) == 1:
        return _device(jnp.stack(packed), spec)  # one conversion, not one per entry
    items = [_device(p, spec) if is_jax(p) else p for p in packed]
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *items)


def plain(x: Any) -> Any:
    """Exact 64-bit inputs rounded to plain float arrays (for metrics without exact inputs)."""
    return exact.to_float(x)
