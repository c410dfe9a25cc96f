"""How partial values of a state field combine: one table, one row per reduction.

Every array field of a :class:`~metricskit.Metric` names a reduction when it is declared with
:func:`metricskit.state`. A row of :data:`REDUCTIONS` says, once, everything the engine needs
to know about it:

- ``combine(xp, a, b, axis)``: two partial values (``xp`` is ``jax.numpy`` or ``numpy``;
  ``axis`` is the sample axis for ``"concat"``). Exact accumulators
  (:class:`~metricskit.exact.Pair`, :class:`~metricskit.exact.Words`) combine exactly.
- ``collective(x, axis_name, axis)``: the same across the devices of a mesh axis, inside
  ``shard_map``/``pmap``, or ``None`` when the engine must gather the parts and fold them
  with ``combine`` (exact accumulators, ``"last"``, ``"merge"``).
- ``fold(xp, parts, axis)``: many parts at once, in order, bit-identical to combining them
  one by one; ``fold_stacked(first, stacked)`` does the same on the host for parts stacked
  along a new leading axis (evaluation batches appended in bulk), after ``first`` if given.

Adding a reduction is adding one row.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal

import attrs
import jax
import numpy as np

from metricskit import exact
from metricskit.compat import AxisName, all_gather, pmax, pmin, psum

__all__ = ["REDUCTIONS", "Reduction", "ReductionName"]

ReductionName = Literal["sum", "max", "min", "concat", "last", "merge"]


@attrs.frozen
class Reduction:
    """One way two partial values of a state field combine.

    Attributes:
        name: The name fields use in :func:`metricskit.state`.
        combine: ``combine(xp, a, b, axis)``; ``None`` for ``"merge"`` (only the metric's own
            ``aggregate`` knows how).
        collective: ``collective(x, axis_name, axis)`` inside a map, or ``None``.
        fold: ``fold(xp, parts, axis)`` for many parts, or ``None`` to fold with ``combine``.
    """

    name: str
    combine: Callable[[Any, Any, Any, int], Any] | None
    collective: Callable[[Any, AxisName, int], Any] | None = None
    fold: Callable[[Any, Sequence[Any], int], Any] | None = None
    stacked: Callable[[Any, Any], Any] | None = None

    def fold_all(self, xp: Any, parts: Sequence[Any], axis: int) -> Any:
        """Combine ``parts`` in order (with :attr:`fold` when there is one).

        Raises:
            NotImplementedError: For ``"merge"``.
        """
        if self.fold is not None:
            return self.fold(xp, parts, axis)
        if self.combine is None:
            raise NotImplementedError(f"reduction {self.name!r} has no field-wise combine")
        combine = self.combine
        return functools.reduce(lambda a, b: combine(xp, a, b, axis), parts)

    def fold_stacked(self, first: Any, stacked: Any) -> Any:
        """``first`` (or nothing) combined in order with each part of ``stacked`` (NumPy
        arrays, Pairs or Words with a leading parts axis; the sample axis is axis 1).

        Raises:
            NotImplementedError: For ``"merge"``.
        """
        if self.stacked is not None:
            return self.stacked(first, stacked)
        n = jax.tree.leaves(stacked)[0].shape[0]
        parts = [jax.tree.map(lambda x, i=i: x[i], stacked) for i in range(n)]
        return self.fold_all(np, parts if first is None else [first, *parts], 0)


def _plain(x: Any) -> bool:
    return not isinstance(x, exact.Pair | exact.Words)


def _sum_collective(x: Any, axis_name: AxisName, axis: int) -> Any:
    return psum(x, axis_name) if _plain(x) else None


def _sum_fold(xp: Any, parts: Sequence[Any], axis: int) -> Any:
    first = parts[0]
    if isinstance(first, exact.Words) or (
        _plain(first) and np.dtype(first.dtype).kind in "biu"
    ):  # integer adds are associative: one reduction, then one carry
        if isinstance(first, exact.Words):
            if xp is not np:  # no int64 on the device with x64 off: carry part by part
                return functools.reduce(lambda a, b: exact.combine(a, b, xp), parts)
            return _words_of_stack(
                None, exact.Words(np.stack([p.lo for p in parts]), np.stack([p.hi for p in parts]))
            )
        return xp.sum(xp.stack(parts), axis=0, dtype=first.dtype)
    return functools.reduce(lambda a, b: exact.combine(a, b, xp), parts)


def _sum_stacked(first: Any, stacked: Any) -> Any:
    if isinstance(stacked, exact.Words):  # exact and associative: one vectorized sum
        return _words_of_stack(first, stacked)
    if isinstance(stacked, exact.Pair) or np.dtype(stacked.dtype).kind == "f":
        n = jax.tree.leaves(stacked)[0].shape[0]
        parts = [jax.tree.map(lambda x, i=i: x[i], stacked) for i in range(n)]
        return _sum_fold(np, parts if first is None else [first, *parts], 0)  # in order
    total = np.sum(stacked, axis=0, dtype=stacked.dtype)  # integers wrap alike in any order
    return total if first is None else first + total


def _words_of_stack(first: exact.Words | None, stacked: exact.Words) -> exact.Words:
    """``first`` (or nothing) plus every part of host Words stacked on axis 0, in int64."""
    lo = np.sum(stacked.lo.astype(np.int64), axis=0)
    hi = np.sum(stacked.hi.astype(np.int64), axis=0)
    marked = np.any(stacked.lo < 0, axis=0)
    if first is not None:
        lo, hi = lo + first.lo, hi + first.hi
        marked = marked | (np.asarray(first.lo) < 0)
    return exact.words_from_sums(lo, hi, marked, stacked.lo.dtype)


def _concat_stacked(first: Any, stacked: Any) -> Any:
    def merge(x: Any, y: Any = None) -> Any:
        flat = x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])
        return flat if y is None else np.concatenate([y, flat])

    if first is None:
        return jax.tree.map(merge, stacked)
    return jax.tree.map(merge, stacked, first)


def _extreme(larger: bool) -> Callable[[Any, Any, Any, int], Any]:
    return lambda xp, a, b, axis: exact.extreme(a, b, larger, xp)


def _extreme_collective(larger: bool) -> Callable[[Any, AxisName, int], Any]:
    def collective(x: Any, axis_name: AxisName, axis: int) -> Any:
        if not _plain(x):
            return None
        return pmax(x, axis_name) if larger else pmin(x, axis_name)

    return collective


def _concat(xp: Any, a: Any, b: Any, axis: int) -> Any:
    return jax.tree.map(lambda x, y: xp.concatenate([x, y], axis=axis), a, b)


def _concat_fold(xp: Any, parts: Sequence[Any], axis: int) -> Any:
    return jax.tree.map(lambda *xs: xp.concatenate(xs, axis=axis), *parts)


def _gather(x: Any, axis_name: AxisName, axis: int) -> Any:
    return jax.tree.map(lambda y: all_gather(y, axis_name, axis=axis, tiled=True), x)


REDUCTIONS: Final[dict[str, Reduction]] = {
    r.name: r
    for r in (
        Reduction(
            "sum",
            lambda xp, a, b, axis: exact.combine(a, b, xp),
            _sum_collective,
            _sum_fold,
            _sum_stacked,
        ),
        Reduction("max", _extreme(True), _extreme_collective(True)),
        Reduction("min", _extreme(False), _extreme_collective(False)),
        Reduction("concat", _concat, _gather, _concat_fold, _concat_stacked),
        Reduction(
            "last",
            lambda xp, a, b, axis: b,
            None,
            lambda xp, parts, axis: parts[-1],
            lambda first, stacked: jax.tree.map(lambda x: x[-1], stacked),
        ),
        Reduction("merge", None),
    )
}
"""Every reduction a state field can name."""
