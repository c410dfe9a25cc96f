"""The dtype policy: the one place that decides how a step's numbers are typed and stored.

A step value or count is first given a *logical dtype* (:func:`logical`), one of ``bool``,
``int32``, ``int64``, ``float32`` and ``float64``:

- bool stays ``bool``; signed integers of at most 32 bits and unsigned integers of at most 16
  bits are ``int32``; ``int64``, ``uint32`` and ``uint64`` are ``int64``;
- ``float16``, ``bfloat16`` and ``float32`` are ``float32``; ``float64`` is ``float64``;
- a Python ``int`` is ``int32`` when it fits, else ``int64``; a Python ``float`` is
  ``float64``; complex numbers, strings and objects are not numeric.

With ``jax_enable_x64`` off, JAX has no 64-bit arrays, so ``int64`` and ``float64`` are
*wide*: they travel and are stored as two 32-bit words (:class:`metricskit.exact.Words` for
integers, :class:`metricskit.exact.Pair` for floats) that hold them exactly (integers up to
``2**60`` in magnitude, floats to 48 of their 53 bits and within float32's range).
"""

from __future__ import annotations

import functools
from typing import Any, Final, Literal

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "INT_LIMIT",
    "LogicalDtype",
    "float_dtype",
    "int_dtype",
    "is_wide",
    "kind",
    "logical",
    "logical_of_python",
    "upcast",
    "x64",
]

LogicalDtype = Literal["bool", "int32", "int64", "float32", "float64"]

INT_LIMIT: Final = 2**60
"""Integers are exact up to this magnitude (values, counts and their sums) with x64 off."""


def x64() -> bool:
    """Whether ``jax_enable_x64`` is on (read at each call: tests may flip it).

    Examples:
        >>> from metricskit.dtypes import x64
        >>> x64()
        False
    """
    return bool(jax.dtypes.canonicalize_dtype(np.float64) == np.float64)


def float_dtype() -> np.dtype:
    """The floating dtype of accumulators: ``float64`` with x64, else ``float32``.

    Examples:
        >>> from metricskit.dtypes import float_dtype
        >>> float_dtype()
        dtype('float32')
    """
    return np.dtype(np.float64 if x64() else np.float32)


def int_dtype() -> np.dtype:
    """The integer dtype of accumulator words: ``int64`` with x64, else ``int32``.

    Examples:
        >>> from metricskit.dtypes import int_dtype
        >>> int_dtype()
        dtype('int32')
    """
    return np.dtype(np.int64 if x64() else np.int32)


@functools.lru_cache(maxsize=256)
def logical(dtype: np.dtype) -> LogicalDtype | None:
    """The logical dtype of values of a NumPy or JAX ``dtype``, or ``None`` if not numeric.

    Args:
        dtype: The dtype as the caller passed it (``bfloat16`` included).

    Returns:
        ``"bool"``, ``"int32"``, ``"int64"``, ``"float32"``, ``"float64"`` or ``None``.

    Examples:
        >>> import numpy as np, ml_dtypes
        >>> from metricskit.dtypes import logical
        >>> logical(np.dtype(ml_dtypes.bfloat16)), logical(np.dtype(np.uint32))
        ('float32', 'int64')
        >>> logical(np.dtype(np.complex64)) is None
        True
    """
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return "bool"
    if jnp.issubdtype(dtype, jnp.integer):
        narrow = dtype.itemsize < 4 or (dtype.itemsize == 4 and dtype.kind == "i")
        return "int32" if narrow else "int64"
    if jnp.issubdtype(dtype, jnp.floating):
        return "float64" if dtype.itemsize >= 8 else "float32"
    return None


def logical_of_python(x: bool | int | float) -> LogicalDtype:
    """The logical dtype of a Python number (``int`` by its size).

    Examples:
        >>> from metricskit.dtypes import logical_of_python
        >>> logical_of_python(3), logical_of_python(2**40), logical_of_python(0.5)
        ('int32', 'int64', 'float64')
    """
    if isinstance(x, bool):
        return "bool"
    if isinstance(x, int):
        return "int32" if -(2**31) <= x < 2**31 else "int64"
    return "float64"


def kind(dtype: str) -> Literal["int", "float"]:
    """Whether a logical dtype accumulates as integers (``bool`` too) or floats.

    Examples:
        >>> from metricskit.dtypes import kind
        >>> kind("bool"), kind("float64")
        ('int', 'float')
    """
    return "float" if dtype.startswith("float") else "int"


def is_wide(dtype: str) -> bool:
    """Whether values of this logical dtype travel as two 32-bit words (64 bits, x64 off).

    Examples:
        >>> from metricskit.dtypes import is_wide
        >>> is_wide("float64"), is_wide("int32")
        (True, False)
    """
    return dtype in ("int64", "float64") and not x64()


def upcast(x: Any, dtype: Any) -> jax.Array:
    """``x`` converted to ``dtype``; a narrower float is kept rounded to its own format.

    With ``xla_allow_excess_precision`` (XLA's default) the compiler may drop a caller's
    ``float32 -> bfloat16`` rounding together with this ``bfloat16 -> float32`` conversion,
    and hand on the unrounded float32 instead of the bfloat16 value the step returns. A
    ``reduce_precision`` to the narrow format after the conversion is an identity on the
    narrow value and restores that rounding if it was dropped (for bfloat16 and float16 values
    converted to float32; for float16 it keeps float32's exponent range, so that float16
    subnormals stay exact: the restored rounding is float16's for its normal values).

    Args:
        x: A JAX array of any dtype.
        dtype: The dtype to convert to.

    Returns:
        The converted array.

    Examples:
        >>> import jax.numpy as jnp
        >>> from metricskit.dtypes import upcast
        >>> upcast(jnp.array(1.5, jnp.bfloat16), jnp.float32)
        Array(1.5, dtype=float32)
    """
    x = jnp.asarray(x)
    out: jax.Array = x.astype(dtype)
    if out.dtype == np.float32 and x.dtype.itemsize == 2 and jnp.issubdtype(x.dtype, jnp.floating):
        info: Any = jnp.finfo(x.dtype)  # type: ignore[no-untyped-call,unused-ignore]
        out = jax.lax.reduce_precision(out, exponent_bits=8, mantissa_bits=info.nmant)
    return out
