"""Parsing step metrics: specs of every input kind, sorted entries, static checks only."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from metricskit._engine.step import normalize_log_modes, parse
from metricskit.metric import Spec


@pytest.mark.parametrize(
    ("value", "spec"),
    [
        (1.5, Spec((), "float64")),
        (3, Spec((), "int32")),
        (2**40, Spec((), "int64")),
        (True, Spec((), "bool")),
        (np.float32(1), Spec((), "float32")),
        (np.ones((2, 3)), Spec((2, 3), "float64")),
        (np.ones(2, ml_dtypes.bfloat16), Spec((2,), "float32")),
        (np.uint32(7), Spec((), "int64")),
        (jnp.ones(4, jnp.int8), Spec((4,), "int32")),
        ([1.0, 2.0], Spec((2,), "float64")),
    ],
)
def test_specs_of_every_input_kind(value, spec):
    (entry,) = parse({"x": value}, ("mean",))
    assert entry.value_spec == spec and entry.count_spec == Spec((), "int32")


def test_entries_are_sorted_and_modes_resolved():
    entries = parse(
        {"b": 1.0, "a": {"value": 2.0, "log_modes": ["max"]}, "c": 3.0},
        ("mean",),
        known={"c": ("std",)},
    )
    assert [(e.key, e.modes) for e in entries] == [
        ("a", ("max",)),
        ("b", ("mean",)),
        ("c", ("std",)),
    ]
    (skip,) = parse({"x": {"value": 1.0, "nan_policy": "skip"}}, ("mean",))
    assert skip.skip and skip.modes == ("mean", "nonfinite")


def test_tracers_are_parsed_on_their_static_information():
    def run(x):
        (entry,) = parse({"x": {"value": x, "count": x.shape[0]}}, ("mean",))
        assert entry.value_spec == Spec((3,), "float32") and not entry.on_host
        return x

    jax.jit(run)(jnp.ones(3, jnp.float32))


@pytest.mark.parametrize(
    ("step", "error", "message"),
    [
        ({"x": "text"}, TypeError, r"value of metric 'x'.*numeric"),
        ({"x": 1 + 2j}, TypeError, r"'x'"),
        ({"x": jnp.ones(2, jnp.complex64)}, TypeError, r"'x'.*complex64.*not numeric"),
        ({"x": {"count": 1}}, ValueError, r"'x'.*needs 'value'"),
        ({"x": {"value": 1.0, "extra": 1}}, ValueError, r"'x'.*nothing else"),
        ({"x": {"value": np.ones(3), "count": np.ones(2)}}, ValueError, r"'x'.*broadcast"),
        ({"x": {"value": 1.0, "log_modes": "mean"}}, TypeError, r"'x'.*list of mode names"),
        ({"x": {"value": 1.0, "log_modes": ["mean", "mean"]}}, ValueError, r"'x'.*repeat"),
        ({"x": {"value": 1.0, "log_modes": ["meam"]}}, ValueError, r"Did you mean 'mean'"),
        # a name that is not a string is a TypeError, hashable or not
        (
            {"x": {"value": 1.0, "log_modes": ["mean", 3]}},
            TypeError,
            r"'x'.*names, metric classes.*3",
        ),
        ({"x": {"value": 1.0, "log_modes": [None]}}, TypeError, r"'x'.*names, metric classes"),
        (
            {"x": {"value": 1.0, "log_modes": [["max"]]}},
            TypeError,
            r"'x'.*names, metric classes",
        ),
        # a container that is not a list: the hint is a list, not the container in a list
        ({"x": {"value": 1.0, "log_modes": {"mean"}}}, TypeError, r"a set.*\['mean', 'max'\]"),
        ({"x": {"value": 1.0, "nan_policy": "drop"}}, ValueError, r"'x'.*'drop'"),
        ({1: 1.0}, TypeError, r"keys must be strings"),
    ],
)
def test_bad_steps_are_refused_naming_the_key(step, error, message):
    with pytest.raises(error, match=message):
        parse(step, ("mean",))


def test_log_mode_lists_are_validated():
    assert normalize_log_modes(["max"], "k") == ("max",)
    with pytest.raises(TypeError, match="must be mode names, metric classes or configured"):
        normalize_log_modes([["max"]], "k")
    with pytest.raises(TypeError, match="step metrics must be a dict"):
        parse([("x", 1.0)], ("mean",))  # type: ignore[arg-type]
