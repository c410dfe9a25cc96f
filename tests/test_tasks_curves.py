"""Exact AUROC / average precision on the host: scikit-learn's numbers from per-sample scores
aggregated over evaluation batches, ties, masks and one-class data."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

import metricskit as mk


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_scored_samples_over_batches_give_scikit_learns_curves(use_jit, ties, rng):
    n = 300
    scores = rng.beta(2.0, 2.0, size=n).astype(np.float32)
    if ties:
        scores = np.round(scores * 6) / 6
    labels = (rng.random(n) < scores).astype(np.int64)
    mask = rng.random(n) < 0.8

    def step(s, y, m):
        return mk.MetricStore().update({"val/auc": mk.tasks.scored_samples(s, y, mask=m)})

    step = jax.jit(step) if use_jit else step
    evaluation: dict = {}
    for lo in range(0, n, 128):  # a smaller last batch
        sl = slice(lo, lo + 128)
        batch = step(jnp.asarray(scores[sl]), jnp.asarray(labels[sl]), jnp.asarray(mask[sl]))
        evaluation = mk.aggregate_metrics(evaluation, batch)
    s, y = mk.get_metrics(evaluation)[1]["val/auc_single_noreduce_wcount"]
    assert s.shape == y.shape == (n,)
    np.testing.assert_array_equal(y, np.where(mask, labels, -1))
    want_auc = skm.roc_auc_score(labels[mask], scores[mask])
    want_ap = skm.average_precision_score(labels[mask], scores[mask])
    assert mk.tasks.exact_roc_auc(s, y) == pytest.approx(want_auc, rel=1e-12)
    assert mk.tasks.exact_average_precision(s, y) == pytest.approx(want_ap, rel=1e-12)


def test_all_tied_scores_and_one_class_data():
    y = np.array([0, 1, 0, 1, 1])
    same = np.full(5, 0.3)
    assert mk.tasks.exact_roc_auc(same, y) == 0.5 == skm.roc_auc_score(y, same)
    assert mk.tasks.exact_average_precision(same, y) == pytest.approx(
        skm.average_precision_score(y, same)
    )
    assert np.isnan(mk.tasks.exact_roc_auc([0.1, 0.2], [1, 1]))  # one class: undefined
    assert np.isnan(mk.tasks.exact_average_precision([0.1, 0.2], [0, 0]))  # no positives
    assert np.isnan(mk.tasks.exact_roc_auc([0.1, 0.2], [-1, -1]))  # everything masked


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="3 scores but 2 labels"):
        mk.tasks.exact_roc_auc([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        mk.tasks.exact_average_precision([0.1, float("nan")], [0, 1])
