"""The compiled kernels: growing the state, routed updates, NaN masking, dtype invariance."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metricskit as mk
from metricskit.store import engine
from metricskit.store.layout import Layout
from metricskit.store.pack import pack
from metricskit.store.parse import parse
from metricskit.store.plan import make_plan, step_signature


def _run(metrics, layout, step, modes=("mean",), policy="propagate"):
    entries = parse(step, modes, policy)
    plan = make_plan(layout, step_signature(entries))
    return engine.update_jit(metrics, *pack(entries, plan), plan=plan), plan.after


def test_growing_keeps_existing_rows_and_inserts_zero_rows():
    metrics, layout = _run((), Layout(), {"b": 2.0, "d": 4.0})
    grown, layout = _run(metrics, layout, {"a": 1.0, "c": 3.0})
    (group,) = grown
    assert layout.groups[0].keys == ("a", "b", "c", "d")
    np.testing.assert_array_equal(np.asarray(group.total.hi), [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(mk.exact.to_host(group.count), [1, 1, 1, 1])


def test_skipped_rows_keep_their_state_and_the_counter_counts_them():
    metrics, layout = _run((), Layout(), {"a": 1.0, "b": 1.0}, policy="skip")
    metrics, layout = _run(metrics, layout, {"a": float("nan"), "b": 3.0}, policy="skip")
    store = mk.MetricStore(nan_policy="skip")._evolve(metrics, layout)
    assert store.compute() == {"a_mean": 1.0, "a_nonfinite": 1, "b_mean": 2.0, "b_nonfinite": 0}


def test_update_results_keep_the_state_dtypes_and_a_wrong_structure_is_named():
    @mk.register_metric("sloppy_test")
    class Sloppy(mk.Metric):
        total = mk.state("sum")

        def update(self, value, count):
            return self.replace(total=self.total + jnp.asarray(value, jnp.bfloat16))

        def compute(self):
            return self.total

    store = mk.MetricStore().update({"x": {"value": 1.5, "log_modes": ["sloppy_test"]}})
    assert store["x"]["sloppy_test"].total.dtype == jnp.zeros(()).dtype  # cast back

    @mk.register_metric("broken_test")
    class Broken(mk.Metric):
        total = mk.state("sum")

        def update(self, value, count):
            return (self.total + value,)

        def compute(self):
            return self.total

    with pytest.raises(TypeError, match=r"Broken\.update returned a state of structure"):
        mk.MetricStore().update({"x": {"value": 1.5, "log_modes": ["broken_test"]}})


def test_compute_and_aggregate_run_over_every_group_at_once():
    store = mk.MetricStore(default_log_modes=["mean", "max"]).update({"a": 1.0, "b": np.ones(2)})
    computed = jax.device_get(engine.compute_jit(store.metrics))
    assert len(computed) == len(store.metrics)
    doubled = engine.aggregate_jit(store.metrics, store.metrics)
    assert jax.tree.structure(doubled) == jax.tree.structure(store.metrics)
