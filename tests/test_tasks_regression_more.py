"""MAPE, SMAPE, MSLE, RMSLE and cosine similarity against scikit-learn and float64 NumPy
references (torchmetrics' formulas), over batches, splits, devices and edge cases."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

import metricskit as mk

NAMES = ["mape", "smape", "msle", "rmsle", "cosine_similarity"]
# msle's logarithms keep float32's relative precision; the others are double-float terms
REL = {"mape": 1e-11, "smape": 1e-11, "msle": 1e-6, "rmsle": 1e-6, "cosine_similarity": 1e-11}


def _smape(p, y):
    """torchmetrics' SymmetricMeanAbsolutePercentageError formula, in float64."""
    return np.mean(2 * np.abs(y - p) / np.maximum(np.abs(y) + np.abs(p), 1.17e-6))


def _cosine(a, b):
    """Per-row cosine averaged over rows, in float64; a zero row counts 0."""
    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return np.mean(np.where(norms > 0, (a * b).sum(-1) / np.where(norms > 0, norms, 1), 0.0))


def _reference(p, y, a, b):
    p, y, a, b = (np.asarray(x, np.float64) for x in (p, y, a, b))
    return {
        "mape": skm.mean_absolute_percentage_error(y, p),
        "smape": _smape(p, y),
        "msle": skm.mean_squared_log_error(np.abs(y), np.abs(p)),
        "rmsle": skm.root_mean_squared_log_error(np.abs(y), np.abs(p)),
        "cosine_similarity": _cosine(a, b),
    }


def _items(p, y, a, b, mask=None, vector_mask=None):
    t = mk.tasks
    return {
        "mape": t.mape(p, y, mask=mask),
        "smape": t.smape(p, y, mask=mask),
        "msle": t.msle(jnp.abs(p), jnp.abs(y), mask=mask),
        "rmsle": t.rmsle(jnp.abs(p), jnp.abs(y), mask=mask),
        "cosine_similarity": t.cosine_similarity(a, b, mask=vector_mask),
    }


def _data(rng, n=96, d=5):
    y = rng.normal(size=n).astype(np.float32)
    y[:3] = 0.0  # zero targets: scikit-learn's eps makes mape huge, not infinite
    p = (y + 0.3 * rng.normal(size=n)).astype(np.float32)
    p[1] = 0.0  # y = p = 0: smape counts 0
    a = rng.normal(size=(n, d)).astype(np.float32)
    b = (a + rng.normal(size=(n, d))).astype(np.float32)
    a[2] = 0.0  # a zero vector counts 0
    return p, y, a, b


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_batches_match_the_references(use_jit, rng):
    p, y, a, b = _data(rng)

    def update(store, *batch):
        return store.update(_items(*batch))

    update = jax.jit(update) if use_jit else update
    store = mk.MetricStore()
    for lo in range(0, 96, 32):
        store = update(store, *(jnp.asarray(x[lo : lo + 32]) for x in (p, y, a, b)))
    host = store.compute()
    want = _reference(p, y, a, b)
    assert want["mape"] > 1e12  # the zero targets dominate, as in scikit-learn
    for name in NAMES:
        assert host[name] == pytest.approx(want[name], rel=REL[name]), name


def test_any_split_aggregates_to_the_whole_and_masks_remove_samples(rng):
    p, y, a, b = _data(rng, n=40)
    step = jax.jit(lambda store, mask: store.update(_items(p, y, a, b, mask, mask)))

    def part(lo, hi):
        return step(mk.MetricStore(), (np.arange(40) >= lo) & (np.arange(40) < hi))

    whole = part(0, 40).compute()
    want = _reference(p, y, a, b)
    for cuts in ([1, 39], [10, 25, 33]):
        bounds = [0, *cuts, 40]
        parts = [part(lo, hi) for lo, hi in itertools.pairwise(bounds)]
        merged = functools.reduce(mk.MetricStore.aggregate, parts).compute()
        for name in NAMES:
            assert merged[name] == pytest.approx(whole[name], rel=1e-12), (cuts, name)
            assert merged[name] == pytest.approx(want[name], rel=REL[name]), (cuts, name)
    mask = rng.random(40) < 0.5
    host = step(mk.MetricStore(), mask).compute()
    want = _reference(p[mask], y[mask], a[mask], b[mask])
    for name in NAMES:
        assert host[name] == pytest.approx(want[name], rel=REL[name]), name


def test_any_shape_is_samples_and_cosine_takes_leading_vector_axes(rng):
    y = rng.uniform(0, 3, size=(4, 3, 2)).astype(np.float32)
    p = rng.uniform(0, 3, size=(4, 3, 2)).astype(np.float32)
    mask = rng.random((4, 3)) < 0.7  # leading axes: (4, 3) of the (4, 3, 2) samples
    full = np.broadcast_to(mask[..., None], y.shape)
    host = (
        mk.MetricStore()
        .update(
            {
                "mape": mk.tasks.mape(p, y, mask=mask),
                "msle": mk.tasks.msle(p, y, mask=mask),
                "cos": mk.tasks.cosine_similarity(p, y, mask=mask[:, :1].any(-1)),
            }
        )
        .compute()
    )
    p64, y64 = p.astype(np.float64), y.astype(np.float64)
    assert host["mape"] == pytest.approx(
        skm.mean_absolute_percentage_error(y64[full], p64[full]), rel=1e-11
    )
    assert host["msle"] == pytest.approx(skm.mean_squared_log_error(y64[full], p64[full]), rel=1e-6)
    rows = mask[:, 0]
    assert host["cos"] == pytest.approx(_cosine(p64[rows], y64[rows]), rel=1e-11)


def test_close_values_keep_their_log_errors_and_cosine_has_no_overflow():
    # log1p(y) - log1p(p) of nearly equal values: no cancellation in log1p((y - p) / (1 + p))
    y = np.array([1e6, 3.0, 0.5], np.float32)
    p = np.nextafter(y, np.float32(np.inf))
    host = mk.MetricStore().update({"msle": mk.tasks.msle(p, y)}).compute()
    want = skm.mean_squared_log_error(y.astype(np.float64), p.astype(np.float64))
    assert host["msle"] == pytest.approx(want, rel=1e-6)
    # vectors whose squared norms overflow float32, and tiny ones: scaled exactly
    a = np.array([[3e30, 4e30], [3e-30, -4e-30]], np.float32)
    b = np.array([[4e30, 3e30], [1e-30, 0.0]], np.float32)
    host = mk.MetricStore().update({"cos": mk.tasks.cosine_similarity(a, b)}).compute()
    assert host["cos"] == pytest.approx(_cosine(a.astype(np.float64), b.astype(np.float64)))


def test_edge_cases_follow_the_references():
    zeros = jnp.zeros(3)
    host = (
        mk.MetricStore()
        .update(
            {
                "mape": mk.tasks.mape(zeros, zeros),
                "smape": mk.tasks.smape(zeros, zeros),
                "msle": mk.tasks.msle(zeros + 2, zeros + 2),
                "cos": mk.tasks.cosine_similarity(jnp.zeros((2, 3)), jnp.ones((2, 3))),
            }
        )
        .compute()
    )
    assert host == {"mape": 0.0, "smape": 0.0, "msle": 0.0, "cos": 0.0}
    # opposite signs: smape's largest term, 2; a zero target: |p| / eps as scikit-learn
    host = (
        mk.MetricStore()
        .update(
            {
                "smape": mk.tasks.smape(jnp.array([1.0, -2.0]), jnp.array([-1.0, 2.0])),
                "mape": mk.tasks.mape(jnp.array([0.5]), jnp.array([0.0])),
            }
        )
        .compute()
    )
    assert host["smape"] == 2.0
    assert host["mape"] == skm.mean_absolute_percentage_error([0.0], [0.5])
    # an empty batch and an all-masked one: no samples, the store's 0.0
    empty = {name: getattr(mk.tasks, name)(jnp.ones((0, 3)), jnp.ones((0, 3))) for name in NAMES}
    masked = {
        name: getattr(mk.tasks, name)(jnp.ones((2, 3)), jnp.ones((2, 3)), mask=jnp.zeros(2, bool))
        for name in NAMES
    }
    for items in (empty, masked):
        assert mk.MetricStore().update(items).compute() == dict.fromkeys(NAMES, 0.0)


def test_nan_and_invalid_values_are_nan_under_jit_and_errors_eagerly():
    @jax.jit
    def step(store, p, y):
        return store.update({name: getattr(mk.tasks, name)(p, y) for name in NAMES})

    ok = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    nan = ok.at[0, 1].set(jnp.nan)
    host = step(mk.MetricStore(), nan, ok).compute()
    assert all(np.isnan(host[name]) for name in NAMES), host
    below = ok.at[1, 0].set(-1.0)  # log1p(-1): scikit-learn refuses values <= -1
    host = step(mk.MetricStore(), below, ok).compute()
    assert np.isnan(host["msle"]) and np.isnan(host["rmsle"])
    assert np.isfinite(host["mape"])
    for name in ("msle", "rmsle"):
        fn = getattr(mk.tasks, name)
        with pytest.raises(ValueError, match=r"<= -1.*scikit-learn"):
            fn(below, ok)
        with pytest.raises(ValueError, match=r"<= -1"):
            fn(ok, jnp.array([-2.0, 1.0, 1.0, 1.0]).reshape(2, 2))
        # a masked invalid sample does not count
        host = mk.MetricStore().update({"m": fn(below, ok, mask=jnp.array([True, False]))})
        assert host.compute()["m"] == pytest.approx(
            skm.mean_squared_log_error([1.0, 2.0], [1.0, 2.0]) if name == "msle" else 0.0
        )
    skip = step(mk.MetricStore(nan_policy="skip"), below, ok)
    host = step(skip, ok + 1, ok).compute()
    assert host["msle_nonfinite"] == 1
    assert host["msle"] == pytest.approx(skm.mean_squared_log_error(ok.ravel(), ok.ravel() + 1))


@pytest.mark.parametrize("name", NAMES)
def test_mismatched_shapes_are_clear_errors(name):
    fn = getattr(mk.tasks, name)
    with pytest.raises(ValueError, match=r"\(3, 1\).*\(3, 2\)"):
        jax.jit(fn)(jnp.ones((3, 1)), jnp.ones((3, 2)))
    with pytest.raises(ValueError, match=r"mask has shape \(2,\)"):
        fn(jnp.ones((3, 2)), jnp.ones((3, 2)), mask=jnp.ones(2, bool))


def test_eight_devices_sync_and_axis_name_give_one_devices_numbers(rng):
    from jax.sharding import PartitionSpec as P

    from metricskit.compat import make_mesh, shard_map

    assert jax.device_count() == 8, "XLA_FLAGS must force 8 host devices (conftest)"
    p, y, a, b = _data(rng, n=64)
    one = mk.MetricStore().update(_items(p, y, a, b)).compute()
    want = _reference(p, y, a, b)
    mesh = make_mesh((8,), ("data",))

    def synced(*batch):
        return mk.MetricStore().update(_items(*batch)).sync("data")

    def reduced(*batch):
        return mk.MetricStore().update(_items(*batch), axis_name="data")

    for fn in (synced, reduced):
        mapped = shard_map(fn, mesh=mesh, in_specs=(P("data"),) * 4, out_specs=P())
        host = jax.jit(mapped)(*(jnp.asarray(x) for x in (p, y, a, b))).compute()
        for name in NAMES:
            assert host[name] == pytest.approx(one[name], rel=1e-12), (fn.__name__, name)
            assert host[name] == pytest.approx(want[name], rel=REL[name]), (fn.__name__, name)
