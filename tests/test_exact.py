"""Exact accumulation: no float32 drift, no int32 wrap, stable std, float64 host values.

These are guarantees with ``jax_enable_x64`` off (the default); the tox ``x64`` env checks that
they hold with it on too. NumPy float64 is the reference throughout.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metricskit as mk
from metricskit import exact
from metricskit.exact import upcast
from metricskit.functional import _update_single_metric, get_metrics, update_metrics


def _rel(got, want):
    return abs(float(got) - float(want)) / abs(float(want))


def test_mean_of_ten_million_float32_updates_in_a_jitted_scan():
    store = mk.MetricStore(default_log_modes=["mean"]).init({"loss": np.float32(0.0)})

    def body(store, _):
        return store.update({"loss": jnp.float32(2.3)}), None

    store, _ = jax.jit(lambda s: jax.lax.scan(body, s, None, length=10**7))(store)
    got = store.compute()["loss_mean"]
    assert _rel(got, np.float32(2.3)) <= 1e-6  # a float32 running sum gives ~2.13
    assert exact.to_host(store["loss"]["mean"].count) == 10**7


def test_counts_beyond_int32_are_exact():
    store = mk.MetricStore(default_log_modes=["mean"])

    @jax.jit
    def run(store):
        def body(store, _):
            item = {"value": jnp.float32(2e6), "count": jnp.int32(10**6)}
            return store.update({"tokens": item}), None

        return jax.lax.scan(body, store, None, length=3000)[0]

    store = run(store.init({"tokens": {"value": np.float32(0), "count": np.int32(1)}}))
    assert abs(store.compute()["tokens_mean"] - 2.0) <= 1e-6
    metric = store["tokens"]["mean"]
    assert int(exact.to_host(metric.count)) == 3_000_000_000  # int32 would wrap negative
    assert float(exact.to_host(metric.total)) == 6e9


def test_std_of_values_with_a_large_mean_eager(rng):
    values = (1e4 + rng.normal(0, 1e-2, size=2000)).astype(np.float32)
    store = mk.MetricStore(default_log_modes=["std"])
    for v in values:
        store = store.update({"x": v})
    want = np.std(values.astype(np.float64))
    assert _rel(store.compute()["x_std"], want) <= 1e-2
    naive = np.sqrt(max(np.mean(values**2) - np.mean(values) ** 2, 0))  # float32 E[x^2]-E[x]^2
    assert _rel(naive, want) > 0.5


def test_std_of_fifty_thousand_values_in_a_jitted_scan(rng):
    values = jnp.asarray((5e3 + rng.normal(0, 0.1, size=50_000)).astype(np.float32))
    store = mk.MetricStore(default_log_modes=["std", "mean"]).init({"x": np.float32(0)})

    @jax.jit
    def run(store, values):
        return jax.lax.scan(lambda s, v: (s.update({"x": v}), None), store, values)[0]

    host = run(store, values).compute()
    want = np.std(np.asarray(values, np.float64))
    assert _rel(host["x_std"], want) <= 1e-2
    assert _rel(host["x_mean"], np.mean(np.asarray(values, np.float64))) <= 1e-9


HOST_MODES = ["mean", "mean_nopostfix", "single", "max", "min", "std"]


def _reference(values, counts):
    samples = values / counts
    return {
        "x_mean": values.sum() / counts.sum(),
        "x": values.sum() / counts.sum(),
        "x_single": samples[-1],
        "x_max": samples.max(),
        "x_min": samples.min(),
        "x_std": samples.std(),
    }


def _check_float64(got, want):
    for name, value in want.items():
        tol = 1e-9 if name == "x_std" else 1e-10
        assert type(got[name]) is float
        assert abs(got[name] - value) <= tol * abs(value), (name, got[name], value)


@pytest.mark.parametrize("seed", range(20))
def test_float64_host_values_keep_float64_precision(seed):
    rng = np.random.default_rng(seed)
    steps = int(rng.integers(5, 101))
    values = rng.normal(0, 10, size=steps)
    counts = rng.integers(1, 11, size=steps)
    metrics = None
    for v, c in zip(values, counts, strict=True):
        metrics = update_metrics(metrics, {"x": {"value": np.float64(v), "count": c}}, HOST_MODES)
    _check_float64(get_metrics(metrics)[1], _reference(values, counts))

    host = {}
    for v, c in zip(values, counts, strict=True):
        _update_single_metric(host, "x", np.float64(v), int(c), HOST_MODES)
    _check_float64(get_metrics(host)[1], _reference(values, counts))


def test_float64_arrays_keep_precision_per_element(rng):
    values = rng.normal(0, 10, size=(30, 4))
    store = mk.MetricStore(default_log_modes=["mean", "max", "single_noreduce"])
    for v in values:
        store = store.update({"x": v})
    host = store.compute()
    np.testing.assert_allclose(host["x_mean"], values.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(host["x_max"], values.max(axis=0), rtol=1e-13)
    np.testing.assert_allclose(host["x_single_noreduce"], values[-1], rtol=1e-13)
    assert host["x_single_noreduce"].dtype == np.float64


def test_a_million_float64_values_per_step_keep_precision():
    step = np.full(10**6, 0.1)
    store = mk.MetricStore(default_log_modes=["mean"])
    for _ in range(3):
        store = store.update({"x": step})
    got = store.compute()["x_mean"]
    assert np.max(np.abs(got - 0.1)) / 0.1 <= 1e-12
    total = exact.to_host(store["x"]["mean"].total)
    assert np.max(np.abs(total - 0.3)) / 0.3 <= 1e-12


def test_a_million_float64_steps_of_point_one_keep_precision():
    pair = jax.tree.map(jnp.asarray, exact.split_float(np.array(0.1))[0])

    def body(acc, _):
        return exact.accumulate(acc, pair), None

    acc, _ = jax.jit(lambda a: jax.lax.scan(body, a, None, length=10**6))(exact.zeros("float", ()))
    assert abs(float(exact.to_host(acc)) - 1e5) / 1e5 <= 1e-12


def test_integer_accumulators_carry_and_allow_negative_steps():
    acc = exact.zeros("int", (3,))
    steps = np.array([[2**31 - 1, 5, -7], [2**31 - 1, -5, 3], [-(2**31), 1, 2**30]])
    for s in steps:
        acc = jax.jit(exact.accumulate)(acc, jnp.asarray(s, jnp.int32))
    np.testing.assert_array_equal(exact.to_host(acc), steps.astype(np.int64).sum(axis=0))
    host = jax.device_get(acc)
    assert (
        exact.to_host(exact.combine(host, host, np)).tolist()
        == (2 * steps.astype(np.int64).sum(axis=0)).tolist()
    )


class TestNanPolicy:
    def test_propagate_is_the_default(self):
        store = mk.MetricStore(default_log_modes=["mean", "max"])
        for v in (1.0, float("nan"), 3.0):
            store = store.update({"x": v})
        host = store.compute()
        assert np.isnan(host["x_mean"]) and np.isnan(host["x_max"])
        assert "x_nonfinite" not in host

    @pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
    def test_skip_drops_and_counts_nonfinite_steps(self, use_jit):
        modes = ["mean", "max", "min", "std", "single", "single_noreduce"]
        store = mk.MetricStore(default_log_modes=modes, nan_policy="skip")
        store = store.init(
            {"x": {"value": np.float32(0), "count": np.float32(1)}, "y": np.float32(0)}
        )

        def step(store, x, count):
            return store.update({"x": {"value": x, "count": count}, "y": x})

        step = jax.jit(step) if use_jit else step
        stream = [
            (1.0, 1),
            (np.nan, 1),
            (4.0, 2),
            (np.inf, 1),
            (5.0, np.inf),
            (-np.inf, 3),
            (3.0, 1),
        ]
        for x, c in stream:
            store = step(store, jnp.float32(x), jnp.float32(c))  # float counts (weights)
        if use_jit:
            assert step._cache_size() == 1
        host = store.compute()
        kept_v, kept_c = np.array([1.0, 4.0, 3.0]), np.array([1, 2, 1])
        assert host["x_mean"] == pytest.approx(kept_v.sum() / kept_c.sum())
        assert host["x_max"] == 3.0 and host["x_min"] == 1.0 and host["x_single"] == 3.0
        assert host["x_std"] == pytest.approx(np.std(kept_v / kept_c))
        assert host["x_single_noreduce"] == 3.0
        assert host["x_nonfinite"] == 4 and host["y_nonfinite"] == 3
        assert isinstance(host["x_nonfinite"], int)

    def test_per_key_override_and_validation(self):
        store = mk.MetricStore(default_log_modes=["mean"])
        store = store.update(
            {"a": float("nan"), "b": {"value": float("nan"), "nan_policy": "skip"}}
        )
        store = store.update({"a": 1.0, "b": {"value": 2.0, "nan_policy": "skip"}})
        host = store.compute()
        assert np.isnan(host["a_mean"]) and host["b_mean"] == 2.0 and host["b_nonfinite"] == 1
        with pytest.raises(ValueError, match=r"'b'.*'sometimes'"):
            store.update({"b": {"value": 1.0, "nan_policy": "sometimes"}})
        with pytest.raises(ValueError, match="the store"):
            mk.MetricStore(nan_policy="ignore")

    def test_skip_survives_reset_and_aggregate(self):
        a = mk.MetricStore(default_log_modes=["mean"], nan_policy="skip")
        a = a.update({"x": float("nan")}).update({"x": 2.0})
        b = a.reset().update({"x": 4.0})
        assert a.aggregate(b).compute() == {"x_mean": 3.0, "x_nonfinite": 1}
        assert a.reset().compute()["x_nonfinite"] == 0
        assert a.reset().nan_policy == "skip"


def test_words_split_and_total_are_exact():
    values = np.array([2**60 - 1, -(2**59), 3, 0, np.iinfo(np.int64).min // 2**4], np.int64)
    np.testing.assert_array_equal(exact.to_host(exact.split_int(values)), values)
    unsigned = np.array([np.iinfo(np.uint32).max, 2**40], np.uint64)
    np.testing.assert_array_equal(
        exact.to_host(exact.split_int(unsigned)), unsigned.astype(np.int64)
    )
    words = jax.tree.map(jnp.asarray, exact.split_int(np.full(1000, 2**45 + 7, np.int64)))
    assert int(exact.to_host(jax.jit(exact.total)(words))) == 1000 * (2**45 + 7)
    assert int(exact.to_host(exact.as_words(jnp.uint32(4_000_000_000)))) == 4_000_000_000


def test_ratios_are_correctly_rounded_on_the_host():
    assert float(exact.to_host(exact.Ratio(np.int64(975), np.int64(1792)))) == 975 / 1792
    big = exact.Ratio(np.int64(3 * (2**53 + 5)), np.int64(3))
    assert float(exact.to_host(big)) == float(2**53 + 5)
    np.testing.assert_array_equal(
        exact.to_host(exact.Ratio(np.array([1.0, 2.0]), np.array([0, 4]))), [0.0, 0.5]
    )


@pytest.mark.parametrize("n", [24, 100, 1000, 4096])
def test_accumulate_takes_a_value_of_the_same_jit_as_the_value_returned(n):
    def f(x):
        v = jnp.mean(x)
        return v, exact.accumulate(exact.zeros("float", ()), v)

    v, acc = jax.jit(f)(jnp.ones(n))
    assert float(v) == 1.0 and float(exact.to_host(acc)) == 1.0 and float(acc.lo) == 0.0


def test_upcast_keeps_narrow_floats_exact():
    for dtype in (jnp.bfloat16, jnp.float16):
        info = jnp.finfo(dtype)
        x = np.array([info.smallest_subnormal, info.tiny, info.max, 1 / 3, -0.0, np.inf], dtype)
        got = np.asarray(jax.jit(lambda v: upcast(v, jnp.float32))(x))
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, x.astype(np.float32))
        np.testing.assert_array_equal(np.signbit(got), np.signbit(x.astype(np.float32)))
    assert upcast(jnp.int32(3), jnp.float32).dtype == jnp.float32


def test_a_negative_zero_keeps_its_sign_on_the_host():
    # hi + lo with lo = +0.0 would give +0.0; float64 per-sample values travel as pairs
    pair = exact.Pair(np.float32([-0.0, 0.0, -1.5]), np.float32([0.0, 0.0, 0.0]))
    assert np.signbit(exact.to_host(pair)).tolist() == [True, False, True]
    step = {"k": {"value": np.array([-0.0, 1.0]), "log_modes": ["single_noreduce"]}}
    reported = get_metrics(update_metrics(None, step))[1]["k_single_noreduce"]
    assert np.signbit(reported).tolist() == [True, False]


def test_the_public_names_of_exact_are_its_all():
    from metricskit import exact as module

    assert "divide" in module.__all__ and "Pair" in module.__all__
    assert all(callable(getattr(module, n)) or n in ("BITS", "OVERFLOW") for n in module.__all__)
    assert "x64" not in module.__all__ and "register_pytree" not in module.__all__  # internal
