"""Combining stores, through MetricStore.aggregate: layouts that differ combine key by key."""

from __future__ import annotations

import numpy as np
import pytest

import metricskit as mk


def test_keys_and_modes_of_one_store_only_are_kept():
    a = mk.MetricStore(default_log_modes=["mean"]).update({"x": 1.0, "y": 2.0})
    b = mk.MetricStore(default_log_modes=["max"]).update({"x": 3.0, "z": 4.0})
    assert a.layout != b.layout
    out = a.aggregate(b).compute()
    assert out == {"x_max": 3.0, "x_mean": 1.0, "y_mean": 2.0, "z_max": 4.0}
    assert b.aggregate(a).compute() == out
    both = mk.MetricStore(default_log_modes=["mean"]).update({"x": 5.0})
    assert a.aggregate(both).compute() == {"x_mean": 3.0, "y_mean": 2.0}  # (1 + 5) / 2


def test_per_sample_states_of_other_lengths_combine_and_others_do_not():
    short = mk.MetricStore(default_log_modes=["single_noreduce"]).update({"ll": np.ones(2)})
    long = mk.MetricStore(default_log_modes=["single_noreduce"]).update({"ll": np.zeros(3)})
    np.testing.assert_array_equal(
        short.aggregate(long).compute()["ll_single_noreduce"], [1, 1, 0, 0, 0]
    )
    np.testing.assert_array_equal(
        long.aggregate(short).compute()["ll_single_noreduce"], [0, 0, 0, 1, 1]
    )
    a = mk.MetricStore(default_log_modes=["mean"]).update({"v": np.ones(2)})
    b = mk.MetricStore(default_log_modes=["mean"]).update({"v": np.ones(3)})
    with pytest.raises(ValueError, match=r"'v'.*cannot be combined"):
        a.aggregate(b)


def test_an_all_zero_per_sample_state_adds_nothing_and_is_reported(caplog):
    padded = mk.MetricStore().update(
        {"ll": {"value": np.zeros(3), "count": 0, "log_modes": ["single_noreduce"]}}
    )
    data = mk.MetricStore().update({"ll": {"value": np.ones(2), "log_modes": ["single_noreduce"]}})
    with caplog.at_level("WARNING", logger="metricskit"):
        out = data.aggregate(padded).compute()
    np.testing.assert_array_equal(out["ll_single_noreduce"], [1.0, 1.0])
    assert (
        "MetricStore.aggregate: 1 part of metric 'll' (log mode 'single_noreduce')" in caplog.text
    )


def test_two_all_zero_per_sample_states_are_both_reported(caplog):
    def zeros():
        item = {"value": np.zeros(2, np.float32), "count": 0, "log_modes": ["single_noreduce"]}
        return mk.MetricStore().update({"k": item})

    with caplog.at_level("WARNING", logger="metricskit"):
        zeros().aggregate(zeros())
    assert "MetricStore.aggregate: 2 parts of metric 'k'" in caplog.text


def test_aggregating_with_something_that_is_not_a_store_names_the_fix():
    store = mk.MetricStore().update({"x": 1.0})
    with pytest.raises(TypeError, match=r"takes another MetricStore, got dict.*from_mapping"):
        store.aggregate({"x": 1.0})
