"""Ranking: mean reciprocal rank and NDCG@k, per query, averaged over queries.

``scores`` and ``relevance`` are ``(Q, L)``: Q queries with L candidates each. ``mask`` is
either ``(Q,)`` (the queries that count) or ``(Q, L)`` (the candidates that count: a masked
candidate neither ranks nor counts as relevant, as if it were not there; a query whose
candidates are all masked does not count). NDCG averages over tied scores as scikit-learn's
``ndcg_score`` does (``ignore_ties=True``: by position, the first candidate ranking higher);
MRR breaks ties by position.

MRR is exact: a step counts, per rank ``r``, the queries whose first relevant candidate is at
``r`` (integers), and the host finishes ``sum_r count_r / r / queries`` in float64. NDCG is
computed per query in double-float arithmetic (the discounts ``1 / log2(i + 2)`` are float64
constants split into two float32s) and summed over the batch's queries nearly exactly
(:func:`~metricskit.tasks.batchsums.pair_total`: about 2^-43 of the largest term plus 2^-47 of
the sum), whatever the batch size. Scores are compared as float32.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from metricskit import exact
from metricskit.compat import Tracer
from metricskit.tasks.batchsums import as_pairs, dd_sub, div_count, packed_pair, pair_total
from metricskit.tasks.modes import SumsMetric, step_item
from metricskit.tasks.moments import PairSums

__all__ = ["MRR", "NDCG", "mrr", "ndcg"]


def _inputs(function: str, scores: Any, relevance: Any, mask: Any) -> tuple[Any, Any, Any, Any]:
    """``(scores, relevance, candidates, queries)``: the checked ``(Q, L)`` arrays, the
    ``(Q, L)`` candidates that count and the ``(Q,)`` queries that count."""
    s, rel = jnp.asarray(scores), jnp.asarray(relevance)
    if s.ndim != 2 or s.shape != rel.shape:
        raise ValueError(
            f"{function}: scores have shape {s.shape} and relevance {rel.shape}; both must be "
            "(queries, candidates) of one shape: pad ragged candidate lists to one length and "
            "mask the padding out with a (queries, candidates) mask="
        )
    q, n = s.shape
    if mask is None:
        return s, rel, jnp.ones((q, n), bool), jnp.ones((q,), bool)
    m = jnp.asarray(mask).astype(bool)
    if m.shape == (q,):
        return s, rel, jnp.broadcast_to(m[:, None], (q, n)), m
    if m.shape == (q, n):
        return s, rel, m, jnp.any(m, axis=-1)
    raise ValueError(
        f"{function}: mask has shape {m.shape}, but scores and relevance have shape {s.shape}; "
        f"pass a ({q},) mask of the queries that count or a ({q}, {n}) mask of the candidates "
        "that count"
    )


def _ranked(scores: Any, relevance: Any, candidates: Any) -> jax.Array:
    """Relevance in the order of descending scores, masked candidates last with relevance
    0, ``(Q, L)``."""
    by_score = jnp.argsort(-jnp.asarray(scores, jnp.float32), axis=-1, stable=True)
    out = jnp.take_along_axis(~candidates, by_score, axis=-1)
    order = jnp.take_along_axis(by_score, jnp.argsort(out, axis=-1, stable=True), axis=-1)
    kept = jnp.where(candidates, relevance, jnp.zeros_like(relevance))
    return jnp.take_along_axis(kept, order, axis=-1)


def _mrr_finish(sums: np.ndarray, count: np.ndarray) -> float:
    ranks = np.arange(1, len(sums) + 1, dtype=np.float64)
    return float(np.sum(np.asarray(sums, np.float64) / ranks) / np.float64(count))


def mrr(scores: Any, relevance: Any, *, mask: Any = None) -> dict[str, Any]:
    """Mean reciprocal rank of the first relevant candidate (a query with none counts 0).

    Args:
        scores: ``(Q, L)`` scores (higher ranks first).
        relevance: ``(Q, L)``: a candidate is relevant when its relevance is above 0.
        mask: ``(Q,)`` booleans (the queries that count) or ``(Q, L)`` (the candidates that
            count).

    Returns:
        A step item, reported as the key: the exact mean of ``1 / rank`` over the counted
        queries, in float64. Its statistics are ``(L,)`` integers, so every batch of one key
        must have the same number of candidates ``L`` (pad with a candidate mask).

    Raises:
        ValueError: If scores and relevance are not ``(Q, L)`` of one shape, or the mask has
            another shape than ``(Q,)`` or ``(Q, L)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> scores = jnp.array([[0.9, 0.5, 0.1], [0.2, 0.8, 0.4]])
        >>> relevant = jnp.array([[0, 1, 0], [0, 1, 0]])
        >>> mk.MetricStore().update({"mrr": mk.tasks.mrr(scores, relevant)}).compute()
        {'mrr': 0.75}
    """
    s, rel, candidates, queries = _inputs("mrr", scores, relevance, mask)
    hits = _ranked(s, rel, candidates) > 0
    first = jnp.argmax(hits, axis=-1)
    found = jnp.any(hits, axis=-1) & queries
    histogram = jnp.sum(
        (first[:, None] == jnp.arange(s.shape[1])) & found[:, None], axis=0, dtype=jnp.int32
    )
    return step_item(histogram, jnp.sum(queries, dtype=jnp.int32), _MRR)


def _discounts(k: int) -> exact.Pair:
    """``1 / log2(i + 2)`` for ``i < k``, float64 constants as float32 Pairs."""
    d = 1.0 / np.log2(np.arange(k, dtype=np.float64) + 2.0)
    hi = d.astype(np.float32)
    return exact.Pair(jnp.asarray(hi), jnp.asarray((d - hi).astype(np.float32)))


def _tie_groups(scores: Any, candidates: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(order, start, stop)``, each ``(Q, L)``: the candidates in ranked order (descending
    scores compared as float32, ties by position, masked candidates last) and, per ranked
    position, the positions ``[start, stop)`` of its group of tied scores (masked candidates
    form their own group)."""
    q, n = scores.shape
    s = jnp.asarray(scores, jnp.float32)
    by_score = jnp.argsort(-s, axis=-1, stable=True)
    out = jnp.take_along_axis(~candidates, by_score, axis=-1)
    order = jnp.take_along_axis(by_score, jnp.argsort(out, axis=-1, stable=True), axis=-1)
    ranked, masked = jnp.take_along_axis(s, order, -1), jnp.take_along_axis(~candidates, order, -1)
    step = (ranked[:, 1:] != ranked[:, :-1]) | (masked[:, 1:] != masked[:, :-1])
    edge = jnp.ones((q, 1), bool)
    i = jnp.arange(n, dtype=jnp.int32)
    start = jax.lax.cummax(jnp.where(jnp.concatenate([edge, step], 1), i, 0), axis=1)
    stop = jnp.where(jnp.concatenate([step, edge], 1), i + 1, n)
    stop = jax.lax.cummin(stop, axis=1, reverse=True)
    return order, start, stop


def _tied_discounts(scores: Any, candidates: Any, top: int) -> tuple[jax.Array, exact.Pair]:
    """The candidates in ranked order, ``(Q, L)`` indices, and each ranked position's
    discount averaged over its group of tied scores (scikit-learn's ``_tie_averaged_dcg``: a
    group shares the discounts of the positions it spans, those past ``top`` being 0)."""
    n = scores.shape[1]
    order, start, stop = _tie_groups(scores, candidates)
    d = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(top, dtype=np.float64) + 2))])
    d = np.concatenate([d, np.full(n - top, d[-1])])  # the discounts before each position
    hi = d.astype(np.float32)
    prefix = exact.Pair(jnp.asarray(hi), jnp.asarray((d - hi).astype(np.float32)))
    span = dd_sub(*(exact.Pair(prefix.hi[j], prefix.lo[j]) for j in (stop, start)))
    return order, div_count(span, stop - start)


def _gain(relevance: exact.Pair, discounts: exact.Pair) -> exact.Pair:
    """``sum_i rel_i * discount_i`` per query (``(Q, k)`` -> ``(Q,)``), in double-float."""
    terms = exact.mul(relevance, discounts)
    return pair_total(exact.Pair(terms.hi.T, terms.lo.T))


def _ndcg_finish(sums: np.ndarray, count: np.ndarray) -> float:
    total = np.asarray(sums, np.float64)
    return float((total[0] + total[1]) / np.float64(count))


def ndcg(
    scores: Any,
    relevance: Any,
    *,
    k: int | None = None,
    mask: Any = None,
    ignore_ties: bool = False,
) -> dict[str, Any]:
    """Normalized discounted cumulative gain at ``k`` (scikit-learn's ``ndcg_score``).

    Linear gains: ``DCG@k / IDCG@k`` with ``DCG = sum_{i < k} rel_i / log2(i + 2)`` over the
    candidates ranked by score and ``IDCG`` the same over the candidates ranked by relevance;
    a query without relevant candidates counts 0. Tied scores share the discounts of the
    ranks they span (the expected DCG over the orders of the tie, scikit-learn's default), so
    the result does not depend on the order candidates are listed in.

    Args:
        scores: ``(Q, L)`` scores (higher ranks first).
        relevance: ``(Q, L)`` non-negative gains (ints or floats).
        k: Only the top ``k`` ranks count (a positive int; ``None``: all ``L``).
        mask: ``(Q,)`` booleans (the queries that count) or ``(Q, L)`` (the candidates that
            count).
        ignore_ties: Rank tied scores by position (the first listed ranks higher; scikit-learn's
            ``ignore_ties=True`` breaks them in another order): the result then depends on the
            order candidates are listed in.

    Returns:
        A step item, reported as the key: the mean over the counted queries. A counted
        candidate with a NaN score, or (under ``jit``, where values cannot be checked) a
        negative relevance, makes its query's NDCG NaN and so the step's statistics: the key
        reports NaN, or, with ``nan_policy="skip"``, the step is skipped and counted in
        ``key_nonfinite``.

    Raises:
        ValueError: If ``k`` is not a positive int or None, if scores and relevance are not
            ``(Q, L)`` of one shape, the mask has another shape than ``(Q,)`` or ``(Q, L)``,
            or (eager calls) an unmasked relevance is negative.
    """
    if k is not None and (isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1):
        raise ValueError(f"ndcg: k={k!r}; pass a positive int (the ranks that count) or None")
    s, rel, candidates, queries = _inputs("ndcg", scores, relevance, mask)
    if not isinstance(relevance, Tracer) and not isinstance(candidates, Tracer):
        known = np.asarray(relevance)
        if known.size and np.any(known[np.asarray(candidates, bool)] < 0):
            raise ValueError(
                "ndcg: relevance holds negative gains; NDCG is defined for non-negative gains "
                "(scikit-learn's ndcg_score refuses them too): shift or clip the relevance"
            )
    length = s.shape[1]
    top = length if k is None else min(int(k), length)
    kept = jnp.where(candidates, rel, jnp.zeros_like(rel))
    if ignore_ties:
        dcg = _gain(as_pairs(_ranked(s, rel, candidates)[:, :top]), _discounts(top))
    else:
        order, tied = _tied_discounts(s, candidates, top)
        dcg = _gain(as_pairs(jnp.take_along_axis(kept, order, axis=-1)), tied)
    ideal_order = jnp.argsort(-jnp.asarray(kept, jnp.float32), axis=-1, stable=True)[:, :top]
    ideal = jnp.take_along_axis(kept, ideal_order, axis=-1)
    idcg = _gain(as_pairs(ideal), _discounts(top))
    positive = (idcg.hi > 0) & queries
    one = jnp.ones_like(idcg.hi)
    ratio = exact.div(
        dcg, exact.Pair(jnp.where(positive, idcg.hi, one), jnp.where(positive, idcg.lo, 0.0))
    )
    undefined = candidates & (jnp.isnan(jnp.asarray(s, jnp.float32)) | (kept < 0))
    undefined = jnp.any(undefined, axis=-1) & queries  # a NaN score, a negative gain: NaN
    per_query = exact.Pair(
        jnp.where(undefined, jnp.nan, jnp.where(positive, ratio.hi, 0.0)),
        jnp.where(positive & ~undefined, ratio.lo, 0.0),
    )
    total = packed_pair(pair_total(per_query))
    return step_item(total, jnp.sum(queries, dtype=jnp.int32), _NDCG)


class MRR(SumsMetric):
    """The log mode of :func:`mrr`: a histogram of the first relevant rank per query."""

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        return _mrr_finish(sums, count)


class NDCG(PairSums):
    """The log mode of :func:`ndcg`: the summed per-query NDCG over the query count."""

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        return _ndcg_finish(sums, count)


_MRR, _NDCG = MRR.configure(), NDCG.configure()
