"""Packing a step's inputs, through MetricStore.update: stacked once, split exactly, no counts."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import X64

import metricskit as mk


def _inputs(store, step):
    """The host arrays that ``store.update(step)`` hands to the computation, as it is staged
    into a traced step (the state is traced, the step's host values are constants)."""
    return [np.asarray(c) for c in jax.make_jaxpr(lambda s: s.update(step))(store).consts]


def _mean_store(keys, example=0.0):
    return mk.MetricStore(default_log_modes=["mean"]).init(dict.fromkeys(keys, example))


def test_host_values_stack_into_one_array_and_default_counts_are_no_input():
    keys = [f"k{i}" for i in range(5)]
    store = _mean_store(keys, np.float32(0))
    step = {f"k{i}": np.float32(i) for i in range(5)}
    (values,) = _inputs(store, step)  # no counts: the computation makes the ones
    assert values.shape == (5,) and values.dtype == np.float32
    assert values.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    updated = store.update(step)
    assert [int(mk.exact.to_host(updated[k]["mean"].count)) for k in keys] == [1] * 5
    assert updated.compute() == {f"k{i}_mean": float(i) for i in range(5)}
    given = {"a": {"value": 1.0, "count": 1}, "b": {"value": 1.0, "count": 3}}
    counts = [c for c in _inputs(_mean_store("ab"), given) if c.dtype.kind == "i"]
    assert [c.tolist() for c in counts] == [[1, 3]]  # given counts are one stacked input
    assert _mean_store("ab").update(given).compute() == {"a_mean": 1.0, "b_mean": 1 / 3}


def test_64_bit_host_values_are_split_exactly():
    step = {"a": 0.1, "b": 1e10}
    inputs = _inputs(_mean_store("ab"), step)
    if X64:
        (values,) = inputs
        assert values.dtype == np.float64 and values.tolist() == [0.1, 1e10]
    else:  # two float32 words whose sum is the float64 value
        assert [x.dtype for x in inputs] == [np.float32, np.float32]
        joined = sum(x.astype(np.float64) for x in inputs)
        np.testing.assert_allclose(joined, [0.1, 1e10], rtol=2**-48)
    out = _mean_store("ab").update(step).compute()
    np.testing.assert_allclose([out["a_mean"], out["b_mean"]], [0.1, 1e10], rtol=2**-48)
    big = mk.MetricStore(default_log_modes=["mean"]).update({"a": np.int64(2**45 + 3)})
    assert int(mk.exact.to_host(big["a"]["mean"].total)) == 2**45 + 3
    assert big.compute() == {"a_mean": 2**45 + 3}


def test_device_values_are_passed_as_they_are_and_stacked_in_the_computation():
    step = {"a": jnp.float32(1.0), "b": np.float32(2.0)}
    store = _mean_store("ab", np.float32(0))
    device = [x for x in jax.make_jaxpr(lambda s: s.update(step))(store).consts]
    assert any(isinstance(x, jax.Array) and float(x) == 1.0 for x in device)  # not copied out
    assert store.update(step).compute() == {"a_mean": 1.0, "b_mean": 2.0}
    jitted = jax.jit(lambda s, a: s.update({"a": a, "b": np.float32(2.0)}))
    assert jitted(store, jnp.float32(1.0)).compute() == {"a_mean": 1.0, "b_mean": 2.0}
    for updated in (store.update(step), jitted(store, jnp.float32(1.0))):
        totals = [float(mk.exact.to_host(updated[k]["mean"].total)) for k in "ab"]
        assert totals == [1.0, 2.0]


def _conversions(jaxpr, dtype):
    """How many conversions from ``dtype`` ``jaxpr`` makes (at any depth)."""
    n = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "convert_element_type" and eqn.invars[0].aval.dtype == dtype:
            n += 1
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", None)
            if inner is not None:
                n += _conversions(getattr(inner, "jaxpr", inner), dtype)
    return n


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.int8])
def test_device_values_of_one_dtype_are_converted_once_after_stacking(dtype):
    # one conversion of the stacked values, with the narrow format's rounding kept
    keys = [f"k{i}" for i in range(4)]
    xs = [jnp.asarray(v, dtype) for v in [1.0, 3.0, 0.1, 100.0]]
    store = _mean_store(keys, jnp.asarray(0, dtype))

    def step(store, *xs):
        return store.update(dict(zip(keys, xs, strict=True)))

    assert _conversions(jax.make_jaxpr(step)(store, *xs).jaxpr, jnp.dtype(dtype)) == 1
    want = [float(np.asarray(x).astype(np.float32)) for x in xs]
    for updated in (step(store, *xs), jax.jit(step)(store, *xs)):
        totals = [float(mk.exact.to_host(updated[k]["mean"].total)) for k in keys]
        assert totals == want
        assert updated.compute() == {f"{k}_mean": w for k, w in zip(keys, want, strict=True)}


def test_integers_beyond_the_exact_range_name_the_key():
    big = np.uint64(2**63 + 5) if X64 else np.array([1, 2**62])
    store = mk.MetricStore(default_log_modes=["mean"])
    with pytest.raises(ValueError, match=r"'big'"):
        store.update({"fine": np.int64(1), "big": big})


def test_finite_values_beyond_float32_warn_once_naming_the_key(caplog):
    store = mk.MetricStore(default_log_modes=["mean"])
    with caplog.at_level(logging.WARNING, logger="metricskit"):
        store.update({"huge_once_packed": 1e39, "fine": 1.0})
        store.update({"huge_once_packed": 1e39})
    # with x64 on, float64 range is kept: nothing to warn about
    assert caplog.text.count("'huge_once_packed'") == (0 if X64 else 1)
    assert "'fine'" not in caplog.text
