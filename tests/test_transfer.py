"""Evaluation states to the host in bulk, through aggregate_metrics: as device_get gives them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metricskit as mk
from metricskit.functional import aggregate_metrics, update_metrics

DTYPES = ["float32", "int32", "bool", "bfloat16"]


def _samples_metric(dtype):
    """A per-sample metric that keeps its values in ``dtype`` itself (no logical widening)."""

    @mk.register_metric(f"transfer_samples_{dtype}")
    class Samples(mk.Metric):
        values = mk.state("concat", dtype=dtype)
        steps = mk.state("sum", shape="scalar", dtype="int")

        def update(self, value, count):
            return self.replace(values=jnp.asarray(value).astype(dtype), steps=self.steps + 1)

        def compute(self):
            return self.values

    return Samples


SAMPLES = {dtype: _samples_metric(dtype) for dtype in DTYPES}


def _batch(value, mode="single_noreduce"):
    return update_metrics(None, {"k": {"value": value, "log_modes": [mode]}})


def _appended(batches, mode="single_noreduce"):
    agg = {}
    for batch in batches:
        agg = aggregate_metrics(agg, batch)
    return agg["k"][mode]


@pytest.mark.parametrize("dtype", DTYPES)
def test_per_sample_batches_come_to_the_host_with_their_dtype(rng, dtype):
    mode = f"transfer_samples_{dtype}"
    host = [rng.normal(size=(2, 3)).astype(jnp.dtype(dtype)) for _ in range(5)]
    batches = [_batch(jnp.asarray(x), mode) for x in host]
    assert all(b["k"][mode].values.dtype == jnp.dtype(dtype) for b in batches)
    out = _appended(batches, mode).values
    assert isinstance(out, np.ndarray) and out.dtype == jnp.dtype(dtype) and out.shape == (10, 3)
    np.testing.assert_array_equal(out, np.concatenate(host))
    assert not out.flags.writeable


def test_many_numpy_mixed_and_empty_batches_are_appended_exactly():
    many = [_batch(jnp.float32(i)) for i in range(300)]  # more than one bulk transfer takes
    out = _appended(many).value
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.arange(300, dtype=np.float32))
    numpy_only = [jax.device_get(_batch(np.full(2, i, np.int16))) for i in range(3)]
    assert all(isinstance(x, np.ndarray) for b in numpy_only for x in jax.tree.leaves(b))
    out = _appended(numpy_only).value
    assert out.dtype == numpy_only[0]["k"]["single_noreduce"].value.dtype == np.int32
    assert out.tolist() == [0, 0, 1, 1, 2, 2]
    mixed = [jax.device_get(_batch(np.ones(2, np.float32))), _batch(jnp.full(2, 5, jnp.float32))]
    out = _appended(mixed).value
    assert out.tolist() == [1.0, 1.0, 5.0, 5.0] and out.dtype == np.float32
    assert _appended([_batch(jnp.zeros((0, 3), jnp.float32))] * 2).value.shape == (0, 3)


def test_batches_committed_to_different_devices_are_appended():
    devices = jax.devices()
    batches = [
        jax.device_put(_batch(jnp.arange(3, dtype=jnp.float32) + i), devices[i % len(devices)])
        for i in range(4)
    ]
    assert len({d for b in batches for x in jax.tree.leaves(b) for d in x.devices()}) == 4
    np.testing.assert_array_equal(
        _appended(batches).value, np.concatenate([np.arange(3) + i for i in range(4)])
    )


def test_other_states_come_to_the_host_as_device_get_of_each_batch_gives_them(rng):
    devices = jax.devices()
    modes = ["mean", "max", "std"]
    batches = [
        jax.device_put(
            mk.MetricStore(default_log_modes=modes).update(
                {
                    "a": jnp.asarray(rng.normal(size=4), jnp.bfloat16),
                    "b": jnp.int32(i),
                    "c": jnp.full(3, i, jnp.float32),
                }
            ),
            devices[i % len(devices)],
        )
        for i in range(3)
    ]
    own = mk.MeanMetric.empty(mk.Spec((2,), "float32"), mk.Spec((), "int32"))
    own = own.update(jnp.asarray(rng.normal(size=2), jnp.float32), jnp.int32(1))
    batches.append({"h": {"mean": jax.device_get(own)}})  # NumPy leaves are kept (copied)
    batches.append(update_metrics(None, {"lone": {"value": jnp.ones((2, 2), jnp.uint8)}}))
    for batch in batches:
        agg = aggregate_metrics({}, batch)
        assert list(agg) == list(batch)
        for key in batch:
            assert list(agg[key]) == list(batch[key])
            for mode in batch[key]:
                got, want = agg[key][mode], jax.device_get(batch[key][mode])
                assert jax.tree.structure(got) == jax.tree.structure(want)
                for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
                    w = np.asarray(w)
                    assert isinstance(g, np.ndarray) and not g.flags.writeable
                    assert g.dtype == w.dtype and g.shape == w.shape
                    np.testing.assert_array_equal(g, w)
    assert aggregate_metrics({}, mk.MetricStore()) == {}
    assert aggregate_metrics(None, {}) == {}
    assert aggregate_metrics({}, {"n": None}) == {"n": None}
    step = aggregate_metrics({}, {"step": jnp.int32(3)})["step"]
    assert isinstance(step, np.ndarray | np.generic) and step == 3
