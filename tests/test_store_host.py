"""Where a store's kernels run, and host-only calls refusing tracers, through the public API."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metricskit as mk
from metricskit.functional import aggregate_metrics, get_metrics


def _devices(store):
    return {d for x in jax.tree.leaves(store) for d in x.devices()}


def test_host_stores_run_on_the_cpu_and_device_stores_where_jax_places_them():
    store = mk.MetricStore(default_log_modes=["mean", "max"]).update({"a": 1.0, "b": 2.0})
    host = jax.device_get(store)  # NumPy leaves
    evaluated = mk.MetricStore.from_mapping(aggregate_metrics({}, store))
    assert all(isinstance(x, np.ndarray) for x in jax.tree.leaves(host))
    assert all(isinstance(x, np.ndarray) for x in jax.tree.leaves(evaluated))
    cpu = jax.local_devices(backend="cpu")[0]
    elsewhere = next(d for d in jax.devices() if d != cpu)
    with jax.default_device(elsewhere):
        for numpy_store in (host, evaluated):
            updated = numpy_store.update({"a": 3.0})
            assert _devices(updated) == {cpu}
            assert updated.compute() == {"a_max": 3.0, "a_mean": 2.0, "b_max": 2.0, "b_mean": 2.0}
        assert _devices(store.update({"a": 3.0})) == {elsewhere}  # device trees: JAX's default


def test_tracers_are_refused_naming_the_call():
    store = mk.MetricStore(default_log_modes=["mean"]).update({"x": 1.0})
    assert store.compute() == {"x_mean": 1.0}
    with pytest.raises(TypeError, match=r"MetricStore\.compute\(\).*inside a jax\.jit.*outside"):
        jax.jit(lambda s: s.compute())(store)
    with pytest.raises(TypeError, match=r"get_metrics\(\).*inside a jax\.jit.*outside"):
        jax.jit(lambda s: get_metrics(s))(store)


def test_an_eager_update_across_devices_names_the_keys_and_their_devices_and_changes_nothing():
    devices = jax.devices()
    assert len(devices) == 8
    store = mk.MetricStore().init({"a": 0.0, "b": 0.0})
    a = jax.device_put(jnp.float32(1.0), devices[3])
    b = jax.device_put(jnp.float32(2.0), devices[5])
    with pytest.raises(ValueError, match=r"'a' on \S+3, 'b' on \S+5\).*jax\.device_put"):
        store.update({"a": a, "b": b})
    placed = jax.device_put(store, devices[2])
    with pytest.raises(ValueError, match=r"the store's state on \S+2, 'a' on \S+3"):
        placed.update({"a": a})
    assert (store.compute(), placed.compute()) == ({"a": 0.0, "b": 0.0},) * 2  # unchanged
    # values on the store's device, or uncommitted ones, are fine
    assert placed.update({"a": jax.device_put(jnp.float32(4.0), devices[2])}).compute()["a"] == 4.0
    assert store.update({"a": jnp.float32(1.0), "b": 2.0}).compute() == {"a": 1.0, "b": 2.0}


def _refused(call):
    """Whether ``call()`` is refused as a host-only call on traced values."""
    try:
        call()
    except TypeError as err:
        assert "inside a jax.jit" in str(err), err
        return True
    return False


CONCRETE = {"none": None, "jax": jnp.ones(()), "numpy": np.ones(2), "float": 1.5}
CONCRETE["nested"] = (np.ones(2), [jnp.ones(())])


@pytest.mark.parametrize(
    "transform",
    [jax.jit, jax.vmap, jax.grad, lambda f: lambda x: jax.jvp(f, (x,), (x,))[1]],
    ids=["jit", "vmap", "grad", "jvp"],
)
def test_a_traced_first_leaf_or_any_traced_leaf_of_a_mapping_is_refused(transform):
    # concrete trees are fine, eagerly and inside the transformation alike
    assert aggregate_metrics({}, CONCRETE).keys() == CONCRETE.keys()
    seen = []

    def f(x):
        store = mk.MetricStore(default_log_modes=["mean"]).update({"k": x})
        seen.append(
            (
                _refused(store.compute),  # a store: its first leaf tells
                _refused(lambda: aggregate_metrics({}, {"a": np.ones(2), "b": [x]})),
                _refused(lambda: aggregate_metrics({}, {"a": 1.0, "k": store["k"]})),
                _refused(lambda: aggregate_metrics({}, CONCRETE)),
            )
        )
        return jnp.sum(x)

    transform(f)(jnp.ones(()) if transform is jax.grad else jnp.ones(3))
    assert seen == [(True, True, True, False)]
