"""Retrieval task metrics against float64 NumPy references written from torchmetrics'
definitions: a stable sort (ignore_ties=True) and the exact expectation over every order of
tied scores (the default), over batches, masks, splits, devices and edge cases."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metricskit as mk

NAMES = ["precision_at_k", "recall_at_k", "map_at_k", "hit_rate"]


def _one(name, relevant, k):
    """One query's value from its relevances in ranked order (torchmetrics' definitions)."""
    top = relevant[:k]
    if name == "precision_at_k":
        return top.sum() / k  # adaptive_k=False: over k, even past the candidates
    if name == "recall_at_k":
        return top.sum() / relevant.sum() if relevant.any() else 0.0
    if name == "hit_rate":
        return float(top.any())
    if not top.any():  # map_at_k: the mean precision at the relevant ranks in the top k
        return 0.0
    ranks = np.flatnonzero(top) + 1
    return np.mean(np.arange(1, len(ranks) + 1) / ranks)


def _stable(name, scores, relevance, k):
    """A query's value ranked by a stable sort of descending scores (ties by position)."""
    return _one(name, relevance[np.argsort(-scores, kind="stable")] > 0, k)


def _expected(name, scores, relevance, k):
    """A query's expected value over every order of its tied scores, by enumeration."""
    groups = [np.flatnonzero(scores == v) for v in np.unique(scores)[::-1]]
    values = [
        _one(name, relevance[np.concatenate(order)] > 0, k)
        for order in itertools.product(*(itertools.permutations(g) for g in groups))
    ]
    return np.mean(values)


def _reference(name, scores, relevance, k, mask=None, ties=True):
    """The mean over the queries with a counted candidate, masked candidates removed."""
    mask = np.ones(scores.shape, bool) if mask is None else np.asarray(mask)
    if mask.ndim == 1:
        mask = np.broadcast_to(mask[:, None], scores.shape)
    one = _expected if ties else _stable
    out = [
        one(name, s[m], r[m], k) for s, r, m in zip(scores, relevance, mask, strict=True) if m.any()
    ]
    return np.mean(out) if out else 0.0


def _items(scores, relevance, k, mask=None, ignore_ties=False):
    return {
        name: getattr(mk.tasks, name)(scores, relevance, k=k, mask=mask, ignore_ties=ignore_ties)
        for name in NAMES
    }


def _tied(rng, q=12, n=6):
    """Scores with many ties (three values), binary and graded relevance."""
    scores = rng.integers(0, 3, size=(q, n)).astype(np.float32)
    relevance = rng.integers(0, 3, size=(q, n)) * (rng.random((q, n)) < 0.5)
    return scores, relevance


@pytest.mark.parametrize("k", [1, 3, 8])
def test_tie_aware_values_are_the_expectation_over_orders_of_ties(k, rng):
    scores, relevance = _tied(rng)
    host = mk.MetricStore().update(_items(scores, relevance, k)).compute()
    for name in NAMES:
        want = _reference(name, scores, relevance, k)
        assert host[name] == pytest.approx(want, rel=1e-12, abs=1e-15), name
    # the listing order does not matter
    flipped = mk.MetricStore().update(_items(scores[:, ::-1], relevance[:, ::-1], k)).compute()
    for name in NAMES:
        assert flipped[name] == pytest.approx(host[name], rel=1e-12, abs=1e-15), name


@pytest.mark.parametrize("k", [2, 8])
def test_ignore_ties_matches_a_stable_sort(k, rng):
    scores, relevance = _tied(rng)
    host = mk.MetricStore().update(_items(scores, relevance, k, ignore_ties=True)).compute()
    for name in NAMES:
        want = _reference(name, scores, relevance, k, ties=False)
        assert host[name] == pytest.approx(want, rel=1e-12, abs=1e-15), name
    # distinct scores: tie-aware and position order agree, and match the stable reference
    distinct = rng.normal(size=scores.shape)
    host = mk.MetricStore().update(_items(distinct, relevance, k)).compute()
    for name in NAMES:
        want = _reference(name, distinct, relevance, k, ties=False)
        assert host[name] == pytest.approx(want, rel=1e-12, abs=1e-15), name


def test_jit_batches_splits_and_masks_match_the_reference(rng):
    scores, relevance = _tied(rng, q=10, n=5)
    k = 3
    step = jax.jit(lambda store, mask: store.update(_items(scores, relevance, k, mask=mask)))
    rows = np.arange(10)
    whole = step(mk.MetricStore(), rows >= 0).compute()
    for name in NAMES:
        assert whole[name] == pytest.approx(_reference(name, scores, relevance, k), rel=1e-12)
    for cuts in ([1, 9], [3, 5, 7]):
        bounds = [0, *cuts, 10]
        parts = [
            step(mk.MetricStore(), (rows >= a) & (rows < b)) for a, b in itertools.pairwise(bounds)
        ]
        merged = functools.reduce(mk.MetricStore.aggregate, parts).compute()
        for name in NAMES:
            assert merged[name] == pytest.approx(whole[name], rel=1e-12, abs=1e-15), (cuts, name)
    # a (Q, L) mask of candidates: masked ones are not there; a query left empty does not count
    candidates = rng.random((10, 5)) < 0.6
    candidates[4] = False
    host = jax.jit(lambda m: mk.MetricStore().update(_items(scores, relevance, k, mask=m)))(
        candidates
    ).compute()
    for name in NAMES:
        want = _reference(name, scores, relevance, k, mask=candidates)
        assert host[name] == pytest.approx(want, rel=1e-12, abs=1e-15), name


def test_queries_without_relevant_candidates_count_zero_and_k_past_the_candidates():
    scores = jnp.array([[0.3, 0.2, 0.1], [0.3, 0.2, 0.1]])
    relevance = jnp.array([[0, 1, 1], [0, 0, 0]])  # the second query: nothing relevant
    host = mk.MetricStore().update(_items(scores, relevance, k=5)).compute()
    # k = 5 > 3 candidates: precision still over k (torchmetrics' adaptive_k=False)
    assert host == {
        "precision_at_k": pytest.approx((2 / 5 + 0) / 2),
        "recall_at_k": 0.5,
        "map_at_k": pytest.approx((1 / 2 + 2 / 3) / 2 / 2),
        "hit_rate": 0.5,
    }
    # a constant scorer: every order equally likely
    flat = jnp.zeros((1, 4))
    host = mk.MetricStore().update(_items(flat, jnp.array([[1, 0, 0, 0]]), k=2)).compute()
    assert host["precision_at_k"] == pytest.approx(1 / 4)
    assert host["recall_at_k"] == pytest.approx(1 / 2)
    assert host["hit_rate"] == pytest.approx(1 / 2)
    assert host["map_at_k"] == pytest.approx((1 / 4) * 1 + (1 / 4) * (1 / 2))
    # no queries, all queries masked: no samples, the store's 0.0
    empty = _items(jnp.zeros((0, 4)), jnp.zeros((0, 4)), k=2)
    masked = _items(scores, relevance, k=2, mask=jnp.zeros(2, bool))
    for items in (empty, masked):
        assert mk.MetricStore().update(items).compute() == dict.fromkeys(NAMES, 0.0)


def test_a_nan_score_or_relevance_makes_the_query_nan_and_follows_the_nan_policy():
    @jax.jit
    def step(store, s, r):
        return store.update(_items(s, r, k=2))

    s, r = jnp.array([[0.1, 0.2, 0.3]]), jnp.array([[1.0, 0.0, 1.0]])
    for bad in ((s.at[0, 1].set(jnp.nan), r), (s, r.at[0, 0].set(jnp.nan))):
        host = step(mk.MetricStore(), *bad).compute()
        assert all(np.isnan(host[name]) for name in NAMES), host
    eager = mk.MetricStore().update(_items(s.at[0, 0].set(jnp.nan), r, k=1)).compute()
    assert all(np.isnan(eager[name]) for name in NAMES)
    # a masked NaN does not count
    host = mk.MetricStore().update(
        _items(s.at[0, 0].set(jnp.nan), r, k=1, mask=jnp.array([[False, True, True]]))
    )
    assert host.compute()["hit_rate"] == 1.0
    skip = step(mk.MetricStore(nan_policy="skip"), s.at[0, 1].set(jnp.nan), r)
    host = step(skip, s, r).compute()
    assert host["map_at_k"] == 1.0 and host["map_at_k_nonfinite"] == 1


def test_bad_k_and_shapes_are_clear_errors():
    s = jnp.ones((2, 3))
    for name in NAMES:
        fn = getattr(mk.tasks, name)
        for k in (0, -1, 1.5, True, None):
            with pytest.raises(ValueError, match=rf"{name}: k="):
                fn(s, s, k=k)
        with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
            fn(s, jnp.ones((2, 4)), k=1)
        with pytest.raises(ValueError, match=r"mask has shape \(3,\)"):
            fn(s, s, k=1, mask=jnp.ones(3, bool))


def test_eight_devices_sync_and_axis_name_give_one_devices_numbers(rng):
    from jax.sharding import PartitionSpec as P

    from metricskit.compat import make_mesh, shard_map

    assert jax.device_count() == 8, "XLA_FLAGS must force 8 host devices (conftest)"
    scores, relevance = _tied(rng, q=16, n=5)
    one = mk.MetricStore().update(_items(scores, relevance, 2)).compute()
    mesh = make_mesh((8,), ("data",))

    def synced(s, r):
        return mk.MetricStore().update(_items(s, r, 2)).sync("data")

    def reduced(s, r):
        return mk.MetricStore().update(_items(s, r, 2), axis_name="data")

    for fn in (synced, reduced):
        mapped = shard_map(fn, mesh=mesh, in_specs=(P("data"),) * 2, out_specs=P())
        host = jax.jit(mapped)(jnp.asarray(scores), jnp.asarray(relevance)).compute()
        for name in NAMES:
            assert host[name] == pytest.approx(one[name], rel=1e-12), (fn.__name__, name)
            want = _reference(name, scores, relevance, 2)
            assert host[name] == pytest.approx(want, rel=1e-12), (fn.__name__, name)
