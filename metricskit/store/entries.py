"""One key's metrics as a mapping, and stacking such mappings back into groups.

A store is a mapping of key -> :class:`KeyMetrics` (mode -> :class:`~metricskit.Metric`), as
the documented functional module's frozen dicts are. A ``KeyMetrics`` does not copy anything:
each mode is a :class:`Source` that yields the state when asked, a row of a store's stacked
group (:class:`Row`) or a state of its own (:class:`Whole`; host aggregation adds lazily
appended sources). :func:`stack` turns any mapping of such entries (a store, a dict merged
from several stores, a dict from ``flax.core.unfreeze``) back into groups; rows that still lie
in order in one stacked group are taken as they are, so the round trip costs nothing.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np

from metricskit.metric import ConfiguredMetric, Metric
from metricskit.registry import Mode, as_mode, get_log_mode, mode_name
from metricskit.store.layout import Group, Layout, Signature, canonical, signature_of

__all__ = ["KeyMetrics", "Row", "Source", "Whole", "on_host", "row_of", "sources_of", "stack"]


def on_host(tree: Any) -> bool:
    """Whether every leaf of ``tree`` is a NumPy array (and there is at least one)."""
    leaves = jax.tree.leaves(tree)
    return bool(leaves) and all(isinstance(x, np.ndarray | np.generic) for x in leaves)


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


class Row(Source):
    """Row ``row`` of a stacked group ``stacked`` whose structure is ``signature``."""

    __slots__ = ("_signature", "row", "stacked")

    def __init__(self, stacked: Metric, row: int, signature: Signature):
        self.stacked, self.row, self._signature = stacked, row, signature

    def metric(self) -> Metric:
        return cast(Metric, jax.tree.map(lambda x: row_of(x, self.row), self.stacked))

    @property
    def signature(self) -> Signature:
        return self._signature


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
        self._sources = dict(sources)

    @classmethod
    def owning(cls, sources: dict[Mode, Source]) -> KeyMetrics:
        """A ``KeyMetrics`` that takes ``sources`` itself (no copy; the caller lets it go)."""
        km = object.__new__(cls)
        km._sources = sources
        return km

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
        if isinstance(src, Row):
            children.append(src.stacked)
            aux.append((mode, src.row, src.signature))
        else:
            children.append(src.metric())
            aux.append((mode, None, None))
    return children, tuple(aux)


def _unflatten(aux: tuple[Any, ...], children: Any) -> KeyMetrics:
    sources: dict[Mode, Source] = {}
    for (mode, row, sig), child in zip(aux, children, strict=True):
        sources[mode] = Whole(child) if row is None else Row(child, row, sig)
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
            signature = None
            if isinstance(mode, ConfiguredMetric):
                signature = signature_of(metric)
                statics = signature.statics
                if statics != mode.options:
                    raise TypeError(
                        f"metrics[{key!r}][{mode!r}] holds a state configured with "
                        f"{dict(statics)}, not the mode's options {dict(mode.options)}: put "
                        "each state under the configured metric that made it"
                    )
            out[mode] = Whole(metric, signature)  # the signature, if already computed
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
        if isinstance(s, Row):
            by_stack.setdefault(id(jax.tree.leaves(s.stacked)[0]), []).append(pos)
        else:
            chunks.append(([pos], jax.tree.map(lambda x: x[None], s.metric())))
    for positions in by_stack.values():
        first = cast(Row, sources[positions[0]])
        rows = [cast(Row, sources[p]).row for p in positions]
        whole = rows == list(range(jax.tree.leaves(first.stacked)[0].shape[0]))
        xp = np if on_host(first.stacked) else jnp
        chunks.append((positions, first.stacked if whole else _take(xp, first.stacked, rows)))
    if len(chunks) == 1:
        return chunks[0][1]  # positions are in order: items come sorted, rows grouped
    xp = np if all(on_host(m) for _, m in chunks) else jnp
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
        items = sorted(members[(group.mode, group.signature)], key=lambda item: item[0])
        stacked.append(_gather(items))
    return layout, tuple(stacked), passthrough
