"""Ranking task metrics against scikit-learn's NDCG and a reference MRR."""

from __future__ import annotations

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
