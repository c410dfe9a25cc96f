"""Reported metrics as flat numbers, JSON values and text tables, against NumPy references."""

from __future__ import annotations

import json
import math

import numpy as np

from metricskit.summary import format_table, json_value, summarize
from metricskit.tasks import Histogram


def test_scalars_stay_python_numbers_and_arrays_become_their_statistics(rng):
    a = rng.normal(size=(3, 4)).astype(np.float32)
    a.flags.writeable = False  # compute() results are read-only
    out = summarize({"loss": np.float32(0.5), "n": np.int32(3), "ok": np.bool_(True), "a": a})
    ref = a.astype(np.float64)
    assert list(out) == ["loss", "n", "ok", "a/mean", "a/std", "a/min", "a/max", "a/n"]
    assert out["loss"] == 0.5 and type(out["n"]) is int and out["n"] == 3 and out["ok"] == 1
    np.testing.assert_allclose(
        [out["a/mean"], out["a/std"], out["a/min"], out["a/max"]],
        [ref.mean(), ref.std(), ref.min(), ref.max()],
        rtol=1e-12,
    )
    assert out["a/n"] == 12 and type(out["a/n"]) is int
    assert summarize({"e": np.zeros((0, 3))}) == {"e/n": 0}
    assert summarize({"z": np.array(2.5)}) == {"z": 2.5}


def test_non_finite_array_values_are_values_not_warnings():  # warnings are errors in tests
    out = summarize({"x": np.array([1.0, np.nan]), "y": np.array([-1.0, np.inf])})
    assert all(math.isnan(out[f"x/{s}"]) for s in ("mean", "std", "min", "max"))
    assert (out["y/mean"], out["y/min"], out["y/max"], out["y/n"]) == (math.inf, -1.0, math.inf, 2)
    assert math.isnan(out["y/std"])


def test_values_counts_pairs_add_the_weighted_mean():
    values, counts = np.array([1.0, 2.0, 6.0]), np.array([1, 2, 5], np.int32)
    out = summarize({"ll": (values, counts)})
    assert out == {
        "ll/mean": 3.0,
        "ll/std": float(values.std()),
        "ll/min": 1.0,
        "ll/max": 6.0,
        "ll/n": 3,
        "ll/weighted_mean": 9.0 / 8,
    }
    assert summarize({"ll": (np.array([1.0]), np.array([0]))})["ll/weighted_mean"] == 0.0
    assert summarize({"ll": (np.zeros(0), np.zeros(0, np.int32))}) == {"ll/n": 0}
    assert summarize({"one": (np.float32(4.0), np.int32(2))})["one/weighted_mean"] == 2.0


def test_histograms_give_bucket_statistics_and_nan_count_only_when_nonzero():
    h = Histogram(np.array([0.0, 1.0, 2.0, 4.0, 8.0]), np.array([0, 2, 1, 0]))
    assert summarize({"h": h}) == {"h/mean": 2.0, "h/min": 1.0, "h/max": 4.0, "h/n": 3}
    with_nans = Histogram(h.edges, h.counts, nan_count=2)
    assert summarize({"h": with_nans})["h/nan_count"] == 2
    assert summarize({"h": Histogram(h.edges, np.zeros(4, np.int64))}) == {"h/n": 0}
    empty = Histogram(h.edges, np.zeros(4, np.int64), nan_count=3)
    assert summarize({"h": empty}) == {"h/n": 0, "h/nan_count": 3}


def test_json_values_are_plain_and_non_finite_floats_are_strings():
    h = Histogram(np.array([0.0, 1.0, 2.0]), np.array([3, 4]))
    assert json_value(h) == {"edges": [0.0, 1.0, 2.0], "counts": [3, 4]}
    assert json_value(np.int64(7)) == 7 and type(json_value(np.int64(7))) is int
    assert json_value(np.float32(0.5)) == 0.5 and json_value(np.bool_(False)) == 0
    assert [json_value(x) for x in (math.nan, np.inf, -np.inf)] == ["nan", "inf", "-inf"]
    assert json_value((np.array([1.5, 2.0]), np.array([1, 2]))) == [[1.5, 2.0], [1, 2]]
    assert json_value(np.zeros((0, 2))) == []


def test_non_finite_floats_in_arrays_are_strings_as_in_scalars():
    # JsonlSink's contract (read_jsonl turns them back, in lists too): JSON has no NaN literal
    arr = json_value(np.array([[1.0, np.nan], [np.inf, -np.inf]]))
    assert arr == [[1.0, "nan"], ["inf", "-inf"]]
    pair = json_value((np.array([np.nan]), np.array([1])))
    assert pair == [["nan"], [1]]
    json.dumps([arr, pair], allow_nan=False)


def test_tables_align_names_left_and_values_right_under_a_title():
    table = format_table([("loss", 0.25), ("n", 3)], title="eval")
    assert table == "eval\n----------\nloss  0.25\nn        3"
    rows = [("accuracy", 1 / 3), ("nan", math.nan), ("big", 1e10)]
    assert format_table(rows).split("\n") == [
        "accuracy  0.333333",
        "nan            nan",
        "big          1e+10",
    ]
    assert format_table([], title="empty") == "empty\n-----"
    assert format_table([]) == ""
