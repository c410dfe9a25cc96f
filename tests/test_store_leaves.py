"""A store's flat leaves, through jax.tree and MetricStore: order, rebuilding, paths, shapes."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metricskit as mk
from metricskit import exact


@mk.register_metric("leaves_scaled_sum")
class ScaledSum(mk.Metric):
    """A metric with a static option (part of the structure, not a leaf)."""

    total = mk.state("sum")
    scale: float = mk.static(2.0)

    def update(self, value, count):
        return self.replace(total=self.total + self.scale * value)

    def compute(self):
        return self.total


def step(v):
    return {
        "loss": v,
        "tokens": {"value": 7, "log_modes": ["mean", "max"]},
        "ll": {"value": np.arange(3, dtype=np.float32) * 2, "log_modes": ["single_noreduce"]},
        "scaled": {"value": np.float32(1.0), "log_modes": [ScaledSum(scale=3.0)]},
    }


def make_store():
    return mk.MetricStore(default_log_modes=("mean", "std", "max")).update(step(1.5))


PATHS = [  # groups in mode order (max, mean, single_noreduce, std, the configured metric)
    "metrics[0].value.hi",  # max of loss and tokens: an exact Pair (hi, lo) and a count
    "metrics[0].value.lo",
    "metrics[0].count",
    "metrics[1].total.hi",  # mean of loss (float): a Pair total, a Words count (lo, hi)
    "metrics[1].total.lo",
    "metrics[1].count.lo",
    "metrics[1].count.hi",
    "metrics[2].total.lo",  # mean of tokens (int): a Words total, so its own group
    "metrics[2].total.hi",
    "metrics[2].count.lo",
    "metrics[2].count.hi",
    "metrics[3].value",  # single_noreduce of ll: float32 values as they are, a Words count
    "metrics[3].count.lo",
    "metrics[3].count.hi",
    "metrics[4].count",  # std of loss
    "metrics[4].mean.hi",
    "metrics[4].mean.lo",
    "metrics[4].m2.hi",
    "metrics[4].m2.lo",
    "metrics[5].total",  # the configured metric: one plain leaf
]


def _paths(store):
    return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(store)[0]]


def test_leaves_are_the_metrics_leaves_in_order_and_rebuild_the_store():
    store = make_store()
    leaves, treedef = jax.tree.flatten(store)
    assert all(a is b for a, b in zip(leaves, jax.tree.leaves(store.metrics), strict=True))
    rebuilt = jax.tree.unflatten(treedef, leaves)
    assert jax.tree.structure(rebuilt.metrics) == jax.tree.structure(store.metrics)
    assert [type(m) for m in rebuilt.metrics] == [type(m) for m in store.metrics]
    kinds = set()
    for path, leaf in zip(_paths(rebuilt), leaves, strict=True):
        group, name, part = re.fullmatch(r"\.metrics\[(\d+)\]\.(\w+)(?:\.(hi|lo))?", path).groups()
        field = getattr(rebuilt.metrics[int(group)], name)
        if part is None:  # a plain array field is its own leaf
            assert isinstance(field, jax.Array) and field is leaf, path
        else:  # an exact accumulator's parts are leaves
            assert isinstance(field, exact.Pair | exact.Words) and getattr(field, part) is leaf
            kinds.add(type(field))
    assert kinds == {exact.Pair, exact.Words}
    (scaled,) = [m for m in rebuilt.metrics if isinstance(m, ScaledSum)]
    assert scaled.scale == 3.0  # static configuration is structure
    assert all(a is b for a, b in zip(jax.tree.leaves(rebuilt), leaves, strict=True))
    placeholders = list(range(len(leaves)))  # unflattening checks nothing
    assert jax.tree.leaves(jax.tree.unflatten(treedef, placeholders)) == placeholders
    again, want = rebuilt.compute(), store.compute()
    assert list(again) == list(want)
    for name in want:
        np.testing.assert_array_equal(again[name], want[name])


def test_paths_name_every_leaf_and_checkpoints_use_them(tmp_path):
    store = make_store()
    assert _paths(store) == [f".{p}" for p in PATHS]
    assert len(PATHS) == len(jax.tree.leaves(store)) == len(set(PATHS))
    store.save(tmp_path / "store.npz")
    with np.load(tmp_path / "store.npz") as saved:
        assert [name for name in saved.files if name in PATHS] == PATHS
    ints = mk.MetricStore().update({"n": {"value": 1, "log_modes": ["mean"]}})  # Words
    assert _paths(ints) == [
        f".metrics[0].{field}.{part}" for field in ("total", "count") for part in ("lo", "hi")
    ]
    floats = mk.MetricStore().update({"x": {"value": 1.0, "log_modes": ["max"]}})  # a Pair
    assert _paths(floats) == [".metrics[0].value.hi", ".metrics[0].value.lo", ".metrics[0].count"]


def _nested_calls(jaxpr):
    return [eqn for eqn in jaxpr.eqns if "jaxpr" in eqn.params]


def test_the_first_leaf_and_how_state_is_reset_eagerly_placed_traced_and_empty(compiles):
    store = make_store()
    assert store.first_leaf() is jax.tree.leaves(store)[0]
    # eager state that no one placed: one compiled call resets every leaf
    jax.clear_caches()
    compiles.clear()
    reset = store.reset()
    assert len(compiles) == 1
    assert jax.tree.structure(reset) == jax.tree.structure(store)
    assert all(not np.asarray(x).any() for x in jax.tree.leaves(reset))
    # placed state keeps its placement (so a jitted step that placed it does not recompile)
    device = jax.devices()[-1]
    placed = jax.device_put(store, device).reset()
    assert all(x.devices() == {device} for x in jax.tree.leaves(placed))
    assert all(not np.asarray(x).any() for x in jax.tree.leaves(placed))
    # traced state: reset inline, no nested compiled call
    assert _nested_calls(jax.make_jaxpr(lambda s: s.reset())(store).jaxpr) == []
    zeros = jax.jit(lambda s: s.reset())(store)
    assert all(not np.asarray(x).any() for x in jax.tree.leaves(zeros))
    empty = mk.MetricStore()
    assert empty.first_leaf() is None and jax.tree.leaves(empty) == []
    assert empty.reset().compute() == {} and empty.compute() == {}


def test_compute_refuses_a_vmapped_store_and_reports_a_normal_one():
    store = make_store()
    assert store.compute().keys() == make_store().compute().keys()
    batched = jax.vmap(lambda v: store.update(step(v)))(jnp.arange(4.0))
    pattern = r"^MetricStore\.compute\(\): leaf metrics\[0\]\..*\(4, 2\).*vmap"
    with pytest.raises(ValueError, match=pattern):
        batched.compute()
    # the shapes alone tell: an abstract batched store is refused the same way
    abstract = jax.eval_shape(lambda v: jax.vmap(lambda x: store.update(step(x)))(v), jnp.ones(4))
    with pytest.raises(ValueError, match=pattern):
        abstract.compute()
    member = jax.tree.map(lambda x: x[1], batched)
    assert member.compute()["loss_max"] == 1.5  # max of 1.5 and 1.0
