"""Double-float arithmetic: a value ``hi + lo`` in two floats, with twice their precision.

:class:`Pair` holds two arrays of one shape and floating dtype with ``|lo| <= ulp(hi) / 2``:
float32 parts give 48 bits, float64 parts (x64 on) 106. Sums are TwoSum-compensated (Knuth;
Dekker, "A floating-point technique for extending the available precision", 1971), products
split their factors with ``lax.reduce_precision`` rather than Dekker's ``c * a`` trick, so no
fused multiply-add can break them. Infinities and NaN are carried as IEEE float64 would carry
them: the error terms are dropped where a result is not finite, so ``inf + 1`` is ``inf``,
never a spurious NaN. Every function is elementwise and runs eagerly, under ``jit`` and
``vmap``; :func:`add` also runs on NumPy arrays (``xp=numpy``).

An error-free transformation holds only for operands that are rounded floats, each used with
one value wherever it appears. Under ``jit`` XLA may recompute an operand's expression inside
each fusion that uses it (``x / 24`` of a caller's ``jnp.mean`` becomes ``x * (1/24)``, copied
into every consumer), and the backend may then contract that product with the TwoSum's
subtraction into one fused multiply-add, which sees the unrounded product: the error term then
describes a value the step never had (``mean(ones(24))`` recorded as ``1 + 2**-25``). So the
operands of every error-free transformation pass through :func:`rounded` first, an exact
identity that no contraction can look through.
"""

from __future__ import annotations

from typing import Any

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from metricskit.pytree import register_pytree

__all__ = ["Pair", "add", "add_float", "div", "mul", "neg", "rounded", "sqrt", "sub"]


@attrs.frozen(eq=False)
class Pair:
    """A double-float ``hi + lo`` (two arrays of one shape and floating dtype).

    Attributes:
        hi: The leading part (it alone carries ``inf`` and NaN).
        lo: The trailing part, ``|lo| <= ulp(hi) / 2`` (zero where ``hi`` is not finite).

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


_SIGNED: dict[int, Any] = {2: np.int16, 4: np.int32, 8: np.int64}


def rounded(x: Any, xp: Any = jnp) -> Any:
    """``x`` itself, as a value no fused multiply-add can look through (an exact identity).

    Returns ``x + copysign(0, x)``: equal to ``x`` for every float (``-0.0``, infinities and
    NaN included; a subnormal is flushed to zero where the device flushes them, as in every
    addition here), but computed by an addition from ``x``'s rounded value. A product ``x``
    (``p * q``) used in a later addition or subtraction may otherwise be contracted into
    ``fma(p, q, ...)``, which sees the unrounded product; here it can only become
    ``fma(p, q, ±0)``, which rounds ``p * q`` exactly as the multiplication does, and the
    result is an addition that nothing contracts further, in every fusion XLA copies it into.
    The zero is taken from ``x``'s sign bit, so no compiler can fold the addition away.
    (``lax.optimization_barrier`` cannot do this: XLA removes barriers before fusion.)

    Args:
        x: A floating JAX array (a NumPy array with ``xp=numpy`` passes through).
        xp: ``jax.numpy`` (default), or ``numpy`` on the host, where nothing is contracted.

    Returns:
        ``x``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from metricskit import doublefloat as df
        >>> x = jnp.array([1.5, -0.0, jnp.inf, jnp.nan])
        >>> jax.jit(df.rounded)(x)
        Array([ 1.5, -0. ,  inf,  nan], dtype=float32)
    """
    if xp is np:
        return x
    x = jnp.asarray(x)
    signed = _SIGNED[x.dtype.itemsize]
    mask = np.array(np.iinfo(signed).min, signed)  # the sign bit
    sign = jax.lax.bitcast_convert_type(x, signed) & mask
    return x + jax.lax.bitcast_convert_type(sign, x.dtype)


def _two_sum(a: Any, b: Any, xp: Any = jnp) -> tuple[Any, Any]:
    a, b = rounded(a, xp), rounded(b, xp)
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, xp.where(xp.isfinite(s), e, xp.zeros_like(e))


def _quick_two_sum(a: Any, b: Any, xp: Any = jnp) -> tuple[Any, Any]:
    a, b = rounded(a, xp), rounded(b, xp)
    s = a + b
    e = b - (s - a)
    return s, xp.where(xp.isfinite(s), e, xp.zeros_like(e))


def add(a: Pair, b: Pair, xp: Any = jnp) -> Pair:
    """``a + b`` in double-float arithmetic (relative error about 2^-46 for float32 parts)."""
    if xp is np:  # on the host, inf - inf inside TwoSum is expected: it is masked below
        with np.errstate(invalid="ignore", over="ignore"):
            return _add(a, b, xp)
    return _add(a, b, xp)


def _add(a: Pair, b: Pair, xp: Any) -> Pair:
    s, e = _two_sum(a.hi, b.hi, xp)
    t, f = _two_sum(a.lo, b.lo, xp)
    s, e = _quick_two_sum(s, e + t, xp)
    return Pair(*_quick_two_sum(s, e + f, xp))


def add_float(a: Pair, x: Any) -> Pair:
    """``a + x`` for a plain float array ``x`` (cheaper than :func:`add`)."""
    s, e = _two_sum(a.hi, x)
    return Pair(*_quick_two_sum(s, e + a.lo))


def neg(a: Pair) -> Pair:
    """``-a``."""
    return Pair(-a.hi, -a.lo)


def sub(a: Pair, b: Pair) -> Pair:
    """``a - b`` in double-float arithmetic."""
    return add(a, neg(b))


def _split(a: Any) -> tuple[Any, Any]:
    info: Any = jnp.finfo(a.dtype)  # type: ignore[no-untyped-call,unused-ignore]
    bits = info.nmant // 2
    hi = jax.lax.reduce_precision(a, exponent_bits=info.nexp, mantissa_bits=bits)
    # within half an ulp (of ``bits``) of the largest float, rounding overflows to inf: take
    # the largest ``bits``-bit value instead (the rest still has at most ``bits`` bits)
    cap = (2.0 - 2.0**-bits) * 2.0 ** (info.maxexp - 1)
    hi = jnp.where(jnp.isinf(hi) & jnp.isfinite(a), jnp.copysign(jnp.asarray(cap, a.dtype), a), hi)
    return hi, a - hi


def _two_prod(a: Any, b: Any) -> tuple[Any, Any]:
    a, b = rounded(a), rounded(b)
    p = rounded(a * b)  # so that ``ah * bh - p`` cannot become ``fma(-a, b, ah * bh)``
    ah, al = _split(a)
    bh, bl = _split(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, jnp.where(jnp.isfinite(p), e, jnp.zeros_like(e))


def mul(a: Pair, b: Pair) -> Pair:
    """``a * b`` in double-float arithmetic."""
    p, e = _two_prod(a.hi, b.hi)
    error = e + (a.hi * b.lo + a.lo * b.hi)
    return Pair(*_quick_two_sum(p, jnp.where(jnp.isfinite(p), error, jnp.zeros_like(error))))


def div(a: Pair, b: Pair) -> Pair:
    """``a / b`` in double-float arithmetic (IEEE semantics for zeros, infinities and NaN).

    One correction step: the quotient's error is about 2^-46 relative for float32 parts.
    """
    q = a.hi / b.hi
    regular = jnp.isfinite(q) & jnp.isfinite(a.hi) & jnp.isfinite(b.hi) & (b.hi != 0)
    zero, one = jnp.zeros_like(q), jnp.ones_like(q)
    num = Pair(jnp.where(regular, a.hi, zero), jnp.where(regular, a.lo, zero))
    den = Pair(jnp.where(regular, b.hi, one), jnp.where(regular, b.lo, zero))
    safe = jnp.where(regular, q, zero)
    r = sub(num, mul(den, Pair(safe, zero)))
    return Pair(*_quick_two_sum(q, jnp.where(regular, r.hi / den.hi, zero)))


def sqrt(a: Pair) -> Pair:
    """``sqrt(a)`` (NaN for negative ``a``, as IEEE float64)."""
    s = jnp.sqrt(a.hi)
    regular = jnp.isfinite(s) & (s > 0)
    safe = jnp.where(regular, s, jnp.ones_like(s))
    r = sub(a, mul(Pair(safe, jnp.zeros_like(s)), Pair(safe, jnp.zeros_like(s))))
    return Pair(*_quick_two_sum(s, jnp.where(regular, r.hi / (2 * safe), jnp.zeros_like(s))))
