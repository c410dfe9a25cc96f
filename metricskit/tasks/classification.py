"""Classification: accuracy, precision, recall, F-beta, confusion matrix, AUROC, AP, ECE.

Every function takes model outputs and labels of one batch (optionally a ``mask`` of the
samples that count) and returns a step item: sufficient statistics under a registered mode.
Put it under a key of a step dict: ``store.update({"val/f1": tasks.f1(logits, labels,
num_classes=10, average="macro")})``. Inputs:

- multiclass: ``predictions`` of shape ``(N, C)`` (logits, probabilities or scores; the
  predicted class is the argmax) or ``(N,)`` integer class ids, ``labels`` ``(N,)`` ints;
- binary: ``predictions`` ``(N,)`` floats (positive when above ``threshold``) and ``labels``
  ``(N,)`` in {0, 1};
- multilabel: ``predictions`` ``(N, L)`` floats (thresholded) and ``labels`` ``(N, L)`` in {0, 1}.

The statistics are integer counts (exact, summed as carried integers), and the reported
numbers are computed from them on the host in float64 with scikit-learn's formulas: the same
numbers scikit-learn gives on all the samples. Zero divisions give ``zero_division`` (0 by
default, as scikit-learn's default after its warning).
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from metricskit.tasks.modes import summing_mode

__all__ = [
    "accuracy",
    "average_precision",
    "calibration_error",
    "confusion_matrix",
    "f1",
    "fbeta",
    "precision",
    "recall",
    "roc_auc",
]

Average = Literal["binary", "micro", "macro", "weighted", "none"]


def _weights(mask: Any, shape: tuple[int, ...]) -> jax.Array:
    """The samples that count, broadcast to ``shape`` (all of them without a mask)."""
    if mask is None:
        return jnp.ones(shape, bool)
    mask = jnp.asarray(mask).astype(bool)
    return jnp.broadcast_to(mask.reshape(mask.shape + (1,) * (len(shape) - mask.ndim)), shape)


def _item(value: jax.Array, count: jax.Array, mode: str) -> dict[str, Any]:
    return {"value": value, "count": count, "log_modes": [mode]}


def accuracy(
    predictions: Any, labels: Any, *, mask: Any = None, top_k: int = 1, threshold: float = 0.5
) -> dict[str, Any]:
    """The fraction of correct predictions: ``mean`` of per-sample correctness.

    Args:
        predictions: ``(N, C)`` scores (multiclass; top-k), ``(N,)`` class ids, or ``(N,)``
            / ``(N, L)`` floats thresholded (binary, multilabel: each label one sample).
        labels: ``(N,)`` class ids, or ``(N,)`` / ``(N, L)`` in {0, 1}.
        mask: ``(N,)`` (or the labels' shape) booleans: which samples count (padding out).
        top_k: A multiclass sample is correct when its label is among the ``top_k`` scores.
        threshold: For float binary and multilabel predictions.

    Returns:
        A step item (reported as the key): correct predictions over counted samples, the
        correctly rounded quotient of exact counts. scikit-learn: ``accuracy_score``,
        ``top_k_accuracy_score``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> logits = jnp.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 2.0]])
        >>> step = {"acc": mk.tasks.accuracy(logits, jnp.array([0, 1, 1]))}
        >>> round(mk.MetricStore().update(step).compute()["acc"], 6)
        0.666667
    """
    p, y = jnp.asarray(predictions), jnp.asarray(labels)
    if p.ndim == y.ndim + 1:
        if top_k == 1:
            correct = jnp.argmax(p, axis=-1) == y
        else:
            _, best = jax.lax.top_k(p, top_k)
            correct = jnp.any(best == y[..., None], axis=-1)
    elif jnp.issubdtype(p.dtype, jnp.floating):
        correct = (p > threshold) == y.astype(bool)
    else:
        correct = p == y
    counted = _weights(mask, correct.shape)
    return _item(
        jnp.sum(correct & counted, dtype=jnp.int32),
        jnp.sum(counted, dtype=jnp.int32),
        "mean_nopostfix",
    )


def _predicted(p: jax.Array, y: jax.Array, num_classes: int, threshold: float) -> tuple[Any, Any]:
    """One-hot predictions and truths, ``(N, C)`` booleans."""
    if p.ndim == y.ndim + 1:  # multiclass scores
        return jax.nn.one_hot(jnp.argmax(p, -1), num_classes, dtype=bool), jax.nn.one_hot(
            y, num_classes, dtype=bool
        )
    if p.ndim == y.ndim == 2:  # multilabel
        pred = p > threshold if jnp.issubdtype(p.dtype, jnp.floating) else p.astype(bool)
        return pred, y.astype(bool)
    if jnp.issubdtype(p.dtype, jnp.floating) and num_classes == 2:  # binary scores
        pred = (p > threshold).astype(jnp.int32)
    else:  # class ids
        pred = p.astype(jnp.int32)
    return jax.nn.one_hot(pred, num_classes, dtype=bool), jax.nn.one_hot(y, num_classes, dtype=bool)


def class_counts(
    predictions: Any, labels: Any, num_classes: int, *, mask: Any = None, threshold: float = 0.5
) -> jax.Array:
    """Per class: true positives, false positives and false negatives, ``(3, C)`` int32.

    Args:
        predictions: As for :func:`precision`.
        labels: As for :func:`precision`.
        num_classes: ``C`` (2 for binary; the number of labels for multilabel).
        mask: ``(N,)`` booleans: which samples count.
        threshold: For float binary and multilabel predictions.

    Returns:
        The counts.
    """
    pred, true = _predicted(jnp.asarray(predictions), jnp.asarray(labels), num_classes, threshold)
    counted = _weights(mask, pred.shape)
    pred, true = pred & counted, true & counted
    return jnp.stack(
        [
            jnp.sum(pred & true, axis=0, dtype=jnp.int32),
            jnp.sum(pred & ~true, axis=0, dtype=jnp.int32),
            jnp.sum(~pred & true, axis=0, dtype=jnp.int32),
        ]
    )


def _divide(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(num, np.float64) / np.asarray(den, np.float64)
    return np.where(np.asarray(den) == 0, zero_division, out)


def _prf(
    counts: np.ndarray, kind: str, average: str, beta: float, zero_division: float
) -> np.ndarray | float:
    """Precision, recall or F-beta of ``(3, C)`` counts, as scikit-learn's
    ``precision_recall_fscore_support`` computes them."""
    tp, fp, fn = (np.asarray(c, np.int64) for c in counts)
    if average == "micro":
        tp, fp, fn = tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True)
    elif average == "binary":
        tp, fp, fn = tp[1:2], fp[1:2], fn[1:2]
    if kind == "precision":
        score = _divide(tp, tp + fp, zero_division)
    elif kind == "recall":
        score = _divide(tp, tp + fn, zero_division)
    else:
        b2 = beta * beta
        score = _divide((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp, zero_division)
    if average == "none":
        return score
    if average == "macro":
        return float(np.mean(score))
    if average == "weighted":
        support = tp + fn
        if support.sum() == 0:
            return float(zero_division)
        return float(np.average(score, weights=support))
    return float(score[0])


def _prf_item(
    kind: str,
    predictions: Any,
    labels: Any,
    num_classes: int,
    average: Average,
    beta: float,
    zero_division: float,
    mask: Any,
    threshold: float,
) -> dict[str, Any]:
    if average not in ("binary", "micro", "macro", "weighted", "none"):
        raise ValueError(
            f"average={average!r}; use 'binary', 'micro', 'macro', 'weighted' or 'none'"
        )
    if average == "binary" and num_classes != 2:
        raise ValueError(f"average='binary' needs num_classes=2, got {num_classes}")
    counts = class_counts(predictions, labels, num_classes, mask=mask, threshold=threshold)
    suffix = f"_beta{beta:g}" if kind == "fbeta" else ""
    name = f"{kind}{suffix}_{average}_zd{zero_division:g}"
    finish = functools.partial(
        _prf_finish, kind=kind, average=average, beta=beta, zero_division=zero_division
    )
    mode = summing_mode(name, finish)
    return _item(counts, jnp.sum(_weights(mask, jnp.shape(labels)[:1]), dtype=jnp.int32), mode)


def _prf_finish(
    sums: np.ndarray, count: np.ndarray, kind: str, average: str, beta: float, zero_division: float
) -> Any:
    return _prf(sums, kind, average, beta, zero_division)


def precision(
    predictions: Any,
    labels: Any,
    *,
    num_classes: int,
    average: Average = "macro",
    zero_division: float = 0.0,
    mask: Any = None,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Precision ``tp / (tp + fp)`` (scikit-learn's ``precision_score``, ``labels=range(C)``).

    Args:
        predictions: ``(N, C)`` scores or ``(N,)`` class ids (multiclass), ``(N,)`` scores
            (binary, with ``num_classes=2``), or ``(N, L)`` scores (multilabel).
        labels: ``(N,)`` class ids, or ``(N, L)`` in {0, 1}.
        num_classes: ``C`` (2 for binary, ``L`` for multilabel).
        average: ``"micro"`` (counts summed over classes), ``"macro"`` (mean of the classes'
            scores, every class of ``range(C)`` included), ``"weighted"`` (by support),
            ``"binary"`` (class 1), or ``"none"`` (one score per class).
        zero_division: The score of a class with nothing to divide by.
        mask: ``(N,)`` booleans: which samples count.
        threshold: For float binary and multilabel predictions.

    Returns:
        A step item, reported as the key (a float, or an array for ``"none"``).
    """
    return _prf_item(
        "precision", predictions, labels, num_classes, average, 1.0, zero_division, mask, threshold
    )


def recall(
    predictions: Any,
    labels: Any,
    *,
    num_classes: int,
    average: Average = "macro",
    zero_division: float = 0.0,
    mask: Any = None,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Recall ``tp / (tp + fn)`` (scikit-learn's ``recall_score``).

    Arguments as :func:`precision`.
    """
    return _prf_item(
        "recall", predictions, labels, num_classes, average, 1.0, zero_division, mask, threshold
    )


def fbeta(
    predictions: Any,
    labels: Any,
    *,
    num_classes: int,
    beta: float,
    average: Average = "macro",
    zero_division: float = 0.0,
    mask: Any = None,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """F-beta ``(1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp)`` (scikit-learn's ``fbeta_score``).

    Arguments as :func:`precision`; ``beta`` weighs recall ``beta`` times as much as precision.
    """
    return _prf_item(
        "fbeta", predictions, labels, num_classes, average, beta, zero_division, mask, threshold
    )


def f1(
    predictions: Any,
    labels: Any,
    *,
    num_classes: int,
    average: Average = "macro",
    zero_division: float = 0.0,
    mask: Any = None,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """F1, the harmonic mean of precision and recall (scikit-learn's ``f1_score``).

    Arguments as :func:`precision`.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> preds, labels = jnp.array([0, 1, 1, 2]), jnp.array([0, 1, 2, 2])
        >>> step = {"f1": mk.tasks.f1(preds, labels, num_classes=3, average="macro")}
        >>> round(mk.MetricStore().update(step).compute()["f1"], 6)
        0.777778
    """
    return _prf_item(
        "f1", predictions, labels, num_classes, average, 1.0, zero_division, mask, threshold
    )


def _confusion_finish(sums: np.ndarray, count: np.ndarray) -> np.ndarray:
    return np.asarray(sums, np.int64)


def confusion_matrix(
    predictions: Any, labels: Any, *, num_classes: int, mask: Any = None, threshold: float = 0.5
) -> dict[str, Any]:
    """The ``(C, C)`` confusion matrix: row = true class, column = predicted class.

    scikit-learn: ``confusion_matrix(labels, predictions, labels=range(C))``. Arguments as
    :func:`precision` (multiclass or binary).
    """
    pred, true = _predicted(jnp.asarray(predictions), jnp.asarray(labels), num_classes, threshold)
    counted = _weights(mask, pred.shape[:1])[:, None]
    matrix = jnp.einsum(
        "nt,np->tp", (true & counted).astype(jnp.int32), (pred & counted).astype(jnp.int32)
    )
    mode = summing_mode("confusion_matrix", _confusion_finish)
    return _item(matrix, jnp.sum(counted, dtype=jnp.int32), mode)


def score_histograms(scores: Any, labels: Any, bins: int, mask: Any = None) -> jax.Array:
    """Counts of negative and positive samples per score bin, ``(2, bins)`` int32.

    Scores are probabilities in [0, 1] (clipped); bin ``b`` holds ``[b / bins, (b + 1) /
    bins)``, the last bin includes 1.
    """
    s = jnp.clip(jnp.asarray(scores, jnp.float32).reshape(-1), 0.0, 1.0)
    y = jnp.asarray(labels).reshape(-1).astype(bool)
    counted = _weights(mask, jnp.shape(scores)).reshape(-1)
    b = jnp.minimum((s * bins).astype(jnp.int32), bins - 1)
    return jnp.stack(
        [
            jnp.zeros(bins, jnp.int32).at[b].add((~y & counted).astype(jnp.int32)),
            jnp.zeros(bins, jnp.int32).at[b].add((y & counted).astype(jnp.int32)),
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
    bins (thresholds at bin edges, tied scores grouped as scikit-learn groups them). The raw
    scores' AP lies between the AP with each bin's positives ranked first and the AP with them
    ranked last; the bound is the farther of the two from the value.

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
            best += float(np.sum((tp_before + k) / (tp_before + k + fp_before)))
            worst += float(np.sum((tp_before + k) / (tp_before + k + fp_before + neg[b])))
        tp_before, fp_before = tp_before + pos[b], fp_before + neg[b]
    return ap, max(best / p - ap, ap - worst / p, 0.0)


def _auroc_finish(sums: np.ndarray, count: np.ndarray) -> float:
    return binned_roc_auc(sums)[0]


def _ap_finish(sums: np.ndarray, count: np.ndarray) -> float:
    return binned_average_precision(sums)[0]


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
    """
    mode = summing_mode("roc_auc", _auroc_finish)
    counted = jnp.sum(_weights(mask, jnp.shape(scores)), dtype=jnp.int32)
    return _item(score_histograms(scores, labels, bins, mask), counted, mode)


def average_precision(
    scores: Any, labels: Any, *, bins: int = 1024, mask: Any = None
) -> dict[str, Any]:
    """Binary average precision (area under the precision-recall curve) from histograms.

    Arguments as :func:`roc_auc`; the bound is :func:`binned_average_precision`'s.
    """
    mode = summing_mode("average_precision", _ap_finish)
    counted = jnp.sum(_weights(mask, jnp.shape(scores)), dtype=jnp.int32)
    return _item(score_histograms(scores, labels, bins, mask), counted, mode)


def _ece_finish(sums: np.ndarray, count: np.ndarray) -> float:
    n, confidence, correct = (np.asarray(s, np.float64) for s in sums)
    total = n.sum()
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
    (Guo et al., "On calibration of modern neural networks", 2017).

    Args:
        probabilities: ``(N, C)`` class probabilities.
        labels: ``(N,)`` class ids.
        bins: Confidence bins.
        mask: ``(N,)`` booleans: which samples count.

    Returns:
        A step item: per bin the count, the sum of confidences and the number correct.
    """
    p = jnp.asarray(probabilities, jnp.float32)
    confidence = jnp.max(p, axis=-1)
    correct = (jnp.argmax(p, axis=-1) == jnp.asarray(labels)).astype(jnp.float32)
    counted = _weights(mask, confidence.shape).astype(jnp.float32)
    b = jnp.minimum((confidence * bins).astype(jnp.int32), bins - 1)
    stats = jnp.stack(
        [
            jnp.zeros(bins).at[b].add(counted),
            jnp.zeros(bins).at[b].add(confidence * counted),
            jnp.zeros(bins).at[b].add(correct * counted),
        ]
    )
    mode = summing_mode(f"calibration_error_{bins}", _ece_finish)
    return _item(stats, jnp.sum(counted > 0, dtype=jnp.int32), mode)
