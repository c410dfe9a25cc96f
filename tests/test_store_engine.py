"""The compiled kernels: growing the state, routed updates, NaN masking, dtype invariance."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metricskit as mk
from metricskit._engine import kernels
from metricskit._engine.step import Layout, make_plan, pack, parse, step_signature


def _run(metrics, layout, step, modes=("mean",), policy="propagate"):
    entries = parse(step, modes, policy)
    plan = make_plan(layout, step_signature(entries))
    return kernels.apply_update(metrics, *pack(entries, plan), plan), plan.after


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
    computed = jax.device_get(kernels.compute_jit(store.metrics))
    assert len(computed) == len(store.metrics)
    doubled = kernels.aggregate_jit(store.metrics, store.metrics)
    assert jax.tree.structure(doubled) == jax.tree.structure(store.metrics)


def _nested_calls(jaxpr):
    """The names of the jitted functions called by ``jaxpr`` (at any depth)."""
    names = []
    for eqn in jaxpr.eqns:
        if "jaxpr" in eqn.params:  # pjit (named "jit" or "pjit" across JAX versions)
            names.append(eqn.params.get("name"))
            inner = eqn.params["jaxpr"]
            names += _nested_calls(getattr(inner, "jaxpr", inner))
    return names


def test_an_update_in_a_trace_is_inlined_and_an_eager_one_is_one_compiled_call():
    # Nested, the K values of a step would reach XLA as K operands of one call (a K=10,000
    # step compiled in twice the hand-written time); inlined they are stacked in the step.
    keys = [f"m{i}" for i in range(50)]
    store = mk.MetricStore(default_log_modes=["mean", "max"]).init(dict.fromkeys(keys, 0.0))

    def step(store, x):
        vector = jnp.tanh(x * jnp.arange(len(keys), dtype=jnp.float32))
        return store.update({k: vector[i] for i, k in enumerate(keys)})

    jaxpr = jax.make_jaxpr(step)(store, jnp.float32(0.5))
    assert "update" not in _nested_calls(jaxpr.jaxpr)
    jitted = jax.jit(step)(store, jnp.float32(0.5)).compute()
    eager = step(store, jnp.float32(0.5)).compute()
    assert jitted == eager  # the same kernel, traced in the step or compiled on its own
    before = kernels.update_jit._cache_size()
    step(store, jnp.float32(0.25))
    assert kernels.update_jit._cache_size() == before  # eager: the cached compiled call


@pytest.mark.parametrize("transform", [jax.jit, jax.grad])
def test_some_keys_of_a_host_store_update_inside_a_trace(transform):
    # a host (NumPy) store closed over by a traced function: the updated rows are set on
    # JAX arrays, the untouched rows kept
    from metricskit.functional import aggregate_metrics

    host = mk.MetricStore.from_mapping(
        aggregate_metrics({}, mk.MetricStore().update({"a": 1.0, "z": 5.0}))
    )
    results = []

    def f(x):
        updated = host.update({"a": x})
        results.append(updated)
        return jnp.sum(jax.tree.leaves(updated)[0])

    transform(f)(jnp.float32(3.0))
    assert results and jax.tree.structure(results[0]) == jax.tree.structure(host.update({"a": 3.0}))
    eager = jax.jit(lambda x: host.update({"a": x}))(jnp.float32(3.0)).compute()
    assert eager == host.update({"a": 3.0}).compute() == {"a": 2.0, "z": 5.0}
