"""Classification from scores: AUROC and average precision from histograms, calibration error.

Binary scores (probabilities of the positive class, in [0, 1]) fall into equal-width bins;
the statistics are the per-bin counts of negatives and positives, summed exactly. The reported
AUROC and average precision are exactly scikit-learn's for the scores rounded to their bins,
and :func:`binned_roc_auc` / :func:`binned_average_precision` also give a bound on the
distance to the raw scores' value, computed from the same counts. For the exact values of
the raw scores, log them per sample and use :mod:`metricskit.tasks.curves` on the host.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from metricskit import exact
from metricskit.compat import Tracer
from metricskit.metric import ConfiguredMetric
from metricskit.tasks.batchsums import as_pairs, segment_total
from metricskit.tasks.classification import inputs
from metricskit.tasks.modes import SumsMetric, counted, step_item

__all__ = [
    "BinnedAveragePrecision",
    "BinnedRocAuc",
    "CalibrationError",
    "average_precision",
    "binned_average_precision",
    "binned_roc_auc",
    "calibration_error",
    "roc_auc",
    "score_histograms",
]


def score_histograms(scores: Any, labels: Any, bins: int, mask: Any = None) -> jax.Array:
    """Counts of negative and positive samples per score bin, ``(2, bins)`` int32.

    Scores are probabilities in [0, 1]; bin ``b`` holds ``[b / bins, (b + 1) / bins)``, the
    last bin includes 1. A NaN score, or one outside [0, 1], falls in no bin (so the finished
    value is NaN: the counted samples outnumber the binned ones).
    """
    s = jnp.asarray(scores, jnp.float32).reshape(-1)
    y = jnp.asarray(labels).reshape(-1).astype(bool)
    which = counted(mask, np.shape(scores)).reshape(-1) & ~invalid_probabilities(s)
    b = jnp.clip((jnp.nan_to_num(s) * bins).astype(jnp.int32), 0, bins - 1)
    return jnp.stack(
        [
            jnp.zeros(bins, jnp.int32).at[b].add((~y & which).astype(jnp.int32)),
            jnp.zeros(bins, jnp.int32).at[b].add((y & which).astype(jnp.int32)),
        ]
    )


def binned_roc_auc(histograms: np.ndarray) -> tuple[float, float]:
    """AUROC of score histograms, and the bound on its error.

    Samples in different bins are ordered correctly; a (positive, negative) pair in one bin
    counts as a tie (1/2), as scikit-learn counts tied scores. So the value is exactly
    scikit-learn's AUROC of the scores rounded to their bins, and it differs from the AUROC
    of the raw scores by at most ``sum_b pos_b * neg_b / (2 * P * N)`` (the share of pairs that
    share a bin, halved), which is returned as the bound.

    Args:
        histograms: ``(2, bins)`` counts of negatives and positives.

    Returns:
        ``(auroc, bound)``; ``(nan, nan)`` with no positives or no negatives.
    """
    neg, pos = (np.asarray(h, np.float64) for h in histograms)
    n, p = neg.sum(), pos.sum()
    if n == 0 or p == 0:
        return float("nan"), float("nan")
    below = np.cumsum(neg) - neg
    auc = float(np.sum(pos * (below + 0.5 * neg)) / (p * n))
    return auc, float(np.sum(pos * neg) / (2 * p * n))


def binned_average_precision(histograms: np.ndarray) -> tuple[float, float]:
    """Average precision of score histograms, and the bound on its error.

    The value is scikit-learn's ``average_precision_score`` of the scores rounded to their
    bins (thresholds at bin edges, tied scores grouped as scikit-learn groups them). Whatever
    the raw scores inside a bin, ties included, the raw AP lies between the AP with the bin's
    negatives ranked first and its positives after them one by one (the lowest), and the AP
    with its positives ranked first as one tie group (the highest: scikit-learn gives a tie
    group the precision at its end, which grouping positives can only raise); the bound is
    the farther of the two from the value.

    Returns:
        ``(ap, bound)``; ``(nan, nan)`` with no positives.
    """
    neg, pos = (np.asarray(h, np.float64)[::-1] for h in histograms)  # high scores first
    p = pos.sum()
    if p == 0:
        return float("nan"), float("nan")
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
    ap = float(np.sum(pos / p * precision))
    best = worst = 0.0
    tp_before, fp_before = 0.0, 0.0
    for b in range(len(pos)):
        k = np.arange(1, pos[b] + 1)
        if pos[b]:
            top = tp_before + pos[b]  # the bin's positives first, as one tie group
            best += float(pos[b] * top / (top + fp_before))
            worst += float(np.sum((tp_before + k) / (tp_before + k + fp_before + neg[b])))
        tp_before, fp_before = tp_before + pos[b], fp_before + neg[b]
    return ap, max(best / p - ap, ap - worst / p, 0.0)


def _auroc_finish(sums: np.ndarray, count: np.ndarray) -> float:
    # a counted sample in no bin had a NaN score: NaN, as float64 arithmetic would carry it
    return binned_roc_auc(sums)[0] if np.sum(sums) == count else float("nan")


def _ap_finish(sums: np.ndarray, count: np.ndarray) -> float:
    return binned_average_precision(sums)[0] if np.sum(sums) == count else float("nan")


def _check_bins(bins: int) -> None:
    if not (isinstance(bins, int | np.integer) and bins >= 1):
        raise ValueError(f"bins={bins!r} must be a positive int")


def _check_probabilities(name: str, x: jax.Array, mask: Any) -> None:
    """Probabilities in [0, 1] (NaN allowed: it propagates), when concrete."""
    if isinstance(x, Tracer) or isinstance(mask, Tracer):
        return
    values = np.asarray(x)[counted(mask, x.shape, np)]
    out = values[(values < 0) | (values > 1)]
    if out.size:
        raise ValueError(
            f"{name} must be probabilities in [0, 1], got {out[0].item()!r}: apply a sigmoid or "
            "softmax to logits first"
        )


def _score_item(
    scores: Any, labels: Any, bins: int, mask: Any, mode: ConfiguredMetric
) -> dict[str, Any]:
    _check_bins(bins)
    kind, s, _ = inputs(scores, labels, 2, mask)
    if kind != "binary":
        raise ValueError(
            f"scores of shape {s.shape} with labels of shape {np.shape(labels)}: pass (N,) "
            "probabilities of the positive class and (N,) labels in {0, 1}"
        )
    _check_probabilities("scores", s, mask)
    which = jnp.sum(counted(mask, s.shape), dtype=jnp.int32)
    return step_item(score_histograms(s, labels, bins, mask), which, mode)


def roc_auc(scores: Any, labels: Any, *, bins: int = 1024, mask: Any = None) -> dict[str, Any]:
    """Binary AUROC from score histograms (exact for the binned scores; see the bound).

    Args:
        scores: ``(N,)`` probabilities of the positive class (in [0, 1]).
        labels: ``(N,)`` in {0, 1}.
        bins: Histogram bins; the error bound (:func:`binned_roc_auc`) shrinks with more.
        mask: ``(N,)`` booleans: which samples count.

    Returns:
        A step item. For the exact AUROC of the raw scores, log them with the per-sample
        ``single_noreduce_wcount`` mode and call :func:`metricskit.tasks.exact_roc_auc`.
        A counted sample with a NaN score, or (under ``jit``, where values cannot be checked)
        a score outside [0, 1], falls in no bin and makes the key report NaN from then on
        (its statistics are integer counts, so ``nan_policy="skip"`` does not skip such a
        step: the number of such samples is the count less the binned samples).

    Raises:
        ValueError: Eagerly, for scores outside [0, 1] or labels outside {0, 1}; for
            ``bins`` that is not a positive int, or inputs of other shapes.
    """
    return _score_item(scores, labels, bins, mask, _ROC_AUC)


def average_precision(
    scores: Any, labels: Any, *, bins: int = 1024, mask: Any = None
) -> dict[str, Any]:
    """Binary average precision (area under the precision-recall curve) from histograms.

    Arguments as :func:`roc_auc`; the bound is :func:`binned_average_precision`'s.
    """
    return _score_item(scores, labels, bins, mask, _AP)


def _ece_finish(sums: np.ndarray, count: np.ndarray) -> float:
    n, confidence, correct = np.asarray(sums, np.float64)
    total = n.sum()
    if total != count:  # a counted sample in no bin: NaN probabilities (metricskit 0.3)
        return float("nan")
    if total == 0:
        return 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.where(n > 0, np.abs(correct - confidence) / n, 0.0)
    return float(np.sum(n / total * gap))


def calibration_error(
    probabilities: Any, labels: Any, *, bins: int = 15, mask: Any = None
) -> dict[str, Any]:
    """Expected calibration error: ``sum_b (n_b / N) |accuracy_b - confidence_b|``.

    Samples are binned by their confidence (the top probability), in ``bins`` equal-width bins
    (Guo et al., "On calibration of modern neural networks", 2017). Each bin's sample and
    correct counts are exact at any batch size, and its sum of confidences is nearly exact
    (:func:`~metricskit.tasks.batchsums.segment_total`: within about ``2^-43`` per bin,
    whatever the batch size or split), so the reported error is within about ``1e-12`` of
    the float64 value on all the samples.

    Args:
        probabilities: ``(..., C)`` class probabilities (any number of sample axes).
        labels: Class ids of the sample axes' shape.
        bins: Confidence bins.
        mask: Booleans of the sample axes (or of their leading ones): which samples count.

    Returns:
        A step item: per bin the count, the sum of confidences and the number correct. A
        counted sample with a NaN probability, or (under ``jit``, where values cannot be
        checked) a probability outside [0, 1], makes the step's statistics NaN: the key
        reports NaN, or, with ``nan_policy="skip"``, the step is skipped and counted in
        ``key_nonfinite``. Eager calls refuse probabilities outside [0, 1] (``ValueError``).
    """
    _check_bins(bins)
    kind, p, y = inputs(probabilities, labels, None, mask)
    if kind != "scores":
        raise ValueError(
            f"probabilities of shape {p.shape} with labels of shape {y.shape}: pass (..., C) "
            "class probabilities and class ids of the leading shape"
        )
    _check_probabilities("probabilities", p, mask)
    p = p.astype(jnp.float32)
    confidence = jnp.max(p, axis=-1).reshape(-1)
    correct = (jnp.argmax(p, axis=-1) == y).reshape(-1)
    counts = counted(mask, y.shape).reshape(-1)
    bad = counts & jnp.any(invalid_probabilities(p), axis=-1).reshape(-1)
    which = counts & ~bad
    b = jnp.clip((jnp.where(which, confidence, 0.0) * bins).astype(jnp.int32), 0, bins - 1)
    sums, (n, hits) = segment_total(
        as_pairs(jnp.where(which, confidence, 0.0)), b, bins, which, which & correct
    )
    parts = (as_pairs(n), sums, as_pairs(hits))  # exact double-floats, summed exactly
    stats = exact.Pair(jnp.stack([q.hi for q in parts]), jnp.stack([q.lo for q in parts]))
    nan = jnp.any(bad)  # NaN statistics: the store's NaN policy decides (propagate or skip)
    stats = exact.Pair(jnp.where(nan, jnp.nan, stats.hi), stats.lo)
    return step_item(stats, jnp.sum(counts, dtype=jnp.int32), _ECE)


def invalid_probabilities(p: jax.Array) -> jax.Array:
    """Elementwise: NaN, or outside [0, 1] (what eager calls refuse, under ``jit``)."""
    return jnp.isnan(p) | (p < 0) | (p > 1)


class BinnedRocAuc(SumsMetric):
    """The log mode of :func:`roc_auc`: per-bin counts of negatives and positives."""

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        return _auroc_finish(sums, count)


class BinnedAveragePrecision(SumsMetric):
    """The log mode of :func:`average_precision`: per-bin counts of negatives and positives."""

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        return _ap_finish(sums, count)


class CalibrationError(SumsMetric):
    """The log mode of :func:`calibration_error`: per-bin counts, confidences and hits."""

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        return _ece_finish(sums, count)


_ROC_AUC, _AP = BinnedRocAuc.configure(), BinnedAveragePrecision.configure()
_ECE = CalibrationError.configure()
