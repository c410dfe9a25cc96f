"""The NaN policy in one place: validation, the counter mode, finiteness, masking."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metricskit as mk
from metricskit import exact, nan_policy


def test_validation_names_the_owner_and_the_choices():
    assert nan_policy.check("propagate", "x") == "propagate"
    with pytest.raises(ValueError, match=r"key 'loss'.*'ignore'.*'propagate'.*'skip'"):
        nan_policy.check("ignore", "key 'loss'")


def test_skip_adds_the_counter_once():
    assert nan_policy.modes(("mean",), skip=True) == ("mean", "nonfinite")
    assert nan_policy.modes(("mean", "nonfinite"), skip=True) == ("mean", "nonfinite")
    assert nan_policy.modes(("mean",), skip=False) == ("mean",)


def test_finiteness_of_every_input_kind():
    assert bool(nan_policy.finite(jnp.array([1.0, 2.0]), 1))
    assert not bool(nan_policy.finite(jnp.array([1.0, jnp.nan]), 1))
    assert not bool(nan_policy.finite(1.0, jnp.inf))
    assert bool(nan_policy.finite(jnp.int32(3), jnp.int32(1)))
    pair = jax.tree.map(jnp.asarray, exact.split_float(np.array([np.inf]))[0])
    assert not bool(nan_policy.finite(pair, 1))
    assert bool(nan_policy.finite(exact.as_words(jnp.int32(2)), 1))


def test_every_metric_but_the_counter_is_masked():
    assert nan_policy.masked(mk.MeanMetric) and nan_policy.masked(mk.NoReduceMetric)
    assert not nan_policy.masked(mk.NonFiniteMetric)


def test_keep_rows_selects_per_key():
    new = mk.MeanMetric.empty(mk.Spec((), "float32"), mk.Spec((), "int32"))
    new = jax.tree.map(lambda x: jnp.stack([x + 1, x + 2]), new)
    old = jax.tree.map(jnp.zeros_like, new)
    kept = nan_policy.keep_rows(jnp.array([True, False]), new, old)
    assert float(kept.total.hi[0]) == 0.0 and float(kept.total.hi[1]) == 2.0
