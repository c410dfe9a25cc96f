"""Results on the host: float64 finishes, per-key rows, read-only arrays, one empty warning."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import metricskit as mk
from metricskit import exact
from metricskit._engine.store import host_value, stacked_rows, warn_empty


def test_stacked_ratios_align_per_key_shapes_after_the_key_axis():
    num = exact.Words(np.array([[1, 2], [3, 4]], np.int32), np.zeros((2, 2), np.int32))
    den = exact.Words(np.array([2, 4], np.int32), np.zeros(2, np.int32))  # one count per key
    rows = stacked_rows(exact.Ratio(num, den), 2)
    np.testing.assert_array_equal(rows[0], [0.5, 1.0])
    np.testing.assert_array_equal(rows[1], [0.75, 1.0])
    assert not rows[0].flags.writeable


def test_scalar_groups_become_python_numbers_and_tuples_stay_tuples():
    assert stacked_rows(np.array([1.5, 2.5]), 2) == [1.5, 2.5]
    rows = stacked_rows((np.ones((2, 3)), np.zeros((2, 3), np.int32)), 2)
    assert isinstance(rows[1], tuple) and rows[1][1].dtype == np.int32
    assert host_value(np.int32(3)) == 3 and type(host_value(np.int32(3))) is int
    assert host_value(exact.Ratio(np.int64(1), np.int64(3))) == 1 / 3


def test_one_warning_names_every_empty_metric(caplog):
    with caplog.at_level(logging.WARNING, logger="metricskit"):
        warn_empty([f"'k{i}' (log mode 'mean')" for i in range(25)])
        warn_empty([])
    assert len(caplog.records) == 1 and "'k0'" in caplog.text and "and 5 more" in caplog.text


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
    import jax

    store = mk.MetricStore(default_log_modes=["mean", "max"]).update({"loss": 2.0})
    seen = []
    jax.jit(lambda: seen.append(store.compute()))()
    assert seen == [{"loss_max": 2.0, "loss_mean": 2.0}]
