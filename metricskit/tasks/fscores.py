"""Precision, recall, F-beta and F1 from the per-class counts of :func:`class_counts`.

Each step records a class's true positives, false positives and false negatives (exact
integers, and a row counting samples with a NaN score); the host finishes the score as
scikit-learn's ``precision_recall_fscore_support`` does, for every average (``"micro"``,
``"macro"``, ``"weighted"``, ``"binary"``, ``"none"``) and ``zero_division`` setting. The
four functions share their options (:class:`ScoreOptions`).
"""

from __future__ import annotations

import math
from typing import Any, TypedDict, Unpack

import jax.numpy as jnp
import numpy as np

from metricskit.metric import static
from metricskit.tasks.classification import Average, class_counts, inputs, sample_rows
from metricskit.tasks.modes import SumsMetric, step_item

__all__ = ["FScores", "ScoreOptions", "f1", "fbeta", "precision", "recall"]


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
    if average in ("micro", "binary"):
        return float(score[0])
    # scikit-learn's _nanaverage: zero_division=nan leaves those classes out; weights by
    # support, and the plain mean where every kept class has no support
    keep = ~np.isnan(score)
    if not keep.any():
        return float("nan")
    support = (tp + fn)[keep]
    if average == "weighted" and support.sum() > 0:
        return float(np.average(score[keep], weights=support))
    return float(np.mean(score[keep]))


class ScoreOptions(TypedDict, total=False):
    """The options of :func:`precision`, :func:`recall`, :func:`fbeta` and :func:`f1`
    (described at :func:`precision`), each optional."""

    average: Average  # default "macro"
    zero_division: float  # default 0.0
    mask: Any  # default None
    threshold: float  # default 0.5


def _prf_item(
    kind: str, predictions: Any, labels: Any, num_classes: int, beta: float, **options: Any
) -> dict[str, Any]:
    unknown = sorted(set(options) - set(ScoreOptions.__annotations__))
    if unknown:
        raise TypeError(
            f"{kind}() got unknown options {unknown}; its options are "
            f"{list(ScoreOptions.__annotations__)}"
        )
    return _prf_step(kind, predictions, labels, num_classes, beta, **options)


def _prf_step(
    kind: str,
    predictions: Any,
    labels: Any,
    num_classes: int,
    beta: float,
    *,
    average: Average = "macro",
    zero_division: float = 0.0,
    mask: Any = None,
    threshold: float = 0.5,
) -> dict[str, Any]:
    if average not in ("binary", "micro", "macro", "weighted", "none"):
        raise ValueError(
            f"average={average!r}; use 'binary', 'micro', 'macro', 'weighted' or 'none'"
        )
    if average == "binary" and num_classes != 2:
        raise ValueError(f"average='binary' needs num_classes=2, got {num_classes}")
    if not (isinstance(beta, int | float | np.integer | np.floating) and 0 < beta < float("inf")):
        raise ValueError(f"beta={beta!r} must be a positive finite number (for recall: recall())")
    if not isinstance(zero_division, int | float | np.integer | np.floating):
        raise ValueError(
            f"zero_division={zero_division!r}: pass a number (0.0, 1.0) or float('nan'); "
            "metricskit does not warn from the device"
        )
    if zero_division != zero_division:  # every NaN is one (each float("nan") is a new object)
        zero_division = math.nan
    counts = class_counts(predictions, labels, num_classes, mask=mask, threshold=threshold)
    kind_, p, y = inputs(predictions, labels, num_classes, mask)
    which, bad = sample_rows(kind_, p, y, mask)
    nan = jnp.zeros((1, num_classes), jnp.int32).at[0, 0].set(jnp.sum(bad, dtype=jnp.int32))
    mode = FScores.configure(
        kind=kind, average=average, beta=float(beta), zero_division=float(zero_division)
    )
    return step_item(jnp.concatenate([counts, nan]), jnp.sum(which, dtype=jnp.int32), mode)


class FScores(SumsMetric):
    """The log mode of :func:`precision`, :func:`recall`, :func:`fbeta` and :func:`f1`: summed
    ``(tp, fp, fn)`` counts per class (and counted samples with a NaN score), finished as
    scikit-learn's scores.

    Attributes:
        kind: ``"precision"``, ``"recall"``, ``"fbeta"`` or ``"f1"``.
        average: As the functions' ``average``.
        beta: The F-beta weight of recall (1.0 for F1).
        zero_division: The score of a class with nothing to divide by.
    """

    kind = static("f1")
    average = static("macro")
    beta = static(1.0)
    zero_division = static(0.0)

    def finish(self, sums: np.ndarray, count: np.ndarray) -> Any:
        counts, nan = np.asarray(sums)[:3], np.asarray(sums)[3, 0]
        score = _prf(counts, self.kind, self.average, self.beta, self.zero_division)
        if nan:  # a NaN score in a counted sample: NaN, as float64 arithmetic would carry it
            return np.full_like(score, np.nan) if isinstance(score, np.ndarray) else float("nan")
        return score


def precision(
    predictions: Any, labels: Any, *, num_classes: int, **options: Unpack[ScoreOptions]
) -> dict[str, Any]:
    """Precision ``tp / (tp + fp)`` (scikit-learn's ``precision_score``, ``labels=range(C)``).

    Args:
        predictions: ``(N, C)`` scores or ``(N,)`` class ids (multiclass), ``(N,)`` scores
            (binary, with ``num_classes=2``), or ``(N, L)`` scores (multilabel).
        labels: ``(N,)`` class ids, or ``(N, L)`` in {0, 1}.
        num_classes: ``C`` (2 for binary, ``L`` for multilabel).
        **options: Keywords of :class:`ScoreOptions`, each optional: ``average``:
            ``"micro"`` (counts summed over classes), ``"macro"`` (the default: mean of the
            classes' scores, every class of ``range(C)`` included), ``"weighted"`` (by
            support), ``"binary"`` (class 1), or ``"none"`` (one score per class);
            ``zero_division`` (default ``0.0``): the score of a class with nothing to divide
            by (a number or ``float("nan")``); ``mask`` (default ``None``): ``(N,)`` booleans,
            which samples count; ``threshold`` (default ``0.5``): for float binary and
            multilabel predictions.

    Returns:
        A step item, reported as the key (a float, or an array for ``"none"``).

    Raises:
        TypeError: For an unknown option.
        ValueError: For an unknown ``average``, ``"binary"`` with ``num_classes != 2``, a
            ``zero_division`` that is not a number, or inputs of other shapes (see
            :func:`accuracy`).
    """
    return _prf_item("precision", predictions, labels, num_classes, 1.0, **options)


def recall(
    predictions: Any, labels: Any, *, num_classes: int, **options: Unpack[ScoreOptions]
) -> dict[str, Any]:
    """Recall ``tp / (tp + fn)`` (scikit-learn's ``recall_score``).

    Arguments as :func:`precision` (the options: :class:`ScoreOptions`).
    """
    return _prf_item("recall", predictions, labels, num_classes, 1.0, **options)


def fbeta(
    predictions: Any,
    labels: Any,
    *,
    num_classes: int,
    beta: float,
    **options: Unpack[ScoreOptions],
) -> dict[str, Any]:
    """F-beta ``(1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp)`` (scikit-learn's ``fbeta_score``).

    Arguments as :func:`precision` (the options: :class:`ScoreOptions`); ``beta`` weighs
    recall ``beta`` times as much as precision.
    """
    return _prf_item("fbeta", predictions, labels, num_classes, beta, **options)


def f1(
    predictions: Any, labels: Any, *, num_classes: int, **options: Unpack[ScoreOptions]
) -> dict[str, Any]:
    """F1, the harmonic mean of precision and recall (scikit-learn's ``f1_score``).

    Arguments as :func:`precision` (the options: :class:`ScoreOptions`).

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> preds, labels = jnp.array([0, 1, 1, 2]), jnp.array([0, 1, 2, 2])
        >>> step = {"f1": mk.tasks.f1(preds, labels, num_classes=3, average="macro")}
        >>> round(mk.MetricStore().update(step).compute()["f1"], 6)
        0.777778
    """
    return _prf_item("f1", predictions, labels, num_classes, 1.0, **options)
