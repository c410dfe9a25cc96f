"""Exact numbers without ``jax_enable_x64``: double-floats, carried integers and ratios.

- :class:`Pair` is a double-float ``hi + lo`` (:mod:`metricskit.doublefloat`, whose
  arithmetic this module re-exports): 48 bits of precision with float32 parts, infinities
  carried as float64 would carry them.
- :class:`Words` is an integer ``hi * 2**30 + lo`` with ``0 <= lo < 2**30`` (two integer
  arrays), added with a carry: exact up to ``2**60`` with int32 words, never wrapping at 2^31.
- :class:`Ratio` is an exact quotient to be divided on the host in float64, so a mean of
  integer data is the correctly rounded ``sum / count``.

An *accumulator* is a ``Pair`` (float kind) or ``Words`` (integer kind). Both are pytrees of
two leaves, so XLA fuses their arithmetic with the rest of a step. Every function works
elementwise, eagerly, under ``jit`` and under ``vmap``; the ``xp`` argument of the few that
also run on the host takes ``numpy``.
"""

from __future__ import annotations

from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from metricskit.doublefloat import Pair, add, add_float, div, mul, neg, rounded, sqrt, sub
from metricskit.dtypes import float_dtype, int_dtype, upcast
from metricskit.log import LOGGER
from metricskit.pytree import register_pytree

__all__ = [
    "BITS",
    "OVERFLOW",
    "Finish",
    "Pair",
    "Ratio",
    "Words",
    "accumulate",
    "add",
    "add_float",
    "as_pair",
    "as_words",
    "combine",
    "div",
    "extreme",
    "is_zero",
    "mul",
    "neg",
    "rounded",
    "split_float",
    "split_int",
    "sqrt",
    "sub",
    "to_float",
    "to_host",
    "total",
    "where",
    "words_from_sums",
    "zeros",
]

BITS = 30
"""The carry position of :class:`Words`: ``value = hi * 2**BITS + lo``."""
_MASK = (1 << BITS) - 1


@attrs.frozen(eq=False)
class Words:
    """An exact integer ``hi * 2**30 + lo`` with ``0 <= lo < 2**30`` (two integer arrays).

    Attributes:
        lo: The low 30 bits (non-negative).
        hi: The rest, signed.

    Examples:
        >>> import numpy as np
        >>> from metricskit import exact
        >>> w = exact.as_words(np.int32(-5))
        >>> int(w.lo), int(w.hi), int(exact.to_host(w))
        (1073741819, -1, -5)
    """

    lo: Any
    hi: Any


@attrs.frozen(eq=False)
class Ratio:
    """``numerator / denominator``, divided on the host in float64 (``0`` where it is ``0``).

    Attributes:
        numerator: An accumulator (:class:`Pair` or :class:`Words`) or array.
        denominator: An accumulator or array, broadcastable against ``numerator``.

    Examples:
        >>> import numpy as np
        >>> from metricskit import exact
        >>> float(exact.to_host(exact.Ratio(exact.as_words(np.int32(975)), np.int32(1792))))
        0.5440848214285714
    """

    numerator: Any
    denominator: Any


@attrs.frozen(eq=False)
class Finish:
    """A value finished on the host: ``fn`` applied to ``operand`` once it is there.

    A metric's ``compute`` returns it when the last step is easier, or more exact, in float64
    and int64 NumPy than on the device: ``fn`` gets one key's operand (Pairs as float64,
    Words as int64, Ratios as float64 quotients) and returns a number, an array, or a tuple
    of them. It runs with NumPy's floating-point warnings off: a NaN or inf it returns is the
    key's value (an empty key's is replaced by the store's empty report).

    Attributes:
        fn: A host function of one key's operand (static: part of the structure).
        operand: What the device computed (arrays, Pairs, Words, Ratios, tuples of them).

    Examples:
        >>> import numpy as np
        >>> from metricskit import exact
        >>> exact.to_host(exact.Finish(np.exp, exact.Ratio(np.int64(3), np.int64(2))))
        np.float64(4.4816890703380645)
    """

    fn: Any
    operand: Any


register_pytree(Words, ["lo", "hi"], [])
register_pytree(Ratio, ["numerator", "denominator"], [])
register_pytree(Finish, ["operand"], ["fn"])

Accumulator = Pair | Words


def zeros(kind: str, shape: tuple[int, ...], xp: Any = jnp) -> Accumulator:
    """An accumulator holding zero: ``kind`` is ``"float"`` (a Pair) or ``"int"`` (Words)."""
    dtype = float_dtype() if kind == "float" else int_dtype()
    if kind == "float":
        return Pair(xp.zeros(shape, dtype), xp.zeros(shape, dtype))
    return Words(xp.zeros(shape, dtype), xp.zeros(shape, dtype))


def where(cond: Any, a: Any, b: Any) -> Any:
    """Elementwise select of two arrays, Pairs or Words of one kind."""
    return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


# -- conversions ------------------------------------------------------------------------------


def as_words(x: Any) -> Words:
    """An integer array (any signed or unsigned width) or :class:`Words` as exact ``Words``."""
    if isinstance(x, Words):
        return x
    x = jnp.asarray(x)
    dtype = int_dtype()
    if x.dtype == jnp.bool_ or x.dtype.itemsize < dtype.itemsize or x.dtype == dtype:
        x = x.astype(dtype)
        return Words(x & _MASK, x >> BITS)
    # an unsigned type as wide as the words (uint32 with x64 off): split before the cast
    return Words((x & _MASK).astype(dtype), (x >> BITS).astype(dtype))


def _int_as_pair(x: Any, dtype: Any) -> Pair:
    """An integer array as an exact Pair of the floating ``dtype`` (both halves fit)."""
    half = 15 if jnp.dtype(dtype).itemsize == 4 else 31
    return add(_plain((x >> half) << half, dtype), _plain(x & ((1 << half) - 1), dtype))


def _plain(x: Any, dtype: Any) -> Pair:
    hi = jnp.asarray(x).astype(dtype)
    return Pair(hi, jnp.zeros_like(hi))


def as_pair(x: Any, dtype: Any = None) -> Pair:
    """Any number as a double-float :class:`Pair` (exact up to the Pair's precision).

    Args:
        x: A float or integer array, a :class:`Pair` or :class:`Words`.
        dtype: The floating dtype of the parts (default: the accumulation float dtype).

    Returns:
        The Pair.
    """
    dtype = float_dtype() if dtype is None else dtype
    if isinstance(x, Pair):
        return x if x.hi.dtype == dtype else Pair(x.hi.astype(dtype), x.lo.astype(dtype))
    if isinstance(x, Words):
        upper = _plain(x.hi.astype(dtype) * (1 << BITS), dtype)
        return add(upper, _int_as_pair(x.lo, dtype))
    x = jnp.asarray(x)
    if x.dtype == jnp.bool_:
        return _plain(x, dtype)
    if jnp.issubdtype(x.dtype, jnp.integer):
        if x.dtype.itemsize > 4 or jnp.issubdtype(x.dtype, jnp.unsignedinteger):
            return as_pair(as_words(x), dtype)
        return _int_as_pair(x.astype(jnp.int32), dtype)
    return _plain(x, dtype)


def to_float(x: Any) -> Any:
    """A Pair, Words or array as one plain float array (rounded: for inexact consumers)."""
    if isinstance(x, Pair):
        return x.hi + x.lo
    if isinstance(x, Words):
        dtype = float_dtype()
        return x.hi.astype(dtype) * (1 << BITS) + x.lo.astype(dtype)
    return x


# -- accumulators -----------------------------------------------------------------------------


OVERFLOW = -1
"""The ``lo`` of a :class:`Words` whose total left the range of its words (``±2**61`` with
int32 words): sticky, reported as NaN with a warning (a valid ``lo`` is never negative)."""


def _words_add(a: Words, b: Words, xp: Any = jnp) -> Words:
    low = a.lo + b.lo  # both in [0, 2**30): no overflow
    t = a.hi + b.hi
    hi = t + (low >> BITS)
    # signed overflow of a.hi + b.hi, or of adding the carry; a marked operand stays marked
    over = (((a.hi ^ t) & (b.hi ^ t)) | (~t & hi)) < 0
    bad = over | (a.lo < 0) | (b.lo < 0)
    return Words(xp.where(bad, OVERFLOW, low & _MASK).astype(low.dtype), hi)


def words_from_sums(lo: np.ndarray, hi: np.ndarray, marked: Any, dtype: Any) -> Words:
    """Host Words of ``dtype`` from int64 sums of many parts' words (carried here), marked
    :data:`OVERFLOW` where a part was marked or the total leaves the range of ``dtype``."""
    hi = hi + (lo >> BITS)
    info = np.iinfo(dtype)
    bad = marked | (hi < info.min) | (hi > info.max)
    return Words(np.where(bad, OVERFLOW, lo & _MASK).astype(dtype), hi.astype(dtype))


def accumulate(acc: Accumulator, x: Any) -> Accumulator:
    """``acc + x`` exactly, for one step's ``x`` (array, Pair or Words) broadcast to ``acc``.

    Args:
        acc: A Pair (floats and weights) or Words (integers) accumulator.
        x: The step's addend; integers are exact in both kinds of accumulator.

    Returns:
        The accumulator, with ``acc``'s shape.
    """
    shape = np.shape(acc.lo)
    if isinstance(acc, Words):
        w = as_words(x)
        return _words_add(acc, Words(*(jnp.broadcast_to(p, shape) for p in (w.lo, w.hi))))
    if not isinstance(x, Pair | Words):
        x = jnp.asarray(x)
        if jnp.issubdtype(x.dtype, jnp.floating) and x.dtype.itemsize <= acc.hi.dtype.itemsize:
            # a plain float is exact in the accumulator's float: one TwoSum (the common case)
            return add_float(acc, jnp.broadcast_to(upcast(x, acc.hi.dtype), shape))
    p = as_pair(x, acc.hi.dtype)
    return add(acc, Pair(jnp.broadcast_to(p.hi, shape), jnp.broadcast_to(p.lo, shape)))


def total(x: Any) -> Any:
    """The sum of every element of ``x`` (array, Pair or Words) as a scalar of the same kind.

    Words stay exact for fewer than 2**16 elements of any size (the low words are summed in
    15-bit halves); Pairs are summed part by part and renormalized.
    """
    if isinstance(x, Words):
        lo = x.lo.reshape(-1)
        low, high = jnp.sum(lo & 0x7FFF), jnp.sum(lo >> 15)
        acc = Words(jnp.zeros_like(low), jnp.sum(x.hi))  # hi * 2**30
        acc = _words_add(acc, Words((high & 0x7FFF) << 15, high >> 15))  # high * 2**15
        return accumulate(acc, low)
    if isinstance(x, Pair):
        return add(
            Pair(jnp.sum(x.hi), jnp.zeros_like(jnp.sum(x.hi))),
            Pair(jnp.sum(x.lo), jnp.zeros_like(jnp.sum(x.lo))),
        )
    x = jnp.asarray(x)
    return jnp.sum(x.astype(jnp.int32) if x.dtype == jnp.bool_ else x)


def combine(a: Any, b: Any, xp: Any = jnp) -> Any:
    """The sum of two accumulators of one kind, or of two plain arrays (``xp``: jnp or np)."""
    if isinstance(a, Words):
        return _words_add(a, b, xp)
    if isinstance(a, Pair):
        return add(a, b, xp)
    return a + b


def extreme(a: Any, b: Any, larger: bool, xp: Any = jnp) -> Any:
    """The elementwise larger (or smaller) of two Pairs or arrays; NaN wins, as in np.maximum."""
    if not isinstance(a, Pair):
        return xp.maximum(a, b) if larger else xp.minimum(a, b)
    if larger:
        b_wins = (b.hi > a.hi) | ((b.hi == a.hi) & (b.lo > a.lo))
    else:
        b_wins = (b.hi < a.hi) | ((b.hi == a.hi) & (b.lo < a.lo))
    take = xp.isnan(b.hi) | (b_wins & ~xp.isnan(a.hi))
    return Pair(xp.where(take, b.hi, a.hi), xp.where(take, b.lo, a.lo))


def is_zero(x: Any) -> Any:
    """Elementwise: the accumulator (or array) holds exactly zero."""
    if isinstance(x, Pair | Words):
        return (x.hi == 0) & (x.lo == 0)
    return x == 0


# -- the host side ----------------------------------------------------------------------------


def _host_words(w: Words) -> np.ndarray:
    hi, lo = np.asarray(w.hi).astype(np.int64), np.asarray(w.lo).astype(np.int64)
    if lo.size and lo.min() < 0:  # a total beyond the words' range: NaN, and say so
        LOGGER.warning(
            "An exact integer total went beyond the range of its accumulator (±2**61 with "
            "jax_enable_x64 off) and is reported as nan; enable x64 or log smaller units."
        )
        return np.where(lo < 0, np.nan, hi.astype(np.float64) * 2.0**BITS + lo)
    if hi.size and np.abs(hi).max() >= 2**32:  # beyond int64 after the shift: float64
        return hi.astype(np.float64) * 2.0**BITS + lo
    return hi * (1 << BITS) + lo


def to_host(x: Any) -> Any:
    """A Pair, Words or Ratio (device or host arrays) as NumPy float64 or int64.

    Pairs become float64 (exactly ``hi + lo``), Words int64 (float64 past 2^62), Ratios the
    float64 quotient (``0`` where the denominator is ``0``; exact integers give the correctly
    rounded quotient); plain arrays pass through NumPy.

    Examples:
        >>> import numpy as np
        >>> from metricskit import exact
        >>> acc = exact.zeros("int", ())
        >>> for _ in range(3):
        ...     acc = exact.accumulate(acc, np.int32(2**30 + 5))
        >>> int(exact.to_host(acc)) == 3 * (2**30 + 5)
        True
    """
    if isinstance(x, Pair):
        hi, lo = np.asarray(x.hi, np.float64), np.asarray(x.lo, np.float64)
        return np.where(lo == 0, hi, hi + lo)  # -0.0 + 0.0 would lose the sign of a -0.0
    if isinstance(x, Words):
        return _host_words(x)
    if isinstance(x, Ratio):
        return _divide(np.asarray(to_host(x.numerator)), np.asarray(to_host(x.denominator)))
    if isinstance(x, Finish):
        with np.errstate(all="ignore"):  # a finish's NaN or inf is its value, not a warning
            return x.fn(to_host(x.operand))
    if isinstance(x, tuple):
        return tuple(to_host(p) for p in x)
    return np.asarray(x)


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` correctly rounded to float64 (``0`` where ``den`` is ``0``).

    Float64 division of two exactly converted numbers is correctly rounded; integers beyond
    2**53 are not exact in float64, so those quotients are taken as Python's ``int / int``.
    """
    empty = den == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        quotient = np.asarray(num.astype(np.float64) / np.where(empty, 1.0, den.astype(np.float64)))
    quotient = np.where(empty, 0.0, quotient)
    if num.dtype.kind in "iu" and den.dtype.kind in "iu":
        big = (np.abs(num) > 2**53) | (np.abs(den) > 2**53)
        if big.any():
            n, d = np.broadcast_arrays(num, den)
            fixed = np.array(quotient, np.float64, ndmin=1).reshape(quotient.shape or (1,))
            flat_n, flat_d, flat_q = n.reshape(-1), d.reshape(-1), fixed.reshape(-1)
            for i in np.flatnonzero(np.broadcast_to(big, n.shape)):
                flat_q[i] = int(flat_n[i]) / int(flat_d[i]) if flat_d[i] else 0.0
            return flat_q.reshape(quotient.shape)
    return quotient


def split_float(x: np.ndarray) -> tuple[Pair, bool]:
    """Float64 host values as a float32 :class:`Pair`, and whether a finite one overflowed.

    ``hi = float32(x)`` and ``lo = float32(x - hi)``: 48 of the 53 bits. A finite value beyond
    float32's range (about 3.4e38) becomes ``inf`` of its sign; the flag says so, so that the
    caller can warn.

    Examples:
        >>> import numpy as np
        >>> from metricskit import exact
        >>> p, overflow = exact.split_float(np.array(0.1))
        >>> abs(float(exact.to_host(p)) - 0.1) < 1e-16, overflow
        (True, False)
        >>> exact.split_float(np.array(2.0**130))[1]
        True
    """
    x = np.asarray(x, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        hi = x.astype(np.float32)
        finite = np.isfinite(hi)
        lo = np.where(finite, x - hi.astype(np.float64), 0.0).astype(np.float32)
    overflow = bool(x.size) and not bool(np.all(finite | ~np.isfinite(x)))
    return Pair(hi, lo), overflow


def split_int(x: np.ndarray) -> Words:
    """Host integers (any width, within ``±2**60``) as int32 :class:`Words`.

    Examples:
        >>> import numpy as np
        >>> from metricskit import exact
        >>> int(exact.to_host(exact.split_int(np.uint64(3_000_000_000))))
        3000000000
    """
    x = np.asarray(x)
    if x.dtype.kind == "u":
        x = x.astype(np.uint64)
        return Words((x & _MASK).astype(np.int32), (x >> BITS).astype(np.int32))
    x = x.astype(np.int64)
    return Words((x & _MASK).astype(np.int32), (x >> BITS).astype(np.int32))
