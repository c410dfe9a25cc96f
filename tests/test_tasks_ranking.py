"""Ranking task metrics against scikit-learn's NDCG and a reference MRR."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

import metricskit as mk


def _mrr(scores, relevance):
    out = []
    for s, r in zip(scores, relevance, strict=True):
        ranked = r[np.argsort(-s, kind="stable")] > 0
        out.append(1.0 / (np.argmax(ranked) + 1) if ranked.any() else 0.0)
    return np.mean(out)


@pytest.mark.parametrize("k", [None, 1, 3, 10])
def test_ndcg_and_mrr_match_references(k, rng):
    scores = rng.normal(size=(30, 8))
    relevance = rng.integers(0, 4, size=(30, 8)) * (rng.random((30, 8)) < 0.4)
    store = mk.MetricStore()
    for lo in range(0, 30, 7):
        store = store.update(
            {
                "ndcg": mk.tasks.ndcg(scores[lo : lo + 7], relevance[lo : lo + 7], k=k),
                "mrr": mk.tasks.mrr(scores[lo : lo + 7], relevance[lo : lo + 7]),
            }
        )
    host = store.compute()
    assert host["ndcg"] == pytest.approx(skm.ndcg_score(relevance, scores, k=k), rel=1e-5)
    assert host["mrr"] == pytest.approx(_mrr(scores, relevance), rel=1e-6)


def test_masked_queries_do_not_count(rng):
    scores, relevance = rng.normal(size=(6, 5)), rng.integers(0, 2, size=(6, 5))
    mask = np.array([1, 0, 1, 1, 0, 1], bool)
    host = mk.MetricStore().update({"mrr": mk.tasks.mrr(scores, relevance, mask=mask)}).compute()
    assert host["mrr"] == pytest.approx(_mrr(scores[mask], relevance[mask]), rel=1e-6)


def _ndcg64(scores, relevance, k=None):
    """NDCG@k of one query in float64 (candidates ranked by score, ties by position)."""
    if not (relevance > 0).any():
        return 0.0
    k = len(scores) if k is None else min(k, len(scores))
    discount = 1.0 / np.log2(np.arange(k) + 2.0)
    dcg = (relevance[np.argsort(-scores, kind="stable")][:k] * discount).sum()
    return dcg / (np.sort(relevance)[::-1][:k] * discount).sum()


def _without_masked(fn, scores, relevance, mask, **kw):
    """The mean of ``fn`` over the queries with a candidate left, masked candidates removed."""
    out = [fn(s[m], r[m], **kw) for s, r, m in zip(scores, relevance, mask, strict=True) if m.any()]
    return np.mean(out)


def _mrr1(scores, relevance):
    return _mrr(scores[None], relevance[None])


def test_the_newcomers_candidate_mask():
    scores, relevance = jnp.array([[0.9, 0.5, 0.1]]), jnp.array([[1, 0, 1]])
    mask = jnp.array([[False, True, True]])
    host = (
        mk.MetricStore()
        .update(
            {
                "mrr": mk.tasks.mrr(scores, relevance, mask=mask),
                "ndcg": mk.tasks.ndcg(scores, relevance, mask=mask),
            }
        )
        .compute()
    )
    assert host["mrr"] == 0.5
    assert host["ndcg"] == pytest.approx(1 / np.log2(3), rel=1e-14)


@pytest.mark.parametrize(("k", "use_jit"), [(None, False), (1, True), (3, True)])
def test_candidate_masks_remove_candidates_and_empty_queries(k, use_jit, rng):
    scores = rng.normal(size=(40, 6)).astype(np.float32)
    relevance = rng.integers(0, 4, size=(40, 6)) * (rng.random((40, 6)) < 0.4)
    mask = rng.random((40, 6)) < 0.6
    mask[:3] = False  # queries whose candidates are all masked do not count

    def update(store, s, r, m):
        return store.update(
            {"mrr": mk.tasks.mrr(s, r, mask=m), "ndcg": mk.tasks.ndcg(s, r, k=k, mask=m)}
        )

    update = jax.jit(update) if use_jit else update
    store = mk.MetricStore()
    for lo in range(0, 40, 16):
        store = update(store, scores[lo : lo + 16], relevance[lo : lo + 16], mask[lo : lo + 16])
    host = store.compute()
    s64 = scores.astype(np.float64)
    assert host["mrr"] == pytest.approx(_without_masked(_mrr1, s64, relevance, mask), rel=1e-15)
    want = _without_masked(_ndcg64, s64, relevance, mask, k=k)
    assert host["ndcg"] == pytest.approx(want, rel=1e-12)
    # a (Q,) mask of the queries gives what a (Q, L) mask of all their candidates gives
    queries = mask.any(-1)
    by_query = update(mk.MetricStore(), scores, relevance, queries).compute()
    by_candidate = update(mk.MetricStore(), scores, relevance, np.repeat(queries[:, None], 6, 1))
    assert by_query == pytest.approx(by_candidate.compute(), rel=1e-15)


def test_unmasked_ndcg_is_exact_in_one_large_batch(rng):
    scores = rng.normal(size=(3000, 10)).astype(np.float32)
    relevance = rng.integers(0, 4, size=(3000, 10)) * (rng.random((3000, 10)) < 0.3)
    host = mk.MetricStore().update({"ndcg": mk.tasks.ndcg(scores, relevance, k=5)}).compute()
    s64 = scores.astype(np.float64)
    want = np.mean([_ndcg64(s, r, k=5) for s, r in zip(s64, relevance, strict=True)])
    assert host["ndcg"] == pytest.approx(want, rel=1e-12)
    assert want == pytest.approx(skm.ndcg_score(relevance, scores, k=5), rel=1e-12)


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_mrr_is_exact(use_jit):
    def update(store, s, r):
        return store.update({"mrr": mk.tasks.mrr(s, r)})

    update = jax.jit(update) if use_jit else update
    third = update(mk.MetricStore(), jnp.array([[0.9, 0.5, 0.1]]), jnp.array([[0, 0, 1]]))
    assert third.compute()["mrr"] == 1 / 3
    scores = jnp.array([[0.9, 0.5, 0.1, 0.0]] * 3)
    relevance = jnp.array([[0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    host = update(mk.MetricStore(), scores, relevance).compute()
    assert host["mrr"] == (1 / 3 + 1 / 4) / 3


def test_bad_k_and_mask_shapes_are_clear_errors():
    scores, relevance = jnp.zeros((2, 3)), jnp.ones((2, 3))
    for k in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=rf"k={k!r}.*positive int"):
            mk.tasks.ndcg(scores, relevance, k=k)
    for fn in (mk.tasks.mrr, mk.tasks.ndcg):
        for bad in (jnp.ones(3, bool), jnp.ones((2, 3, 1), bool), jnp.ones((3, 2), bool)):
            with pytest.raises(
                ValueError,
                match=rf"mask has shape {re.escape(str(bad.shape))}.*\(2,\) mask.*\(2, 3\) mask",
            ):
                fn(scores, relevance, mask=bad)
        with pytest.raises(ValueError, match=r"scores have shape \(2, 3\) and relevance \(2, 4\)"):
            fn(scores, jnp.ones((2, 4)))
        with pytest.raises(ValueError, match=r"scores have shape \(3,\)"):
            fn(jnp.zeros(3), jnp.ones(3))


def test_candidate_counts_are_fixed_per_key_for_mrr():
    store = mk.MetricStore().update({"mrr": mk.tasks.mrr(jnp.zeros((1, 3)), jnp.ones((1, 3)))})
    with pytest.raises(ValueError, match="shapes are fixed"):
        store.update({"mrr": mk.tasks.mrr(jnp.zeros((1, 4)), jnp.ones((1, 4)))})


def test_negative_gains_are_refused_eagerly_as_scikit_learn_does():
    scores, relevance = jnp.array([[1.0, 2.0]]), jnp.array([[-1, 2]])
    with pytest.raises(ValueError, match="ndcg: relevance holds negative gains"):
        mk.tasks.ndcg(scores, relevance)
    with pytest.raises(ValueError, match="negative"):
        skm.ndcg_score(np.asarray(relevance), np.asarray(scores))
    # a masked (padded) candidate may hold anything
    masked = mk.tasks.ndcg(scores, relevance, mask=jnp.array([[False, True]]))
    assert mk.MetricStore().update({"n": masked}).compute() == {"n": 1.0}


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("k", [None, 1, 3, 7])
def test_tied_scores_share_their_ranks_discounts_as_scikit_learn(k, use_jit, rng):
    """NDCG ordered tied scores by position (a constant scorer with the relevant item first
    scored 1.0); ties are averaged as scikit-learn's ndcg_score, whatever the listing order,
    and ignore_ties=True keeps the position order."""
    scores = rng.integers(0, 3, (6, 8)).astype(np.float32)  # many ties
    relevance = rng.integers(0, 4, (6, 8))
    mask = rng.random((6, 8)) < 0.8

    def step(store, s, r, m):
        return store.update({
            "ndcg": mk.tasks.ndcg(s, r, k=k),
            "reversed": mk.tasks.ndcg(s[:, ::-1], r[:, ::-1], k=k),
            "masked": mk.tasks.ndcg(s, r, k=k, mask=m),
            "position": mk.tasks.ndcg(s, r, k=k, ignore_ties=True),
        })  # fmt: skip

    step = jax.jit(step) if use_jit else step
    host = step(mk.MetricStore(), *map(jnp.asarray, (scores, relevance, mask))).compute()
    want = skm.ndcg_score(relevance, scores, k=k)
    np.testing.assert_allclose([host["ndcg"], host["reversed"]], want, rtol=1e-13)
    masked = [  # a masked candidate is not there at all
        skm.ndcg_score(r[m][None], s[m][None], k=k) if m.sum() > 1 else float(r[m].sum() > 0)
        for s, r, m in zip(scores, relevance, mask, strict=True)
        if m.any()
    ]
    np.testing.assert_allclose(host["masked"], np.mean(masked), rtol=1e-13)
    top = 8 if k is None else k
    discounts = 1 / np.log2(np.arange(top) + 2.0)
    per_query = []
    for s, r in zip(scores, relevance, strict=True):
        ideal = np.sort(r)[::-1][:top] @ discounts
        dcg = r[np.argsort(-s, kind="stable")][:top] @ discounts
        per_query.append(dcg / ideal if ideal else 0.0)
    np.testing.assert_allclose(host["position"], np.mean(per_query), rtol=1e-6)


def test_a_constant_scorer_gets_the_tie_average_in_any_order():
    scores, relevance = np.zeros((1, 4), np.float32), np.array([[1, 0, 0, 0]])
    want = skm.ndcg_score(relevance, scores)
    for r in (relevance, relevance[:, ::-1]):
        host = mk.MetricStore().update({"n": mk.tasks.ndcg(scores, r)}).compute()
        assert host["n"] == pytest.approx(want, rel=1e-14) and host["n"] < 0.7


def test_a_nan_score_or_a_negative_gain_under_jit_makes_ndcg_nan():
    @jax.jit
    def step(store, s, r):
        return store.update({"ndcg": mk.tasks.ndcg(s, r)})

    ok = jnp.array([[0.1, 0.2]]), jnp.array([[1, 0]])
    assert np.isnan(step(mk.MetricStore(), jnp.array([[0.1, jnp.nan]]), ok[1]).compute()["ndcg"])
    assert np.isnan(step(mk.MetricStore(), ok[0], jnp.array([[1, -1]])).compute()["ndcg"])
    eager = mk.MetricStore().update({"ndcg": mk.tasks.ndcg(jnp.array([[jnp.nan, 0.2]]), ok[1])})
    assert np.isnan(eager.compute()["ndcg"])
    skip = step(mk.MetricStore(nan_policy="skip"), ok[0], jnp.array([[1, -1]]))
    host = step(skip, *ok).compute()
    assert host["ndcg_nonfinite"] == 1
    assert host["ndcg"] == pytest.approx(skm.ndcg_score(np.asarray(ok[1]), np.asarray(ok[0])))
