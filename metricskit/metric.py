"""The abstract :class:`Metric`: an immutable pytree whose kernels are pure JAX functions.

A metric is an immutable pytree of *state* fields (arrays) and *static* fields (hashable
configuration), each declared once (:mod:`metricskit.fields`). Everything else is derived
from those declarations:

- the **empty state is all zeros**: :meth:`Metric.empty` fills every declared field with
  zeros, and a reset zero-fills a state of any shape. So a state that a trainer zero-fills
  from ``jax.eval_shape`` *is* the empty state, and ``empty()`` and a reset cannot disagree;
- :meth:`Metric.aggregate` combines field by field with the declared reductions;
- :meth:`Metric.is_empty` reads the field named ``count`` when there is one (all zero: no
  samples), and otherwise asks whether every field is zero.

So a metric's ``update`` must treat zeros as "no samples yet" (a running maximum keeps a count
of samples and ignores its value while the count is zero), and a custom metric needs only its
fields, ``update``, ``compute`` and a name (:func:`metricskit.register_metric`).
"""

from __future__ import annotations

import abc
import enum
import functools
import inspect
import math
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Self, cast

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from metricskit import exact
from metricskit.fields import FieldSpec, Spec, field_kind, field_spec, reduction_of, zeros
from metricskit.pytree import register_pytree, replace
from metricskit.reductions import REDUCTIONS

__all__ = [
    "ConfiguredMetric",
    "Metric",
    "Options",
    "check_concrete",
    "combine_fields",
    "ensure_metric_class",
    "per_sample",
    "sample_fields",
    "state_fields",
    "static_fields",
    "static_options",
    "zeros_like",
]


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
            return super().__call__(*args, **kwargs)
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
        fields = {n: zeros(s) for n, s in cls.field_specs(Spec(*value), Spec(*count)).items()}
        new: Any = object.__new__(cls)
        for name, x in (*fields.items(), *statics):
            object.__setattr__(new, name, x)
        return cast(Self, new)

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
    if isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer) and _committed(x):
        return jnp.zeros_like(x, device=x.sharding)  # the same placement: no recompilation
    return jnp.zeros_like(x)


def _committed(x: jax.Array) -> bool:
    return bool(getattr(x, "committed", getattr(x, "_committed", True)))


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
    back (tuples for sequences, an enum's value, one NaN object)."""
    if isinstance(value, enum.Enum):
        value = value.value
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
