"""A store as a pytree: flattened by its layout, rebuilt without __init__, pickled alike."""

from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import numpy as np

import metricskit as mk
from metricskit._engine import kernels


def _store():
    store = mk.MetricStore(default_log_modes=("mean", "max"), nan_policy="skip")
    return store.update({"loss": 2.0, "tokens": {"value": 7, "count": 2}})


def test_flatten_and_unflatten_round_trip_the_attributes_and_results():
    store = _store()
    flat, aux = kernels.flatten_store(store)
    assert aux == (("mean", "max"), "skip", store.layout)
    assert len(flat) == len(jax.tree.leaves(store))
    for a, b in zip(flat, jax.tree.leaves(store), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    rebuilt = kernels.unflatten_store(mk.MetricStore, aux, flat)
    assert {
        name: getattr(rebuilt, name) for name in ("default_log_modes", "nan_policy", "layout")
    } == {name: getattr(store, name) for name in ("default_log_modes", "nan_policy", "layout")}
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


def test_build_sets_every_attribute_once_and_pickle_rebuilds_through_the_tree():
    store = _store()
    copy = pickle.loads(pickle.dumps(store))
    assert copy.compute() == store.compute()
    assert copy.__reduce__()[0] is kernels.unflatten_store
    blank = kernels.set_store(object.__new__(mk.MetricStore), None, "propagate", store.layout, ())
    assert (blank.default_log_modes, blank.nan_policy, blank.metrics) == (None, "propagate", ())
