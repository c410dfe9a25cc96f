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


def _ppl_step(store, logits, targets, mask):
    return store.update(
        {
            "ppl": mk.tasks.perplexity(logits, targets, mask=mask),
            "bpb": mk.tasks.bits_per_byte(logits, targets, jnp.int32(7), mask=mask),
            "acc": mk.tasks.token_accuracy(logits, targets, mask=mask),
            "ll": mk.tasks.sequence_log_likelihood(logits, targets, mask=mask),
        }
    )


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("padding", [-100, -1, 5, 0])
def test_padding_ids_under_the_mask_change_nothing(padding, use_jit, rng):
    logits = rng.normal(size=(2, 6, 5)).astype(np.float32)
    targets = rng.integers(0, 5, size=(2, 6))
    mask = np.arange(6)[None, :] < np.array([[4], [6]])
    padded = np.where(mask, targets, padding)
    step = jax.jit(_ppl_step) if use_jit else _ppl_step
    got = step(mk.MetricStore(), logits, padded, mask).compute()
    want = step(mk.MetricStore(), logits, targets, mask).compute()
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(want[key]), err_msg=key)
    nll = _nll64(logits, targets)[mask]
    assert got["ppl"] == pytest.approx(math.exp(nll.mean()), rel=1e-6)


@pytest.mark.parametrize("bad", [5, -1, -100])
def test_unmasked_ids_out_of_range_are_errors_eagerly_and_nan_under_jit(bad):
    logits = jnp.zeros((1, 3, 5))
    targets = jnp.array([[0, bad, 2]])
    for fn in (mk.tasks.perplexity, mk.tasks.bits_per_token, mk.tasks.token_accuracy):
        with pytest.raises(ValueError, match=rf"token id {bad} at position \(0, 1\).*\[0, 5\)"):
            fn(logits, targets)
        with pytest.raises(ValueError, match=rf"token id {bad}"):  # masked elsewhere only
            fn(logits, targets, mask=jnp.array([[False, True, True]]))
    for fn in (mk.tasks.token_nll, mk.tasks.sequence_log_likelihood):
        with pytest.raises(ValueError, match=rf"token id {bad}"):
            fn(logits, targets)
    jitted = jax.jit(lambda t: _ppl_step(mk.MetricStore(), logits, t, None))(targets).compute()
    assert np.isnan(jitted["ppl"]) and np.isnan(jitted["bpb"])
    assert jitted["acc"] == 1 / 3  # uniform logits predict id 0: only the first is right
    assert np.isnan(jax.jit(mk.tasks.token_nll)(logits, targets)[0, 1])


def test_num_bytes_must_be_a_non_negative_integer():
    logits, targets = jnp.zeros((1, 3, 4)), jnp.array([[0, 1, 2]])
    with pytest.raises(ValueError, match=r"num_bytes=-3.*non-negative"):
        mk.tasks.bits_per_byte(logits, targets, -3)
    for bad in (2.5, jnp.ones(2, jnp.int32)):
        with pytest.raises(ValueError, match=r"num_bytes has shape.*integer scalar"):
            mk.tasks.bits_per_byte(logits, targets, bad)

    def step(n):
        return mk.MetricStore().update({"bpb": mk.tasks.bits_per_byte(logits, targets, n)})

    assert np.isnan(jax.jit(step)(jnp.int32(-3)).compute()["bpb"])
    assert jax.jit(step)(jnp.int32(3)).compute()["bpb"] == pytest.approx(2.0, rel=1e-6)


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_shapes_are_checked(use_jit):
    functions = (
        mk.tasks.perplexity,
        mk.tasks.bits_per_token,
        mk.tasks.token_accuracy,
        mk.tasks.sequence_log_likelihood,
        mk.tasks.token_nll,
    )
    for fn in functions:
        call = jax.jit(fn) if use_jit else fn
        with pytest.raises(ValueError, match=r"logits have shape \(3, 4\) and targets \(3,\)"):
            call(jnp.zeros((3, 4)), jnp.zeros(3, jnp.int32))
        with pytest.raises(ValueError, match=r"\(2, 3, 4\) and targets \(2, 2\).*\(2, 3\)"):
            call(jnp.zeros((2, 3, 4)), jnp.zeros((2, 2), jnp.int32))
        with pytest.raises(ValueError, match=r"targets have dtype float(32|64).*integer"):
            call(jnp.zeros((2, 3, 4)), jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"mask has shape \(3,\).*\(2, 3\)"):
        mk.tasks.perplexity(jnp.zeros((2, 3, 4)), jnp.zeros((2, 3), jnp.int32), mask=np.ones(3))


def test_one_large_batch_sums_exactly(rng):
    logits = rng.normal(size=(64, 256, 8)).astype(np.float32)
    targets = rng.integers(0, 8, size=(64, 256))
    host = mk.MetricStore().update({"bpt": mk.tasks.bits_per_token(logits, targets)}).compute()
    per_token = np.asarray(mk.tasks.token_nll(logits, targets), np.float64)  # float32 values
    assert host["bpt"] == pytest.approx(per_token.mean() / math.log(2), rel=1e-13)


def test_multiple_choice_checks_its_arguments():
    mca = mk.tasks.multiple_choice_accuracy
    with pytest.raises(ValueError, match=r"\(4,\).*\(4,\).*answers \(1,\).*choices=2.*\(2,\)"):
        mca([-1, -3, -2, -1], [1] * 4, [0], choices=2)
    with pytest.raises(ValueError, match=r"lengths \(3,\)"):
        mca([-1, -3, -2, -1], [1] * 3, [0, 1], choices=2)
    for bad in ([0, 2], [-1, 0]):
        with pytest.raises(ValueError, match=rf"answers hold \[{bad[0] if bad[0] else bad[1]}\]"):
            mca([-1, -3, -2, -1], [1] * 4, bad, choices=2)
    with pytest.raises(ValueError, match=r"answers hold.*float64.*int in \[0, 2\)"):
        mca([-1, -3, -2, -1], [1] * 4, [0.0, 1.0], choices=2)
    for choices in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=rf"choices={choices!r}.*int >= 1"):
            mca([-1.0], [1], [0], choices=choices)
    with pytest.raises(ValueError, match="answers is empty"):
        mca([], [], [], choices=2)
    with pytest.raises(ValueError, match=r"lengths hold 0.*normalize=True"):
        mca([-1, -3], [0, 1], [0], choices=2, normalize=True)
    assert mca([-1.0, -3.0, -2.0, -1.0], [1] * 4, [0, 1], choices=2) == 1.0
    assert mca([-5.0], [1], [0], choices=1) == 1.0


def test_bits_per_byte_takes_a_python_byte_count_inside_jit():
    # the demo's pattern: num_bytes=targets.size, a Python int, inside the jitted step
    logits = jnp.zeros((2, 3, 4))
    targets = jnp.array([[0, 1, 2], [3, 0, 1]])

    @jax.jit
    def step(store, logits, targets):
        return store.update({"bpb": mk.tasks.bits_per_byte(logits, targets, targets.size)})

    host = step(mk.MetricStore(), logits, targets).compute()
    assert host["bpb"] == pytest.approx(2.0, rel=1e-7)  # uniform over 4: 2 bits (float32 logs)
    with pytest.raises(ValueError, match="num_bytes=-1"):
        jax.jit(lambda z, t: mk.tasks.bits_per_byte(z, t, -1)["value"])(logits, targets)


def test_a_minus_inf_logit_on_the_target_reports_inf_perplexity():
    # a vocabulary masked with -inf: the target's probability is 0, its NLL inf
    logits, targets = jnp.array([[[0.0, -jnp.inf, 0.0]]]), jnp.array([[1]])
    host = (
        mk.MetricStore()
        .update(
            {
                "ppl": mk.tasks.perplexity(logits, targets),
                "bits": mk.tasks.bits_per_token(logits, targets),
                "bpb": mk.tasks.bits_per_byte(logits, targets, 3),
            }
        )
        .compute()
    )
    assert host == {"bits": math.inf, "bpb": math.inf, "ppl": math.inf}
