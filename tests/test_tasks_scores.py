"""Score-based classification metrics: binned AUROC / average precision within their stated
bounds (and exact for the binned scores), the exact host curves with ties, calibration error."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

import metricskit as mk

C = 4


@pytest.mark.parametrize("bins", [16, 256, 2048])
def test_binned_auroc_and_ap_are_within_their_stated_bounds(bins, rng):
    for trial in range(5):
        n = int(rng.integers(20, 400))
        scores = rng.beta(2.0, 2.0, size=n).astype(np.float32)
        y = (rng.random(n) < scores).astype(int)
        if trial == 4:
            scores = np.round(scores * 8) / 8  # many ties
        hist = np.asarray(mk.tasks.score_histograms(scores, y, bins))
        auc, auc_bound = mk.tasks.binned_roc_auc(hist)
        ap, ap_bound = mk.tasks.binned_average_precision(hist)
        assert abs(auc - skm.roc_auc_score(y, scores)) <= auc_bound + 1e-12
        assert abs(ap - skm.average_precision_score(y, scores)) <= ap_bound + 1e-12
        binned = np.minimum((scores * bins).astype(int), bins - 1)
        assert auc == pytest.approx(skm.roc_auc_score(y, binned), abs=1e-12)  # exact for bins
        assert ap == pytest.approx(skm.average_precision_score(y, binned), abs=1e-12)
        assert mk.tasks.exact_roc_auc(scores, y) == pytest.approx(skm.roc_auc_score(y, scores))
        assert mk.tasks.exact_average_precision(scores, y) == pytest.approx(
            skm.average_precision_score(y, scores)
        )
        host = (
            mk.MetricStore()
            .update(
                {
                    "auc": mk.tasks.roc_auc(scores, y, bins=bins),
                    "ap": mk.tasks.average_precision(scores, y, bins=bins),
                }
            )
            .compute()
        )
        assert (host["auc"], host["ap"]) == (auc, ap)


def test_ap_bound_holds_with_tied_raw_scores(rng):
    # scikit-learn gives a tie group the precision at its end, which can beat every strict
    # order within a bin: the bound must cover it (found by a newcomer's tests)
    s = np.array([0.1, 0.1, 0.0, 0.6, 0.5], np.float32)
    y = np.array([1, 1, 0, 1, 0])
    ap, bound = mk.tasks.binned_average_precision(np.asarray(mk.tasks.score_histograms(s, y, 4)))
    assert abs(ap - skm.average_precision_score(y, s)) <= bound + 1e-12
    for _ in range(3000):
        n = int(rng.integers(2, 12))
        s = rng.integers(0, 5, size=n).astype(np.float32) / 4  # heavy ties
        y = rng.integers(0, 2, size=n)
        if not y.any():
            continue
        bins = int(rng.integers(1, 6))
        b = np.minimum((s * bins).astype(int), bins - 1)  # score_histograms' bins, in NumPy
        hist = np.stack([np.bincount(b[y == c], minlength=bins) for c in (0, 1)])
        ap, bound = mk.tasks.binned_average_precision(hist)
        assert abs(ap - skm.average_precision_score(y, s)) <= bound + 1e-12, (s, y, bins)


def test_calibration_error_against_a_float64_reference(rng):
    probs = np.asarray(jax.nn.softmax(jnp.asarray(rng.normal(size=(300, C)) * 2), -1))
    labels = rng.integers(0, C, size=300)
    host = mk.MetricStore().update({"ece": mk.tasks.calibration_error(probs, labels, bins=10)})
    confidence, pred = probs.max(-1), probs.argmax(-1)
    b = np.minimum((confidence * 10).astype(int), 9)
    want = sum(
        np.mean(b == i) * abs(np.mean(pred[b == i] == labels[b == i]) - confidence[b == i].mean())
        for i in range(10)
        if np.any(b == i)
    )
    assert host.compute()["ece"] == pytest.approx(want, rel=1e-6)
