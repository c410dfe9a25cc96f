"""Normalization of step metrics."""

from __future__ import annotations

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from helpers import INT, X64

from metricskit.inputs import normalize_log_modes, parse_step_metrics


def test_plain_values_and_dicts():
    entries = parse_step_metrics(
        {
            "a": 1.5,
            "b": {"value": np.ones(3, ml_dtypes.bfloat16), "count": np.arange(3)},
            "c": {"value": jnp.int32(4), "log_modes": ["max"]},
        },
        ["mean", "std"],
    )
    a, b, c = entries
    assert (a.key, a.modes, a.value_spec, a.count_spec) == (
        "a",
        ("mean", "std"),
        ((), "float64"),  # Python floats keep float64 (carried as a float32 pair if x64 is off)
        ((), INT),
    )
    assert isinstance(a.value, np.ndarray) and a.on_host
    assert b.value.dtype == np.float32 and b.value_spec == ((3,), "float32")
    assert b.count_spec == ((3,), INT)
    assert c.modes == ("max",) and not c.on_host and c.value_spec == ((), INT)


def test_default_modes():
    [entry] = parse_step_metrics({"x": 1.0}, None)
    assert entry.modes == ("mean_nopostfix",)
    [entry] = parse_step_metrics({"x": {"value": 1.0, "log_modes": None}}, ["max"])
    assert entry.modes == ("max",)


def test_log_modes_validation():
    assert normalize_log_modes(("mean",), "x") == ("mean",)
    with pytest.raises(TypeError, match="list of mode names"):
        normalize_log_modes("mean", "key 'x'")
    with pytest.raises(ValueError, match="key 'x': unknown log mode 'nope'"):
        normalize_log_modes(["nope"], "key 'x'")


def test_out_of_range_host_integers_are_rejected():
    if X64:  # int64 holds them
        [entry] = parse_step_metrics({"x": np.array([1, 2**33])}, None)
        assert entry.value.dtype == np.int64
    else:
        with pytest.raises(ValueError, match=r"'x'.*outside the range of int32"):
            parse_step_metrics({"x": np.array([1, 2**33])}, None)
    [entry] = parse_step_metrics({"x": np.array([1, 2**30], np.int64)}, None)
    assert entry.value.dtype == INT
