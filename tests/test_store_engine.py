"""The compiled kernels, through MetricStore: growth, routed updates, NaN masking, one call each."""

from __future__ import annotations

import contextlib
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metricskit as mk


def _leaf(store, path):
    (leaf,) = [
        x
        for p, x in jax.tree_util.tree_flatten_with_path(store)[0]
        if jax.tree_util.keystr(p) == path
    ]
    return leaf


def test_growing_keeps_existing_rows_and_inserts_zero_rows():
    store = mk.MetricStore(default_log_modes=["mean"]).update({"b": 2.0, "d": 4.0})
    grown = store.update({"a": 1.0, "c": 3.0})
    assert list(grown) == ["a", "b", "c", "d"] and len(grown.metrics) == 1
    np.testing.assert_array_equal(np.asarray(_leaf(grown, ".metrics[0].total.hi")), [1, 2, 3, 4])
    counts = [int(mk.exact.to_host(grown[key]["mean"].count)) for key in grown]
    assert counts == [1, 1, 1, 1]  # new rows started from zero, old rows kept theirs
    assert grown.compute() == {"a_mean": 1.0, "b_mean": 2.0, "c_mean": 3.0, "d_mean": 4.0}
    # a new key starts empty: only init, no step, leaves its row zero
    padded = store.init({"a": 0.0})
    assert not np.asarray(_leaf(padded, ".metrics[0].total.hi"))[0]
    assert int(mk.exact.to_host(padded["a"]["mean"].count)) == 0


def test_skipped_rows_keep_their_state_and_the_counter_counts_them():
    store = mk.MetricStore(default_log_modes=["mean"], nan_policy="skip")
    store = store.update({"a": 1.0, "b": 1.0}).update({"a": float("nan"), "b": 3.0})
    assert store.compute() == {"a_mean": 1.0, "a_nonfinite": 1, "b_mean": 2.0, "b_nonfinite": 0}
    assert int(mk.exact.to_host(store["a"]["mean"].count)) == 1


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


@contextlib.contextmanager
def _compiled_arguments():
    """The number of arguments of each computation JAX compiles meanwhile."""
    counts = []

    class Log(logging.Handler):
        def emit(self, record):
            message = record.getMessage()
            if message.startswith("Compiling "):
                counts.append(message.count("ShapedArray("))

    handler = Log(logging.DEBUG)
    logging.getLogger("jax").addHandler(handler)
    try:
        with jax.log_compiles(True):
            yield counts
    finally:
        logging.getLogger("jax").removeHandler(handler)


def test_compute_and_aggregate_run_over_every_group_at_once():
    store = mk.MetricStore(default_log_modes=["mean", "max"]).update({"a": 1.0, "b": np.ones(2)})
    n = len(jax.tree.leaves(store))
    assert len(store.metrics) == 4  # two modes, two shapes
    jax.clear_caches()
    with _compiled_arguments() as counts:
        out = store.compute()
    assert out.keys() == {"a_max", "a_mean", "b_max", "b_mean"} and out["a_mean"] == 1.0
    np.testing.assert_array_equal(out["b_max"], [1.0, 1.0])
    # one compiled computation takes the whole state (host finishing may dispatch small ops)
    assert counts.count(n) == 1 and max(counts) == n
    with _compiled_arguments() as counts:
        doubled = store.aggregate(store)
    assert counts == [2 * n]  # one compiled call for every group of both stores
    assert jax.tree.structure(doubled) == jax.tree.structure(store)
    assert [int(mk.exact.to_host(doubled["a"][mode].count)) for mode in ("max", "mean")] == [2, 2]
    assert doubled.compute().keys() == out.keys()
    np.testing.assert_array_equal(doubled.compute()["b_mean"], [1.0, 1.0])


def _nested_calls(jaxpr):
    """The names of the jitted functions called by ``jaxpr`` (at any depth)."""
    names = []
    for eqn in jaxpr.eqns:
        if "jaxpr" in eqn.params:  # pjit (named "jit" or "pjit" across JAX versions)
            names.append(eqn.params.get("name"))
            inner = eqn.params["jaxpr"]
            names += _nested_calls(getattr(inner, "jaxpr", inner))
    return names


def test_an_update_in_a_trace_is_inlined_and_an_eager_one_is_one_compiled_call(compiles):
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
    compiles.clear()
    assert step(store, jnp.float32(0.25)).compute().keys() == eager.keys()
    assert compiles == []  # eager: the cached compiled call


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
