"""Configured metrics: a metric class called with its static options is a log mode, set per
key, compared by value, refused with a clear error when malformed, and usable wherever a mode
name is (class API, functional API, default modes, jit)."""

from __future__ import annotations

import math

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from usermetrics import DecayedMean

import metricskit as mk
from metricskit.functional import aggregate_metrics, get_metrics, update_metrics
from metricskit.metric import ConfiguredMetric
from metricskit.testing import check_metric


class Needs(mk.Metric):
    """A metric with an option that has no default."""

    width = mk.static()
    total = mk.state("sum")

    def update(self, value, count):
        return self.replace(total=self.total + self.width * value)

    def compute(self):
        return self.total


def decayed(values, decay):
    total = weight = 0.0
    for v in values:
        total, weight = decay * total + v, decay * weight + 1.0
    return total / weight


@pytest.mark.parametrize("jit", [False, True])
def test_two_decays_on_two_keys_and_on_one_key_match_a_float64_reference(rng, jit):
    values = rng.normal(size=(6, 2)).astype(np.float32)

    def step(store, v):
        return store.update(
            {
                "a": {"value": v[0], "log_modes": [DecayedMean(decay=0.5)]},
                "b": {
                    "value": v[1],
                    "log_modes": [DecayedMean(decay=0.99), DecayedMean(postfix="_d9")],
                },
            }
        )

    update = jax.jit(step) if jit else step
    store = mk.MetricStore()
    for v in values:
        store = update(store, jnp.asarray(v))
    host = store.compute()
    assert sorted(host) == ["a_decayed_mean", "b_d9", "b_decayed_mean"]
    assert host["a_decayed_mean"] == pytest.approx(decayed(values[:, 0], 0.5), rel=1e-5)
    assert host["b_decayed_mean"] == pytest.approx(decayed(values[:, 1], 0.99), rel=1e-5)
    assert host["b_d9"] == pytest.approx(decayed(values[:, 1], 0.9), rel=1e-5)
    assert [g.mode for g in store.layout.groups] == [
        DecayedMean(decay=0.5),
        DecayedMean(decay=0.9, postfix="_d9"),
        DecayedMean(decay=0.99),
    ]
    assert store["b"][DecayedMean(decay=0.99)].decay == 0.99  # static on the state itself


def test_a_class_is_its_default_configuration_and_options_compare_by_value():
    assert mk.get_log_mode(DecayedMean).cls is DecayedMean
    assert DecayedMean() == DecayedMean(decay=0.9) == ConfiguredMetric.of(DecayedMean, {})
    assert DecayedMean(decay=np.float64(0.5)) == DecayedMean(decay=0.5)
    assert hash(DecayedMean(decay=float("nan"))) == hash(DecayedMean(decay=float("nan")))
    assert DecayedMean(decay=float("nan")) == DecayedMean(decay=math.nan)
    assert DecayedMean(decay=[1.0, 2.0]).options == (("decay", (1.0, 2.0)),)
    assert DecayedMean(decay=0.5) != DecayedMean(decay=0.5, postfix="_x")
    assert repr(DecayedMean(decay=0.5, postfix="_x")) == "DecayedMean(decay=0.5, postfix='_x')"
    store = mk.MetricStore().update({"x": {"value": 1.0, "log_modes": [DecayedMean]}})
    store = store.update({"x": {"value": 3.0, "log_modes": [DecayedMean(decay=0.9)]}})
    assert len(store.layout.groups) == 1  # one mode: the class and its default configuration
    zero = jnp.zeros(())
    instance = DecayedMean(total=zero, weight=zero, steps=jnp.int32(0), decay=0.5)
    assert isinstance(instance, DecayedMean) and instance.decay == 0.5


def test_malformed_configurations_are_type_errors_naming_the_class_and_the_fix():
    with pytest.raises(TypeError, match=r"DecayedMean got unknown options \['decy'\].*decay"):
        DecayedMean(decy=0.5)
    with pytest.raises(TypeError, match=r"option decay=.*ndarray.*plain|must be a bool"):
        DecayedMean(decay=np.ones(2))
    with pytest.raises(TypeError, match=r"Needs\.width is a static option without a default"):
        Needs()
    with pytest.raises(TypeError, match=r"postfix=3.*string"):
        DecayedMean(postfix=3)
    with pytest.raises(TypeError, match="abstract"):
        mk.tasks.modes.SumsMetric()
    with pytest.raises(TypeError, match="abstract base class"):
        mk.Metric()
    with pytest.raises(TypeError, match=r"key 'x'.*not a metricskit\.Metric subclass"):
        mk.MetricStore().update({"x": {"value": 1.0, "log_modes": [int]}})
    with pytest.raises(TypeError, match=r"must be mode names, metric classes or configured"):
        mk.MetricStore().update({"x": {"value": 1.0, "log_modes": [DecayedMean.empty]}})
    with pytest.raises(ValueError, match="list each mode once"):
        mk.MetricStore().update({"x": {"value": 1.0, "log_modes": [DecayedMean, DecayedMean()]}})
    store = mk.MetricStore()
    with pytest.raises(ValueError, match=r"another postfix \(MyMetric\(\.\.\., postfix="):
        store.update({"x": {"value": 1.0, "log_modes": [DecayedMean(decay=0.5), DecayedMean()]}})
    assert store.layout.groups == ()  # nothing changed


@pytest.mark.parametrize("defaults", [None, ("mean", "max")])
@pytest.mark.parametrize("task", ["f1", "quantiles", "scored_samples", "log_likelihood", "r2"])
def test_a_placeholder_initialised_key_updated_by_a_task_metric_names_the_fix(task, defaults):
    logits, labels = jnp.array([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]), jnp.array([0, 1, 1])
    item = {
        "f1": lambda: mk.tasks.f1(logits, labels, num_classes=2),
        "quantiles": lambda: mk.tasks.quantiles(jnp.arange(1.0, 6.0)),
        "scored_samples": lambda: mk.tasks.scored_samples(logits[:, 1], labels),
        "log_likelihood": lambda: mk.tasks.sequence_log_likelihood(logits[None], labels[None]),
        "r2": lambda: mk.tasks.r2(logits[:, 0], logits[:, 1]),
    }[task]()
    fix = r"a placeholder such as 0\.0.*Initialise the key with what the step gives it"
    store = mk.MetricStore(default_log_modes=defaults).init({"val": 0.0})
    with pytest.raises(ValueError, match=fix):
        store.update({"val": item})
    with pytest.raises(ValueError, match=fix):
        jax.jit(lambda s: s.update({"val": item}))(store)
    with pytest.raises(ValueError, match=fix):
        update_metrics(update_metrics(None, {"val": 0.0}, defaults), {"val": item}, defaults)
    # the fix the message names: initialise with the task function's output
    fixed = mk.MetricStore(default_log_modes=defaults).init({"val": item}).update({"val": item})
    assert sorted(fixed.compute()) == sorted(mk.MetricStore().update({"val": item}).compute())


def test_a_key_may_still_add_modes_of_its_own_shape(caplog):
    store = mk.MetricStore().update({"loss": {"value": 1.0, "log_modes": ["mean"]}})
    store = store.update({"loss": {"value": 3.0, "log_modes": ["max"]}})
    assert store.compute() == {"loss_max": 3.0, "loss_mean": 1.0}
    # said once: the earlier mode stays, and if it was a placeholder's, how to fix it
    assert "Metric 'loss' holds log modes mean and this step gives it only max" in caplog.text


@pytest.mark.parametrize("item", ["accuracy", "decayed"])
def test_a_scalar_placeholder_followed_by_other_modes_of_its_shape_names_the_fix(caplog, item):
    logits, labels = jnp.array([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]), jnp.array([0, 1, 1])
    store = mk.MetricStore(default_log_modes=("mean", "max")).init({"acc": 0.0})

    @jax.jit
    def step(store, logits, labels):
        acc = mk.tasks.accuracy(logits, labels)
        if item == "decayed":
            rate = mk.exact.to_float(acc["value"]) / acc["count"]  # its hits: an exact Pair
            acc = {"value": rate, "log_modes": [DecayedMean(decay=0.5)]}
        return store.update({"acc": acc})

    store = step(step(store, logits, labels), logits, labels)
    assert caplog.text.count("Metric 'acc' holds log modes max, mean and this step") == 1
    assert "initialise it with what the step gives it (store.init({'acc'" in caplog.text


def test_configured_metrics_work_in_default_modes_and_the_functional_api(rng):
    values = rng.normal(size=(3, 4)).astype(np.float32)
    store = mk.MetricStore(default_log_modes=["mean", DecayedMean(decay=0.5)])
    m = None
    aggregated: dict = {}
    for v in values:
        store = store.update({"x": jnp.asarray(v).sum()})
        m = update_metrics(m, {"x": jnp.asarray(v).sum()}, default_log_modes=[DecayedMean])
        batch = update_metrics(
            None, {"x": {"value": jnp.asarray(v), "log_modes": ["single_noreduce", DecayedMean]}}
        )
        aggregated = aggregate_metrics(aggregated, batch)
    sums = values.astype(np.float64).sum(1)
    host = store.compute()
    assert host["x_decayed_mean"] == pytest.approx(decayed(sums, 0.5), rel=1e-5)
    assert host["x_mean"] == pytest.approx(sums.mean(), rel=1e-5)
    _, functional = get_metrics(m)
    assert functional == {"x_decayed_mean": pytest.approx(decayed(sums, 0.9), rel=1e-5)}
    _, evaluation = get_metrics(aggregated)
    np.testing.assert_allclose(evaluation["x_single_noreduce"], values.reshape(-1))
    # each batch's store holds one step; aggregate_metrics keeps the latest batch's state
    np.testing.assert_allclose(evaluation["x_decayed_mean"], values[-1], rtol=1e-6)


class Scaled(mk.Metric):
    """A scaled sum: the option enters the kernel."""

    scale = mk.static(2.0)
    total = mk.state("sum")
    count = mk.state("sum", shape="count")

    def update(self, value, count):
        return self.replace(total=self.total + self.scale * value, count=self.count + count)

    def compute(self):
        return self.total


def test_the_conformance_suite_takes_a_class_and_a_configured_metric():
    from metricskit.testing import check_metric

    check_metric(Scaled, reference=lambda v, c: 2.0 * v.sum(0))
    check_metric(Scaled(scale=-3.0), reference=lambda v, c: -3.0 * v.sum(0))
    with pytest.raises(AssertionError):
        check_metric(Scaled(scale=-3.0), reference=lambda v, c: 2.0 * v.sum(0))


class Pow(mk.Metric):
    """A kernel that tells options apart which Python calls equal (True == 1 == 1.0)."""

    p = mk.static(2)
    total = mk.state("sum")
    count = mk.state("sum", shape="count")

    def update(self, value, count):
        x = jnp.abs(value) if self.p is True else value**self.p
        return self.replace(total=self.total + x, count=self.count + count)

    def compute(self):
        return mk.divide(self.total, self.count)


class Inverse(mk.Metric):
    """``1 / s`` of every value: the sign of a zero option matters."""

    s = mk.static(1.0)
    total = mk.state("sum")

    def update(self, value, count):
        return self.replace(total=self.total + value / jnp.float32(self.s))

    def compute(self):
        return self.total


@pytest.mark.parametrize("jit", [False, True])
def test_options_equal_in_python_but_told_apart_by_the_kernel_are_different_modes(jit):
    def step(store, v):
        return store.update(
            {
                "a": {"value": v, "log_modes": [Pow(p=True)]},
                "b": {"value": v, "log_modes": [Pow(p=1)]},
                "c": {"value": v, "log_modes": [Pow(p=1.0)]},
                "pos": {"value": -v, "log_modes": [Inverse(s=0.0)]},
                "neg": {"value": -v, "log_modes": [Inverse(s=-0.0)]},
            }
        )

    update = jax.jit(step) if jit else step
    # an earlier store with the other options first must not leak into this one
    mk.MetricStore().update({"b": {"value": -3.0, "log_modes": [Pow(p=1)]}}).compute()
    host = update(mk.MetricStore(), jnp.float32(-3.0)).compute()
    assert host == {
        "a_pow": 3.0,
        "b_pow": -3.0,
        "c_pow": -3.0,
        "pos_inverse": math.inf,
        "neg_inverse": -math.inf,
    }
    assert len({Pow(p=True), Pow(p=1), Pow(p=1.0)}) == 3
    assert Inverse(s=0.0) != Inverse(s=-0.0)


def test_class_definitions_that_would_silently_do_nothing_are_refused():
    with pytest.raises(TypeError, match=r"Fast\.decay = 0\.5 overrides the static field.*static"):

        class Fast(DecayedMean):
            decay = 0.5

    with pytest.raises(
        TypeError, match=r"total = 0\.0 overrides the state field.*state\(\"merge\", \.\.\.\)\)$"
    ):

        class Plain(DecayedMean):
            total = 0.0

    with pytest.raises(TypeError, match=r"'postfix' is taken by metricskit\.Metric"):

        class Clash(mk.Metric):
            postfix = mk.static("_x")
            total = mk.state("sum")

            def update(self, value, count):
                return self

            def compute(self):
                return self.total

    class Faster(DecayedMean):  # the way to override an option's default
        decay = mk.static(0.5)

    assert Faster() == Faster(decay=0.5) and Faster().decay == 0.5
    with pytest.raises(TypeError, match=r"gives some state fields but not \['weight', 'steps'\]"):
        DecayedMean(total=jnp.zeros(()))
    with pytest.raises(TypeError, match=r"attrs class decorator.*remove the decorator"):

        @attrs.mutable
        class Mutable(mk.Metric):
            total: jax.Array = mk.state("sum")

            def update(self, value, count):
                return self

            def compute(self):
                return self.total


def test_stores_with_other_modes_on_one_key_aggregate_to_the_union():
    a = mk.MetricStore().update({"k": {"value": 1.0, "log_modes": ["mean"]}})
    c = mk.MetricStore().update({"k": {"value": 3.0, "log_modes": [DecayedMean]}})
    d = mk.MetricStore().update({"k": {"value": 5.0, "log_modes": [DecayedMean(postfix="_d")]}})
    assert a.aggregate(c).aggregate(d).compute() == {
        "k_d": 5.0,
        "k_decayed_mean": 3.0,
        "k_mean": 1.0,
    }


def test_collisions_on_one_key_name_the_fix_that_applies():
    with pytest.raises(ValueError, match=r"'x_mean'.*another postfix.*only one of the two"):
        mk.MetricStore().update({"x": {"value": 1.0, "log_modes": ["mean", mk.MeanMetric]}})
    first = mk.MetricStore().update({"x": {"value": 1.0, "log_modes": [DecayedMean]}})

    class DecayedMean2(DecayedMean):  # the same class defined again (a re-run notebook cell)
        pass

    DecayedMean2.__name__ = DecayedMean2.__qualname__ = DecayedMean.__qualname__
    with pytest.raises(ValueError, match=r"two different classes of the same name.*defined"):
        first.update({"x": {"value": 1.0, "log_modes": [DecayedMean2]}})


def test_entries_are_looked_up_and_given_back_by_class_or_configuration():
    m = update_metrics(None, {"k": {"value": 2.0, "log_modes": [DecayedMean, "max"]}})
    assert m["k"][DecayedMean] is not None and m["k"][DecayedMean()] is not None
    assert DecayedMean(decay=0.5).decay == 0.5
    with pytest.raises(AttributeError, match="no option or attribute 'speed'"):
        _ = DecayedMean().speed
    plain = {"k": dict(m["k"])}  # as code that copies the mapping into dicts builds it
    assert get_metrics(plain)[1] == {"k_decayed_mean": 2.0, "k_max": 2.0}
    by_class = {"k": {DecayedMean: m["k"][DecayedMean]}}
    assert get_metrics(by_class)[1] == {"k_decayed_mean": 2.0}
    assert mk.MetricStore().update({"q": mk.tasks.quantiles(jnp.arange(1.0, 101.0), q=0.5)})


class ClipRange(mk.Metric):
    """The smallest and largest value clipped to [lo, hi]: two parts, named by the options."""

    lo = mk.static(-1.0)
    hi = mk.static(1.0)
    low = mk.state("min")
    high = mk.state("max")
    steps = mk.state("sum", shape="scalar", dtype="int")

    @classmethod
    def parts_of(cls, options):
        return (f"_above{options['lo']:g}", f"_below{options['hi']:g}")

    def update(self, value, count):
        v = jnp.clip(value, self.lo, self.hi)
        seen = self.steps > 0
        return self.replace(
            low=jnp.where(seen, jnp.minimum(self.low, v), v),
            high=jnp.where(seen, jnp.maximum(self.high, v), v),
            steps=self.steps + 1,
        )

    def aggregate(self, other):
        a, b = self.steps > 0, other.steps > 0
        low = jnp.where(a, self.low, other.low)
        high = jnp.where(a, self.high, other.high)
        return self.replace(
            low=jnp.where(a & b, jnp.minimum(self.low, other.low), low),
            high=jnp.where(a & b, jnp.maximum(self.high, other.high), high),
            steps=self.steps + other.steps,
        )

    def compute(self):
        return self.low, self.high


def test_parts_named_by_options_report_and_check_against_a_reference():
    from metricskit.testing import check_metric

    mode = ClipRange(lo=-0.5, hi=0.5)

    def reference(values, counts):
        v = np.clip(values, -0.5, 0.5)  # every step's value is a sample (counts unused)
        return v.min(0), v.max(0)

    check_metric(mode, reference=reference)
    with pytest.raises(AssertionError, match="differs from the reference"):
        check_metric(mode, reference=lambda v, c: (np.zeros(4), np.zeros(4)))
    host = mk.MetricStore().update({"x": {"value": 2.0, "log_modes": [mode]}}).compute()
    assert host == {"x_clip_range_above-0.5": 0.5, "x_clip_range_below0.5": 0.5}


def test_a_compute_returning_more_or_fewer_values_than_its_parts_is_refused():
    class TooMany(Scaled):
        parts = ("_a",)

        def compute(self):
            return self.total, 2 * self.total

    class NotATuple(Scaled):
        parts = ("_a", "_b")

        def compute(self):
            return self.total

    for cls, got in ((TooMany, "a tuple of 2"), (NotATuple, "one value, not a tuple")):
        store = mk.MetricStore().update({"x": {"value": 1.0, "log_modes": [cls]}})
        with pytest.raises(ValueError, match=rf"reports parts .*returned {got}"):
            store.compute()


class Color(__import__("enum").IntEnum):
    RED = 1


def test_option_values_are_the_plain_types_a_checkpoint_gives_back(tmp_path):
    import enum

    class Kind(str, enum.Enum):  # noqa: UP042 (the older spelling, an enum mixed into str)
        A = "a"

    assert Pow(p=Color.RED) == Pow(p=1) and type(Pow(p=Color.RED).p) is int
    assert Pow(p=Kind.A) == Pow(p="a") and repr(Pow(p=Kind.A)) == "Pow(p='a')"
    assert type(Pow(p=np.int64(3)).p) is int and type(Pow(p=np.float32(0.5)).p) is float
    store = mk.MetricStore().update({"x": {"value": 2.0, "log_modes": [Pow(p=Color.RED)]}})
    store.save(tmp_path / "c.npz")
    loaded = mk.MetricStore.load(tmp_path / "c.npz", like=store)
    assert loaded.update({"x": {"value": 4.0, "log_modes": [Pow(p=Color.RED)]}}).compute() == {
        "x_pow": 3.0
    }


def test_a_plain_enum_option_is_refused_naming_its_value():
    import enum

    class How(enum.Enum):
        SUM = "sum"

    # as its value it would compute another number (self.how is How.SUM turns False)
    with pytest.raises(
        TypeError, match=r"Pow option p=<How\.SUM: 'sum'>.*pass the value itself \('sum'\)"
    ):
        Pow(p=How.SUM)


class Peak(mk.Metric):
    """The state() docstring's example: a maximum whose empty state's zero never wins."""

    peak = mk.state("merge")
    count = mk.state("sum", shape="scalar", dtype="int")

    def update(self, value, count):
        peak = jnp.where(self.count == 0, value, jnp.maximum(self.peak, value))
        return self.replace(peak=peak, count=self.count + 1)

    def aggregate(self, other):
        both = jnp.maximum(self.peak, other.peak)
        peak = jnp.where(other.count == 0, self.peak, both)
        return self.replace(
            peak=jnp.where(self.count == 0, other.peak, peak), count=self.count + other.count
        )

    def compute(self):
        return self.peak


def test_the_documented_peak_pattern_passes_check_metric_and_a_reset_half():
    check_metric(Peak, reference=lambda values, counts: values.max(0))
    s = mk.MetricStore().update({"x": {"value": -3.0, "log_modes": [Peak]}}).update({"x": -5.0})
    assert s.aggregate(s.reset()).compute() == {"x_peak": -3.0}
    assert s.reset().aggregate(s).compute() == {"x_peak": -3.0}


def test_a_state_under_another_configuration_of_its_class_is_refused():
    m = update_metrics(None, {"c": {"value": 4.0, "log_modes": [DecayedMean(decay=0.5)]}})
    bad = {"c": {DecayedMean(decay=0.9): m["c"][DecayedMean(decay=0.5)]}}
    for call in (lambda: get_metrics(bad), lambda: mk.MetricStore.from_mapping(bad)):
        with pytest.raises(TypeError, match=r"configured with \{'decay': 0\.5\}, not the mode"):
            call()


def test_more_misdeclared_classes_are_refused_where_they_are_declared():
    with pytest.raises(TypeError, match=r"C1\.total is declared static, but DecayedMean\.total"):

        class C1(DecayedMean):
            total = mk.static(0.0)

    with pytest.raises(TypeError, match=r"C2\.decay is declared state"):

        class C2(DecayedMean):
            decay = mk.state("sum")

    class OnlyOptions(mk.Metric):
        scale = mk.static(1.0)

        def update(self, value, count):
            return self

        def compute(self):
            return 0.0

    with pytest.raises(TypeError, match="declares no state fields"):
        OnlyOptions()
    with pytest.raises(ValueError, match=r"tuple of non-negative ints"):
        mk.state("sum", shape=(-1,))
    with pytest.raises(TypeError, match="abstract base class"):
        mk.MetricStore().update({"x": {"value": 1.0, "log_modes": [mk.Metric]}})
    with pytest.raises(TypeError, match=r"write e\.g\. log_modes=\[PowerMean|log_modes=\[Pow\("):
        mk.MetricStore().update({"x": {"value": 1.0, "log_modes": Pow(p=1)}})

    class Repeats(ClipRange):
        @classmethod
        def parts_of(cls, options):
            return ("_x", "_x")

    with pytest.raises(ValueError, match=r"parts \('_x', '_x'\) of this one mode repeat a suffix"):
        mk.MetricStore().update({"x": {"value": 1.0, "log_modes": [Repeats]}})


def test_options_given_by_position_name_the_keyword_spelling():
    with pytest.raises(TypeError, match=r"DecayedMean\(0\.5,\).*static options by keyword"):
        DecayedMean(0.5)


def test_a_state_under_a_registered_name_with_other_options_is_refused():
    class Scaled2(mk.Metric):
        scale = mk.static(1.0)
        total = mk.state("sum")

        def update(self, value, count):
            return self.replace(total=self.total + self.scale * value)

        def compute(self):
            return self.total

    mk.register_metric("scaled2_test")(Scaled2)
    made = update_metrics(None, {"x": {"value": 2.0, "log_modes": [Scaled2(scale=3.0)]}})
    state = made["x"][Scaled2(scale=3.0)]
    with pytest.raises(TypeError, match=r"configured with \{'scale': 3\.0\}, not the mode's"):
        get_metrics({"x": {"scaled2_test": state}})
    ok = update_metrics(None, {"x": {"value": 2.0, "log_modes": ["scaled2_test"]}})
    assert get_metrics({"x": {"scaled2_test": ok["x"]["scaled2_test"]}})[1] == {
        "x_scaled2_test": 2.0
    }


def test_a_state_where_a_mode_belongs_and_a_bad_static_default_name_the_fix():
    made = update_metrics(None, {"x": {"value": 1.0, "log_modes": [DecayedMean(decay=0.5)]}})
    state = made["x"][DecayedMean(decay=0.5)]
    with pytest.raises(TypeError, match=r"a DecayedMean state is not a log mode: pass the class"):
        check_metric(state)
    with pytest.raises(TypeError, match=r"a configured metric is a log mode as it is"):
        mk.register_metric("configured_twice")(DecayedMean(decay=0.5))
    assert "configured_twice" not in mk.registered_modes()
    with pytest.raises(TypeError, match=r"Bad\.opt default=\{'a': 1\} \(dict\): a static option"):

        class Bad(mk.Metric):  # refused where it is written, not at first use
            opt = mk.static({"a": 1})
            total = mk.state("sum")

            def update(self, value, count):
                return self

            def compute(self):
                return self.total
