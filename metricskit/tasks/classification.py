"""Classification from predictions: accuracy, precision, recall, F-beta, confusion matrix.

(Metrics of scores, AUROC, average precision and calibration, are in
:mod:`metricskit.tasks.scores`.)

Every function takes model outputs and labels of one batch (optionally a ``mask`` of the
samples that count) and returns a step item: sufficient statistics under a configured metric.
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

from metricskit import exact
from metricskit.compat import Tracer
from metricskit.metric import static
from metricskit.tasks.batchsums import as_pairs
from metricskit.tasks.modes import SumsMetric, counted, step_item

__all__ = [
    "Average",
    "ConfusionMatrix",
    "ConfusionScore",
    "Kind",
    "accuracy",
    "check_classes",
    "class_counts",
    "cohen_kappa",
    "confusion_matrix",
    "inputs",
    "matthews_corrcoef",
    "nonfinite_rows",
    "sample_rows",
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
        top_k: A multiclass sample is correct when its label is among the ``top_k`` scores
            (ties go to the lower class index, as ``jax.lax.top_k`` and torchmetrics break
            them; scikit-learn favours the higher one).
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
    kind, p, y = inputs(predictions, labels, None, mask, top_k=top_k)
    if kind == "scores":
        if top_k == 1:
            correct = jnp.argmax(p, axis=-1) == y
        else:
            _, best = jax.lax.top_k(p, top_k)
            correct = jnp.any(best == y[..., None], axis=-1)
    elif kind in ("binary", "multilabel") and jnp.issubdtype(p.dtype, jnp.floating):
        correct = (p > threshold) == y.astype(bool)
    else:
        correct = p == y
    which = counted(mask, correct.shape)
    bad = nonfinite_rows(p, kind, correct.shape) & which
    # the hits as an exact double-float (a float32 rounds past 2^24); a NaN score makes the
    # key NaN (as float64 arithmetic would carry it; the store's nan_policy="skip" then skips
    # the step and counts it)
    hits = as_pairs(jnp.sum(correct & which & ~bad, dtype=jnp.int32))
    total = exact.Pair(jnp.where(jnp.any(bad), jnp.nan, hits.hi), hits.lo)
    return step_item(total, jnp.sum(which, dtype=jnp.int32), "mean_nopostfix")


Kind = Literal["scores", "ids", "binary", "multilabel"]


def inputs(
    predictions: Any, labels: Any, num_classes: int | None, mask: Any, top_k: int = 1
) -> tuple[Kind, jax.Array, jax.Array]:
    """Which kind of classification input this is, checked; labels as integers.

    Shapes are checked always (they are static under ``jit``); label values, when they are
    concrete (outside ``jit``): class ids in ``[0, C)``, binary labels in {0, 1}, counted
    samples only.

    Raises:
        ValueError: For shapes that do not fit together, ``num_classes`` or ``top_k`` that do
            not fit the scores, or labels out of range, naming the argument and the fix.
        TypeError: For float class ids.
    """
    p, y = jnp.asarray(predictions), jnp.asarray(labels)
    if y.dtype == bool:
        y = y.astype(jnp.int32)
    floating = jnp.issubdtype(p.dtype, jnp.floating)
    if p.ndim == y.ndim + 1 and p.shape[:-1] == y.shape:
        kind: Kind = "scores"
        classes = p.shape[-1]
        if num_classes is not None and classes != num_classes:
            raise ValueError(
                f"predictions have {classes} class scores (shape {p.shape}) but "
                f"num_classes={num_classes}; pass num_classes={classes}"
            )
        if not 1 <= top_k <= classes:
            raise ValueError(f"top_k={top_k} must be in [1, {classes}] (the number of classes)")
    elif p.shape != y.shape:
        raise ValueError(
            f"predictions of shape {p.shape} do not fit labels of shape {y.shape}: pass (N, C) "
            "scores with (N,) labels, or predictions of the labels' shape"
        )
    elif p.ndim == 2:
        kind, classes = "multilabel", p.shape[-1]
        if num_classes is not None and classes != num_classes:
            raise ValueError(
                f"multilabel predictions of shape {p.shape} have {classes} labels but "
                f"num_classes={num_classes}; pass num_classes={classes}"
            )
    elif floating:
        kind, classes = "binary", 2
        if num_classes not in (None, 2):
            raise ValueError(
                f"(N,) float predictions are binary scores, but num_classes={num_classes}: "
                "pass (N, C) scores, integer class ids, or num_classes=2"
            )
    else:
        kind, classes = "ids", num_classes or 0
    if top_k != 1 and kind != "scores":
        raise ValueError(f"top_k={top_k} needs (N, C) scores; the predictions have shape {p.shape}")
    if kind in ("scores", "ids") and jnp.issubdtype(y.dtype, jnp.floating):
        raise TypeError(f"labels are class ids: pass integers, not {y.dtype}")
    _check_values(kind, p, y, classes, mask)
    return kind, p, y


def _check_values(kind: str, p: jax.Array, y: jax.Array, classes: int, mask: Any) -> None:
    """Label (and class id) ranges, when the values are concrete."""
    arrays = (p, y) if mask is None else (p, y, jnp.asarray(mask))
    if any(isinstance(a, Tracer) for a in arrays):
        return  # under jit: the caller's ids must be valid (out of range: counted nowhere)
    which = counted(mask, y.shape, np)
    labels = np.asarray(y)[which]
    if kind in ("binary", "multilabel"):
        bad = labels[(labels != 0) & (labels != 1)]
        if bad.size:
            raise ValueError(
                f"labels must be 0 or 1 here, got {bad[0].item()!r}; binarize them first"
            )
        return
    high = classes if classes else None
    for name, values in (("labels", labels), ("predictions", np.asarray(p)[which])):
        if name == "predictions" and kind == "scores":
            continue
        out = values[(values < 0) | ((values >= high) if high else False)]
        if out.size:
            raise ValueError(
                f"{name} holds class id {out[0].item()!r}, outside [0, {high}): pass num_classes "
                "covering every class, or mask the sample out"
            )


def nonfinite_rows(p: jax.Array, kind: str, shape: tuple[int, ...]) -> jax.Array:
    """Which samples have a NaN score (the whole row, for (N, C) scores), of ``shape``."""
    if not jnp.issubdtype(p.dtype, jnp.floating):
        return jnp.zeros(shape, bool)
    nan = jnp.isnan(p)
    return jnp.any(nan, axis=-1) if kind == "scores" else nan


def _predicted(kind: str, p: jax.Array, y: jax.Array, num_classes: int, threshold: float) -> Any:
    """One-hot predictions and truths, ``(S, C)`` booleans over the ``S`` samples of every
    sample axis (``(N, L)`` for multilabel)."""
    if kind == "multilabel":
        pred = p > threshold if jnp.issubdtype(p.dtype, jnp.floating) else p.astype(bool)
        return pred, y.astype(bool)
    if kind == "scores":
        ids = jnp.argmax(p, -1)
    elif kind == "binary":
        ids = (p > threshold).astype(jnp.int32)
    else:
        ids = p.astype(jnp.int32)
    one_hot = functools.partial(jax.nn.one_hot, num_classes=num_classes, dtype=bool)
    return one_hot(ids.reshape(-1)), one_hot(y.reshape(-1))


def sample_rows(kind: str, p: jax.Array, y: jax.Array, mask: Any) -> tuple[jax.Array, jax.Array]:
    """``(counted, bad)``: which samples count and which of them have a NaN score, ``(S,)``
    booleans over the samples of every sample axis (a multilabel sample is a row of labels,
    counted when any of its labels is)."""
    which = counted(mask, y.shape)
    bad = nonfinite_rows(p, kind, y.shape) & which
    if kind == "multilabel":
        return which.any(-1), bad.any(-1)
    return which.reshape(-1), bad.reshape(-1)


def class_counts(
    predictions: Any, labels: Any, num_classes: int, *, mask: Any = None, threshold: float = 0.5
) -> jax.Array:
    """Per class: true positives, false positives and false negatives, ``(3, C)`` int32.

    Args:
        predictions: As for :func:`precision`.
        labels: As for :func:`precision`.
        num_classes: ``C`` (2 for binary; the number of labels for multilabel).
        mask: Booleans of the sample axes (or of their leading ones): which samples count.
        threshold: For float binary and multilabel predictions.

    Returns:
        The counts (a sample with a NaN score counts nowhere).
    """
    check_classes(num_classes)
    kind, p, y = inputs(predictions, labels, num_classes, mask)
    pred, true = _predicted(kind, p, y, num_classes, threshold)
    which = counted(mask, y.shape) & ~nonfinite_rows(p, kind, y.shape)
    which = which if kind == "multilabel" else which.reshape(-1, 1)
    pred, true = pred & which, true & which
    return jnp.stack(
        [
            jnp.sum(pred & true, axis=0, dtype=jnp.int32),
            jnp.sum(pred & ~true, axis=0, dtype=jnp.int32),
            jnp.sum(~pred & true, axis=0, dtype=jnp.int32),
        ]
    )


def check_classes(num_classes: int) -> None:
    """Refuse a ``num_classes`` that is not a positive int (``ValueError``)."""
    if not (isinstance(num_classes, int | np.integer) and num_classes >= 1):
        raise ValueError(f"num_classes={num_classes!r} must be a positive int")


def _confusion_finish(sums: np.ndarray, count: np.ndarray) -> np.ndarray:
    matrix, nan = np.asarray(sums, np.int64)[:-1], np.asarray(sums)[-1, 0]
    return np.full(matrix.shape, np.nan) if nan else matrix  # a NaN score: NaN, as for floats


def confusion_matrix(
    predictions: Any, labels: Any, *, num_classes: int, mask: Any = None, threshold: float = 0.5
) -> dict[str, Any]:
    """The ``(C, C)`` confusion matrix: row = true class, column = predicted class.

    scikit-learn: ``confusion_matrix(labels, predictions, labels=range(C))``. Arguments as
    :func:`precision` (multiclass or binary).
    """
    return _confusion_item("confusion_matrix", predictions, labels, num_classes, mask, threshold,
                           _CONFUSION_MATRIX)  # fmt: skip


def _confusion_item(
    function: str,
    predictions: Any,
    labels: Any,
    num_classes: int,
    mask: Any,
    threshold: float,
    mode: Any,
) -> dict[str, Any]:
    """The confusion-matrix statistics ``(C + 1, C)`` int32 (the last row's first entry: the
    counted samples with a NaN score) under ``mode``."""
    check_classes(num_classes)
    kind, p, y = inputs(predictions, labels, num_classes, mask)
    if kind == "multilabel":
        raise ValueError(
            f"{function} takes multiclass or binary inputs, not multilabel {p.shape}: "
            f"use one key per label, e.g. {function}(p[:, j], y[:, j], num_classes=2)"
        )
    pred, true = _predicted(kind, p, y, num_classes, threshold)
    which, bad = sample_rows(kind, p, y, mask)
    which = (which & ~bad)[:, None]
    matrix = jnp.einsum(
        "nt,np->tp", (true & which).astype(jnp.int32), (pred & which).astype(jnp.int32)
    )
    nan = jnp.zeros((1, num_classes), jnp.int32).at[0, 0].set(jnp.sum(bad, dtype=jnp.int32))
    total = jnp.concatenate([matrix, nan])
    return step_item(total, jnp.sum(which, dtype=jnp.int32), mode)


def _matthews(matrix: np.ndarray) -> float:
    """scikit-learn's ``matthews_corrcoef`` of a confusion matrix (0.0 for a zero
    denominator: one class only, or no samples)."""
    c = np.asarray(matrix, np.float64)
    t_sum, p_sum = c.sum(axis=1), c.sum(axis=0)
    n_correct, n = np.trace(c), p_sum.sum()
    cov_ytyp = n_correct * n - np.dot(t_sum, p_sum)
    cov_ypyp = n * n - np.dot(p_sum, p_sum)
    cov_ytyt = n * n - np.dot(t_sum, t_sum)
    if cov_ypyp * cov_ytyt == 0:
        return 0.0
    return float(cov_ytyp / np.sqrt(cov_ypyp * cov_ytyt))


def _kappa(matrix: np.ndarray, weights: str | None) -> float:
    """scikit-learn's ``cohen_kappa_score`` of a confusion matrix with ``labels=range(C)``
    (``nan``, its ``replace_undefined_by`` default, where a denominator is zero)."""
    c = np.asarray(matrix, np.float64)
    total = c.sum()
    if total == 0:
        return float("nan")
    expected = np.outer(c.sum(axis=1), c.sum(axis=0)) / total
    index = np.arange(c.shape[0], dtype=np.float64)
    if weights is None:
        w = 1.0 - np.eye(c.shape[0])
    elif weights == "linear":
        w = np.abs(index[:, None] - index[None, :])
    else:
        w = (index[:, None] - index[None, :]) ** 2
    denominator = np.sum(w * expected)
    if denominator == 0:
        return float("nan")
    return float(1.0 - np.sum(w * c) / denominator)


def matthews_corrcoef(
    predictions: Any, labels: Any, *, num_classes: int, mask: Any = None, threshold: float = 0.5
) -> dict[str, Any]:
    """Matthews' correlation coefficient (Gorodkin's multiclass ``R_K``) of the confusion
    matrix ``M`` (``t``, ``p`` its row and column sums, ``n`` its total):
    ``(n trace(M) - t.p) / sqrt((n^2 - p.p)(n^2 - t.t))``.

    scikit-learn's ``matthews_corrcoef``, degenerate cases included: a zero denominator (one
    class only in the labels or in the predictions, or no samples) gives 0.0. The statistics
    are :func:`confusion_matrix`'s (exact counts), finished in float64.

    Args:
        predictions: ``(N, C)`` scores or ``(N,)`` class ids (multiclass), or ``(N,)`` scores
            (binary, with ``num_classes=2``); any number of sample axes.
        labels: Class ids of the sample axes' shape.
        num_classes: ``C``.
        mask: Booleans of the sample axes (or of their leading ones): which samples count.
        threshold: For float binary predictions.

    Returns:
        A step item, reported as the key (a float in [-1, 1]; ``nan`` once a counted sample
        had a NaN score).

    Raises:
        ValueError: For multilabel inputs, or inputs of other shapes or (eagerly) values, as
            :func:`precision`.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> preds, labels = jnp.array([1, 0, 1, 1]), jnp.array([1, 1, 1, 0])
        >>> step = {
        ...     "mcc": mk.tasks.matthews_corrcoef(preds, labels, num_classes=2),
        ...     "kappa": mk.tasks.cohen_kappa(preds, labels, num_classes=2),
        ... }
        >>> host = mk.MetricStore().update(step).compute()
        >>> round(host["mcc"], 6), round(host["kappa"], 6)
        (-0.333333, -0.333333)
    """
    mode = ConfusionScore.configure(kind="matthews")
    return _confusion_item("matthews_corrcoef", predictions, labels, num_classes, mask,
                           threshold, mode)  # fmt: skip


def cohen_kappa(
    predictions: Any,
    labels: Any,
    *,
    num_classes: int,
    weights: Literal["linear", "quadratic"] | None = None,
    mask: Any = None,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Cohen's kappa ``1 - sum(W * M) / sum(W * E)`` of the confusion matrix ``M`` and its
    chance agreement ``E = outer(t, p) / n``; ``W`` is 1 off the diagonal (``weights=None``),
    ``|i - j|`` (``"linear"``) or ``(i - j)^2`` (``"quadratic"``).

    scikit-learn's ``cohen_kappa_score(labels, predictions, labels=range(C), weights=...)``,
    degenerate cases included: no samples, or a zero ``sum(W * E)`` (labels and predictions
    sharing one class only), give ``nan`` (its ``replace_undefined_by`` default). Arguments,
    result and errors as :func:`matthews_corrcoef`.

    Raises:
        ValueError: For ``weights`` other than ``None``, ``"linear"`` or ``"quadratic"``, and
            as :func:`matthews_corrcoef`.
    """
    if weights not in (None, "linear", "quadratic"):
        raise ValueError(f"weights={weights!r}; use None, 'linear' or 'quadratic'")
    mode = ConfusionScore.configure(kind="kappa", weights=weights)
    return _confusion_item("cohen_kappa", predictions, labels, num_classes, mask, threshold,
                           mode)  # fmt: skip


class ConfusionMatrix(SumsMetric):
    """The log mode of :func:`confusion_matrix`: summed counts per (label, prediction)."""

    def finish(self, sums: np.ndarray, count: np.ndarray) -> np.ndarray:
        return _confusion_finish(sums, count)


class ConfusionScore(SumsMetric):
    """The log mode of :func:`matthews_corrcoef` and :func:`cohen_kappa`: the statistics of
    :func:`confusion_matrix`, finished as a score.

    Attributes:
        kind: ``"matthews"`` or ``"kappa"``.
        weights: Cohen's kappa weights: ``None``, ``"linear"`` or ``"quadratic"``.
    """

    kind = static("matthews")
    weights = static(None)

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        matrix, nan = np.asarray(sums, np.int64)[:-1], np.asarray(sums)[-1, 0]
        if nan:  # a NaN score in a counted sample: NaN, as float64 arithmetic would carry it
            return float("nan")
        return _matthews(matrix) if self.kind == "matthews" else _kappa(matrix, self.weights)


_CONFUSION_MATRIX = ConfusionMatrix.configure()
