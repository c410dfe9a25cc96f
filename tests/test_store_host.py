"""Host stores run on the CPU; host-only calls refuse tracers with their own message."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metricskit.store.host import device_for, refuse_tracers


def test_numpy_trees_run_on_the_cpu():
    with device_for({"a": np.ones(2)}):
        assert jnp.ones(2).devices() == {jax.local_devices(backend="cpu")[0]}
    with device_for({"a": jnp.ones(2)}):
        pass  # device trees keep the default placement


def test_tracers_are_refused_naming_the_call():
    refuse_tracers([jnp.ones(2)], "MetricStore.compute")
    with pytest.raises(TypeError, match=r"MetricStore\.compute\(\).*inside a jax\.jit.*outside"):
        jax.jit(lambda x: refuse_tracers([x], "MetricStore.compute"))(jnp.ones(2))
