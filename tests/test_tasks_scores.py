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


def _ece_reference(p, y, bins=15):
    p = np.asarray(p, np.float64)
    confidence, correct = p.max(-1), p.argmax(-1) == y
    b = np.clip((confidence.astype(np.float32) * bins).astype(int), 0, bins - 1)
    n = np.bincount(b, minlength=bins)
    gap = np.abs(
        np.bincount(b, correct, minlength=bins) - np.bincount(b, confidence, minlength=bins)
    )
    return float(np.sum(gap) / n.sum())


def test_calibration_sums_are_exact_in_one_large_batch_and_under_any_split(rng):
    """Per-bin counts were float32 scatter-adds: 2^20 confident samples reported 1.53e-3 for
    3e-5, 2^24 + 4096 samples NaN. Counts are exact and confidence sums nearly so."""
    n = 2**20
    confidence = rng.uniform(0.9, 1.0, n).astype(np.float32)
    p = np.stack([confidence, 1 - confidence], -1)
    y = (rng.random(n) > confidence).astype(np.int32)
    want = _ece_reference(p, y)
    whole = mk.MetricStore().update({"e": mk.tasks.calibration_error(jnp.asarray(p), y)})
    assert whole.compute()["e"] == pytest.approx(want, rel=1e-10, abs=1e-15)  # was 50x off
    update = jax.jit(lambda s, p, y: s.update({"e": mk.tasks.calibration_error(p, y)}))
    cuts = np.sort(rng.choice(np.arange(1, 211), 4, replace=False))
    small, store = slice(0, 211), mk.MetricStore()
    for part in np.split(np.arange(211), cuts):
        store = update(store, jnp.asarray(p[part]), jnp.asarray(y[part]))
    want = _ece_reference(p[small], y[small])
    assert store.compute()["e"] == pytest.approx(want, rel=1e-12, abs=1e-16)
    many = 2**24 + 4096  # every sample correct at confidence 0.95
    p = jnp.broadcast_to(jnp.array([0.95, 0.05], jnp.float32), (many, 2))
    host = mk.MetricStore().update({"e": mk.tasks.calibration_error(p, jnp.zeros(many, int))})
    assert host.compute()["e"] == pytest.approx(1 - np.float64(np.float32(0.95)), rel=1e-12)


def test_probabilities_outside_0_1_under_jit_report_nan_never_a_plausible_number():
    """Eagerly a ValueError; under jit (values unknown at trace time) the key is NaN, and
    calibration (float statistics) follows the store's NaN policy."""
    scores, labels = jnp.array([1.5, 0.2, 0.7]), jnp.array([1, 0, 1])
    probs = jnp.array([[1.5, -0.5], [0.3, 0.7]])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        mk.tasks.roc_auc(scores, labels)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        mk.tasks.calibration_error(probs, jnp.array([0, 1]))

    @jax.jit
    def step(store, scores, probs):
        return store.update({
            "auc": mk.tasks.roc_auc(scores, labels),
            "ap": mk.tasks.average_precision(scores, labels),
            "ece": mk.tasks.calibration_error(probs, jnp.array([0, 1])),
        })  # fmt: skip

    host = step(mk.MetricStore(), scores, probs).compute()
    assert all(np.isnan(host[k]) for k in ("auc", "ap", "ece"))
    skip = step(mk.MetricStore(nan_policy="skip"), scores, probs)
    good = jnp.array([[0.9, 0.1], [0.3, 0.7]])
    skip = step(skip, scores.at[0].set(1.0), good).compute()
    assert skip["ece_nonfinite"] == 1
    assert skip["ece"] == pytest.approx(_ece_reference(np.asarray(good), np.array([0, 1])))
