"""A store's leaves by its layout: flatten/unflatten round trips, paths, first leaf, shapes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metricskit as mk
from metricskit import exact
from metricskit._engine import kernels


def step(v):
    return {
        "loss": v,
        "tokens": {"value": 7, "log_modes": ["mean", "max"]},
        "ll": {"value": np.arange(3.0) * 2, "log_modes": ["single_noreduce"]},
    }


def make_store():
    return mk.MetricStore(default_log_modes=("mean", "std", "max")).update(step(1.5))


def test_flatten_is_jax_order_and_unflatten_rebuilds_the_metrics():
    store = make_store()
    metrics, layout = store.metrics, store.layout
    flat = kernels.flatten(metrics, layout)
    assert all(a is b for a, b in zip(flat, jax.tree.leaves(store), strict=True))
    assert all(a is b for a, b in zip(flat, jax.tree.leaves(metrics), strict=True))
    rebuilt = kernels.unflatten(layout, flat)
    assert jax.tree.structure(rebuilt) == jax.tree.structure(metrics)
    assert [type(m) for m in rebuilt] == [type(m) for m in metrics]
    storages = set()
    for group, metric in zip(layout.groups, rebuilt, strict=True):
        for name, spec in group.signature.fields:
            kind = {"pair": exact.Pair, "words": exact.Words}.get(spec.storage, jax.Array)
            assert isinstance(getattr(metric, name), kind)
            storages.add(spec.storage)
        for name, static in group.signature.statics:
            assert getattr(metric, name) == static
    assert {"pair", "words"} <= storages
    assert all(a is b for a, b in zip(kernels.flatten(rebuilt, layout), flat, strict=True))
    placeholders = list(range(len(flat)))  # unflattening checks nothing
    assert kernels.flatten(kernels.unflatten(layout, placeholders), layout) == placeholders
    again, want = jax.tree.unflatten(jax.tree.structure(store), flat).compute(), store.compute()
    assert list(again) == list(want)
    for name in want:
        np.testing.assert_array_equal(again[name], want[name])


def test_paths_name_every_leaf_as_jax_key_paths_do():
    store = make_store()
    names = kernels.paths(store.layout)
    assert len(names) == len(kernels.flatten(store.metrics, store.layout)) == len(set(names))
    keyed = jax.tree_util.tree_flatten_with_path(store)[0]
    assert [jax.tree_util.keystr(k) for k, _ in keyed] == [f".{n}" for n in names]
    ints = mk.MetricStore().update({"n": {"value": 1, "log_modes": ["mean"]}})  # Words
    assert kernels.paths(ints.layout) == tuple(
        f"metrics[0].{field}.{part}" for field in ("total", "count") for part in ("lo", "hi")
    )
    floats = mk.MetricStore().update({"x": {"value": 1.0, "log_modes": ["max"]}})  # a Pair
    assert kernels.paths(floats.layout) == (
        "metrics[0].value.hi",
        "metrics[0].value.lo",
        "metrics[0].count",
    )


def test_first_and_uncommitted_eager_placed_traced_and_empty():
    store = make_store()
    assert kernels.first(store.metrics, store.layout) is jax.tree.leaves(store)[0]
    assert kernels.uncommitted(store.metrics, store.layout) is True
    placed = jax.device_put(store, jax.devices()[-1])
    assert kernels.uncommitted(placed.metrics, placed.layout) is False
    seen = []
    jax.jit(lambda s: seen.append(kernels.uncommitted(s.metrics, s.layout)) or s)(store)
    assert seen == [False]
    empty = mk.MetricStore()
    assert kernels.first(empty.metrics, empty.layout) is None
    assert kernels.uncommitted(empty.metrics, empty.layout) is False


def test_check_shapes_refuses_a_vmapped_store_and_passes_a_normal_one():
    store = make_store()
    assert kernels.check_shapes(store.metrics, store.layout, "MetricStore.compute()") is None
    jax.jit(lambda s: kernels.check_shapes(s.metrics, s.layout, "in jit") or s)(store)
    batched = jax.vmap(lambda v: store.update(step(v)))(jnp.arange(4.0))
    with pytest.raises(ValueError, match=r"^report\(\): leaf metrics\[0\]\..*\(4, 2\).*vmap"):
        kernels.check_shapes(batched.metrics, batched.layout, "report()")
    member = jax.tree.map(lambda x: x[1], batched)
    assert kernels.check_shapes(member.metrics, member.layout, "report()") is None
