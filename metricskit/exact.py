"""Numbers: the dtype policy, and exact numbers without ``jax_enable_x64``.

**The dtype policy.** A step value or count is first given a *logical dtype* (:func:`logical`),
one of ``bool``, ``int32``, ``int64``, ``float32`` and ``float64``:

- bool stays ``bool``; signed integers of at most 32 bits and unsigned integers of at most 16
  bits are ``int32``; ``int64``, ``uint32`` and ``uint64`` are ``int64``;
- ``float16``, ``bfloat16`` and ``float32`` are ``float32``; ``float64`` is ``float64``;
- a Python ``int`` is ``int32`` when it fits, else ``int64``; a Python ``float`` is
  ``float64``; complex numbers, strings and objects are not numeric.

With ``jax_enable_x64`` off, JAX has no 64-bit arrays, so ``int64`` and ``float64`` are
*wide*: they travel and are stored as two 32-bit words that hold them exactly (integers up to
``2**60`` in magnitude, floats to 48 of their 53 bits and within float32's range).

**Exact numbers.**

- :class:`Pair` is a double-float ``hi + lo``: 48 bits of precision with float32 parts,
  infinities carried as float64 would carry them. Sums are TwoSum-compensated (Knuth;
  Dekker, "A floating-point technique for extending the available precision", 1971), products
  split their factors with ``lax.reduce_precision`` rather than Dekker's ``c * a`` trick, so no
  fused multiply-add can break them; the error terms are dropped where a result is not finite,
  so ``inf + 1`` is ``inf``, never a spurious NaN.
- :class:`Words` is an integer ``hi * 2**30 + lo`` with ``0 <= lo < 2**30`` (two integer
  arrays), added with a carry: exact up to ``2**60`` with int32 words, never wrapping at 2^31.
- :class:`Ratio` is an exact quotient to be divided on the host in float64, so a mean of
  integer data is the correctly rounded ``sum / count``; :func:`divide` is the one division by
  a count on the device (an empty count reports ``0``).

An *accumulator* is a ``Pair`` (float kind) or ``Words`` (integer kind). Both are pytrees of
two leaves, so XLA fuses their arithmetic with the rest of a step. Every function works
elementwise, eagerly, under ``jit`` and under ``vmap``; the ``xp`` argument of the few that
also run on the host takes ``numpy``.

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

import contextlib
import functools
import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal, TypeVar, cast

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from metricskit.log import LOGGER

__all__ = [  # the public names (the dtype policy and pytree helpers are internal)
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
    "divide",
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

# -- attrs classes as pytrees -----------------------------------------------------------------

T = TypeVar("T")


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in attrs.fields(cls))


@functools.cache
def _field_set(cls: type) -> frozenset[str]:
    return frozenset(_field_names(cls))


def replace(obj: T, changes: Mapping[str, Any]) -> T:
    """A copy of the attrs instance ``obj`` with ``changes``, built as unflattening builds it.

    Unlike ``attrs.evolve`` this runs no ``__init__``, converters or validators: it is for
    swapping array fields of a state (a few hundred nanoseconds, not microseconds).

    Args:
        obj: An instance of an attrs class registered with :func:`register_pytree`.
        changes: New values by field name.

    Returns:
        The new instance; ``obj`` is unchanged.

    Examples:
        >>> import attrs
        >>> from metricskit.exact import replace
        >>> @attrs.frozen
        ... class Point:
        ...     x: int
        ...     y: int
        >>> replace(Point(1, 2), {"y": 5})
        Point(x=1, y=5)
    """
    cls = type(obj)
    names = _field_names(cast(Any, cls))
    if not _field_set(cast(Any, cls)).issuperset(changes):
        unknown = set(changes).difference(names)
        raise TypeError(
            f"{cls.__name__}.replace() got {sorted(unknown)}, which are not fields of "
            f"{cls.__name__} (its fields: {list(names)}); check the spelling"
        )
    return build(cls, [(n, changes[n] if n in changes else getattr(obj, n)) for n in names])


def build(cls: type[T], items: Iterable[tuple[str, Any]]) -> T:
    """An instance of ``cls`` with the attributes ``items``, set directly (no ``__init__``,
    converters or validators: tracer-safe)."""
    new: Any = object.__new__(cls)
    for name, value in items:
        object.__setattr__(new, name, value)
    return new  # type: ignore[no-any-return]


def register_pytree(cls: type, data_fields: Sequence[str], meta_fields: Sequence[str]) -> None:
    """Register ``cls`` as a pytree whose ``data_fields`` are leaves and ``meta_fields`` static.

    Unflattening sets the attributes directly (no ``__init__``, converters or validators), so it
    is cheap and safe with tracers and placeholder leaves.

    Args:
        cls: An attrs class (slotted or not, frozen or not).
        data_fields: Names of the fields that are pytree children.
        meta_fields: Names of the fields that are hashable, static structure.

    Examples:
        >>> import attrs, jax
        >>> from metricskit.exact import register_pytree
        >>> @attrs.frozen
        ... class Pair:
        ...     x: object
        ...     tag: str
        >>> register_pytree(Pair, ["x"], ["tag"])
        >>> jax.tree.map(lambda v: v + 1, Pair(1, "a"))
        Pair(x=2, tag='a')
    """
    data, meta = tuple(data_fields), tuple(meta_fields)
    keys = tuple(jax.tree_util.GetAttrKey(name) for name in data)
    get_data, get_meta = _getter(data), _getter(meta)
    slotted = "__dict__" not in dir(cls) or bool(getattr(cls, "__slots__", ()))

    def flatten(obj: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        return get_data(obj), get_meta(obj)

    def flatten_with_keys(obj: Any) -> tuple[list[tuple[Any, Any]], tuple[Any, ...]]:
        children, aux = flatten(obj)
        return list(zip(keys, children, strict=True)), aux

    def unflatten(aux: tuple[Any, ...], children: Any) -> Any:
        obj: Any = object.__new__(cls)
        if slotted:
            for name, value in zip(meta, aux, strict=True):
                object.__setattr__(obj, name, value)
            for name, value in zip(data, children, strict=True):
                object.__setattr__(obj, name, value)
        else:  # one dict update: the fast path for metrics (attrs classes with a __dict__)
            obj.__dict__.update(zip(meta, aux, strict=True))
            obj.__dict__.update(zip(data, children, strict=True))
        return obj

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)


def _getter(names: tuple[str, ...]) -> Any:
    """A function returning the tuple of the named attributes of an object (C-speed)."""
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        name = names[0]
        return lambda obj: (getattr(obj, name),)
    return operator.attrgetter(*names)


# -- the dtype policy -------------------------------------------------------------------------

LogicalDtype = Literal["bool", "int32", "int64", "float32", "float64"]

INT_LIMIT: Final = 2**60
"""Integers are exact up to this magnitude (values, counts and their sums) with x64 off."""


def x64() -> bool:
    """Whether ``jax_enable_x64`` is on (read at each call: tests may flip it).

    Examples:
        >>> from metricskit.exact import x64
        >>> x64()
        False
    """
    return bool(jax.dtypes.canonicalize_dtype(np.float64) == np.float64)


def float_dtype() -> np.dtype:
    """The floating dtype of accumulators: ``float64`` with x64, else ``float32``.

    Examples:
        >>> from metricskit.exact import float_dtype
        >>> float_dtype()
        dtype('float32')
    """
    return np.dtype(np.float64 if x64() else np.float32)


def int_dtype() -> np.dtype:
    """The integer dtype of accumulator words: ``int64`` with x64, else ``int32``.

    Examples:
        >>> from metricskit.exact import int_dtype
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
        >>> from metricskit.exact import logical
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
        >>> from metricskit.exact import logical_of_python
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
        >>> from metricskit.exact import kind
        >>> kind("bool"), kind("float64")
        ('int', 'float')
    """
    return "float" if dtype.startswith("float") else "int"


def is_wide(dtype: str) -> bool:
    """Whether values of this logical dtype travel as two 32-bit words (64 bits, x64 off).

    Examples:
        >>> from metricskit.exact import is_wide
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
        >>> from metricskit.exact import upcast
        >>> upcast(jnp.array(1.5, jnp.bfloat16), jnp.float32)
        Array(1.5, dtype=float32)
    """
    x = jnp.asarray(x)
    out: jax.Array = x.astype(dtype)
    if out.dtype == np.float32 and x.dtype.itemsize == 2 and jnp.issubdtype(x.dtype, jnp.floating):
        info: Any = jnp.finfo(x.dtype)  # type: ignore[no-untyped-call,unused-ignore]
        out = jax.lax.reduce_precision(out, exponent_bits=8, mantissa_bits=info.nmant)
    return out


# -- double-float arithmetic ------------------------------------------------------------------


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
        >>> from metricskit import exact
        >>> x = jnp.array([1.5, -0.0, jnp.inf, jnp.nan])
        >>> jax.jit(exact.rounded)(x)
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
    # on the host, inf - inf inside TwoSum is expected: it is masked there
    quiet = np.errstate(invalid="ignore", over="ignore") if xp is np else contextlib.nullcontext()
    with quiet:
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


# -- exact accumulators -----------------------------------------------------------------------

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


PARTS: Final = {"pair": ("hi", "lo"), "words": ("lo", "hi")}
"""The leaves of each exact storage (a field's ``"pair"`` or ``"words"``), in pytree order."""
ACCUMULATORS: Final = {"pair": Pair, "words": Words}
"""The class of each exact storage."""

register_pytree(Pair, PARTS["pair"], [])
register_pytree(Words, PARTS["words"], [])
register_pytree(Ratio, ["numerator", "denominator"], [])
register_pytree(Finish, ["operand"], ["fn"])


def lead(x: Any) -> Any:
    """The first leaf of an array (itself), Pair or Words, which has the value's shape."""
    return x.hi if type(x) is Pair else x.lo if type(x) is Words else x


Accumulator = Pair | Words


def zeros(kind: str, shape: tuple[int, ...], xp: Any = jnp) -> Accumulator:
    """An accumulator holding zero: ``kind`` is ``"float"`` (a Pair) or ``"int"`` (Words)."""
    dtype, cls = (float_dtype(), Pair) if kind == "float" else (int_dtype(), Words)
    return cls(xp.zeros(shape, dtype), xp.zeros(shape, dtype))


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
        return add(_plain(jnp.sum(x.hi), x.hi.dtype), _plain(jnp.sum(x.lo), x.lo.dtype))
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
    x = x.astype(np.uint64 if x.dtype.kind == "u" else np.int64)
    return Words((x & _MASK).astype(np.int32), (x >> BITS).astype(np.int32))


# -- division by a count ----------------------------------------------------------------------


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
    exact_args = (Pair, Words)
    if isinstance(numerator, exact_args) or isinstance(count, exact_args):
        num, den = as_pair(numerator), as_pair(count)
        shape = jnp.broadcast_shapes(jnp.shape(num.hi), jnp.shape(den.hi))
        empty = jnp.broadcast_to(den.hi == 0, shape)
        one = Pair(jnp.ones(shape, den.hi.dtype), jnp.zeros(shape, den.hi.dtype))
        den = where(empty, one, den)
        zero = Pair(jnp.zeros(shape, num.hi.dtype), jnp.zeros(shape, num.hi.dtype))
        return where(empty, zero, div(num, den))
    top, bottom = jnp.asarray(numerator), jnp.asarray(count)
    out_dtype = jnp.promote_types(top.dtype, float_dtype())
    none = bottom == 0
    safe = jnp.where(none, jnp.ones_like(bottom), bottom)
    quotient = top.astype(out_dtype) / safe.astype(out_dtype)
    return jnp.where(none, jnp.zeros((), out_dtype), quotient)
