"""The Metric base class: field declarations, default aggregate and reset."""

from __future__ import annotations

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metricskit as mk
from metricskit.metric import combine_fields, state_fields, static_fields
from metricskit.reductions import REDUCTIONS


@attrs.frozen(eq=False)
class AllReductions(mk.Metric):
    s: jax.Array = mk.state("sum")
    hi: jax.Array = mk.state("max", empty=float("-inf"))
    lo: jax.Array = mk.state("min", empty=float("inf"))
    cat: jax.Array = mk.state("concat")
    last: jax.Array = mk.state("last", empty=7)
    scale: float = mk.static(1.0)

    @classmethod
    def empty(cls, value, count):
        return cls(*(jnp.zeros(value.shape) for _ in range(5)))

    def update(self, value, count):
        return self

    def compute(self):
        return self.s

    def is_empty(self):
        return jnp.array(False)


def test_field_declarations():
    assert [f.name for f in state_fields(AllReductions)] == ["s", "hi", "lo", "cat", "last"]
    assert [f.name for f in static_fields(AllReductions)] == ["scale"]
    assert set(REDUCTIONS) == {
        "sum",
        "xsum",
        "max",
        "xmax",
        "min",
        "xmin",
        "concat",
        "last",
        "merge",
    }


@pytest.mark.parametrize("xp", [jnp, np], ids=["jax", "numpy"])
def test_default_aggregate_uses_each_fields_reduction(xp):
    a = AllReductions(*(xp.asarray([1.0, 5.0]) for _ in range(5)))
    b = AllReductions(*(xp.asarray([3.0, 2.0]) for _ in range(5)))
    out = combine_fields(a, b, xp, axis=0)
    np.testing.assert_array_equal(out.s, [4.0, 7.0])
    np.testing.assert_array_equal(out.hi, [3.0, 5.0])
    np.testing.assert_array_equal(out.lo, [1.0, 2.0])
    np.testing.assert_array_equal(out.cat, [1.0, 5.0, 3.0, 2.0])
    np.testing.assert_array_equal(out.last, [3.0, 2.0])
    if xp is jnp:
        np.testing.assert_array_equal(a.aggregate(b).s, out.s)


def test_reset_fills_declared_empty_values_with_same_shapes():
    m = AllReductions(*(jnp.ones((2, 3), jnp.float32) for _ in range(5)))
    r = m.reset()
    assert [x.shape for x in (r.s, r.hi, r.cat)] == [(2, 3)] * 3
    assert float(r.hi[0, 0]) == -np.inf and float(r.lo[0, 0]) == np.inf
    assert float(r.last[0, 0]) == 7 and float(r.s[0, 0]) == 0


def test_merge_fields_need_an_aggregate_override():
    @attrs.frozen(eq=False)
    class Merged(AllReductions):
        extra: jax.Array = mk.state("merge", empty=0)
        scale: float = mk.static(2.0)

    m = Merged(*(jnp.ones(1) for _ in range(5)), scale=1.0, extra=jnp.ones(1))
    with pytest.raises(NotImplementedError, match=r"Merged\.extra.*override aggregate"):
        m.aggregate(m)


def test_different_metric_classes_never_share_a_tree_structure():
    # Regression: dataclass-registered nodes of different classes compared equal, which let
    # jit's cache run one class's compiled kernel on another's state now and then.
    zeros = (jnp.zeros(2), jnp.zeros(2, jnp.int32))
    classes = (mk.MeanMetric, mk.SingleMetric, mk.MaxMetric, mk.MinMetric)
    structures = [jax.tree.structure(cls(*zeros)) for cls in classes]
    for i, a in enumerate(structures):
        for j, b in enumerate(structures):
            assert (a == b) == (i == j)
    compute = jax.jit(lambda m: m.compute().hi)
    mean = mk.MeanMetric(jnp.array([6.0, 0.0]), jnp.array([3, 0]))
    peak = mk.MaxMetric(jnp.array([6.0, 0.0]), jnp.array(3))
    assert float(compute(mean)) == 2.0 and float(compute(peak)) == 6.0
