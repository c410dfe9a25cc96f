"""Planning an update, through MetricStore: reuse per structure, growth, routing, refusals."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import metricskit as mk


def _primitives(jaxpr):
    """The names of the primitives ``jaxpr`` applies (at any depth)."""
    names = []
    for eqn in jaxpr.eqns:
        names.append(eqn.primitive.name)
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", None)
            if inner is not None:
                names += _primitives(getattr(inner, "jaxpr", inner))
    return names


def _staged(store, step):
    """The update of ``store`` by ``step`` as staged into a traced step: (constants, primitives)."""
    closed = jax.make_jaxpr(lambda s: s.update(step))(store)
    return closed.consts, set(_primitives(closed.jaxpr))


def test_an_unchanged_structure_reuses_its_compiled_update_and_keeps_the_layout(compiles):
    first = mk.MetricStore(default_log_modes=["mean"]).update({"a": 1.0, "b": 2.0})
    compiles.clear()
    again = mk.MetricStore(default_log_modes=["mean"]).update({"b": 5.0, "a": 3.0})
    assert compiles == []  # key order is no new structure
    assert jax.tree.structure(again) == jax.tree.structure(first)
    assert again.compute() == {"a_mean": 3.0, "b_mean": 5.0}
    assert first.init({"b": 0.0, "a": 0.0}) is first  # nothing to grow
    steady = first.update({"a": 1.0, "b": 2.0})
    assert steady.layout is first.layout
    # every row, in order: no rows are gathered or scattered
    _, primitives = _staged(first, {"a": 1.0, "b": 2.0})
    assert not primitives & {"gather", "scatter"}


def test_new_keys_are_inserted_in_order_and_updates_reach_their_rows():
    before = mk.MetricStore(default_log_modes=["mean"]).update({"b": 1.0, "d": 2.0})
    after = before.update({"c": 3.0, "a": 4.0})
    assert list(after) == ["a", "b", "c", "d"]
    assert after.compute() == {"a_mean": 4.0, "b_mean": 1.0, "c_mean": 3.0, "d_mean": 2.0}
    (total,) = [
        leaf
        for path, leaf in jax.tree_util.tree_flatten_with_path(after)[0]
        if jax.tree_util.keystr(path) == ".metrics[0].total.hi"
    ]
    np.testing.assert_array_equal(total, [4.0, 1.0, 3.0, 2.0])  # new rows 0 and 2, old kept
    counts = [int(mk.exact.to_host(after[key]["mean"].count)) for key in after]
    assert counts == [1, 1, 1, 1]
    # some rows of a group: they are gathered and scattered back
    _, primitives = _staged(before.init({"a": 0.0, "c": 0.0}), {"c": 3.0, "a": 4.0})
    assert {"gather", "scatter"} <= primitives


def test_the_modes_of_one_key_share_one_input():
    modes = ["mean", "max", "std"]
    store = mk.MetricStore(default_log_modes=modes).init({"x": np.float32(0), "y": np.float32(0)})
    step = {"x": np.float32(1), "y": np.float32(3)}
    consts, _ = _staged(store, step)
    assert len(consts) == 1 and np.asarray(consts[0]).tolist() == [1.0, 3.0]  # one stacked input
    assert store.update(step).compute() == {
        "x_max": 1.0,
        "x_mean": 1.0,
        "x_std": 0.0,
        "y_max": 3.0,
        "y_mean": 3.0,
        "y_std": 0.0,
    }


def test_latest_step_modes_follow_the_batch_and_accumulating_ones_refuse():
    latest = mk.MetricStore(default_log_modes=["single_noreduce"])
    moved = latest.update({"ll": np.ones(4, np.float32)}).update({"ll": np.full(2, 3, np.float32)})
    assert moved["ll"]["single_noreduce"].value.shape == (2,)
    fresh = latest.update({"ll": np.ones(2, np.float32)})
    assert jax.tree.structure(moved) == jax.tree.structure(fresh)  # no group left behind
    np.testing.assert_array_equal(moved.compute()["ll_single_noreduce"], [3.0, 3.0])
    before = mk.MetricStore(default_log_modes=["mean"]).update({"acc": np.ones(4)})
    with pytest.raises(
        ValueError, match=r"'acc'.*shape \(2,\).*earlier steps gave value shape \(4,\)"
    ):
        before.update({"acc": np.ones(2)})


def test_integer_states_refuse_float_steps_with_the_fix():
    before = mk.MetricStore(default_log_modes=["mean"]).update({"loss": 0})
    with pytest.raises(TypeError, match=r"'loss'.*holds integers.*write 0\.0, not 0"):
        before.update({"loss": 1.5})
    floats = mk.MetricStore(default_log_modes=["mean"]).update({"x": 0.5})
    assert floats.init({"x": 2}) is floats  # ints into floats: fine, the same structure
    assert floats.update({"x": 2}).compute() == {"x_mean": 1.25}
