"""A store as a pytree, through jax.tree, pickle and copy: static structure, leaves, rebuilding."""

from __future__ import annotations

import copy
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metricskit as mk

ATTRIBUTES = ("default_log_modes", "nan_policy", "layout")


def _store(**options):
    store = mk.MetricStore(
        **{"default_log_modes": ("mean", "max"), "nan_policy": "skip", **options}
    )
    return store.update({"loss": 2.0, "tokens": {"value": 7, "count": 2}})


def test_flatten_and_unflatten_round_trip_the_attributes_and_results():
    store = _store()
    leaves, treedef = jax.tree.flatten(store)
    # the static part: the default modes, the NaN policy and the layout
    assert treedef.node_data() == (mk.MetricStore, (("mean", "max"), "skip", store.layout))
    assert treedef != jax.tree.structure(_store(nan_policy="propagate"))
    assert treedef != jax.tree.structure(_store(default_log_modes=("max", "mean")))
    # max: 3 (a Pair and a count); mean: 4 for the float key, 4 for the int key; nonfinite: 1
    assert len(leaves) == treedef.num_leaves == 12
    for a, b in zip(leaves, jax.tree.leaves(store.metrics), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    rebuilt = jax.tree.unflatten(treedef, leaves)
    assert isinstance(rebuilt, mk.MetricStore)
    assert {name: getattr(rebuilt, name) for name in ATTRIBUTES} == {
        name: getattr(store, name) for name in ATTRIBUTES
    }
    assert rebuilt.compute() == store.compute()


def test_leaves_are_keyed_by_their_paths_and_unflatten_takes_placeholders():
    store = _store()
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(store)[0]]
    assert len(paths) == len(jax.tree.leaves(store)) and all(".metrics[" in p for p in paths)
    shapes = jax.eval_shape(lambda s: s, store)  # unflattened with ShapeDtypeStructs
    assert isinstance(shapes, mk.MetricStore) and shapes.layout == store.layout
    zeros = jax.tree.map(jnp.zeros_like, shapes)
    assert (
        zeros.update({"loss": 3.0, "tokens": {"value": 1, "count": 1}}).compute()["loss_max"] == 3.0
    )


def test_pickle_and_copies_rebuild_through_the_tree_and_stores_are_immutable():
    store = _store()
    for other in (pickle.loads(pickle.dumps(store)), copy.copy(store), copy.deepcopy(store)):
        assert isinstance(other, mk.MetricStore) and other.compute() == store.compute()
        assert jax.tree.structure(other) == jax.tree.structure(store)
    # what pickle stores is the static structure and the leaves, as they are
    rebuild, (cls, static, leaves) = store.__reduce__()
    assert cls is mk.MetricStore and static == jax.tree.structure(store).node_data()[1]
    assert all(a is b for a, b in zip(leaves, jax.tree.leaves(store), strict=True))
    assert rebuild(cls, static, leaves).compute() == store.compute()
    blank = mk.MetricStore()
    assert (blank.default_log_modes, blank.nan_policy, blank.metrics) == (None, "propagate", ())
    for name in ("default_log_modes", "nan_policy", "layout", "metrics"):
        with pytest.raises(AttributeError, match="MetricStore is immutable"):
            setattr(store, name, getattr(blank, name))
        with pytest.raises(AttributeError, match="MetricStore is immutable"):
            delattr(store, name)
    assert store.default_log_modes == ("mean", "max") and store.nan_policy == "skip"
