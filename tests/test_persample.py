"""The per-sample modes: the latest step's values, kept exactly and appended across batches."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import X64

import metricskit as mk
from metricskit import exact
from metricskit.metric import per_sample


def test_they_are_per_sample_and_hold_the_latest_step_only():
    for cls in (mk.NoReduceMetric, mk.NoReduceWCountMetric):
        assert per_sample(cls) and not cls.accumulates


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_single_noreduce_keeps_values_and_sums_per_sample_counts(use_jit):
    m = mk.NoReduceMetric.empty(mk.Spec((3,), "float32"), mk.Spec((3,), "int32"))
    update = jax.jit(mk.NoReduceMetric.update) if use_jit else mk.NoReduceMetric.update
    m = update(m, jnp.array([1.0, 2.0, 3.0]), jnp.array([1, 0, 4]))
    np.testing.assert_array_equal(m.compute(), [1.0, 2.0, 3.0])
    assert int(exact.to_host(m.count)) == 5 and not bool(m.is_empty())
    m = update(m, jnp.zeros(3), jnp.zeros(3, jnp.int32))
    assert bool(m.is_empty())
    scalar = mk.NoReduceMetric.empty(mk.Spec((), "float32"), mk.Spec((), "int32"))
    assert scalar.update(jnp.float32(2.0), 1).compute().shape == (1,)  # 0-d kept as (1,)


def test_wide_values_are_kept_exactly():
    m = mk.NoReduceMetric.empty(mk.Spec((2,), "float64"), mk.Spec((), "int32"))
    value = exact.split_float(np.array([0.1, 1e20]))[0] if not X64 else jnp.array([0.1, 1e20])
    m = m.update(jax.tree.map(jnp.asarray, value), jnp.int32(2))
    got = exact.to_host(m.compute())
    assert got.dtype == np.float64 and abs(got[0] - 0.1) < 1e-16 and got[1] == pytest.approx(1e20)
    ints = mk.NoReduceMetric.empty(mk.Spec((2,), "int64"), mk.Spec((), "int32"))
    big = np.array([2**40 + 1, -3], np.int64)
    value = exact.split_int(big) if not X64 else jnp.asarray(big)
    np.testing.assert_array_equal(
        exact.to_host(ints.update(jax.tree.map(jnp.asarray, value), 1).compute()), big
    )


def test_wcount_broadcasts_and_is_empty_only_without_samples():
    m = mk.NoReduceWCountMetric.empty(mk.Spec((3,), "float32"), mk.Spec((), "int32"))
    values, counts = m.update(jnp.array([1.0, 2.0, 3.0]), jnp.int32(2)).compute()
    np.testing.assert_array_equal(values, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(counts, [2, 2, 2])
    assert not bool(m.is_empty())  # three zero counts: reported as arrays, as documented
    one = mk.NoReduceWCountMetric.empty(mk.Spec((), "float32"), mk.Spec((), "int32"))
    assert bool(one.is_empty())  # a single zero count: empty, as documented
    host = jax.device_get(m)
    none = host.replace(value=host.value[:0], count=host.count[:0])
    assert bool(none.is_empty())


def test_aggregate_concatenates_values_and_adds_counts():
    a = mk.NoReduceMetric.empty(mk.Spec((2,), "float32"), mk.Spec((), "int32"))
    a = a.update(jnp.array([1.0, 2.0]), 2)
    b = mk.NoReduceMetric.empty(mk.Spec((1,), "float32"), mk.Spec((), "int32")).update(
        jnp.array([3.0]), 1
    )
    both = a.aggregate(b)
    np.testing.assert_array_equal(both.compute(), [1.0, 2.0, 3.0])
    assert int(exact.to_host(both.count)) == 3
