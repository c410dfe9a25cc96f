"""Regression task metrics against scikit-learn and SciPy, over batches, splits and edges."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

import metricskit as mk

NAMES = ["mse", "rmse", "mae", "r2", "explained_variance", "pearson"]


def _reference(p, y):
    return {
        "mse": skm.mean_squared_error(y, p),
        "rmse": skm.root_mean_squared_error(y, p),
        "mae": skm.mean_absolute_error(y, p),
        "r2": skm.r2_score(y, p),
        "explained_variance": skm.explained_variance_score(y, p),
        "pearson": stats.pearsonr(p, y)[0],
    }


def _items(p, y, mask=None):
    return {name: getattr(mk.tasks, name)(p, y, mask=mask) for name in NAMES}


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_batches_match_the_whole_data_set(use_jit, rng):
    # a large mean and a small spread: co-moments merged per batch keep the precision
    y = (1e3 + rng.normal(size=300)).astype(np.float32)
    p = (y + 0.3 * rng.normal(size=300)).astype(np.float32)

    def update(store, p, y):
        return store.update(_items(p, y))

    update = jax.jit(update) if use_jit else update
    store = mk.MetricStore()
    for lo in range(0, 300, 64):
        store = update(store, jnp.asarray(p[lo : lo + 64]), jnp.asarray(y[lo : lo + 64]))
    host = store.compute()
    want = _reference(p.astype(np.float64), y.astype(np.float64))
    for name in NAMES:
        assert host[name] == pytest.approx(want[name], rel=2e-5), name


def test_masks_and_constant_targets_follow_scikit_learns_defaults(rng):
    y = rng.normal(size=40).astype(np.float32)
    p = (y + rng.normal(size=40)).astype(np.float32)
    mask = rng.random(40) < 0.5
    host = mk.MetricStore().update(_items(p, y, mask)).compute()
    want = _reference(p[mask].astype(np.float64), y[mask].astype(np.float64))
    for name in NAMES:
        assert host[name] == pytest.approx(want[name], rel=2e-5), name
    constant = np.full(5, 2.0, np.float32)
    for prediction, r2 in ((constant, 1.0), (constant + 1, 0.0)):
        host = mk.MetricStore().update(_items(prediction, constant)).compute()
        assert host["r2"] == r2 == skm.r2_score(constant, prediction)
        assert host["explained_variance"] == skm.explained_variance_score(constant, prediction)
        assert np.isnan(host["pearson"])  # SciPy: nan for a constant input


def test_any_split_aggregates_to_the_whole(rng):
    y = rng.normal(size=50).astype(np.float32)
    p = (y + rng.normal(size=50)).astype(np.float32)
    # every part is the whole batch with a mask: one compiled step serves every split
    step = jax.jit(lambda store, mask: store.update(_items(p, y, mask)))

    def part(a, b):
        return step(mk.MetricStore(), (np.arange(50) >= a) & (np.arange(50) < b))

    whole = part(0, 50).compute()
    want = _reference(p.astype(np.float64), y.astype(np.float64))
    for cuts in ([1, 49], [10, 25, 33], [7]):
        bounds = [0, *cuts, 50]
        parts = [part(a, b) for a, b in itertools.pairwise(bounds)]
        merged = functools.reduce(mk.MetricStore.aggregate, parts).compute()
        for name in NAMES:
            assert merged[name] == pytest.approx(whole[name], rel=1e-12), (cuts, name)
            assert merged[name] == pytest.approx(want[name], rel=1e-12), (cuts, name)


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("name", NAMES)
def test_mismatched_shapes_are_a_clear_error_not_a_broadcast(name, use_jit):
    fn = getattr(mk.tasks, name)
    call = jax.jit(fn) if use_jit else fn
    column, row = jnp.array([[1.0], [2.0], [3.0]]), jnp.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"\(3, 1\).*\(3,\).*reshape predictions.*\(3,\)"):
        call(column, row)
    with pytest.raises(ValueError, match=r"shape \(2,\).*\(3,\)"):
        call(jnp.ones(2), row)
    with pytest.raises(ValueError, match=r"mask has shape \(2,\).*\(3,\)"):
        fn(row, row, mask=jnp.ones(2, bool))


@pytest.mark.parametrize("name", ["r2", "explained_variance", "pearson"])
def test_several_outputs_are_rejected_and_one_column_is_one_output(name, rng):
    fn = getattr(mk.tasks, name)
    y = rng.normal(size=(20, 3)).astype(np.float32)
    p = (y + rng.normal(size=(20, 3))).astype(np.float32)
    with pytest.raises(ValueError, match=r"one output.*\(20, 3\).*predictions\[:, j\]"):
        fn(p, y)
    host = mk.MetricStore().update({"m": fn(p[:, :1], y[:, :1])}).compute()["m"]
    want = _reference(p[:, 0].astype(np.float64), y[:, 0].astype(np.float64))[name]
    assert host == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_mse_and_mae_take_any_shape_every_element_a_sample(use_jit, rng):
    y = rng.normal(size=(6, 4, 3)).astype(np.float32)
    p = (y + rng.normal(size=(6, 4, 3))).astype(np.float32)
    mask = rng.random((6, 4)) < 0.7  # leading axes: whole rows of 3 count or not

    def update(store, p, y, m):
        return store.update({n: getattr(mk.tasks, n)(p, y, mask=m) for n in ("mse", "mae")})

    update = jax.jit(update) if use_jit else update
    host = update(mk.MetricStore(), p, y, mask).compute()
    kept_p, kept_y = p[mask].astype(np.float64), y[mask].astype(np.float64)
    assert host["mse"] == pytest.approx(skm.mean_squared_error(kept_y, kept_p), rel=1e-12)
    assert host["mae"] == pytest.approx(skm.mean_absolute_error(kept_y, kept_p), rel=1e-12)


def test_fewer_than_two_samples_follow_the_references():
    one = {name: getattr(mk.tasks, name)([1.0], [2.0]) for name in NAMES}
    host = mk.MetricStore().update(one).compute()
    with pytest.warns(UserWarning, match="less than two samples"):
        assert np.isnan(skm.r2_score([2.0], [1.0]))
    assert np.isnan(host["r2"])
    assert host["explained_variance"] == skm.explained_variance_score([2.0], [1.0]) == 1.0
    assert np.isnan(host["pearson"])  # numpy.corrcoef: nan; SciPy refuses
    assert host["mse"] == host["rmse"] == host["mae"] == 1.0
    two = mk.MetricStore().update({"r2": mk.tasks.r2([1.0, 2.0], [1.5, 2.5])}).compute()
    assert two["r2"] == pytest.approx(skm.r2_score([1.5, 2.5], [1.0, 2.0]), rel=1e-12)
    # no samples at all: the store's empty report, 0.0 (with one logged warning)
    empty = {name: getattr(mk.tasks, name)([1.0], [2.0], mask=[False]) for name in NAMES}
    assert mk.MetricStore().update(empty).compute() == dict.fromkeys(NAMES, 0.0)


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_constant_targets_split_across_batches_follow_force_finite(use_jit):
    y = np.full(9, 0.1, np.float32)

    def update(store, p, y):
        return store.update(_items(p, y))

    update = jax.jit(update) if use_jit else update
    for p, want in ((y, 1.0), (y + 1, 0.0)):
        store = mk.MetricStore()
        for lo in (0, 4, 5):
            store = update(store, p[lo : lo + 4], y[lo : lo + 4])
        host = store.compute()
        assert host["r2"] == want == skm.r2_score(y, p)
        assert host["explained_variance"] == skm.explained_variance_score(y, p)
        assert np.isnan(host["pearson"])


@pytest.mark.parametrize("use_jit", [True], ids=["jit"])  # eager: the other tests
def test_one_large_batch_far_from_zero_is_as_exact_as_many_small_ones(use_jit, rng):
    y = (1e4 + rng.normal(size=2000)).astype(np.float32)
    p = (y + rng.normal(size=2000)).astype(np.float32)
    want = _reference(p.astype(np.float64), y.astype(np.float64))

    def update(store, p, y):
        return store.update(_items(p, y))

    update = jax.jit(update) if use_jit else update
    whole = update(mk.MetricStore(), p, y).compute()
    small = mk.MetricStore()
    for lo in range(0, 2000, 250):
        small = update(small, p[lo : lo + 250], y[lo : lo + 250])
    small = small.compute()
    for name in NAMES:  # float32 sums of one batch: about 1e-6 (r2 is near 0: absolute)
        assert whole[name] == pytest.approx(want[name], rel=1e-11, abs=1e-11), name
        assert small[name] == pytest.approx(whole[name], rel=1e-11, abs=1e-11), name


def test_integer_inputs_are_exact():
    host = (
        mk.MetricStore()
        .update(
            {
                "r2": mk.tasks.r2(jnp.array([1, 2, 3]), jnp.array([1, 2, 5])),
                "mse": mk.tasks.mse(jnp.zeros(2, jnp.int32), jnp.array([50_000, 100_000])),
                "mae": mk.tasks.mae(jnp.zeros(2, jnp.int32), jnp.array([-50_001, 100_000])),
            }
        )
        .compute()
    )
    assert host["r2"] == pytest.approx(skm.r2_score([1, 2, 5], [1, 2, 3]), rel=1e-14)
    assert host["mse"] == 6.25e9
    assert host["mae"] == 75_000.5


@pytest.mark.extended
def test_eight_devices_give_one_devices_numbers(rng):
    from jax.sharding import PartitionSpec as P

    from metricskit.compat import make_mesh, shard_map

    y = (1e4 + rng.normal(size=2048)).astype(np.float32)
    p = (y + rng.normal(size=2048)).astype(np.float32)
    one = mk.MetricStore().update(_items(p, y)).compute()
    want = _reference(p.astype(np.float64), y.astype(np.float64))
    mesh = make_mesh((8,), ("data",))
    for how in ("sync", "axis_name"):

        def step(p, y, how=how):
            items = {name: getattr(mk.tasks, name)(p, y) for name in ("mse", "r2")}
            if how == "sync":
                return mk.MetricStore().update(items).sync("data")
            return mk.MetricStore().update(items, axis_name="data")

        mapped = shard_map(step, mesh=mesh, in_specs=(P("data"),) * 2, out_specs=P())
        host = jax.jit(mapped)(p, y).compute()
        for name in ("mse", "r2"):  # one of each state: pair sums, co-moments
            assert host[name] == pytest.approx(one[name], rel=1e-11, abs=1e-11), (how, name)
            assert host[name] == pytest.approx(want[name], rel=1e-11, abs=1e-11), (how, name)


def test_infinite_errors_report_inf_as_float64_would():
    p, y = jnp.array([1.0, jnp.inf]), jnp.zeros(2)
    host = (
        mk.MetricStore()
        .update(
            {"mse": mk.tasks.mse(p, y), "rmse": mk.tasks.rmse(p, y), "mae": mk.tasks.mae(-p, y)}
        )
        .compute()
    )
    assert host == {"mae": np.inf, "mse": np.inf, "rmse": np.inf}
    nan = mk.MetricStore().update({"mse": mk.tasks.mse(jnp.array([1.0, jnp.nan]), y)})
    assert np.isnan(nan.compute()["mse"])


def test_a_mask_of_the_targets_shape_works_for_one_column_outputs():
    p = jnp.array([[1.0], [2.0], [3.0], [9.0]])
    y = jnp.array([[1.0], [2.0], [5.0], [0.0]])
    mask = jnp.array([[True], [True], [True], [False]])
    for name in ("r2", "explained_variance", "pearson"):
        fn = getattr(mk.tasks, name)
        host = mk.MetricStore().update({"a": fn(p, y, mask=mask), "b": fn(p, y, mask=mask[:, 0])})
        got = host.compute()
        assert got["a"] == got["b"], name
    assert got["a"] == pytest.approx(stats.pearsonr([1, 2, 3], [1, 2, 5])[0], rel=1e-12)
