"""Evaluation on the host: bulk transfers, and aggregating evaluation batches.

**Transfers.** Fetching many small device arrays one ``device_get`` at a time costs a
round trip each; :func:`device_get_many` and :func:`stack_to_host` stack arrays of one shape,
dtype and placement on the device (in chunks, one compiled concatenation per chunk size) and
fetch each stack at once.

**Aggregating** (what :func:`~metricskit.aggregate_metrics` does). An evaluation loop hands
every batch's metrics (a store out of a jitted eval step) to :func:`aggregate`, which returns a
plain ``dict`` of key -> :class:`~metricskit.KeyMetrics`:

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

import contextlib
import functools
import gc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, cast

import jax
import jax.numpy as jnp
import numpy as np

from metricskit._engine.kernels import to_metric
from metricskit._engine.step import Signature, signature_of
from metricskit._engine.store import (
    KeyMetrics,
    MetricStore,
    Row,
    Source,
    Whole,
    differ_in_samples_only,
    read_only_view,
    row_of,
    sources_of,
)
from metricskit.compat import concrete
from metricskit.exact import replace
from metricskit.log import warn_empty_parts
from metricskit.metric import (
    REDUCTIONS,
    Metric,
    Mode,
    get_log_mode,
    per_sample,
    reduction_of,
    sample_fields,
    state_fields,
)

# -- bulk transfers ---------------------------------------------------------------------------

CHUNK: Final = 256
"""How many arrays one compiled concatenation takes."""


_stack = jax.jit(jnp.stack)


def stack_to_host(arrays: Sequence[Any]) -> np.ndarray:
    """``np.stack`` of arrays of one shape and dtype, device arrays moved in bulk.

    The result is written chunk by chunk into one preallocated host array, so the memory
    needed beyond the result is one chunk.

    Args:
        arrays: JAX or NumPy arrays of one shape and dtype.

    Returns:
        A NumPy array with a new leading axis of ``len(arrays)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from metricskit._engine.evaluation import stack_to_host
        >>> stack_to_host([jnp.arange(2) + i for i in range(3)]).tolist()
        [[0, 1], [1, 2], [2, 3]]
    """
    first = arrays[0]
    if not concrete(first) and not any(map(concrete, arrays)):
        return np.stack([np.asarray(x) for x in arrays])
    out = np.empty((len(arrays), *np.shape(first)), np.dtype(first.dtype))
    # concrete arrays: run now, even inside a trace
    with jax.ensure_compile_time_eval(), contextlib.suppress(ValueError):
        for start in range(0, len(arrays), CHUNK):
            part = list(arrays[start : start + CHUNK])
            size = min(CHUNK, 1 << (len(part) - 1).bit_length())  # few sizes: few compilations
            stacked = _stack(part + [part[0]] * (size - len(part)))
            out[start : start + len(part)] = np.asarray(jax.device_get(stacked))[: len(part)]
        return out
    for i, x in enumerate(arrays):  # arrays committed to different devices: one by one
        out[i] = np.asarray(jax.device_get(x))
    return out


def device_get_many(trees: Sequence[Any]) -> list[Any]:
    """``jax.device_get`` of every tree, with the leaves fetched in bulk.

    Device leaves of one shape, dtype and placement are fetched together (see the module
    docstring); a lone leaf, and NumPy leaves, are fetched (or kept) as ``jax.device_get``
    does. The result is the same as ``[jax.device_get(t) for t in trees]``.

    Args:
        trees: Pytrees of JAX or NumPy arrays.

    Returns:
        The trees with NumPy leaves, in order.

    Examples:
        >>> import jax.numpy as jnp
        >>> from metricskit._engine.evaluation import device_get_many
        >>> out = device_get_many([{"a": jnp.arange(3) + i} for i in range(4)])
        >>> [t["a"].tolist() for t in out]
        [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]]
    """
    flat = [jax.tree.flatten(t) for t in trees]
    groups: dict[tuple[Any, ...], list[tuple[int, int]]] = {}
    for t, (leaves, _) in enumerate(flat):
        for i, x in enumerate(leaves):
            if concrete(x):  # by shape, dtype and placement
                groups.setdefault((x.shape, x.dtype, x.sharding), []).append((t, i))
    host = [list(leaves) for leaves, _ in flat]
    for where in groups.values():
        arrays = [flat[t][0][i] for t, i in where]
        fetched = (
            stack_to_host(arrays)
            if len(arrays) > 1
            else [np.asarray(jax.device_get(x)) for x in arrays]
        )
        for (t, i), x in zip(where, fetched, strict=True):
            host[t][i] = x
    return [
        jax.tree.unflatten(treedef, [np.asarray(x) for x in leaves])
        for leaves, (_, treedef) in zip(host, flat, strict=True)
    ]


# -- aggregating evaluation batches -----------------------------------------------------------


def _read_only(tree: Any) -> Any:
    def freeze(x: Any) -> Any:
        if isinstance(x, np.ndarray) and x.flags.writeable:
            x.flags.writeable = False
        return x

    return jax.tree.map(freeze, tree)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def to_host(sources: Sequence[Source]) -> list[Metric]:
    """The states of ``sources`` on the host, with one bulk transfer for all device leaves.

    Rows of one stacked group share that group's transfer; host states pass as they are.
    """
    keys = [_transfer(src) for src in sources]
    trees = dict(k for k in keys if k is not None)
    host = dict(zip(trees, device_get_many(list(trees.values())), strict=True))
    out = []
    for src, key in zip(sources, keys, strict=True):
        if key is None:
            out.append(src.metric())  # already a host value (an appended or copied state)
        elif type(src) is Whole:
            out.append(host[key[0]])
        else:  # a row of a stacked group's leaves
            r = cast(Row, src)
            row = [row_of(np.asarray(x), r.row) for x in host[key[0]]]
            out.append(to_metric(r.mode, r.signature, row))
    return [_read_only(m) for m in out]


def _transfer(src: Source) -> tuple[int, Any] | None:
    """What moving ``src`` to the host transfers, keyed by identity (rows of one stacked group
    share it), or ``None`` for a host value."""
    if type(src) is Row:
        return id(src[0]), src.leaves
    if type(src) is Whole:
        return id(src.metric()), src.metric()
    return None


def _runs(sources: Sequence[Source]) -> list[list[Source]]:
    """Consecutive kept batches that are the same row of stacked groups of one structure and
    one size (a key's group grows and shrinks as other keys come and go)."""
    runs: list[list[Source]] = []
    last: Any = None
    for src in sources:
        if (
            type(src) is Row
            and type(last) is Row
            and src.row == last.row
            and (src.signature is last.signature or src.signature == last.signature)
            and np.shape(src[0])[0] == np.shape(last[0])[0]
        ):
            runs[-1].append(src)
        else:
            runs.append([src])
        last = src
    return runs


def _stacked_fields(run: list[Source]) -> dict[str, Any]:
    """Every state field of a run of batches, stacked along a new leading (parts) axis.

    A run of kept batches is moved with one bulk transfer per leaf; anything else is moved
    state by state.
    """
    first = run[0]
    if type(first) is Row and len(run) > 1:
        kept, row = cast(list[Row], run), first.row
        moved = [stack_to_host([s[j] for s in kept])[:, row] for j in range(len(first) - 3)]
        metric = to_metric(first.mode, first.signature, moved)
        return {name: getattr(metric, name) for name, _ in first.signature.fields}
    states = to_host(run)
    return {
        f.name: jax.tree.map(lambda *xs: np.stack(xs), *(getattr(m, f.name) for m in states))
        for f in state_fields(type(states[0]))
    }


def _without_empty_parts(
    cls: type[Metric], fields: dict[str, Any], keep_one: bool
) -> tuple[dict[str, Any], bool, np.ndarray]:
    """Stacked parts without the empty ones (every leaf zero: a reset or zero-filled state
    holds no samples), whether any part is left, and which parts that had samples (all zero)
    were left out. With ``keep_one`` and no part left, the first part with its samples
    removed (a state with no samples)."""
    leaves = sorted(jax.tree.leaves(fields), key=lambda x: x[0].size)  # cheap fields first
    empty = np.ones(len(leaves[0]), bool)
    for leaf in leaves:
        which = np.flatnonzero(empty)
        if not which.size:
            return fields, True, empty
        empty[which] = ~np.any(leaf[which].reshape(which.size, -1), axis=1)
    if not empty.any():
        return fields, True, empty
    concat = sample_fields(cls)
    has_samples = any(np.shape(jax.tree.leaves(fields[name])[0])[1] for name in concat)
    dropped = empty if has_samples else np.zeros_like(empty)
    if not empty.all():
        return jax.tree.map(lambda x: x[~empty], fields), True, dropped
    if not keep_one:
        return fields, False, dropped
    first = {  # the first part, with no samples
        name: jax.tree.map(lambda x, c=name in concat: x[:1, :0] if c else x[:1], value)
        for name, value in fields.items()
    }
    return first, False, dropped


class _Growing:
    """A per-sample field's values in a buffer with room to grow (amortized O(1) appends).

    The folded state hands out views of the buffer's filled prefix; appending writes past it,
    so views handed out earlier never change.
    """

    __slots__ = ("buffer", "filled")

    def __init__(self) -> None:
        self.buffer: np.ndarray | None = None
        self.filled = 0

    def append(self, earlier: np.ndarray | None, new: np.ndarray) -> np.ndarray:
        """``concatenate([earlier, new])``, in place when ``earlier`` is the latest view.

        A first append adopts ``new`` itself (no copy, no spare room), so an evaluation read
        once needs no memory beyond its data; room to grow is made on the second append.
        """
        buffer = self.buffer
        if earlier is None or buffer is None or not _is_prefix(earlier, buffer, self.filled):
            if earlier is not None:
                new = np.concatenate([earlier, new])
            self.buffer, self.filled = new, len(new)
            return read_only_view(new)
        need = self.filled + len(new)
        if len(buffer) < need or buffer.dtype != new.dtype:
            grown = np.empty((max(2 * need, 16), *new.shape[1:]), new.dtype)
            grown[: self.filled] = buffer[: self.filled]
            buffer = self.buffer = grown
        buffer[self.filled : need] = new
        self.filled = need
        return read_only_view(buffer[:need])


def _is_prefix(view: np.ndarray, buffer: np.ndarray, filled: int) -> bool:
    """Whether ``view`` is the buffer's whole filled prefix (the latest state handed out)."""
    return (
        len(view) == filled
        and view.strides == buffer.strides
        and view.__array_interface__["data"][0] == buffer.__array_interface__["data"][0]
    )


class _Parts:
    """The shared, append-only list of one key's batches (and what is folded so far)."""

    __slots__ = ("done", "folded", "growing", "items", "metric", "reported")

    def __init__(self, items: list[Source], metric: str, reported: int = 0):
        self.items, self.done, self.folded = items, 0, cast(Metric | None, None)
        self.growing: dict[tuple[str, int], _Growing] = {}
        self.metric = metric  # "'key' (log mode 'mode')", for warnings
        self.reported = reported  # the first items whose left-out parts were reported

    def fold(self, earlier: Metric | None, start: int, stop: int) -> Metric:
        """``earlier`` (or nothing) with items ``start:stop`` appended, in runs, fields
        vectorized.

        All-zero parts with samples are left out, and reported (:func:`warn_empty_parts`)
        once: items before ``self.reported`` were reported before.
        """
        state, dropped, at = earlier, 0, start
        for run in _runs(self.items[start:stop]):
            cls = type(state) if state is not None else _class_of(run[0])
            fields, any_kept, left_out = _without_empty_parts(
                cls, _stacked_fields(run), state is None
            )
            dropped += int(left_out[max(self.reported - at, 0) :].sum())
            at += len(run)
            if not any_kept and state is not None:
                continue  # only empty (reset or zero-filled) batches: no samples to append
            folded = {}
            for f in state_fields(cls):
                reduction = REDUCTIONS[reduction_of(f)]
                prior = None if state is None else getattr(state, f.name)
                if reduction.name == "concat":  # into a growing buffer: linear in total
                    leaves, tree = jax.tree.flatten(reduction.fold_stacked(None, fields[f.name]))
                    before = [None] * len(leaves) if prior is None else jax.tree.leaves(prior)
                    grown = [
                        self.growing.setdefault((f.name, k), _Growing()).append(e, x)
                        for k, (e, x) in enumerate(zip(before, leaves, strict=True))
                    ]
                    folded[f.name] = jax.tree.unflatten(tree, grown)
                else:
                    folded[f.name] = jax.tree.map(
                        np.asarray, reduction.fold_stacked(prior, fields[f.name])
                    )
            template = state if state is not None else to_host(run[-1:])[0]
            state = cast(Metric, _read_only(replace(template, folded)))
        self.reported = max(self.reported, stop)
        if dropped:
            warn_empty_parts("aggregate_metrics", self.metric, dropped)
        assert state is not None
        return state


def _class_of(src: Source) -> type[Metric]:
    return get_log_mode(src.mode).cls if type(src) is Row else type(src.metric())


class Appended(Source):
    """The first ``n`` parts of a key's per-sample batches, appended (a lazy value)."""

    __slots__ = ("n", "parts")

    def __init__(self, parts: _Parts, n: int):
        self.parts, self.n = parts, n

    @classmethod
    def after(
        cls, earlier: Source | None, batch: Source, key: str = "", mode: Mode = ""
    ) -> Appended:
        """``earlier`` with ``batch`` appended, in O(1) when ``earlier`` is the latest result.

        Raises:
            ValueError: If ``batch``'s samples have another shape than ``earlier``'s (beyond
                their number), naming ``key``.
        """
        if earlier is None:
            return cls(_Parts([batch], f"{key!r} (log mode {mode!r})"), 1)
        if type(earlier) is not Appended:  # a type test: isinstance on an ABC is slow
            _check_appendable(key, earlier.signature, batch.signature)
            return cls(_Parts([_intake(earlier), batch], f"{key!r} (log mode {mode!r})"), 2)
        appended = earlier
        parts = appended.parts
        _check_appendable(key, parts.items[0].signature, batch.signature)
        if len(parts.items) == appended.n:  # the latest result: extend the shared list
            parts.items.append(batch)
            return cls(parts, appended.n + 1)
        reported = min(parts.reported, appended.n)
        branch = _Parts([*parts.items[: appended.n], batch], parts.metric, reported)
        if parts.folded is not None and parts.done == appended.n:  # start where it stopped
            branch.folded, branch.done = parts.folded, parts.done
        return cls(branch, appended.n + 1)

    def metric(self) -> Metric:
        parts = self.parts
        if parts.folded is not None and parts.done == self.n:
            return parts.folded
        # thousands of short-lived objects: no collection passes meanwhile
        with _gc_paused(), _reading(parts.metric):
            if parts.done <= self.n:  # the common case: fold what came since the last time
                state = parts.fold(parts.folded, parts.done, self.n)
            else:  # an older result, after a newer one was folded: on its own (reported)
                older = _Parts(parts.items[: self.n], parts.metric, self.n)
                state = older.fold(None, 0, self.n)
        if self.n >= parts.done:
            parts.folded, parts.done = state, self.n
        return state

    @property
    def signature(self) -> Signature:
        return signature_of(self.metric())


def _check_appendable(key: str, first: Signature, new: Signature) -> None:
    """Per-sample batches of one key may differ in their number of samples only."""
    if first is new or first == new:
        return
    if not differ_in_samples_only(first, new):
        shapes = ", ".join(
            f"{name} {fa.shape} {fa.storage} then {fb.shape} {fb.storage}"
            for (name, fa), (_, fb) in zip(first.fields, new.fields, strict=True)
            if fa != fb
        )
        raise ValueError(
            f"aggregate_metrics: the per-sample batches of metric {key!r} differ beyond their "
            f"number of samples ({shapes}); every batch of a key must have the same sample "
            "shape and dtype (only the leading, sample axis may change)"
        )


class HostCopy(Source):
    """A batch's state moved to the host when first used (a lazy value)."""

    __slots__ = ("_host", "key", "mode", "source")

    def __init__(self, source: Source, key: str = "?", mode: Mode = "?"):
        self.source, self._host = source, cast(Metric | None, None)
        self.key, self.mode = key, mode  # for errors

    def metric(self) -> Metric:
        if self._host is None:
            with _reading(f"{self.key!r} (log mode {self.mode!r})"):
                self._host = to_host([self.source])[0]
        return self._host

    @property
    def signature(self) -> Signature:
        return self.source.signature


@contextlib.contextmanager
def _reading(metric: str) -> Iterator[None]:
    """Moving a metric's kept batches to the host: a batch whose device arrays were deleted
    (donated to a jitted function after it was aggregated) is a ``ValueError`` saying so."""
    try:
        yield
    except (RuntimeError, ValueError) as err:  # JAX's error for a deleted buffer: either
        if "deleted" not in str(err):
            raise
        raise ValueError(
            f"aggregate_metrics: a batch of metric {metric} can no longer be read: its device "
            "arrays were deleted, because the store given to aggregate_metrics was donated "
            "to a jitted function (donate_argnums) before this aggregate was first read. The "
            "aggregate keeps references to each batch's device arrays until then. Read the "
            "aggregate (get_metrics) before donating that store, or aggregate a copy "
            "(jax.tree.map(jnp.copy, store))"
        ) from None


def _intake(src: Source) -> Source:
    """A batch's source, with writable NumPy leaves copied (the caller may write into them)."""
    if type(src) is Whole:
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
    previous = aggregated if type(aggregated) is dict or isinstance(aggregated, Mapping) else {}
    out: dict[str, Any] = {}
    pairs: Iterable[tuple[str, Any]]
    if isinstance(batch, MetricStore):  # the usual case: rows of the batch's groups, directly
        pairs = batch.entries()
    else:
        pairs = ((key, _sources_or_value(key, entry)) for key, entry in batch.items())
    for key, sources in pairs:
        if type(sources) is not dict:
            out[key] = jax.device_get(sources)  # a plain value passes through
            continue
        earlier = previous.get(key)
        earlier_sources = (
            None
            if earlier is None
            else earlier.sources()
            if type(earlier) is KeyMetrics
            else sources_of(key, earlier)
        )
        new: dict[Mode, Source] = {}
        for mode, src in sources.items():
            if _appends(mode):
                prior = earlier_sources.get(mode) if earlier_sources is not None else None
                new[mode] = Appended.after(prior, _intake(src), key, mode)
            else:
                new[mode] = HostCopy(_intake(src), key, mode)
        out[key] = KeyMetrics(new)
    return out


def _sources_or_value(key: str, entry: Any) -> Any:
    sources = sources_of(key, entry)
    return entry if sources is None else dict(sources)


@functools.lru_cache(maxsize=256)
def _appends(mode: Mode) -> bool:
    return per_sample(get_log_mode(mode).cls)
