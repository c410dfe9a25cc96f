""":class:`MetricStore`: every metric of a training loop in one immutable pytree and mapping.

- **One key's metrics** (:class:`KeyMetrics`): a store is a mapping of key -> mode ->
  :class:`~metricskit.Metric`, as the documented functional module's dicts are. Nothing is
  copied: each mode is a :class:`Source` (a row of a stacked group, :class:`Row`, or a state of
  its own, :class:`Whole`); :func:`stack` turns any mapping of such entries back into groups,
  taking rows that still lie in order in one group as they are.
- **Combining** stores whose layouts differ, key by key (``MetricStore.aggregate``).
- **Results**: what ``compute`` returns is moved to the host in one transfer for the whole
  store, finished there in float64 (pairs summed, ratios divided, so an exact mean is
  correctly rounded), and handed out per reported name: size-1 results as Python numbers,
  larger ones as read-only NumPy arrays.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np

from metricskit import builtin, checkpoint, exact
from metricskit._engine import kernels
from metricskit._engine.distributed import local_copy, process_sync, reduce_entries, sync_metric
from metricskit._engine.step import (
    DEFAULT_LOG_MODES,
    Group,
    Layout,
    Signature,
    canonical,
    index,
    key_modes,
    make_plan,
    names,
    normalize_log_modes,
    pack,
    parse,
    rows,
    signature_of,
    sorted_keys,
    step_signature,
)
from metricskit.compat import AxisName
from metricskit.log import LOGGER, warn_empty_parts
from metricskit.metric import (
    ConfiguredMetric,
    Metric,
    Mode,
    as_mode,
    get_log_mode,
    mode_name,
    mode_order,
    options_of,
    per_sample,
    sample_fields,
    zeros_like,
)

# -- one key's metrics ------------------------------------------------------------------------


def row_of(x: Any, row: int) -> Any:
    """Row ``row`` of a stacked leaf (a NumPy leaf stays an array, even a 0-d one; an abstract
    leaf of ``jax.eval_shape`` gives the row's shape and dtype)."""
    if isinstance(x, np.ndarray):
        return np.asarray(x[row])
    if isinstance(x, jax.ShapeDtypeStruct):
        return cast(Any, jax.ShapeDtypeStruct)(x.shape[1:], x.dtype)  # untyped in some JAX
    return x[row]


class Source(abc.ABC):
    """Where one key's state for one mode comes from."""

    __slots__ = ()

    @abc.abstractmethod
    def metric(self) -> Metric:
        """The state (one key's, without a key axis)."""

    @property
    @abc.abstractmethod
    def signature(self) -> Signature:
        """The state's structure."""


class Row(tuple[Any, ...], Source):
    """One key's row of a stacked group: one tuple of the group's leaves (every key's rows),
    the row, the group's structure and its log mode.

    An evaluation keeps thousands of these until the first ``get_metrics``; as one tuple (and
    the batch's arrays) each costs the garbage collector's passes a few objects, not the
    nested stacked metric, its dict and its exact accumulators.
    """

    __slots__ = ()

    @classmethod
    def of(cls, stacked: Metric, row: int, signature: Signature, mode: Mode) -> Row:
        """Row ``row`` of the stacked metric ``stacked`` of ``mode`` and ``signature``."""
        return cls((*kernels.of_metric(stacked, mode, signature), row, signature, mode))

    @property
    def leaves(self) -> tuple[Any, ...]:
        """The leaves of the stacked group (every key's rows), in pytree order."""
        return self[:-3]

    @property
    def row(self) -> int:
        """This key's row."""
        return cast(int, self[-3])

    @property
    def signature(self) -> Signature:
        return cast(Signature, self[-2])

    @property
    def mode(self) -> Mode:
        """The metric's log mode."""
        return cast(Mode, self[-1])

    @property
    def stacked(self) -> Metric:
        """The stacked group's metric (its leaves, not copied)."""
        return kernels.to_metric(self.mode, self.signature, self.leaves)

    def metric(self) -> Metric:
        row = self.row
        return kernels.to_metric(self.mode, self.signature, [row_of(x, row) for x in self.leaves])


class Whole(Source):
    """A state of its own."""

    __slots__ = ("_metric", "_signature")

    def __init__(self, metric: Metric, signature: Signature | None = None):
        self._metric, self._signature = metric, signature

    def metric(self) -> Metric:
        return self._metric

    @property
    def signature(self) -> Signature:
        if self._signature is None:
            self._signature = signature_of(self._metric)
        return self._signature


class KeyMetrics(Mapping[Mode, Metric]):
    """The metrics of one key, by log mode: a read-only mapping (and a JAX pytree).

    Examples:
        >>> import metricskit as mk
        >>> store = mk.MetricStore(default_log_modes=["mean", "max"]).update({"loss": 2.0})
        >>> entry = store["loss"]
        >>> sorted(entry), type(entry["max"]).__name__
        (['max', 'mean'], 'MaxMetric')
    """

    __slots__ = ("_sources",)

    def __init__(self, sources: Mapping[Mode, Source]):
        # a dict is taken as it is (callers hand over a new one), anything else copied
        self._sources: dict[Mode, Source] = sources if type(sources) is dict else dict(sources)

    @classmethod
    def of(cls, metrics: Mapping[Mode, Metric]) -> KeyMetrics:
        """A ``KeyMetrics`` of states of their own (mode -> metric)."""
        return cls({mode: Whole(m) for mode, m in metrics.items()})

    def __getitem__(self, mode: Mode | type[Metric]) -> Metric:
        source = self._sources.get(mode)  # type: ignore[arg-type]
        if source is None:
            if not isinstance(mode, type):
                raise KeyError(mode)
            source = self._sources[as_mode(mode)]  # a class: its default configuration
        return source.metric()

    def __iter__(self) -> Iterator[Mode]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)

    def __repr__(self) -> str:
        return f"KeyMetrics({', '.join(map(mode_name, self._sources))})"

    def sources(self) -> Mapping[Mode, Source]:
        """Mode -> :class:`Source`, without materializing anything."""
        return self._sources


def _flatten(km: KeyMetrics) -> tuple[list[Any], tuple[Any, ...]]:
    children: list[Any] = []
    aux: list[tuple[Mode, int | None, Signature | None]] = []
    for mode, src in km.sources().items():
        if type(src) is Row:
            children.append(src.stacked)
            aux.append((mode, src.row, src.signature))
        else:
            children.append(src.metric())
            aux.append((mode, None, None))
    return children, tuple(aux)


def _unflatten(aux: tuple[Any, ...], children: Any) -> KeyMetrics:
    sources: dict[Mode, Source] = {}
    for (mode, row, sig), child in zip(aux, children, strict=True):
        sources[mode] = Whole(child) if row is None else Row.of(child, row, sig, mode)
    return KeyMetrics(sources)


jax.tree_util.register_pytree_node(KeyMetrics, _flatten, _unflatten)


def sources_of(key: str, entry: Any) -> Mapping[Mode, Source] | None:
    """The sources of one mapping entry, ``None`` for a plain value; raises for anything odd."""
    if isinstance(entry, KeyMetrics):
        return entry.sources()
    if isinstance(entry, Mapping) and entry and all(isinstance(m, Metric) for m in entry.values()):
        out: dict[Mode, Source] = {}
        for given, metric in entry.items():
            if type(given) is not str and not isinstance(given, ConfiguredMetric | type):
                raise TypeError(
                    f"metrics[{key!r}] has log mode {given!r}; log modes are names, metric "
                    "classes or configured metrics"
                )
            try:
                mode = as_mode(given)
                expected = get_log_mode(mode).cls
            except ValueError as err:
                raise ValueError(f"metrics[{key!r}]: {err}") from None
            if type(metric) is not expected:
                raise TypeError(
                    f"metrics[{key!r}][{mode!r}] is a {type(metric).__name__}, but log mode "
                    f"{mode!r} is a {expected.__name__}"
                )
            options, wanted = options_of(metric), get_log_mode(mode).options
            if options != wanted:
                raise TypeError(
                    f"metrics[{key!r}][{mode!r}] holds a state configured with "
                    f"{dict(options)}, not the mode's options {dict(wanted)}: put each state "
                    "under the configured metric that made it"
                )
            out[mode] = Whole(metric)
        return out
    if isinstance(entry, Mapping | Metric):
        raise TypeError(
            f"metrics entry {key!r} is a {type(entry).__name__}, not one key's metrics (a mapping "
            "of log mode -> metric, as update_metrics and aggregate_metrics build them); "
            "remove it before passing the metrics on"
        )
    return None


def _take(xp: Any, metric: Metric, rows: list[int]) -> Metric:
    idx = np.asarray(rows, np.int32)
    return cast(Metric, jax.tree.map(lambda x: xp.asarray(x)[idx], metric))


def _gather(items: list[tuple[str, Source]]) -> Metric:
    """One stacked metric of the items' states, in their order, with as few copies as can be:
    rows of one stacked group are taken at once (not at all when they are the whole group)."""
    sources = [s for _, s in items]
    by_stack: dict[int, list[int]] = {}
    chunks: list[tuple[list[int], Metric]] = []
    for pos, s in enumerate(sources):
        if type(s) is Row:
            by_stack.setdefault(id(s[0]), []).append(pos)
        else:
            chunks.append(([pos], jax.tree.map(lambda x: x[None], s.metric())))
    for positions in by_stack.values():
        first = cast(Row, sources[positions[0]])
        rows = [cast(Row, sources[p]).row for p in positions]
        stacked, whole = first.stacked, rows == list(range(np.shape(first[0])[0]))
        xp = np if kernels.on_host(first.leaves) else jnp
        chunks.append((positions, stacked if whole else _take(xp, stacked, rows)))
    if len(chunks) == 1:
        return chunks[0][1]  # positions are in order: items come sorted, rows grouped
    xp = np if all(kernels.on_host(m) for _, m in chunks) else jnp
    order = [p for positions, _ in chunks for p in positions]
    combined = jax.tree.map(
        lambda *xs: xp.concatenate([xp.asarray(x) for x in xs]), *(m for _, m in chunks)
    )
    return _take(xp, cast(Metric, combined), np.argsort(order).tolist())


def stack(mapping: Mapping[str, Any]) -> tuple[Layout, tuple[Metric, ...], dict[str, Any]]:
    """The groups of a mapping of key -> per-mode metrics.

    Args:
        mapping: A store, or any mapping whose entries are :class:`KeyMetrics` or mappings of
            log mode -> metric; other entries (numbers, arrays) are passed through.

    Returns:
        ``(layout, stacked metrics, passed-through entries)``.

    Raises:
        TypeError: For an entry that is a mapping but not one key's metrics, or a metric of
            the wrong class for its mode.
    """
    members: dict[tuple[Mode, Signature], list[tuple[str, Source]]] = {}
    passthrough: dict[str, Any] = {}
    for key, entry in mapping.items():
        if not isinstance(key, str):
            raise TypeError(f"metric keys must be strings, got {key!r}")
        sources = sources_of(key, entry)
        if sources is None:
            passthrough[key] = entry
            continue
        for mode, src in sources.items():
            members.setdefault((mode, src.signature), []).append((key, src))
    layout = canonical(
        Group(mode, sig, tuple(k for k, _ in items)) for (mode, sig), items in members.items()
    )
    stacked = []
    for group in layout.groups:
        items = dict(members[(group.mode, group.signature)])
        stacked.append(_gather([(key, items[key]) for key in group.keys]))
    return layout, tuple(stacked), passthrough


# -- combining stores of different layouts ----------------------------------------------------


def aggregate_entries(
    first: Mapping[str, KeyMetrics], second: Mapping[str, KeyMetrics]
) -> dict[str, KeyMetrics]:
    """Every key's metrics of two partial stores combined with ``Metric.aggregate``.

    Keys and modes present in one store only are kept as they are.

    Raises:
        ValueError: If a metric's state has other shapes in the two stores (beyond the
            sample axis of per-sample modes).
    """
    out = {}
    for key in sorted_keys({*first, *second}):
        a: Mapping[Mode, Metric] = first.get(key) or {}
        b: Mapping[Mode, Metric] = second.get(key) or {}
        metrics = {}
        for mode in sorted({*a, *b}, key=mode_order):
            x, y = a.get(mode), b.get(mode)
            if x is not None and y is not None:
                x = _aggregate(key, mode, x, y)
            metrics[mode] = cast(Metric, y if x is None else x)
        out[key] = KeyMetrics.of(metrics)
    return out


def _aggregate(key: str, mode: Mode, x: Metric, y: Metric) -> Metric:
    if per_sample(type(x)) and not kernels.traced((x, y)):
        # an empty (all-zeros: reset or zero-filled) per-sample state holds no samples
        x_empty, y_empty = is_all_zero(x), is_all_zero(y)
        if x_empty or y_empty:
            left_out = [m for m, e in ((x, x_empty), (y, y_empty)) if e and _has_samples(m)]
            if left_out:  # zeros that may have been data: say so
                name = f"{key!r} (log mode {mode!r})"
                warn_empty_parts("MetricStore.aggregate", name, len(left_out))
            return y if x_empty else x
    sx, sy = signature_of(x), signature_of(y)
    if sx != sy and not (per_sample(type(x)) and differ_in_samples_only(sx, sy)):
        raise ValueError(
            f"metric {key!r} (log mode {mode!r}) has state {sx} in one "
            f"store and {sy} in the other; they cannot be combined"
        )
    with kernels.device_for((x, y)):
        return x.aggregate(y)


def _has_samples(metric: Metric) -> bool:
    """Whether a per-sample state's sample axis is not empty."""
    return any(
        np.shape(jax.tree.leaves(getattr(metric, name))[0])[0]
        for name in sample_fields(type(metric))
    )


def differ_in_samples_only(a: Signature, b: Signature) -> bool:
    """Whether two per-sample signatures are equal but for their number of samples (the
    leading axis of each field): same storages, ranks and sample shapes."""
    return all(
        fa.storage == fb.storage and len(fa.shape) == len(fb.shape) and fa.shape[1:] == fb.shape[1:]
        for (_, fa), (_, fb) in zip(a.fields, b.fields, strict=True)
    )


def is_all_zero(tree: Any) -> bool:
    """Whether every leaf of a (concrete) state, or store, is zero: the empty state.

    The smallest leaves (counts) are checked first and each check reduces where the leaf
    lives, so a non-empty evaluation state is told apart without moving its samples."""
    leaves = sorted(jax.tree.leaves(tree), key=np.size)
    return not any(bool(x.any() if isinstance(x, jax.Array) else np.any(x)) for x in leaves)


def drops_empty(*metrics: Sequence[Metric]) -> bool:
    """Whether aggregating these stores' metrics eagerly may drop an empty per-sample state
    (so the result's layout is not the concatenated one): any per-sample metric, no tracer."""
    return any(per_sample(type(m)) for ms in metrics for m in ms) and not kernels.traced(metrics)


# -- results on the host ----------------------------------------------------------------------


def read_only_view(x: np.ndarray) -> np.ndarray:
    """A read-only view (the caller cannot write through it into anything of ours)."""
    view = x.view()
    view.flags.writeable = False
    return view


def _finish(x: Any) -> Any:
    """Stacked exact results (axis 0 is the key axis) as float64/int64 NumPy (one key's:
    ``exact.to_host``)."""
    if isinstance(x, tuple):
        return tuple(_finish(p) for p in x)
    if isinstance(x, exact.Finish):  # the host function takes one key at a time
        operand = _finish(x.operand)
        n = len(jax.tree.leaves(operand)[0])
        with np.errstate(all="ignore"):  # as exact.to_host: NaN or inf is a value, not a warning
            rows = [x.fn(jax.tree.map(lambda a, i=i: a[i], operand)) for i in range(n)]
        if rows and isinstance(rows[0], tuple):
            return tuple(np.stack([np.asarray(r[j]) for r in rows]) for j in range(len(rows[0])))
        if rows and not isinstance(rows[0], np.ndarray | np.generic | float | int):
            objects = np.empty(len(rows), object)  # objects a host finish made, one per key
            objects[:] = rows
            return objects
        return np.stack([np.asarray(r) for r in rows]) if rows else np.zeros((0,))
    if isinstance(x, exact.Ratio):  # align per-key shapes to the right, after the key axis
        parts = [np.asarray(exact.to_host(p)) for p in (x.numerator, x.denominator)]
        rank = max(p.ndim for p in parts)
        x = exact.Ratio(
            *(p.reshape(p.shape[:1] + (1,) * (rank - p.ndim) + p.shape[1:]) for p in parts)
        )
    return exact.to_host(x)


def _reported(x: np.ndarray) -> Any:
    """A result as reported: size 1 as a Python number, else a read-only array."""
    return x.reshape(()).item() if x.size == 1 else read_only_view(x)


def host_value(x: Any) -> Any:
    """One key's computed result (device or host arrays) as it is reported.

    Examples:
        >>> import numpy as np
        >>> from metricskit import exact
        >>> from metricskit._engine.store import host_value
        >>> host_value(exact.Ratio(np.int32(3), np.int32(4)))
        0.75
        >>> host_value(np.arange(2.0)).flags.writeable
        False
    """
    x = exact.to_host(x)
    if isinstance(x, tuple):
        return tuple(read_only_view(np.asarray(p)) for p in x)
    if not isinstance(x, np.ndarray | np.generic):
        return x  # an object a host finish made (e.g. a histogram)
    return _reported(np.asarray(x))


def stacked_rows(values: Any, n: int) -> list[Any]:
    """The per-key results of a group's computed values (leading key axis of size ``n``)."""
    values = _finish(values)
    if isinstance(values, tuple):
        parts = [read_only_view(np.asarray(p)) for p in values]
        return [tuple(p[i] for p in parts) for i in range(n)]
    values = np.asarray(values)
    if values.size == n:
        return values.reshape(n).tolist()  # type: ignore[no-any-return]
    frozen = read_only_view(values)
    return [frozen[i] for i in range(n)]


def report(
    layout: Layout, rows: Sequence[Sequence[Any]], empties: Sequence[Sequence[bool]]
) -> dict[str, Any]:
    """Every reported name's value, in canonical order, from each group's per-key results and
    emptiness; empty metrics report ``0.0`` (with one warning naming them)."""
    out: dict[str, Any] = {}
    empty: list[str] = []
    for name, g, row, part in names(layout):
        if empties[g][row]:
            out[name] = 0.0
            group = layout.groups[g]
            if part <= 0:
                empty.append(f"{group.keys[row]!r} (log mode {group.mode!r})")
        elif part < 0:
            out[name] = rows[g][row]
        else:  # one of the values a metric reports under names of their own
            values = rows[g][row]
            mode = layout.groups[g].mode
            if not isinstance(values, tuple) or len(values) != len(get_log_mode(mode).parts):
                _wrong_parts(mode, values)
            out[name] = _reported(np.asarray(values[part]))
    warn_empty(empty)
    return out


def _wrong_parts(mode: Mode, values: Any) -> None:
    log_mode = get_log_mode(mode)
    got = f"a tuple of {len(values)}" if isinstance(values, tuple) else "one value, not a tuple"
    raise ValueError(
        f"{log_mode.cls.__name__} (log mode {mode!r}) reports parts {log_mode.parts}, so its "
        f"compute() must return a tuple of {len(log_mode.parts)} values; it returned {got} "
        "(declare parts, or parts_of, for each value it returns)"
    )


def warn_empty(metrics: Sequence[str]) -> None:
    """Log one warning naming the metrics (``"'key' (log mode 'mode')"``) that have no
    samples, which are reported as ``0.0``."""
    if metrics:
        shown = ", ".join(metrics[:20])
        more = f" and {len(metrics) - 20} more" if len(metrics) > 20 else ""
        noun = "Metric" if len(metrics) == 1 else "Metrics"
        LOGGER.warning("%s %s%s: count 0 (no samples); reporting 0.0.", noun, shown, more)


def compute(layout: Layout, metrics: Sequence[Metric]) -> dict[str, Any]:
    """The reported metrics of a store's groups (local, concrete state), one transfer.

    Device groups run one jitted compute together and come back in one ``device_get``; host
    groups of per-sample evaluation results compute per key on their NumPy leaves. The state
    is concrete, so all of it runs now, even inside a trace (a store or an evaluation
    aggregate closed over by a jitted function: :meth:`MetricStore.compute` runs it in
    ``jax.ensure_compile_time_eval``).
    """
    on_cpu = [per_sample(type(m)) and kernels.on_host(m) for m in metrics]
    on_device = tuple(m for m, h in zip(metrics, on_cpu, strict=True) if not h)
    with kernels.device_for(on_device):
        computed = iter(jax.device_get(kernels.compute_jit(on_device)) if on_device else ())
    rows, empties = [], []
    for m, h, group in zip(metrics, on_cpu, layout.groups, strict=True):
        if h:
            per_key = [jax.tree.map(lambda x, r=r: row_of(x, r), m) for r in range(len(group.keys))]
            rows.append([host_value(k.compute()) for k in per_key])
            empties.append([bool(k.is_empty()) for k in per_key])
        else:
            values, empty = next(computed)
            rows.append(stacked_rows(values, len(group.keys)))
            empties.append(np.asarray(empty).tolist())
    return report(layout, rows, empties)


# -- the store --------------------------------------------------------------------------------

_UNSET: Any = object()
_EMPTY = Layout()


class MetricStore(Mapping[str, KeyMetrics]):
    """Every metric of a loop, per key and log mode, as one immutable pytree and mapping.

    Keys that share a log mode and state structure share one stacked
    :class:`~metricskit.Metric` (a leading key axis), so a store of thousands of scalar
    metrics has a handful of leaves, and its structure does not depend on the order in which
    steps list their keys. Every method returns a new store; an eager :meth:`update` is one
    compiled call per store structure. The store goes in and out of ``jax.jit`` like any
    pytree, and it is a read-only mapping of key -> :class:`KeyMetrics` (log mode -> metric),
    as the documented functional module's global metrics are; iterating it copies nothing.

    Args:
        default_log_modes: Log modes for keys whose step metrics name none; ``None`` means
            ``["mean_nopostfix"]``. A key keeps the modes it was first given.
        nan_policy: ``"propagate"`` (default: NaN and inf flow into the metrics, as float64
            arithmetic would carry them) or ``"skip"``: a step whose value or count is not
            finite adds nothing to that key, and the number of such steps is reported as
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
        {'loss_max': 4.0, 'loss_mean': 3.0}
        >>> list(store), sorted(store["loss"])
        (['loss'], ['max', 'mean'])
        >>> store.reset().compute()["loss_mean"]  # empty again: warns, reports 0.0
        0.0
    """

    __slots__ = ("default_log_modes", "layout", "metrics", "nan_policy")

    default_log_modes: tuple[Mode, ...] | None
    nan_policy: str
    layout: Layout
    metrics: tuple[Metric, ...]

    def __init__(
        self,
        default_log_modes: Sequence[Mode | type[Metric]] | None = None,
        nan_policy: str = "propagate",
    ):
        modes = (
            None
            if default_log_modes is None
            else normalize_log_modes(default_log_modes, "default_log_modes")
        )
        policy = builtin.check_policy(nan_policy, "the store")
        kernels.set_store(self, modes, policy, _EMPTY, ())

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"MetricStore is immutable: cannot set {name!r}; methods return a new store"
        )

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"MetricStore is immutable: cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # copy, deepcopy and pickle rebuild through the pytree (leaves and static structure)
        flat, aux = kernels.flatten_store(self)
        return kernels.unflatten_store, (MetricStore, aux, flat)

    def _evolve(self, metrics: Sequence[Metric], layout: Layout | None = None) -> MetricStore:
        new = object.__new__(MetricStore)
        return kernels.set_store(
            new, self.default_log_modes, self.nan_policy, layout or self.layout, tuple(metrics)
        )

    # -- the mapping -----------------------------------------------------------------------

    def __getitem__(self, key: str) -> KeyMetrics:
        modes = key_modes(self.layout).get(key)
        if modes is None:
            raise KeyError(key)
        return KeyMetrics({mode: self._row(*index(self.layout)[(key, mode)]) for mode in modes})

    def _row(self, group: int, row: int) -> Row:
        g = self.layout.groups[group]
        return Row.of(self.metrics[group], row, g.signature, g.mode)

    def first_leaf(self) -> Any:
        """The first leaf of the state (a store's leaves are traced together, or not at all)."""
        return kernels.first(self.metrics, self.layout)

    def entries(self) -> Iterator[tuple[str, dict[Mode, Row]]]:
        """``(key, {mode: Row})`` for every key, sorted: ``items()`` without the views."""
        groups = self.layout.groups
        leaves = [
            kernels.of_metric(s, g.mode, g.signature)
            for s, g in zip(self.metrics, groups, strict=True)
        ]
        for key, triples in rows(self.layout):
            yield (
                key,
                {mode: Row((*leaves[g], r, groups[g].signature, mode)) for mode, g, r in triples},
            )

    def __iter__(self) -> Iterator[str]:
        return iter(key_modes(self.layout))

    def __len__(self) -> int:
        return len(key_modes(self.layout))

    def __contains__(self, key: object) -> bool:
        return key in key_modes(self.layout)

    __eq__ = object.__eq__  # a store compares by identity; compare compute() results instead
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        reported = ", ".join(name for name, _, _, _ in names(self.layout))
        return f"MetricStore({len(self.layout.groups)} groups: {reported})"

    @classmethod
    def from_mapping(
        cls,
        metrics: Mapping[str, Any],
        default_log_modes: Sequence[Mode | type[Metric]] | None = None,
        nan_policy: str = "propagate",
    ) -> MetricStore:
        """A store of the entries of any mapping of key -> per-mode metrics.

        ``metrics`` may be a store, a dict built from the entries of several stores (renamed
        keys, several evaluation datasets), a dict that ``flax.core.unfreeze`` made, or the
        result of :func:`~metricskit.aggregate_metrics`. Rows that still lie in order in one
        stacked group are used as they are (no copy).

        Args:
            metrics: ``{key: KeyMetrics or {mode: Metric}}``.
            default_log_modes: The new store's default log modes.
            nan_policy: The new store's NaN policy.

        Returns:
            The store.

        Raises:
            TypeError: For an entry that is not one key's metrics.
        """
        if isinstance(metrics, MetricStore) and default_log_modes is None:
            return metrics
        layout, stacked, passthrough = stack(metrics)
        if passthrough:
            key = next(iter(passthrough))
            raise TypeError(
                f"metrics entry {key!r} is a {type(passthrough[key]).__name__}, not one key's "
                "metrics; remove it first"
            )
        return cls(default_log_modes, nan_policy)._evolve(stacked, layout)

    # -- updating --------------------------------------------------------------------------

    def _entries(
        self, step_metrics: Mapping[str, Any], modes: Any, axis_name: AxisName | None
    ) -> Any:
        if modes is _UNSET:
            defaults = self.default_log_modes or DEFAULT_LOG_MODES
            known = key_modes(self.layout)
        else:
            defaults = (
                DEFAULT_LOG_MODES
                if modes is None
                else normalize_log_modes(modes, "default_log_modes")
            )
            known = None
        entries = parse(step_metrics, defaults, self.nan_policy, known)
        return reduce_entries(entries, axis_name) if axis_name is not None else entries

    def init(
        self, example_step_metrics: Mapping[str, Any], *, default_log_modes: Any = _UNSET
    ) -> MetricStore:
        """A store with the structure that ``update(example_step_metrics)`` gives, all empty.

        Creating every key up front means a jitted step sees one structure and compiles once.
        The example's dtypes matter (an integer example makes an integer state): write ``0.0``
        for a float metric.

        Args:
            example_step_metrics: Step metrics of the right keys, shapes, dtypes and modes
                (their values are not used).
            default_log_modes: Overrides the store's default modes for this call.

        Returns:
            The store, with every new ``(key, mode)`` empty and existing ones unchanged.

        Raises:
            ValueError, TypeError: As :meth:`update`.
        """
        plan = make_plan(
            self.layout,
            step_signature(self._entries(example_step_metrics, default_log_modes, None)),
        )
        if not plan.grows:
            return self
        with kernels.device_for(self.metrics):
            return self._evolve(kernels.grow_jit(self.metrics, plan=plan), plan.after)

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
                optional ``"count"`` (default 1), optional ``"log_modes"`` and optional
                ``"nan_policy"``.
            default_log_modes: The modes of this call's keys that name none (the functional
                API's per-call semantics). If not given, a key already in the store keeps its
                modes, and a new key takes the store's ``default_log_modes``.
            axis_name: Inside ``shard_map``/``pmap``: a mesh axis name, or a tuple of names,
                across which the step metrics are first combined (values and counts summed,
                per-sample values gathered along axis 0), so that every device runs the same
                global update.

        Returns:
            The updated store. New keys and modes are added; keys absent from this step keep
            their state.

        Raises:
            ValueError: Unknown or repeated log mode, a key whose shapes changed since earlier
                steps (for an accumulating mode), a dict without ``"value"``, two keys reported
                under one name, or an integer beyond ±2**60.
            TypeError: A non-numeric value or count, or a step whose dtypes cannot update the
                key's state (floats into an integer state).
        """
        entries = self._entries(step_metrics, default_log_modes, axis_name)
        plan = make_plan(self.layout, step_signature(entries))
        values, counts = pack(entries, plan)
        try:
            with kernels.device_for(self.metrics):
                metrics = kernels.apply_update(self.metrics, values, counts, plan)
        except ValueError as e:  # JAX's message names an internal function: name the keys
            if "incompatible devices" not in str(e):
                raise
            raise ValueError(kernels.device_mismatch(entries, self.first_leaf())) from None
        return self._evolve(metrics, plan.after)

    # -- combining -------------------------------------------------------------------------

    def sync(self, axis_name: AxisName) -> MetricStore:
        """Combine every device's accumulated state across ``axis_name`` (inside a map).

        Each device accumulated its own samples; the result holds the union of all devices'
        samples, as :meth:`aggregate` would combine them (sums add, extremes take the extreme,
        ``std`` uses Chan's formula, per-sample values concatenate in device order, so their
        state grows). A user's metric gets this from its field declarations.

        Args:
            axis_name: A mesh axis name or a tuple of names.

        Returns:
            The combined store, the same on every device.

        Raises:
            ValueError: Outside a map over ``axis_name``.
        """
        try:
            return self._evolve([sync_metric(m, axis_name) for m in self.metrics])
        except NameError as e:  # JAX's "unbound axis name"
            raise ValueError(
                f"MetricStore.sync({axis_name!r}) combines devices inside a map over that axis "
                "(jax.shard_map, jax.pmap); outside one there are no devices to combine. Call "
                "it in the mapped function, or use process_sync/aggregate outside"
            ) from e

    def aggregate(self, other: MetricStore) -> MetricStore:
        """Combine with a store of disjoint data (another device, shard, process or stream half).

        Each metric combines with :meth:`Metric.aggregate <metricskit.Metric.aggregate>`:
        sums add, extremes take the extreme, ``std`` uses Chan's formula, per-sample values
        concatenate (eagerly, an empty per-sample state, all zeros as after :meth:`reset`,
        adds no samples; inside ``jit`` shapes are static, so it adds its zeros). Keys
        present in only one store are kept as they are.

        Args:
            other: The other partial store.

        Returns:
            The combined store.

        Raises:
            ValueError: If a metric's state has other shapes in the two stores (beyond the
                sample axis of per-sample modes).
        """
        if not isinstance(other, MetricStore):
            raise TypeError(
                f"MetricStore.aggregate takes another MetricStore, got {type(other).__name__}; "
                "make one with MetricStore.from_mapping(...) (or use aggregate_metrics for a "
                "mapping of evaluation batches)"
            )
        if self.layout == other.layout and not drops_empty(self.metrics, other.metrics):
            with kernels.device_for((self.metrics, other.metrics)):
                return self._evolve(kernels.aggregate_jit(self.metrics, other.metrics))
        out = aggregate_entries(self, other)
        return MetricStore.from_mapping(out, self.default_log_modes, self.nan_policy)

    def process_sync(self) -> MetricStore:
        """Combine the stores of all processes (``jax.distributed``), host side.

        Every process calls it with a store of the same structure; each gets the combined
        store, as :meth:`aggregate` combines parts in process order (per-sample values are
        concatenated in process order). With one process it returns the store unchanged.

        Returns:
            The combined store, with NumPy leaves.

        Raises:
            ValueError: If the processes' stores differ in structure.
            TypeError: When called on traced values (inside ``jax.jit``).
        """
        kernels.refuse_tracers(self.first_leaf(), "MetricStore.process_sync")
        return process_sync(self, MetricStore.aggregate)

    # -- reporting -------------------------------------------------------------------------

    def compute(self) -> dict[str, Any]:
        """The reported metrics, with one device-to-host transfer for the whole store.

        Returns:
            A dict from reported name (``key + postfix``, sorted by key, then mode) to a
            Python ``float``/``int`` for size-1 results, a read-only NumPy array (or tuple of
            them) otherwise. Exact quotients (means, ``single``) are divided in float64 on
            the host. A metric with no samples reports ``0.0``, with one warning naming it.

        Raises:
            TypeError: When called on traced values (inside ``jax.jit``).
        """
        if not self.metrics:
            return {}
        kernels.refuse_tracers(self.first_leaf(), "MetricStore.compute")
        kernels.check_shapes(self.metrics, self.layout, "MetricStore.compute()")
        with jax.ensure_compile_time_eval():
            return compute(self.layout, local_copy(self.metrics))

    def reset(self) -> MetricStore:
        """Every metric back to its empty (all-zero) state.

        Device state keeps its structure, shapes, dtypes and shardings, so a jitted step does
        not recompile; a host store of evaluation results resets to no samples at all.

        Returns:
            The reset store.
        """
        if self.metrics and kernels.uncommitted(self.metrics, self.layout):
            return self._evolve(kernels.zeros_jit(self.metrics))  # one call for every leaf
        return self._evolve(
            [zeros_like(m, drop_samples=1 if kernels.on_host(m) else None) for m in self.metrics]
        )

    # -- checkpoints -----------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the store's state and structure to a ``.npz`` checkpoint (atomically).

        Every leaf keeps its exact bytes and dtype, so a loaded store continues exactly where
        this one stopped. See :mod:`metricskit.checkpoint`.

        Args:
            path: The file to write.

        Raises:
            TypeError: When called on traced values (inside ``jax.jit``).
        """
        kernels.refuse_tracers(self.first_leaf(), "MetricStore.save")
        modes = checkpoint.modes_json(self.default_log_modes)
        meta = {"default_log_modes": modes, "nan_policy": self.nan_policy}
        checkpoint.save(path, self.layout, local_copy(self.metrics), meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str], like: MetricStore | None = None) -> MetricStore:
        """Read a checkpoint written by :meth:`save`.

        Args:
            path: The checkpoint file.
            like: If given, the checkpoint must have this store's keys, modes and state
                structure (up to the sample axis of per-sample modes, which evaluation grows);
                otherwise a :class:`~metricskit.checkpoint.CheckpointError` names the key, the
                field and the two shapes. The result takes ``like``'s default log modes and
                NaN policy.

        Returns:
            The loaded store (JAX leaves).

        Raises:
            metricskit.checkpoint.CheckpointError: A ``ValueError`` for a truncated file, a
                file that is not a metricskit checkpoint, or a structure other than ``like``'s.
        """
        known = None if like is None else tuple(g.mode for g in like.layout.groups)
        layout, metrics, meta = checkpoint.load(path, known)
        if like is not None:
            checkpoint.check_like(path, layout, like.layout)
            return like._evolve(metrics, layout)
        try:
            modes = checkpoint.modes_from_json(meta.get("default_log_modes"))
        except (KeyError, TypeError, ValueError) as e:  # a CheckpointError is a ValueError
            raise checkpoint.CheckpointError(f"{os.fspath(path)!r}: default log modes: {e}") from e
        store = cls(modes, meta.get("nan_policy", "propagate"))
        return store._evolve(metrics, layout)


kernels.register_store(MetricStore)
