"""Parsing a step, through MetricStore.update/init: every input kind's spec, sorted keys, checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

import metricskit as mk

COUNT = mk.Spec((), "int32")  # the spec of the default count 1
# "mean" keeps the value's shape exactly; "single_noreduce_wcount" stores the value and the
# count in their own logical dtypes: together their states show the parsed specs
PROBES = {"mean": mk.MeanMetric, "single_noreduce_wcount": mk.NoReduceWCountMetric}


def _abstract(tree):
    """A state's structure and its leaves' shapes and dtypes."""
    return jax.tree.structure(tree), [
        (np.shape(x), np.dtype(x.dtype)) for x in jax.tree.leaves(tree)
    ]


def _assert_parsed_as(store, key, value_spec, count_spec=COUNT):
    assert tuple(store[key]) == tuple(PROBES)
    for mode, cls in PROBES.items():
        assert _abstract(store[key][mode]) == _abstract(cls.empty(value_spec, count_spec)), mode


@pytest.mark.parametrize(
    ("value", "spec"),
    [
        (1.5, mk.Spec((), "float64")),
        (3, mk.Spec((), "int32")),
        (2**40, mk.Spec((), "int64")),
        (True, mk.Spec((), "bool")),
        (np.float32(1), mk.Spec((), "float32")),
        (np.ones((2, 3)), mk.Spec((2, 3), "float64")),
        (np.ones(2, ml_dtypes.bfloat16), mk.Spec((2,), "float32")),
        (np.uint32(7), mk.Spec((), "int64")),
        (jnp.ones(4, jnp.int8), mk.Spec((4,), "int32")),
        ([1.0, 2.0], mk.Spec((2,), "float64")),
    ],
)
def test_every_input_kind_makes_the_state_of_its_shape_and_logical_dtype(value, spec):
    store = mk.MetricStore(default_log_modes=list(PROBES)).init({"x": value})
    _assert_parsed_as(store, "x", spec)


def test_keys_come_sorted_and_take_given_known_or_default_modes():
    store = mk.MetricStore(default_log_modes=["mean"]).update(
        {"c": {"value": 0.0, "log_modes": ["std"]}}
    )
    # "a" names its modes, "b" takes the defaults, "c" (already in the store) keeps its own
    store = store.update({"b": 1.0, "a": {"value": 2.0, "log_modes": ["max"]}, "c": 3.0})
    assert [(key, tuple(modes)) for key, modes in store.items()] == [
        ("a", ("max",)),
        ("b", ("mean",)),
        ("c", ("std",)),
    ]
    assert store.compute() == {"a_max": 2.0, "b_mean": 1.0, "c_std": 1.5}
    assert list(store.compute()) == ["a_max", "b_mean", "c_std"]
    # a per-key NaN policy of "skip" adds the non-finite counter and skips such steps
    skip = mk.MetricStore(default_log_modes=["mean"]).update(
        {"x": {"value": 1.0, "nan_policy": "skip"}}
    )
    assert tuple(skip["x"]) == ("mean", "nonfinite")
    skip = skip.update({"x": {"value": float("nan"), "nan_policy": "skip"}})
    assert skip.compute() == {"x_mean": 1.0, "x_nonfinite": 1}


def test_tracers_are_parsed_on_their_static_information():
    seen = []

    @jax.jit
    def run(store, x):
        out = store.update({"x": {"value": x, "count": x.shape[0]}})  # no concrete value needed
        seen.append(out)
        return out

    store = run(mk.MetricStore(default_log_modes=list(PROBES)), jnp.array([1, 2, 6], jnp.float32))
    assert len(seen) == 1 and isinstance(jax.tree.leaves(seen[0])[0], jax.core.Tracer)
    _assert_parsed_as(store, "x", mk.Spec((3,), "float32"))
    np.testing.assert_array_equal(store.compute()["x_mean"], np.array([1.0, 2.0, 6.0]) / 3)


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
    store = mk.MetricStore(default_log_modes=["mean"]).update({"x": 1.0})
    for call in (store.update, store.init):
        with pytest.raises(error, match=message):
            call(step)
    assert store.compute() == {"x_mean": 1.0}  # nothing changed


def test_log_mode_lists_are_validated():
    assert mk.MetricStore(default_log_modes=["max"]).default_log_modes == ("max",)
    assert tuple(mk.MetricStore().update({"k": 1.0}, default_log_modes=["max"])["k"]) == ("max",)
    with pytest.raises(TypeError, match="must be mode names, metric classes or configured"):
        mk.MetricStore(default_log_modes=[["max"]])
    with pytest.raises(TypeError, match="must be mode names, metric classes or configured"):
        mk.MetricStore().update({"k": 1.0}, default_log_modes=[["max"]])
    with pytest.raises(TypeError, match="step metrics must be a dict"):
        mk.MetricStore().update([("x", 1.0)])  # type: ignore[arg-type]
