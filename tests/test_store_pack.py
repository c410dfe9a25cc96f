"""Packing: host values stacked once, 64-bit values split exactly, default counts shared."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import X64

from metricskit import exact
from metricskit.store.layout import Layout
from metricskit.store.pack import decode, pack
from metricskit.store.parse import parse
from metricskit.store.plan import make_plan, step_signature


def _packed(step, modes=("mean",)):
    entries = parse(step, modes)
    return pack(entries, make_plan(Layout(), step_signature(entries)))


def test_host_values_stack_into_one_array_and_default_counts_are_shared():
    (values,), (counts,) = _packed({f"k{i}": np.float32(i) for i in range(5)})
    assert isinstance(values, np.ndarray) and values.shape == (5,) and values.dtype == np.float32
    assert not counts.flags.writeable and counts.tolist() == [1] * 5
    assert _packed({f"k{i}": np.float32(i) for i in range(5)})[1][0] is counts


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
    stacked = decode(values, spec)
    got = exact.to_host(stacked) if isinstance(stacked, exact.Pair) else np.asarray(stacked)
    np.testing.assert_array_equal(got, [1.0, 2.0])


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
