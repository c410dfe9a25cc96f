"""Co-moments merged with Chan's formula: any split of the samples, far from zero, gives the
float64 moments of all of them."""

from __future__ import annotations

import functools
import itertools

import hypothesis.strategies as st
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

import metricskit as mk
from metricskit.tasks.moments import batch_moments, comoment_mode, merge_batches


def _moments(count, mean, comoments):
    return (float(count), np.asarray(mean), np.asarray(comoments))


MODE = comoment_mode("test_moments", _moments)


def _reference(x):
    x = x.astype(np.float64)
    centred = x - x.mean(0)
    return len(x), x.mean(0), centred.T @ centred


def _check(got, x, rtol):
    n, mean, c = _reference(x)
    assert got[0] == n
    np.testing.assert_allclose(got[1], mean, rtol=rtol)
    np.testing.assert_allclose(got[2], c, rtol=rtol, atol=rtol * np.abs(c).max())


def _store(x):
    packed, n = batch_moments(jnp.asarray(x), jnp.ones(len(x), bool))
    return mk.MetricStore().update({"m": {"value": packed, "count": n, "log_modes": [MODE]}})


@pytest.mark.extended
@settings(max_examples=20)
@given(st.integers(3, 60), st.lists(st.integers(1, 59), max_size=4, unique=True), st.integers())
def test_any_split_merges_to_the_moments_of_all_samples(n, cuts, seed):
    rng = np.random.default_rng(seed % 2**32)
    x = (1e4 + rng.normal(size=(n, 3))).astype(np.float32)  # far from zero: naive sums fail
    bounds = [0, *sorted(c for c in cuts if c < n), n]
    parts = [_store(x[a:b]) for a, b in itertools.pairwise(bounds) if b > a]
    merged = functools.reduce(mk.MetricStore.aggregate, parts).compute()["m"]
    _check(merged, x, rtol=1e-5)


def test_masked_samples_and_device_merges(rng):
    x = (1e3 + rng.normal(size=(40, 2))).astype(np.float32)
    keep = rng.random(40) < 0.5
    packed, n = batch_moments(jnp.asarray(x), jnp.asarray(keep))
    assert int(n) == keep.sum()
    _check(_moments(n, packed[:2] + packed[2:4], packed[4:].reshape(2, 2)), x[keep], rtol=1e-5)
    per_device = [batch_moments(jnp.asarray(x[i::4]), jnp.ones(10, bool)) for i in range(4)]
    packed, n = merge_batches(
        jnp.stack([p for p, _ in per_device]), jnp.stack([c for _, c in per_device])
    )
    _check(_moments(n, packed[:2] + packed[2:4], packed[4:].reshape(2, 2)), x, rtol=1e-5)


def test_an_empty_batch_changes_nothing():
    x = np.arange(12.0, dtype=np.float32).reshape(6, 2)
    empty = batch_moments(jnp.zeros((4, 2)), jnp.zeros(4, bool))
    store = _store(x).update({"m": {"value": empty[0], "count": empty[1], "log_modes": [MODE]}})
    _check(store.compute()["m"], x, rtol=1e-12)


def test_a_raw_value_under_a_comoment_mode_is_a_clear_error_naming_the_key():
    store = mk.MetricStore().update({"loss": 1.0})
    for bad in (2.0, np.ones(4, np.float32), np.ones((2, 8), np.float32)):
        with pytest.raises(ValueError, match=r"'r2/val'.*packed co-moments.*tasks\.r2"):
            store.update({"r2/val": {"value": bad, "log_modes": [MODE]}})
    assert list(store.keys()) == ["loss"]
