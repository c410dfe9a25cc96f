"""Retrieval: precision@k, recall@k, mean average precision@k and hit rate, per query,
averaged over queries.

``scores`` and ``relevance`` are ``(Q, L)``: Q queries with L candidates each, as
:func:`~metricskit.tasks.ndcg` takes them. ``mask`` is either ``(Q,)`` (the queries that
count) or ``(Q, L)`` (the candidates that count: a masked candidate neither ranks nor counts
as relevant, as if it were not there; a query whose candidates are all masked does not
count). A candidate is relevant when its relevance is above 0.

The semantics are torchmetrics' retrieval metrics (``RetrievalPrecision(top_k=k)``,
``RetrievalRecall(top_k=k)``, ``RetrievalMAP(top_k=k)``, ``RetrievalHitRate(top_k=k)``) with
their default ``empty_target_action="neg"``: a counted query without relevant candidates
counts 0 in every metric. ``k`` larger than a query's candidates takes them all; precision
still divides by ``k`` (torchmetrics' default ``adaptive_k=False``).

Tied scores: by default the expected value over the orders of each group of tied scores (all
orders equally likely), so the result does not depend on the order candidates are listed in
(as :func:`~metricskit.tasks.ndcg` averages ties like scikit-learn's ``ndcg_score``).
torchmetrics breaks ties by ``torch.topk``'s unspecified order. ``ignore_ties=True`` ranks tied
scores by position instead (the first listed ranks higher).

Each query's value is computed in double-float arithmetic (relative error about ``2^-45``;
the expectations over tied orders are exact rational expressions evaluated in double-float)
and the batch's values summed nearly exactly
(:func:`~metricskit.tasks.batchsums.pair_total`), merged exactly and finished on the host in
float64. Scores are compared as float32.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from metricskit import exact
from metricskit.tasks.batchsums import as_pairs, dd_add, dd_mul, div_count, packed_pair, pair_total
from metricskit.tasks.modes import step_item
from metricskit.tasks.moments import PairSums
from metricskit.tasks.ranking import _inputs, _tie_groups

__all__ = [
    "HitRate",
    "MAPAtK",
    "PrecisionAtK",
    "RecallAtK",
    "hit_rate",
    "map_at_k",
    "precision_at_k",
    "recall_at_k",
]


class _Ranked:
    """A batch's queries ranked: per ranked position ``(Q, L)`` whether it is relevant, its
    tie group ``[start, stop)`` and the relevant count before each position, ``(Q, L + 1)``."""

    def __init__(
        self, function: str, scores: Any, relevance: Any, mask: Any, k: Any, ignore_ties: bool
    ):
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"{function}: k={k!r}; pass a positive int (the top ranks that count)")
        s, rel, candidates, self.queries = _inputs(function, scores, relevance, mask)
        q, n = s.shape
        self.k, self.n = int(k), n
        self.top = min(self.k, n)  # the ranked positions that count
        relevant = candidates & (rel > 0)
        order, self.start, self.stop = _tie_groups(s, candidates)
        if ignore_ties:  # every position its own group: the stable order
            i = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), (q, n))
            self.start, self.stop = i, i + 1
        hits = jnp.take_along_axis(relevant, order, axis=-1).astype(jnp.int32)
        self.before = jnp.concatenate(
            [jnp.zeros((q, 1), jnp.int32), jnp.cumsum(hits, axis=-1, dtype=jnp.int32)], axis=-1
        )
        nan_score = jnp.isnan(jnp.asarray(s, jnp.float32))
        nan_relevance = jnp.isnan(rel) if jnp.issubdtype(rel.dtype, jnp.floating) else False
        self.undefined = jnp.any(candidates & (nan_score | nan_relevance), axis=-1) & self.queries

    def at(self, x: jax.Array, j: Any) -> jax.Array:
        """``x[q, j[q]]`` per query."""
        return jnp.take_along_axis(x, jnp.asarray(j)[:, None], axis=-1)[:, 0]

    def group(self) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        """Per ranked position: its group's size ``g`` and relevant count ``c``, its offset in
        the group and the relevant count of the groups before it (each ``(Q, L)`` int32)."""
        g = self.stop - self.start
        first = jnp.take_along_axis(self.before, self.start, axis=-1)
        c = jnp.take_along_axis(self.before, self.stop, axis=-1) - first
        offset = jnp.arange(self.n, dtype=jnp.int32) - self.start
        return g, c, offset, first

    def expected_hits(self) -> exact.Pair:
        """The expected number of relevant candidates in the top ``k``, ``(Q,)``: each ranked
        position is relevant with probability ``c / g`` (its group's share)."""
        g, c, _, _ = self.group()
        share = div_count(as_pairs(c), g)
        inside = jnp.arange(self.n) < self.top
        return pair_total(
            exact.Pair(jnp.where(inside, share.hi, 0.0).T, jnp.where(inside, share.lo, 0.0).T)
        )

    def boundary(self) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        """``(a, g, c, w)`` per query: the start, size and relevant count of the tie group
        at the last counted rank (``top - 1``) and how many of its positions are in the top
        ``k``."""
        last = jnp.full((self.start.shape[0],), self.top - 1, jnp.int32)
        a, b = self.at(self.start, last), self.at(self.stop, last)
        c = self.at(self.before, b) - self.at(self.before, a)
        return a, b - a, c, self.top - a

    def item(self, value: exact.Pair, mode: Any) -> dict[str, Any]:
        keep = self.queries & ~self.undefined
        per_query = exact.Pair(
            jnp.where(self.undefined, jnp.nan, jnp.where(keep, value.hi, 0.0)),
            jnp.where(keep, value.lo, 0.0),
        )
        total = packed_pair(pair_total(per_query))
        return step_item(total, jnp.sum(self.queries, dtype=jnp.int32), mode)


def _zeros(q: int) -> exact.Pair:
    return exact.Pair(jnp.zeros((q,), jnp.float32), jnp.zeros((q,), jnp.float32))


def _pair(x: Any) -> exact.Pair:
    return as_pairs(jnp.asarray(x, jnp.int32))


_DOC_ARGS = """
    Args:
        scores: ``(Q, L)`` scores (higher ranks first), compared as float32.
        relevance: ``(Q, L)``: a candidate is relevant when its relevance is above 0 (bools,
            ints or floats).
        k: The top ranks that count, a positive int (larger than ``L``: all candidates).
        mask: ``(Q,)`` booleans (the queries that count) or ``(Q, L)`` (the candidates that
            count).
        ignore_ties: Rank tied scores by position (the first listed ranks higher), as a
            stable sort: the result then depends on the order candidates are listed in.

    Returns:
        A step item, reported as the key: the mean over the counted queries (0.0, with the
        store's warning, when none counted). A NaN score or relevance on a counted candidate
        makes its query's value NaN, and so the step's statistics: the key reports NaN, or,
        with ``nan_policy="skip"``, the step is skipped and counted in ``key_nonfinite``.

    Raises:
        ValueError: If ``k`` is not a positive int, scores and relevance are not ``(Q, L)``
            of one shape, or the mask has another shape than ``(Q,)`` or ``(Q, L)``.
"""


def _documented(fn: Any) -> Any:
    fn.__doc__ = fn.__doc__.replace("    {args}\n", _DOC_ARGS)
    return fn


@_documented
def precision_at_k(
    scores: Any, relevance: Any, *, k: int, mask: Any = None, ignore_ties: bool = False
) -> dict[str, Any]:
    """Precision at ``k``: the relevant candidates among the top ``k``, over ``k``.

    torchmetrics' ``RetrievalPrecision(top_k=k)`` (``adaptive_k=False``): the denominator is
    ``k`` even when a query has fewer candidates; a query without relevant candidates counts
    0. Tie-aware (the default): a group of tied scores straddling rank ``k``, ``g`` candidates
    of which ``c`` relevant with ``w`` of its positions in the top ``k``, contributes
    ``c * w / g`` relevant candidates (the expected value over its orders).

    {args}

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> scores = jnp.array([[0.9, 0.5, 0.1], [0.2, 0.8, 0.4]])
        >>> relevant = jnp.array([[0, 1, 0], [1, 1, 0]])
        >>> step = {"p@2": mk.tasks.precision_at_k(scores, relevant, k=2),
        ...         "r@2": mk.tasks.recall_at_k(scores, relevant, k=2),
        ...         "map@2": mk.tasks.map_at_k(scores, relevant, k=2),
        ...         "hit@1": mk.tasks.hit_rate(scores, relevant, k=1)}
        >>> mk.MetricStore().update(step).compute()
        {'hit@1': 0.5, 'map@2': 0.75, 'p@2': 0.5, 'r@2': 0.75}
    """
    r = _Ranked("precision_at_k", scores, relevance, mask, k, ignore_ties)
    if r.n == 0:
        return r.item(_zeros(r.queries.shape[0]), _PRECISION)
    hits = r.expected_hits()
    return r.item(div_count(hits, jnp.full(hits.hi.shape, r.k, jnp.int32)), _PRECISION)


@_documented
def recall_at_k(
    scores: Any, relevance: Any, *, k: int, mask: Any = None, ignore_ties: bool = False
) -> dict[str, Any]:
    """Recall at ``k``: the relevant candidates among the top ``k``, over the query's
    relevant candidates.

    torchmetrics' ``RetrievalRecall(top_k=k)``: a query without relevant candidates counts 0;
    ``k`` beyond ``L`` takes all candidates (recall 1 for a query with a relevant one).
    Tie-aware (the default): a tie group straddling rank ``k`` contributes ``c * w / g``
    relevant candidates, as in :func:`precision_at_k`.

    {args}
    """
    r = _Ranked("recall_at_k", scores, relevance, mask, k, ignore_ties)
    if r.n == 0:
        return r.item(_zeros(r.queries.shape[0]), _RECALL)
    hits = r.expected_hits()
    total = r.before[:, -1]
    some = total > 0
    value = div_count(hits, jnp.maximum(total, 1))
    return r.item(exact.Pair(jnp.where(some, value.hi, 0.0), value.lo), _RECALL)


def _product(x: exact.Pair) -> exact.Pair:
    """The double-float product over the last axis, a tree of pairwise products."""
    hi, lo = x.hi, x.lo
    while hi.shape[-1] > 1:
        if hi.shape[-1] % 2:
            one = jnp.ones((*hi.shape[:-1], 1), hi.dtype)
            hi, lo = jnp.concatenate([hi, one], -1), jnp.concatenate([lo, 0 * one], -1)
        p = exact.mul(
            exact.Pair(hi[..., 0::2], lo[..., 0::2]), exact.Pair(hi[..., 1::2], lo[..., 1::2])
        )
        hi, lo = p.hi, p.lo
    return exact.Pair(hi[..., 0], lo[..., 0])


@_documented
def hit_rate(
    scores: Any, relevance: Any, *, k: int, mask: Any = None, ignore_ties: bool = False
) -> dict[str, Any]:
    """Hit rate at ``k``: the fraction of queries with a relevant candidate in the top ``k``.

    torchmetrics' ``RetrievalHitRate(top_k=k)``: a query without relevant candidates counts
    0; ``k`` beyond ``L`` takes all candidates. Tie-aware (the default): a query whose only
    chance of a hit is a tie group straddling rank ``k`` (``g`` candidates, ``c`` relevant,
    ``w`` positions in the top ``k``) counts the probability of a hit over the group's orders,
    ``1 - C(g - c, w) / C(g, w)`` (hypergeometric), exactly.

    {args}
    """
    r = _Ranked("hit_rate", scores, relevance, mask, k, ignore_ties)
    q = r.queries.shape[0]
    if r.n == 0:
        return r.item(_zeros(q), _HIT)
    a, g, c, w = r.boundary()
    j = jnp.arange(r.n, dtype=jnp.int32)[None, :]
    use = j < w[:, None]
    num = jnp.where(use, jnp.maximum(g[:, None] - c[:, None] - j, 0), 1)
    den = jnp.where(use, g[:, None] - j, 1)
    miss = _product(exact.div(_pair(num), _pair(den)))  # no relevant among the w drawn
    found = r.at(r.before, a) > 0  # a relevant candidate ranks above the boundary group
    # 1 - miss: a literal 1 lets XLA's simplifier fold TwoSum's error term away (under jit,
    # even exact.sub's); a 1 it cannot see through keeps it
    one = jnp.where(w >= 0, 1.0, 0.0).astype(miss.hi.dtype)
    hit = exact.sub(exact.Pair(one, jnp.zeros_like(one)), miss)
    value = exact.Pair(jnp.where(found, 1.0, hit.hi), jnp.where(found, 0.0, hit.lo))
    return r.item(value, _HIT)


def _scan_product(x: exact.Pair, reverse: bool) -> exact.Pair:
    """Cumulative double-float products along the last axis."""

    def mul(u: tuple[Any, Any], v: tuple[Any, Any]) -> tuple[Any, Any]:
        p = exact.mul(exact.Pair(*u), exact.Pair(*v))
        return p.hi, p.lo

    hi, lo = jax.lax.associative_scan(mul, (x.hi, x.lo), reverse=reverse, axis=x.hi.ndim - 1)
    return exact.Pair(hi, lo)


def _masked(x: exact.Pair, keep: Any) -> exact.Pair:
    return exact.Pair(jnp.where(keep, x.hi, 0.0), jnp.where(keep, x.lo, 0.0))


def _row_total(x: exact.Pair) -> exact.Pair:
    """Sums over the last axis, nearly exact."""
    return pair_total(exact.Pair(jnp.moveaxis(x.hi, -1, 0), jnp.moveaxis(x.lo, -1, 0)))


@_documented
def map_at_k(
    scores: Any, relevance: Any, *, k: int, mask: Any = None, ignore_ties: bool = False
) -> dict[str, Any]:
    """Mean average precision at ``k``.

    torchmetrics' ``RetrievalMAP(top_k=k)``: a query's average precision at ``k`` is the mean,
    over the relevant candidates ranked in the top ``k``, of the precision at their rank,
    ``AP@k = (1 / m) sum_{i <= k, rel_i} hits(i) / i`` with ``m`` the relevant candidates in
    the top ``k`` (not ``min(k, R)``); a query with none there counts 0 (so does one without
    relevant candidates); ``k`` beyond ``L`` takes all candidates.

    Tie-aware (the default): the exact expected ``AP@k`` over the orders of every tie group
    (all orders equally likely). Groups entirely in the top ``k`` enter through the expected
    products of relevances (McSherry and Najork, "Computing information retrieval performance
    measures efficiently in the presence of tied scores", 2008: within a group ``E[rel_i] =
    c / g`` and ``E[rel_i rel_j] = c (c - 1) / (g (g - 1))``); the group straddling rank
    ``k`` makes ``m`` random, so the expectation is taken over the hypergeometric number
    ``h`` of its relevant candidates drawn into the top ``k``:
    ``E[AP@k] = sum_h P(h) E[numerator | h] / (m_0 + h)``.

    {args}
    """
    r = _Ranked("map_at_k", scores, relevance, mask, k, ignore_ties)
    q, n = r.queries.shape[0], r.n
    if n == 0:
        return r.item(_zeros(q), _MAP)
    g, c, offset, first = r.group()
    i = jnp.arange(n, dtype=jnp.int32)[None, :]
    a, gb, cb, w = r.boundary()
    m0 = r.at(r.before, a)  # relevant candidates ranked above the boundary group
    # the groups above the boundary: sum_i E[rel_i * hits(i)] / (i + 1)
    share = div_count(_pair(c), g)
    pairs = div_count(_pair(c * (c - 1)), jnp.maximum(g * (g - 1), 1))
    expected = dd_add(dd_mul(share, _pair(first + 1)), dd_mul(pairs, _pair(offset)))
    rank = jnp.broadcast_to(i + 1, (q, n))
    n0 = _row_total(_masked(div_count(expected, rank), i < a[:, None]))
    # the boundary group's positions a <= i < top: S1 = sum 1 / (i + 1), S2 = sum (i - a) / (i + 1)
    inside = (i >= a[:, None]) & (i < r.top)
    s1 = _row_total(_masked(div_count(_pair(jnp.ones_like(rank)), rank), inside))
    s2 = _row_total(_masked(div_count(_pair(i - a[:, None]), rank), inside))
    coef_a = div_count(dd_mul(s1, _pair(m0 + 1)), jnp.maximum(w, 1))
    coef_b = div_count(s2, jnp.maximum(w * (w - 1), 1))  # 0 when w = 1: s2 is 0
    # P(h), h = 0..n, up to a common factor: ratios P(h + 1) / P(h) from the mode outwards
    h = jnp.arange(n + 1, dtype=jnp.int32)[None, :]
    gb, cb, w = gb[:, None], cb[:, None], w[:, None]
    low, high = jnp.maximum(0, w - (gb - cb)), jnp.minimum(cb, w)
    mode = jnp.clip(((w + 1) * (cb + 1)) // (gb + 2), low, high)
    t = h[:, :-1]  # ratio(t) = P(t + 1) / P(t)
    up_n, up_d = (cb - t) * (w - t), (t + 1) * (gb - cb - w + t + 1)
    forward = (t >= mode) & (t < high)
    backward = (t >= low) & (t < mode)
    one = jnp.ones_like(up_n)
    fwd = _scan_product(
        exact.div(_pair(jnp.where(forward, up_n, one)), _pair(jnp.where(forward, up_d, one))),
        reverse=False,
    )
    bwd = _scan_product(
        exact.div(_pair(jnp.where(backward, up_d, one)), _pair(jnp.where(backward, up_n, one))),
        reverse=True,
    )
    ones = jnp.ones((q, 1), jnp.float32)
    zeros = jnp.zeros((q, 1), jnp.float32)
    after = exact.Pair(jnp.concatenate([ones, fwd.hi], -1), jnp.concatenate([zeros, fwd.lo], -1))
    ahead = exact.Pair(jnp.concatenate([bwd.hi, ones], -1), jnp.concatenate([bwd.lo, zeros], -1))
    weight = exact.Pair(
        jnp.where(h > mode, after.hi, jnp.where(h < mode, ahead.hi, 1.0)),
        jnp.where(h > mode, after.lo, jnp.where(h < mode, ahead.lo, 0.0)),
    )
    weight = _masked(weight, (h >= low) & (h <= high))
    # E[AP | h] = (N0 + A h + B h (h - 1)) / (m0 + h), 0 where m0 + h = 0
    cond = dd_add(
        exact.Pair(n0.hi[:, None], n0.lo[:, None]),
        dd_add(
            dd_mul(exact.Pair(coef_a.hi[:, None], coef_a.lo[:, None]), _pair(h)),
            dd_mul(exact.Pair(coef_b.hi[:, None], coef_b.lo[:, None]), _pair(h * (h - 1))),
        ),
    )
    found = m0[:, None] + h
    cond = _masked(div_count(cond, jnp.maximum(found, 1)), found > 0)
    expected_ap = exact.div(_row_total(dd_mul(weight, cond)), _row_total(weight))
    return r.item(expected_ap, _MAP)


class PrecisionAtK(PairSums):
    """The log mode of :func:`precision_at_k`: summed per-query precisions over the count."""

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        return _mean(sums, count)


class RecallAtK(PairSums):
    """The log mode of :func:`recall_at_k`: summed per-query recalls over the count."""

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        return _mean(sums, count)


class MAPAtK(PairSums):
    """The log mode of :func:`map_at_k`: summed average precisions over the query count."""

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        return _mean(sums, count)


class HitRate(PairSums):
    """The log mode of :func:`hit_rate`: summed per-query hits over the query count."""

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        return _mean(sums, count)


def _mean(sums: np.ndarray, count: np.ndarray) -> float:
    total = np.asarray(sums, np.float64)
    return float((total[0] + total[1]) / np.float64(count))


_PRECISION, _RECALL = PrecisionAtK.configure(), RecallAtK.configure()
_MAP, _HIT = MAPAtK.configure(), HitRate.configure()
