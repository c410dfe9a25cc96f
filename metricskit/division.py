"""The one division-by-count helper: it owns the empty-count policy (``x / 0`` reports ``0``)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from metricskit import exact
from metricskit.dtypes import float_dtype

__all__ = ["divide"]


def divide(numerator: Any, count: Any) -> Any:
    """``numerator / count`` in floating point, with ``0`` wherever ``count`` is zero.

    An entry with no samples reports ``0``, never ``nan`` or ``inf``. If either argument is an
    exact :class:`~metricskit.exact.Pair` or :class:`~metricskit.exact.Words`, the division is
    done in double-float arithmetic and the result is a ``Pair`` (reported as float64).

    Args:
        numerator: The accumulated value (an array, ``Pair`` or ``Words``).
        count: The accumulated count, broadcast against ``numerator``.

    Returns:
        The quotient in the accumulation float dtype (or wider), or a ``Pair``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from metricskit import divide
        >>> divide(jnp.array([3.0, 1.0]), jnp.array([2, 0]))
        Array([1.5, 0. ], dtype=float32)
    """
    exact_args = (exact.Pair, exact.Words)
    if isinstance(numerator, exact_args) or isinstance(count, exact_args):
        num, den = exact.as_pair(numerator), exact.as_pair(count)
        shape = jnp.broadcast_shapes(jnp.shape(num.hi), jnp.shape(den.hi))
        empty = jnp.broadcast_to(den.hi == 0, shape)
        one = exact.Pair(jnp.ones(shape, den.hi.dtype), jnp.zeros(shape, den.hi.dtype))
        den = exact.where(empty, one, den)
        zero = exact.Pair(jnp.zeros(shape, num.hi.dtype), jnp.zeros(shape, num.hi.dtype))
        return exact.where(empty, zero, exact.div(num, den))
    top, bottom = jnp.asarray(numerator), jnp.asarray(count)
    out_dtype = jnp.promote_types(top.dtype, float_dtype())
    none = bottom == 0
    safe = jnp.where(none, jnp.ones_like(bottom), bottom)
    quotient = top.astype(out_dtype) / safe.astype(out_dtype)
    return jnp.where(none, jnp.zeros((), out_dtype), quotient)
