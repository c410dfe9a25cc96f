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
    for cuts in ([1, 49], [10, 25, 33], [7]):
        bounds = [0, *cuts, 50]
        parts = [
            mk.MetricStore().update(_items(p[a:b], y[a:b])) for a, b in itertools.pairwise(bounds)
        ]
        merged = functools.reduce(mk.MetricStore.aggregate, parts).compute()
        whole = mk.MetricStore().update(_items(p, y)).compute()
        for name in NAMES:
            assert merged[name] == pytest.approx(whole[name], rel=1e-5), (cuts, name)
