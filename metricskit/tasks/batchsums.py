"""Nearly exact sums within a batch: the float32 double-float arithmetic of the task metrics.

Task metrics of float statistics (regression errors, co-moments, NDCG values, token
log-likelihoods) sum a batch's terms on the device. :func:`pair_total` cuts every term into
integer digits on a grid set by the batch's largest term and sums the digits exactly in
integers (an error-free extraction: Rump, Ogita and Oishi, "Accurate floating-point
summation", 2008), then recombines them as a double-float (:class:`~metricskit.exact.Pair`):
the sum errs by about ``2^-43`` of its largest term plus ``2^-47`` of itself. The small
double-float helpers here (TwoSum, Fast2Sum, accurate addition, products split with
``reduce_precision``) are the per-sample arithmetic around it; :mod:`metricskit.tasks.moments`
builds co-moments and the summing modes on them.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from metricskit import exact

__all__ = [
    "FINEST",
    "as_pairs",
    "dd_add",
    "dd_mul",
    "dd_sub",
    "div_count",
    "exponent",
    "fast_two_sum",
    "grid_total",
    "packed_pair",
    "pair_total",
    "segment_total",
    "two_sum",
]


_INT = {4: jnp.int32, 8: jnp.int64}  # the integers of a float's width
FINEST = {4: -100, 8: -900}
"""The finest grid exponent by float width in bytes: keeps ``2^(b - E)`` a normal number."""


def as_pairs(x: Any) -> exact.Pair:
    """Numbers as float32 double-floats, exactly where the input allows.

    Integers (int32 and narrower; wider ones within 48 bits) and booleans are exact, float32
    and narrower floats are exact, float64 (with ``jax_enable_x64``) is split into two
    float32s (48 of its 53 bits). A float input passes through
    :func:`~metricskit.exact.rounded`, so that the error-free transformations applied
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
        return exact.Pair(*fast_two_sum(high, low))
    return exact.as_pair(x, jnp.float32)


# -- double-float arithmetic of finite numbers, lean --------------------------------------------
# The batch statistics below use these instead of :mod:`metricskit.exact`'s, which carry
# infinities and guard every operand with ``rounded``: here a non-finite input only has to make
# the batch's sums non-finite (which :func:`pair_total` does), and only products (rounded
# where they are formed) could be contracted. A third of the operations: faster to compile.


def two_sum(a: Any, b: Any) -> tuple[Any, Any]:
    """TwoSum (Knuth): ``a + b = s + e`` exactly, for finite ``a`` and ``b``."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def fast_two_sum(a: Any, b: Any) -> tuple[Any, Any]:
    """Fast2Sum (Dekker): ``a + b = s + e`` exactly where ``|a| >= |b|`` (or ``a`` is 0)."""
    s = a + b
    return s, b - (s - a)


def dd_add(a: exact.Pair, b: exact.Pair) -> exact.Pair:
    """``a + b``, accurate double-float addition (Joldes, Muller and Popescu's
    AccurateDWPlusDW: relative error below ``3 * 2^-48``, whatever the cancellation)."""
    s, e = two_sum(a.hi, b.hi)
    t, f = two_sum(a.lo, b.lo)
    s, e = fast_two_sum(s, e + t)
    hi, lo = fast_two_sum(s, e + f)
    # IEEE for non-finite sums: the leading sum alone (its error terms are inf - inf)
    finite = jnp.isfinite(hi)
    return exact.Pair(jnp.where(finite, hi, a.hi + b.hi), jnp.where(finite, lo, 0.0))


def dd_sub(a: exact.Pair, b: exact.Pair) -> exact.Pair:
    return dd_add(a, exact.Pair(-b.hi, -b.lo))


def dd_mul(a: exact.Pair, b: exact.Pair) -> exact.Pair:
    """``a * b`` in double-float (relative error about ``2^-47``); the product of the leading
    parts is rounded once (:func:`~metricskit.exact.rounded`), so no contraction sees
    it unrounded."""
    p = exact.rounded(a.hi * b.hi)
    ah, al = _split(a.hi)
    bh, bl = _split(b.hi)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl  # a.hi * b.hi = p + e exactly
    e = jnp.where(jnp.isfinite(p), e + (a.hi * b.lo + a.lo * b.hi), 0.0)  # inf stays inf
    return exact.Pair(*fast_two_sum(p, e))


def _split(a: Any) -> tuple[Any, Any]:
    """Veltkamp's split without the multiplication: 12 leading bits and the rest."""
    info: Any = jnp.finfo(a.dtype)  # type: ignore[no-untyped-call,unused-ignore]
    hi = jax.lax.reduce_precision(a, exponent_bits=info.nexp, mantissa_bits=info.nmant // 2)
    return hi, a - hi


def div_count(a: exact.Pair, n: jax.Array) -> exact.Pair:
    """``a / n`` in double-float for a positive integer count ``n`` (int32)."""
    n_hi = n.astype(jnp.float32)
    n_lo = (n - n_hi.astype(jnp.int32)).astype(jnp.float32)  # nonzero only past 2^24
    q = a.hi / n_hi
    p, e = _mul_exact(q, n_hi)
    r = (((a.hi - p) - e) - q * n_lo) + a.lo  # a - q n, nearly exactly
    return exact.Pair(*fast_two_sum(q, r / n_hi))


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


def exponent(m: jax.Array) -> jax.Array:
    """The least ``E`` with ``m < 2^E`` for ``m >= 0``, clipped to ``[EMIN, maxexp]`` so that
    ``2^(b - E)`` is a normal number (``b`` in ``[2, p - 2]``)."""
    info: Any = jnp.finfo(m.dtype)  # type: ignore[no-untyped-call,unused-ignore]
    itype = _INT[m.dtype.itemsize]
    biased = (jax.lax.bitcast_convert_type(m, itype) >> int(info.nmant)) & (2 * info.maxexp - 1)
    return jnp.clip(biased - (info.maxexp - 2), FINEST[m.dtype.itemsize], info.maxexp)


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
    return grid_total(last, exponent(top))[0]


def segment_total(
    x: exact.Pair, segments: jax.Array, num_segments: int, *counts: Any
) -> tuple[exact.Pair, list[jax.Array]]:
    """Per segment, the sum of the terms of ``(N,)`` double-floats ``x`` whose ``segments``
    id is that segment, ``(num_segments,)``, as nearly exact as :func:`pair_total` (on one grid
    set by the largest term of all: each segment's sum errs by about ``2^-43`` of that term
    plus ``2^-47`` of itself); also the int32 segment sums of ``counts`` (``(N,)`` integers or
    booleans), in the same pass. Ids outside ``[0, num_segments)`` are dropped."""
    hi = jnp.asarray(x.hi)
    top = jnp.max(jnp.where(jnp.isfinite(hi), jnp.abs(hi), 0.0), initial=0.0)
    return grid_total(x, exponent(top), *counts, segments=(segments, num_segments))


def grid_total(
    x: exact.Pair, e: Any, *counts: Any, segments: tuple[jax.Array, int] | None = None
) -> tuple[exact.Pair, list[jax.Array]]:
    """The sum over the last axis (the terms: summed along contiguous memory), as
    :func:`pair_total`, on the grid of ``2^e`` (``|hi + lo| < 2^e`` for every finite term,
    ``e`` of the leading shape, in ``[EMIN, maxexp]``); also the int32 sums of ``counts``
    (integer or boolean arrays of ``x``'s shape), in the same pass. With ``segments``
    (``(ids, m)``, ``x`` of shape ``(N,)``): the sums per segment id, ``(m,)``."""
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
            y, z = two_sum(y - t.astype(dtype), z)  # |y| < 1.25, exact
            y, z = y * 2.0**b, z * 2.0**b
    # the non-finite terms, counted in the same sums: +inf or NaN, -inf or NaN
    nan = jnp.isnan(hi)
    slabs += [(hi == jnp.inf) | nan, (hi == -jnp.inf) | nan, *counts]
    stacked = jnp.stack([s.astype(itype) for s in slabs])
    if segments is None:
        sums = list(jnp.sum(stacked, axis=-1))
    else:
        ids, m = segments
        sums = list(jax.ops.segment_sum(stacked.T, ids, num_segments=m).T)
    extra = [sums.pop() for _ in counts][::-1]
    down, up = sums.pop() > 0, sums.pop() > 0
    # carry the digits (the lower ones into [0, 2^b)), then add them from the lowest up
    for k in range(count - 1, 0, -1):
        carry = sums[k] >> b
        sums[k] = sums[k] - (carry << b)
        sums[k - 1] = sums[k - 1] + carry
    low_digit = sums[-1].astype(dtype) * 2.0 ** (-b * count)
    acc = exact.Pair(low_digit, jnp.zeros_like(low_digit))
    for k in range(count - 2, 0, -1):  # digits in [0, 2^b): exact floats, of one sign
        s, f = two_sum(acc.hi, sums[k].astype(dtype) * 2.0 ** (-b * (k + 1)))
        acc = exact.Pair(*fast_two_sum(s, f + acc.lo))
    top_hi = sums[0].astype(dtype)
    top_lo = (sums[0] - top_hi.astype(itype)).astype(dtype)
    acc = dd_add(acc, exact.Pair(top_hi * 2.0**-b, top_lo * 2.0**-b))
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
