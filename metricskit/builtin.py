"""The built-in log modes, and the NaN policy.

**Accumulating modes**: ``mean``, ``mean_nopostfix``, ``single``, ``max``, ``min`` and ``std``.
Every kernel is elementwise over the value's shape, so one code path serves a scalar metric,
an array metric and a stack of metrics mapped with ``jax.vmap``. A step whose count is zero
has no sample: it adds nothing to ``max``, ``min`` and ``std``. Every state is exact (see
:mod:`metricskit.exact`): sums and counts never drift or wrap, a mean is reported as the
correctly rounded float64 quotient of its exact sum and count, and per-step samples
``value / count`` are double-floats. Non-finite values propagate as float64 arithmetic would.

**Per-sample modes**: ``single_noreduce`` and ``single_noreduce_wcount`` hold the latest
step's per-sample values (e.g. one log-likelihood per sequence) along axis 0, not reduced.
Their value fields are declared ``"concat"``, which makes them per-sample metrics:
:func:`metricskit.aggregate_metrics` appends evaluation batches of them, ``sync`` gathers them
across devices, and their batch size may change between steps (a smaller last batch).

**The NaN policy** (what a store does with non-finite steps), in one place:

- ``"propagate"`` (the default): NaN and inf flow into the metrics as float64 arithmetic
  would carry them (a mean with an inf step is inf, a std is NaN).
- ``"skip"``: a step whose value or count has a NaN or inf adds nothing to that key (every
  mode keeps its state, inside the compiled update, with no host sync), and the key gets the
  ``"nonfinite"`` mode, which counts those steps and is reported as ``key_nonfinite``: nothing
  is dropped silently.

The engine asks this module which modes a key gets (:func:`policy_modes`), whether a metric's
update is masked (:func:`masked`) and how (:func:`keep_rows`); no other module knows the
policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Final

import jax
import jax.numpy as jnp
import numpy as np

from metricskit import exact
from metricskit.exact import Pair, Ratio, divide, float_dtype, upcast
from metricskit.metric import FieldSpec, Metric, Mode, Spec, register_metric, state, storage

# -- accumulating modes -----------------------------------------------------------------------


def samples(value: Any, count: Any, shape: tuple[int, ...]) -> tuple[Pair, jax.Array]:
    """Per-step samples ``value / count`` as double-floats, and where a sample exists.

    Plain float values are divided in float (correctly rounded, as cheap as a naive metric);
    integers and exact 64-bit values in double-float.

    Args:
        value: The step's value (array, Pair or Words).
        count: The step's count (array, Pair or Words).
        shape: The sample shape (value and count broadcast).

    Returns:
        ``(sample, has)``: the samples broadcast to ``shape``, and ``count != 0``.
    """
    has = jnp.broadcast_to(~exact.is_zero(count), shape)
    plain = not isinstance(value, Pair | exact.Words) and not isinstance(count, Pair | exact.Words)
    if plain and jnp.issubdtype(jnp.asarray(value).dtype, jnp.floating):
        value = jnp.asarray(value)
        value = upcast(value, jnp.promote_types(value.dtype, float_dtype()))
        # rounded: the quotient may be a product (XLA turns ``x / 24`` into ``x * (1/24)``),
        # which would be contracted into std's subtractions as an unrounded value
        quotient = exact.rounded(divide(value, count))
        sample = Pair(quotient, jnp.zeros_like(quotient))
    else:
        sample = exact.as_pair(divide(exact.as_pair(value), exact.as_pair(count)))
    return jax.tree.map(lambda x: jnp.broadcast_to(x, shape), sample), has


@register_metric("mean")
class MeanMetric(Metric):
    """Sum of values over sum of counts, reported as ``key_mean`` (``key`` for ``mean_nopostfix``).

    The sum and the count are exact accumulators; the reported mean is their float64 quotient,
    so a mean of integer data is exactly Python's ``sum / count``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> m = mk.MeanMetric.empty(mk.Spec((), "int32"), mk.Spec((), "int32"))
        >>> for correct in (30, 29, 31):
        ...     m = m.update(jnp.int32(correct), jnp.int32(32))
        >>> float(mk.exact.to_host(m.compute()))
        0.9375
    """

    exact_inputs: ClassVar[bool] = True

    total = state("sum", dtype="value", exact=True)  # value shape: Pair (floats) or Words (ints)
    count = state("sum", shape="count", dtype="count", exact=True)  # count shape

    def update(self, value: Any, count: Any) -> MeanMetric:
        return self.replace(
            total=exact.accumulate(self.total, value), count=exact.accumulate(self.count, count)
        )

    def compute(self) -> Ratio:
        return Ratio(self.total, self.count)


register_metric("mean_nopostfix", postfix="")(MeanMetric)


@register_metric("single")
class SingleMetric(Metric):
    """The latest step's ``value / count`` (exact quotient), reported as ``key_single``.

    Two partial states of one step (two devices) aggregate by adding values and counts.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> m = mk.SingleMetric.empty(mk.Spec((), "float32"), mk.Spec((), "int32"))
        >>> m = m.update(jnp.float32(6.0), jnp.int32(2)).update(jnp.float32(1.0), jnp.int32(4))
        >>> float(mk.exact.to_host(m.compute()))
        0.25
    """

    accumulates: ClassVar[bool] = False
    exact_inputs: ClassVar[bool] = True

    value = state("sum", dtype="value", exact=True)  # value shape
    count = state("sum", shape="count", dtype="count", exact=True)  # count shape

    def update(self, value: Any, count: Any) -> SingleMetric:
        zero = jax.tree.map(jnp.zeros_like, (self.value, self.count))
        return self.replace(
            value=exact.accumulate(zero[0], value), count=exact.accumulate(zero[1], count)
        )

    def compute(self) -> Ratio:
        return Ratio(self.value, self.count)


class _Extremum(Metric):
    """The running extreme of the samples ``value / count`` (max and min fill in ``larger``).

    NaN samples win, as with ``np.maximum``. ``count`` counts the samples, so an all-zero state
    is empty and its zero ``value`` is never compared.
    """

    exact_inputs: ClassVar[bool] = True
    larger: ClassVar[bool]

    value = state("merge", shape="sample", exact=True)  # sample shape, double-float
    count = state("sum", shape="sample", dtype="int")  # sample shape: steps with a sample

    def update(self, value: Any, count: Any) -> Any:
        sample, has = samples(value, count, self.count.shape)
        best = exact.extreme(self.value, sample, type(self).larger)
        new = exact.where(self.count == 0, sample, best)
        return self.replace(
            value=exact.where(has, new, self.value), count=self.count + has.astype(self.count.dtype)
        )

    def aggregate(self, other: Any) -> Any:
        best = exact.extreme(self.value, other.value, type(self).larger)
        value = exact.where(
            self.count == 0, other.value, exact.where(other.count == 0, self.value, best)
        )
        return self.replace(value=value, count=self.count + other.count)

    def compute(self) -> Any:
        return self.value  # the extreme sample, a double-float Pair


@register_metric("max")
class MaxMetric(_Extremum):
    """The maximum over steps of ``value / count``, reported as ``key_max``.

    Steps with count ``0`` have no sample; with no samples at all the mode is empty (a warning,
    and ``0.0``), whatever the values' signs.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> m = mk.MaxMetric.empty(mk.Spec((), "float32"), mk.Spec((), "int32"))
        >>> m = m.update(jnp.float32(-6.0), jnp.int32(2)).update(jnp.float32(-8.0), jnp.int32(2))
        >>> float(mk.exact.to_host(m.compute()))
        -3.0
    """

    larger: ClassVar[bool] = True


@register_metric("min")
class MinMetric(_Extremum):
    """The minimum over steps of ``value / count``, reported as ``key_min``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> m = mk.MinMetric.empty(mk.Spec((), "float32"), mk.Spec((), "int32"))
        >>> m = m.update(jnp.float32(6.0), jnp.int32(2)).update(jnp.float32(8.0), jnp.int32(2))
        >>> float(mk.exact.to_host(m.compute()))
        3.0
    """

    larger: ClassVar[bool] = False


@register_metric("std")
class StdMetric(Metric):
    """Population standard deviation of the per-step samples ``value / count``: ``key_std``.

    Welford's update per step and Chan's formula in :meth:`aggregate`, with a double-float
    mean and sum of squares, so neither accumulating nor merging loses the spread to the
    mean's rounding (Chan, Golub and LeVeque, "Algorithms for computing the sample variance",
    1983). A NaN or infinite sample makes it NaN, as float64 arithmetic would.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> m = mk.StdMetric.empty(mk.Spec((), "float32"), mk.Spec((), "int32"))
        >>> for x in (1.0, 3.0, 5.0, 7.0):
        ...     m = m.update(jnp.float32(x), jnp.int32(1))
        >>> round(float(mk.exact.to_host(m.compute())) ** 2, 12)
        5.0
    """

    exact_inputs: ClassVar[bool] = True

    count = state("merge", shape="sample", dtype="int")  # sample shape: steps with a sample
    mean = state("merge", shape="sample", exact=True)  # sample shape, double-float running mean
    m2 = state("merge", shape="sample", exact=True)  # sample shape, double-float sum of squares

    def update(self, value: Any, count: Any) -> StdMetric:
        x, has = samples(value, count, self.count.shape)
        n = self.count + has.astype(self.count.dtype)
        n_float = jnp.maximum(n, 1).astype(self.mean.hi.dtype)
        mean, m2 = self.mean, self.m2
        if isinstance(value, Pair | exact.Words) or not jnp.issubdtype(
            jnp.asarray(value).dtype, jnp.floating
        ):  # exact samples: Welford in double-float
            delta = exact.sub(x, mean)
            new_mean = exact.add(mean, exact.div(delta, exact.as_pair(n_float)))
            new_m2 = exact.add(m2, exact.mul(delta, exact.sub(x, new_mean)))
        else:  # float samples: double-float mean and m2, float increments
            step = (x.hi - mean.hi) - mean.lo
            new_mean = exact.add_float(mean, step / n_float)
            new_m2 = exact.add_float(m2, step * ((x.hi - new_mean.hi) - new_mean.lo))
        return self.replace(
            count=n, mean=exact.where(has, new_mean, mean), m2=exact.where(has, new_m2, m2)
        )

    def aggregate(self, other: StdMetric) -> StdMetric:
        n = self.count + other.count
        dtype = self.mean.hi.dtype
        weight = exact.div(
            exact.as_pair(other.count.astype(dtype)), exact.as_pair(jnp.maximum(n, 1).astype(dtype))
        )
        delta = exact.sub(other.mean, self.mean)
        spread = exact.mul(
            exact.mul(delta, delta), exact.mul(exact.as_pair(self.count.astype(dtype)), weight)
        )
        m2 = exact.add(exact.add(self.m2, other.m2), spread)
        mean = exact.add(self.mean, exact.mul(delta, weight))
        a_empty, b_empty = self.count == 0, other.count == 0
        return self.replace(
            count=n,
            mean=exact.where(a_empty, other.mean, exact.where(b_empty, self.mean, mean)),
            m2=exact.where(a_empty, other.m2, exact.where(b_empty, self.m2, m2)),
        )

    def compute(self) -> Pair:
        variance = divide(self.m2, self.count)
        zero = jax.tree.map(jnp.zeros_like, variance)
        return exact.sqrt(exact.where(variance.hi < 0, zero, variance))  # NaN stays NaN


# -- per-sample modes -------------------------------------------------------------------------


def _store(x: Any, like: Any) -> Any:
    """A step's values in the storage of the field ``like`` (array, Pair or Words), at least 1-d."""
    if isinstance(like, exact.Pair):
        x = exact.as_pair(x, like.hi.dtype)
    elif isinstance(like, exact.Words):
        x = exact.as_words(x)
    else:
        x = jnp.asarray(x).astype(like.dtype)
    shape = np.shape(like.lo if isinstance(like, exact.Pair | exact.Words) else like)
    return jax.tree.map(lambda p: jnp.broadcast_to(p, shape), x)


@register_metric("single_noreduce")
class NoReduceMetric(Metric):
    """The latest step's value array (per-sample values), not divided: ``key_single_noreduce``.

    A 0-d value is kept as shape ``(1,)``. Aggregation concatenates values along axis 0 and
    adds counts (the count is the step's total count, a scalar).

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> m = mk.NoReduceMetric.empty(mk.Spec((2,), "float32"), mk.Spec((), "int32"))
        >>> m = m.update(jnp.array([1.0, 2.0]), jnp.int32(2))
        >>> m.aggregate(m).compute().tolist()
        [1.0, 2.0, 1.0, 2.0]
    """

    accumulates: ClassVar[bool] = False
    exact_inputs: ClassVar[bool] = True

    value = state("concat", dtype="value")  # value shape (at least 1-d), the value's own dtype
    count = state("sum", shape="scalar", dtype="count", exact=True)  # the step's total count

    @classmethod
    def field_specs(cls, value: Spec, count: Spec) -> dict[str, FieldSpec]:
        specs = super().field_specs(value, count)
        specs["value"] = FieldSpec(value.shape or (1,), specs["value"].storage)
        return specs

    def update(self, value: Any, count: Any) -> NoReduceMetric:
        total = exact.accumulate(jax.tree.map(jnp.zeros_like, self.count), exact.total(count))
        return self.replace(value=_store(value, self.value), count=total)

    def compute(self) -> Any:
        return self.value  # exact 64-bit values are widened on the host


@register_metric("single_noreduce_wcount")
class NoReduceWCountMetric(Metric):
    """The latest step's values and per-sample counts: ``key_single_noreduce_wcount``.

    Reported as the tuple ``(values, counts)``; value and count are broadcast to one shape
    (at least 1-d). Aggregation concatenates both along axis 0.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> m = mk.NoReduceWCountMetric.empty(mk.Spec((2,), "float32"), mk.Spec((2,), "int32"))
        >>> values, counts = m.update(jnp.array([-3.0, -5.0]), jnp.array([3, 5])).compute()
        >>> values.tolist(), counts.tolist()
        ([-3.0, -5.0], [3, 5])
    """

    accumulates: ClassVar[bool] = False
    exact_inputs: ClassVar[bool] = True

    value = state("concat", dtype="value")  # sample shape (at least 1-d)
    count = state("concat", dtype="count")  # sample shape (at least 1-d)

    @classmethod
    def field_specs(cls, value: Spec, count: Spec) -> dict[str, FieldSpec]:
        shape = tuple(np.broadcast_shapes(value.shape, count.shape)) or (1,)
        return {
            "value": FieldSpec(shape, storage("value", False, value, count)),
            "count": FieldSpec(shape, storage("count", False, value, count)),
        }

    def update(self, value: Any, count: Any) -> NoReduceWCountMetric:
        return self.replace(value=_store(value, self.value), count=_store(count, self.count))

    def compute(self) -> tuple[Any, Any]:
        return self.value, self.count

    def is_empty(self) -> jax.Array:
        # As the documented module: only a single zero count (or no sample at all) is empty.
        count = self.count.lo if isinstance(self.count, exact.Pair | exact.Words) else self.count
        size = int(np.prod(np.shape(count)))
        if size == 0:
            return jnp.ones((), bool)
        if size > 1:
            return jnp.zeros((), bool)
        return jnp.all(exact.is_zero(self.count))


# -- the NaN policy ---------------------------------------------------------------------------

NAN_POLICIES: Final = ("propagate", "skip")
_COUNTER: Final = "nonfinite"


def check_policy(policy: Any, where: str) -> str:
    """Validate a NaN policy name.

    Args:
        policy: ``"propagate"`` or ``"skip"``.
        where: What the policy belongs to, for the error message.

    Returns:
        The policy.

    Raises:
        ValueError: For any other value.

    Examples:
        >>> from metricskit.builtin import check_policy
        >>> check_policy("skip", "the store")
        'skip'
    """
    if policy not in NAN_POLICIES:
        raise ValueError(
            f"nan_policy for {where} is {policy!r}; use 'propagate' (non-finite values flow "
            "into the metrics) or 'skip' (non-finite steps are dropped and counted)"
        )
    return str(policy)


def policy_modes(log_modes: Sequence[Mode], skip: bool) -> tuple[Mode, ...]:
    """A key's log modes under its policy: ``skip`` adds the counter of skipped steps."""
    if not skip or _COUNTER in log_modes:
        return tuple(log_modes)
    return (*log_modes, _COUNTER)


def finite(value: Any, count: Any) -> jax.Array:
    """Whether every element of one key's step value and count is finite (a boolean scalar).

    Examples:
        >>> import jax.numpy as jnp
        >>> from metricskit.builtin import finite
        >>> bool(finite(jnp.array([1.0, jnp.inf]), 1)), bool(finite(3, 1))
        (False, True)
    """
    ok = jnp.ones((), bool)
    for x in (value, count):
        x = x.hi if isinstance(x, exact.Pair) else x
        if isinstance(x, exact.Words):
            continue
        x = jnp.asarray(x)
        if jnp.issubdtype(x.dtype, jnp.inexact):
            ok = ok & jnp.all(jnp.isfinite(x))
    return ok


def masked(cls: type[Metric]) -> bool:
    """Whether the skip policy masks updates of ``cls`` (all but the counter of skipped steps)."""
    return cls is not NonFiniteMetric


def keep_rows(keep: jax.Array, new: Metric, old: Metric) -> Metric:
    """Per leading row (key) of a stacked metric: ``old`` where ``keep``, else ``new``."""

    def select(x: jax.Array, y: jax.Array) -> jax.Array:
        return jnp.where(keep.reshape(-1, *([1] * (x.ndim - 1))), y, x)

    return jax.tree.map(select, new, old)  # type: ignore[no-any-return]


@register_metric(_COUNTER)
class NonFiniteMetric(Metric):
    """The number of steps whose value or count was not finite: ``key_nonfinite``.

    A store adds this mode to every key under ``nan_policy="skip"``; it may also be asked for
    as a log mode of its own. It is never empty (zero is an answer).

    Examples:
        >>> import metricskit as mk
        >>> store = mk.MetricStore(default_log_modes=["mean"], nan_policy="skip")
        >>> for loss in (1.0, float("nan"), 3.0, float("inf")):
        ...     store = store.update({"loss": loss})
        >>> store.compute()
        {'loss_mean': 2.0, 'loss_nonfinite': 2}
    """

    exact_inputs: ClassVar[bool] = True

    count = state("sum", shape="scalar", dtype="int")  # steps with a non-finite value or count

    def update(self, value: Any, count: Any) -> NonFiniteMetric:
        return self.replace(count=self.count + (~finite(value, count)).astype(self.count.dtype))

    def compute(self) -> Any:
        return self.count

    def is_empty(self) -> jax.Array:
        return jnp.zeros((), bool)
