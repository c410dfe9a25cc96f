"""Precision, recall, F-beta, F1, Jaccard (IoU), Dice, specificity and balanced accuracy
from the per-class counts of :func:`class_counts`.

Each step records a class's true positives, false positives and false negatives (exact
integers, and a row counting samples with a NaN score; specificity also its true negatives);
the host finishes the score as scikit-learn's ``precision_recall_fscore_support`` (and
``jaccard_score``, ``balanced_accuracy_score``) does, for every average (``"micro"``,
``"macro"``, ``"weighted"``, ``"binary"``, ``"none"``) and ``zero_division`` setting. The
functions share their options (:class:`ScoreOptions`).
"""

from __future__ import annotations

import math
from typing import Any, TypedDict, Unpack

import jax.numpy as jnp
import numpy as np

from metricskit.metric import static
from metricskit.tasks.classification import (
    Average,
    _predicted,
    check_classes,
    class_counts,
    inputs,
    nonfinite_rows,
    sample_rows,
)
from metricskit.tasks.modes import SumsMetric, counted, step_item

__all__ = [
    "FScores",
    "ScoreOptions",
    "balanced_accuracy",
    "dice",
    "f1",
    "fbeta",
    "jaccard",
    "precision",
    "recall",
    "specificity",
]


def _divide(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(num, np.float64) / np.asarray(den, np.float64)
    return np.where(np.asarray(den) == 0, zero_division, out)


def _balanced_accuracy(counts: np.ndarray) -> float:
    """scikit-learn's ``balanced_accuracy_score``: the mean recall of the classes with
    support (NaN when no class has any)."""
    tp, _, fn = (np.asarray(c, np.float64) for c in counts)
    support = tp + fn
    if not (support > 0).any():
        return float("nan")
    return float(np.mean(tp[support > 0] / support[support > 0]))


def _prf(
    counts: np.ndarray,
    kind: str,
    average: str,
    beta: float,
    zero_division: float,
    tn: np.ndarray | None = None,
) -> np.ndarray | float:
    """Precision, recall, F-beta (Dice), Jaccard or specificity of ``(3, C)`` counts (and
    ``(C,)`` true negatives for specificity), as scikit-learn's
    ``precision_recall_fscore_support`` and ``jaccard_score`` compute them."""
    tp, fp, fn = (np.asarray(c, np.int64) for c in counts)
    neg = np.zeros_like(tp) if tn is None else np.asarray(tn, np.int64)
    if average == "micro":
        tp, fp, fn = tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True)
        neg = neg.sum(keepdims=True)
    elif average == "binary":
        tp, fp, fn, neg = tp[1:2], fp[1:2], fn[1:2], neg[1:2]
    if kind == "precision":
        score = _divide(tp, tp + fp, zero_division)
    elif kind == "recall":
        score = _divide(tp, tp + fn, zero_division)
    elif kind == "jaccard":
        score = _divide(tp, tp + fp + fn, zero_division)
    elif kind == "specificity":
        score = _divide(neg, neg + fp, zero_division)
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
    if kind == "balanced_accuracy" and kind_ == "multilabel":
        raise ValueError(
            f"balanced_accuracy takes multiclass or binary inputs, not multilabel {p.shape}: "
            "use one key per label, e.g. balanced_accuracy(p[:, j], y[:, j], num_classes=2)"
        )
    which, bad = sample_rows(kind_, p, y, mask)
    nan = jnp.zeros((1, num_classes), jnp.int32).at[0, 0].set(jnp.sum(bad, dtype=jnp.int32))
    rows = [counts, nan]
    if kind == "specificity":  # the true negatives, a fifth row (a new kind: a new shape)
        pred, true = _predicted(kind_, p, y, num_classes, threshold)
        kept = counted(mask, y.shape) & ~nonfinite_rows(p, kind_, y.shape)
        kept = kept if kind_ == "multilabel" else kept.reshape(-1, 1)
        rows.append(jnp.sum(~pred & ~true & kept, axis=0, dtype=jnp.int32)[None])
    mode = FScores.configure(
        kind=kind, average=average, beta=float(beta), zero_division=float(zero_division)
    )
    return step_item(jnp.concatenate(rows), jnp.sum(which, dtype=jnp.int32), mode)


class FScores(SumsMetric):
    """The log mode of :func:`precision`, :func:`recall`, :func:`fbeta`, :func:`f1`,
    :func:`jaccard`, :func:`dice`, :func:`specificity` and :func:`balanced_accuracy`: summed
    ``(tp, fp, fn)`` counts per class (and counted samples with a NaN score; for specificity
    a fifth row, the true negatives), finished as scikit-learn's scores.

    Attributes:
        kind: ``"precision"``, ``"recall"``, ``"fbeta"``, ``"f1"``, ``"jaccard"``,
            ``"dice"``, ``"specificity"`` or ``"balanced_accuracy"``.
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
        tn = np.asarray(sums)[4] if len(sums) > 4 else None
        score: np.ndarray | float
        if self.kind == "balanced_accuracy":
            score = _balanced_accuracy(counts)
        else:
            score = _prf(counts, self.kind, self.average, self.beta, self.zero_division, tn)
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


def jaccard(
    predictions: Any, labels: Any, *, num_classes: int, **options: Unpack[ScoreOptions]
) -> dict[str, Any]:
    """The Jaccard index (intersection over union) ``tp / (tp + fp + fn)``.

    scikit-learn's ``jaccard_score`` with ``labels=range(C)``, for every ``average`` and
    ``zero_division``; the mean IoU of segmentation is ``average="macro"`` (pass ``(B, H, W,
    C)`` scores or ``(B, H, W)`` class ids with ``(B, H, W)`` labels). Arguments, result and
    errors as :func:`precision` (the options: :class:`ScoreOptions`).

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> preds, labels = jnp.array([0, 1, 1, 2]), jnp.array([0, 1, 2, 2])
        >>> step = {"iou": mk.tasks.jaccard(preds, labels, num_classes=3, average="none")}
        >>> mk.MetricStore().update(step).compute()["iou"]
        array([1. , 0.5, 0.5])
    """
    return _prf_item("jaccard", predictions, labels, num_classes, 1.0, **options)


def dice(
    predictions: Any, labels: Any, *, num_classes: int, **options: Unpack[ScoreOptions]
) -> dict[str, Any]:
    """The Dice coefficient ``2 tp / (2 tp + fp + fn)``: per class, F1.

    scikit-learn's ``f1_score`` with ``labels=range(C)``; torchmetrics' ``Dice`` with the
    same ``average`` (its default is ``"micro"``, this one's ``"macro"``, as the other
    scores'). Arguments, result and errors as :func:`precision` (the options:
    :class:`ScoreOptions`).
    """
    return _prf_item("dice", predictions, labels, num_classes, 1.0, **options)


def specificity(
    predictions: Any, labels: Any, *, num_classes: int, **options: Unpack[ScoreOptions]
) -> dict[str, Any]:
    """Specificity (true negative rate) ``tn / (tn + fp)`` per class, one class against the
    rest.

    The true negatives of a class are the counted samples (labels, for multilabel) neither
    labelled nor predicted as it, counted on the device (a fifth row of the statistics).
    Averages as torchmetrics' ``MulticlassSpecificity`` / ``MultilabelSpecificity``:
    ``"micro"`` (``sum tn / sum (tn + fp)`` over the classes), ``"macro"``, ``"weighted"`` (by
    support ``tp + fn``), ``"none"``, and ``"binary"`` (class 1). Every class of
    ``range(C)`` enters the macro average (torchmetrics' multiclass macro leaves out the
    classes neither labelled nor predicted), and zero divisions follow ``zero_division`` as
    for :func:`precision` (a weighted average over no support is the plain mean). Reference:
    the float64 scores of scikit-learn's ``multilabel_confusion_matrix``. Arguments, result
    and errors as :func:`precision` (the options: :class:`ScoreOptions`).
    """
    return _prf_item("specificity", predictions, labels, num_classes, 1.0, **options)


def balanced_accuracy(
    predictions: Any,
    labels: Any,
    *,
    num_classes: int,
    mask: Any = None,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Balanced accuracy: the mean recall ``tp / (tp + fn)`` of the classes present in the
    labels (scikit-learn's ``balanced_accuracy_score``, ``adjusted=False``).

    Args:
        predictions: ``(N, C)`` scores or ``(N,)`` class ids (multiclass), or ``(N,)`` scores
            (binary, with ``num_classes=2``); any number of sample axes.
        labels: Class ids of the sample axes' shape.
        num_classes: ``C``.
        mask: Booleans of the sample axes (or of their leading ones): which samples count.
        threshold: For float binary predictions.

    Returns:
        A step item, reported as the key (a float): ``nan`` when no counted sample has a
        label (scikit-learn's mean of no recalls), or when a counted sample has a NaN score.

    Raises:
        ValueError: For multilabel inputs (log one key per label), or inputs of other
            shapes or (eagerly) values, as :func:`precision`.
    """
    check_classes(num_classes)
    return _prf_step(
        "balanced_accuracy", predictions, labels, num_classes, 1.0, mask=mask, threshold=threshold
    )
