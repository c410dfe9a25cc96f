"""The built-in metrics, one per log mode of the design's table.

Every kernel is elementwise over the value's shape, so the same code serves a scalar metric,
an array metric and a stack of metrics mapped with ``jax.vmap``. A step whose count is zero
has no samples: it adds nothing to ``max``, ``min`` and ``std``.

State is exact (see :mod:`metricskit.exact`): sums are double-float accumulators, counts are
carried integers, and per-step samples ``value / count`` are computed in double-float, so
float64 host values keep their precision with ``jax_enable_x64`` off. Results that need more
than float32 are returned as :class:`~metricskit.exact.Pair` and reported as float64.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import attrs
import jax
import jax.numpy as jnp
from typing_extensions import Self

from metricskit import exact
from metricskit.exact import Pair
from metricskit.metric import Metric
from metricskit.numerics import count_dtype, divide, float_dtype, is_paired
from metricskit.reductions import state, static
from metricskit.registry import register_metric

__all__ = [
    "MaxMetric",
    "MeanMetric",
    "MinMetric",
    "NoReduceMetric",
    "NoReduceWCountMetric",
    "NonFiniteMetric",
    "SingleMetric",
    "StdMetric",
    "all_finite",
]

_Shape = tuple[int, ...]


def _sample_shape(value: jax.ShapeDtypeStruct, count: jax.ShapeDtypeStruct) -> _Shape:
    return tuple(jnp.broadcast_shapes(value.shape, count.shape))


def _samples(value: Any, count: jax.Array, shape: _Shape) -> tuple[Pair, jax.Array]:
    """Per-step samples ``value / count`` and where a sample exists.

    Paired values (float64 host values, x64 off) are divided in double-float; plain float32
    values in float32, which is correctly rounded and costs what a naive metric costs.
    """
    has = jnp.broadcast_to(jnp.asarray(count) != 0, shape)
    if isinstance(value, Pair):
        sample = divide(value, exact.int_pair(count, float_dtype()))
    else:
        sample = exact.as_pair(divide(value, count))
    return exact.broadcast(sample, shape), has


def _select(cond: jax.Array, new: jax.Array, old: jax.Array) -> jax.Array:
    """Select between two accumulators (trailing pair axis) with a value-shaped condition."""
    return jnp.where(cond[..., None], new, old)


def _pair_zeros(shape: _Shape) -> jax.Array:
    return exact.acc_zeros(shape, float_dtype())


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
        >>> float(mk.exact.to_host(m.compute()))
        3.0
    """

    accepts_pairs: ClassVar[bool] = True

    total: jax.Array = state("xsum")  # shape=(*value.shape, 2), float32 double-float
    count: jax.Array = state("xsum")  # shape=(*count.shape, 2), int32 carried (float: pair)

    @classmethod
    def empty(cls, value: jax.ShapeDtypeStruct, count: jax.ShapeDtypeStruct) -> Self:
        return cls(_pair_zeros(value.shape), exact.acc_zeros(count.shape, count_dtype(count.dtype)))

    def update(self, value: Any, count: jax.Array) -> Self:
        return attrs.evolve(
            self,
            total=exact.acc_add(self.total, exact.as_pair(value, self.total.dtype)),
            count=exact.acc_add(self.count, count),
        )

    def compute(self) -> Pair:
        return divide(exact.acc_value(self.total), exact.acc_value(self.count))  # type: ignore[no-any-return]

    def is_empty(self) -> jax.Array:
        return jnp.all(exact.acc_is_zero(self.count))


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
        >>> float(mk.exact.to_host(m.compute()))
        0.25
    """

    accepts_pairs: ClassVar[bool] = True
    partial: ClassVar[Literal["stream", "sum", "concat"]] = "sum"

    value: jax.Array = state("xsum")  # shape=(*value.shape, 2), float32 double-float
    count: jax.Array = state("xsum")  # shape=(*count.shape, 2), int32 carried (float: pair)

    @classmethod
    def empty(cls, value: jax.ShapeDtypeStruct, count: jax.ShapeDtypeStruct) -> Self:
        return cls(_pair_zeros(value.shape), exact.acc_zeros(count.shape, count_dtype(count.dtype)))

    def update(self, value: Any, count: jax.Array) -> Self:
        return attrs.evolve(
            self,
            value=exact.pack(
                exact.broadcast(exact.as_pair(value, self.value.dtype), self.value.shape[:-1])
            ),
            count=exact.acc_add(jnp.zeros_like(self.count), count),
        )

    def compute(self) -> Pair:
        return divide(exact.acc_value(self.value), exact.acc_value(self.count))  # type: ignore[no-any-return]

    def is_empty(self) -> jax.Array:
        return jnp.all(exact.acc_is_zero(self.count))


class _Extremum(Metric):
    """The running extreme of ``value / count`` over steps (abstract: max and min fill it in).

    Subclasses declare ``value`` (a double-float pair array reduced by their extreme, empty at
    ``fill``) and ``samples`` (steps with a nonzero count), and set ``fill`` and ``larger``.
    NaN samples propagate, as ``jnp.maximum`` does.
    """

    __slots__ = ()
    accepts_pairs: ClassVar[bool] = True
    fill: ClassVar[float]
    larger: ClassVar[bool]
    value: jax.Array
    samples: jax.Array

    @classmethod
    def empty(cls, value: jax.ShapeDtypeStruct, count: jax.ShapeDtypeStruct) -> Self:
        shape = _sample_shape(value, count)
        return cls(  # type: ignore[call-arg]
            jnp.full((*shape, 2), cls.fill, float_dtype()),
            jnp.zeros(shape, count_dtype(jnp.dtype(jnp.int32))),
        )

    def update(self, value: Any, count: jax.Array) -> Self:
        sample, has = _samples(value, count, self.samples.shape)
        best = exact.acc_max if type(self).larger else exact.acc_min
        return attrs.evolve(
            self,  # type: ignore[misc]
            value=_select(has, best(jnp, self.value, exact.pack(sample)), self.value),
            samples=self.samples + has.astype(self.samples.dtype),
        )

    def compute(self) -> Pair:
        found = self.samples > 0
        return Pair(
            jnp.where(found, self.value[..., 0], 0), jnp.where(found, self.value[..., 1], 0)
        )

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
        >>> float(mk.exact.to_host(m.compute()))
        -3.0
    """

    fill: ClassVar[float] = float("-inf")
    larger: ClassVar[bool] = True

    value: jax.Array = state("xmax", empty=float("-inf"))  # shape=(*sample, 2), float32 pair
    samples: jax.Array = state("sum")  # shape=sample, int32, steps with count != 0


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
        >>> float(mk.exact.to_host(m.compute()))
        3.0
    """

    fill: ClassVar[float] = float("inf")
    larger: ClassVar[bool] = False

    value: jax.Array = state("xmin", empty=float("inf"))  # shape=(*sample, 2), float32 pair
    samples: jax.Array = state("sum")  # shape=sample, int32, steps with count != 0


@register_metric("std")
@attrs.frozen(eq=False)
class StdMetric(Metric):
    """Population standard deviation of the per-step samples ``value / count``.

    Welford's update per step and Chan's parallel formula in :meth:`aggregate`, both in
    double-float arithmetic, so neither accumulating nor merging loses the spread to the
    mean's rounding. Reported as ``key_std``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> import metricskit as mk
        >>> spec = jax.ShapeDtypeStruct((), jnp.float32)
        >>> m = mk.StdMetric.empty(spec, jax.ShapeDtypeStruct((), jnp.int32))
        >>> for x in (1.0, 3.0, 5.0, 7.0):
        ...     m = m.update(jnp.float32(x), jnp.int32(1))
        >>> round(float(mk.exact.to_host(m.compute())) ** 2, 12)
        5.0
    """

    accepts_pairs: ClassVar[bool] = True

    samples: jax.Array = state("merge")  # shape=(*sample, 2), int32 carried: steps with samples
    mean: jax.Array = state("merge")  # shape=(*sample, 2), float32 double-float running mean
    m2: jax.Array = state("merge")  # shape=(*sample, 2), float32 double-float sum of squares

    @classmethod
    def empty(cls, value: jax.ShapeDtypeStruct, count: jax.ShapeDtypeStruct) -> Self:
        shape = _sample_shape(value, count)
        return cls(
            exact.acc_zeros(shape, count_dtype(jnp.dtype(jnp.int32))),
            _pair_zeros(shape),
            _pair_zeros(shape),
        )

    def update(self, value: Any, count: jax.Array) -> Self:
        x, has = _samples(value, count, self.mean.shape[:-1])
        samples = exact.acc_add(self.samples, has)
        mean, m2 = exact.acc_value(self.mean), exact.acc_value(self.m2)
        if isinstance(value, Pair):  # float64 host values: Welford in double-float
            delta = exact.sub(x, mean)
            new_mean = exact.add(mean, divide(delta, exact.acc_value(samples)))
            m2 = exact.add(m2, exact.mul(delta, exact.sub(x, new_mean)))
        else:  # float32 samples: double-float running mean and m2, float32 increments
            step = (x.hi - mean.hi) - mean.lo
            new_mean = exact.add_float(mean, divide(step, exact.acc_float(samples)))
            m2 = exact.add_float(m2, step * ((x.hi - new_mean.hi) - new_mean.lo))
        return attrs.evolve(
            self,
            samples=samples,
            mean=_select(has, exact.pack(new_mean), self.mean),
            m2=_select(has, exact.pack(m2), self.m2),
        )

    def aggregate(self, other: Self) -> Self:
        samples = exact.acc_combine(jnp, self.samples, other.samples)
        weight = divide(exact.acc_value(other.samples), exact.acc_value(samples))
        mean_a, mean_b = exact.acc_value(self.mean), exact.acc_value(other.mean)
        delta = exact.sub(mean_b, mean_a)
        spread = exact.mul(
            exact.mul(delta, delta), exact.mul(exact.acc_value(self.samples), weight)
        )
        m2 = exact.add(exact.add(exact.acc_value(self.m2), exact.acc_value(other.m2)), spread)
        return attrs.evolve(
            self,
            samples=samples,
            mean=exact.pack(exact.add(mean_a, exact.mul(delta, weight))),
            m2=exact.pack(m2),
        )

    def compute(self) -> Pair:
        variance = divide(exact.acc_value(self.m2), exact.acc_value(self.samples))
        variance = exact.where(
            variance.hi > 0, variance, exact.as_pair(jnp.zeros_like(variance.hi))
        )
        return exact.sqrt(variance)

    def is_empty(self) -> jax.Array:
        return jnp.all(exact.acc_is_zero(self.samples))


def _noreduce_value(value: Any, field: jax.Array, paired: bool) -> jax.Array:
    if paired:
        p = exact.as_pair(value, field.dtype)
        return exact.pack(Pair(jnp.atleast_1d(p.hi), jnp.atleast_1d(p.lo)))
    return jnp.atleast_1d(jnp.asarray(value)).astype(field.dtype)


def _noreduce_field(shape: _Shape, dtype: Any) -> tuple[jax.Array, bool]:
    """An empty value field: float64 host values are kept as float32 pairs (x64 off)."""
    if is_paired(dtype):
        return exact.acc_zeros(shape or (1,), float_dtype()), True
    return jnp.zeros(shape or (1,), dtype), False


def _noreduce_result(field: jax.Array, paired: bool) -> Any:
    return Pair(field[..., 0], field[..., 1]) if paired else field


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
    accepts_pairs: ClassVar[bool] = True
    partial: ClassVar[Literal["stream", "sum", "concat"]] = "concat"

    value: jax.Array = state("concat")  # shape=value.shape (at least 1-d) [+ (2,) if paired]
    count: jax.Array = state("sum")  # shape=count.shape, int32 or float32
    paired: bool = static(False)  # values are float32 (hi, lo) pairs of float64 host values

    @classmethod
    def empty(cls, value: jax.ShapeDtypeStruct, count: jax.ShapeDtypeStruct) -> Self:
        field, paired = _noreduce_field(value.shape, value.dtype)
        return cls(field, jnp.zeros(count.shape, count_dtype(count.dtype)), paired)

    def update(self, value: Any, count: jax.Array) -> Self:
        return attrs.evolve(
            self,
            value=_noreduce_value(value, self.value, self.paired),
            count=jnp.asarray(count).astype(self.count.dtype),
        )

    def compute(self) -> Any:
        return _noreduce_result(self.value, self.paired)

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
    accepts_pairs: ClassVar[bool] = True
    partial: ClassVar[Literal["stream", "sum", "concat"]] = "concat"

    value: jax.Array = state("concat")  # shape=sample (at least 1-d) [+ (2,) if paired]
    count: jax.Array = state("concat")  # shape=sample (at least 1-d), int32 or float32
    paired: bool = static(False)  # values are float32 (hi, lo) pairs of float64 host values

    @classmethod
    def empty(cls, value: jax.ShapeDtypeStruct, count: jax.ShapeDtypeStruct) -> Self:
        shape = _sample_shape(value, count) or (1,)
        field, paired = _noreduce_field(shape, value.dtype)
        return cls(field, jnp.zeros(shape, count_dtype(count.dtype)), paired)

    def update(self, value: Any, count: jax.Array) -> Self:
        shape = self.count.shape
        value = (
            exact.broadcast(exact.as_pair(value), shape)
            if self.paired
            else jnp.broadcast_to(jnp.asarray(value), shape)
        )
        return attrs.evolve(
            self,
            value=_noreduce_value(value, self.value, self.paired),
            count=jnp.broadcast_to(jnp.asarray(count), shape).astype(self.count.dtype),
        )

    def compute(self) -> tuple[Any, jax.Array]:
        return _noreduce_result(self.value, self.paired), self.count

    def is_empty(self) -> jax.Array:
        return jnp.all(self.count == 0)


def all_finite(value: Any) -> jax.Array:
    """Whether every element of a step value (array or :class:`~metricskit.exact.Pair`) is finite.

    Examples:
        >>> import jax.numpy as jnp
        >>> from metricskit.builtin import all_finite
        >>> bool(all_finite(jnp.array([1.0, jnp.inf]))), bool(all_finite(jnp.int32(3)))
        (False, True)
    """
    x = jnp.asarray(value.hi if isinstance(value, Pair) else value)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        return jnp.ones((), bool)
    return jnp.all(jnp.isfinite(x))


@register_metric("nonfinite")
@attrs.frozen(eq=False)
class NonFiniteMetric(Metric):
    """The number of steps whose value or count was not finite: ``key_nonfinite``.

    A store adds this mode to every key under ``nan_policy="skip"``, so that skipped steps are
    counted and reported rather than lost silently. It is never empty (zero is an answer).

    Examples:
        >>> import metricskit as mk
        >>> store = mk.MetricStore(default_log_modes=["mean"], nan_policy="skip")
        >>> for loss in (1.0, float("nan"), 3.0, float("inf")):
        ...     store = store.update({"loss": loss})
        >>> store.compute()
        {'loss_mean': 2.0, 'loss_nonfinite': 2}
    """

    accepts_pairs: ClassVar[bool] = True
    skippable: ClassVar[bool] = False

    count: jax.Array = state("sum")  # shape=(), int32: steps with a non-finite value or count

    @classmethod
    def empty(cls, value: jax.ShapeDtypeStruct, count: jax.ShapeDtypeStruct) -> Self:
        return cls(jnp.zeros((), count_dtype(jnp.dtype(jnp.int32))))

    def update(self, value: Any, count: jax.Array) -> Self:
        finite = all_finite(value) & all_finite(count)
        return attrs.evolve(self, count=self.count + (~finite).astype(self.count.dtype))

    def compute(self) -> jax.Array:
        return self.count

    def is_empty(self) -> jax.Array:
        return jnp.zeros((), bool)
