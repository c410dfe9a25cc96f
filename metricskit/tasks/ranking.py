"""Ranking: mean reciprocal rank and NDCG@k, per query, averaged over queries.

``scores`` and ``relevance`` are ``(Q, L)``: Q queries with L candidates each; ``mask``
``(Q,)`` marks the queries that count. Each query's value is computed on the device and the
mean over queries is the exact ``mean`` mode. Ties in ``scores`` are broken by position (the
first candidate ranks higher); scikit-learn's ``ndcg_score`` averages over ties instead, so the
two agree when scores are distinct.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from metricskit.tasks.modes import counted, step_item

__all__ = ["mrr", "ndcg"]


def _ranked(scores: Any, relevance: Any) -> jax.Array:
    """Relevance in the order of descending scores, ``(Q, L)``."""
    order = jnp.argsort(-jnp.asarray(scores, jnp.float32), axis=-1, stable=True)
    return jnp.take_along_axis(jnp.asarray(relevance, jnp.float32), order, axis=-1)


def _mean_item(per_query: jax.Array, mask: Any) -> dict[str, Any]:
    which = counted(mask, per_query.shape)
    total = jnp.sum(jnp.where(which, per_query, 0.0))
    return step_item(total, jnp.sum(which, dtype=jnp.int32), "mean_nopostfix")


def mrr(scores: Any, relevance: Any, *, mask: Any = None) -> dict[str, Any]:
    """Mean reciprocal rank of the first relevant candidate (a query with none counts 0).

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> scores = jnp.array([[0.9, 0.5, 0.1], [0.2, 0.8, 0.4]])
        >>> relevant = jnp.array([[0, 1, 0], [0, 1, 0]])
        >>> mk.MetricStore().update({"mrr": mk.tasks.mrr(scores, relevant)}).compute()
        {'mrr': 0.75}
    """
    hits = _ranked(scores, relevance) > 0
    first = jnp.argmax(hits, axis=-1)
    per_query = jnp.where(jnp.any(hits, axis=-1), 1.0 / (first + 1.0), 0.0)
    return _mean_item(per_query, mask)


def ndcg(scores: Any, relevance: Any, *, k: int | None = None, mask: Any = None) -> dict[str, Any]:
    """Normalized discounted cumulative gain at ``k`` (linear gains, as scikit-learn's
    ``ndcg_score``): ``DCG@k / IDCG@k`` with ``DCG = sum_i rel_i / log2(i + 2)``; a query
    without relevant candidates counts 0."""
    rel = jnp.asarray(relevance, jnp.float32)
    k = rel.shape[-1] if k is None else min(k, rel.shape[-1])
    discount = 1.0 / jnp.log2(jnp.arange(k, dtype=jnp.float32) + 2.0)
    dcg = jnp.sum(_ranked(scores, rel)[..., :k] * discount, axis=-1)
    ideal = jnp.sum(-jnp.sort(-rel, axis=-1)[..., :k] * discount, axis=-1)
    per_query = jnp.where(ideal > 0, dcg / jnp.where(ideal > 0, ideal, 1.0), 0.0)
    return _mean_item(per_query, mask)
