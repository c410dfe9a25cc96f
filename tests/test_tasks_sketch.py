"""The quantile sketch: relative accuracy, exact merging, histograms in the sinks."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metricskit as mk
from metricskit.sinks import summarize


@pytest.mark.parametrize("accuracy", [0.01, 0.05])
def test_quantiles_are_within_the_relative_accuracy(accuracy, rng):
    values = np.concatenate([rng.lognormal(0, 3, 3000), -rng.lognormal(0, 1, 500), np.zeros(20)])
    rng.shuffle(values)
    q = (0.01, 0.25, 0.5, 0.9, 0.99)
    store = mk.MetricStore()
    update = jax.jit(
        lambda s, v: s.update({"x": mk.tasks.quantiles(v, q=q, relative_accuracy=accuracy)})
    )
    for lo in range(0, len(values), 700):
        store = update(store, jnp.asarray(values[lo : lo + 700], jnp.float32))
    host = store.compute()
    for v in q:
        exact = np.quantile(values.astype(np.float32), v, method="lower")
        got = host[f"x_p{100 * v:g}"]
        assert abs(got - exact) <= accuracy * abs(exact) + 1e-30, (v, got, exact)


def test_merging_sketches_is_exact_and_histograms_reach_the_sinks(rng, tmp_path):
    values = rng.exponential(size=1000).astype(np.float32)
    parts = [
        mk.MetricStore().update({"h": mk.tasks.histogram(chunk), "q": mk.tasks.quantiles(chunk)})
        for chunk in np.array_split(values, 4)
    ]
    merged = functools.reduce(mk.MetricStore.aggregate, parts)
    whole = mk.MetricStore().update(
        {"h": mk.tasks.histogram(values), "q": mk.tasks.quantiles(values)}
    )
    a, b = merged.compute(), whole.compute()
    np.testing.assert_array_equal(a["h"].counts, b["h"].counts)
    assert a["q_p50"] == b["q_p50"] and a["h"].counts.sum() == 1000
    assert len(a["h"].edges) == len(a["h"].counts) + 1
    summary = summarize(a)
    assert summary["h/n"] == 1000 and summary["h/min"] <= summary["h/mean"] <= summary["h/max"]
    assert summary["h/mean"] == pytest.approx(values.mean(), rel=0.02)
    tensorboard = pytest.importorskip("tensorboardX")  # in the test extra: never skipped in CI
    from metricskit.sinks import TensorBoardSink

    sink = TensorBoardSink(tmp_path)
    sink.write(1, a)
    sink.close()
    assert any(p.name.startswith("events") for p in tmp_path.iterdir()) and tensorboard


def test_a_nan_value_makes_quantiles_nan_and_bad_arguments_are_refused():
    nan = jnp.array([1.0, jnp.nan, 3.0])
    host = mk.MetricStore().update({"x": mk.tasks.quantiles(nan)}).compute()
    assert all(np.isnan(host[k]) for k in ("x_p50", "x_p90", "x_p99"))
    masked = mk.tasks.quantiles(nan, mask=jnp.array([True, False, True]))  # masked: fine
    assert mk.MetricStore().update({"x": masked}).compute()["x_p50"] == pytest.approx(1.0, rel=0.01)
    host = mk.MetricStore().update({"x": mk.tasks.quantiles(jnp.arange(1.0, 9.0), q=(0.9, 0.5))})
    assert list(host.compute()) == ["x_p50", "x_p90"]  # increasing order, whatever q's order
    assert (
        "x_p99.999999"
        in mk.MetricStore()
        .update({"x": mk.tasks.quantiles(jnp.ones(3), q=(0.99999999,))})
        .compute()
    )
    with pytest.raises(ValueError, match="relative_accuracy"):
        mk.tasks.quantiles(jnp.ones(3), relative_accuracy=1.5)
    with pytest.raises(ValueError, match=r"quantiles in \[0, 1\]"):
        mk.tasks.quantiles(jnp.ones(3), q=(1.5,))


def test_a_histogram_counts_nan_values_apart_instead_of_dropping_them():
    store = mk.MetricStore().update({"h": mk.tasks.histogram(jnp.array([1.0, 2.0, jnp.nan]))})
    store = store.update({"h": mk.tasks.histogram(jnp.array([jnp.nan, 3.0]), mask=[True, True])})
    h = store.compute()["h"]
    assert int(h.counts.sum()) == 3 and h.nan_count == 2
    assert summarize({"h": h})["h/nan_count"] == 2
    clean = mk.MetricStore().update({"h": mk.tasks.histogram(jnp.array([1.0]))}).compute()["h"]
    assert clean.nan_count == 0 and "h/nan_count" not in summarize({"h": clean})


def test_a_mask_over_the_leading_axes_selects_whole_rows():
    values = jnp.arange(12.0).reshape(3, 4)
    rows = jnp.array([True, False, True])
    by_rows = mk.tasks.quantiles(values, q=(0.5,), mask=rows)
    by_elements = mk.tasks.quantiles(values, q=(0.5,), mask=jnp.repeat(rows[:, None], 4, axis=1))
    store = mk.MetricStore().update(
        {"a": by_rows, "b": by_elements, "h": mk.tasks.histogram(values, mask=rows)}
    )
    host = store.compute()
    assert host["a_p50"] == host["b_p50"] and int(host["h"].counts.sum()) == 8
    with pytest.raises(ValueError, match=r"mask has shape \(5,\).*leading axes"):
        mk.tasks.quantiles(values, mask=jnp.ones(5, bool))


@pytest.mark.parametrize("accuracy", [1e-17, 1e-9, 5e-5, 0.0, -0.1, 1.0, float("nan"), "0.01"])
def test_a_relative_accuracy_outside_the_usable_range_is_a_value_error(accuracy):
    """Values that raised ZeroDivisionError (1e-17) or OverflowError (1e-9) from the bucket
    geometry, or would need millions of buckets, are refused naming the option and range."""
    for fn in (mk.tasks.quantiles, mk.tasks.histogram):
        with pytest.raises(ValueError, match=r"relative_accuracy=.*\[0\.0001, 1\)"):
            fn(jnp.ones(3), relative_accuracy=accuracy)


@pytest.mark.parametrize("accuracy", [1e-4, np.float32(0.02), 0.9])
def test_the_ends_of_the_usable_range_keep_the_guarantee(accuracy, rng):
    x = rng.lognormal(0.0, 3.0, size=2000).astype(np.float32)
    step = {"x": mk.tasks.quantiles(jnp.asarray(x), q=(0.1, 0.5, 0.99), relative_accuracy=accuracy)}
    host = mk.MetricStore().update(step).compute()
    a = float(accuracy)
    for q in (0.1, 0.5, 0.99):
        exact = np.quantile(x.astype(np.float64), q, method="lower")
        assert abs(host[f"x_p{100 * q:.12g}"] - exact) <= a * exact * (1 + 1e-5)
