"""The layer over JAX versions: shard_map, meshes with Auto axes, collectives."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from metricskit.compat import all_gather, axis_size, make_mesh, pmax, pmin, psum, shard_map


def test_collectives_inside_shard_map_on_8_devices():
    assert jax.device_count() == 8, "XLA_FLAGS must force 8 host devices (conftest)"
    mesh = make_mesh((4, 2), ("a", "b"))

    def per_device(x):
        axes = ("a", "b")
        return jnp.stack(
            [psum(x[0], axes), pmax(x[0], axes), pmin(x[0], axes), jnp.float32(axis_size(axes))]
        ), all_gather(x, axes, axis=0, tiled=True)

    mapped = shard_map(per_device, mesh=mesh, in_specs=P(("a", "b")), out_specs=(P(), P()))
    stats, gathered = jax.jit(mapped)(jnp.arange(8.0))
    assert stats.tolist() == [28.0, 7.0, 0.0, 8.0]
    assert gathered.tolist() == list(range(8))
