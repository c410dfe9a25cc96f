"""Configured metrics: a metric class called with its static options is a log mode, set per
key, compared by value, refused with a clear error when malformed, and usable wherever a mode
name is (class API, functional API, default modes, jit)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metricskit as mk
from metricskit.functional import aggregate_metrics, get_metrics, update_metrics
from metricskit.metric import ConfiguredMetric


class DecayedMean(mk.Metric):
    """An exponentially decayed mean: the later steps weigh more."""

    decay = mk.static(0.9)
    total = mk.state("sum")
    weight = mk.state("sum")

    def update(self, value, count):
        return self.replace(
            total=self.decay * self.total + value, weight=self.decay * self.weight + count
        )

    def compute(self):
        return mk.divide(self.total, self.weight)


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
    instance = DecayedMean(total=jnp.zeros(()), weight=jnp.zeros(()), decay=0.5)
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


def test_a_placeholder_initialised_key_updated_by_a_task_metric_names_the_fix():
    labels = jnp.array([0, 1, 1])
    item = mk.tasks.f1(jnp.array([0, 1, 0]), labels, num_classes=2)
    for store in (mk.MetricStore().init({"val/f1": 0.0}), update_metrics(None, {"val/f1": 0.0})):
        with pytest.raises(ValueError, match=r"initialise the key with the task function's out"):
            if isinstance(store, mk.MetricStore):
                store.update({"val/f1": item})
            else:
                update_metrics(store, {"val/f1": item})
    # the fix the message names: initialise with the task function's output
    store = mk.MetricStore().init({"val/f1": item}).update({"val/f1": item})
    assert store.compute()["val/f1"] == pytest.approx(0.6666666666666666)


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
