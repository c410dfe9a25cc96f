"""One process of the two-process test (run by tests/test_multiprocess.py, not by pytest).

Usage: python multiprocess_worker.py PROCESS_ID PORT OUTPUT_JSON
"""

from __future__ import annotations

import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

PROCESSES, DEVICES, STEPS = 2, 4, 4
MODES = ["mean", "max", "min", "std", "single"]


def data() -> dict[str, np.ndarray]:
    """The same global data as the single-process reference of the test."""
    rng = np.random.default_rng(0)
    return {
        "loss": rng.uniform(0.5, 3.0, size=(DEVICES, STEPS)).astype(np.float32),
        "count": rng.integers(1, 4, size=(DEVICES, STEPS)).astype(np.int32),
        "ll": rng.normal(size=(DEVICES, STEPS, 3)).astype(np.float32),
        "eval": rng.normal(size=(PROCESSES, 2, 5)).astype(np.float32),
    }


def _jsonable(tree: dict) -> dict:
    return {k: np.asarray(v).tolist() for k, v in tree.items()}


def main() -> None:
    process_id, port, output = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    if hasattr(jax.config, "jax_cpu_collectives_implementation"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        f"127.0.0.1:{port}", num_processes=PROCESSES, process_id=process_id,
        initialization_timeout=60,
    )  # fmt: skip
    assert jax.process_count() == PROCESSES and jax.device_count() == DEVICES
    assert jax.local_device_count() == 2

    import metricskit as mk
    from metricskit.compat import make_mesh, shard_map
    from metricskit.functional import aggregate_metrics

    d = data()
    mesh = make_mesh((DEVICES,), ("data",))
    sharding = NamedSharding(mesh, P("data"))

    def global_array(x: np.ndarray) -> jax.Array:
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    args = [global_array(d[k]) for k in ("loss", "count", "ll")]

    def steps(sync: bool):
        def per_device(loss, count, ll):
            store = mk.MetricStore()
            axis = None if sync else "data"
            for t in range(STEPS):
                step = {
                    "loss": {"value": loss[0, t], "count": count[0, t], "log_modes": MODES},
                    "ll": {"value": ll[0, t], "log_modes": ["single_noreduce"]},
                }
                store = store.update(step, axis_name=axis)
            return store.sync("data") if sync else store

        specs = (P("data"), P("data"), P("data"))
        return jax.jit(shard_map(per_device, mesh=mesh, in_specs=specs, out_specs=P()))(*args)

    results = {"update": _jsonable(steps(sync=False).compute())}
    results["sync"] = _jsonable(steps(sync=True).compute())

    aggregated: object = {}
    for batch in d["eval"][process_id]:
        step = mk.MetricStore().update(
            {"sample": {"value": batch, "count": batch.size, "log_modes": ["single_noreduce"]}}
        )
        aggregated = aggregate_metrics(aggregated, step)
    results["eval"] = _jsonable(mk.MetricStore.from_mapping(aggregated).process_sync().compute())
    with open(output, "w") as f:
        json.dump(results, f)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
