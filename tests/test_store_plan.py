"""Plans: cached per structure, how the state grows, where inputs go, and what is refused."""

from __future__ import annotations

import numpy as np
import pytest

from metricskit._engine.step import Layout, make_plan, parse, step_signature


def _plan(layout, step, modes=("mean",)):
    return make_plan(layout, step_signature(parse(step, modes)))


def test_plans_are_cached_and_an_unchanged_step_keeps_the_layout():
    first = _plan(Layout(), {"a": 1.0, "b": 2.0})
    assert first.grows and _plan(Layout(), {"b": 5.0, "a": 3.0}) is first  # order-free
    steady = _plan(first.after, {"a": 1.0, "b": 2.0})
    assert not steady.grows and steady.after is first.after
    assert all(s.rows is None for s in steady.sources)
    (route,) = steady.routes
    assert route.rows is None and route.skip is None  # every row, in order: no gather


def test_new_keys_are_inserted_in_order_and_routes_pick_rows():
    before = _plan(Layout(), {"b": 1.0, "d": 2.0}).after
    plan = _plan(before, {"c": 1.0, "a": 2.0})
    (source,) = plan.sources
    assert plan.after.groups[0].keys == ("a", "b", "c", "d") and source.rows == (-1, 0, -1, 1)
    (route,) = plan.routes
    assert route.rows == (0, 2) and plan.slots[route.slot].entries == (0, 1)


def test_modes_of_one_key_share_one_input_slot():
    plan = _plan(Layout(), {"x": 1.0, "y": 2.0}, ("mean", "max", "std"))
    assert len(plan.slots) == 1 and len(plan.routes) == 3


def test_latest_step_modes_follow_the_batch_and_accumulating_ones_refuse():
    before = _plan(Layout(), {"ll": np.ones(4)}, ("single_noreduce",)).after
    moved = _plan(before, {"ll": np.ones(2)}, ("single_noreduce",))
    assert [g.signature.fields[0][1].shape for g in moved.after.groups] == [(2,)]
    before = _plan(Layout(), {"acc": np.ones(4)}).after
    with pytest.raises(
        ValueError, match=r"'acc'.*shape \(2,\).*earlier steps gave value shape \(4,\)"
    ):
        _plan(before, {"acc": np.ones(2)})


def test_integer_states_refuse_float_steps_with_the_fix():
    before = _plan(Layout(), {"loss": 0}).after
    with pytest.raises(TypeError, match=r"'loss'.*holds integers.*write 0\.0, not 0"):
        _plan(before, {"loss": 1.5})
    assert not _plan(_plan(Layout(), {"x": 0.5}).after, {"x": 2}).grows  # ints into floats: fine
