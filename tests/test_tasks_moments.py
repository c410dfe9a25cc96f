"""Co-moments merged with Chan's formula: any split of the samples, far from zero, gives the
float64 moments of all of them."""

from __future__ import annotations

import functools
import itertools
import math

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

import metricskit as mk
from metricskit.tasks.moments import CoMoments, batch_moments, merge_batches


def _moments(count, mean, comoments):
    return (float(count), np.asarray(mean), np.asarray(comoments))


class Moments(CoMoments):
    def finish(self, count, mean, comoments):
        return _moments(count, mean, comoments)


MODE = Moments()


def _reference(x):
    x = x.astype(np.float64)
    centred = x - x.mean(0)
    return len(x), x.mean(0), centred.T @ centred


def _check(got, x, rtol):
    n, mean, c = _reference(x)
    assert got[0] == n
    np.testing.assert_allclose(got[1], mean, rtol=rtol)
    np.testing.assert_allclose(got[2], c, rtol=rtol, atol=rtol * np.abs(c).max())


def _unpacked(packed, n):
    """A packed ``(2,)``-variable batch as float64 ``(count, means, co-moments)``."""
    p = np.asarray(packed, np.float64)
    return _moments(n, p[:2] + p[2:4], (p[4:8] + p[8:12]).reshape(2, 2))


def _store(x):
    packed, n = batch_moments(jnp.asarray(x), jnp.ones(len(x), bool))
    return mk.MetricStore().update({"m": {"value": packed, "count": n, "log_modes": [MODE]}})


_PAD = 64  # every part is padded to one shape and masked: one compile serves every example
_padded_moments = jax.jit(batch_moments)


def _padded_store(x):
    padded = np.zeros((_PAD, x.shape[1]), np.float32)
    padded[: len(x)] = x
    packed, n = _padded_moments(jnp.asarray(padded), jnp.arange(_PAD) < len(x))
    return mk.MetricStore().update({"m": {"value": packed, "count": n, "log_modes": [MODE]}})


@pytest.mark.extended
@settings(max_examples=20)
@given(st.integers(3, 60), st.lists(st.integers(1, 59), max_size=4, unique=True), st.integers())
def test_any_split_merges_to_the_moments_of_all_samples(n, cuts, seed):
    rng = np.random.default_rng(seed % 2**32)
    x = (1e4 + rng.normal(size=(n, 3))).astype(np.float32)  # far from zero: naive sums fail
    bounds = [0, *sorted(c for c in cuts if c < n), n]
    parts = [_padded_store(x[a:b]) for a, b in itertools.pairwise(bounds) if b > a]
    merged = functools.reduce(mk.MetricStore.aggregate, parts).compute()["m"]
    _check(merged, x, rtol=1e-11)


def test_masked_samples_and_device_merges(rng):
    x = (1e3 + rng.normal(size=(40, 2))).astype(np.float32)
    keep = rng.random(40) < 0.5
    packed, n = batch_moments(jnp.asarray(x), jnp.asarray(keep))
    assert int(n) == keep.sum()
    _check(_unpacked(packed, n), x[keep], rtol=1e-12)
    per_device = [batch_moments(jnp.asarray(x[i::4]), jnp.ones(10, bool)) for i in range(4)]
    packed, n = merge_batches(
        jnp.stack([p for p, _ in per_device]), jnp.stack([c for _, c in per_device])
    )
    _check(_unpacked(packed, n), x, rtol=1e-12)


def test_an_empty_batch_changes_nothing():
    x = np.arange(12.0, dtype=np.float32).reshape(6, 2)
    empty = batch_moments(jnp.zeros((4, 2)), jnp.zeros(4, bool))
    store = _store(x).update({"m": {"value": empty[0], "count": empty[1], "log_modes": [MODE]}})
    _check(store.compute()["m"], x, rtol=1e-12)


def test_a_raw_value_under_a_comoment_mode_is_a_clear_error_naming_the_key():
    store = mk.MetricStore().update({"loss": 1.0})
    for bad in (2.0, np.ones(5, np.float32), np.ones(8, np.float32), np.ones((2, 12), np.float32)):
        with pytest.raises(ValueError, match=r"'r2/val'.*packed co-moments.*tasks\.r2"):
            store.update({"r2/val": {"value": bad, "log_modes": [MODE]}})
    assert list(store.keys()) == ["loss"]


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("n", [1, 2, 7, 2000])
def test_one_batch_far_from_zero_is_exact_whatever_its_size(n, use_jit, rng):
    x = (1e4 + rng.normal(size=(n, 2))).astype(np.float32)
    fn = jax.jit(batch_moments) if use_jit else batch_moments
    packed, count = fn(jnp.asarray(x), jnp.ones(n, bool))
    assert packed.shape == (12,) and packed.dtype == jnp.float32
    _check(_unpacked(packed, count), x, rtol=1e-12)  # float32 sums: about 1e-6


def test_integer_variables_are_exact():
    x = np.array([[1, 2], [2, 2], [3, 5]], np.int32) + 2**24  # beyond float32's integers
    packed, n = batch_moments(jnp.asarray(x), jnp.ones(3, bool))
    _check(_unpacked(packed, n), x, rtol=1e-14)


def _fsum_moments(x):
    """Exact (fsum) float64 means and co-moments of float32 samples ``(N, d)``."""
    x = x.astype(np.float64)
    n = len(x)
    mean = np.array([math.fsum(c) / n for c in x.T])
    c = np.array(
        [
            [math.fsum((x[:, i] - mean[i]) * (x[:, j] - mean[j])) for j in range(x.shape[1])]
            for i in range(x.shape[1])
        ]
    )
    return n, mean, c


@pytest.mark.parametrize("case", ["near_1e4", "mixed_magnitudes", "one_outlier"])
def test_one_large_batch_is_exact_to_2_to_the_minus_40_on_adversarial_data(case, rng):
    n = 2**16
    if case == "near_1e4":  # values near 1e4 with a spread of a few float32 ulps
        x = 1e4 + 1e-3 * rng.normal(size=(n, 2))
    elif case == "mixed_magnitudes":
        x = rng.normal(size=(n, 2)) * 10.0 ** rng.uniform(-6, 6, size=(n, 2))
    else:  # almost constant, one sample far away
        x = np.full((n, 2), 3.0e3) + rng.normal(size=(n, 2)) * 1e-2
        x[12345] = [-7.5e6, 2.5e7]
    x = x.astype(np.float32)
    packed, count = jax.jit(batch_moments)(jnp.asarray(x), jnp.ones(n, bool))
    got = _unpacked(packed, count)
    _, mean, c = _fsum_moments(x)
    assert got[0] == n
    np.testing.assert_allclose(got[1], mean, rtol=2.0**-40)
    scale = np.sqrt(np.outer(np.diag(c), np.diag(c)))  # the co-moments' natural scale
    assert np.all(np.abs(got[2] - c) <= 2.0**-40 * scale), (got[2] - c) / scale
