"""Exact accumulation: double-float sums and carried integer counts, without ``jax_enable_x64``.

An *accumulator* is an array whose last axis has size 2:

- floating (float32, or float64 with x64): a double-float ``hi + lo`` with ``|lo| <= ulp(hi)/2``,
  updated with TwoSum so that a sum of 10^7 float32 terms keeps ~44 bits of precision;
- integer (int32, or int64 with x64): ``hi * 2**30 + lo`` with ``0 <= lo < 2**30``, updated with
  a carry, so counts are exact far beyond ``2**31`` (to ``2**60``) and never wrap.

:class:`Pair` is a double-float *value* (``hi`` and ``lo`` arrays of one shape): what exact
kernels compute with, and what a metric's ``compute`` returns when its result needs more than
float32. The store turns a ``Pair`` into float64 NumPy on the host, so reported numbers keep the
precision. Every function here is elementwise and works eagerly, under ``jit`` and ``vmap``.
All products split their factors with ``lax.reduce_precision`` (not Dekker's ``c*a`` trick),
so a compiler that fuses multiply-adds cannot break them.
"""

from __future__ import annotations

from typing import Any, cast

import attrs
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from metricskit.pytree import register_pytree

__all__ = [
    "Pair",
    "acc_add",
    "acc_combine",
    "acc_float",
    "acc_is_zero",
    "acc_max",
    "acc_min",
    "acc_to_host",
    "acc_value",
    "acc_zeros",
    "add",
    "add_float",
    "as_pair",
    "broadcast",
    "div",
    "int_pair",
    "mul",
    "pack",
    "split_host",
    "sqrt",
    "sub",
    "to_host",
    "where",
]

_BITS = 30  # integer accumulators carry at 2**30
_MASK = (1 << _BITS) - 1


@attrs.frozen(eq=False)
class Pair:
    """A double-float value ``hi + lo`` (two arrays of one shape and floating dtype).

    Attributes:
        hi: The leading part.
        lo: The trailing part, ``|lo| <= ulp(hi) / 2`` after normalization.

    Examples:
        >>> import numpy as np
        >>> from metricskit import exact
        >>> p = exact.add(exact.as_pair(np.float32(1.0)), exact.as_pair(np.float32(2.0**-30)))
        >>> float(p.hi), float(p.lo)
        (1.0, 9.313225746154785e-10)
        >>> float(exact.to_host(p))
        1.0000000009313226
    """

    hi: Any
    lo: Any


register_pytree(Pair, ["hi", "lo"], [])


def broadcast(p: Pair, shape: tuple[int, ...]) -> Pair:
    """Both parts of ``p`` broadcast to ``shape``."""
    return Pair(jnp.broadcast_to(p.hi, shape), jnp.broadcast_to(p.lo, shape))


def as_pair(x: Any, dtype: Any = None) -> Pair:
    """``x`` as a :class:`Pair` (``lo = 0`` unless ``x`` already is one).

    Args:
        x: An array, scalar or :class:`Pair`.
        dtype: The floating dtype of the result (default: ``x``'s, at least float32).

    Returns:
        The pair.
    """
    if isinstance(x, Pair):
        if dtype is None:
            return x
        return Pair(jnp.asarray(x.hi, dtype), jnp.asarray(x.lo, dtype))
    x = jnp.asarray(x)
    if dtype is None:
        dtype = jnp.promote_types(x.dtype, jnp.float32)
    hi = x.astype(dtype)
    return Pair(hi, jnp.zeros_like(hi))


def _two_sum(a: Any, b: Any) -> tuple[Any, Any]:
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _quick_two_sum(a: Any, b: Any) -> tuple[Any, Any]:
    s = a + b
    return s, b - (s - a)


def _normal(s: Any, e: Any) -> Pair:
    hi, lo = _quick_two_sum(s, e)
    # inf/nan in hi: keep lo finite-free of spurious nan so that hi alone carries the value
    return Pair(hi, jnp.where(jnp.isfinite(hi), lo, jnp.zeros_like(lo)))


def add(a: Pair, b: Pair) -> Pair:
    """``a + b`` in double-float arithmetic (error ~2^-46 relative for float32 parts)."""
    s, e = _two_sum(a.hi, b.hi)
    t, f = _two_sum(a.lo, b.lo)
    s, e = _quick_two_sum(s, e + t)
    return _normal(s, e + f)


def add_float(a: Pair, x: Any) -> Pair:
    """``a + x`` for a plain float ``x`` (cheaper than :func:`add`)."""
    s, e = _two_sum(a.hi, x)
    return _normal(s, e + a.lo)


def neg(a: Pair) -> Pair:
    """``-a``."""
    return Pair(-a.hi, -a.lo)


def sub(a: Pair, b: Pair) -> Pair:
    """``a - b`` in double-float arithmetic."""
    return add(a, neg(b))


def _split(a: Any) -> tuple[Any, Any]:
    info: Any = jnp.finfo(a.dtype)  # type: ignore[no-untyped-call,unused-ignore]
    hi = jax.lax.reduce_precision(a, exponent_bits=info.nexp, mantissa_bits=info.nmant // 2)
    return hi, a - hi


def _two_prod(a: Any, b: Any) -> tuple[Any, Any]:
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def mul(a: Pair, b: Pair) -> Pair:
    """``a * b`` in double-float arithmetic."""
    p, e = _two_prod(a.hi, b.hi)
    return _normal(p, e + (a.hi * b.lo + a.lo * b.hi))


def div(a: Pair, b: Pair) -> Pair:
    """``a / b`` in double-float arithmetic (``b`` nonzero; the caller masks empty counts).

    One correction step: the quotient's error is about ``ulp(ulp(q))``, ~2^-46 relative for
    float32 parts.
    """
    q1 = a.hi / b.hi
    r = sub(a, mul(b, Pair(q1, jnp.zeros_like(q1))))
    return _normal(*_quick_two_sum(q1, r.hi / b.hi))


def sqrt(a: Pair) -> Pair:
    """``sqrt(a)`` for ``a >= 0`` (one Newton step on the float square root)."""
    s = jnp.sqrt(a.hi)
    safe = jnp.where(s > 0, s, jnp.ones_like(s))
    r = sub(a, mul(Pair(s, jnp.zeros_like(s)), Pair(s, jnp.zeros_like(s))))
    correction = jnp.where(s > 0, r.hi / (2 * safe), jnp.zeros_like(s))
    return _normal(s, correction)


def where(cond: Any, a: Pair, b: Pair) -> Pair:
    """Elementwise select of pairs."""
    return Pair(jnp.where(cond, a.hi, b.hi), jnp.where(cond, a.lo, b.lo))


# -- accumulators (trailing axis of size 2) -----------------------------------------------


def acc_zeros(shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """An empty accumulator of the given value shape and dtype (int or float)."""
    return jnp.zeros((*shape, 2), dtype)


def _is_int(acc: Any) -> bool:
    return bool(jnp.issubdtype(acc.dtype, jnp.integer))


def acc_add(acc: jax.Array, x: Any) -> jax.Array:
    """Add a step's ``x`` (array, :class:`Pair`, or integers for an integer accumulator)."""
    if _is_int(acc):
        x = jnp.broadcast_to(jnp.asarray(x).astype(acc.dtype), acc.shape[:-1])
        return cast(jax.Array, _int_combine(acc, jnp.stack([x & _MASK, x >> _BITS], axis=-1)))
    total = add(acc_value(acc), as_pair(x, acc.dtype))
    return pack(broadcast(total, acc.shape[:-1]))


def _int_combine(a: Any, b: Any, xp: Any = jnp) -> Any:
    s = a[..., 0] + b[..., 0]  # both in [0, 2**30): no overflow
    hi = a[..., 1] + b[..., 1] + (s >> _BITS)
    return xp.stack([s & _MASK, hi], axis=-1)


def acc_combine(xp: Any, a: Any, b: Any, axis: int = 0) -> Any:
    """Combine two accumulators (the ``"xsum"`` reduction), with ``xp`` = jnp or numpy."""
    if np.issubdtype(a.dtype, np.integer):
        return _int_combine(a, b, xp)
    if xp is np:
        return _host_combine(a, b)
    total = add(Pair(a[..., 0], a[..., 1]), Pair(b[..., 0], b[..., 1]))
    return jnp.stack([total.hi, total.lo], axis=-1)


def _pair_extreme(xp: Any, a: Any, b: Any, larger: bool) -> Any:
    """Elementwise extreme of two pair arrays (trailing axis 2); NaN propagates."""
    if larger:
        b_wins = (b[..., 0] > a[..., 0]) | ((b[..., 0] == a[..., 0]) & (b[..., 1] > a[..., 1]))
    else:
        b_wins = (b[..., 0] < a[..., 0]) | ((b[..., 0] == a[..., 0]) & (b[..., 1] < a[..., 1]))
    take = xp.isnan(b[..., 0]) | (b_wins & ~xp.isnan(a[..., 0]))
    return xp.where(take[..., None], b, a)


def acc_max(xp: Any, a: Any, b: Any, axis: int = 0) -> Any:
    """The larger of two pair arrays (the ``"xmax"`` reduction)."""
    return _pair_extreme(xp, a, b, larger=True)


def acc_min(xp: Any, a: Any, b: Any, axis: int = 0) -> Any:
    """The smaller of two pair arrays (the ``"xmin"`` reduction)."""
    return _pair_extreme(xp, a, b, larger=False)


def pack(p: Pair) -> jax.Array:
    """A :class:`Pair` as one array with a trailing axis of size 2."""
    return jnp.stack([p.hi, p.lo], axis=-1)


def int_pair(x: Any, dtype: Any) -> Pair:
    """Integers (below ``2**31``) as an exact :class:`Pair` of the floating ``dtype``."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.integer):
        return as_pair(x, dtype)
    return add(as_pair((x >> 15) << 15, dtype), as_pair(x & 0x7FFF, dtype))


def _host_combine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    total = a[..., 0].astype(np.float64) + a[..., 1] + b[..., 0] + b[..., 1]
    hi = total.astype(a.dtype)
    return np.stack([hi, (total - hi).astype(a.dtype)], axis=-1)


def acc_value(acc: jax.Array) -> Pair:
    """The accumulated total as a :class:`Pair` (integer totals converted exactly to 2^48)."""
    if not _is_int(acc):
        return Pair(acc[..., 0], acc[..., 1])
    from metricskit.numerics import float_dtype

    dtype = float_dtype()
    lo = acc[..., 0]
    upper = Pair((acc[..., 1].astype(dtype) * (1 << _BITS)), jnp.zeros(lo.shape, dtype))
    middle = as_pair((lo >> 15) << 15, dtype)  # at most 15 significant bits: exact
    low = as_pair(lo & 0x7FFF, dtype)
    return add(add(upper, middle), low)


def acc_float(acc: jax.Array) -> jax.Array:
    """An accumulator's total rounded to its float dtype (or float32 for integers): cheap."""
    if not _is_int(acc):
        return acc[..., 0] + acc[..., 1]
    from metricskit.numerics import float_dtype

    dtype = float_dtype()
    return acc[..., 1].astype(dtype) * (1 << _BITS) + acc[..., 0].astype(dtype)


def acc_is_zero(acc: jax.Array) -> jax.Array:
    """Elementwise: the accumulated total is exactly zero."""
    return (acc[..., 0] == 0) & (acc[..., 1] == 0)


def acc_to_host(acc: ArrayLike) -> np.ndarray:
    """An accumulator's exact total on the host: int64 for integers, float64 for floats.

    Examples:
        >>> import jax.numpy as jnp
        >>> from metricskit import exact
        >>> acc = exact.acc_zeros((), jnp.int32)
        >>> for _ in range(3):
        ...     acc = exact.acc_add(acc, jnp.int32(2**30 + 5))
        >>> int(exact.acc_to_host(acc)) == 3 * (2**30 + 5)
        True
    """
    a = np.asarray(acc)
    if np.issubdtype(a.dtype, np.integer):
        return a[..., 1].astype(np.int64) * (1 << _BITS) + a[..., 0].astype(np.int64)
    return a[..., 0].astype(np.float64) + a[..., 1].astype(np.float64)


def to_host(p: Pair) -> np.ndarray:
    """A :class:`Pair` of host (or device) arrays as one float64 NumPy array."""
    return np.asarray(p.hi, np.float64) + np.asarray(p.lo, np.float64)


def split_host(x: np.ndarray, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Split float64 host values into ``hi = float32(x)`` and ``lo = float32(x - hi)``.

    Examples:
        >>> import numpy as np
        >>> from metricskit import exact
        >>> hi, lo = exact.split_host(np.array(0.1))
        >>> abs(float(np.float64(hi) + np.float64(lo)) - 0.1) < 1e-16  # 48 of 53 bits
        True
    """
    x = np.asarray(x, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        hi = x.astype(dtype)
        lo = np.where(np.isfinite(hi), x - hi.astype(np.float64), 0.0).astype(dtype)
    return hi, lo
