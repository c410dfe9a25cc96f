"""Declaring the fields of a :class:`~metricskit.Metric`: :func:`state` and :func:`static`.

A state field is declared once, with everything the engine needs to know about it: its
reduction (how two partial values combine, see :mod:`metricskit.reductions`), its shape and
its dtype for a step of a given :class:`Spec`, and whether it is an exact accumulator. The
empty value of every state field is zero, so it is not declared at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NamedTuple

import attrs
import jax.numpy as jnp
import numpy as np

from metricskit import exact
from metricskit.dtypes import float_dtype, int_dtype, is_wide, kind
from metricskit.reductions import REDUCTIONS, ReductionName

__all__ = [
    "FieldSpec",
    "Spec",
    "field_kind",
    "field_spec",
    "reduction_of",
    "state",
    "static",
    "storage",
    "zeros",
]

# Metadata keys on attrs fields.
_KIND: Final = "metricskit.kind"
_REDUCE: Final = "metricskit.reduce"
_SHAPE: Final = "metricskit.shape"
_DTYPE: Final = "metricskit.dtype"
_EXACT: Final = "metricskit.exact"

_SHAPES: Final = ("value", "count", "sample", "scalar")
_DTYPES: Final = ("float", "int", "bool", "value", "count")


class Spec(NamedTuple):
    """Shape and logical dtype of one step's value or count (see :mod:`metricskit.dtypes`).

    Attributes:
        shape: The array shape.
        dtype: ``"bool"``, ``"int32"``, ``"int64"``, ``"float32"`` or ``"float64"``.
    """

    shape: tuple[int, ...]
    dtype: str


class FieldSpec(NamedTuple):
    """Shape and storage of one state field for a given step spec.

    Attributes:
        shape: The field's shape (per key).
        storage: ``"pair"`` (an exact :class:`~metricskit.exact.Pair`), ``"words"`` (exact
            :class:`~metricskit.exact.Words`) or a NumPy dtype name (a plain array).
    """

    shape: tuple[int, ...]
    storage: str


def state(
    reduce: ReductionName,
    *,
    shape: str | tuple[int, ...] = "value",
    dtype: Any = "float",
    exact: bool = False,
) -> Any:
    """Declare an array field of a :class:`Metric`: its reduction, shape and dtype, once.

    Args:
        reduce: How two partial values combine across devices, shards and evaluation
            batches: ``"sum"``, ``"max"``, ``"min"``, ``"concat"`` (per-sample values along
            axis 0: the metric is then a per-sample metric, appended across evaluation
            batches), ``"last"``, or ``"merge"`` (only the metric's own ``aggregate`` knows).
        shape: ``"value"`` (the step value's shape, the default), ``"count"``, ``"sample"``
            (value and count broadcast), ``"scalar"``, or a fixed tuple.
        dtype: ``"float"`` (float32; float64 with x64: the default), ``"int"``, ``"bool"``,
            ``"value"`` or ``"count"`` (the step's own logical dtype), or a NumPy dtype.
        exact: Store the field as an exact accumulator (a double-float
            :class:`~metricskit.exact.Pair` for floats, carried
            :class:`~metricskit.exact.Words` for integers); its sums never drift or wrap.

    Returns:
        An ``attrs`` field (its empty value is zero, as every state field's).

    Raises:
        ValueError: For an unknown reduction, shape or dtype.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> @mk.register_metric("peak_doc")
        ... class Peak(mk.Metric):
        ...     peak = mk.state("max")
        ...     count = mk.state("sum", shape="scalar", dtype="int")
        ...     def update(self, value, count):
        ...         first = self.count == 0  # all zeros is empty: ignore the zero peak
        ...         peak = jnp.where(first, value, jnp.maximum(self.peak, value))
        ...         return self.replace(peak=peak, count=self.count + 1)
        ...     def compute(self):
        ...         return self.peak
        >>> mk.MetricStore().update({"x": {"value": -3.0, "log_modes": ["peak_doc"]}}).compute()
        {'x_peak_doc': -3.0}
    """
    if reduce not in REDUCTIONS:
        raise ValueError(
            f"unknown reduction {reduce!r}; use one of {sorted(REDUCTIONS)} "
            "('merge' when only the metric's own aggregate() can combine the field)"
        )
    if not (
        shape in _SHAPES
        or (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape))
    ):
        raise ValueError(
            f"state shape {shape!r} must be one of {list(_SHAPES)} or a tuple of non-negative ints"
        )
    if isinstance(dtype, str) and dtype in _DTYPES:
        if exact and dtype == "bool":
            raise ValueError("exact=True needs a numeric dtype, not 'bool'")
    else:
        try:
            parsed = jnp.dtype(dtype)
        except TypeError:
            parsed = None
        if parsed is None or not any(
            jnp.issubdtype(parsed, t) for t in (jnp.floating, jnp.integer, jnp.bool_)
        ):
            raise ValueError(
                f"state dtype {dtype!r} must be one of {list(_DTYPES)} or a real NumPy dtype"
            )
        dtype = parsed.name
        if exact:
            raise ValueError(
                f"exact=True takes dtype 'float', 'int', 'value' or 'count', not {dtype!r}"
            )
    return attrs.field(
        metadata={_KIND: "state", _REDUCE: reduce, _SHAPE: shape, _DTYPE: dtype, _EXACT: exact}
    )


def static(default: Any = attrs.NOTHING) -> Any:
    """Declare a configuration field of a :class:`Metric` (hashable, part of the structure).

    Args:
        default: The default value, if any.

    Returns:
        An ``attrs`` field that is pytree metadata, not a leaf.

    Examples:
        >>> import attrs
        >>> import metricskit as mk
        >>> attrs.fields(attrs.make_class("C", {"p": mk.static(2.0)})).p.default
        2.0
    """
    return attrs.field(default=default, metadata={_KIND: "static"})


def field_kind(field: attrs.Attribute[Any]) -> str | None:
    """``"state"``, ``"static"``, or ``None`` for a field declared with neither."""
    kind_: str | None = field.metadata.get(_KIND)
    return kind_


def reduction_of(field: attrs.Attribute[Any]) -> str:
    """The reduction name a state field was declared with."""
    return str(field.metadata[_REDUCE])


def field_spec(field: attrs.Attribute[Any], value: Spec, count: Spec) -> FieldSpec:
    """The shape and storage of a declared state field for steps of the given specs."""
    return _field_spec(field.metadata, value, count)


def _field_spec(meta: Mapping[str, Any], value: Spec, count: Spec) -> FieldSpec:
    shape = meta[_SHAPE]
    if shape == "value":
        shape = value.shape
    elif shape == "count":
        shape = count.shape
    elif shape == "sample":
        shape = tuple(np.broadcast_shapes(value.shape, count.shape))
    elif shape == "scalar":
        shape = ()
    return FieldSpec(tuple(shape), storage(meta[_DTYPE], meta[_EXACT], value, count))


def storage(dtype: str, exact_field: bool, value: Spec, count: Spec) -> str:
    """The storage of a field declared with ``dtype`` and ``exact``, for the given step specs.

    Examples:
        >>> from metricskit.fields import Spec, storage
        >>> v, c = Spec((), "float64"), Spec((), "int32")
        >>> storage("value", False, v, c), storage("count", True, v, c), storage("int", False, v, c)
        ('pair', 'words', 'int32')
    """
    if dtype in ("value", "count"):
        logical = (value if dtype == "value" else count).dtype
        if exact_field or is_wide(logical):
            return "pair" if kind(logical) == "float" else "words"
        return logical
    if dtype == "float":
        return "pair" if exact_field else float_dtype().name
    if dtype == "int":
        return "words" if exact_field else int_dtype().name
    return dtype


def zeros(spec: FieldSpec, xp: Any = jnp) -> Any:
    """The zero (empty) value of a field of ``spec``: an array, or an exact Pair/Words."""
    if spec.storage == "pair":
        return exact.zeros("float", spec.shape, xp)
    if spec.storage == "words":
        return exact.zeros("int", spec.shape, xp)
    return xp.zeros(spec.shape, jnp.dtype(spec.storage))
