"""Packing: host values stacked once, 64-bit values split exactly, default counts made in the
kernel."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import X64

from metricskit import exact
from metricskit._engine.step import Layout, decode, make_plan, pack, parse, step_signature


def _packed(step, modes=("mean",)):
    entries = parse(step, modes)
    return pack(entries, make_plan(Layout(), step_signature(entries)))


def test_host_values_stack_into_one_array_and_default_counts_are_no_input():
    (values,), (counts,) = _packed({f"k{i}": np.float32(i) for i in range(5)})
    assert isinstance(values, np.ndarray) and values.shape == (5,) and values.dtype == np.float32
    assert counts is None  # nothing crosses to the device: decode makes the ones
    spec = parse({"k": 1.0}, ("mean",))[0].count_spec
    ones = decode(counts, spec, 5)
    assert ones.dtype == jnp.int32 and ones.tolist() == [1] * 5
    (_,), (given,) = _packed({"a": {"value": 1.0, "count": 1}, "b": {"value": 1.0, "count": 3}})
    assert given.tolist() == [1, 3]


def test_64_bit_host_values_are_split_exactly():
    (values,), _ = _packed({"a": 0.1, "b": 1e10})
    if X64:
        assert values.dtype == np.float64
    else:
        assert isinstance(values, exact.Pair)
        np.testing.assert_allclose(exact.to_host(values), [0.1, 1e10], rtol=2**-48)
    (ints,), _ = _packed({"a": np.int64(2**45 + 3)})
    assert int(exact.to_host(ints)[0] if isinstance(ints, exact.Words) else ints[0]) == 2**45 + 3


def test_device_values_pass_as_a_tuple_and_decode_stacks_them():
    (values,), _ = _packed({"a": jnp.float32(1.0), "b": np.float32(2.0)})
    assert isinstance(values, tuple) and isinstance(values[0], jax.Array)
    assert isinstance(values[1], np.ndarray)
    spec = parse({"b": np.float32(2.0)}, ("mean",))[0].value_spec
    stacked = decode(values, spec, 2)
    got = exact.to_host(stacked) if isinstance(stacked, exact.Pair) else np.asarray(stacked)
    np.testing.assert_array_equal(got, [1.0, 2.0])


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.int8])
def test_device_values_of_one_dtype_are_converted_once_after_stacking(dtype):
    # one conversion of the stacked values, with the narrow format's rounding kept
    xs = {f"k{i}": jnp.asarray(v, dtype) for i, v in enumerate([1.0, 3.0, 0.1, 100.0])}
    (values,), _ = _packed(xs)
    spec = parse({"k0": xs["k0"]}, ("mean",))[0].value_spec
    eager = decode(values, spec, 4)
    jitted = jax.jit(lambda v: decode(v, spec, 4))(values)
    want = np.array([np.asarray(x).astype(np.float32) for x in xs.values()])
    for got in (eager, jitted):
        host = exact.to_host(got) if isinstance(got, exact.Pair | exact.Words) else np.asarray(got)
        np.testing.assert_array_equal(host, want)


def test_integers_beyond_the_exact_range_name_the_key():
    big = np.uint64(2**63 + 5) if X64 else np.array([1, 2**62])
    with pytest.raises(ValueError, match=r"'big'"):
        _packed({"fine": np.int64(1), "big": big})


def test_finite_values_beyond_float32_warn_once_naming_the_key(caplog):
    with caplog.at_level(logging.WARNING, logger="metricskit"):
        _packed({"huge_once": 1e39, "fine": 1.0})
        _packed({"huge_once": 1e39})
    # with x64 on, float64 range is kept: nothing to warn about
    assert caplog.text.count("'huge_once'") == (0 if X64 else 1) and "'fine'" not in caplog.text
