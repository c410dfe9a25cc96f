"""Accumulation dtypes and the division-by-count helper.

This is the one module that decides which dtype a value is stored and accumulated in, and
the one place that owns the empty-count policy (a quotient whose count is zero is ``0``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "count_dtype",
    "divide",
    "float_dtype",
    "input_dtype",
    "is_numeric_dtype",
    "is_paired",
]


def _x64() -> bool:
    return bool(jax.dtypes.canonicalize_dtype(np.float64) == np.float64)


def float_dtype() -> np.dtype[np.floating]:
    """The dtype that sums of values are accumulated in.

    Returns:
        ``float64`` when ``jax_enable_x64`` is on, else ``float32``.

    Examples:
        >>> from metricskit.numerics import float_dtype
        >>> float_dtype()
        dtype('float32')
    """
    return np.dtype(np.float64 if _x64() else np.float32)


def is_numeric_dtype(dtype: np.dtype) -> bool:
    """Whether values of ``dtype`` can be accumulated (bool, integer or real floating).

    Args:
        dtype: A NumPy or JAX dtype (``bfloat16`` included).

    Returns:
        ``True`` for bool, signed or unsigned integer and real floating dtypes.

    Examples:
        >>> import numpy as np
        >>> from metricskit.numerics import is_numeric_dtype
        >>> is_numeric_dtype(np.dtype(np.float16)), is_numeric_dtype(np.dtype(object))
        (True, False)
    """
    return bool(
        jnp.issubdtype(dtype, jnp.floating)
        or jnp.issubdtype(dtype, jnp.integer)
        or jnp.issubdtype(dtype, jnp.bool_)
    )


def input_dtype(dtype: np.dtype) -> np.dtype:
    """The canonical dtype a step value of ``dtype`` is converted to before it is used.

    Floating values narrower than float32 (bfloat16, float16) become float32; float64 stays
    float64 (with ``jax_enable_x64`` off only host values can be float64: they travel to the
    device as a float32 pair, see :func:`is_paired`). Integers become int32 (int64 with x64
    on), bools stay bool.

    Args:
        dtype: The dtype of the value as the caller passed it.

    Returns:
        The dtype the value is converted to.

    Raises:
        TypeError: If ``dtype`` is not numeric.

    Examples:
        >>> import numpy as np, ml_dtypes
        >>> from metricskit.numerics import input_dtype
        >>> input_dtype(np.dtype(ml_dtypes.bfloat16)), input_dtype(np.dtype(np.int64))
        (dtype('float32'), dtype('int32'))
    """
    dtype = np.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.bool_):
        return np.dtype(np.bool_)
    if jnp.issubdtype(dtype, jnp.integer):
        return np.dtype(np.int64 if _x64() else np.int32)
    if jnp.issubdtype(dtype, jnp.floating):
        return np.dtype(np.float64 if dtype.itemsize >= 8 else np.float32)
    raise TypeError(f"dtype {dtype} is not numeric (expected bool, integer or real floating)")


def is_paired(dtype: Any) -> bool:
    """Whether step values of canonical ``dtype`` travel as a float32 ``(hi, lo)`` pair.

    True for float64 when ``jax_enable_x64`` is off: the host splits each value into
    ``hi = float32(v)`` and ``lo = float32(v - hi)`` so that no precision is lost on the way in.

    Args:
        dtype: A canonical input dtype (see :func:`input_dtype`).

    Returns:
        Whether the value is carried as a pair.

    Examples:
        >>> import numpy as np
        >>> from metricskit.numerics import is_paired
        >>> is_paired(np.float64), is_paired(np.float32)
        (True, False)
    """
    return np.dtype(dtype) == np.float64 and not _x64()


def count_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype counts given as ``dtype`` are accumulated in.

    Integer and bool counts accumulate as integers, floating counts (weights) as
    :func:`float_dtype`.

    Args:
        dtype: The dtype of the count as the caller passed it.

    Returns:
        ``int32``/``int64`` for integer and bool counts, ``float32``/``float64`` for floats.

    Raises:
        TypeError: If ``dtype`` is not numeric.

    Examples:
        >>> import numpy as np
        >>> from metricskit.numerics import count_dtype
        >>> count_dtype(np.dtype(bool)), count_dtype(np.dtype(np.float16))
        (dtype('int32'), dtype('float32'))
    """
    canonical = input_dtype(dtype)
    if canonical == np.bool_:
        return input_dtype(np.dtype(np.int32))
    if jnp.issubdtype(canonical, jnp.floating):
        return float_dtype()
    return canonical


def divide(numerator: Any, count: Any) -> Any:
    """``numerator / count`` in floating point, with ``0`` wherever ``count`` is zero.

    This helper owns the empty-count policy of every built-in metric: an entry with no
    samples reports ``0``, never ``nan`` or ``inf``. If either argument is a
    :class:`metricskit.exact.Pair`, the division is done in double-float arithmetic and the
    result is a ``Pair``.

    Args:
        numerator: The accumulated value (an array or a ``Pair``).
        count: The accumulated count (an array or a ``Pair``); broadcast against ``numerator``.

    Returns:
        The quotient in :func:`float_dtype` (or wider, if ``numerator`` is wider), or a ``Pair``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from metricskit.numerics import divide
        >>> divide(jnp.array([3.0, 1.0]), jnp.array([2, 0]))
        Array([1.5, 0. ], dtype=float32)
    """
    from metricskit import exact

    if isinstance(numerator, exact.Pair) or isinstance(count, exact.Pair):
        num_p = exact.as_pair(numerator, float_dtype())
        den_p = exact.int_pair(count, float_dtype()) if not isinstance(count, exact.Pair) else count
        shape = jnp.broadcast_shapes(jnp.shape(num_p.hi), jnp.shape(den_p.hi))
        empty_p = jnp.broadcast_to(den_p.hi == 0, shape)
        one = exact.as_pair(jnp.ones(shape, float_dtype()))
        den_p = exact.where(empty_p, one, exact.broadcast(den_p, shape))
        num_p = exact.broadcast(num_p, shape)
        zero = exact.as_pair(jnp.zeros(shape, float_dtype()))
        return exact.where(empty_p, zero, exact.div(num_p, den_p))
    num = jnp.asarray(numerator)
    den = jnp.asarray(count)
    out_dtype = jnp.promote_types(num.dtype, float_dtype())
    empty = den == 0
    safe = jnp.where(empty, jnp.ones_like(den), den)
    quotient = num.astype(out_dtype) / safe.astype(out_dtype)
    return jnp.where(empty, jnp.zeros((), out_dtype), quotient)
