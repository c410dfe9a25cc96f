"""Double-float arithmetic against float64, and infinities carried as float64 carries them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metricskit import doublefloat as df
from metricskit import exact


def _pairs(rng, positive=False):
    x = rng.normal(size=1000) * np.exp(rng.normal(size=1000) * 4)
    return exact.split_float(np.abs(x) if positive else x)[0]


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_arithmetic_matches_float64(op, rng):
    pa, pb = _pairs(rng), _pairs(rng)
    a, b = exact.to_host(pa), exact.to_host(pb)
    got = exact.to_host(jax.jit(getattr(df, op))(pa, pb))
    want = {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b}[op]
    scale = np.abs(want) if op in ("mul", "div") else np.maximum(np.abs(a), np.abs(b))
    assert np.max(np.abs(got - want) / scale) < 2**-44


def test_sqrt_matches_float64(rng):
    pa = _pairs(rng, positive=True)
    got = exact.to_host(jax.jit(df.sqrt)(pa))
    want = np.sqrt(exact.to_host(pa))
    assert np.max(np.abs(got - want) / want) < 2**-44


def _p(x):
    x = jnp.asarray(x, jnp.float32)
    return df.Pair(x, jnp.zeros_like(x))


SPECIALS = [np.inf, -np.inf, np.nan, 1.0, 0.0, -2.5]


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_non_finite_operands_give_what_float64_gives(op):
    a, b = np.meshgrid(SPECIALS, SPECIALS)
    a, b = a.ravel(), b.ravel()
    with np.errstate(all="ignore"):
        want = {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b}[op]
    got = exact.to_host(getattr(df, op)(_p(a), _p(b)))
    np.testing.assert_allclose(got, want, rtol=2**-44)  # infinities and NaN where float64 has them


def test_sqrt_of_specials_and_negative_values():
    x = np.array([np.inf, np.nan, 0.0, 4.0, -1.0])
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(exact.to_host(df.sqrt(_p(x))), np.sqrt(x))


def test_add_float_carries_rounding_errors():
    acc = _p(0.0)
    for _ in range(1000):
        acc = df.add_float(acc, jnp.float32(0.1))
    assert abs(float(exact.to_host(acc)) - 1000 * float(np.float32(0.1))) < 1e-9


def test_add_runs_on_numpy_arrays():
    a, b = exact.split_float(np.array([1e8, np.inf]))[0], exact.split_float(np.array([1.0, 1.0]))[0]
    out = df.add(a, b, np)
    assert isinstance(out.hi, np.ndarray)
    np.testing.assert_array_equal(exact.to_host(out), [1e8 + 1, np.inf])
