""":class:`MetricStore`: every metric of a training loop in one immutable pytree."""

from __future__ import annotations

import contextlib
import functools
import logging
import operator
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from metricskit import checkpoint, exact
from metricskit.builtin import all_finite
from metricskit.compat import AxisName
from metricskit.distributed import local_copy, process_sync, reduce_entries, sync_metric
from metricskit.exact import Pair
from metricskit.inputs import (
    Entry,
    Spec,
    check_nan_policy,
    normalize_log_modes,
    parse_step_metrics,
)
from metricskit.layout import Group, Layout, Plan, empty_layout
from metricskit.metric import Metric, combine_fields, empty_fields, state_fields
from metricskit.numerics import float_dtype, is_paired
from metricskit.pytree import replace
from metricskit.reductions import REDUCE, REDUCTIONS
from metricskit.registry import get_log_mode

__all__ = ["LOGGER", "KeyMetrics", "MetricStore"]

LOGGER = logging.getLogger("metricskit")
"""The logger metricskit warns through (e.g. when a reported metric has count 0)."""

_UNSET: Any = object()


class KeyMetrics(dict[str, Metric]):
    """The metrics of one key, by log mode, with the shapes and dtypes of the key's steps.

    This is what :func:`metricskit.functional._update_single_metric` stores per key in a
    host-side metrics dict, and what :meth:`MetricStore.unstack` returns per key.

    Attributes:
        value_spec: ``(shape, dtype)`` of one step's value.
        count_spec: ``(shape, dtype)`` of one step's count.
    """

    def __init__(self, metrics: Mapping[str, Metric], value_spec: Spec, count_spec: Spec):
        super().__init__(metrics)
        self.value_spec = value_spec
        self.count_spec = count_spec


_ShapeDtypeStruct: Any = jax.ShapeDtypeStruct  # untyped constructor on some JAX versions


def _spec_struct(spec: Spec) -> jax.ShapeDtypeStruct:
    return cast(jax.ShapeDtypeStruct, _ShapeDtypeStruct(spec[0], np.dtype(spec[1])))


def _stacked_empty(group: Group, n: int) -> Metric:
    cls = get_log_mode(group.mode).cls
    one = cls.empty(_spec_struct(group.value), _spec_struct(group.count))
    return cast(Metric, jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *x.shape)), one))


def _grow(metrics: Sequence[Metric], plan: Plan) -> list[Metric]:
    """The state in ``plan.after``'s layout: new keys and groups start empty."""
    out = []
    for g, group in enumerate(plan.after.groups):
        old = len(plan.before.groups[g].keys) if g < len(plan.before.groups) else 0
        new = len(group.keys)
        if old == new:
            out.append(metrics[g])
        elif old == 0:
            out.append(_stacked_empty(group, new))
        else:
            pad = _stacked_empty(group, new - old)
            out.append(jax.tree.map(lambda a, b: jnp.concatenate([a, b]), metrics[g], pad))
    return out


def _stack(parts: Any, dtype: str) -> Any:
    """One group's step values (host-stacked, or a tuple of per-key parts) as one array.

    Values of a paired dtype (float64 with x64 off) become a :class:`~metricskit.exact.Pair`.
    """
    if isinstance(parts, Pair):
        return Pair(jnp.asarray(parts.hi), jnp.asarray(parts.lo))
    if is_paired(dtype):
        pairs = [p if isinstance(p, Pair) else exact.as_pair(p, float_dtype()) for p in parts]
        return Pair(jnp.stack([p.hi for p in pairs]), jnp.stack([p.lo for p in pairs]))
    if isinstance(parts, tuple):
        return jnp.stack([jnp.asarray(p).astype(dtype) for p in parts])
    return jnp.asarray(parts).astype(dtype)


def _host_parts(values: list[Any], dtype: str) -> Any:
    """Stack host values on the host; float64 ones (x64 off) are split into a float32 pair."""
    stacked = np.array(values, dtype=dtype)  # one group: equal shapes (faster than np.stack)
    return Pair(*exact.split_host(stacked)) if is_paired(dtype) else stacked


@functools.lru_cache(maxsize=1024)
def _input_slots(plan: Plan) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Which input each route reads, and the first route of each input.

    Routes that update the same keys with the same step shapes (one per log mode) share one
    input, so a step of K keys in three modes passes K values to the compiled update, not 3K.
    """
    slots: dict[Any, int] = {}
    per_route, firsts = [], []
    for r, route in enumerate(plan.routes):
        group = plan.after.groups[route.group]
        key = (route.entries, group.value, group.count)
        if key not in slots:
            slots[key] = len(slots)
            firsts.append(r)
        per_route.append(slots[key])
    return tuple(per_route), tuple(firsts)


def _apply_update(
    metrics: tuple[Metric, ...], values: tuple[Any, ...], counts: tuple[Any, ...], plan: Plan
) -> tuple[Metric, ...]:
    """Grow the state to the plan's layout, then update every routed group (one vmap each)."""
    out = _grow(metrics, plan)
    for route, slot in zip(plan.routes, _input_slots(plan)[0], strict=True):
        value, count = values[slot], counts[slot]
        group = plan.after.groups[route.group]
        cls = get_log_mode(group.mode).cls
        update = jax.vmap(cls.update)
        value, count = _stack(value, group.value[1]), _stack(count, group.count[1])
        if isinstance(value, Pair) and not cls.accepts_pairs:
            value = value.hi + value.lo
        current = out[route.group]
        idx = None if route.positions is None else np.asarray(route.positions)
        before = current if idx is None else jax.tree.map(lambda x, i=idx: x[i], current)
        after = update(before, value, count)
        if route.skip is not None and cls.skippable:
            # nan_policy="skip": a key whose step is not finite keeps its state (no host sync)
            finite = jax.vmap(all_finite)(value) & jax.vmap(all_finite)(count)
            keep = ~finite & np.asarray(route.skip)
            after = jax.tree.map(functools.partial(_keep_rows, keep), after, before)
        if idx is None:
            out[route.group] = after
        else:
            out[route.group] = jax.tree.map(lambda x, y, i=idx: x.at[i].set(y), current, after)
    return tuple(out)


_update_jit = jax.jit(_apply_update, static_argnames="plan")
_grow_jit = jax.jit(lambda metrics, plan: tuple(_grow(metrics, plan)), static_argnames="plan")


@jax.jit
def _compute_jit(metrics: tuple[Metric, ...]) -> tuple[Any, ...]:
    return tuple((jax.vmap(type(m).compute)(m), jax.vmap(type(m).is_empty)(m)) for m in metrics)


@jax.jit
def _reset_jit(metrics: tuple[Metric, ...]) -> tuple[Metric, ...]:
    return tuple(jax.vmap(type(m).reset)(m) for m in metrics)


@jax.jit
def _aggregate_jit(a: tuple[Metric, ...], b: tuple[Metric, ...]) -> tuple[Metric, ...]:
    return tuple(jax.vmap(type(x).aggregate)(x, y) for x, y in zip(a, b, strict=True))


def _on_host(tree: Any) -> bool:
    leaves = jax.tree.leaves(tree)
    return bool(leaves) and all(isinstance(x, np.ndarray | np.generic) for x in leaves)


def _device_for(tree: Any) -> contextlib.AbstractContextManager[Any]:
    """Run kernels on host data on the CPU, so that host stores never visit an accelerator."""
    if _on_host(tree):
        return cast(
            contextlib.AbstractContextManager[Any],
            jax.default_device(jax.local_devices(backend="cpu")[0]),
        )
    return contextlib.nullcontext()


def _host_value(x: Any) -> Any:
    """A computed result on the host: pairs become float64, size-1 arrays Python scalars."""
    if isinstance(x, Pair):
        x = exact.to_host(x)
    elif isinstance(x, tuple):
        return tuple(exact.to_host(p) if isinstance(p, Pair) else p for p in x)
    if isinstance(x, np.ndarray | np.generic) and np.size(x) == 1:
        return x.item()
    return x


def _host_rows(values: Any, n: int) -> list[Any]:
    """The per-key host results of a group's computed values (leading key axis of size n).

    Whole groups are converted at once: a group of scalar results becomes a list of Python
    numbers with one ``tolist()``, not n conversions.
    """
    if isinstance(values, Pair):
        values = exact.to_host(values)
    if isinstance(values, np.ndarray):
        if values.size == n:
            return values.reshape(n).tolist()  # type: ignore[no-any-return,unused-ignore]
        return list(values)
    if isinstance(values, tuple):
        parts = [exact.to_host(p) if isinstance(p, Pair) else p for p in values]
        return [tuple(p[i] for p in parts) for i in range(n)]
    return [_host_value(jax.tree.map(lambda x, p=p: x[p], values)) for p in range(n)]


def _rows(metric: Metric) -> int:
    return int(jax.tree.leaves(metric)[0].shape[0])


def _append(earlier: Metric, later: Metric, axis: int) -> Metric:
    """One batch appended to one state (NumPy leaves); ``axis`` is the sample axis."""
    if _bulk_ops(type(earlier)) is None:  # a "merge" field: the class's own error message
        return cast(Metric, combine_fields(earlier, later, np, axis=axis))
    return _append_bulk((earlier,), [(later,)], axis)[0]


@functools.cache
def _bulk_ops(cls: type[Metric]) -> tuple[tuple[str, str | None], ...] | None:
    """How each attrs field of ``cls`` combines when batches are appended: its reduction
    (``"last"`` for every state field of a metric that keeps the later batch) or ``None`` for
    a static field (taken from the last batch). ``None`` if a field is ``"merge"``, which only
    the metric's own ``aggregate`` can combine."""
    state = {
        f.name: f.metadata[REDUCE] if cls.append_batches else "last" for f in state_fields(cls)
    }
    if "merge" in state.values():
        return None
    return tuple((f.name, state.get(f.name)) for f in attrs.fields(cast(Any, cls)))


def _can_defer(store: MetricStore) -> bool:
    """Whether batches can be appended to ``store`` lazily: NumPy leaves, bulk reductions."""
    if store._pending is not None:
        return True
    for m in store._metrics:
        ops = _bulk_ops(type(m))
        if ops is None:
            return False
        for name, reduce in ops:
            if reduce is not None and type(getattr(m, name)) is not np.ndarray:
                return False
    return True


def _host_for_append(store: MetricStore) -> tuple[MetricStore, bool]:
    """``store`` with NumPy leaves, and whether batches can be appended to it lazily."""
    if _can_defer(store):  # the usual case: checked without converting anything
        return store, True
    store = _to_host(store)
    return store, _can_defer(store)


def _sum_in_order(first: np.ndarray, rest: list[np.ndarray]) -> np.ndarray:
    """``first + rest[0] + rest[1] + ...`` exactly as sequential adds give it (same dtype).

    Integer adds are associative (they wrap alike in any order), so they reduce in one call;
    float adds are done in order, so that rounding matches appending batch by batch.
    """
    if first.dtype.kind in "biu" and all(r.dtype == first.dtype for r in rest):
        summed: np.ndarray = first + np.add.reduce(np.stack(rest), axis=0, dtype=first.dtype)
        return summed
    total: np.ndarray = functools.reduce(operator.add, rest, first)
    return total


def _append_bulk(
    base: tuple[Metric, ...], batches: list[tuple[Metric, ...]], axis: int = 1
) -> tuple[Metric, ...]:
    """``base`` with every batch appended, in order, each field combined once for them all.

    The result is what appending the batches one by one gives, bit for bit: concatenation
    is exact, sums are added in the same order, and other reductions (max, exact
    accumulators) fold pairwise with :data:`~metricskit.reductions.REDUCTIONS`. ``axis`` is
    the sample axis (1 for stacked groups).
    """
    out = []
    for g, metric in enumerate(base):
        cls = type(metric)
        ops = _bulk_ops(cls)
        assert ops is not None
        parts = [batch[g] for batch in batches]
        new: Any = object.__new__(cls)
        for name, reduce in ops:
            if reduce is None or reduce == "last":
                value = getattr(parts[-1], name)
            else:
                earlier, later = getattr(metric, name), [getattr(p, name) for p in parts]
                if reduce == "sum":
                    value = _sum_in_order(earlier, later)
                elif reduce == "concat" and len(later) > 1:
                    value = np.concatenate([earlier, *later], axis=axis)  # peak: data + result
                else:  # one concatenation (amortized O(1) in a growing buffer), max, xsum, ...
                    combine = REDUCTIONS[reduce].combine
                    assert combine is not None
                    value = functools.reduce(lambda a, b: combine(np, a, b, axis), later, earlier)
            object.__setattr__(new, name, value if type(value) is np.ndarray else np.asarray(value))
        out.append(new)
    return tuple(out)


def _to_host(store: MetricStore) -> MetricStore:
    """``store`` with NumPy leaves (as is when they already are: the common, fast case)."""
    for m in store.metrics:
        for f in state_fields(type(m)):
            if type(getattr(m, f.name)) is not np.ndarray:
                return cast(MetricStore, jax.device_get(local_copy(store)))
    return store


def _canonical_modes(modes: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if modes is None else normalize_log_modes(modes, "default_log_modes")


def _canonical_policy(policy: str) -> str:
    return check_nan_policy(policy, "the store")


def _keep_rows(keep: jax.Array, new: jax.Array, old: jax.Array) -> jax.Array:
    """Per leading row: ``old`` where ``keep``, else ``new``."""
    return jnp.where(keep.reshape(-1, *([1] * (new.ndim - 1))), old, new)


@attrs.frozen(eq=False, repr=False)
class MetricStore:
    """Every metric of a loop, per key and log mode, as one immutable pytree.

    Keys that share a log mode and step shapes share one stacked :class:`~metricskit.Metric`
    (leading key axis), so a store of thousands of scalar metrics has a handful of leaves.
    Every method returns a new store; eager :meth:`update` is one compiled call, cached per
    store structure. The store goes in and out of ``jax.jit`` like any pytree.

    Args:
        default_log_modes: Log modes for keys whose step metrics name none;
            ``None`` means ``["mean_nopostfix"]``.
        nan_policy: ``"propagate"`` (default: NaN and inf flow into the metrics, as in the
            functional API) or ``"skip"``: a step whose value or count is not finite adds
            nothing to that key, and the number of such steps is reported as
            ``key_nonfinite``. A step dict may override it per key with ``"nan_policy"``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import metricskit as mk
        >>> store = mk.MetricStore(default_log_modes=("mean", "max"))
        >>> store = store.init({"loss": 0.0})
        >>> @jax.jit
        ... def step(store, loss):
        ...     return store.update({"loss": loss})
        >>> for loss in (4.0, 2.0, 3.0):
        ...     store = step(store, jnp.float32(loss))
        >>> store.compute()
        {'loss_mean': 3.0, 'loss_max': 4.0}
        >>> store.reset().compute()["loss_mean"]  # empty again: warns, reports 0.0
        0.0
    """

    default_log_modes: tuple[str, ...] | None = attrs.field(
        default=None, converter=_canonical_modes
    )
    nan_policy: str = attrs.field(default="propagate", converter=_canonical_policy)
    _metrics: tuple[Metric, ...] = attrs.field(default=(), kw_only=True)
    layout: Layout = attrs.field(factory=empty_layout, kw_only=True)
    # (earlier store, later batch) while appended evaluation batches are not yet combined
    _pending: tuple[MetricStore, MetricStore] | None = attrs.field(default=None, init=False)

    @property
    def metrics(self) -> tuple[Metric, ...]:
        """One stacked :class:`~metricskit.Metric` per group of :attr:`layout`."""
        if self._pending is not None:
            self._combine_pending()
        return self._metrics

    def _combine_pending(self) -> None:
        """Append the batches that :meth:`append_batches` deferred, once, all at a time.

        The store does not change value: it computes what it stands for and remembers it.
        """
        batches = []
        node = self
        while node._pending is not None:
            node, later = node._pending
            batches.append(later.metrics)
        batches.reverse()
        object.__setattr__(self, "_metrics", _append_bulk(node._metrics, batches))
        object.__setattr__(self, "_pending", None)

    # -- structure -------------------------------------------------------------------------

    def __repr__(self) -> str:
        keys = ", ".join(self.layout.names.values())
        return f"MetricStore({len(self.layout.groups)} groups: {keys})"

    def keys(self) -> Iterator[str]:
        """The metric keys, in first-seen order."""
        return iter(dict.fromkeys(key for key, _ in self.layout.order))

    def _evolve(
        self,
        metrics: Sequence[Metric] | None,
        layout: Layout | None = None,
        pending: tuple[MetricStore, MetricStore] | None = None,
    ) -> MetricStore:
        return _build_store(
            (self.default_log_modes, self.nan_policy, layout or self.layout),
            () if metrics is None else tuple(metrics),
            pending,
        )

    def _plan(
        self, step_metrics: Mapping[str, Any], modes: Any, axis_name: AxisName | None = None
    ) -> tuple[Plan, list[Entry]]:
        defaults = self.default_log_modes if modes is _UNSET else modes
        entries = parse_step_metrics(step_metrics, defaults, self.nan_policy)
        if axis_name is not None:
            entries = reduce_entries(entries, axis_name)
        return self.layout.plan(entries), entries

    # -- the kernels -----------------------------------------------------------------------

    def init(
        self, example_step_metrics: Mapping[str, Any], *, default_log_modes: Any = _UNSET
    ) -> MetricStore:
        """A store with the structure that ``update(example_step_metrics)`` gives, all empty.

        Creating every key up front means a jitted step sees one structure and compiles once.

        Args:
            example_step_metrics: Step metrics of the right keys, shapes, dtypes and modes
                (their values are not used).
            default_log_modes: Overrides the store's default modes for this call.

        Returns:
            The store, with every new ``(key, mode)`` empty and existing ones unchanged.

        Raises:
            ValueError, TypeError: As :meth:`update`.
        """
        plan, _ = self._plan(example_step_metrics, default_log_modes)
        if plan.after is plan.before:
            return self
        with _device_for(self.metrics):
            return self._evolve(_grow_jit(self.metrics, plan=plan), plan.after)

    def update(
        self,
        step_metrics: Mapping[str, Any],
        *,
        default_log_modes: Any = _UNSET,
        axis_name: AxisName | None = None,
    ) -> MetricStore:
        """Add one step's metrics.

        Args:
            step_metrics: Key to value (scalar or array) or to a dict with ``"value"``,
                optional ``"count"`` (default 1) and optional ``"log_modes"``.
            default_log_modes: Overrides the store's default modes for this call.
            axis_name: Inside ``shard_map``/``pmap``: a mesh axis name, or a tuple of names,
                across which the step metrics are first combined (values and counts summed,
                ``noreduce`` values gathered along axis 0), so that every device runs the
                same global update: the numbers one device fed the summed step metrics gets.

        Returns:
            The updated store. New keys and modes are added; keys absent from this step keep
            their state.

        Raises:
            ValueError: Unknown or repeated log mode, a key whose shapes changed since earlier
                steps, a dict without ``"value"``, or two keys reported under one name.
            TypeError: A non-numeric value or count, or a dtype that cannot be cast safely
                to the key's state.
        """
        plan, entries = self._plan(step_metrics, default_log_modes, axis_name)
        values: list[Any] = []
        counts: list[Any] = []
        for r in _input_slots(plan)[1]:  # one input per distinct set of keys, not per mode
            route = plan.routes[r]
            group = plan.after.groups[route.group]
            chosen = [entries[i] for i in route.entries]
            if all(e.on_host for e in chosen):
                values.append(_host_parts([e.value for e in chosen], group.value[1]))
                counts.append(_host_parts([e.count for e in chosen], group.count[1]))
            else:
                paired = is_paired(group.value[1])
                values.append(
                    tuple(
                        Pair(*exact.split_host(e.value))
                        if paired and isinstance(e.value, np.ndarray)
                        else e.value
                        for e in chosen
                    )
                )
                host_counts = all(isinstance(e.count, np.ndarray) for e in chosen)
                counts.append(
                    _host_parts([e.count for e in chosen], group.count[1])
                    if host_counts  # the usual case (count 1): one transfer, not one per key
                    else tuple(e.count for e in chosen)
                )
        metrics = _update_jit(self.metrics, tuple(values), tuple(counts), plan=plan)
        return self._evolve(metrics, plan.after)

    def sync(self, axis_name: AxisName) -> MetricStore:
        """Combine every device's accumulated state across ``axis_name`` (inside a map).

        Each device accumulated its own samples; the result holds the union of all devices'
        samples, as :meth:`aggregate` would combine them (sums add, extremes take the extreme,
        ``std`` uses Chan's formula, ``noreduce`` values concatenate in device order, so their
        state grows). A user's metric gets this from its field declarations.

        Args:
            axis_name: A mesh axis name or a tuple of names.

        Returns:
            The combined store, the same on every device.
        """
        return self._evolve([sync_metric(m, axis_name) for m in self.metrics])

    def process_sync(self) -> MetricStore:
        """Combine the stores of all processes (``jax.distributed``), host side.

        Every process calls it with a store of the same structure (for example its own
        evaluation results from :func:`~metricskit.aggregate_metrics`); each gets the combined
        store, as :meth:`aggregate` combines parts in process order (``noreduce`` values are
        concatenated in process order). With one process it returns the store unchanged.

        Returns:
            The combined store, with NumPy leaves.

        Raises:
            ValueError: If the processes' stores differ in structure.
        """
        return process_sync(self, MetricStore.aggregate)

    def compute(self) -> dict[str, Any]:
        """The reported metrics, with one device-to-host transfer for the whole store.

        Returns:
            A flat dict from reported name (``key + postfix``) to a Python ``float``/``int``
            for size-1 results and a NumPy array (or tuple of arrays) otherwise. A metric
            with no samples logs a warning naming its key and reports ``0.0``.
        """
        if not self.metrics:
            return {}
        metrics = local_copy(self.metrics)
        # Host stores (aggregated evaluation batches): noreduce values are returned as views of
        # their buffers, not copied to a device and back.
        on_host = [_on_host(m) and type(m).append_batches for m in metrics]
        kernels = tuple(m for m, host in zip(metrics, on_host, strict=True) if not host)
        with _device_for(kernels):
            outputs = iter(jax.device_get(_compute_jit(kernels)) if kernels else ())
        rows: list[tuple[list[Any], list[bool]]] = []
        for m, host in zip(metrics, on_host, strict=True):
            if host:  # one metric per key, computed on its NumPy rows
                keys = [jax.tree.map(lambda x, p=p: x[p], m) for p in range(_rows(m))]
                rows.append(
                    ([_host_value(k.compute()) for k in keys], [bool(k.is_empty()) for k in keys])
                )
            else:
                values, empties = next(outputs)
                rows.append((_host_rows(values, len(empties)), empties.tolist()))
        result: dict[str, Any] = {}
        for (key, mode), name in self.layout.names.items():
            g, pos = self.layout.index[(key, mode)]
            values, empties = rows[g]
            if empties[pos]:
                LOGGER.warning("Metric %r (log mode %r) has count 0; reporting 0.0.", key, mode)
                result[name] = 0.0
            else:
                result[name] = values[pos]
        return result

    def reset(self) -> MetricStore:
        """Every metric back to its empty state, with identical structure, shapes and dtypes.

        Returns:
            The reset store; feeding it to a jitted step does not recompile.
        """
        metrics = self.metrics
        if _on_host(metrics) and all(type(m).reset is Metric.reset for m in metrics):
            # host stores (aggregated evaluation batches): NumPy, no round trip to a device
            return self._evolve([replace(m, empty_fields(m, np)) for m in metrics])
        with _device_for(metrics):
            return self._evolve(_reset_jit(metrics))

    def aggregate(self, other: MetricStore) -> MetricStore:
        """Combine with a store of disjoint data (another device, shard or stream half).

        Each metric combines with :meth:`Metric.aggregate <metricskit.Metric.aggregate>`:
        sums add, extremes take the extreme, ``std`` uses Chan's formula, ``noreduce``
        concatenates. Keys present in only one store are kept as they are.

        Args:
            other: The other partial store.

        Returns:
            The combined store.
        """
        with _device_for((self.metrics, other.metrics)):
            return _merge(self, other, _aggregate_jit, lambda x, y: x.aggregate(y), True)

    def append_batches(self, later: MetricStore) -> MetricStore:
        """Host-side evaluation aggregation: append ``noreduce`` batches, keep the rest.

        For metrics with ``append_batches`` (the ``noreduce`` modes), the later batch is
        appended field by field (values concatenated, counts added or concatenated); every
        other metric keeps ``later``'s state, which is already cumulative on the device.

        Appending costs O(1) per batch: when both stores hold NumPy leaves and share a layout,
        the result records the batch, and all recorded batches are combined the first time
        the result's state is used (``compute``, ``metrics``, flattening), with one
        concatenation per field, exactly as appending them one by one would. Until then the
        result holds references to the batches' arrays rather than copies, as JAX holds its
        immutable arrays: do not write into a NumPy array after passing it in.

        Args:
            later: The next batch's store.

        Returns:
            A store whose leaves are NumPy arrays.
        """
        (earlier, ready), (later, later_ready) = _host_for_append(self), _host_for_append(later)
        if (
            ready
            and later_ready
            and (earlier.layout is later.layout or earlier.layout == later.layout)
        ):
            # O(1) now; the batches are combined at once when the result is first used (one
            # concatenation per field). later's layout: the next batch's is the same object.
            return earlier._evolve(None, later.layout, pending=(earlier, later))
        return _merge(
            _to_host(earlier),
            _to_host(later),
            lambda xs, ys: [_append(x, y, axis=1) for x, y in zip(xs, ys, strict=True)],
            lambda x, y: _append(x, y, axis=0),
            False,
        )

    # -- checkpoints -----------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the store's state and structure to a ``.npz`` checkpoint (atomically).

        Every leaf keeps its exact bytes and dtype (bfloat16 included), so a loaded store
        continues exactly where this one stopped. See :mod:`metricskit.checkpoint`.

        Args:
            path: The file to write.
        """
        checkpoint.save(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], like: MetricStore | None = None) -> MetricStore:
        """Read a checkpoint written by :meth:`save`.

        Args:
            path: The checkpoint file.
            like: If given, the checkpoint must have this store's structure (otherwise a
                :class:`~metricskit.checkpoint.CheckpointError` says how they differ), and the
                result takes this store's default log modes and NaN policy.

        Returns:
            The loaded store (JAX leaves).

        Raises:
            metricskit.checkpoint.CheckpointError: A ``ValueError`` for a truncated file, a
                file that is not a metricskit checkpoint, or a structure other than ``like``'s.
        """
        return checkpoint.load(path, like)

    # -- conversion ------------------------------------------------------------------------

    def unstack(self) -> dict[str, KeyMetrics]:
        """One :class:`~metricskit.Metric` per key and mode, unstacked from the groups.

        Returns:
            ``{key: KeyMetrics({mode: metric})}`` in first-seen order.
        """
        out: dict[str, KeyMetrics] = {}
        for key, mode in self.layout.order:
            g, pos = self.layout.index[(key, mode)]
            if key not in out:
                out[key] = KeyMetrics({}, *self.layout.specs[key])
            out[key][mode] = jax.tree.map(lambda x, p=pos: x[p, ...], self.metrics[g])
        return out

    @classmethod
    def from_unstacked(
        cls,
        metrics: Mapping[str, KeyMetrics],
        default_log_modes: Sequence[str] | None = None,
        nan_policy: str = "propagate",
    ) -> MetricStore:
        """Stack per-key metrics (as :meth:`unstack` returns them) into a store.

        Args:
            metrics: ``{key: KeyMetrics({mode: metric})}``.
            default_log_modes: The new store's default log modes.
            nan_policy: The new store's NaN/inf policy.

        Returns:
            The store.

        Raises:
            TypeError: If a key's entry is not a :class:`KeyMetrics` of registered metrics.
        """
        groups: dict[tuple[str, Spec, Spec], tuple[list[str], list[Metric]]] = {}
        order = []
        for key, per_mode in metrics.items():
            if not isinstance(per_mode, KeyMetrics):
                raise TypeError(
                    f"metrics dict entry {key!r} is a {type(per_mode).__name__}, not the "
                    "per-key metrics that _update_single_metric or MetricStore.unstack build; "
                    "build host metrics dicts with _update_single_metric"
                )
            for mode, metric in per_mode.items():
                if not isinstance(metric, get_log_mode(mode).cls):
                    raise TypeError(
                        f"metrics[{key!r}][{mode!r}] is a {type(metric).__name__}, expected a "
                        f"{get_log_mode(mode).cls.__name__}"
                    )
                keys, ms = groups.setdefault(
                    (mode, per_mode.value_spec, per_mode.count_spec), ([], [])
                )
                keys.append(key)
                ms.append(metric)
                order.append((key, mode))
        layout = Layout(
            tuple(Group(*sig, tuple(keys)) for sig, (keys, _) in groups.items()), tuple(order)
        )
        stacked = [
            jax.tree.map(lambda *xs: (np if _on_host(xs) else jnp).stack(xs), *ms)
            for _, ms in groups.values()
        ]
        return cls(default_log_modes, nan_policy, metrics=tuple(stacked), layout=layout)


def _merge(
    a: MetricStore,
    b: MetricStore,
    stacked: Callable[[tuple[Metric, ...], tuple[Metric, ...]], Sequence[Metric]],
    single: Callable[[Metric, Metric], Metric],
    same_steps: bool,
) -> MetricStore:
    """Combine two stores metric by metric; a metric present in one store only is kept.

    ``stacked`` combines all groups at once when both stores share a layout (the usual case);
    otherwise the stores are unstacked and ``single`` combines each common ``(key, mode)``.
    With ``same_steps``, a key must have the same step shapes in both stores; without it
    (appending evaluation batches, whose last batch is often smaller) the later ones win.
    """
    if a.layout is b.layout or a.layout == b.layout:
        return a._evolve(stacked(a.metrics, b.metrics))
    ua, ub = a.unstack(), b.unstack()
    out: dict[str, KeyMetrics] = {}
    for key in {**ua, **ub}:
        x, y = ua.get(key), ub.get(key)
        if x is None or y is None:
            out[key] = cast(KeyMetrics, x if y is None else y)
            continue
        if same_steps and (x.value_spec, x.count_spec) != (y.value_spec, y.count_spec):
            raise ValueError(
                f"metric {key!r} has step shapes {x.value_spec}/{x.count_spec} in one store "
                f"and {y.value_spec}/{y.count_spec} in the other; they cannot be combined"
            )
        modes = {
            mode: single(x[mode], y[mode]) if mode in x and mode in y else None
            for mode in {**x, **y}
        }
        out[key] = KeyMetrics(
            {m: v if v is not None else x.get(m, y.get(m)) for m, v in modes.items()},  # type: ignore[misc]
            y.value_spec,
            y.count_spec,
        )
    return MetricStore.from_unstacked(out, a.default_log_modes, a.nan_policy)


def _build_store(
    aux: tuple[Any, ...], metrics: tuple[Metric, ...], pending: Any = None
) -> MetricStore:
    """A store built as unflattening builds it: attributes set directly, no converters."""
    new: Any = object.__new__(MetricStore)
    for name, value in zip(("default_log_modes", "nan_policy", "layout"), aux, strict=True):
        object.__setattr__(new, name, value)
    object.__setattr__(new, "_metrics", metrics)
    object.__setattr__(new, "_pending", pending)
    return cast(MetricStore, new)


def _flatten_store(store: MetricStore) -> tuple[list[Any], tuple[Any, ...]]:
    return [store.metrics], (store.default_log_modes, store.nan_policy, store.layout)


def _flatten_store_with_keys(store: MetricStore) -> tuple[list[Any], tuple[Any, ...]]:
    children, aux = _flatten_store(store)
    return [(jax.tree_util.GetAttrKey("metrics"), children[0])], aux


jax.tree_util.register_pytree_with_keys(
    MetricStore,
    _flatten_store_with_keys,
    lambda aux, children: _build_store(aux, next(iter(children))),
    _flatten_store,
)


def _flatten_key_metrics(km: KeyMetrics) -> tuple[tuple[Metric, ...], tuple[Any, ...]]:
    return tuple(km.values()), (tuple(km), km.value_spec, km.count_spec)


def _unflatten_key_metrics(aux: tuple[Any, ...], children: Any) -> KeyMetrics:
    modes, value_spec, count_spec = aux
    return KeyMetrics(dict(zip(modes, children, strict=True)), value_spec, count_spec)


jax.tree_util.register_pytree_node(KeyMetrics, _flatten_key_metrics, _unflatten_key_metrics)
