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
import functools
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
    "Metric",
    "combine_fields",
    "ensure_metric_class",
    "per_sample",
    "sample_fields",
    "state_fields",
    "static_fields",
    "zeros_like",
]


class Metric(abc.ABC):
    """Base class of every metric: one accumulator for one key and one log mode.

    A subclass declares its array fields with :func:`metricskit.state` and its configuration
    with :func:`metricskit.static`, and fills in :meth:`update` and :meth:`compute`;
    :func:`metricskit.register_metric` gives it a log-mode name. The class becomes a frozen
    ``attrs`` class and a JAX pytree on its own (no decorator needed). Every method is a pure
    function of arrays: it runs eagerly, under ``jax.jit`` and under ``jax.vmap`` (a
    :class:`~metricskit.MetricStore` stacks the metrics of one kind and maps the kernels).

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
            (the default): one value, reported as ``key + postfix``.
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
    step_merge: ClassVar[Any] = None

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
    def empty(cls, value: Spec, count: Spec) -> Self:
        """The empty (all-zero) state for steps of the given specs.

        Args:
            value: Shape and logical dtype of one step's value.
            count: Shape and logical dtype of one step's count.

        Returns:
            A metric with no samples: every state field zero, static fields at their defaults.
        """
        ensure_metric_class(cls)
        fields = {n: zeros(s) for n, s in cls.field_specs(Spec(*value), Spec(*count)).items()}
        new: Any = object.__new__(cls)
        for f in attrs.fields(cast(Any, cls)):
            if f.name in fields:
                object.__setattr__(new, f.name, fields[f.name])
            elif f.default is not attrs.NOTHING:
                object.__setattr__(new, f.name, f.default)
            else:
                raise TypeError(f"{cls.__name__}.{f.name} is a static field without a default")
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


def ensure_metric_class(cls: type[Metric]) -> None:
    """Make ``cls`` a frozen attrs class and a JAX pytree, once (no decorator needed).

    Raises:
        TypeError: If ``cls`` is not a concrete subclass of :class:`Metric`, or has a field
            declared with neither :func:`state` nor :func:`static`.
    """
    if cls in _READY:
        return
    if not (isinstance(cls, type) and issubclass(cls, Metric)):
        raise TypeError(f"{cls!r} is not a subclass of metricskit.Metric")
    for klass in (*reversed(cls.__mro__[1:]), cls):  # base classes first: they hold fields too
        if (
            issubclass(klass, Metric)
            and klass is not Metric
            and "__attrs_attrs__" not in klass.__dict__
        ):
            attrs.frozen(klass, eq=False, slots=False, repr=True, kw_only=True)
    loose = [f.name for f in attrs.fields(cast(Any, cls)) if field_kind(f) is None]
    if loose:
        raise TypeError(
            f"{cls.__name__} fields {loose} are neither metricskit.state(...) (arrays) nor "
            "metricskit.static(...) (configuration): declare each field with one of them"
        )
    fields = attrs.fields(cast(Any, cls))
    register_pytree(
        cls,
        [f.name for f in fields if field_kind(f) == "state"],
        [f.name for f in fields if field_kind(f) == "static"],
    )
    _READY.add(cls)
