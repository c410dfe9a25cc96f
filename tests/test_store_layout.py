"""A store's layout as the public API shows it: canonical groups, state structure, names."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import metricskit as mk

I32 = mk.Spec((), "int32")


def _abstract(tree):
    """A tree's structure and its leaves' shapes and dtypes."""
    return jax.tree.structure(tree), [
        (np.shape(x), np.dtype(x.dtype)) for x in jax.tree.leaves(tree)
    ]


def _leaves_by_path(store):
    return {
        jax.tree_util.keystr(path): leaf
        for path, leaf in jax.tree_util.tree_flatten_with_path(store)[0]
    }


def test_the_store_structure_does_not_depend_on_key_order():
    modes = ["mean", "max"]
    a = mk.MetricStore(default_log_modes=modes).update({"b": 2.0, "a": 1.0})
    b = mk.MetricStore(default_log_modes=modes).update({"a": 1.0, "b": 2.0})
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert hash(jax.tree.structure(a)) == hash(jax.tree.structure(b))
    traces = []
    step = jax.jit(lambda store: traces.append(store) or store)
    step(a), step(b)
    assert len(traces) == 1  # one structure: one trace
    # groups in canonical mode order (max before mean), keys sorted within a group
    leaves = _leaves_by_path(a)
    assert list(leaves) == [
        ".metrics[0].value.hi",  # max
        ".metrics[0].value.lo",
        ".metrics[0].count",
        ".metrics[1].total.hi",  # mean
        ".metrics[1].total.lo",
        ".metrics[1].count.lo",
        ".metrics[1].count.hi",
    ]
    np.testing.assert_array_equal(leaves[".metrics[0].value.hi"], [1.0, 2.0])
    np.testing.assert_array_equal(leaves[".metrics[1].total.hi"], [1.0, 2.0])
    # a group left without keys is dropped: the moved key's store is a fresh one's
    latest = mk.MetricStore(default_log_modes=["single_noreduce"])
    moved = latest.update({"ll": np.ones(4)}).update({"ll": np.ones(2)})
    assert jax.tree.structure(moved) == jax.tree.structure(latest.update({"ll": np.ones(2)}))
    assert len(jax.tree.leaves(moved)) == len(jax.tree.leaves(latest.update({"ll": np.ones(2)})))


@pytest.mark.parametrize(
    ("mode", "cls"),
    [
        ("mean", mk.MeanMetric),
        ("std", mk.StdMetric),
        ("max", mk.MaxMetric),
        ("single_noreduce", mk.NoReduceMetric),
    ],
)
def test_states_made_by_hand_have_the_structure_the_store_makes(mode, cls):
    for spec in (mk.Spec((3,), "float32"), mk.Spec((), "int64"), mk.Spec((2,), "float64")):
        example = {"value": np.zeros(spec.shape, spec.dtype), "log_modes": [mode]}
        made = mk.MetricStore().init({"j": example, "k": example})
        state = cls.empty(spec, I32)
        given = mk.MetricStore.from_mapping({"j": {mode: state}, "k": {mode: state}})
        assert jax.tree.structure(given) == jax.tree.structure(made), spec
        assert _abstract(given) == _abstract(made), spec
        assert _abstract(made["k"][mode]) == _abstract(state), spec
        # the stacked group: the one-key state's leaves with a leading key axis
        stacked = jax.tree.map(lambda x: np.stack([x, x]), state)
        assert [(np.shape(x), np.dtype(x.dtype)) for x in jax.tree.leaves(made)] == [
            (np.shape(x), np.dtype(x.dtype)) for x in jax.tree.leaves(stacked)
        ]


def test_new_keys_start_from_zero_states_of_their_structure(tmp_path):
    example = {f"k{i}": np.zeros(2, np.float32) for i in range(5)}
    store = mk.MetricStore(default_log_modes=["std"]).init(example)
    leaves = jax.tree.leaves(store)
    assert leaves and all(x.shape[0] == 5 and not np.asarray(x).any() for x in leaves)
    assert _abstract(store["k3"]["std"]) == _abstract(
        mk.StdMetric.empty(mk.Spec((2,), "float32"), I32)
    )
    # a checkpoint is read against the zero states its layout gives: the same structure
    store.save(tmp_path / "zeros.npz")
    loaded = mk.MetricStore.load(tmp_path / "zeros.npz")
    assert jax.tree.structure(loaded) == jax.tree.structure(store)
    assert all(not np.asarray(x).any() for x in jax.tree.leaves(loaded))


def test_keys_modes_and_reported_names_come_in_order():
    store = mk.MetricStore(default_log_modes=["mean", "max"]).update({"b": 1.0, "a": 2.0})
    assert list(store) == ["a", "b"] and tuple(store["a"]) == ("max", "mean")
    assert list(store.compute()) == ["a_max", "a_mean", "b_max", "b_mean"]
    assert repr(store) == "MetricStore(2 groups: a_max, a_mean, b_max, b_mean)"
    assert float(mk.exact.to_host(store["b"]["mean"].total)) == 1.0  # b's own row
    assert float(mk.exact.to_host(store["a"]["mean"].total)) == 2.0
    clash = {
        "x": {"value": 1.0, "log_modes": ["mean"]},
        "x_mean": {"value": 1.0, "log_modes": ["mean_nopostfix"]},
    }
    with pytest.raises(ValueError, match=r"'x_mean'.*rename"):
        mk.MetricStore().update(clash)
