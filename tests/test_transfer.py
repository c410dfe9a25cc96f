"""Many small arrays to the host in bulk: the same values, dtypes and shapes as one by one."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metricskit._engine.evaluation import CHUNK, device_get_many, stack_to_host


@pytest.mark.parametrize("dtype", ["float32", "int32", "bool", "bfloat16"])
def test_stack_to_host_is_np_stack_with_the_dtype_kept(rng, dtype):
    host = [rng.normal(size=(2, 3)).astype(jnp.dtype(dtype)) for _ in range(5)]
    out = stack_to_host([jnp.asarray(x) for x in host])
    assert isinstance(out, np.ndarray) and out.dtype == jnp.dtype(dtype) and out.shape == (5, 2, 3)
    np.testing.assert_array_equal(out, np.stack(host))


def test_stack_to_host_chunks_pads_and_takes_numpy_scalars_and_empty_shapes():
    arrays = [jnp.float32(i) for i in range(CHUNK + 3)]  # a full chunk, then one padded to 4
    np.testing.assert_array_equal(stack_to_host(arrays), np.arange(CHUNK + 3, dtype=np.float32))
    numpy_only = [np.full(2, i, np.int16) for i in range(3)]
    out = stack_to_host(numpy_only)
    assert out.dtype == np.int16 and out.tolist() == [[0, 0], [1, 1], [2, 2]]
    mixed = stack_to_host([np.ones(2, np.float32), jnp.zeros(2, jnp.float32)])
    assert mixed.tolist() == [[1.0, 1.0], [0.0, 0.0]] and mixed.dtype == np.float32
    assert stack_to_host([jnp.zeros((0, 3))] * 2).shape == (2, 0, 3)


def test_stack_to_host_takes_arrays_committed_to_different_devices():
    devices = jax.devices()
    arrays = [jax.device_put(jnp.arange(3) + i, devices[i % len(devices)]) for i in range(4)]
    np.testing.assert_array_equal(stack_to_host(arrays), [np.arange(3) + i for i in range(4)])


def test_device_get_many_equals_device_get_of_each_tree(rng):
    devices = jax.devices()
    trees = [
        {
            "a": jnp.asarray(rng.normal(size=4), jnp.bfloat16),
            "b": (jnp.int32(i), rng.normal(size=2)),  # a NumPy leaf is kept
            "c": jax.device_put(jnp.full(3, i, jnp.float32), devices[i % len(devices)]),
        }
        for i in range(3)
    ]
    trees.append({"lone": jnp.ones((2, 2), jnp.uint8)})
    out = device_get_many(trees)
    assert len(out) == 4
    for got, tree in zip(out, trees, strict=True):
        assert jax.tree.structure(got) == jax.tree.structure(tree)
        for g, x in zip(jax.tree.leaves(got), jax.tree.leaves(tree), strict=True):
            want = np.asarray(x)
            assert isinstance(g, np.ndarray) and g.dtype == want.dtype and g.shape == want.shape
            np.testing.assert_array_equal(g, want)
    assert device_get_many([]) == []
    assert device_get_many([{}, None]) == [{}, None]
