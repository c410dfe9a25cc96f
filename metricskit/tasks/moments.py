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

The same nearly exact within-batch sums (:func:`pair_total`: integer digits on a grid set by
the largest term) back the summing modes of :class:`PairSums` (:func:`pair_sum_mode`): sums
of squared errors, NDCG values, token log-likelihoods.
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

_INT = {4: jnp.int32, 8: jnp.int64}  # the integers of a float's width
_EMIN = {4: -100, 8: -900}  # the finest grid exponent: keeps 2^(b - E) normal


def as_pairs(x: Any) -> exact.Pair:
    """Numbers as float32 double-floats, exactly where the input allows.

    Integers (int32 and narrower; wider ones within 48 bits) and booleans are exact, float32
    and narrower floats are exact, float64 (with ``jax_enable_x64``) is split into two
    float32s (48 of its 53 bits). A float input passes through
    :func:`~metricskit.doublefloat.rounded`, so that the error-free transformations applied
    to it cannot be contracted with the expression that computed it.

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
        lo = jnp.where(jnp.isfinite(hi), x - hi.astype(x.dtype), 0.0).astype(jnp.float32)
        return exact.Pair(hi, lo)
    if jnp.issubdtype(x.dtype, jnp.floating):
        hi = exact.rounded(x.astype(jnp.float32))
        return exact.Pair(hi, jnp.zeros_like(hi))
    if x.dtype == jnp.bool_ or (
        jnp.issubdtype(x.dtype, jnp.signedinteger) and x.dtype.itemsize <= 4
    ):
        x = x.astype(jnp.int32)  # the top 16 bits and the low 15, each exact in float32
        high, low = ((x >> 15) << 15).astype(jnp.float32), (x & 0x7FFF).astype(jnp.float32)
        return exact.Pair(*_fast_two_sum(high, low))
    return exact.as_pair(x, jnp.float32)


# -- double-float arithmetic of finite numbers, lean --------------------------------------------
# The batch statistics below use these instead of :mod:`metricskit.doublefloat`'s, which carry
# infinities and guard every operand with ``rounded``: here a non-finite input only has to make
# the batch's sums non-finite (which :func:`pair_total` does), and only products (rounded
# where they are formed) could be contracted. A third of the operations: faster to compile.


def _two_sum(a: Any, b: Any) -> tuple[Any, Any]:
    """TwoSum (Knuth): ``a + b = s + e`` exactly, for finite ``a`` and ``b``."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _fast_two_sum(a: Any, b: Any) -> tuple[Any, Any]:
    """Fast2Sum (Dekker): ``a + b = s + e`` exactly where ``|a| >= |b|`` (or ``a`` is 0)."""
    s = a + b
    return s, b - (s - a)


def _add(a: exact.Pair, b: exact.Pair) -> exact.Pair:
    """``a + b``, accurate double-float addition (Joldes, Muller and Popescu's
    AccurateDWPlusDW: relative error below ``3 * 2^-48``, whatever the cancellation)."""
    s, e = _two_sum(a.hi, b.hi)
    t, f = _two_sum(a.lo, b.lo)
    s, e = _fast_two_sum(s, e + t)
    hi, lo = _fast_two_sum(s, e + f)
    # IEEE for non-finite sums: the leading sum alone (its error terms are inf - inf)
    finite = jnp.isfinite(hi)
    return exact.Pair(jnp.where(finite, hi, a.hi + b.hi), jnp.where(finite, lo, 0.0))


def _sub(a: exact.Pair, b: exact.Pair) -> exact.Pair:
    return _add(a, exact.Pair(-b.hi, -b.lo))


def _mul(a: exact.Pair, b: exact.Pair) -> exact.Pair:
    """``a * b`` in double-float (relative error about ``2^-47``); the product of the leading
    parts is rounded once (:func:`~metricskit.doublefloat.rounded`), so no contraction sees
    it unrounded."""
    p = exact.rounded(a.hi * b.hi)
    ah, al = _split(a.hi)
    bh, bl = _split(b.hi)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl  # a.hi * b.hi = p + e exactly
    e = jnp.where(jnp.isfinite(p), e + (a.hi * b.lo + a.lo * b.hi), 0.0)  # inf stays inf
    return exact.Pair(*_fast_two_sum(p, e))


def _split(a: Any) -> tuple[Any, Any]:
    """Veltkamp's split without the multiplication: 12 leading bits and the rest."""
    info: Any = jnp.finfo(a.dtype)  # type: ignore[no-untyped-call,unused-ignore]
    hi = jax.lax.reduce_precision(a, exponent_bits=info.nexp, mantissa_bits=info.nmant // 2)
    return hi, a - hi


def _div_count(a: exact.Pair, n: jax.Array) -> exact.Pair:
    """``a / n`` in double-float for a positive integer count ``n`` (int32)."""
    n_hi = n.astype(jnp.float32)
    n_lo = (n - n_hi.astype(jnp.int32)).astype(jnp.float32)  # nonzero only past 2^24
    q = a.hi / n_hi
    p, e = _mul_exact(q, n_hi)
    r = (((a.hi - p) - e) - q * n_lo) + a.lo  # a - q n, nearly exactly
    return exact.Pair(*_fast_two_sum(q, r / n_hi))


def _mul_exact(a: Any, b: Any) -> tuple[Any, Any]:
    """TwoProduct: ``a * b = p + e`` exactly (``p`` rounded once)."""
    p = exact.rounded(a * b)
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _params(n: int, dtype: Any) -> tuple[int, int]:
    """``(b, digits)`` for sums of ``n`` terms of ``dtype``: ``digits`` integer digits of ``b``
    bits per term, so that ``n`` digits (each below ``1.25 * 2^b``) add up exactly in the
    integer type of ``dtype``'s width (``n <= 2^h``, ``h + b <= 30`` for int32), and
    ``digits * b >= h + p + 21`` (``p`` the significand's bits, 24): what is dropped below the
    last digit, less than ``1.25 n`` units of it, is below ``2^-44`` of the grid's top."""
    info: Any = jnp.finfo(dtype)  # type: ignore[no-untyped-call,unused-ignore]
    p = int(info.nmant) + 1  # 24 for float32
    h = (n - 1).bit_length()  # n <= 2^h
    b = min(p - 2, 8 * jnp.dtype(dtype).itemsize - 2 - h)  # n * 1.25 * 2^b < 2^31 (int32)
    if b < 2:
        raise ValueError(f"pair_total: {n} terms are too many to sum exactly at once")
    return b, -(-(h + p + 21) // b)


def _pow2(k: Any, dtype: Any) -> jax.Array:
    """``2.0**k`` for integers ``k`` in the normal range of ``dtype`` (by its bits)."""
    info: Any = jnp.finfo(dtype)  # type: ignore[no-untyped-call,unused-ignore]
    itype = _INT[jnp.dtype(dtype).itemsize]
    bits = (jnp.asarray(k, itype) + (info.maxexp - 1)) << int(info.nmant)
    return jax.lax.bitcast_convert_type(bits, dtype)


def _exponent(m: jax.Array) -> jax.Array:
    """The least ``E`` with ``m < 2^E`` for ``m >= 0``, clipped to ``[EMIN, maxexp]`` so that
    ``2^(b - E)`` is a normal number (``b`` in ``[2, p - 2]``)."""
    info: Any = jnp.finfo(m.dtype)  # type: ignore[no-untyped-call,unused-ignore]
    itype = _INT[m.dtype.itemsize]
    biased = (jax.lax.bitcast_convert_type(m, itype) >> int(info.nmant)) & (2 * info.maxexp - 1)
    return jnp.clip(biased - (info.maxexp - 2), _EMIN[m.dtype.itemsize], info.maxexp)


def pair_total(x: exact.Pair) -> exact.Pair:
    """The sum over the leading axis of a double-float array, nearly exact, in two passes
    over the terms (a maximum, then integer sums).

    Each column is cut on a grid set by its largest term, ``max|x| < 2^E`` (an error-free
    extraction as in Rump, Ogita and Oishi's "Accurate floating-point summation", 2008, with
    integer digits): every term, scaled by ``2^(b - E)``, is cut into integer digits of ``b``
    bits (truncated, the rest carried exactly with TwoSum), and each digit is summed over the
    ``N`` terms exactly in int32. ``b`` and the number of digits depend on ``N`` only
    (``N = 1024``: three digits of 20 bits; ``N = 2^16``: five of 14; ``N = 2^20``: seven of
    10). What is dropped below the last digit is less than ``2^-44 * 2^E`` in all, and the
    digits' sums are added in double-float: the error is at most about ``2^-43 max|x| +
    2^-47 |sum|``, for ``N`` up to ``2^28`` (float32 parts; a column whose largest term is
    below 2^-100 is cut on the grid of 2^-100, and subnormal terms are flushed where the
    device flushes them). Non-finite terms give the IEEE sum of the non-finite terms
    (``inf``, ``-inf`` or NaN, with ``lo`` zero). Runs eagerly and under ``jit``.

    Args:
        x: A :class:`~metricskit.exact.Pair` of shape ``(N, ...)``, ``|lo| <= ulp(hi)``.

    Returns:
        The Pair of shape ``(...)``.
    """
    hi = jnp.asarray(x.hi)
    if hi.shape[0] == 0:
        zero = jnp.zeros(hi.shape[1:], hi.dtype)
        return exact.Pair(zero, zero)
    last = exact.Pair(jnp.moveaxis(hi, 0, -1), jnp.moveaxis(jnp.asarray(x.lo), 0, -1))
    top = jnp.max(jnp.where(jnp.isfinite(last.hi), jnp.abs(last.hi), 0.0), axis=-1)
    return _grid_total(last, _exponent(top))[0]


def _grid_total(x: exact.Pair, e: Any, *counts: Any) -> tuple[exact.Pair, list[jax.Array]]:
    """The sum over the last axis (the terms: summed along contiguous memory), as
    :func:`pair_total`, on the grid of ``2^e`` (``|hi + lo| < 2^e`` for every finite term,
    ``e`` of the leading shape, in ``[EMIN, maxexp]``); also the int32 sums of ``counts``
    (integer or boolean arrays of ``x``'s shape), in the same pass."""
    hi, lo = jnp.asarray(x.hi), jnp.asarray(x.lo)
    dtype = hi.dtype
    itype = _INT[dtype.itemsize]
    b, count = _params(hi.shape[-1], dtype)
    finite = jnp.isfinite(hi)
    scale = _pow2(b - e, dtype)[..., None]
    y = jnp.where(finite, hi, 0.0) * scale  # |y + z| < 2^b, exact (or flushed far below)
    z = jnp.where(finite, lo, 0.0) * scale
    slabs = []
    for k in range(count):
        t = y.astype(itype)  # toward zero: |t| <= 1.25 * 2^b
        slabs.append(t)
        if k + 1 < count:
            y, z = _two_sum(y - t.astype(dtype), z)  # |y| < 1.25, exact
            y, z = y * 2.0**b, z * 2.0**b
    # the non-finite terms, counted in the same sums: +inf or NaN, -inf or NaN
    nan = jnp.isnan(hi)
    slabs += [(hi == jnp.inf) | nan, (hi == -jnp.inf) | nan, *counts]
    sums = list(jnp.sum(jnp.stack([s.astype(itype) for s in slabs]), axis=-1))
    extra = [sums.pop() for _ in counts][::-1]
    down, up = sums.pop() > 0, sums.pop() > 0
    # carry the digits (the lower ones into [0, 2^b)), then add them from the lowest up
    for k in range(count - 1, 0, -1):
        carry = sums[k] >> b
        sums[k] = sums[k] - (carry << b)
        sums[k - 1] = sums[k - 1] + carry
    acc = exact.Pair(sums[-1].astype(dtype) * 2.0 ** (-b * count), jnp.zeros(e.shape, dtype))
    for k in range(count - 2, 0, -1):  # digits in [0, 2^b): exact floats, of one sign
        s, f = _two_sum(acc.hi, sums[k].astype(dtype) * 2.0 ** (-b * (k + 1)))
        acc = exact.Pair(*_fast_two_sum(s, f + acc.lo))
    top_hi = sums[0].astype(dtype)
    top_lo = (sums[0] - top_hi.astype(itype)).astype(dtype)
    acc = _add(acc, exact.Pair(top_hi * 2.0**-b, top_lo * 2.0**-b))
    half = e // 2
    high, low = _pow2(half, dtype), _pow2(e - half, dtype)
    total_hi = acc.hi * high * low
    total_lo = jnp.where(jnp.isfinite(total_hi), acc.lo * high * low, 0.0)
    special = jnp.where(up, jnp.where(down, jnp.nan, jnp.inf), -jnp.inf)
    regular = ~(up | down)
    total = exact.Pair(jnp.where(regular, total_hi, special), jnp.where(regular, total_lo, 0.0))
    return total, extra


def packed_pair(p: exact.Pair, dtype: Any = jnp.float32) -> jax.Array:
    """A Pair as one array ``[..., (hi, lo)]`` of ``dtype`` (the parts re-split if wider)."""
    hi = p.hi.astype(dtype)
    lo = ((p.hi - hi.astype(p.hi.dtype)) + p.lo).astype(dtype)
    lo = jnp.where(jnp.isfinite(hi), lo, jnp.zeros_like(lo))  # inf carries no error term
    return jnp.stack([hi, lo], axis=-1)


def batch_moments(variables: Any, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A batch's count and its ``[means, co-moments]`` packed in one vector.

    Three passes over the samples: their extremes; their sums (nearly exact, as
    :func:`pair_total`), so the means as double-floats; the ``d (d + 1) / 2`` distinct
    co-moments ``C = sum (x - mean)(x - mean)^T``, each term in double-float (relative error
    about ``2^-47``), summed nearly exactly on a grid set by the extremes' distances from the
    mean. So a co-moment errs by about ``2^-43`` of the largest squared (or product of)
    deviations from the mean, plus ``2^-46`` of ``sqrt(C_ii C_jj)``; a mean by about
    ``2^-43 max|x| / n + 2^-47 |mean|``: for any batch size up to ``2^28`` and values however
    far from zero.

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
    e = _exponent(jnp.maximum(jnp.abs(largest), jnp.abs(smallest)))
    # pass 2: the sums and the count, so the means
    total, (count,) = _grid_total(exact.Pair(hi, lo), e, jnp.broadcast_to(which, hi.shape))
    count = count[0]
    n = jnp.maximum(count, 1)
    mean = _div_count(total, n)
    # pass 3: the co-moments about the mean, on the grid of the largest deviations
    m = mean.hi
    reach = jnp.maximum(largest - m, m - smallest)
    reach = reach * (1 + 2.0**-20) + jnp.maximum(jnp.abs(largest), jnp.abs(smallest)) * 2.0**-22
    er = _exponent(jnp.where(count > 0, reach, 0.0))
    r = _sub(exact.Pair(hi, lo), exact.Pair(mean.hi[:, None], mean.lo[:, None]))
    r = exact.Pair(jnp.where(which, r.hi, 0.0), jnp.where(which, r.lo, 0.0))
    # the products of every pair of deviations, (d, d, N), by broadcasting (cheaper to compile
    # than picking the d (d + 1) / 2 distinct ones)
    shape = (d, d, size)
    left = _bcast(exact.Pair(r.hi[:, None], r.lo[:, None]), shape)
    right = _bcast(exact.Pair(r.hi[None], r.lo[None]), shape)
    grid = jnp.clip(er[:, None] + er[None, :], _EMIN[4], 128)
    c, _ = _grid_total(_mul(left, right), grid)
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


def _bcast(p: exact.Pair, like: Any) -> exact.Pair:
    shape = like if isinstance(like, tuple) else np.shape(like.hi)
    return exact.Pair(jnp.broadcast_to(p.hi, shape), jnp.broadcast_to(p.lo, shape))


def _col(p: exact.Pair) -> exact.Pair:
    return exact.Pair(p.hi[:, None], p.lo[:, None])


def _row(p: exact.Pair) -> exact.Pair:
    return exact.Pair(p.hi[None, :], p.lo[None, :])


def _mode_over(base: type[Metric], name: str, finish: Callable[..., Any]) -> str:
    """The registered mode ``name``: a subclass of ``base`` reporting ``finish`` (made once)."""
    if name not in registered_modes():
        cls = type(
            f"{base.__name__}_{name}",
            (base,),
            {"finish": staticmethod(finish), "__module__": __name__},
        )
        register_metric(name, postfix="")(cls)
    return name


def comoment_mode(name: str, finish: Callable[[np.ndarray, np.ndarray, np.ndarray], Any]) -> str:
    """The registered mode ``name`` over :class:`CoMoments` reporting ``finish`` (made once)."""
    return _mode_over(CoMoments, name, finish)


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
    return _mode_over(PairSums, name, finish)
