"""Within-batch sums by integer digits on a grid: nearly exact for any batch, carrying
infinities and NaN as IEEE sums do."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from metricskit.exact import Pair
from metricskit.tasks.batchsums import as_pairs, pair_total


def test_pair_total_sums_in_double_float(rng):
    x = rng.normal(size=(1001, 3)).astype(np.float32) + np.float32(1e3)
    total = pair_total(as_pairs(jnp.asarray(x)))
    got = np.asarray(total.hi, np.float64) + np.asarray(total.lo, np.float64)
    np.testing.assert_allclose(got, x.astype(np.float64).sum(0), rtol=1e-13)
    empty = pair_total(as_pairs(jnp.zeros((0, 2))))
    assert empty.hi.shape == (2,) and not np.asarray(empty.hi).any()


def test_pair_total_is_exact_to_2_to_the_minus_40_for_large_adversarial_sums(rng):
    n = 2**16
    columns = [
        1e4 + 1e-3 * rng.normal(size=n),  # far from zero
        rng.normal(size=n) * 10.0 ** rng.uniform(-20, 20, size=n),  # mixed magnitudes
        np.concatenate([v := rng.normal(size=n // 2), -v]) + 1e-7,  # cancelling
        rng.normal(size=n) ** 2,  # one sign
    ]
    x64 = np.stack(columns, axis=1)
    hi = x64.astype(np.float32)
    lo = (x64 - hi.astype(np.float64)).astype(np.float32)
    total = jax.jit(pair_total)(Pair(jnp.asarray(hi), jnp.asarray(lo)))
    got = np.asarray(total.hi, np.float64) + np.asarray(total.lo, np.float64)
    terms = np.concatenate([hi, lo]).astype(np.float64)
    want = np.array([math.fsum(col) for col in terms.T])
    bound = 2.0**-40 * np.maximum(np.abs(want), np.abs(terms).max(0))
    assert np.all(np.abs(got - want) <= bound), (got - want) / bound


def test_pair_total_carries_infinities_and_nan():
    x = jnp.array([[1.0, np.inf, np.nan, 1.0, -np.inf], [np.inf, -np.inf, 2.0, 3.0, -np.inf]])
    total = pair_total(as_pairs(x))
    np.testing.assert_array_equal(np.asarray(total.hi), [np.inf, np.nan, np.nan, 4.0, -np.inf])
    assert not np.asarray(total.lo).any()
