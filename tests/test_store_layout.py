"""Layouts: canonical groups, signatures, empty states built from them, reported names."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import metricskit as mk
from metricskit._engine.step import (
    Group,
    Layout,
    canonical,
    empty_state,
    index,
    key_modes,
    names,
    signature_for,
    signature_of,
)
from metricskit.metric import Spec

F32, I32 = Spec((), "float32"), Spec((), "int32")


def test_canonical_layouts_do_not_depend_on_order():
    sig = signature_for(mk.MeanMetric, F32, I32)
    a = canonical(
        [
            Group("mean", sig, ("b", "a")),
            Group("max", signature_for(mk.MaxMetric, F32, I32), ("a",)),
        ]
    )
    b = canonical(
        [
            Group("max", signature_for(mk.MaxMetric, F32, I32), ("a",)),
            Group("mean", sig, ("a", "b")),
        ]
    )
    assert a == b and hash(a) == hash(b)
    assert [g.mode for g in a.groups] == ["max", "mean"] and a.groups[1].keys == ("a", "b")
    assert canonical([Group("mean", sig, ())]) == Layout()


def test_signatures_of_states_match_signatures_for_specs():
    for cls in (mk.MeanMetric, mk.StdMetric, mk.MaxMetric, mk.NoReduceMetric):
        for value in (Spec((3,), "float32"), Spec((), "int64"), Spec((2,), "float64")):
            sig = signature_for(cls, value, I32)
            assert signature_of(cls.empty(value, I32)) == sig
            stacked = jax.tree.map(lambda x: np.stack([x, x]), cls.empty(value, I32))
            assert signature_of(stacked, stacked=True) == sig


def test_build_gives_zero_states_of_the_signature():
    sig = signature_for(mk.StdMetric, Spec((2,), "float32"), I32)
    state = empty_state("std", sig, 5, np)
    assert all(
        isinstance(x, np.ndarray) and x.shape[0] == 5 and not x.any()
        for x in jax.tree.leaves(state)
    )
    assert signature_of(state, stacked=True) == sig


def test_derived_indexes_and_names():
    store = mk.MetricStore(default_log_modes=["mean", "max"]).update({"b": 1.0, "a": 2.0})
    layout = store.layout
    assert list(key_modes(layout)) == ["a", "b"] and key_modes(layout)["a"] == ("max", "mean")
    assert [n for n, _, _, _ in names(layout)] == ["a_max", "a_mean", "b_max", "b_mean"]
    g, row = index(layout)[("b", "mean")]
    assert layout.groups[g].keys[row] == "b"
    clash = canonical(
        [
            Group("mean", signature_for(mk.MeanMetric, F32, I32), ("x",)),
            Group("mean_nopostfix", signature_for(mk.MeanMetric, F32, I32), ("x_mean",)),
        ]
    )
    with pytest.raises(ValueError, match=r"'x_mean'.*rename"):
        names(clash)
