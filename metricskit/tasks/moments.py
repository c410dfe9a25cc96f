"""Co-moments merged exactly: the state behind R², explained variance and Pearson correlation.

A step gives the count, means and co-moment matrix ``C = sum (x - mean)(x - mean)^T`` of a few
variables over its batch (:func:`batch_moments`: the batch's exact means, then the co-moments
about them, each sum nearly exact, so neither the batch size nor values far from zero cost
precision); the state merges them with Chan's parallel formula in double-float arithmetic
(Chan, Golub and LeVeque, "Algorithms for computing the sample variance", 1983):

    n = n_a + n_b,  d = mean_b - mean_a,  mean = mean_a + d n_b / n,
    C = C_a + C_b + d d^T n_a n_b / n.

The same merge combines devices, processes and evaluation batches, so the result is the one
of all the samples at once, whichever way they were split. The reported number is finished on
the host in float64 (:class:`~metricskit.exact.Finish`).

The same nearly exact within-batch sums (:func:`~metricskit.tasks.batchsums.pair_total`:
integer digits on a grid set by the largest term) back the subclasses of :class:`PairSums`:
sums of squared errors, NDCG values, token log-likelihoods.
"""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from metricskit import exact
from metricskit.metric import FieldSpec, Metric, Spec, state
from metricskit.tasks.batchsums import (
    FINEST,
    as_pairs,
    dd_mul,
    dd_sub,
    div_count,
    exponent,
    grid_total,
    packed_pair,
    pair_total,
)
from metricskit.tasks.modes import HostFinish, SumsMetric

__all__ = [
    "CoMoments",
    "PairSums",
    "batch_moments",
]


def batch_moments(variables: Any, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A batch's count and its ``[means, co-moments]`` packed in one vector.

    Three passes over the samples: their extremes; their sums (nearly exact, as
    :func:`~metricskit.tasks.batchsums.pair_total`), so the means as double-floats; the
    ``d (d + 1) / 2`` distinct co-moments ``C = sum (x - mean)(x - mean)^T``, each term in
    double-float (relative error about ``2^-47``), summed nearly exactly on a grid set by
    the extremes' distances from the mean. So a co-moment errs by about ``2^-43`` of the
    largest squared (or product of) deviations from the mean, plus ``2^-46`` of
    ``sqrt(C_ii C_jj)``; a mean by about ``2^-43 max|x| / n + 2^-47 |mean|``: for any batch
    size up to ``2^28`` and values however far from zero.

    Args:
        variables: ``(N, d)`` samples: an array (integers are exact, floats converted to
            float32) or a float32 :class:`~metricskit.exact.Pair`.
        weights: ``(N,)`` booleans: which samples count.

    Returns:
        ``(packed, n)``: ``packed`` is ``(2 d + 2 d * d,)`` float32 (the means' ``hi``, their
        ``lo``, then the row-major co-moment matrix's ``hi`` and ``lo``), ``n`` the int32
        count.
    """
    x = as_pairs(variables)
    which = jnp.asarray(weights).astype(bool)
    hi, lo = jnp.where(which, x.hi.T, 0.0), jnp.where(which, x.lo.T, 0.0)  # (d, N)
    d, size = hi.shape
    if size == 0:
        return jnp.zeros(2 * d + 2 * d * d, jnp.float32), jnp.int32(0)
    # pass 1: the extremes (of the counted samples) and the grid of the sums
    finite = jnp.where(jnp.isfinite(hi), hi, 0.0)
    big = jnp.where(which, finite, -jnp.inf)
    small = jnp.where(which, -finite, -jnp.inf)
    largest, smallest = jnp.max(jnp.stack([big, small]), axis=-1)  # max and -min
    smallest = -smallest
    e = exponent(jnp.maximum(jnp.abs(largest), jnp.abs(smallest)))
    # pass 2: the sums and the count, so the means
    total, (count,) = grid_total(exact.Pair(hi, lo), e, jnp.broadcast_to(which, hi.shape))
    count = count[0]
    n = jnp.maximum(count, 1)
    mean = div_count(total, n)
    # pass 3: the co-moments about the mean, on the grid of the largest deviations
    m = mean.hi
    reach = jnp.maximum(largest - m, m - smallest)
    reach = reach * (1 + 2.0**-20) + jnp.maximum(jnp.abs(largest), jnp.abs(smallest)) * 2.0**-22
    er = exponent(jnp.where(count > 0, reach, 0.0))
    r = dd_sub(exact.Pair(hi, lo), exact.Pair(mean.hi[:, None], mean.lo[:, None]))
    r = exact.Pair(jnp.where(which, r.hi, 0.0), jnp.where(which, r.lo, 0.0))
    # the products of every pair of deviations, (d, d, N), by broadcasting (cheaper to compile
    # than picking the d (d + 1) / 2 distinct ones)
    shape = (d, d, size)
    left = _bcast(exact.Pair(r.hi[:, None], r.lo[:, None]), shape)
    right = _bcast(exact.Pair(r.hi[None], r.lo[None]), shape)
    grid = jnp.clip(er[:, None] + er[None, :], FINEST[4], 128)
    c, _ = grid_total(dd_mul(left, right), grid)
    packed = jnp.concatenate([mean.hi, mean.lo, c.hi.reshape(-1), c.lo.reshape(-1)])
    return packed.astype(jnp.float32), count


Moments = tuple[exact.Pair, exact.Pair, exact.Pair]  # count (), means (d,), co-moments (d, d)


def chan_merge(a: Moments, b: Moments) -> Moments:
    """The moments of the union of two sets of samples (Chan, Golub and LeVeque), in
    double-float arithmetic."""
    n_a, mean_a, c_a = a
    n_b, mean_b, c_b = b
    n = exact.add(n_a, n_b)
    safe = exact.where(n.hi > 0, n, exact.as_pair(jnp.ones_like(n.hi)))
    weight = exact.div(n_b, safe)  # n_b / n
    delta = exact.sub(mean_b, mean_a)
    mean = exact.add(mean_a, exact.mul(delta, _bcast(weight, delta)))
    outer = exact.mul(_col(delta), _row(delta))
    spread = exact.mul(outer, _bcast(exact.mul(n_a, weight), outer))
    return n, mean, exact.add(exact.add(c_a, c_b), spread)


def _unpack(packed: Any, count: Any) -> Moments:
    """A step's packed ``(value, count)`` as double-float moments."""
    d = _dims(np.shape(packed.hi if isinstance(packed, exact.Pair) else packed)[-1])
    if isinstance(packed, exact.Pair):  # each entry itself a double-float: add the parts
        p = packed

        def part(start: int, stop: int) -> exact.Pair:
            return exact.Pair(p.hi[start:stop], p.lo[start:stop])

        mean = exact.add(part(0, d), part(d, 2 * d))
        c = exact.add(part(2 * d, 2 * d + d * d), part(2 * d + d * d, 2 * d + 2 * d * d))
    else:  # the parts of a packed batch are normalized double-floats already
        v = jnp.asarray(packed)
        mean = exact.Pair(v[:d], v[d : 2 * d])
        c = exact.Pair(v[2 * d : 2 * d + d * d], v[2 * d + d * d :])
    return exact.as_pair(count), mean, exact.Pair(c.hi.reshape(d, d), c.lo.reshape(d, d))


def merge_batches(packed: jax.Array, counts: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Several batches' ``(packed, n)`` (a leading axis) merged into one packed batch (the
    devices of one step, for ``update(..., axis_name=...)``), in double-float arithmetic:
    the merged batch carries the means and co-moments as ``hi`` and ``lo`` parts, so the
    devices' merge is as exact as one device's batch.

    The batches are merged pairwise (a tree of ``log2(D)`` vectorized merges), so the
    compiled merge stays small for many devices."""
    moments = jax.vmap(_unpack)(packed, counts)
    while jax.tree.leaves(moments)[0].shape[0] > 1:
        size = jax.tree.leaves(moments)[0].shape[0]
        half = size // 2
        first = jax.tree.map(lambda x, h=half: x[:h], moments)
        second = jax.tree.map(lambda x, h=half: x[h : 2 * h], moments)
        merged = jax.vmap(chan_merge)(first, second)
        if size % 2:
            last = jax.tree.map(lambda x: x[-1:], moments)
            merged = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), merged, last)
        moments = merged
    _, mean, comoments = jax.tree.map(lambda x: x[0], moments)
    m, c = packed_pair(mean, packed.dtype), packed_pair(comoments, packed.dtype)
    flat = (m[..., 0], m[..., 1], c[..., 0].reshape(-1), c[..., 1].reshape(-1))
    return jnp.concatenate(flat), jnp.sum(counts).astype(jnp.int32)


def _dims(length: int) -> int:
    """``d`` from the packed length ``2 d + 2 d * d``."""
    return (math.isqrt(1 + 2 * length) - 1) // 2


class CoMoments(Metric):
    """Count, means and co-moments of a few variables, merged with Chan's formula.

    A subclass implements :meth:`finish`, the reported value of the totals.
    """

    exact_inputs: ClassVar[bool] = True
    postfix: ClassVar[str | None] = ""
    step_merge: ClassVar[Any] = staticmethod(lambda values, counts: merge_batches(values, counts))

    count = state("merge", shape="scalar", exact=True)  # a double-float: exact below 2^48
    mean = state("merge", exact=True)
    comoments = state("merge", exact=True)

    @classmethod
    def field_specs(cls, value: Spec, count: Spec) -> dict[str, FieldSpec]:
        d = _dims(value.shape[-1]) if value.shape else 0
        if value.shape != (2 * d + 2 * d * d,) or d < 1:
            raise ValueError(
                "this mode takes the packed co-moments of one batch (a (2d + 2d*d,) vector), "
                f"but the value has shape {value.shape}; make the step item with "
                "metricskit.tasks.r2, explained_variance or pearson (or batch_moments)"
            )
        return {
            "count": FieldSpec((), "pair"),
            "mean": FieldSpec((d,), "pair"),
            "comoments": FieldSpec((d, d), "pair"),
        }

    def update(self, value: Any, count: Any) -> CoMoments:
        n, mean, comoments = chan_merge(self._moments(), _unpack(value, count))
        return self.replace(count=n, mean=mean, comoments=comoments)

    def aggregate(self, other: CoMoments) -> CoMoments:
        n, mean, comoments = chan_merge(self._moments(), other._moments())
        return self.replace(count=n, mean=mean, comoments=comoments)

    def _moments(self) -> Moments:
        return self.count, self.mean, self.comoments

    def compute(self) -> exact.Finish:
        return exact.Finish(HostFinish.of(self), (self.count, self.mean, self.comoments))

    @abc.abstractmethod
    def finish(self, count: np.ndarray, mean: np.ndarray, comoments: np.ndarray) -> Any:
        """The reported value from float64 NumPy totals: a 0-d count, ``(d,)`` means and
        ``(d, d)`` co-moments."""


def _bcast(p: exact.Pair, like: Any) -> exact.Pair:
    shape = like if isinstance(like, tuple) else np.shape(like.hi)
    return exact.Pair(jnp.broadcast_to(p.hi, shape), jnp.broadcast_to(p.lo, shape))


def _col(p: exact.Pair) -> exact.Pair:
    return exact.Pair(p.hi[:, None], p.lo[:, None])


def _row(p: exact.Pair) -> exact.Pair:
    return exact.Pair(p.hi[None, :], p.lo[None, :])


def merge_pair_sums(values: jax.Array, counts: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Several devices' ``[..., (hi, lo)]`` sums (a leading axis) added in double-float."""
    total = pair_total(exact.Pair(values[..., 0], values[..., 1]))
    return packed_pair(total, values.dtype), jnp.sum(counts, axis=0, dtype=counts.dtype)


class PairSums(SumsMetric):
    """Exact sums of a step's double-float statistics ``[..., (hi, lo)]`` (from
    :func:`~metricskit.tasks.batchsums.packed_pair`), finished on the host by
    :meth:`finish` with ``sums`` the float64 totals ``[..., (hi, lo)]`` (add the two).
    Devices of one step (``update(..., axis_name=...)``) are added in double-float, not by a
    float32 ``psum``."""

    step_merge: ClassVar[Any] = staticmethod(merge_pair_sums)
