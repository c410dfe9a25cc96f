"""The per-sample log modes: ``single_noreduce`` and ``single_noreduce_wcount``.

They hold the latest step's per-sample values (e.g. one log-likelihood per sequence) along
axis 0, not reduced. Their value fields are declared ``"concat"``, which makes them per-sample
metrics: :func:`metricskit.aggregate_metrics` appends evaluation batches of them, ``sync``
gathers them across devices, and their batch size may change between steps (a smaller last
batch), since they hold only the latest step.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from metricskit import exact
from metricskit.fields import FieldSpec, Spec, state, storage
from metricskit.metric import Metric
from metricskit.registry import register_metric

__all__ = ["NoReduceMetric", "NoReduceWCountMetric"]


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
