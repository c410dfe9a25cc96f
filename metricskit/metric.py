"""The abstract :class:`Metric`: an immutable pytree whose kernels are pure JAX functions."""

from __future__ import annotations

import abc
import functools
from typing import Any, ClassVar, Literal, cast

import attrs
import jax
import jax.numpy as jnp
import numpy as np
from typing_extensions import Self

from metricskit.pytree import replace
from metricskit.reductions import EMPTY, KIND, REDUCE, REDUCTIONS

__all__ = ["Metric", "state_fields", "static_fields"]


class Metric(abc.ABC):
    """Base class of every metric: one accumulator for one key and one log mode.

    A subclass is an ``attrs`` frozen class (``@attrs.frozen(eq=False)``) whose array fields
    are declared with :func:`metricskit.state` (naming how the field combines across devices
    and batches) and whose configuration fields are declared with :func:`metricskit.static`.
    :func:`metricskit.register_metric` makes it a JAX pytree and a log mode.

    A subclass fills in :meth:`empty`, :meth:`update`, :meth:`compute` and :meth:`is_empty`.
    :meth:`aggregate` and :meth:`reset` have defaults built from the field declarations.
    Every method is a pure function of arrays, so it runs eagerly, under ``jax.jit`` and
    under ``jax.vmap`` (a :class:`~metricskit.MetricStore` stacks metrics of one kind and
    maps the kernels over the stacked axis).

    Attributes:
        append_batches: Whether :func:`metricskit.aggregate_metrics` appends this metric's
            state across evaluation batches (``True`` for the ``noreduce`` modes) instead of
            keeping the latest, already cumulative, state.
        partial: What two states that :meth:`aggregate` combines are parts of: ``"stream"``
            (disjoint runs of steps: the default), ``"sum"`` (additive parts of the same steps,
            as ``single``: values and counts add) or ``"concat"`` (disjoint slices, along
            axis 0, of the same steps' samples, as the ``noreduce`` modes).
        skippable: Whether a store's ``nan_policy="skip"`` masks this metric's update on a
            non-finite step (``False`` only for metrics that count such steps).
        accepts_pairs: Whether :meth:`update` accepts a :class:`metricskit.exact.Pair` value:
            float64 host values travel as float32 ``(hi, lo)`` pairs when x64 is off. If
            ``False`` (the default), ``update`` gets ``hi + lo`` rounded to float32.

    Examples:
        >>> import attrs, jax, jax.numpy as jnp
        >>> import metricskit as mk
        >>> @attrs.frozen(eq=False)
        ... class Total(mk.Metric):
        ...     total: jax.Array = mk.state("sum")
        ...     @classmethod
        ...     def empty(cls, value, count):
        ...         return cls(total=jnp.zeros(value.shape, jnp.float32))
        ...     def update(self, value, count):
        ...         return Total(total=self.total + value)
        ...     def compute(self):
        ...         return self.total
        ...     def is_empty(self):
        ...         return jnp.array(False)
        >>> spec = jax.ShapeDtypeStruct((), jnp.float32)
        >>> m = Total.empty(spec, spec).update(jnp.float32(2.0), 1)
        >>> float(m.aggregate(m).compute())
        4.0
    """

    __slots__ = ()

    append_batches: ClassVar[bool] = False
    accepts_pairs: ClassVar[bool] = False
    skippable: ClassVar[bool] = True
    partial: ClassVar[Literal["stream", "sum", "concat"]] = "stream"

    @classmethod
    @abc.abstractmethod
    def empty(cls, value: jax.ShapeDtypeStruct, count: jax.ShapeDtypeStruct) -> Self:
        """The empty state for step values and counts of the given shapes and dtypes.

        Args:
            value: Shape and canonical dtype of one step's value.
            count: Shape and canonical dtype of one step's count.

        Returns:
            A metric with no samples.
        """

    @abc.abstractmethod
    def update(self, value: jax.Array, count: jax.Array) -> Self:
        """Add one step.

        Args:
            value: The step's value, shaped and typed as the ``value`` given to :meth:`empty`.
            count: The step's count, shaped and typed as the ``count`` given to :meth:`empty`.

        Returns:
            The updated metric, with the same leaf shapes and dtypes.
        """

    @abc.abstractmethod
    def compute(self) -> Any:
        """The reported value: an array or a pytree of arrays."""

    @abc.abstractmethod
    def is_empty(self) -> jax.Array:
        """A boolean scalar: ``True`` when the metric holds no samples (reported as ``0.0``)."""

    def aggregate(self, other: Self) -> Self:
        """Combine two partial states of disjoint data (two devices, shards or halves).

        The default combines field by field with each field's declared reduction. It is
        associative; a subclass with ``"merge"`` fields must override it.

        Args:
            other: A partial state of the same metric.

        Returns:
            The combined state.

        Raises:
            NotImplementedError: If a field is declared ``"merge"`` and this is not overridden.
        """
        return cast(Self, combine_fields(self, other, jnp, axis=0))

    def reset(self) -> Self:
        """The empty state with exactly this state's leaf shapes and dtypes.

        Returns:
            A metric whose every state field is filled with its declared ``empty`` value.
        """
        return cast(Self, attrs.evolve(cast(Any, self), **empty_fields(self, jnp)))


def empty_fields(metric: Metric, xp: Any) -> dict[str, Any]:
    """Every state field of ``metric`` filled with its declared ``empty`` value.

    Args:
        metric: A state.
        xp: ``jax.numpy`` (keeps each field's dtype and weak type) or ``numpy`` (host
            stores; zeros come from ``calloc``, so a large empty buffer costs no writes).

    Returns:
        New field values by name.
    """
    out: dict[str, Any] = {}
    for f in state_fields(type(metric)):
        x, value = getattr(metric, f.name), f.metadata[EMPTY]
        if xp is not jnp:
            out[f.name] = (
                np.zeros(x.shape, x.dtype) if value == 0 else np.full(x.shape, value, x.dtype)
            )
        else:
            out[f.name] = jnp.full_like(x, value)
    return out


@functools.cache
def state_fields(cls: type[Metric]) -> tuple[attrs.Attribute[Any], ...]:
    """The fields of ``cls`` declared with :func:`metricskit.state`, in definition order."""
    return tuple(f for f in attrs.fields(cast(Any, cls)) if f.metadata.get(KIND) == "state")


@functools.cache
def static_fields(cls: type[Metric]) -> tuple[attrs.Attribute[Any], ...]:
    """The fields of ``cls`` declared with :func:`metricskit.static`, in definition order."""
    return tuple(f for f in attrs.fields(cast(Any, cls)) if f.metadata.get(KIND) == "static")


def combine_fields(a: Metric, b: Metric, xp: Any, axis: int) -> Any:
    """Combine two states field by field with each field's declared reduction.

    Args:
        a: The earlier partial state.
        b: The later partial state, of the same class.
        xp: ``jax.numpy`` or ``numpy``.
        axis: The sample axis for ``"concat"`` fields.

    Returns:
        A state of the same class.

    Raises:
        NotImplementedError: If a field's reduction is ``"merge"``.
    """
    combined = {}
    for name, combine in _combiners(type(a)):
        if combine is None:
            raise NotImplementedError(
                f"{type(a).__name__}.{name} is declared with reduce='merge': "
                f"{type(a).__name__} must override aggregate()"
            )
        combined[name] = combine(xp, getattr(a, name), getattr(b, name), axis)
    return replace(a, combined)


@functools.cache
def _combiners(cls: type[Metric]) -> tuple[tuple[str, Any], ...]:
    return tuple((f.name, REDUCTIONS[f.metadata[REDUCE]].combine) for f in state_fields(cls))
