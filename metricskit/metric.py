"""What a metric is: its fields, their reductions, the :class:`Metric` class and log modes.

A metric is an immutable pytree of *state* fields (arrays) and *static* fields (hashable
configuration), each declared once (:func:`state`, :func:`static`). A state field names a
reduction, one row of :data:`REDUCTIONS` (how two partial values combine on JAX or NumPy
arrays, its device collective, its host fold of many parts). Everything else is derived from
those declarations:

- the **empty state is all zeros**: :meth:`Metric.empty` fills every declared field with
  zeros, and a reset zero-fills a state of any shape. So a state that a trainer zero-fills
  from ``jax.eval_shape`` *is* the empty state, and ``empty()`` and a reset cannot disagree;
- :meth:`Metric.aggregate` combines field by field with the declared reductions;
- :meth:`Metric.is_empty` reads the field named ``count`` when there is one (all zero: no
  samples), and otherwise asks whether every field is zero.

So a metric's ``update`` must treat zeros as "no samples yet" (a running maximum keeps a count
of samples and ignores its value while the count is zero), and a custom metric needs only its
fields, ``update`` and ``compute``.

A *log mode* (:data:`Mode`) is a registered name (``"mean"``, :func:`register_metric`) or a
:class:`ConfiguredMetric` (a metric class called with its static options; a bare class means
its defaults); :func:`get_log_mode` resolves either to a :class:`LogMode`.

Metric classes are JAX pytrees registered as custom nodes, not with
``jax.tree_util.register_dataclass``: on the JAX versions we test, tree definitions of two
*different* dataclass-registered classes with the same number of leaves compare equal (only
their hashes differ), so jit's cache could run one class's compiled kernel on another's state.
"""

from __future__ import annotations

import abc
import difflib
import enum
import functools
import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Final, Literal, NamedTuple, Self, TypeAlias, TypeVar, cast

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from metricskit import exact
from metricskit.compat import AxisName, all_gather, committed, pmax, pmin, psum
from metricskit.exact import float_dtype, int_dtype, is_wide, kind, register_pytree, replace

# -- reductions: how partial values combine ---------------------------------------------------

ReductionName = Literal["sum", "max", "min", "concat", "last", "merge"]


@attrs.frozen
class Reduction:
    """One way two partial values of a state field combine.

    Attributes:
        name: The name fields use in :func:`metricskit.state`.
        combine: ``combine(xp, a, b, axis)``; ``None`` for ``"merge"`` (only the metric's own
            ``aggregate`` knows how).
        collective: ``collective(x, axis_name, axis)`` inside a map, or ``None``.
        stacked: ``stacked(first, parts)`` on the host for many parts at once (see
            :meth:`fold_stacked`), or ``None`` to fold them one by one with ``combine``.
    """

    name: str
    combine: Callable[[Any, Any, Any, int], Any] | None
    collective: Callable[[Any, AxisName, int], Any] | None = None
    stacked: Callable[[Any, Any], Any] | None = None

    def fold_stacked(self, first: Any, stacked: Any) -> Any:
        """``first`` (or nothing) combined in order with each part of ``stacked`` (NumPy
        arrays, Pairs or Words with a leading parts axis; the sample axis is axis 1),
        bit-identical to combining the parts one by one.

        Raises:
            NotImplementedError: For ``"merge"``.
        """
        if self.stacked is not None:
            return self.stacked(first, stacked)
        if self.combine is None:
            raise NotImplementedError(f"reduction {self.name!r} has no field-wise combine")
        combine = self.combine
        return functools.reduce(lambda a, b: combine(np, a, b, 0), _parts(first, stacked))


def _parts(first: Any, stacked: Any) -> list[Any]:
    """``first`` (if any) and each part of ``stacked`` (leading parts axis), in order."""
    n = jax.tree.leaves(stacked)[0].shape[0]
    parts = [jax.tree.map(lambda x, i=i: x[i], stacked) for i in range(n)]
    return parts if first is None else [first, *parts]


def _plain_collective(op: Callable[[Any, AxisName], Any]) -> Callable[[Any, AxisName, int], Any]:
    """``op`` across devices for a plain array; ``None`` for an exact accumulator (gathered
    and folded with ``aggregate`` instead)."""
    return lambda x, axis_name, axis: (
        None if isinstance(x, exact.Pair | exact.Words) else op(x, axis_name)
    )


def _sum(xp: Any, a: Any, b: Any, axis: int) -> Any:
    return exact.combine(a, b, xp)


def _sum_stacked(first: Any, stacked: Any) -> Any:
    if isinstance(stacked, exact.Words):  # exact and associative: one vectorized sum
        lo = np.sum(stacked.lo.astype(np.int64), axis=0)
        hi = np.sum(stacked.hi.astype(np.int64), axis=0)
        marked = np.any(stacked.lo < 0, axis=0)
        if first is not None:
            lo, hi = lo + first.lo, hi + first.hi
            marked = marked | (np.asarray(first.lo) < 0)
        return exact.words_from_sums(lo, hi, marked, stacked.lo.dtype)
    if isinstance(stacked, exact.Pair) or np.dtype(stacked.dtype).kind == "f":  # in order
        return functools.reduce(lambda a, b: exact.combine(a, b, np), _parts(first, stacked))
    total = np.sum(stacked, axis=0, dtype=stacked.dtype)  # integers wrap alike in any order
    return total if first is None else first + total


def _concat_stacked(first: Any, stacked: Any) -> Any:
    flat = jax.tree.map(lambda x: x.reshape(x.shape[0] * x.shape[1], *x.shape[2:]), stacked)
    return flat if first is None else _concat(np, first, flat, 0)


def _extreme(larger: bool) -> Callable[[Any, Any, Any, int], Any]:
    return lambda xp, a, b, axis: exact.extreme(a, b, larger, xp)


def _concat(xp: Any, a: Any, b: Any, axis: int) -> Any:
    return jax.tree.map(lambda x, y: xp.concatenate([x, y], axis=axis), a, b)


def _gather(x: Any, axis_name: AxisName, axis: int) -> Any:
    return jax.tree.map(lambda y: all_gather(y, axis_name, axis=axis, tiled=True), x)


REDUCTIONS: Final[dict[str, Reduction]] = {
    r.name: r
    for r in (
        Reduction("sum", _sum, _plain_collective(psum), _sum_stacked),
        Reduction("max", _extreme(True), _plain_collective(pmax)),
        Reduction("min", _extreme(False), _plain_collective(pmin)),
        Reduction("concat", _concat, _gather, _concat_stacked),
        Reduction(
            "last",
            lambda xp, a, b, axis: b,
            None,
            lambda first, stacked: jax.tree.map(lambda x: x[-1], stacked),
        ),
        Reduction("merge", None),
    )
}
"""Every reduction a state field can name."""


# -- declaring fields -------------------------------------------------------------------------

# Metadata keys on attrs fields.
_KIND: Final = "metricskit.kind"
_REDUCE: Final = "metricskit.reduce"
_SHAPE: Final = "metricskit.shape"
_DTYPE: Final = "metricskit.dtype"
_EXACT: Final = "metricskit.exact"

_SHAPES: Final = ("value", "count", "sample", "scalar")
_DTYPES: Final = ("float", "int", "bool", "value", "count")


class Spec(NamedTuple):
    """Shape and logical dtype of one step's value or count (see :mod:`metricskit.exact`).

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

    def zeros(self, n: int | None = None, xp: Any = jnp) -> Any:
        """The zero (empty) value of such a field, with a leading axis of ``n`` keys if given:
        an array, or an exact Pair/Words (``xp``: ``jax.numpy`` or ``numpy``)."""
        shape = self.shape if n is None else (n, *self.shape)
        if self.storage in exact.PARTS:
            return exact.zeros("float" if self.storage == "pair" else "int", shape, xp)
        return xp.zeros(shape, jnp.dtype(self.storage))

    @classmethod
    def of(cls, x: Any, stacked: bool = False) -> FieldSpec:
        """The spec of an existing field value (``stacked``: without its leading key axis).

        Raises:
            AttributeError: If ``x`` is neither an array nor a Pair/Words.
        """
        storage = next((s for s, c in exact.ACCUMULATORS.items() if isinstance(x, c)), None)
        leaf = exact.lead(x)
        shape = tuple(np.shape(leaf))
        return cls(shape[1:] if stacked else shape, storage or np.dtype(leaf.dtype).name)


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
        ...     peak = mk.state("merge")  # a maximum that ignores an empty state's zero
        ...     count = mk.state("sum", shape="scalar", dtype="int")
        ...     def update(self, value, count):
        ...         first = self.count == 0  # all zeros is empty: ignore the zero peak
        ...         peak = jnp.where(first, value, jnp.maximum(self.peak, value))
        ...         return self.replace(peak=peak, count=self.count + 1)
        ...     def aggregate(self, other):  # either side may be empty (all zeros)
        ...         both = jnp.maximum(self.peak, other.peak)
        ...         peak = jnp.where(other.count == 0, self.peak, both)
        ...         peak = jnp.where(self.count == 0, other.peak, peak)
        ...         return self.replace(peak=peak, count=self.count + other.count)
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


def x64_storage(field: attrs.Attribute[Any]) -> str | None:
    """The storage of a state field declared ``dtype="int"`` or ``"float"`` (not exact) in this
    process, which follows ``jax_enable_x64``; ``None`` for any other field."""
    dtype = field.metadata[_DTYPE]
    if field.metadata[_EXACT] or dtype not in ("int", "float"):
        return None
    return (int_dtype() if dtype == "int" else float_dtype()).name


def field_spec(field: attrs.Attribute[Any], value: Spec, count: Spec) -> FieldSpec:
    """The shape and storage of a declared state field for steps of the given specs."""
    meta = field.metadata
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
        >>> from metricskit.metric import Spec, storage
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


# -- the Metric class -------------------------------------------------------------------------


class _MetricMeta(abc.ABCMeta):
    """Calling a metric class with only its static options gives a :class:`ConfiguredMetric`
    (a log mode); with its state fields too, an instance."""

    def __call__(cls, /, *args: Any, **kwargs: Any) -> Any:
        if cls is Metric:
            raise TypeError("Metric is the abstract base class: subclass it")
        states = [f.name for f in state_fields(cast(Any, cls))]
        given = [name for name in states if name in kwargs]
        if given and not args and len(given) < len(states):
            missing = [name for name in states if name not in kwargs]
            raise TypeError(
                f"{cls.__name__}({', '.join(f'{n}=...' for n in given)}) gives some state "
                f"fields but not {missing}: pass every state field for an instance, or only "
                f"static options (a configured metric: {cls.__name__}(option=...))"
            )
        if args or given:
            try:
                return super().__call__(*args, **kwargs)
            except TypeError as e:
                if not args or given:
                    raise
                raise TypeError(
                    f"{cls.__name__}{tuple(args)!r}: {e}. A metric class is called with its "
                    f"static options by keyword ({cls.__name__}(option=...), a configured "
                    "metric), or with every state field for an instance"
                ) from None
        return ConfiguredMetric.of(cast(Any, cls), kwargs)


class Metric(metaclass=_MetricMeta):
    """Base class of every metric: one accumulator for one key and one log mode.

    A subclass declares its array fields with :func:`metricskit.state` and its configuration
    with :func:`metricskit.static`, and fills in :meth:`update` and :meth:`compute`;
    the class is then a log mode itself: ``log_modes=[MyMetric]``, or configured with its static
    options, ``log_modes=[MyMetric(decay=0.9)]`` (a :class:`ConfiguredMetric`, set per key);
    :func:`metricskit.register_metric` can give it a name too. The class becomes a frozen
    ``attrs`` class and a JAX pytree when its class statement ends (no decorator needed).
    Every method is a pure function of arrays: it runs eagerly, under ``jax.jit`` and under
    ``jax.vmap`` (a :class:`~metricskit.MetricStore` stacks the metrics of one kind and maps
    the kernels).

    The empty state is all zeros (see :mod:`metricskit.metric`): ``update`` must treat a
    zero state as "no samples yet". :func:`metricskit.testing.check_metric` checks it.

    Attributes:
        accumulates: ``False`` for a metric that holds only the latest step (``single`` and
            the ``noreduce`` modes): a key's step shape may then change between steps (a
            smaller last batch), and two partial states of it are parts of one step.
        exact_inputs: Whether :meth:`update` takes 64-bit values (x64 off) as exact
            :class:`~metricskit.exact.Pair`/:class:`~metricskit.exact.Words`. If ``False``
            (the default) it gets them rounded to float32.
        parts: Suffixes for a metric that reports several values (its ``compute`` returns a
            tuple of that length): each is reported as ``key + postfix + suffix``. Empty
            (the default): one value, reported as ``key + postfix``. A metric whose parts
            depend on its options overrides :meth:`parts_of`.
        postfix: What a key's reported name gets appended when the class (or a configuration
            of it) is a log mode; ``None`` (the default): ``"_"`` and the class name in
            snake case without a trailing ``Metric`` (``DecayedMean`` -> ``"_decayed_mean"``).
        step_merge: For step statistics that do not add up across devices (means, say): a
            function of the devices' gathered values and counts (a leading device axis)
            giving the global step's ``(value, count)``, used by ``update(...,
            axis_name=...)``. ``None`` (the default): values and counts are summed.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> class Total(mk.Metric):
        ...     total = mk.state("sum")
        ...     def update(self, value, count):
        ...         return self.replace(total=self.total + value)
        ...     def compute(self):
        ...         return self.total
        >>> m = Total.empty(mk.Spec((), "float32"), mk.Spec((), "int32"))
        >>> m = m.update(jnp.float32(2.0), 1)
        >>> float(m.aggregate(m).compute())
        4.0
    """

    accumulates: ClassVar[bool] = True
    exact_inputs: ClassVar[bool] = False
    parts: ClassVar[tuple[str, ...]] = ()
    postfix: ClassVar[str | None] = None
    step_merge: ClassVar[Any] = None

    def __setattr__(self, name: str, value: Any) -> None:
        raise attrs.exceptions.FrozenInstanceError()

    def __delattr__(self, name: str) -> None:
        raise attrs.exceptions.FrozenInstanceError()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("__init__") in _INITS:  # attrs copying a class made here: slots=True
            raise TypeError(
                f"{cls.__qualname__} is decorated with an attrs class decorator (@attrs.frozen, "
                "@attrs.define, @attrs.mutable ...): a "
                "metricskit.Metric subclass is a frozen attrs class and a JAX pytree as soon as "
                "its class statement ends; remove the decorator"
            )
        ensure_metric_class(cls)  # a frozen attrs class and a pytree once its statement ends

    @classmethod
    def configure(cls, /, **options: Any) -> ConfiguredMetric:
        """This class with static ``options`` as a log mode: what ``cls(**options)`` gives
        (this spelling is the one type checkers follow).

        Args:
            **options: Static fields by name (the others take their defaults), and optionally
                ``postfix``, the suffix of reported names.

        Returns:
            The :class:`ConfiguredMetric`.

        Raises:
            TypeError: For an abstract class, an unknown option or one that is not plain data.
        """
        return ConfiguredMetric.of(cls, options)

    @classmethod
    def parts_of(cls, options: Mapping[str, Any]) -> tuple[str, ...]:
        """The suffixes of the values a configuration reports (default: :attr:`parts`).

        Args:
            options: Every static field's value, by name.

        Returns:
            The suffixes; empty for a metric that reports one value.
        """
        return cls.parts

    @classmethod
    def field_specs(cls, value: Spec, count: Spec) -> dict[str, FieldSpec]:
        """The shape and storage of every state field for steps of the given specs.

        The default reads the :func:`state` declarations; override it only for a shape the
        declarations cannot say.

        Args:
            value: Shape and logical dtype of one step's value.
            count: Shape and logical dtype of one step's count.

        Returns:
            Field name to :class:`FieldSpec`.
        """
        ensure_metric_class(cls)
        return {f.name: field_spec(f, value, count) for f in state_fields(cls)}

    @classmethod
    def empty(cls, value: Spec, count: Spec, **options: Any) -> Self:
        """The empty (all-zero) state for steps of the given specs.

        Args:
            value: Shape and logical dtype of one step's value.
            count: Shape and logical dtype of one step's count.
            **options: Static fields to set (the others take their defaults).

        Returns:
            A metric with no samples: every state field zero, static fields as configured.

        Raises:
            TypeError: For an unknown option, or a static field without a default not given.
        """
        statics = static_options(cls, options)
        specs = cls.field_specs(Spec(*value), Spec(*count))
        return exact.build(cls, [*((n, s.zeros()) for n, s in specs.items()), *statics])

    @abc.abstractmethod
    def update(self, value: Any, count: Any) -> Self:
        """Add one step.

        Args:
            value: The step's value: an array of the value spec's shape (floats as float32 or
                float64, integers as int32 or int64), or an exact Pair/Words for 64-bit values
                with x64 off when :attr:`exact_inputs` is set.
            count: The step's count, likewise.

        Returns:
            The updated metric, with the same leaf shapes and dtypes.
        """

    @abc.abstractmethod
    def compute(self) -> Any:
        """The reported value: an array, an exact Pair/Words/Ratio, or a tuple of them."""

    def aggregate(self, other: Self) -> Self:
        """Combine two partial states of disjoint data (two devices, shards or batches).

        The default combines field by field with the declared reductions, which makes it
        associative; a metric with ``"merge"`` fields overrides it.

        Args:
            other: A partial state of the same metric.

        Returns:
            The combined state.

        Raises:
            NotImplementedError: If a field is declared ``"merge"`` and this is not overridden.
        """
        return cast(Self, combine_fields(self, other, jnp, axis=0))

    def is_empty(self) -> jax.Array:
        """A boolean scalar: ``True`` when the metric holds no samples (reported as ``0.0``).

        The default: the field named ``count`` is zero, or, without one, every field is zero.
        """
        fields = [f.name for f in state_fields(type(self))]
        names = ["count"] if "count" in fields else fields
        empty = jnp.ones((), bool)
        for name in names:
            for zero in jax.tree.leaves(exact.is_zero(getattr(self, name))):
                empty = empty & jnp.all(zero)
        return empty

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields replaced (no ``__init__`` runs: cheap, tracer-safe).

        Examples:
            >>> import metricskit as mk, jax.numpy as jnp
            >>> m = mk.MeanMetric.empty(mk.Spec((), "float32"), mk.Spec((), "int32"))
            >>> m.replace(count=m.count).count is m.count
            True
        """
        return replace(self, changes)


def zeros_like(metric: Metric, *, drop_samples: int | None = None) -> Metric:
    """The empty state with ``metric``'s structure: every state leaf zero.

    Device leaves keep their shape, dtype and sharding (so a jitted step does not recompile);
    NumPy leaves become NumPy zeros. With ``drop_samples``, NumPy leaves of ``"concat"`` fields
    lose their samples (that axis becomes empty), so an evaluation state grown over batches
    resets to no samples at all.

    Args:
        metric: A state (one key's, or a stacked group's).
        drop_samples: The sample axis of ``"concat"`` fields to empty (0 for one key's state,
            1 for a stacked group), or ``None`` to keep every shape.

    Returns:
        The zero state.
    """
    changes = {}
    for f in state_fields(type(metric)):
        axis = drop_samples if reduction_of(f) == "concat" else None
        changes[f.name] = jax.tree.map(lambda x, a=axis: _zero_leaf(x, a), getattr(metric, f.name))
    return replace(metric, changes)


def _zero_leaf(x: Any, axis: int | None) -> Any:
    if isinstance(x, np.ndarray | np.generic):
        shape = list(np.shape(x))
        if axis is not None and len(shape) > axis:
            shape[axis] = 0
        return np.zeros(shape, x.dtype)
    if committed(x):
        return jnp.zeros_like(x, device=x.sharding)  # the same placement: no recompilation
    return jnp.zeros_like(x)


@functools.cache
def state_fields(cls: type[Metric]) -> tuple[attrs.Attribute[Any], ...]:
    """The fields of ``cls`` declared with :func:`state`, in definition order."""
    ensure_metric_class(cls)
    return tuple(f for f in attrs.fields(cast(Any, cls)) if field_kind(f) == "state")


@functools.cache
def static_fields(cls: type[Metric]) -> tuple[attrs.Attribute[Any], ...]:
    """The fields of ``cls`` declared with :func:`static`, in definition order."""
    ensure_metric_class(cls)
    return tuple(f for f in attrs.fields(cast(Any, cls)) if field_kind(f) == "static")


@functools.cache
def sample_fields(cls: type[Metric]) -> tuple[str, ...]:
    """The names of the fields of ``cls`` that hold per-sample values (``"concat"`` fields,
    whose leading axis is the sample axis)."""
    return tuple(f.name for f in state_fields(cls) if reduction_of(f) == "concat")


@functools.cache
def per_sample(cls: type[Metric]) -> bool:
    """Whether ``cls`` keeps per-sample values (a ``"concat"`` field): evaluation batches of
    it are appended by :func:`metricskit.aggregate_metrics`, not replaced."""
    return bool(sample_fields(cls))


def combine_fields(a: Metric, b: Metric, xp: Any, axis: int) -> Metric:
    """Combine two states field by field with each field's declared reduction.

    Args:
        a: The earlier partial state.
        b: The later partial state, of the same class.
        xp: ``jax.numpy`` or ``numpy``.
        axis: The sample axis of ``"concat"`` fields.

    Returns:
        A state of the same class.

    Raises:
        NotImplementedError: If a field's reduction is ``"merge"``.
    """
    combined = {}
    for f in state_fields(type(a)):
        combine = REDUCTIONS[reduction_of(f)].combine
        if combine is None:
            name = type(a).__name__
            raise NotImplementedError(
                f"{name}.{f.name} is declared with reduce='merge': {name} must override aggregate()"
            )
        combined[f.name] = combine(xp, getattr(a, f.name), getattr(b, f.name), axis)
    return replace(a, combined)


_READY: set[type] = set()
_FIELD_DEFINITION = type(attrs.field())
_INITS: set[Any] = set()  # the __init__ methods _freeze made


def _freeze(klass: type) -> None:
    """Make ``klass`` a frozen attrs class in place, such that an ``@attrs.define(slots=False)``
    written over the class statement can process it again: its field definitions stay in the
    class body, and it is frozen by :class:`Metric`'s ``__setattr__``, not by one of its own.
    (A slotted decorator copies the class: :meth:`Metric.__init_subclass__` refuses that.)"""
    definitions = {n: v for n, v in klass.__dict__.items() if type(v) is _FIELD_DEFINITION}
    try:  # positional arguments as well where the field order permits (as a plain attrs class)
        attrs.frozen(klass, eq=False, slots=False, repr=True)
    except ValueError:  # a field without a default after one with: keyword arguments only
        attrs.frozen(klass, eq=False, slots=False, repr=True, kw_only=True)
    _INITS.add(klass.__dict__["__init__"])
    for name in ("__setattr__", "__delattr__"):
        if name in klass.__dict__:
            delattr(klass, name)
    for name, definition in definitions.items():
        setattr(klass, name, definition)


def ensure_metric_class(cls: type[Metric]) -> None:
    """Make ``cls`` a frozen attrs class and a JAX pytree, once (no decorator needed).

    Raises:
        TypeError: If ``cls`` is not a concrete subclass of :class:`Metric`, or has a field
            declared with neither :func:`state` nor :func:`static`.
    """
    if cls in _READY:
        return
    if cls is Metric:
        raise TypeError("metricskit.Metric is the abstract base class: subclass it")
    if not (isinstance(cls, type) and issubclass(cls, Metric)):
        raise TypeError(f"{cls!r} is not a subclass of metricskit.Metric")
    for klass in (*reversed(cls.__mro__[1:]), cls):  # base classes first: they hold fields too
        if (
            issubclass(klass, Metric)
            and klass is not Metric
            and "__attrs_attrs__" not in klass.__dict__
        ):
            _freeze(klass)
    fields = attrs.fields(cast(Any, cls))
    loose = [f.name for f in fields if field_kind(f) is None]
    if loose:
        raise TypeError(
            f"{cls.__name__} fields {loose} are neither metricskit.state(...) (arrays) nor "
            "metricskit.static(...) (configuration): declare each field with one of them"
        )
    _check_field_names(cls, fields)
    for f in fields:  # a default that is not plain data is refused where it is written
        if field_kind(f) == "static" and f.default is not attrs.NOTHING:
            _canonical(f.default, f"{cls.__name__}.{f.name} default")
    for base in cls.__mro__[1:]:
        for f in getattr(base, "__attrs_attrs__", ()):
            mine = getattr(fields, f.name, None)
            if mine is not None and field_kind(mine) != field_kind(f):
                raise TypeError(
                    f"{cls.__name__}.{f.name} is declared {field_kind(mine)}, but "
                    f"{base.__name__}.{f.name} is a {field_kind(f)} field: a subclass keeps "
                    "each inherited field's kind (give the new field another name)"
                )
    register_pytree(
        cls,
        [f.name for f in fields if field_kind(f) == "state"],
        [f.name for f in fields if field_kind(f) == "static"],
    )
    _READY.add(cls)


_RESERVED = frozenset(dir(Metric)) | {"cls", "self"}


def _check_field_names(cls: type, fields: Any) -> None:
    """Refuse field names that shadow the API, and plain class attributes that would shadow an
    inherited field (``decay = 0.5`` in a subclass changes nothing: attrs ignores it)."""
    for f in fields:
        if f.name in _RESERVED:
            raise TypeError(
                f"{cls.__name__}.{f.name}: the name {f.name!r} is taken by metricskit.Metric "
                "(or its configuration call); give the field another name"
            )
    for klass in cls.__mro__:
        if klass is Metric:
            break
        for f in fields:
            value = klass.__dict__.get(f.name)
            if value is not None and type(value) is not _FIELD_DEFINITION:
                kind = field_kind(f)
                fix = (
                    f"mk.static({value!r})"
                    if kind == "static"
                    else f'mk.state("{reduction_of(f)}", ...)'
                )
                configure = (
                    f", or pass {f.name}=... when configuring it" if kind == "static" else ""
                )
                raise TypeError(
                    f"{klass.__name__}.{f.name} = {value!r} overrides the {kind} field "
                    f"{f.name!r} with a plain class attribute, which changes nothing; "
                    f"declare it again as a field ({f.name} = {fix}){configure}"
                )


def check_concrete(cls: type[Metric]) -> None:
    """Raise unless ``cls`` is a metric class that can hold state (a log mode's class).

    Raises:
        TypeError: If ``cls`` is not a subclass of :class:`Metric`, is abstract, or declares
            ``"merge"`` fields without overriding ``aggregate``.
    """
    ensure_metric_class(cls)
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise TypeError(f"{cls.__name__} is abstract: implement {missing}")
    if not state_fields(cls):
        raise TypeError(
            f"{cls.__name__} declares no state fields: a metric accumulates at least one array "
            "(total = metricskit.state('sum'))"
        )
    merged = [f.name for f in state_fields(cls) if reduction_of(f) == "merge"]
    if merged and cls.aggregate is Metric.aggregate:
        raise TypeError(
            f"{cls.__name__} declares {merged} with state('merge'), which only the metric's "
            "own aggregate knows how to combine: override aggregate(self, other), or declare "
            "the fields with a reduction ('sum', 'max', 'min', 'concat', 'last')"
        )


_OPTION_TYPES = "a bool, int, float, str, None, or a tuple of them"


def _canonical(value: Any, where: str) -> Any:
    """An option value as plain, hashable data of the exact built-in types that JSON gives
    back (tuples for lists and tuples, NumPy scalars and int/str subclasses such as IntEnum as
    the plain type, one NaN object)."""
    if isinstance(value, enum.Enum) and not isinstance(value, int | str):
        raise TypeError(
            f"{where}={value!r}: a static option must be {_OPTION_TYPES}; an enum member "
            "would come back from a checkpoint as its value, so pass the value itself "
            f"({value.value!r}) and compare with it in the kernels (an IntEnum or StrEnum "
            "member is taken as its plain int or str)"
        )
    if isinstance(value, np.generic | np.ndarray) and np.ndim(value) == 0:
        value = value.item()
    if value is None or type(value) is bool:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)  # an int subclass (IntEnum ...) as a plain int
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, float):
        return math.nan if math.isnan(value) else float(value)  # NaN == NaN: one configuration
    if isinstance(value, list | tuple):
        return tuple(_canonical(v, where) for v in value)
    raise TypeError(
        f"{where}={value!r} ({type(value).__name__}): a static option must be {_OPTION_TYPES} "
        "(it is part of the compiled structure and written into checkpoints as JSON)"
    )


def static_options(cls: type[Metric], given: Mapping[str, Any]) -> Options:
    """Every static field of ``cls`` with its value: ``given``, else the field's default.

    Args:
        cls: A metric class.
        given: Options by static field name.

    Returns:
        ``(name, value)`` pairs in declaration order, values canonical (see
        :class:`ConfiguredMetric`).

    Raises:
        TypeError: For an unknown option name, an option that is not plain data, or a
            static field without a default that is not given.
    """
    ensure_metric_class(cls)
    fields = static_fields(cls)
    names = [f.name for f in fields]
    unknown = sorted(set(given) - set(names))
    if unknown:
        hint = f"its static options are {names}" if names else "it has no static options"
        raise TypeError(f"{cls.__name__} got unknown options {unknown}; {hint}")
    out = []
    for f in fields:
        if f.name in given:
            value = given[f.name]
        elif f.default is not attrs.NOTHING:
            value = f.default
        else:
            raise TypeError(
                f"{cls.__name__}.{f.name} is a static option without a default: pass it, "
                f"e.g. {cls.__name__}({f.name}=...)"
            )
        out.append((f.name, _canonical(value, f"{cls.__name__} option {f.name}")))
    return Options(out)


def options_of(metric: Metric) -> Options:
    """The static options a state holds (every static field's value, in declaration order)."""
    return Options((f.name, getattr(metric, f.name)) for f in static_fields(type(metric)))


def default_postfix(cls: type[Metric]) -> str:
    """``cls.postfix``, or ``"_"`` and the class name in snake case without ``Metric``."""
    if cls.postfix is not None:
        return cls.postfix
    name = cls.__name__.removesuffix("Metric") or cls.__name__
    return "_" + re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def option_key(value: Any) -> Any:
    """A canonical option value as a key that tells types apart: ``True``, ``1`` and ``1.0``
    (equal in Python) are three keys, and so are ``0.0`` and ``-0.0``; every NaN is one."""
    if isinstance(value, tuple):
        return ("tuple", tuple(option_key(v) for v in value))
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


class Options(tuple[tuple[str, Any], ...]):
    """``(name, value)`` pairs of static options, compared and hashed by :func:`option_key`
    of each value, so that options a kernel tells apart (``True``/``1``, ``0.0``/``-0.0``)
    are never one configuration, in a mode, a state's structure or a compile cache."""

    def _key(self) -> tuple[tuple[str, Any], ...]:
        key = self.__dict__.get("key")  # computed once: options are looked up every step
        if key is None:
            key = self.__dict__["key"] = tuple((n, option_key(v)) for n, v in self)
        return key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, tuple):
            return NotImplemented
        if self is other:
            return True
        theirs = other._key() if isinstance(other, Options) else Options(other)._key()
        return self._key() == theirs

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash(self._key())


@attrs.frozen(repr=False, cache_hash=True)
class ConfiguredMetric:
    """A metric class with its static options: a log mode, set per key.

    Made by calling a :class:`Metric` class with its static options only
    (``DecayedMean(decay=0.99)``, or ``DecayedMean()`` for the defaults); a bare class in
    ``log_modes`` means its defaults. It works wherever a mode name works: ``log_modes``,
    ``default_log_modes``, the functional API. Two configurations of one class are two modes
    (two keys may use two decays, and one key may log both under different ``postfix`` values);
    equal options are one mode, whatever the order they were given in. A checkpoint records
    the class's import path and the options, so a store saved with it loads in a fresh
    process with nothing registered first.

    Attributes:
        cls: The metric class (concrete).
        options: ``(name, value)`` for every static field, in declaration order. Values are
            plain data: ``bool``, ``int``, ``float``, ``str``, ``None`` and tuples of them
            (lists become tuples, NumPy scalars Python numbers, every NaN one NaN).
        postfix: Appended to the key in reported names (default: the class's
            :func:`default_postfix`); pass ``postfix=`` in the call to change it.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> class PowerMean(mk.Metric):
        ...     p = mk.static(2.0)
        ...     total = mk.state("sum")
        ...     count = mk.state("sum", shape="count")
        ...     def update(self, value, count):
        ...         return self.replace(total=self.total + jnp.abs(value) ** self.p,
        ...                             count=self.count + count)
        ...     def compute(self):
        ...         return mk.divide(self.total, self.count) ** (1 / self.p)
        >>> PowerMean(p=1.0)
        PowerMean(p=1.0)
        >>> modes = [PowerMean(p=1.0), PowerMean(postfix="_rms")]
        >>> store = mk.MetricStore().update({"err": {"value": 3.0, "log_modes": modes}})
        >>> store.update({"err": -4.0}).compute()
        {'err_power_mean': 3.5, 'err_rms': 3.5355...}
    """

    cls: type[Metric]
    options: Options
    postfix: str

    @classmethod
    def of(cls, metric: type[Metric], given: Mapping[str, Any]) -> ConfiguredMetric:
        """``metric`` configured with ``given`` (a ``postfix`` key sets the postfix, unless
        ``metric`` has a static field of that name).

        Raises:
            TypeError: If ``metric`` is abstract, or for an unknown or non-data option.
        """
        try:  # a task function configures its metric at every eager call: remember them
            key: Any = (metric, tuple((n, option_key(v)) for n, v in given.items()))
            made = _CONFIGURED.get(key)
        except TypeError:  # an unhashable option value (a list): made afresh
            key, made = None, None
        if made is not None:
            return made
        check_concrete(metric)
        given = dict(given)
        postfix = given.pop("postfix", None) if "postfix" not in _static_names(metric) else None
        if postfix is not None and not isinstance(postfix, str):
            raise TypeError(f"{metric.__name__}(postfix={postfix!r}): pass a string")
        options = static_options(metric, given)
        made = cls(metric, options, default_postfix(metric) if postfix is None else postfix)
        if key is not None:
            if len(_CONFIGURED) > 4096:
                _CONFIGURED.clear()
            _CONFIGURED[key] = made
        return made

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        for option, value in object.__getattribute__(self, "options"):
            if option == name:
                return value
        raise AttributeError(f"{self!r} has no option or attribute {name!r}")

    @property
    def parts(self) -> tuple[str, ...]:
        """The suffixes of the values it reports (:meth:`Metric.parts_of`)."""
        return self.cls.parts_of(dict(self.options))

    @property
    def path(self) -> str:
        """The class's import path, ``module:qualname``."""
        return f"{self.cls.__module__}:{self.cls.__qualname__}"

    def __repr__(self) -> str:
        args = [f"{name}={value!r}" for name, value in self.options]
        if self.postfix != default_postfix(self.cls):
            args.append(f"postfix={self.postfix!r}")
        return f"{self.cls.__qualname__}({', '.join(args)})"


_CONFIGURED: dict[Any, ConfiguredMetric] = {}  # (class, typed options given) -> configured


@functools.cache
def _static_names(cls: type[Metric]) -> frozenset[str]:
    return frozenset(f.name for f in static_fields(cls))


# -- log modes --------------------------------------------------------------------------------

Mode: TypeAlias = str | ConfiguredMetric
"""A log mode as the engine keeps it: a registered name or a configured metric."""

M = TypeVar("M", bound=type[Metric])


@attrs.frozen
class LogMode:
    """A registered log mode.

    Attributes:
        name: The mode name used in ``log_modes`` (a configured metric's ``repr``).
        cls: The :class:`~metricskit.Metric` subclass that implements it.
        postfix: Appended to the metric key in reported results (``"_mean"``, or ``""``).
        options: ``(name, value)`` of every static field (a configured metric's options; a
            registered name's class defaults).
        parts: Suffixes of the values it reports, after the postfix (see ``Metric.parts``).
    """

    name: str
    cls: type[Metric]
    postfix: str
    options: tuple[tuple[str, Any], ...] = Options()
    parts: tuple[str, ...] = ()


_REGISTRY: dict[str, LogMode] = {}


def registered_modes() -> tuple[str, ...]:
    """The names of all registered log modes, sorted.

    Returns:
        A tuple of names.

    Examples:
        >>> import metricskit as mk
        >>> "mean" in mk.registered_modes() and "single_noreduce_wcount" in mk.registered_modes()
        True
    """
    return tuple(sorted(_REGISTRY))


def get_log_mode(mode: Mode | type[Metric]) -> LogMode:
    """Resolve a log mode: a registered name, a configured metric or a metric class.

    Args:
        mode: A registered name (case-sensitive), a
            :class:`~metricskit.metric.ConfiguredMetric`, or a metric class (its defaults).

    Returns:
        The :class:`LogMode`.

    Raises:
        ValueError: If no mode has that name; the message lists the registered names.
        TypeError: For a class that is not a concrete metric class.

    Examples:
        >>> import metricskit as mk
        >>> mk.get_log_mode("max").cls.__name__
        'MaxMetric'
    """
    try:
        return _REGISTRY[mode]  # type: ignore[index]
    except (KeyError, TypeError):
        pass
    if isinstance(mode, ConfiguredMetric | type):
        return _configured(cast(ConfiguredMetric, as_mode(mode)))
    if isinstance(mode, Metric):
        name = type(mode).__name__
        raise TypeError(
            f"a {name} state is not a log mode: pass the class ({name}) or the class called "
            f"with its options ({name}(option=...))"
        )
    close = difflib.get_close_matches(str(mode), _REGISTRY, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"unknown log mode {mode!r}.{hint} Registered modes: {', '.join(registered_modes())}. "
        "Register a new one with metricskit.register_metric(name), or pass a metricskit.Metric "
        "class (or one called with its options, MyMetric(option=...)) as the mode."
    )


@functools.lru_cache(maxsize=4096)
def _configured(mode: ConfiguredMetric) -> LogMode:
    return LogMode(repr(mode), mode.cls, mode.postfix, mode.options, mode.parts)


def as_mode(mode: Any) -> Mode:
    """A log mode as the engine keeps it: a metric class becomes its default configuration.

    Raises:
        TypeError: For a class that is not a concrete metric class.
    """
    if isinstance(mode, type):
        if not issubclass(mode, Metric):
            raise TypeError(f"{mode.__name__} is not a metricskit.Metric subclass")
        return ConfiguredMetric.of(mode, {})
    return mode  # type: ignore[no-any-return]


_LEGACY: list[Callable[[str, Sequence[Mode]], Mode | None]] = []


def register_legacy_names(translate: Callable[[str, Sequence[Mode]], Mode | None]) -> None:
    """Add a translator of older mode names (``translate(name, known)`` gives the mode a name
    of an older checkpoint format stands for, preferring one of ``known``, or ``None``)."""
    _LEGACY.append(translate)


def legacy_mode(name: str, known: Sequence[Mode] = ()) -> Mode | None:
    """The mode an older checkpoint's ``name`` stands for, if a translator knows it."""
    for translate in _LEGACY:
        mode = translate(name, known)
        if mode is not None:
            return mode
    return None


def mode_name(mode: Mode) -> str:
    """A log mode in words: a name as it is, a configured metric as its ``repr``."""
    return mode if type(mode) is str else repr(mode)


def mode_order(mode: Mode) -> tuple[int, str]:
    """The canonical order of log modes: names first (sorted), then configured metrics by
    class path and options (the same in every process)."""
    if type(mode) is str:
        return (0, mode)
    assert isinstance(mode, ConfiguredMetric)
    return (1, f"{mode.path}{mode.options!r}{mode.postfix}")


def register_metric(name: str, *, postfix: str | None = None) -> Callable[[M], M]:
    """Register a :class:`~metricskit.Metric` subclass as the log mode ``name``.

    The class becomes a frozen attrs class and a JAX pytree (state fields are leaves, static
    fields are structure), and ``name`` becomes usable in ``log_modes`` everywhere, the
    functional API included. One class may be registered under several names.

    Args:
        name: The log-mode name; reported keys get ``"_" + name`` appended.
        postfix: Override the appended suffix (``""`` reports under the bare key).

    Returns:
        A class decorator that returns the class unchanged.

    Raises:
        ValueError: If ``name`` is taken or not a valid identifier.
        TypeError: If the class is not a concrete subclass of ``Metric`` with every field
            declared by ``metricskit.state`` or ``metricskit.static``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> @mk.register_metric("last_value_doc")
        ... class LastValue(mk.Metric):
        ...     value = mk.state("last")
        ...     count = mk.state("sum", shape="scalar", dtype="int")  # steps seen
        ...     def update(self, value, count):
        ...         return self.replace(value=value.astype(jnp.float32), count=self.count + 1)
        ...     def compute(self):
        ...         return self.value
        >>> store = mk.MetricStore().update({"lr": {"value": 0.5, "log_modes": ["last_value_doc"]}})
        >>> store.compute()
        {'lr_last_value_doc': 0.5}
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"log mode name {name!r} must be a non-empty identifier string")
    if name in _REGISTRY:
        raise ValueError(
            f"log mode {name!r} is already registered (to {_REGISTRY[name].cls.__name__}); "
            f"choose another name. Registered modes: {', '.join(registered_modes())}"
        )
    suffix = f"_{name}" if postfix is None else postfix

    def decorate(cls: M) -> M:
        if isinstance(cls, ConfiguredMetric | Metric):
            raise TypeError(
                f"register_metric({name!r}) decorates a metric class, got {cls!r}; a "
                "configured metric is a log mode as it is (put it in log_modes), and a name "
                "is registered for a class with its default options"
            )
        check_concrete(cls)
        options = ConfiguredMetric.of(cls, {}).options
        _REGISTRY[name] = LogMode(name, cls, suffix, options, cls.parts_of(dict(options)))
        return cls

    return decorate
