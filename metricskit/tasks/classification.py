"""Classification from predictions: accuracy, precision, recall, F-beta, confusion matrix.

(Metrics of scores, AUROC, average precision and calibration, are in
:mod:`metricskit.tasks.scores`.)

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

from metricskit.tasks.modes import counted, step_item, summing_mode

__all__ = [
    "accuracy",
    "class_counts",
    "confusion_matrix",
    "f1",
    "fbeta",
    "precision",
    "recall",
]

Average = Literal["binary", "micro", "macro", "weighted", "none"]


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
    which = counted(mask, correct.shape)
    return step_item(
        jnp.sum(correct & which, dtype=jnp.int32),
        jnp.sum(which, dtype=jnp.int32),
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
    which = counted(mask, pred.shape)
    pred, true = pred & which, true & which
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
    return step_item(counts, jnp.sum(counted(mask, jnp.shape(labels)[:1]), dtype=jnp.int32), mode)


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
    which = counted(mask, pred.shape[:1])[:, None]
    matrix = jnp.einsum(
        "nt,np->tp", (true & which).astype(jnp.int32), (pred & which).astype(jnp.int32)
    )
    mode = summing_mode("confusion_matrix", _confusion_finish)
    return step_item(matrix, jnp.sum(which, dtype=jnp.int32), mode)
