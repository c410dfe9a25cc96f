"""Host-side aggregation of evaluation batches (what :func:`~metricskit.aggregate_metrics` does).

An evaluation loop hands every batch's metrics (a store out of a jitted eval step) to
:func:`aggregate`, which returns a plain ``dict`` of key -> :class:`~metricskit.KeyMetrics`:

- per-sample modes (a ``"concat"`` field, e.g. ``single_noreduce``) are *appended*: the new
  entry records the batch in a shared, append-only list of parts (:class:`Appended`), at
  O(1) per batch with no transfer; the first time the result is used, every pending part is
  moved to the host at once and folded field by field with the fields' reductions (one
  concatenation per field), bit-identical to appending the batches one by one;
- every other mode keeps the batch's state (already cumulative on the device), moved to the
  host when first used (:class:`HostCopy`).

Both are lazy values: computing one remembers the result (the same value every time), and a
batch's arrays are referenced, not copied, until then (JAX arrays are immutable; writable
NumPy leaves are copied on the way in, so later writes by the caller change nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import jax
import numpy as np

from metricskit.fields import reduction_of
from metricskit.metric import Metric, per_sample, state_fields
from metricskit.pytree import replace
from metricskit.reductions import REDUCTIONS
from metricskit.registry import get_log_mode
from metricskit.store.entries import KeyMetrics, Row, Source, Whole, row_of, sources_of
from metricskit.store.layout import Signature, signature_of

__all__ = ["Appended", "HostCopy", "aggregate", "to_host"]


def _read_only(tree: Any) -> Any:
    def freeze(x: Any) -> Any:
        if isinstance(x, np.ndarray) and x.flags.writeable:
            x.flags.writeable = False
        return x

    return jax.tree.map(freeze, tree)


def to_host(sources: Sequence[Source]) -> list[Metric]:
    """The states of ``sources`` on the host, with one bulk transfer for all device leaves.

    Rows of one stacked group share that group's transfer; host states pass as they are.
    """
    stacks: dict[int, Any] = {}
    wholes: dict[int, Any] = {}
    for src in sources:
        if isinstance(src, Row):
            stacks.setdefault(id(jax.tree.leaves(src.stacked)[0]), src.stacked)
        elif isinstance(src, Whole):
            m = src.metric()
            wholes.setdefault(id(m), m)
    moved = jax.device_get((list(stacks.values()), list(wholes.values())))
    host_stacks = dict(zip(stacks, moved[0], strict=True))
    host_wholes = dict(zip(wholes, moved[1], strict=True))
    out = []
    for src in sources:
        if isinstance(src, Row):
            stacked = host_stacks[id(jax.tree.leaves(src.stacked)[0])]
            out.append(
                cast(Metric, jax.tree.map(lambda x, r=src.row: row_of(np.asarray(x), r), stacked))
            )
        elif isinstance(src, Whole):
            out.append(host_wholes[id(src.metric())])
        else:
            out.append(src.metric())  # already a host value (an appended or copied state)
    return [_read_only(m) for m in out]


def _fold(metrics: Sequence[Metric]) -> Metric:
    """Per-sample states appended in order, each field combined once for them all."""
    first = metrics[0]
    fields = {
        f.name: REDUCTIONS[reduction_of(f)].fold_all(np, [getattr(m, f.name) for m in metrics], 0)
        for f in state_fields(type(first))
    }
    fields = jax.tree.map(np.asarray, fields)  # NumPy reductions of 0-d arrays give scalars
    return cast(Metric, _read_only(replace(metrics[-1], fields)))


class _Parts:
    """The shared, append-only list of one key's batches (and what is folded so far)."""

    __slots__ = ("done", "folded", "items")

    def __init__(self, items: list[Source]):
        self.items, self.done, self.folded = items, 0, cast(Metric | None, None)


class Appended(Source):
    """The first ``n`` parts of a key's per-sample batches, appended (a lazy value)."""

    __slots__ = ("n", "parts")

    def __init__(self, parts: _Parts, n: int):
        self.parts, self.n = parts, n

    @classmethod
    def after(cls, earlier: Source | None, batch: Source) -> Appended:
        """``earlier`` with ``batch`` appended, in O(1) when ``earlier`` is the latest result."""
        if earlier is None:
            return cls(_Parts([batch]), 1)
        if isinstance(earlier, Appended):
            parts = earlier.parts
            if len(parts.items) == earlier.n:  # the latest result: extend the shared list
                parts.items.append(batch)
                return cls(parts, earlier.n + 1)
            return cls(_Parts([*parts.items[: earlier.n], batch]), earlier.n + 1)
        return cls(_Parts([earlier, batch]), 2)

    def metric(self) -> Metric:
        parts = self.parts
        if parts.folded is not None and parts.done == self.n:
            return parts.folded
        if parts.folded is not None and parts.done < self.n:
            state = _fold([parts.folded, *to_host(parts.items[parts.done : self.n])])
        else:
            state = _fold(to_host(parts.items[: self.n]))
        if self.n >= parts.done:
            parts.folded, parts.done = state, self.n
        return state

    @property
    def signature(self) -> Signature:
        return signature_of(self.metric())


class HostCopy(Source):
    """A batch's state moved to the host when first used (a lazy value)."""

    __slots__ = ("_host", "source")

    def __init__(self, source: Source):
        self.source, self._host = source, cast(Metric | None, None)

    def metric(self) -> Metric:
        if self._host is None:
            self._host = to_host([self.source])[0]
        return self._host

    @property
    def signature(self) -> Signature:
        return self.source.signature


def _intake(src: Source) -> Source:
    """A batch's source, with writable NumPy leaves copied (the caller may write into them)."""
    if isinstance(src, Whole):
        m = src.metric()
        if any(isinstance(x, np.ndarray) and x.flags.writeable for x in jax.tree.leaves(m)):
            return Whole(cast(Metric, jax.tree.map(np.array, m)))
    return src


def aggregate(aggregated: Mapping[str, Any] | None, batch: Mapping[str, Any]) -> dict[str, Any]:
    """The evaluation aggregate after one more batch (see the module docstring).

    Args:
        aggregated: The aggregate so far (``None`` or ``{}`` at the start).
        batch: One batch's metrics: a store, or a mapping of key -> per-mode metrics.

    Returns:
        A new plain ``dict`` with the batch's keys (as the documented module: keys that only
        ``aggregated`` has are not carried over). ``aggregated`` is not changed.

    Raises:
        TypeError: If an entry is a mapping but not one key's metrics.
    """
    previous = aggregated if isinstance(aggregated, Mapping) else {}
    out: dict[str, Any] = {}
    for key, entry in batch.items():
        sources = sources_of(key, entry)
        if sources is None:
            out[key] = jax.device_get(entry)
            continue
        earlier = previous.get(key)
        earlier_sources = sources_of(key, earlier) if earlier is not None else None
        new: dict[str, Source] = {}
        for mode, src in sources.items():
            src = _intake(src)
            if per_sample(get_log_mode(mode).cls):
                prior = earlier_sources.get(mode) if earlier_sources is not None else None
                new[mode] = Appended.after(prior, src)
            else:
                new[mode] = HostCopy(src)
        out[key] = KeyMetrics(new)
    return out
