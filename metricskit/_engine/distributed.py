"""Across devices and processes: step metrics combined before an update, states after.

Two different things, not to be confused:

- :func:`reduce_entries` (``MetricStore.update(..., axis_name=...)``): each device's *step
  metrics* are combined first (values and counts summed, per-sample values gathered along axis
  0), then one global update runs: every step is one global sample.
- :func:`sync_metric` (``MetricStore.sync(axis_name)``): each device accumulated its own
  samples; their *states* combine as ``Metric.aggregate`` does, one collective per field where
  the field's reduction has one (:data:`~metricskit.metric.REDUCTIONS`), otherwise by
  gathering the states and folding them with ``aggregate`` in device order.

Both run inside ``shard_map`` or ``pmap``. :func:`process_sync` combines host-side results of
several processes (``jax.distributed``).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from metricskit import builtin, exact
from metricskit._engine.step import Entry
from metricskit.compat import AxisName, all_gather, psum
from metricskit.exact import replace
from metricskit.metric import (
    REDUCTIONS,
    Metric,
    Spec,
    get_log_mode,
    per_sample,
    reduction_of,
    state_fields,
)


def _summable(x: Any) -> jax.Array:
    array = jnp.asarray(x)
    return array.astype(jnp.int32) if array.dtype == jnp.bool_ else array


def _psum_all(arrays: list[jax.Array], axis_name: AxisName) -> list[jax.Array]:
    """``psum`` of many arrays with one collective per dtype (not one per array)."""
    out = list(arrays)
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

    Values and counts are summed (one ``psum`` per dtype for the whole step); keys logged in a
    per-sample mode have their values gathered along axis 0 in device order, and so do counts
    with one entry per value.

    Args:
        entries: This device's parsed step metrics.
        axis_name: A mesh axis name or a tuple of names.

    Returns:
        The global entries, the same on every device.

    Raises:
        ValueError: If one key mixes a per-sample mode with a summed one.
    """
    reduced: list[tuple[Any, Any]] = []
    to_sum: list[jax.Array] = []
    for e in entries:
        classes = [get_log_mode(m).cls for m in e.modes]
        gathered = any(per_sample(cls) for cls in classes)
        # the NaN policy's counter of skipped steps takes either (it only checks finiteness)
        summed = any(not per_sample(cls) and builtin.masked(cls) for cls in classes)
        if gathered and summed:
            raise ValueError(
                f"metric {e.key!r} mixes a per-sample mode with summed modes {list(e.modes)}; "
                "with axis_name, log them under two keys (values are gathered for one and "
                "summed for the other)"
            )
        merges = {cls.step_merge for cls in classes if cls.step_merge is not None}
        if len(merges) > 1 or (merges and (gathered or len(classes) > 1)):
            raise ValueError(
                f"metric {e.key!r} has log modes {list(e.modes)} whose steps combine across "
                "devices in different ways; with axis_name, log them under separate keys"
            )
        if merges:  # statistics that do not add up (e.g. means): gathered, then merged
            gv = all_gather(jnp.asarray(e.value), axis_name)
            gc = all_gather(jnp.asarray(e.count), axis_name)
            reduced.append(next(iter(merges))(gv, gc))
        elif isinstance(e.value, exact.Pair) and not gathered:  # double-floats: added exactly
            devices = jax.tree.map(lambda x: all_gather(jnp.asarray(x), axis_name), e.value)
            n = devices.hi.shape[0]
            value = functools.reduce(exact.add, [jax.tree.map(lambda x, i=i: x[i], devices)
                                                 for i in range(n)])  # fmt: skip
            to_sum.append(_summable(e.count))
            reduced.append((value, len(to_sum) - 1))
        elif gathered:
            value = jax.tree.map(lambda x: jnp.atleast_1d(jnp.asarray(x)), e.value)
            count: Any = jnp.asarray(e.count)
            if count.ndim and count.shape[0] == exact.lead(value).shape[0]:
                count = all_gather(count, axis_name, axis=0, tiled=True)
            else:
                to_sum.append(_summable(count))
                count = len(to_sum) - 1
            gather = functools.partial(all_gather, axis_name=axis_name, axis=0, tiled=True)
            reduced.append((jax.tree.map(gather, value), count))
        else:
            to_sum += [_summable(e.value), _summable(e.count)]
            reduced.append((len(to_sum) - 2, len(to_sum) - 1))
    summed_all = _psum_all(to_sum, axis_name)
    out = []
    for e, (value, count) in zip(entries, reduced, strict=True):
        value = summed_all[value] if type(value) is int else value
        count = summed_all[count] if type(count) is int else count
        vspec = Spec(tuple(exact.lead(value).shape), e.value_spec.dtype)
        cspec = Spec(tuple(count.shape), e.count_spec.dtype)
        out.append(Entry(e.key, value, count, e.modes, vspec, cspec, e.skip))
    return out


def sync_metric(stacked: Metric, axis_name: AxisName) -> Metric:
    """Combine a stacked group's per-device states across ``axis_name``.

    Args:
        stacked: A group's metric, with a leading key axis (so the sample axis is 1).
        axis_name: A mesh axis name or a tuple of names.

    Returns:
        The combined state, the same on every device.
    """
    cls = type(stacked)
    if cls.aggregate is Metric.aggregate:
        combined = {}
        for f in state_fields(cls):
            collective = REDUCTIONS[reduction_of(f)].collective
            out = None if collective is None else collective(getattr(stacked, f.name), axis_name, 1)
            if out is None:
                break
            combined[f.name] = out
        else:
            return replace(stacked, combined)
    gathered = jax.tree.map(lambda x: all_gather(x, axis_name), stacked)
    devices = jax.tree.leaves(gathered)[0].shape[0]
    result = jax.tree.map(lambda x: x[0], gathered)
    fold = jax.vmap(cls.aggregate)
    for i in range(1, devices):
        result = fold(result, jax.tree.map(lambda x, i=i: x[i], gathered))
    return cast(Metric, result)


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
    return cast(T, jax.tree.map(_local, tree))


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
    return cast(T, jax.device_get(functools.reduce(combine, parts)))
