"""Every input reported right (issue 13): non-finite values, integers, float64 range, correctly
rounded means, evaluation stores after reset, per-sample counts, no shared buffers, declared
modes, host-only calls under jit. Each kind of fault is tested with its neighbours: every mode,
eager and jitted, host and device inputs, scalar and array values; NumPy float64 is the
reference."""

from __future__ import annotations

import functools
import logging
import math
import os

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from helpers import X64

import metricskit as mk
from metricskit.functional import (
    _update_single_metric,
    aggregate_metrics,
    get_metrics,
    update_metrics,
)

MODES = ["mean", "single", "max", "min", "std"]
NONFINITE_STREAMS = {
    "inf": [1.0, np.inf],
    "nan": [1.0, np.nan],
    "minus_inf": [2.0, -np.inf, 3.0],
    "both_infs": [np.inf, 1.0, -np.inf],
    "inf_first": [np.inf, 2.0],
}


def _float64_reference(values, counts=None):
    v = np.asarray(values, np.float64)
    c = np.ones_like(v) if counts is None else np.asarray(counts, np.float64)
    with np.errstate(invalid="ignore"):
        samples = v / c
        return {
            "mean": v.sum(axis=0) / c.sum(axis=0),
            "single": samples[-1],
            "max": np.max(samples, axis=0),
            "min": np.min(samples, axis=0),
            "std": np.std(samples, axis=0),
        }


INPUTS = {
    "python": lambda x, shape: float(x) if shape == () else np.full(shape, x, np.float64),
    "numpy_f32": lambda x, shape: np.full(shape, x, np.float32),
    "jax_f32": lambda x, shape: jnp.full(shape, x, jnp.float32),
}


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("kind", list(INPUTS))
@pytest.mark.parametrize("shape", [(), (2,)], ids=["scalar", "array"])
@pytest.mark.parametrize("stream", list(NONFINITE_STREAMS))
def test_non_finite_values_propagate_as_float64_would(stream, shape, kind, use_jit):
    values = NONFINITE_STREAMS[stream]

    def step(metrics, x):
        return update_metrics(metrics, {"x": x}, MODES)

    if use_jit:
        step = jax.jit(step)
    metrics = None
    for x in values:
        metrics = step(metrics, INPUTS[kind](x, shape))
    host = get_metrics(metrics)[1]
    want = _float64_reference([np.full(shape, x) for x in values])
    for mode in MODES:
        np.testing.assert_array_equal(host[f"x_{mode}"], want[mode], err_msg=f"{stream} {mode}")


def test_the_issue_examples_of_non_finite_values():
    for kind in ("python", "jax_f32"):
        metrics = None
        for x in (1.0, float("inf")):
            metrics = update_metrics(metrics, {"x": INPUTS[kind](x, ())}, MODES)
        host = get_metrics(metrics)[1]
        assert host["x_mean"] == host["x_single"] == host["x_max"] == np.inf
        assert host["x_min"] == 1.0 and np.isnan(host["x_std"])
        metrics = update_metrics(
            update_metrics(None, {"x": 1.0}, ["std"]), {"x": float("nan")}, ["std"]
        )
        assert np.isnan(get_metrics(metrics)[1]["x_std"])  # a NaN variance is not clamped to 0


def test_float64_values_beyond_float32_report_inf_and_warn_once_or_are_exact_with_x64(caplog):
    if X64:  # float64 range and precision are kept
        metrics = update_metrics(None, {"ppl": 2.0**130}, ["mean", "max"])
        host = get_metrics(update_metrics(metrics, {"ppl": 10.0}, ["mean", "max"]))[1]
        assert host["ppl_mean"] == (2.0**130 + 10.0) / 2 and host["ppl_max"] == 2.0**130
        return
    with caplog.at_level(logging.WARNING, logger="metricskit"):
        metrics = None
        for x in (2.0**130, 10.0, -(2.0**129)):
            metrics = update_metrics(
                metrics, {"ppl": x, "fine": 1.0}, ["mean", "max", "min", "single"]
            )
    host = get_metrics(metrics)[1]
    assert (
        host["ppl_max"] == np.inf and host["ppl_min"] == -np.inf and host["ppl_single"] == -np.inf
    )
    assert np.isnan(host["ppl_mean"])  # inf + -inf: documented (docs/edge_cases.md)
    overflow = [r for r in caplog.records if "beyond float32" in r.getMessage()]
    assert len(overflow) == 1 and "'ppl'" in overflow[0].getMessage()
    metrics = update_metrics(None, {"big": 2.0**130}, ["mean", "max", "single_noreduce"])
    metrics = update_metrics(metrics, {"big": 10.0}, ["mean", "max", "single_noreduce"])
    host = get_metrics(metrics)[1]
    assert host["big_mean"] == host["big_max"] == np.inf  # a finite input never becomes NaN here
    assert host["big_single_noreduce"] == 10.0


INT_VALUES = {
    "python_big": 2**25 + 1,
    "python_huge": 2**53 - 1,
    "np_int8": np.int8(-7),
    "np_int16": np.int16(2**14 + 3),
    "np_int32": np.int32(2**31 - 1),
    "np_int64": np.int64(3_000_000_000),
    "np_uint8": np.uint8(255),
    "np_uint16": np.uint16(65535),
    "np_uint32": np.uint32(3_000_000_000),
    "np_uint64": np.uint64(2**53 + 2),
    "jax_int8": jnp.int8(-7),
    "jax_int16": jnp.int16(2**14 + 3),
    "jax_int32": jnp.int32(2**31 - 1),
    "jax_uint8": jnp.uint8(255),
    "jax_uint16": jnp.uint16(65535),
    "jax_uint32": jnp.uint32(3_000_000_000),
    "jax_bool": jnp.bool_(True),
}
if X64:
    INT_VALUES |= {"jax_int64": jnp.int64(2**53 - 3), "jax_uint64": jnp.uint64(2**53 + 5)}


INT_CASES = [
    (name, use_jit)
    for name in INT_VALUES
    for use_jit in (False, True)
    # with x64 off, jax.jit itself turns 64-bit arguments into 32-bit ones before any library
    # sees them (a Python int beyond int32 is refused, NumPy int64/uint64 are cast)
    if not (use_jit and name in ("python_huge", "np_int64", "np_uint64") and not X64)
]


@pytest.mark.parametrize(("name", "use_jit"), INT_CASES)
def test_integer_values_and_counts_are_exact(name, use_jit):
    x = INT_VALUES[name]
    exact_value = int(x)
    modes = ["mean", "max", "min", "single", "single_noreduce"]

    def step(metrics, value):
        return update_metrics(
            metrics, {"v": value, "c": {"value": 1.5 * 2.0**40, "count": value}}, modes
        )

    step = jax.jit(step) if use_jit else step
    metrics = None
    for _ in range(3):
        metrics = step(metrics, x)
    host = get_metrics(metrics)[1]
    for mode in ("mean", "max", "min", "single"):
        assert host[f"v_{mode}"] == float(exact_value), mode
    assert host["v_single_noreduce"] == exact_value
    if exact_value:
        assert host["c_mean"] == (3 * 1.5 * 2.0**40) / (3 * exact_value)
        assert host["c_max"] == pytest.approx(1.5 * 2.0**40 / exact_value, rel=2**-46)
    total = mk.exact.to_host(metrics["v"]["mean"].total)
    assert (
        int(total) == 3 * exact_value
        and int(mk.exact.to_host(metrics["c"]["mean"].count)) == 3 * exact_value
    )


def test_the_issue_examples_of_integers():
    metrics = update_metrics(None, {"tokens": 2**25 + 1}, ["mean", "max", "single"])
    assert set(get_metrics(metrics)[1].values()) == {33554433.0}
    for x in (np.uint32(3_000_000_000), jnp.uint32(3_000_000_000)):
        host = get_metrics(
            update_metrics(None, {"u": x, "w": {"value": 6e9, "count": x}}, ["mean"])
        )[1]
        assert host == {"u_mean": 3e9, "w_mean": 2.0}
    host = get_metrics(update_metrics(None, {"n": np.int64(3_000_000_000)}, ["mean"]))[1]
    assert host == {"n_mean": 3e9}
    token_counts = np.sum(np.ones((3, 1000), np.int64))  # int64 on the host, as np.sum gives
    assert get_metrics(update_metrics(None, {"t": token_counts}))[1] == {"t": 3000.0}


@pytest.mark.parametrize(
    "value", [2**61, -(2**61), np.int64(2**62), np.uint64(2**63 + 1), np.array([1, 2**62])]
)
def test_integers_beyond_the_exact_range_are_refused_naming_the_key(value):
    metrics = update_metrics(None, {"ok": 1.0})
    if X64 and not (
        isinstance(value, np.uint64) or (isinstance(value, int) and abs(value) >= 2**63)
    ):
        assert update_metrics(metrics, {"big": value}) is not None  # int64 holds it
        return
    with pytest.raises(ValueError, match=r"'big'"):
        update_metrics(metrics, {"big": value})
    with pytest.raises(ValueError, match=r"'big'"):
        update_metrics(metrics, {"big": {"value": 1.0, "count": value}})


@pytest.mark.parametrize("seed", range(10))
def test_means_of_integer_data_are_correctly_rounded(seed):
    rng = np.random.default_rng(seed)
    correct = rng.integers(0, 33, size=int(rng.integers(5, 200)))
    for use_jit in (False, True):
        step = jax.jit(update_metrics) if use_jit else update_metrics
        metrics = None
        for c in correct:
            metrics = step(metrics, {"acc": {"value": jnp.int32(c), "count": jnp.int32(32)}})
        got = get_metrics(metrics)[1]["acc"]
        assert got == int(correct.sum()) / (32 * correct.size)  # exactly Python's sum / count
    metrics = None
    for c in (30, 29, 31) * 19 + (1,):
        metrics = update_metrics(metrics, {"acc": {"value": c, "count": 32}})
    assert get_metrics(metrics)[1]["acc"] == sum((30, 29, 31) * 19 + (1,)) / (32 * 58)


def _eval_epoch(evaluated, batches, mode="single_noreduce", counts=None):
    for i, b in enumerate(batches):
        item = {"value": np.array(b), "log_modes": [mode]}
        if counts is not None:
            item["count"] = counts[i]
        evaluated = aggregate_metrics(evaluated, update_metrics(None, {"ll": item}))
    return evaluated


def test_evaluation_stores_are_really_empty_after_a_reset():
    evaluated = _eval_epoch({}, ([1.0, 2.0], [3.0]))
    evaluated, host = get_metrics(evaluated)
    np.testing.assert_array_equal(host["ll_single_noreduce"], [1.0, 2.0, 3.0])
    for epoch in range(5):  # memory does not grow by one epoch per epoch
        evaluated = _eval_epoch(evaluated, ([11.0, 12.0], [13.0 + epoch]))
        evaluated, host = get_metrics(evaluated)
        np.testing.assert_array_equal(host["ll_single_noreduce"], [11.0, 12.0, 13.0 + epoch])
    wcount = _eval_epoch(
        {}, ([1.0, 2.0], [3.0]), "single_noreduce_wcount", [np.ones(2), np.ones(1)]
    )
    wcount, _ = get_metrics(wcount)
    values, counts = get_metrics(
        _eval_epoch(wcount, ([5.0],), "single_noreduce_wcount", [np.ones(1)])
    )[1]["ll_single_noreduce_wcount"]
    np.testing.assert_array_equal(values, [5.0])
    np.testing.assert_array_equal(counts, [1.0])
    store = mk.MetricStore.from_mapping(_eval_epoch({}, ([1.0, 2.0], [3.0]))).reset()
    assert store.compute()["ll_single_noreduce"] == 0.0  # no samples at all: empty
    again = aggregate_metrics(
        dict(store.items()),
        update_metrics(None, {"ll": {"value": np.array([7.0]), "log_modes": ["single_noreduce"]}}),
    )
    np.testing.assert_array_equal(get_metrics(again)[1]["ll_single_noreduce"], [7.0])


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_per_sample_counts_with_a_smaller_last_batch(use_jit):
    def step(values, counts):
        return update_metrics(
            None, {"ll": {"value": values, "count": counts, "log_modes": ["single_noreduce"]}}
        )

    step = jax.jit(step) if use_jit else step
    evaluated = {}
    batches = [np.arange(4.0), np.arange(3.0) + 10]
    for b in batches:
        evaluated = aggregate_metrics(evaluated, step(b, np.ones(b.shape)))
    np.testing.assert_array_equal(
        get_metrics(evaluated)[1]["ll_single_noreduce"], np.concatenate(batches)
    )
    assert float(mk.exact.to_host(evaluated["ll"]["single_noreduce"].count)) == 7.0


def test_results_never_alias_the_store_and_inputs_are_never_shared():
    values = np.array([1.0, 2.0, 3.0])
    evaluated = _eval_epoch({}, (values,))
    host = get_metrics(evaluated, reset_metrics=False)[1]
    with pytest.raises(ValueError, match="read-only"):
        host["ll_single_noreduce"][0] = 99
    np.testing.assert_array_equal(
        get_metrics(evaluated, reset_metrics=False)[1]["ll_single_noreduce"], [1, 2, 3]
    )
    values[0] = 99  # the caller's own input array
    np.testing.assert_array_equal(get_metrics(evaluated)[1]["ll_single_noreduce"], [1, 2, 3])
    store = mk.MetricStore(default_log_modes=["mean"]).update({"v": np.ones(3)})
    result = store.compute()["v_mean"]
    assert not result.flags.writeable
    metric = mk.NoReduceMetric.empty(mk.Spec((2,), "float32"), mk.Spec((), "int32"))
    raw = np.array([1.0, 2.0], np.float32)
    own = metric.replace(value=raw, count=jax.device_get(mk.exact.accumulate(metric.count, 2)))
    aggregated = aggregate_metrics({}, {"h": mk.KeyMetrics.of({"single_noreduce": own})})
    raw[0] = -1.0  # writing into an array passed in changes no aggregate
    np.testing.assert_array_equal(get_metrics(aggregated)[1]["h_single_noreduce"], [1.0, 2.0])


def test_declared_modes_are_kept_and_the_step_compiles_once():
    store = mk.MetricStore(default_log_modes=("mean", "std", "max"))
    store = store.init({"gn": {"value": 0.0, "log_modes": ["mean"]}, "loss": 0.0})

    @jax.jit
    def step(store, g, loss):
        return store.update({"gn": g, "loss": loss})

    for x in (1.0, 2.0):
        store = step(store, jnp.float32(x), jnp.float32(x))
    assert step._cache_size() == 1
    assert sorted(store.compute()) == ["gn_mean", "loss_max", "loss_mean", "loss_std"]
    # the functional API keeps its documented per-call semantics
    metrics = update_metrics(None, {"gn": {"value": 1.0, "log_modes": ["mean"]}})
    metrics = update_metrics(metrics, {"gn": 3.0})
    assert get_metrics(metrics)[1] == {"gn": 3.0, "gn_mean": 1.0}  # each call names its modes


def test_host_only_calls_under_jit_name_the_call_and_the_fix(tmp_path):
    store = mk.MetricStore().update({"loss": 1.0})
    for call, run in {
        "compute": lambda s: s.compute(),
        "save": lambda s: s.save(os.path.join(tmp_path, "m.npz")),
        "process_sync": lambda s: s.process_sync(),
    }.items():
        with pytest.raises(TypeError, match=rf"{call}\(\).*inside a jax\.jit.*outside"):
            jax.jit(run)(store)
    with pytest.raises(TypeError, match=r"get_metrics|compute\(\)"):
        jax.jit(lambda m: get_metrics(m)[1])(store)
    with pytest.raises(TypeError, match=r"aggregate_metrics\(\).*inside a jax\.jit"):
        jax.jit(lambda m: aggregate_metrics({}, m))(store)


def test_an_integer_init_followed_by_float_steps_says_to_write_a_float():
    store = mk.MetricStore().init({"loss": 0})
    with pytest.raises(TypeError, match=r"'loss'.*write 0\.0, not 0"):
        jax.jit(lambda s, x: s.update({"loss": x}))(store, jnp.float32(1.5))


def test_bfloat16_and_float16_values_are_upcast_not_lost():
    for value in (jnp.bfloat16(2.5), np.float16(2.5), np.array([2.5], ml_dtypes.bfloat16)):
        host = get_metrics(update_metrics(None, {"x": value}, ["mean", "single_noreduce"]))[1]
        assert float(np.asarray(host["x_mean"]).ravel()[0]) == 2.5


def test_empty_steps_and_update_single_metric_with_zero_counts():
    host = {}
    _update_single_metric(host, "x", 0.0, 0, ["mean", "max", "std"])
    assert get_metrics(host)[1] == {"x_max": 0.0, "x_mean": 0.0, "x_std": 0.0}
    assert get_metrics(update_metrics(None, {}))[1] == {}


# -- values computed in the same jitted step as the update (XLA fusion and FMA contraction) ---


def _step_values(x):
    """Values a training step computes and returns: means (``x / n`` becomes a product in XLA),
    a sum and a squared loss."""
    return {
        "ones_mean": jnp.mean(jnp.ones_like(x)),
        "mean": jnp.mean(x),
        "sum": jnp.sum(x),
        "loss": jnp.mean(jnp.square(x * 0.7 - 0.1)),
    }


def _assert_recorded_exactly(returned, report):
    for key, value in returned.items():
        want = float(np.float32(value))  # the float32 (or bfloat16) value the step returned
        for mode in ("mean", "single", "max", "min"):
            assert report[f"{key}_{mode}"] == want, (key, mode, report[f"{key}_{mode}"], want)
        assert report[f"{key}_std"] == 0.0, (key, report[f"{key}_std"])


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("size", [24, 100, 1000, 4096])
@pytest.mark.parametrize("jit", [True, False], ids=["jit", "eager"])
def test_values_of_the_same_jitted_step_are_recorded_as_the_step_returns_them(dtype, size, jit):
    x = jax.random.normal(jax.random.PRNGKey(size), (size,), jnp.float32).astype(dtype) * 3 + 1

    def step(x):
        values = _step_values(x)
        return values, mk.MetricStore(default_log_modes=MODES).update(values)

    returned, store = (jax.jit(step) if jit else step)(x)
    _assert_recorded_exactly(returned, store.compute())


@pytest.mark.parametrize("size", [24, 100, 1000])
def test_a_mean_of_ones_returned_with_the_store_is_one(size):
    # the tester's case: one key, the mean both returned and recorded by one jitted function
    out, store = jax.jit(
        lambda x: (
            jnp.mean(x),
            mk.MetricStore(default_log_modes=MODES).update({"loss": jnp.mean(x)}),
        )
    )(jnp.ones(size))
    assert float(out) == 1.0
    assert store.compute() == {f"loss_{m}": (0.0 if m == "std" else 1.0) for m in MODES}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_donated_train_step_records_the_losses_it_returns(dtype, rng):
    store = mk.MetricStore(default_log_modes=MODES).init(dict.fromkeys(["loss", "mean"], 0.0))

    @functools.partial(jax.jit, donate_argnames="store")
    def step(store, x):
        values = {"loss": jnp.mean(jnp.square(x * 0.7 - 0.1)), "mean": jnp.mean(x)}
        return values, store.update(values)

    returned, replay = [], mk.MetricStore(default_log_modes=MODES)
    for i in range(6):
        size = (24, 100)[i % 2] * 10  # 240 and 1000 elements: two compilations
        x = jnp.asarray(rng.normal(size=size) * 3 + 1, dtype)
        values, store = step(store, x)
        returned.append({k: float(np.float32(v)) for k, v in values.items()})
        replay = replay.update({k: jnp.asarray(np.asarray(v)) for k, v in values.items()})
    report = store.compute()
    for key in ("loss", "mean"):
        seq = np.array([r[key] for r in returned])
        assert report[f"{key}_mean"] == math.fsum(seq) / len(seq)  # the exact sum, divided once
        assert report[f"{key}_single"] == seq[-1]
        assert report[f"{key}_max"] == seq.max() and report[f"{key}_min"] == seq.min()
        assert report[f"{key}_std"] == pytest.approx(np.std(seq), rel=1e-6)  # float32 Welford
    assert report == replay.compute()  # the same values passed eagerly: the same state, bit for bit


def test_the_integer_range_error_shows_the_value_and_the_range_in_force():
    scope = "int64" if X64 else r"±2\*\*60"
    value = np.uint64(2**64 - 1) if X64 else 2**60 + 1
    with pytest.raises(ValueError, match=rf"'big' is {int(value)}, beyond {scope}"):
        update_metrics(None, {"big": value})
    if X64:  # every int64 fits, the most negative one included
        host = get_metrics(update_metrics(None, {"n": np.int64(-(2**63))}))[1]
        assert host == {"n": float(-(2**63))}


@pytest.mark.parametrize(
    ("steps", "field"),
    [
        ([2**60, 2**60], "value"),
        ([-(2**60)] * 3, "value"),
        ([{"value": 1, "count": 2**60}] * 2, "count"),
    ],
)
@pytest.mark.parametrize("use_jit", [False, True])
def test_integer_totals_beyond_the_accumulators_range_report_nan_not_a_wrapped_number(
    steps, field, use_jit, caplog
):
    # each step is within range; their total is not (x64 off: ±2**61). Never a wrapped sum.
    store = mk.MetricStore(default_log_modes=("mean",))
    update = (
        jax.jit(lambda s, x: s.update({"k": x})) if use_jit else (lambda s, x: s.update({"k": x}))
    )
    store = store.update({"k": steps[0]})  # eager: JAX would refuse 2**60 as a jit argument
    for step in steps[1:]:
        store = (
            store.update({"k": step})
            if not use_jit
            else store.aggregate(mk.MetricStore(default_log_modes=("mean",)).update({"k": step}))
        )
    with caplog.at_level(logging.WARNING, logger="metricskit"):
        got = store.compute()["k_mean"]
    want = sum(s if isinstance(s, int) else s["value"] for s in steps) / sum(
        1 if isinstance(s, int) else s["count"] for s in steps
    )
    if X64:
        assert got == want
    else:
        assert math.isnan(got)
        assert "beyond the range of its accumulator" in caplog.text
    del update, field


def test_integer_totals_within_range_stay_exact_near_the_limit():
    store = mk.MetricStore(default_log_modes=("mean", "max"))
    for step in (2**60, -(2**60), 2**60, 2**59):
        store = store.update({"k": step})
    assert store.compute()["k_mean"] == (2**60 + 2**59) / 4


@pytest.mark.parametrize("value", [float(np.finfo(np.float32).max), 3.4028e38, -3.40282e38])
@pytest.mark.parametrize("shape", [(), (2,)])
def test_finite_float64_values_at_float32s_largest_stay_finite_in_every_mode(value, shape):
    store = mk.MetricStore(default_log_modes=("mean", "single", "max", "min", "std"))
    x = np.full(shape, value)
    one = store.update({"k": x})
    np.testing.assert_allclose(
        one.compute()["k_mean"], value, rtol=2**-47
    )  # (not 2 steps: overflow)
    np.testing.assert_array_equal(one.compute()["k_std"], 0.0)  # (squared spreads overflow)
    host = one.update({"k": {"value": x, "count": 3}}).compute()
    for mode in ("single", "max", "min"):
        assert np.all(np.isfinite(host[f"k_{mode}"])), (mode, host)
    np.testing.assert_allclose(host["k_max"], max(value, value / 3), rtol=2**-47)
    np.testing.assert_allclose(host["k_min"], min(value, value / 3), rtol=2**-47)
