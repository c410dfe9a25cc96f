"""Language-modelling task metrics against float64 references; multiple choice."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metricskit as mk


def _nll64(logits, targets):
    z = logits.astype(np.float64)
    logp = z - z.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    return -np.take_along_axis(logp, targets[..., None], -1)[..., 0]


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_perplexity_bits_and_token_accuracy_with_padding(use_jit, rng):
    logits = rng.normal(size=(3, 4, 8, 11)).astype(np.float32)
    targets = rng.integers(0, 11, size=(3, 4, 8))
    mask = rng.random((3, 4, 8)) < 0.8

    def update(store, lg, t, m):
        return store.update(
            {
                "ppl": mk.tasks.perplexity(lg, t, mask=m),
                "bpt": mk.tasks.bits_per_token(lg, t, mask=m),
                "bpb": mk.tasks.bits_per_byte(lg, t, 3 * jnp.sum(m), mask=m),
                "acc": mk.tasks.token_accuracy(lg, t, mask=m),
            }
        )

    update = jax.jit(update) if use_jit else update
    store = mk.MetricStore()
    for i in range(3):
        store = update(store, logits[i], targets[i], mask[i])
    host = store.compute()
    nll = _nll64(logits, targets)[mask]
    assert host["ppl"] == pytest.approx(math.exp(nll.mean()), rel=1e-6)
    assert host["bpt"] == pytest.approx(nll.mean() / math.log(2), rel=1e-6)
    assert host["bpb"] == pytest.approx(nll.sum() / math.log(2) / (3 * mask.sum()), rel=1e-6)
    assert host["acc"] == np.mean(logits.argmax(-1)[mask] == targets[mask])


def test_perplexity_beyond_float32_range_is_finite():
    logits = jnp.full((1, 4, 2), -200.0).at[..., 0].set(200.0)  # target 1: nll = 400 nats
    host = mk.MetricStore().update({"ppl": mk.tasks.perplexity(logits, jnp.ones((1, 4), int))})
    assert host.compute()["ppl"] == pytest.approx(math.exp(400.0), rel=1e-6)  # float32: inf


def test_sequence_log_likelihoods_feed_multiple_choice_accuracy(rng):
    logits = rng.normal(size=(12, 6, 7)).astype(np.float32)
    targets = rng.integers(0, 7, size=(12, 6))
    lengths = rng.integers(2, 7, size=12)
    mask = np.arange(6)[None, :] < lengths[:, None]
    aggregated = {}
    for lo in range(0, 12, 5):  # a smaller last batch
        step = mk.MetricStore().update(
            {
                "ll": mk.tasks.sequence_log_likelihood(
                    logits[lo : lo + 5], targets[lo : lo + 5], mask=mask[lo : lo + 5]
                )
            }
        )
        aggregated = mk.aggregate_metrics(aggregated, step)
    ll, n = mk.get_metrics(aggregated)[1]["ll_single_noreduce_wcount"]
    want = -(_nll64(logits, targets) * mask).sum(-1)
    np.testing.assert_allclose(ll, want, rtol=1e-5)
    np.testing.assert_array_equal(n, lengths)
    answers = np.array([0, 1, 2, 0])
    choices = want.reshape(4, 3)
    expect = np.mean(choices.argmax(-1) == answers)
    assert mk.tasks.multiple_choice_accuracy(ll, n, answers, choices=3) == expect
    normalized = np.mean((choices / lengths.reshape(4, 3)).argmax(-1) == answers)
    assert (
        mk.tasks.multiple_choice_accuracy(ll, n, answers, choices=3, normalize=True) == normalized
    )
