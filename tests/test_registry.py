"""Registering user metrics: errors, and custom metrics used through every API."""

from __future__ import annotations

import abc

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import BUILTIN_MODES, PowerMean

import metricskit as mk
from metricskit.functional import _update_single_metric, get_metrics, update_metrics


def _power_mean(values, counts, p=3.0):
    x = np.asarray(values, np.float64) / np.asarray(counts, np.float64)
    return np.cbrt(np.sum(np.asarray(counts) * x**p) / np.sum(counts))


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_custom_metric_through_store_and_functional_api(use_jit, rng):
    values = rng.uniform(0.5, 3.0, size=15).astype(np.float32)
    counts = rng.integers(1, 4, size=15).astype(np.int32)
    values[-1] = 0.0

    def store_step(store, v, c):
        return store.update({"x": {"value": v, "count": c}})

    def functional_step(metrics, v, c):
        item = {"value": v, "count": c, "log_modes": ["cubic_mean", "last_nonzero", "mean"]}
        return update_metrics(metrics, {"x": item})

    if use_jit:
        store_step, functional_step = jax.jit(store_step), jax.jit(functional_step)
    store = mk.MetricStore(default_log_modes=["cubic_mean", "last_nonzero"])
    store = store.init({"x": {"value": 0.0, "count": 1}})
    metrics = None
    for v, c in zip(values, counts, strict=True):
        store = store_step(store, jnp.float32(v), jnp.int32(c))
        metrics = functional_step(metrics, jnp.float32(v), jnp.int32(c))
    want = _power_mean(values, counts)
    host = store.compute()
    assert host["x_cubic_mean"] == pytest.approx(want, rel=1e-5)
    assert host["x_last_nonzero"] == pytest.approx(float(values[-2]))
    _, fhost = get_metrics(metrics)
    assert fhost["x_cubic_mean"] == host["x_cubic_mean"]
    assert fhost["x_mean"] == pytest.approx(values.sum() / counts.sum(), rel=1e-5)
    if use_jit:
        assert store_step._cache_size() == 1

    host_dict = {}
    for v, c in zip(values, counts, strict=True):
        _update_single_metric(host_dict, "x", v, c, ["cubic_mean"])
    assert get_metrics(host_dict)[1]["x_cubic_mean"] == pytest.approx(want, rel=1e-5)


def test_custom_metric_aggregates_split_streams(rng):
    values = rng.uniform(0.5, 3.0, size=12)
    stores = [mk.MetricStore(default_log_modes=["cubic_mean", "last_nonzero"]) for _ in range(2)]
    for i, v in enumerate(values):
        stores[i >= 7] = stores[i >= 7].update({"x": v})
    host = stores[0].aggregate(stores[1]).compute()
    assert host["x_cubic_mean"] == pytest.approx(_power_mean(values, np.ones(12)), rel=1e-5)
    assert host["x_last_nonzero"] == pytest.approx(values[-1], rel=1e-6)
    assert stores[1].aggregate(stores[0]).compute()["x_last_nonzero"] == pytest.approx(values[6])


def test_registering_a_taken_name_lists_the_registered_names():
    with pytest.raises(ValueError, match=r"'mean' is already registered.*single_noreduce_wcount"):
        mk.register_metric("mean")(PowerMean)
    with pytest.raises(ValueError, match="identifier"):
        mk.register_metric("bad name")


@pytest.mark.parametrize("name", ["mean_typo", "singleton", "Mean", "MAX", "std_", 3])
def test_unknown_names_list_the_registered_names(name):
    with pytest.raises(
        ValueError, match=r"unknown log mode.*Registered modes: .*cubic_mean"
    ) as err:
        mk.get_log_mode(name)
    assert "mean, mean_nopostfix" in str(err.value)


def test_near_miss_names_get_a_suggestion():
    with pytest.raises(ValueError, match="Did you mean 'mean'"):
        mk.get_log_mode("meam")


def test_registered_modes_include_every_builtin():
    assert set(mk.registered_modes()) >= set(BUILTIN_MODES)
    assert mk.get_log_mode("mean").postfix == "_mean"
    assert mk.get_log_mode("mean_nopostfix").postfix == ""
    assert mk.get_log_mode("mean_nopostfix").cls is mk.MeanMetric
    assert mk.get_log_mode("single_noreduce").cls is mk.NoReduceMetric
    assert mk.get_log_mode("single_noreduce_wcount").cls is mk.NoReduceWCountMetric


def test_registration_rejects_malformed_classes():
    class Unfinished(mk.Metric):
        pass

    with pytest.raises(TypeError, match=r"abstract: implement compute, update"):
        mk.register_metric("not_attrs")(Unfinished)

    class Abstract(mk.Metric):
        total = mk.state("sum")

        @abc.abstractmethod
        def extra(self) -> None: ...

    with pytest.raises(TypeError, match="abstract"):
        mk.register_metric("abstract_metric")(Abstract)

    with pytest.raises(TypeError, match=r"\['undeclared'\].*metricskit\.state"):

        class Loose(PowerMean):  # refused when the class statement ends
            undeclared: int = attrs.field(default=3)

    with pytest.raises(TypeError, match=r"subclass of metricskit\.Metric"):
        mk.register_metric("plain")(int)
    assert "not_attrs" not in mk.registered_modes() and "loose" not in mk.registered_modes()


def test_unknown_reduction_is_an_error():
    with pytest.raises(ValueError, match=r"unknown reduction 'avg'.*concat"):
        mk.state("avg")  # type: ignore[arg-type]
