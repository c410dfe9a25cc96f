"""Exact AUROC and average precision on the host, from per-sample scores and labels.

For evaluation, log per-sample scores with the ``single_noreduce_wcount`` mode (scores as
values, labels as counts), aggregate the batches with :func:`metricskit.aggregate_metrics`,
and pass the reported arrays here: the same numbers as scikit-learn's ``roc_auc_score`` and
``average_precision_score``, tied scores included, in O(n log n).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["exact_average_precision", "exact_roc_auc"]


def _groups(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Positives and negatives per distinct score, from the highest score down."""
    s = np.asarray(scores, np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    return np.add.reduceat(y.astype(np.int64), starts), np.add.reduceat(
        (~y).astype(np.int64), starts
    )


def exact_roc_auc(scores: Any, labels: Any) -> float:
    """Area under the ROC curve of binary ``labels`` ranked by ``scores`` (ties count 1/2).

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
