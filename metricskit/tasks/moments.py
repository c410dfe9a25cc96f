"""Co-moments merged exactly: the state behind R², explained variance and Pearson correlation.

A step gives the count, means and co-moment matrix ``C = sum (x - mean)(x - mean)^T`` of a
few variables over its batch (summed pairwise in double-float around a float32 pivot, the
batch mean, so neither the batch size nor values far from zero cost precision: about 2^-46
relative); the state merges them with Chan's parallel
formula in double-float arithmetic (Chan, Golub and LeVeque, "Algorithms for computing the
sample variance", 1983):

    n = n_a + n_b,  d = mean_b - mean_a,  mean = mean_a + d n_b / n,
    C = C_a + C_b + d d^T n_a n_b / n.

The same merge combines devices, processes and evaluation batches, so the result is the one
of all the samples at once, whichever way they were split. The reported number is finished on
the host in float64 (:class:`~metricskit.exact.Finish`).

The same double-float within-batch sums (:func:`pair_total`) back the summing modes of
:class:`PairSums` (:func:`pair_sum_mode`): sums of squared errors, NDCG values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from metricskit import exact
from metricskit.fields import FieldSpec, Spec, state
from metricskit.metric import Metric
from metricskit.registry import register_metric, registered_modes
from metricskit.tasks.modes import SumsMetric, Unpacked

__all__ = [
    "CoMoments",
    "PairSums",
    "as_pairs",
    "batch_moments",
    "comoment_mode",
    "pair_sum_mode",
    "pair_total",
]


def as_pairs(x: Any) -> exact.Pair:
    """Numbers as float32 double-floats, exactly where the input allows.

    Integers (int32 and narrower; wider ones within 48 bits) and booleans are exact, float32
    and narrower floats are exact, float64 (with ``jax_enable_x64``) is split into two
    float32s (48 of its 53 bits).

    Args:
        x: An array (or :class:`~metricskit.exact.Pair`) of any shape.

    Returns:
        A Pair of float32 arrays of ``x``'s shape.
    """
    if isinstance(x, exact.Pair):
        return exact.as_pair(x, jnp.float32)
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.floating) and x.dtype.itemsize > 4:
        hi = x.astype(jnp.float32)
        return exact.Pair(hi, (x - hi.astype(x.dtype)).astype(jnp.float32))
    if jnp.issubdtype(x.dtype, jnp.floating):
        return exact.as_pair(x.astype(jnp.float32), jnp.float32)
    return exact.as_pair(x, jnp.float32)


def pair_total(x: exact.Pair) -> exact.Pair:
    """The sum over the leading axis of a double-float array, pairwise in double-float.

    ``log2(N)`` levels: each adds the leading parts of two halves with TwoSum (Knuth) and
    carries the rounding error, with the trailing parts, in a plain float sum (Ogita, Rump and
    Oishi's cascaded summation, pairwise). The relative error of a sum of ``N`` numbers of
    one sign is about ``2^-46 + log2(N) * 2^-48`` (float32 sums: ``N * 2^-24`` in the worst
    case), at a few times the cost of ``jnp.sum``. Runs eagerly and under ``jit``.

    Args:
        x: A :class:`~metricskit.exact.Pair` of shape ``(N, ...)``.

    Returns:
        The Pair of shape ``(...)``.
    """
    n = x.hi.shape[0]
    if n == 0:
        zero = jnp.zeros(x.hi.shape[1:], x.hi.dtype)
        return exact.Pair(zero, zero)
    size = 1 << (n - 1).bit_length()
    hi, lo = x.hi, x.lo
    if size != n:  # pad with zeros to a power of two
        pad = [(0, size - n)] + [(0, 0)] * (hi.ndim - 1)
        hi, lo = jnp.pad(hi, pad), jnp.pad(lo, pad)
    while size > 1:
        size //= 2
        a, b = hi[:size], hi[size:]
        s = a + b
        bb = s - a
        error = (a - (s - bb)) + (b - bb)  # TwoSum: a + b = s + error exactly
        hi, lo = s, (lo[:size] + lo[size:]) + error
    total, rest = hi[0], jnp.where(jnp.isfinite(hi[0]), lo[0], 0.0)
    return exact.add_float(exact.Pair(rest, jnp.zeros_like(rest)), total)


def packed_pair(p: exact.Pair, dtype: Any = jnp.float32) -> jax.Array:
    """A Pair as one array ``[..., (hi, lo)]`` of ``dtype`` (the parts re-split if wider)."""
    hi = p.hi.astype(dtype)
    lo = ((p.hi - hi.astype(p.hi.dtype)) + p.lo).astype(dtype)
    return jnp.stack([hi, lo], axis=-1)


def _where(cond: Any, p: exact.Pair) -> exact.Pair:
    """``p`` where ``cond``, else zero."""
    return exact.Pair(jnp.where(cond, p.hi, 0.0), jnp.where(cond, p.lo, 0.0))


def batch_moments(variables: Any, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A batch's count and its ``[means, co-moments]`` packed in one vector.

    The batch's sums are taken in double-float arithmetic around a pivot (the batch mean in
    float32): ``S1 = sum (x - pivot)`` and ``S2 = sum (x - pivot)(x - pivot)^T``
    summed pairwise (:func:`pair_total`), then ``mean = pivot + S1 / n`` and ``C = S2 - S1
    S1^T / n``. So a batch's moments are as exact as the merge of batches (about 2^-46
    relative), however many samples it holds and however far from zero they are.

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
    which = jnp.asarray(weights).astype(bool)[:, None]
    count = jnp.sum(which, dtype=jnp.int32)
    n = exact.as_pair(jnp.maximum(count, 1), jnp.float32)
    x = _where(which, x)
    # the pivot: the batch mean to float32 accuracy (a plain sum: it need not be exact)
    pivot = jnp.sum(x.hi, axis=0) / jnp.maximum(count, 1).astype(jnp.float32)
    shape = jnp.shape(x.hi)
    r = _where(which, exact.sub(x, exact.Pair(jnp.broadcast_to(pivot, shape), jnp.zeros(shape))))
    s1 = pair_total(r)  # (d,)
    s2 = pair_total(
        exact.mul(
            exact.Pair(r.hi[:, :, None], r.lo[:, :, None]), exact.Pair(r.hi[:, None], r.lo[:, None])
        )
    )  # (d, d)
    shift = exact.div(s1, _bcast(n, s1))
    mean = exact.add(exact.Pair(pivot, jnp.zeros_like(pivot)), shift)
    outer = exact.mul(_col(s1), _row(shift))
    comoments = exact.sub(s2, outer)
    packed = jnp.concatenate([mean.hi, mean.lo, comoments.hi.reshape(-1), comoments.lo.reshape(-1)])
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
    p = exact.as_pair(packed)
    d = _dims(p.hi.shape[-1])

    def part(start: int, stop: int) -> exact.Pair:
        return exact.Pair(p.hi[start:stop], p.lo[start:stop])

    mean = exact.add(part(0, d), part(d, 2 * d))
    c = exact.add(part(2 * d, 2 * d + d * d), part(2 * d + d * d, 2 * d + 2 * d * d))
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

    ``finish(count, means, comoments)`` (float64 NumPy: a 0-d count, ``(d,)`` means and
    ``(d, d)`` co-moments) gives the reported value.
    """

    exact_inputs: ClassVar[bool] = True
    finish: ClassVar[Callable[[np.ndarray, np.ndarray, np.ndarray], Any]]
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
        return exact.Finish(Unpacked(type(self).finish), (self.count, self.mean, self.comoments))


def _bcast(p: exact.Pair, like: exact.Pair) -> exact.Pair:
    shape = jnp.shape(like.hi)
    return exact.Pair(jnp.broadcast_to(p.hi, shape), jnp.broadcast_to(p.lo, shape))


def _col(p: exact.Pair) -> exact.Pair:
    return exact.Pair(p.hi[:, None], p.lo[:, None])


def _row(p: exact.Pair) -> exact.Pair:
    return exact.Pair(p.hi[None, :], p.lo[None, :])


def comoment_mode(name: str, finish: Callable[[np.ndarray, np.ndarray, np.ndarray], Any]) -> str:
    """The registered mode ``name`` over :class:`CoMoments` reporting ``finish`` (made once)."""
    if name not in registered_modes():
        cls = type(
            f"CoMoments_{name}",
            (CoMoments,),
            {"finish": staticmethod(finish), "__module__": __name__},
        )
        register_metric(name, postfix="")(cls)
    return name


def merge_pair_sums(values: jax.Array, counts: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Several devices' ``[..., (hi, lo)]`` sums (a leading axis) added in double-float."""
    total = pair_total(exact.Pair(values[..., 0], values[..., 1]))
    return packed_pair(total, values.dtype), jnp.sum(counts, axis=0, dtype=counts.dtype)


class PairSums(SumsMetric):
    """Exact sums of a step's double-float statistics ``[..., (hi, lo)]`` (from
    :func:`packed_pair`), finished on the host by ``finish(sums, count)`` with ``sums`` the
    float64 totals ``[..., (hi, lo)]`` (add the two). Devices of one step
    (``update(..., axis_name=...)``) are added in double-float, not by a float32 ``psum``."""

    step_merge: ClassVar[Any] = staticmethod(merge_pair_sums)


def pair_sum_mode(name: str, finish: Callable[[np.ndarray, np.ndarray], Any]) -> str:
    """The registered mode ``name`` over :class:`PairSums` reporting ``finish`` (made once)."""
    if name not in registered_modes():
        cls = type(
            f"PairSums_{name}",
            (PairSums,),
            {"finish": staticmethod(finish), "__module__": __name__},
        )
        register_metric(name, postfix="")(cls)
    return name
