"""Every built-in log mode against a NumPy float64 reference, eager and under jax.jit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import BUILTIN_MODES, SCALAR_MODES, reference, reported_name

import metricskit as mk
from metricskit.functional import get_metrics, update_metrics
from metricskit.metric import per_sample, zeros_like
from metricskit.testing import assert_results_close

N_STEPS = 13
PREFIX = 5  # steps already in the state when starting from a populated state


def _stream(rng: np.random.Generator, mode: str, sign: str, shape: tuple[int, ...]):
    values = rng.normal(0.0, 3.0, size=(N_STEPS, *shape))
    if sign == "negative":
        values = -np.abs(values) - 0.5
    if mode == "single_noreduce_wcount":
        counts = rng.integers(1, 6, size=(N_STEPS, *shape))
    else:
        counts = rng.integers(1, 6, size=(N_STEPS,))
    return values.astype(np.float32), counts.astype(np.int32)


def _check(got, want, mode):
    if mode == "single_noreduce_wcount":
        assert isinstance(got, tuple) and len(got) == 2
        np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
        np.testing.assert_array_equal(got[1], want[1])
        return
    want = np.asarray(want)
    if want.size == 1:
        assert isinstance(got, float), type(got)
    else:
        assert isinstance(got, np.ndarray) and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("mode", BUILTIN_MODES)
@pytest.mark.parametrize("start", ["none", "empty_dict", "populated"])
@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("sign", ["mixed", "negative"])
def test_functional_mode_matches_reference(mode, start, use_jit, sign, rng):
    shape = (4,) if "noreduce" in mode else ()
    values, counts = _stream(rng, mode, sign, shape)

    def step(metrics, value, count):
        item = {"value": value, "count": count, "log_modes": [mode]}
        return update_metrics(metrics, {"x": item, "other": 1.0})

    if use_jit:
        step = jax.jit(step)
        values, counts = jnp.asarray(values), jnp.asarray(counts)

    metrics = {"none": None, "empty_dict": {}, "populated": None}[start]
    first = 0
    if start == "populated":
        for i in range(PREFIX):
            metrics = update_metrics(
                metrics, {"x": {"value": values[i], "count": counts[i], "log_modes": [mode]}}
            )
        first = PREFIX
    for i in range(first, N_STEPS):
        metrics = step(metrics, values[i], counts[i])
    _, host = get_metrics(metrics)
    want = reference(mode, list(np.asarray(values)), list(np.asarray(counts)))
    _check(host[reported_name("x", mode)], want, mode)
    assert host["other"] == 1.0


@pytest.mark.parametrize("mode", SCALAR_MODES)
@pytest.mark.parametrize("count_kind", ["scalar", "per_element"])
def test_array_values_are_elementwise(mode, count_kind, rng):
    values = rng.normal(size=(N_STEPS, 3)).astype(np.float32)
    if count_kind == "scalar":
        counts = rng.integers(1, 4, size=(N_STEPS,))
    else:
        counts = rng.integers(1, 4, size=(N_STEPS, 3))
    store = mk.MetricStore(default_log_modes=[mode])
    for v, c in zip(values, counts, strict=True):
        store = store.update({"norms": {"value": v, "count": c}})
    got = store.compute()[reported_name("norms", mode)]
    np.testing.assert_allclose(got, reference(mode, list(values), list(counts)), rtol=2e-5)


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_class_api_matches_functional(use_jit, rng):
    values, counts = _stream(rng, "mean", "mixed", ())
    modes = list(SCALAR_MODES)
    store = mk.MetricStore(default_log_modes=modes).init({"loss": {"value": 0.0, "count": 1}})

    def step(store, v, c):
        return store.update({"loss": {"value": v, "count": c}})

    step = jax.jit(step) if use_jit else step
    metrics = None
    for v, c in zip(values, counts, strict=True):
        store = step(store, jnp.float32(v), jnp.int32(c))
        metrics = update_metrics(metrics, {"loss": {"value": v, "count": c}}, modes)
    # init with a Python float makes the key float64 (double-float samples); the functional
    # path gets float32 values: both are float32-accurate, not bitwise equal
    assert_results_close(store.compute(), get_metrics(metrics)[1], rtol=1e-6)
    for mode in modes:
        want = reference(mode, list(values), list(counts))
        np.testing.assert_allclose(store.compute()[reported_name("loss", mode)], want, rtol=2e-5)


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_extremes_of_one_sign_are_right_from_fresh_reset_and_zero_filled_states(use_jit):
    # Issue 12.3: a zero-filled state is the empty state: max of [-2, -5] is -2, not the fill.
    def step(store, x):
        return store.update({"neg": x, "pos": -x + 9.0})

    step = jax.jit(step) if use_jit else step
    fresh = mk.MetricStore(default_log_modes=["max", "min"]).init({"neg": 0.0, "pos": 0.0})
    zero_filled = jax.tree.map(jnp.zeros_like, jax.eval_shape(step, fresh, 0.0))
    for start in (fresh, zero_filled, step(fresh, -9.0).reset()):
        store = start
        for v in (-2.0, -5.0):
            store = step(store, jnp.float32(v))
        assert store.compute() == {
            "neg_max": -2.0,
            "neg_min": -5.0,
            "pos_max": 14.0,
            "pos_min": 11.0,
        }


@pytest.mark.parametrize("mode", ["max", "min", "std"])
def test_count_zero_step_adds_no_sample(mode):
    values, counts = [2.0, 100.0, 4.0, -100.0], [1, 0, 2, 0]
    store = mk.MetricStore(default_log_modes=[mode])
    for v, c in zip(values, counts, strict=True):
        store = store.update({"x": {"value": v, "count": c}})
    want = reference(mode, [2.0, 4.0], [1, 2])
    np.testing.assert_allclose(store.compute()[f"x_{mode}"], want, rtol=1e-6)


@pytest.mark.parametrize("mode", BUILTIN_MODES)
def test_empty_mode_warns_and_reports_zero(mode, caplog):
    store = mk.MetricStore(default_log_modes=[mode]).update({"tokens": {"value": 0.0, "count": 0}})
    with caplog.at_level("WARNING", logger="metricskit"):
        host = store.compute()
    assert host == {reported_name("tokens", mode): 0.0}
    assert isinstance(host[reported_name("tokens", mode)], float)
    assert "'tokens'" in caplog.text and "count 0" in caplog.text


def test_partially_empty_elements_report_zero_without_nan():
    store = mk.MetricStore(default_log_modes=["mean", "max", "std"])
    store = store.update({"x": {"value": np.array([1.0, 0.0]), "count": np.array([2, 0])}})
    host = store.compute()
    for name in ("x_mean", "x_max", "x_std"):
        assert np.all(np.isfinite(host[name]))
    np.testing.assert_array_equal(host["x_mean"], [0.5, 0.0])
    np.testing.assert_array_equal(host["x_max"], [0.5, 0.0])


def test_std_is_population_std_of_per_step_samples():
    store = mk.MetricStore(default_log_modes=["std"])
    for value, count in [(2.0, 1), (8.0, 2), (18.0, 3)]:  # samples 2, 4, 6
        store = store.update({"x": {"value": value, "count": count}})
    np.testing.assert_allclose(store.compute()["x_std"], np.std([2.0, 4.0, 6.0]), rtol=1e-6)


@pytest.mark.parametrize(
    ("cls", "value", "count"),
    [
        (mk.MeanMetric, (3,), ()),
        (mk.SingleMetric, (), ()),
        (mk.MaxMetric, (2, 2), (2, 1)),
        (mk.MinMetric, (), ()),
        (mk.StdMetric, (5,), (5,)),
        (mk.NoReduceMetric, (7,), ()),
        (mk.NoReduceWCountMetric, (7,), (7,)),
    ],
)
def test_metric_kernels_keep_shapes_and_dtypes(cls, value, count):
    empty = cls.empty(mk.Spec(value, "float32"), mk.Spec(count, "int32"))

    def avals(m):
        return [(x.shape, x.dtype, x.weak_type) for x in jax.tree.leaves(m)]

    v, c = jnp.ones(value, jnp.float32), jnp.full(count, 2, jnp.int32)
    updated = jax.jit(cls.update)(empty, v, c)
    for m in (updated, zeros_like(updated), cls.update(empty, v, c), jax.jit(zeros_like)(updated)):
        assert avals(m) == avals(empty)
        assert jax.tree.structure(m) == jax.tree.structure(empty)
    if not per_sample(cls):
        assert avals(jax.jit(cls.aggregate)(updated, updated)) == avals(empty)
