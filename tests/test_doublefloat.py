"""Double-float arithmetic against float64, and infinities carried as float64 carries them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metricskit import exact


def _pairs(rng, positive=False):
    x = rng.normal(size=1000) * np.exp(rng.normal(size=1000) * 4)
    return exact.split_float(np.abs(x) if positive else x)[0]


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_arithmetic_matches_float64(op, rng):
    pa, pb = _pairs(rng), _pairs(rng)
    a, b = exact.to_host(pa), exact.to_host(pb)
    got = exact.to_host(jax.jit(getattr(exact, op))(pa, pb))
    want = {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b}[op]
    scale = np.abs(want) if op in ("mul", "div") else np.maximum(np.abs(a), np.abs(b))
    assert np.max(np.abs(got - want) / scale) < 2**-44


def test_sqrt_matches_float64(rng):
    pa = _pairs(rng, positive=True)
    got = exact.to_host(jax.jit(exact.sqrt)(pa))
    want = np.sqrt(exact.to_host(pa))
    assert np.max(np.abs(got - want) / want) < 2**-44


def _p(x):
    x = jnp.asarray(x, jnp.float32)
    return exact.Pair(x, jnp.zeros_like(x))


SPECIALS = [np.inf, -np.inf, np.nan, 1.0, 0.0, -2.5]


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_non_finite_operands_give_what_float64_gives(op):
    a, b = np.meshgrid(SPECIALS, SPECIALS)
    a, b = a.ravel(), b.ravel()
    with np.errstate(all="ignore"):
        want = {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b}[op]
    got = exact.to_host(getattr(exact, op)(_p(a), _p(b)))
    np.testing.assert_allclose(got, want, rtol=2**-44)  # infinities and NaN where float64 has them


def test_sqrt_of_specials_and_negative_values():
    x = np.array([np.inf, np.nan, 0.0, 4.0, -1.0])
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(exact.to_host(exact.sqrt(_p(x))), np.sqrt(x))


def test_add_float_carries_rounding_errors():
    acc = _p(0.0)
    for _ in range(1000):
        acc = exact.add_float(acc, jnp.float32(0.1))
    assert abs(float(exact.to_host(acc)) - 1000 * float(np.float32(0.1))) < 1e-9


def test_add_runs_on_numpy_arrays():
    a, b = exact.split_float(np.array([1e8, np.inf]))[0], exact.split_float(np.array([1.0, 1.0]))[0]
    out = exact.add(a, b, np)
    assert isinstance(out.hi, np.ndarray)
    np.testing.assert_array_equal(exact.to_host(out), [1e8 + 1, np.inf])


def test_rounded_is_an_exact_identity():
    # (subnormals are left out: XLA on CPU flushes them to zero in any arithmetic)
    x = np.array([1.5, -0.0, 0.0, np.inf, -np.inf, np.nan, 1.2e-38, -3.4e38], np.float32)
    got = np.asarray(jax.jit(exact.rounded)(x))
    np.testing.assert_array_equal(got, x)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(x))
    assert exact.rounded(x, np) is x


# A product computed in the same jitted function as the double-float arithmetic that uses it
# (``x / n`` becomes ``x * (1/n)`` in XLA): XLA copies it into each fusion that uses it and the
# backend may contract it with a TwoSum's subtraction into an FMA, which sees the unrounded
# product. Every result must describe the float32 value the function returns.
QUOTIENTS = [(24.0, 24.0), (100.0, 100.0), (1000.0, 1000.0), (7.0, 3.0), (1.0, 10.0)]


@pytest.mark.parametrize(("total", "n"), QUOTIENTS)
def test_operands_computed_in_the_same_jit_are_taken_as_rounded(total, n):
    def f(total):
        v = total / n  # n is a constant: XLA multiplies by its reciprocal
        zero = _p(jnp.zeros_like(v))
        one = _p(jnp.ones_like(v))
        return v, {
            "add_float": exact.add_float(zero, v),
            "add": exact.add(zero, _p(v)),
            "mul": exact.mul(_p(v), one),
            "div": exact.div(_p(v), one),
            "two_prod": exact.mul(_p(v), _p(v)),
        }

    v, out = jax.jit(f)(jnp.float32(total))
    v64 = float(v)
    for name in ("add_float", "add", "mul", "div"):
        assert float(exact.to_host(out[name])) == v64, name
        assert float(out[name].lo) == 0.0, name
    assert abs(float(exact.to_host(out["two_prod"])) - v64 * v64) <= 2**-46 * v64 * v64
