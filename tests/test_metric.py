"""The Metric base class: field declarations, derived empty state, aggregate and emptiness."""

from __future__ import annotations

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import FLOAT, INT

import metricskit as mk
from metricskit import exact
from metricskit.metric import (
    REDUCTIONS,
    FieldSpec,
    combine_fields,
    per_sample,
    state_fields,
    static_fields,
    zeros_like,
)


class AllReductions(mk.Metric):
    s = mk.state("sum")
    hi = mk.state("max")
    lo = mk.state("min")
    cat = mk.state("concat")
    last = mk.state("last")
    scale: float = mk.static(1.0)

    def update(self, value, count):
        return self

    def compute(self):
        return self.s


def _all(xp, values):
    m = AllReductions.empty(mk.Spec((2,), "float32"), mk.Spec((), "int32"))
    return m.replace(**{f.name: xp.asarray(values, FLOAT) for f in state_fields(AllReductions)})


def test_field_declarations_and_the_reduction_table():
    assert [f.name for f in state_fields(AllReductions)] == ["s", "hi", "lo", "cat", "last"]
    assert [f.name for f in static_fields(AllReductions)] == ["scale"]
    assert set(REDUCTIONS) == {"sum", "max", "min", "concat", "last", "merge"}
    assert per_sample(AllReductions) and not per_sample(mk.MeanMetric)


@pytest.mark.parametrize("xp", [jnp, np], ids=["jax", "numpy"])
def test_default_aggregate_uses_each_fields_reduction(xp):
    a, b = _all(xp, [1.0, 5.0]), _all(xp, [3.0, 2.0])
    out = combine_fields(a, b, xp, axis=0)
    np.testing.assert_array_equal(out.s, [4.0, 7.0])
    np.testing.assert_array_equal(out.hi, [3.0, 5.0])
    np.testing.assert_array_equal(out.lo, [1.0, 2.0])
    np.testing.assert_array_equal(out.cat, [1.0, 5.0, 3.0, 2.0])
    np.testing.assert_array_equal(out.last, [3.0, 2.0])
    if xp is jnp:
        np.testing.assert_array_equal(a.aggregate(b).s, out.s)


def test_the_empty_state_is_zeros_and_a_reset_gives_it_back():
    m = _all(jnp, [4.0, -2.0])
    empty = AllReductions.empty(mk.Spec((2,), "float32"), mk.Spec((), "int32"))
    reset = zeros_like(m)
    for a, b in zip(jax.tree.leaves(reset), jax.tree.leaves(empty), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert not np.any(np.asarray(a)) and not np.any(np.asarray(b))
    assert reset.scale == 1.0
    host = zeros_like(jax.device_get(m), drop_samples=0)
    assert host.cat.shape == (0,) and host.s.shape == (2,)  # host per-sample fields: no samples


def test_a_state_cannot_declare_its_own_empty_value():
    # Issue 14.2: an empty value declared beside the reduction could disagree with empty().
    with pytest.raises(TypeError, match="empty"):
        mk.state("sum", empty=5.0)  # type: ignore[call-arg]


def test_field_specs_follow_the_declarations():
    class Shapes(mk.Metric):
        v = mk.state("sum")
        c = mk.state("sum", shape="count", dtype="count", exact=True)
        s = mk.state("max", shape="sample", dtype="int")
        k = mk.state("sum", shape=(3,), dtype="bool")
        x = mk.state("sum", dtype="value", exact=True)

        def update(self, value, count):
            return self

        def compute(self):
            return self.v

    specs = Shapes.field_specs(mk.Spec((4, 1), "int64"), mk.Spec((5,), "float32"))
    assert specs == {
        "v": FieldSpec((4, 1), FLOAT),
        "c": FieldSpec((5,), "pair"),
        "s": FieldSpec((4, 5), INT),
        "k": FieldSpec((3,), "bool"),
        "x": FieldSpec((4, 1), "words"),
    }
    empty = Shapes.empty(mk.Spec((4, 1), "int64"), mk.Spec((5,), "float32"))
    assert isinstance(empty.c, exact.Pair) and isinstance(empty.x, exact.Words)


def test_merge_fields_need_an_aggregate_override():
    class Merged(mk.Metric):
        extra = mk.state("merge")

        def update(self, value, count):
            return self

        def compute(self):
            return self.extra

    m = Merged.empty(mk.Spec((1,), "float32"), mk.Spec((), "int32"))
    with pytest.raises(NotImplementedError, match=r"Merged\.extra.*override aggregate"):
        m.aggregate(m)
    # registering it says so at once, not at the first aggregate, sync or check
    with pytest.raises(TypeError, match=r"Merged declares \['extra'\] with state\('merge'\)"):
        mk.register_metric("test_merged_without_aggregate")(Merged)
    assert "test_merged_without_aggregate" not in mk.registered_modes()


def test_is_empty_reads_the_count_field_or_every_field():
    spec, count = mk.Spec((), "float32"), mk.Spec((), "int32")
    mean = mk.MeanMetric.empty(spec, count)
    assert bool(mean.is_empty())
    assert bool(mean.update(jnp.float32(5.0), jnp.int32(0)).is_empty())  # count 0: no samples
    assert not bool(mean.update(jnp.float32(0.0), jnp.int32(1)).is_empty())
    m = _all(jnp, [0.0, 0.0])
    assert bool(m.is_empty()) and not bool(_all(jnp, [0.0, 1.0]).is_empty())


def test_metric_classes_are_pytrees_when_defined_and_a_slotted_attrs_decorator_is_refused():
    class Plain(mk.Metric):
        total = mk.state("sum")

        def update(self, value, count):
            return Plain(total=self.total + value)  # constructible right after the class

        def compute(self):
            return self.total

    @attrs.frozen(eq=False, slots=False)  # processing the class again in place: harmless
    class Decorated(mk.Metric):
        total: jax.Array = mk.state("sum")

        def update(self, value, count):
            return Decorated(self.total + value)

        def compute(self):
            return self.total

    m = Plain(total=jnp.float32(1.0))  # no empty() or store first: a pytree already
    assert jax.tree.leaves(m) == [m.total] and jax.tree.map(lambda x: x + 1, m).total == 2.0
    for cls in (Plain, Decorated):
        m = cls.empty(mk.Spec((), "float32"), mk.Spec((), "int32"))
        m = jax.jit(lambda m, v, cls=cls: m.update(v, 1))(m, jnp.float32(2.0))
        assert float(m.aggregate(m).compute()) == 4.0
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            m.total = 1  # type: ignore[misc]
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            del m.total

    with pytest.raises(TypeError, match="remove the decorator"):

        @attrs.frozen(eq=False)
        class Slotted(mk.Metric):
            total: jax.Array = mk.state("sum")

            def update(self, value, count):
                return self

            def compute(self):
                return self.total


def test_undeclared_fields_are_refused_when_the_class_is_defined():
    with pytest.raises(TypeError, match=r"\['other'\].*state.*static"):

        class Loose(mk.Metric):
            total = mk.state("sum")
            other = attrs.field(default=1)

            def update(self, value, count):
                return self

            def compute(self):
                return self.total


def test_different_metric_classes_never_share_a_tree_structure():
    # Regression: dataclass-registered nodes of different classes compared equal, which let
    # jit's cache run one class's compiled kernel on another's state now and then.
    spec, count = mk.Spec((2,), "float32"), mk.Spec((), "int32")
    classes = (mk.MeanMetric, mk.SingleMetric, mk.MaxMetric, mk.MinMetric)
    structures = [jax.tree.structure(cls.empty(spec, count)) for cls in classes]
    for i, a in enumerate(structures):
        for j, b in enumerate(structures):
            assert (a == b) == (i == j)


def test_static_fields_may_come_before_state_fields():
    @mk.register_metric("test_ema_static_first")
    class Ema(mk.Metric):
        decay = mk.static(0.5)
        average = mk.state("merge")
        count = mk.state("sum", shape="count")

        def update(self, value, count):
            average = jnp.where(
                self.count > 0, self.decay * self.average + (1 - self.decay) * value, value
            )
            return self.replace(average=average, count=self.count + count)

        def aggregate(self, other):
            return other

        def compute(self):
            return self.average

    store = mk.MetricStore().update({"x": {"value": 2.0, "log_modes": ["test_ema_static_first"]}})
    store = store.update({"x": {"value": 4.0, "log_modes": ["test_ema_static_first"]}})
    assert store.compute() == {"x_test_ema_static_first": 3.0}


def test_a_misspelt_field_in_replace_is_an_error_naming_it():
    metric = mk.MeanMetric.empty(mk.Spec((), "float32"), mk.Spec((), "int32"))
    with pytest.raises(TypeError, match=r"MeanMetric.replace\(\) got \['coutn'\]"):
        metric.replace(coutn=metric.count)
