"""Exact AUROC and average precision on the host, from per-sample scores and labels.

For evaluation, log each batch's scores and labels with :func:`scored_samples` (the
``single_noreduce_wcount`` mode: scores as values, labels as counts, ``-1`` for a masked
sample), aggregate the batches with :func:`metricskit.aggregate_metrics`, and pass the
reported arrays here: the same numbers as scikit-learn's ``roc_auc_score`` and
``average_precision_score``, tied scores included, in O(n log n). Memory grows with the
samples; for training-time curves in fixed memory use the binned
:func:`~metricskit.tasks.roc_auc` and :func:`~metricskit.tasks.average_precision`.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from metricskit.tasks.modes import counted, step_item

__all__ = ["exact_average_precision", "exact_roc_auc", "scored_samples"]


def scored_samples(scores: Any, labels: Any, *, mask: Any = None) -> dict[str, Any]:
    """A step item keeping every sample's score and binary label, for the exact curves.

    Args:
        scores: ``(N,)`` (or any shape: flattened) floats, higher meaning "positive".
        labels: Binary labels of the same shape.
        mask: Booleans broadcast against ``scores``: masked samples are kept with label
            ``-1``, which the exact curves ignore.

    Returns:
        A step item of the ``single_noreduce_wcount`` mode: the key reports
        ``key_single_noreduce_wcount`` as ``(scores float32, labels int32)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> evaluation = {}
        >>> for scores, labels in [([0.1, 0.4], [0, 0]), ([0.35, 0.8], [1, 1])]:
        ...     step = {"auc": mk.tasks.scored_samples(jnp.array(scores), jnp.array(labels))}
        ...     evaluation = mk.aggregate_metrics(evaluation, mk.MetricStore().update(step))
        >>> s, y = mk.get_metrics(evaluation)[1]["auc_single_noreduce_wcount"]
        >>> mk.tasks.exact_roc_auc(s, y)
        0.75
    """
    s = jnp.asarray(scores, jnp.float32).reshape(-1)
    y = jnp.asarray(labels).astype(jnp.int32).reshape(-1)
    which = counted(mask, np.shape(scores)).reshape(-1)
    return step_item(s, jnp.where(which, y, -1), "single_noreduce_wcount")


def _groups(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Positives and negatives per distinct score, from the highest score down (samples
    labelled ``-1`` are masked out)."""
    s = np.asarray(scores, np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if s.shape != labels.shape:
        raise ValueError(f"{s.size} scores but {labels.size} labels; pass one label per score")
    if np.isnan(s).any():
        raise ValueError("a score is NaN; the ranking of NaN scores is undefined")
    keep = labels >= 0
    s, y = s[keep], labels[keep].astype(bool)
    if s.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    return np.add.reduceat(y.astype(np.int64), starts), np.add.reduceat(
        (~y).astype(np.int64), starts
    )


def exact_roc_auc(scores: Any, labels: Any) -> float:
    """Area under the ROC curve of binary ``labels`` ranked by ``scores`` (ties count 1/2).

    The probability that a random positive scores above a random negative (Hanley and
    McNeil, 1982); scikit-learn's ``roc_auc_score``. NaN when only one class is present.

    Args:
        scores: Floats, any shape (flattened).
        labels: ``0``/``1`` per score; ``-1`` marks a masked sample, which is ignored.

    Raises:
        ValueError: If the shapes differ or a score is NaN.

    Examples:
        >>> from metricskit.tasks import exact_roc_auc
        >>> exact_roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        0.75
    """
    pos, neg = _groups(scores, labels)
    p, n = pos.sum(), neg.sum()
    if p == 0 or n == 0:
        return float("nan")
    below = neg.sum() - np.cumsum(neg)  # negatives with a lower score, per group
    return float(np.sum(pos * (below + 0.5 * neg)) / (p * n))


def exact_average_precision(scores: Any, labels: Any) -> float:
    """Average precision ``sum_k (R_k - R_{k-1}) P_k`` over the distinct score thresholds.

    scikit-learn's ``average_precision_score`` (no interpolation). NaN without positives.
    Arguments and errors as :func:`exact_roc_auc`.

    Examples:
        >>> from metricskit.tasks import exact_average_precision
        >>> round(exact_average_precision([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 6)
        0.833333
    """
    pos, neg = _groups(scores, labels)
    p = pos.sum()
    if p == 0:
        return float("nan")
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    return float(np.sum(pos / p * tp / (tp + fp)))
