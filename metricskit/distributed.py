"""Reduction of step metrics and of accumulated states across devices (inside a map).

Two different things, not to be confused:

- :func:`reduce_entries` (``MetricStore.update(..., axis_name=...)``): each device's *step
  metrics* are combined first (values and counts summed, ``noreduce`` values gathered along
  axis 0), then one global update runs: every step is one global sample.
- :func:`sync_metric` (``MetricStore.sync(axis_name)``): each device accumulated its own
  samples; their *states* combine as ``Metric.aggregate`` does. Fields declared ``"sum"``,
  ``"max"``, ``"min"`` and ``"concat"`` use one collective each; any other field (exact pairs,
  ``"merge"``, ``"last"``) is gathered and folded with ``aggregate`` in device order.

All of it runs inside ``shard_map`` or ``pmap``, with JAX's own collectives.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from metricskit.compat import AxisName, all_gather, pmax, pmin, psum
from metricskit.inputs import NONFINITE_MODE, Entry
from metricskit.metric import Metric, state_fields
from metricskit.reductions import REDUCE
from metricskit.registry import get_log_mode

__all__ = ["local_copy", "process_sync", "reduce_entries", "sync_metric"]


def _summable(x: Any) -> Any:
    x = jnp.asarray(x)
    return x.astype(jnp.int32) if x.dtype == jnp.bool_ else x


def _spec(x: Any) -> tuple[tuple[int, ...], str]:
    return tuple(x.shape), jnp.dtype(x.dtype).name


def _psum_all(arrays: list[Any], axis_name: AxisName) -> list[Any]:
    """``psum`` of many arrays with one collective per dtype (not one per array)."""
    out: list[Any] = list(arrays)
    by_dtype: dict[Any, list[int]] = {}
    for i, x in enumerate(arrays):
        by_dtype.setdefault(jnp.dtype(x.dtype), []).append(i)
    for idx in by_dtype.values():
        flat = psum(jnp.concatenate([jnp.ravel(arrays[i]) for i in idx]), axis_name)
        offset = 0
        for i in idx:
            size = int(np.prod(arrays[i].shape))
            out[i] = flat[offset : offset + size].reshape(arrays[i].shape)
            offset += size
    return out


def reduce_entries(entries: Sequence[Entry], axis_name: AxisName) -> list[Entry]:
    """Combine one step's entries across the devices of ``axis_name``.

    Values and counts are summed (one ``psum`` per dtype for the whole step); for keys logged
    in a ``noreduce`` mode the values are gathered along axis 0 (``all_gather``, tiled) in
    device order, and so are counts that have one entry per value.

    Args:
        entries: This device's normalized step metrics.
        axis_name: A mesh axis name or a tuple of names.

    Returns:
        The global entries, the same on every device.

    Raises:
        ValueError: If one key mixes a ``noreduce`` mode with a summing mode.
    """
    reduced: list[tuple[Any, Any]] = []
    to_sum: list[Any] = []
    for e in entries:
        kinds = {get_log_mode(m).cls.partial for m in e.modes if m != NONFINITE_MODE}
        if "concat" in kinds and len(kinds) > 1:
            raise ValueError(
                f"metric {e.key!r} mixes a noreduce mode with summing modes {list(e.modes)}; "
                "with axis_name, log them under two keys (values are gathered for one and "
                "summed for the other)"
            )
        if "concat" in kinds:
            value = jnp.atleast_1d(jnp.asarray(e.value))
            local_count = jnp.asarray(e.count)
            count: Any  # the gathered counts, or the index of the summed ones in to_sum
            if local_count.ndim and local_count.shape[0] == value.shape[0]:
                count = all_gather(local_count, axis_name, axis=0, tiled=True)
            else:
                to_sum.append(_summable(local_count))
                count = len(to_sum) - 1
            reduced.append((all_gather(value, axis_name, axis=0, tiled=True), count))
        else:
            to_sum += [_summable(e.value), _summable(e.count)]
            reduced.append((len(to_sum) - 2, len(to_sum) - 1))
    summed = _psum_all(to_sum, axis_name)
    out = []
    for e, (value, count) in zip(entries, reduced, strict=True):
        value = summed[value] if isinstance(value, int) else value
        count = summed[count] if isinstance(count, int) else count
        vspec = (_spec(value)[0], e.value_spec[1])
        cspec = (_spec(count)[0], e.count_spec[1])
        out.append(Entry(e.key, value, count, e.modes, vspec, cspec, e.skip))
    return out


_COLLECTIVES = {
    "sum": lambda x, axis: psum(x, axis),
    "max": lambda x, axis: pmax(x, axis),
    "min": lambda x, axis: pmin(x, axis),
    # a stacked group's per-key sample axis is axis 1
    "concat": lambda x, axis: all_gather(x, axis, axis=1, tiled=True),
}


def sync_metric(stacked: Metric, axis_name: AxisName) -> Metric:
    """Combine a stacked group's per-device states across ``axis_name``.

    Args:
        stacked: A group's metric, with a leading key axis.
        axis_name: A mesh axis name or a tuple of names.

    Returns:
        The combined state, the same on every device.
    """
    cls = type(stacked)
    fields = state_fields(cls)
    if cls.aggregate is Metric.aggregate and all(
        f.metadata[REDUCE] in _COLLECTIVES for f in fields
    ):
        combined = {
            f.name: _COLLECTIVES[f.metadata[REDUCE]](getattr(stacked, f.name), axis_name)
            for f in fields
        }
        return attrs.evolve(stacked, **combined)  # type: ignore[misc]
    gathered = jax.tree.map(lambda x: all_gather(x, axis_name), stacked)
    devices = jax.tree.leaves(gathered)[0].shape[0]
    result = jax.tree.map(lambda x: x[0], gathered)
    fold = jax.vmap(cls.aggregate)
    for i in range(1, devices):
        result = fold(result, jax.tree.map(lambda x, i=i: x[i], gathered))
    return result  # type: ignore[no-any-return]


T = TypeVar("T")


def _local(x: Any) -> Any:
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        if not x.is_fully_replicated:
            raise ValueError(
                "this metric state is sharded across processes; combine it first with "
                "store.sync(axis_name) inside the map (or update(..., axis_name=...))"
            )
        return x.addressable_data(0)
    return x


def local_copy(tree: T) -> T:
    """``tree`` with every replicated multi-process array replaced by this process's copy."""
    return jax.tree.map(_local, tree)  # type: ignore[no-any-return]


def process_sync(store: T, combine: Callable[[T, T], T]) -> T:
    """Gather ``store`` from every process and combine the parts in process order.

    Args:
        store: This process's store (any pytree whose structure is the same everywhere).
        combine: How two parts combine (``MetricStore.aggregate``).

    Returns:
        The combined store with NumPy leaves, the same on every process.

    Raises:
        ValueError: If the processes' structures differ (checked before any data moves).
    """
    if jax.process_count() == 1:
        return store
    from jax.experimental import multihost_utils

    host = jax.device_get(local_copy(store))
    leaves, treedef = jax.tree.flatten(host)
    digest = hashlib.sha256(repr((treedef, [np.shape(x) for x in leaves])).encode()).digest()
    mine = np.frombuffer(digest[:16], np.uint8).astype(np.int32)  # int32: JAX's default width
    everyone = np.asarray(multihost_utils.process_allgather(mine)).reshape(-1, mine.size)
    if not (everyone == mine[None]).all():
        raise ValueError(
            "process_sync needs stores of the same keys, modes and shapes on every process; "
            f"process {jax.process_index()} differs from another one"
        )
    gathered = multihost_utils.process_allgather(host)
    parts = [
        jax.tree.map(lambda x, p=p: np.asarray(x)[p], gathered) for p in range(jax.process_count())
    ]
    return jax.device_get(functools.reduce(combine, parts))  # type: ignore[no-any-return]
