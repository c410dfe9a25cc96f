"""divide(): the one division by a count, owning the empty-count policy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import metricskit as mk
from metricskit import exact


def test_zero_counts_give_zero_not_nan():
    out = mk.divide(jnp.array([3.0, 1.0, -2.0]), jnp.array([2, 0, 4]))
    np.testing.assert_array_equal(out, [1.5, 0.0, -0.5])
    assert jax.jit(mk.divide)(jnp.float32(1.0), jnp.int32(0)) == 0.0


def test_broadcasts_a_scalar_count():
    np.testing.assert_array_equal(mk.divide(jnp.array([2.0, 4.0]), 2), [1.0, 2.0])


def test_exact_arguments_divide_in_double_float():
    num = exact.as_words(jnp.int32(975))
    got = mk.divide(num, exact.as_words(jnp.int32(1792)))
    assert isinstance(got, exact.Pair)
    assert abs(float(exact.to_host(got)) - 975 / 1792) < 2**-46
    zero = mk.divide(exact.as_pair(jnp.float32(3.0)), jnp.zeros(2, jnp.int32))
    np.testing.assert_array_equal(exact.to_host(zero), [0.0, 0.0])
