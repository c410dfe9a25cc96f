"""Results on the host, through compute/get_metrics: float64 finishes, types, one empty warning."""

from __future__ import annotations

import logging

import jax
import numpy as np
import pytest

import metricskit as mk
from metricskit.functional import get_metrics


def test_exact_ratios_align_per_key_shapes_after_the_key_axis():
    values = {"a": np.array([1, 2], np.int32), "b": np.array([3, 4], np.int32)}
    counts = {"a": 2, "b": 4}  # one count per key, a value vector per key
    store = mk.MetricStore(default_log_modes=["mean"]).update(
        {k: {"value": values[k], "count": counts[k]} for k in values}
    )
    out = store.compute()
    for key in values:
        want = values[key].astype(np.float64) / counts[key]
        got = out[f"{key}_mean"]
        assert isinstance(got, np.ndarray) and got.dtype == np.float64 and not got.flags.writeable
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(out["a_mean"], [0.5, 1.0])
    np.testing.assert_array_equal(out["b_mean"], [0.75, 1.0])


def test_scalar_results_become_python_numbers_and_tuples_stay_tuples():
    out = mk.MetricStore(default_log_modes=["mean"]).update({"a": 1.5, "b": 2.5}).compute()
    assert out == {"a_mean": 1.5, "b_mean": 2.5} and all(type(v) is float for v in out.values())
    wcount = mk.MetricStore(default_log_modes=["single_noreduce_wcount"]).update(
        {
            "x": {"value": np.ones((2, 3)), "count": np.ones((2, 3), np.int32)},
            "y": {"value": np.full((2, 3), 2.0), "count": np.zeros((2, 3), np.int32)},
        }
    )
    y = wcount.compute()["y_single_noreduce_wcount"]
    assert isinstance(y, tuple) and len(y) == 2
    np.testing.assert_array_equal(y[0], np.full((2, 3), 2.0))
    assert y[1].dtype == np.int32 and not y[1].any() and not y[1].flags.writeable
    # plain values passed along with the metrics are reported the same way
    host = get_metrics({"step": np.int32(3)})[1]
    assert host == {"step": 3} and type(host["step"]) is int
    third = mk.MetricStore(default_log_modes=["mean"]).update(
        {"x": {"value": np.int64(1), "count": np.int64(3)}}
    )
    assert third.compute() == {"x_mean": 1 / 3}  # divided in float64 on the host


def test_one_warning_names_every_empty_metric(caplog):
    empty = mk.MetricStore(default_log_modes=["mean"]).init({f"k{i:02d}": 0.0 for i in range(25)})
    with caplog.at_level(logging.WARNING, logger="metricskit"):
        out = empty.compute()
        assert out == {f"k{i:02d}_mean": 0.0 for i in range(25)}
        mk.MetricStore(default_log_modes=["mean"]).update({"full": 1.0}).compute()
    assert len(caplog.records) == 1
    assert "'k00' (log mode 'mean')" in caplog.text and "'k19'" in caplog.text
    assert "'k20'" not in caplog.text and "and 5 more" in caplog.text


def test_parts_that_compute_does_not_return_are_named():
    @mk.register_metric("test_too_few_parts")
    class TwoParts(mk.Metric):
        parts = ("_a", "_b", "_c")
        total = mk.state("sum")
        count = mk.state("sum", shape="count")

        def update(self, value, count):
            return self.replace(total=self.total + value, count=self.count + count)

        def compute(self):
            return self.total, self.total  # two values for three parts

    store = mk.MetricStore().update({"x": {"value": 1.0, "log_modes": ["test_too_few_parts"]}})
    with pytest.raises(
        ValueError, match=r"reports parts \('_a', '_b', '_c'\).*returned a tuple of 2"
    ):
        store.compute()


def test_a_concrete_store_closed_over_by_a_jitted_function_computes():
    store = mk.MetricStore(default_log_modes=["mean", "max"]).update({"loss": 2.0})
    seen = []
    jax.jit(lambda: seen.append(store.compute()))()
    assert seen == [{"loss_max": 2.0, "loss_mean": 2.0}]
