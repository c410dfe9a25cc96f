"""The built-in metrics, one per log mode of the design's table.

Every kernel is elementwise over the value's shape, so the same code serves a scalar metric,
an array metric and a stack of metrics mapped with ``jax.vmap``. A step whose count is zero
has no samples: it adds nothing to ``max``, ``min`` and ``std``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import attrs
import jax
import jax.numpy as jnp
from typing_extensions import Self

from metricskit.metric import Metric
from metricskit.numerics import count_dtype, divide, float_dtype
from metricskit.reductions import state
from metricskit.registry import register_metric

__all__ = [
    "MaxMetric",
    "MeanMetric",
    "MinMetric",
    "NoReduceMetric",
    "NoReduceWCountMetric",
    "SingleMetric",
    "StdMetric",
]


def _zeros(shape: tuple[int, ...], dtype: jax.typing.DTypeLike) -> jax.Array:
    return jnp.zeros(shape, dtype)


def _sample_shape(value: jax.ShapeDtypeStruct, count: jax.ShapeDtypeStruct) -> tuple[int, ...]:
    return tuple(jnp.broadcast_shapes(value.shape, count.shape))


def _samples(value: jax.Array, count: jax.Array, shape: tuple[int, ...]) -> tuple[jax.Array, ...]:
    """Per-step samples ``value / count`` and the mask of entries that have a sample."""
    sample = jnp.broadcast_to(divide(value, count), shape)
    has = jnp.broadcast_to(jnp.asarray(count) != 0, shape)
    return sample, has


@register_metric("mean")
@attrs.frozen(eq=False)
class MeanMetric(Metric):
    """Sum of values over sum of counts, reported as ``key_mean`` (``key`` for ``mean_nopostfix``).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import metricskit as mk
        >>> spec = jax.ShapeDtypeStruct((), jnp.float32)
        >>> m = mk.MeanMetric.empty(spec, jax.ShapeDtypeStruct((), jnp.int32))
        >>> m = m.update(jnp.float32(6.0), jnp.int32(2)).update(jnp.float32(3.0), jnp.int32(1))
        >>> float(m.compute())
        3.0
    """

    total: jax.Array = state("sum")  # shape=value.shape, float32 (float64 with x64)
    count: jax.Array = state("sum")  # shape=count.shape, int32 or float32

    @classmethod
    def empty(cls, value: jax.ShapeDtypeStruct, count: jax.ShapeDtypeStruct) -> Self:
        return cls(
            _zeros(value.shape, float_dtype()), _zeros(count.shape, count_dtype(count.dtype))
        )

    def update(self, value: jax.Array, count: jax.Array) -> Self:
        return attrs.evolve(
            self,
            total=self.total + value.astype(self.total.dtype),
            count=self.count + count.astype(self.count.dtype),
        )

    def compute(self) -> jax.Array:
        return divide(self.total, self.count)

    def is_empty(self) -> jax.Array:
        return jnp.all(self.count == 0)


register_metric("mean_nopostfix", postfix="")(MeanMetric)


@register_metric("single")
@attrs.frozen(eq=False)
class SingleMetric(Metric):
    """The latest step's ``value / count``, reported as ``key_single``.

    Two partial states of one step (two devices) aggregate by adding values and counts.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import metricskit as mk
        >>> spec = jax.ShapeDtypeStruct((), jnp.float32)
        >>> m = mk.SingleMetric.empty(spec, jax.ShapeDtypeStruct((), jnp.int32))
        >>> m = m.update(jnp.float32(6.0), jnp.int32(2)).update(jnp.float32(1.0), jnp.int32(4))
        >>> float(m.compute())
        0.25
    """

    value: jax.Array = state("sum")  # shape=value.shape, float32
    count: jax.Array = state("sum")  # shape=count.shape, int32 or float32

    @classmethod
    def empty(cls, value: jax.ShapeDtypeStruct, count: jax.ShapeDtypeStruct) -> Self:
        return cls(
            _zeros(value.shape, float_dtype()), _zeros(count.shape, count_dtype(count.dtype))
        )

    def update(self, value: jax.Array, count: jax.Array) -> Self:
        return attrs.evolve(
            self, value=value.astype(self.value.dtype), count=count.astype(self.count.dtype)
        )

    def compute(self) -> jax.Array:
        return divide(self.value, self.count)

    def is_empty(self) -> jax.Array:
        return jnp.all(self.count == 0)


class _Extremum(Metric):
    """The running extreme of ``value / count`` over steps (abstract: max and min fill it in).

    Subclasses declare the fields ``value`` (reduced by their extreme, empty at ``fill``) and
    ``samples`` (steps with a nonzero count), and set ``fill`` and ``pick``.
    """

    __slots__ = ()
    fill: ClassVar[float]
    pick: ClassVar[Callable[[jax.Array, jax.Array], jax.Array]]
    value: jax.Array
    samples: jax.Array

    @classmethod
    def empty(cls, value: jax.ShapeDtypeStruct, count: jax.ShapeDtypeStruct) -> Self:
        shape = _sample_shape(value, count)
        return cls(
            jnp.full(shape, cls.fill, float_dtype()), _zeros(shape, count_dtype(count.dtype))
        )  # type: ignore[call-arg]

    def update(self, value: jax.Array, count: jax.Array) -> Self:
        sample, has = _samples(value, count, self.value.shape)
        best = type(self).pick(self.value, sample.astype(self.value.dtype))
        return attrs.evolve(
            self,  # type: ignore[misc]
            value=jnp.where(has, best, self.value),
            samples=self.samples + has.astype(self.samples.dtype),
        )

    def compute(self) -> jax.Array:
        return jnp.where(self.samples > 0, self.value, 0)

    def is_empty(self) -> jax.Array:
        return jnp.all(self.samples == 0)


@register_metric("max")
@attrs.frozen(eq=False)
class MaxMetric(_Extremum):
    """The maximum over steps of ``value / count``, reported as ``key_max``.

    The empty state is ``-inf`` (so all-negative streams are right); steps with count ``0``
    have no sample and are ignored.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import metricskit as mk
        >>> spec = jax.ShapeDtypeStruct((), jnp.float32)
        >>> m = mk.MaxMetric.empty(spec, jax.ShapeDtypeStruct((), jnp.int32))
        >>> m = m.update(jnp.float32(-6.0), jnp.int32(2)).update(jnp.float32(-8.0), jnp.int32(2))
        >>> float(m.compute())
        -3.0
    """

    fill: ClassVar[float] = float("-inf")
    pick: ClassVar[Callable[[jax.Array, jax.Array], jax.Array]] = staticmethod(jnp.maximum)

    value: jax.Array = state("max", empty=float("-inf"))  # shape=sample, float32
    samples: jax.Array = state("sum")  # shape=sample, steps with count != 0


@register_metric("min")
@attrs.frozen(eq=False)
class MinMetric(_Extremum):
    """The minimum over steps of ``value / count``, reported as ``key_min`` (empty: ``+inf``).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import metricskit as mk
        >>> spec = jax.ShapeDtypeStruct((), jnp.float32)
        >>> m = mk.MinMetric.empty(spec, jax.ShapeDtypeStruct((), jnp.int32))
        >>> m = m.update(jnp.float32(6.0), jnp.int32(2)).update(jnp.float32(8.0), jnp.int32(2))
        >>> float(m.compute())
        3.0
    """

    fill: ClassVar[float] = float("inf")
    pick: ClassVar[Callable[[jax.Array, jax.Array], jax.Array]] = staticmethod(jnp.minimum)

    value: jax.Array = state("min", empty=float("inf"))  # shape=sample, float32
    samples: jax.Array = state("sum")  # shape=sample, steps with count != 0


@register_metric("std")
@attrs.frozen(eq=False)
class StdMetric(Metric):
    """Population standard deviation of the per-step samples ``value / count``.

    Welford's update per step and Chan's parallel formula in :meth:`aggregate`, so neither
    accumulating nor merging subtracts two large sums. Reported as ``key_std``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import metricskit as mk
        >>> spec = jax.ShapeDtypeStruct((), jnp.float32)
        >>> m = mk.StdMetric.empty(spec, jax.ShapeDtypeStruct((), jnp.int32))
        >>> for x in (1.0, 3.0, 5.0, 7.0):
        ...     m = m.update(jnp.float32(x), jnp.int32(1))
        >>> round(float(m.compute()) ** 2, 4)
        5.0
    """

    samples: jax.Array = state("merge")  # shape=sample, steps with count != 0
    mean: jax.Array = state("merge")  # shape=sample, float32, running mean of samples
    m2: jax.Array = state("merge")  # shape=sample, float32, sum of squared deviations

    @classmethod
    def empty(cls, value: jax.ShapeDtypeStruct, count: jax.ShapeDtypeStruct) -> Self:
        shape = _sample_shape(value, count)
        return cls(
            _zeros(shape, count_dtype(count.dtype)),
            _zeros(shape, float_dtype()),
            _zeros(shape, float_dtype()),
        )

    def update(self, value: jax.Array, count: jax.Array) -> Self:
        sample, has = _samples(value, count, self.mean.shape)
        sample = sample.astype(self.mean.dtype)
        samples = self.samples + has.astype(self.samples.dtype)
        delta = sample - self.mean
        mean = self.mean + jnp.where(has, divide(delta, samples), 0)
        m2 = self.m2 + jnp.where(has, delta * (sample - mean), 0)
        return attrs.evolve(self, samples=samples, mean=mean, m2=m2)

    def aggregate(self, other: Self) -> Self:
        samples = self.samples + other.samples
        n_self = self.samples.astype(self.mean.dtype)
        weight = divide(other.samples, samples).astype(self.mean.dtype)
        delta = other.mean - self.mean
        return attrs.evolve(
            self,
            samples=samples,
            mean=self.mean + delta * weight,
            m2=self.m2 + other.m2 + delta * delta * n_self * weight,
        )

    def compute(self) -> jax.Array:
        return jnp.sqrt(jnp.maximum(divide(self.m2, self.samples), 0))

    def is_empty(self) -> jax.Array:
        return jnp.all(self.samples == 0)


@register_metric("single_noreduce")
@attrs.frozen(eq=False)
class NoReduceMetric(Metric):
    """The latest step's value array (per-sample values), not divided: ``key_single_noreduce``.

    Aggregation concatenates values along axis 0 and adds counts. A 0-d value is kept as
    shape ``(1,)`` so that it can be concatenated.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import metricskit as mk
        >>> m = mk.NoReduceMetric.empty(
        ...     jax.ShapeDtypeStruct((2,), jnp.float32), jax.ShapeDtypeStruct((), jnp.int32))
        >>> m = m.update(jnp.array([1.0, 2.0]), jnp.int32(2))
        >>> m.aggregate(m).compute().tolist()
        [1.0, 2.0, 1.0, 2.0]
    """

    append_batches: ClassVar[bool] = True

    value: jax.Array = state("concat")  # shape=value.shape (at least 1-d), value dtype
    count: jax.Array = state("sum")  # shape=count.shape, int32 or float32

    @classmethod
    def empty(cls, value: jax.ShapeDtypeStruct, count: jax.ShapeDtypeStruct) -> Self:
        return cls(
            _zeros(value.shape or (1,), value.dtype), _zeros(count.shape, count_dtype(count.dtype))
        )

    def update(self, value: jax.Array, count: jax.Array) -> Self:
        return attrs.evolve(
            self,
            value=jnp.atleast_1d(value).astype(self.value.dtype),
            count=count.astype(self.count.dtype),
        )

    def compute(self) -> jax.Array:
        return self.value

    def is_empty(self) -> jax.Array:
        return jnp.all(self.count == 0)


@register_metric("single_noreduce_wcount")
@attrs.frozen(eq=False)
class NoReduceWCountMetric(Metric):
    """The latest step's values and per-sample counts: ``(values, counts)``.

    Counts are broadcast to the value's shape; aggregation concatenates both along axis 0.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import metricskit as mk
        >>> m = mk.NoReduceWCountMetric.empty(
        ...     jax.ShapeDtypeStruct((2,), jnp.float32), jax.ShapeDtypeStruct((2,), jnp.int32))
        >>> values, counts = m.update(jnp.array([-3.0, -5.0]), jnp.array([3, 5])).compute()
        >>> values.tolist(), counts.tolist()
        ([-3.0, -5.0], [3, 5])
    """

    append_batches: ClassVar[bool] = True

    value: jax.Array = state("concat")  # shape=value.shape (at least 1-d), value dtype
    count: jax.Array = state("concat")  # shape=value.shape (at least 1-d), int32 or float32

    @classmethod
    def empty(cls, value: jax.ShapeDtypeStruct, count: jax.ShapeDtypeStruct) -> Self:
        shape = _sample_shape(value, count) or (1,)
        return cls(_zeros(shape, value.dtype), _zeros(shape, count_dtype(count.dtype)))

    def update(self, value: jax.Array, count: jax.Array) -> Self:
        shape = jnp.broadcast_shapes(jnp.shape(value), jnp.shape(count)) or (1,)
        return attrs.evolve(
            self,
            value=jnp.broadcast_to(value, shape).astype(self.value.dtype),
            count=jnp.broadcast_to(count, shape).astype(self.count.dtype),
        )

    def compute(self) -> tuple[jax.Array, jax.Array]:
        return self.value, self.count

    def is_empty(self) -> jax.Array:
        return jnp.all(self.count == 0)
