"""Across devices: update(axis_name) and sync(axis_name) on 8 CPU devices, a (4, 2) mesh."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import LastNonzero, PowerMean
from jax.sharding import PartitionSpec as P

import metricskit as mk
from metricskit.compat import make_mesh, shard_map
from metricskit.testing import assert_results_close, partial_kind

AXES = ("data", "model")
DEVICES = 8
STEPS = 5
MODES = [
    "mean", "mean_nopostfix", "single", "max", "min", "std",
    "single_noreduce", "single_noreduce_wcount", "nonfinite", "cubic_mean", "last_nonzero",
]  # fmt: skip


@pytest.fixture
def mesh():
    assert jax.device_count() == DEVICES, "XLA_FLAGS must force 8 host devices (conftest)"
    assert {"cubic_mean", "last_nonzero"} <= set(mk.registered_modes()), (PowerMean, LastNonzero)
    return make_mesh((4, 2), AXES)


def _data(mode, rng):
    per_sample = partial_kind(mode) == "concat"
    values = rng.uniform(0.5, 3.0, size=(DEVICES, STEPS, 3)).astype(np.float32)
    shape = (DEVICES, STEPS, 3) if per_sample else (DEVICES, STEPS)
    counts = rng.integers(1, 4, size=shape).astype(np.int32)
    if not per_sample:
        values = values[..., 0]
    return values, counts


def _run(mesh, fn, values, counts):
    mapped = shard_map(fn, mesh=mesh, in_specs=(P(AXES), P(AXES)), out_specs=P())
    return jax.jit(mapped)(jnp.asarray(values), jnp.asarray(counts))


def _item(mode, v, c):
    return {"x": {"value": v, "count": c, "log_modes": [mode]}}


@pytest.mark.parametrize("mode", MODES)
def test_update_with_axis_name_equals_one_device_fed_summed_steps(mesh, mode, rng):
    assert jax.device_count() == DEVICES
    values, counts = _data(mode, rng)

    def per_device(v, c):  # v: (1, STEPS, ...) on each device
        store = mk.MetricStore()
        for t in range(STEPS):
            store = store.update(_item(mode, v[0, t], c[0, t]), axis_name=AXES)
        return store

    got = _run(mesh, per_device, values, counts).compute()
    store = mk.MetricStore()
    concat = partial_kind(mode) == "concat"
    for t in range(STEPS):
        if concat:  # noreduce: values (and per-sample counts) gathered in device order
            step = _item(mode, values[:, t].reshape(-1), counts[:, t].reshape(-1))
        else:  # everything else: values and counts summed across devices
            step = _item(mode, values[:, t].sum(0), counts[:, t].sum(0))
        store = store.update(step)
    assert_results_close(got, store.compute(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_sync_after_local_accumulation_equals_one_device_fed_every_sample(mesh, mode, rng):
    assert jax.device_count() == DEVICES
    values, counts = _data(mode, rng)

    def per_device(v, c):
        store = mk.MetricStore()
        for t in range(STEPS):
            store = store.update(_item(mode, v[0, t], c[0, t]))
        return store.sync(AXES)

    got = _run(mesh, per_device, values, counts).compute()
    kind = partial_kind(mode)
    store = mk.MetricStore()
    if kind == "stream":  # the union of all devices' samples
        for d in range(DEVICES):
            for t in range(STEPS):
                store = store.update(_item(mode, values[d, t], counts[d, t]))
    elif kind == "sum":  # single: the devices' latest steps are parts of one step
        store = store.update(_item(mode, values[:, -1].sum(0), counts[:, -1].sum(0)))
    else:  # noreduce: each device's latest values, concatenated in device order
        store = store.update(_item(mode, values[:, -1].reshape(-1), counts[:, -1].reshape(-1)))
    want = store.compute()
    if mode == "last_nonzero":  # "last" in device order: the last device's latest value
        want = {"x_last_nonzero": float(values[-1, -1])}
    assert_results_close(got, want, rtol=1e-5, atol=1e-6)


def test_every_builtin_mode_is_covered():
    builtin = {
        m
        for m in mk.registered_modes()
        if mk.get_log_mode(m).cls.__module__ == "metricskit.builtin"
    }
    assert builtin <= set(MODES)


def test_mixing_noreduce_and_summed_modes_under_axis_name_is_an_error(mesh):
    assert jax.device_count() == DEVICES

    def per_device(v, c):
        item = {"x": {"value": v[0], "count": c[0], "log_modes": ["mean", "single_noreduce"]}}
        return mk.MetricStore().update(item, axis_name=AXES)

    with pytest.raises(ValueError, match=r"'x'.*two keys"):
        _run(mesh, per_device, np.ones((DEVICES, 3), np.float32), np.ones((DEVICES,), np.int32))


def test_pmap_axis_name_works_too():
    assert jax.device_count() == DEVICES

    def per_device(v):
        return mk.MetricStore(default_log_modes=["mean", "max"]).update({"x": v}, axis_name="i")

    out = jax.pmap(per_device, axis_name="i")(jnp.arange(DEVICES, dtype=jnp.float32))
    host = jax.tree.map(lambda x: x[0], out).compute()
    assert host == {"x_mean": 3.5, "x_max": 3.5}  # summed value 28 over summed count 8


def test_sync_outside_a_map_says_where_to_call_it():
    store = mk.MetricStore().update({"loss": 1.0})
    with pytest.raises(ValueError, match=r"MetricStore.sync\('data'\) combines devices inside"):
        store.sync("data")
