"""Host stores run on the CPU; host-only calls refuse tracers with their own message."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metricskit._engine.kernels import device_for, refuse_tracers


def test_numpy_trees_run_on_the_cpu():
    with device_for({"a": np.ones(2)}):
        assert jnp.ones(2).devices() == {jax.local_devices(backend="cpu")[0]}
    with device_for({"a": jnp.ones(2)}):
        pass  # device trees keep the default placement


def test_tracers_are_refused_naming_the_call():
    refuse_tracers([jnp.ones(2)], "MetricStore.compute")
    with pytest.raises(TypeError, match=r"MetricStore\.compute\(\).*inside a jax\.jit.*outside"):
        jax.jit(lambda x: refuse_tracers([x], "MetricStore.compute"))(jnp.ones(2))


def test_an_eager_update_across_devices_names_the_keys_and_their_devices_and_changes_nothing():
    import metricskit as mk

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


@pytest.mark.parametrize(
    "transform",
    [jax.jit, jax.vmap, jax.grad, lambda f: lambda x: jax.jvp(f, (x,), (x,))[1]],
    ids=["jit", "vmap", "grad", "jvp"],
)
def test_traced_asks_one_leaf_or_a_whole_tree(transform):
    from metricskit._engine.kernels import traced

    for concrete in (None, jnp.ones(()), np.ones(2), 1.5, (np.ones(2), [jnp.ones(())])):
        assert not traced(concrete)
    seen = []

    def f(x):
        seen.append((traced(x), traced((np.ones(2), [x])), traced({"a": 1.0, "b": x})))
        return jnp.sum(x)

    transform(f)(jnp.ones(()) if transform is jax.grad else jnp.ones(3))
    assert seen == [(True, True, True)]
