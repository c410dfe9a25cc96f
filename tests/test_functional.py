"""The drop-in contract of metricskit.functional (signatures of spec/metrics_api.rst)."""

from __future__ import annotations

import copy
import inspect
import logging
from unittest import mock

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from helpers import FLOAT, X64, reference

import metricskit as mk
from metricskit import exact, functional
from metricskit.functional import (
    LOGGER,
    _empty_val,
    _update_single_metric,
    aggregate_metrics,
    get_metrics,
    update_metrics,
)

ALL_STEP = {
    "loss": {"value": 1.0, "log_modes": ["mean", "max", "min", "std", "single"]},
    "acc": {"value": 3, "count": 4},
    "ll": {"value": np.ones(4, np.float32), "log_modes": ["single_noreduce"]},
    "llw": {
        "value": np.ones(4, np.float32),
        "count": np.full(4, 2),
        "log_modes": ["single_noreduce_wcount"],
    },
}


def _leaves(tree):
    return [np.array(x) for x in jax.tree.leaves(tree)]


def _same_leaves(a, b):
    la, lb = _leaves(a), _leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb, strict=True))


def _assert_host_close(got, want):
    assert got.keys() == want.keys()
    for name in want:
        g, w = got[name], want[name]
        assert type(g) is type(w), name
        for x, y in zip(jax.tree.leaves(g), jax.tree.leaves(w), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-6, err_msg=name)


def _avals(tree):
    return [(x.shape, x.dtype, getattr(x, "weak_type", False)) for x in jax.tree.leaves(tree)]


def test_signatures_match_the_spec():
    params = {
        "update_metrics": ["global_metrics", "step_metrics", "default_log_modes"],
        "aggregate_metrics": ["aggregated_metrics", "batch_metrics"],
        "_empty_val": ["value"],
        "_update_single_metric": ["global_metrics", "key", "value", "count", "log_modes"],
        "get_metrics": ["global_metrics", "reset_metrics"],
    }
    for name, expected in params.items():
        sig = inspect.signature(getattr(functional, name))
        assert list(sig.parameters) == expected, name
    assert inspect.signature(update_metrics).parameters["default_log_modes"].default is None
    assert inspect.signature(get_metrics).parameters["reset_metrics"].default is True
    assert inspect.signature(_update_single_metric).parameters["log_modes"].default is None
    assert isinstance(LOGGER, logging.Logger) and LOGGER is mk.LOGGER
    assert mk.update_metrics is update_metrics and mk.get_metrics is get_metrics
    assert mk.aggregate_metrics is aggregate_metrics


def test_reset_keeps_structure_shapes_dtypes_and_never_recompiles():
    @jax.jit
    def step(metrics, v):
        return update_metrics(
            metrics,
            {
                "loss": {"value": v, "log_modes": ["mean", "max", "min", "std", "single"]},
                "acc": {"value": v > 0.5, "count": 4},
                "ll": {"value": jnp.full(4, v), "log_modes": ["single_noreduce"]},
                "llw": {
                    "value": jnp.full(4, v),
                    "count": jnp.arange(4),
                    "log_modes": ["single_noreduce_wcount"],
                },
            },
        )

    metrics = step(None, jnp.float32(0.3))
    for v in (0.9, 0.1, 0.7):
        metrics = step(metrics, jnp.float32(v))
    compiled = step._cache_size()
    reset, host = get_metrics(metrics)
    assert jax.tree.structure(reset) == jax.tree.structure(metrics)
    assert _avals(reset) == _avals(metrics)
    assert host["loss_max"] == pytest.approx(0.9) and host["loss_min"] == pytest.approx(0.1)
    for _ in range(3):
        reset = step(reset, jnp.float32(0.5))
    assert step._cache_size() == compiled
    assert get_metrics(reset)[1]["loss_mean"] == pytest.approx(0.5)


def test_reset_false_returns_the_state_intact():
    metrics = update_metrics(None, ALL_STEP)
    before = _leaves(metrics)
    same, host = get_metrics(metrics, reset_metrics=False)
    assert same is metrics
    for a, b in zip(before, _leaves(metrics), strict=True):
        np.testing.assert_array_equal(a, b)
    assert get_metrics(same, reset_metrics=False)[1]["loss_mean"] == host["loss_mean"] == 1.0


def test_reset_of_host_dict_keeps_its_structure():
    host = {}
    _update_single_metric(host, "x", 2.0, 1, ["mean", "max", "single_noreduce"])
    reset, values = get_metrics(host)
    assert values == {"x_mean": 2.0, "x_max": 2.0, "x_single_noreduce": 2.0}
    assert jax.tree.structure(reset) == jax.tree.structure(host)
    assert _avals(reset) == _avals(host)
    assert not any(np.any(x) for x in _leaves(reset))  # the empty state is all zeros
    assert bool(reset["x"]["max"].is_empty())
    assert get_metrics(host, reset_metrics=False)[0] is host


INPUT_KINDS = {
    "python_float": 2.5,
    "python_int": 2,
    "python_bool": True,
    "np_float32": np.float32(2.5),
    "np_float64": np.float64(2.5),
    "np_float16": np.float16(2.5),
    "np_int64": np.int64(2),
    "np_uint8": np.uint8(2),
    "np_0d": np.array(2.5),
    "np_bf16": np.array(2.5, dtype=ml_dtypes.bfloat16),
    "np_bf16_scalar": ml_dtypes.bfloat16(2.5),
    "jax_f32": jnp.float32(2.5),
    "jax_bf16": jnp.bfloat16(2.5),
    "jax_int32": jnp.int32(2),
}


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_every_input_kind_is_counted_exactly_once(kind, use_jit):
    value = INPUT_KINDS[kind]

    def update(metrics, value):
        y = {"value": value, "count": 2, "log_modes": ["mean", "std", "max"]}
        return update_metrics(metrics, {"x": value, "y": y})

    update = jax.jit(update) if use_jit else update
    metrics = None
    for _ in range(3):
        metrics = update(metrics, value)
    x, y = metrics["x"]["mean_nopostfix"], metrics["y"]["mean"]
    integer = np.asarray(value).dtype.kind in "biu"
    for total in (x.total, y.total):  # exact sums: integers as carried words, floats as pairs
        assert isinstance(total, exact.Words if integer else exact.Pair)
        assert integer or total.hi.dtype == FLOAT  # narrow floats: at least float32
    assert exact.to_host(x.count) == 3 and exact.to_host(y.count) == 6
    assert exact.to_host(x.total) == 3 * float(np.float64(value))
    _, host = get_metrics(metrics)
    expected = float(np.float64(value))
    assert host == pytest.approx(
        {"x": expected, "y_mean": expected / 2, "y_std": 0.0, "y_max": expected / 2}
    )
    assert all(type(v) is float for v in host.values())


def test_aggregate_metrics_appends_noreduce_batches_of_any_size(rng):
    batches = [rng.normal(size=n).astype(np.float32) for n in (5, 5, 3)]
    counts = [rng.integers(1, 4, size=b.size) for b in batches]

    @jax.jit
    def eval_step(values, counts):
        return update_metrics(
            None,
            {
                "ll": {"value": values, "count": values.size, "log_modes": ["single_noreduce"]},
                "llw": {"value": values, "count": counts, "log_modes": ["single_noreduce_wcount"]},
            },
        )

    aggregated, history = {}, []
    for b, c in zip(batches, counts, strict=True):
        aggregated = aggregate_metrics(aggregated, eval_step(jnp.asarray(b), jnp.asarray(c)))
        history.append((copy.deepcopy(aggregated), aggregated))
        assert all(isinstance(x, np.ndarray) for x in jax.tree.leaves(aggregated))
    for snapshot, result in history:  # later calls never modify earlier results
        assert _same_leaves(snapshot, result)

    _, host = get_metrics(aggregated)
    np.testing.assert_allclose(host["ll_single_noreduce"], np.concatenate(batches))
    values, wcounts = host["llw_single_noreduce_wcount"]
    np.testing.assert_allclose(values, np.concatenate(batches))
    np.testing.assert_array_equal(wcounts, np.concatenate(counts))
    single = aggregated["ll"]["single_noreduce"]
    assert int(exact.to_host(single.count)) == sum(b.size for b in batches)  # counts add up


def test_aggregate_metrics_keeps_the_latest_cumulative_state_for_other_modes(rng):
    batches = rng.normal(size=(4, 6)).astype(np.float32)

    @jax.jit
    def eval_step(metrics, values):
        return update_metrics(
            metrics,
            {
                "loss": {
                    "value": values.sum(),
                    "count": values.size,
                    "log_modes": ["mean", "max", "std", "single"],
                },
                "ll": {"value": values, "log_modes": ["single_noreduce"]},
            },
        )

    metrics, aggregated = None, None
    for b in batches:
        metrics = eval_step(metrics, jnp.asarray(b))
        aggregated = aggregate_metrics(aggregated, metrics)
    _, host = get_metrics(aggregated)
    sums, sizes = list(batches.sum(axis=1)), [6] * 4
    for mode in ("mean", "max", "std", "single"):
        assert host[f"loss_{mode}"] == pytest.approx(float(reference(mode, sums, sizes)), rel=1e-5)
    np.testing.assert_allclose(host["ll_single_noreduce"], batches.ravel())


def test_aggregate_metrics_from_none_moves_to_host():
    metrics = update_metrics(None, ALL_STEP)
    aggregated = aggregate_metrics(None, metrics)
    assert all(isinstance(x, np.ndarray) for x in jax.tree.leaves(aggregated))
    _assert_host_close(get_metrics(aggregated)[1], get_metrics(metrics)[1])


BAD_MODES = ["mean_typo", "singleton", "Mean", "", "std "]


@pytest.mark.parametrize("mode", BAD_MODES)
def test_unknown_modes_are_errors_naming_key_before_any_change(mode):
    metrics = update_metrics(None, ALL_STEP)
    before = _leaves(metrics)
    with pytest.raises(ValueError, match=r"'loss'") as err:
        update_metrics(metrics, {"acc": 1.0, "loss": {"value": 1.0, "log_modes": [mode]}})
    assert "single_noreduce_wcount" in str(err.value)  # lists the registered modes
    with pytest.raises(ValueError, match="default_log_modes"):
        update_metrics(metrics, {"acc": 1.0}, default_log_modes=[mode])
    host = {}
    with pytest.raises(ValueError, match=r"'loss'"):
        _update_single_metric(host, "loss", 1.0, 1, [mode])
    assert host == {}
    for a, b in zip(before, _leaves(metrics), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", ["abc", None, object(), 1 + 2j, [1, [2, 3]], {"a": 1}])
def test_non_numeric_values_are_type_errors_naming_key(bad):
    metrics = update_metrics(None, {"acc": 1.0})
    before = _leaves(metrics)
    with pytest.raises((TypeError, ValueError), match=r"'weird'"):
        update_metrics(metrics, {"acc": 2.0, "weird": bad})
    with pytest.raises(TypeError, match=r"'weird'"):
        update_metrics(metrics, {"weird": {"value": 1.0, "count": "three"}})
    assert all(np.array_equal(a, b) for a, b in zip(before, _leaves(metrics), strict=True))
    assert get_metrics(metrics)[1] == {"acc": 1.0}


def test_shape_change_is_an_error_naming_key_before_any_change():
    metrics = update_metrics(None, {"norms": np.ones(3), "loss": 1.0})
    before = _leaves(metrics)
    with pytest.raises(ValueError, match=r"'norms'.*\(4,\).*\(3,\)"):
        update_metrics(metrics, {"loss": 5.0, "norms": np.ones(4)})
    with pytest.raises(ValueError, match=r"'loss'"):
        update_metrics(metrics, {"loss": np.ones(2)})
    assert all(np.array_equal(a, b) for a, b in zip(before, _leaves(metrics), strict=True))
    host = {}
    _update_single_metric(host, "norms", np.ones(3), 1, ["mean"])
    snapshot = copy.deepcopy(host)
    with pytest.raises(ValueError, match=r"'norms'"):
        _update_single_metric(host, "norms", np.ones(2), 1, ["mean"])
    assert _same_leaves(host, snapshot)


def test_malformed_step_dicts_are_errors():
    with pytest.raises(ValueError, match=r"'x'.*'value'"):
        update_metrics(None, {"x": {"count": 1}})
    with pytest.raises(ValueError, match=r"'x'.*nothing else"):
        update_metrics(None, {"x": {"value": 1.0, "cnt": 1}})
    with pytest.raises(TypeError, match=r"log_modes.*'x'.*\['mean'\]"):
        update_metrics(None, {"x": {"value": 1.0, "log_modes": "mean"}})
    with pytest.raises(ValueError, match=r"'x'.*repeat"):
        update_metrics(None, {"x": {"value": 1.0, "log_modes": ["max", "max"]}})
    with pytest.raises(ValueError, match=r"'x'.*broadcast"):
        update_metrics(None, {"x": {"value": np.ones(3), "count": np.ones(2, int)}})
    with pytest.raises(TypeError, match="keys must be strings"):
        update_metrics(None, {1: 1.0})
    with pytest.raises(TypeError, match="dict"):
        update_metrics(None, [("x", 1.0)])
    with pytest.raises(ValueError, match=r"'x'.*2\*\*60"):
        update_metrics(None, {"x": {"value": 1.0, "count": 2**64 if X64 else 2**61}})


def test_nothing_passed_in_is_mutated():
    host = {}
    _update_single_metric(host, "loss", 2.0, 1, ["mean", "max"])
    snapshot = jax.tree.map(np.array, host)
    value = np.array([1.0, 2.0], np.float32)
    step = {
        "loss": {"value": 4.0, "count": 1, "log_modes": ["mean", "max"]},
        "vec": {"value": value, "log_modes": ["single_noreduce", "mean"]},
    }
    step_copy = copy.deepcopy(step)
    first = update_metrics(host, step)
    first_leaves = _leaves(first)
    second = update_metrics(first, step)
    update_metrics(second, step)
    assert jax.tree.structure(host) == jax.tree.structure(snapshot)
    for a, b in zip(_leaves(host), _leaves(snapshot), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_leaves(first), first_leaves, strict=True):
        np.testing.assert_array_equal(a, b)
    assert step.keys() == step_copy.keys() and step["loss"] == step_copy["loss"]
    np.testing.assert_array_equal(value, [1.0, 2.0])
    assert get_metrics(first, reset_metrics=False)[1]["loss_mean"] == 3.0


def test_update_single_metric_builds_host_dicts_in_place(rng):
    values = rng.normal(size=20)
    counts = rng.integers(1, 5, size=20)
    modes = ["mean", "mean_nopostfix", "single", "max", "min", "std"]
    host = {}
    for v, c in zip(values, counts, strict=True):
        assert _update_single_metric(host, "x", v, c, modes) is None
    assert list(host) == ["x"] and sorted(host["x"]) == sorted(modes)
    _, got = get_metrics(host)
    for mode in modes:
        name = "x" if mode == "mean_nopostfix" else f"x_{mode}"
        assert got[name] == pytest.approx(
            float(reference(mode, values, counts)), rel=2e-5, abs=1e-6
        )
    # the dict keeps working with update_metrics, eagerly and under jit
    more = jax.jit(lambda m: update_metrics(m, {"x": {"value": 1.0, "log_modes": modes}}))(host)
    assert get_metrics(more)[1]["x_single"] == 1.0


def test_update_single_metric_default_mode_is_mean_nopostfix():
    host = {}
    _update_single_metric(host, "loss", 3.0, 2)
    _update_single_metric(host, "loss", 1.0, 2)
    assert get_metrics(host)[1] == {"loss": 1.0}
    with pytest.raises(TypeError, match="update_metrics"):
        _update_single_metric(update_metrics(None, {"a": 1.0}), "a", 1.0, 1)


def test_empty_val():
    assert _empty_val(5) == 0 and type(_empty_val(5)) is int
    assert _empty_val(2.5) == 0.0 and type(_empty_val(2.5)) is float
    assert _empty_val("text") == ""
    arr = np.arange(3.0)
    out = _empty_val(arr)
    assert isinstance(out, np.ndarray) and out.dtype == arr.dtype and not out.any()
    jarr = jnp.arange(3, dtype=jnp.int32)
    jout = _empty_val(jarr)
    assert isinstance(jout, jax.Array) and jout.dtype == jnp.int32 and not jout.any()
    sentinel = object()
    assert _empty_val(sentinel) is sentinel and _empty_val(None) is None


def test_empty_warning_goes_through_logger():
    metrics = update_metrics(None, {"tokens": {"value": 0, "count": 0}})
    with mock.patch.object(LOGGER, "warning") as warn:
        assert get_metrics(metrics)[1] == {"tokens": 0.0}
    assert warn.call_count == 1 and "tokens" in str(warn.call_args)


def test_results_are_pytrees_that_go_through_jit():
    metrics = update_metrics(None, ALL_STEP)
    again = jax.jit(lambda m: m)(metrics)
    assert jax.tree.structure(again) == jax.tree.structure(metrics)
    _assert_host_close(get_metrics(again)[1], get_metrics(metrics)[1])


def test_reported_names_must_not_collide():
    metrics = update_metrics(None, {"loss": {"value": 1.0, "log_modes": ["mean"]}})
    with pytest.raises(ValueError, match=r"'loss_mean'"):
        update_metrics(metrics, {"loss_mean": 2.0})


def test_get_metrics_under_jit_names_itself_and_none_is_refused():
    metrics = update_metrics(None, {"x": 1.0})
    for given in (metrics, dict(metrics.items())):  # the store, or a dict of its entries
        with pytest.raises(TypeError, match=r"get_metrics\(\) was called inside a jax.jit"):
            jax.jit(lambda m: get_metrics(m)[1]["x"])(given)
    with pytest.raises(TypeError, match=r"got NoneType.*call update_metrics first"):
        get_metrics(None)
