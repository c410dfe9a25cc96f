"""The NaN policy in one place: validation, the counter mode, finiteness, masking."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metricskit as mk
from metricskit import builtin, exact


def test_validation_names_the_owner_and_the_choices():
    assert builtin.check_policy("propagate", "x") == "propagate"
    with pytest.raises(ValueError, match=r"key 'loss'.*'ignore'.*'propagate'.*'skip'"):
        builtin.check_policy("ignore", "key 'loss'")


def test_skip_adds_the_counter_once():
    assert builtin.policy_modes(("mean",), skip=True) == ("mean", "nonfinite")
    assert builtin.policy_modes(("mean", "nonfinite"), skip=True) == ("mean", "nonfinite")
    assert builtin.policy_modes(("mean",), skip=False) == ("mean",)


def test_finiteness_of_every_input_kind():
    assert bool(builtin.finite(jnp.array([1.0, 2.0]), 1))
    assert not bool(builtin.finite(jnp.array([1.0, jnp.nan]), 1))
    assert not bool(builtin.finite(1.0, jnp.inf))
    assert bool(builtin.finite(jnp.int32(3), jnp.int32(1)))
    pair = jax.tree.map(jnp.asarray, exact.split_float(np.array([np.inf]))[0])
    assert not bool(builtin.finite(pair, 1))
    assert bool(builtin.finite(exact.as_words(jnp.int32(2)), 1))


def test_every_metric_but_the_counter_is_masked():
    assert builtin.masked(mk.MeanMetric) and builtin.masked(mk.NoReduceMetric)
    assert not builtin.masked(mk.NonFiniteMetric)


def test_keep_rows_selects_per_key():
    new = mk.MeanMetric.empty(mk.Spec((), "float32"), mk.Spec((), "int32"))
    new = jax.tree.map(lambda x: jnp.stack([x + 1, x + 2]), new)
    old = jax.tree.map(jnp.zeros_like, new)
    kept = builtin.keep_rows(jnp.array([True, False]), new, old)
    assert float(kept.total.hi[0]) == 0.0 and float(kept.total.hi[1]) == 2.0
