"""Per-step cost on 8 devices: psum the step metrics every step vs accumulate locally, sync once.

Runs on 8 forced CPU host devices (set before JAX is imported). Prints medians of repeated runs
and the ratio; the machine is noisy, so read the ratio.

    python benchmarks/distributed_sync.py [--keys 100] [--steps 100] [--repeats 9] [--json F]
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

import metricskit as mk
from metricskit.compat import make_mesh, shard_map

MODES = ("mean", "std", "max")


def build(keys: int, steps: int, every_step: bool):
    mesh = make_mesh((jax.device_count(),), ("data",))
    names = [f"m{i:04d}" for i in range(keys)]

    def per_device(xs):  # xs: (1, steps, keys) on each device
        store = mk.MetricStore(default_log_modes=MODES).init({n: np.float32(0) for n in names})

        def body(store, x):
            step = {n: x[i] for i, n in enumerate(names)}
            return store.update(step, axis_name="data" if every_step else None), None

        store, _ = jax.lax.scan(body, store, xs[0])
        return store if every_step else store.sync("data")

    fn = shard_map(per_device, mesh=mesh, in_specs=P("data"), out_specs=P())
    return jax.jit(fn)


def median_per_step(fn, xs, steps: int, repeats: int) -> float:
    jax.block_until_ready(fn(xs))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(xs))
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    assert jax.device_count() == 8
    rows = []
    print(f"jax {jax.__version__}, {jax.device_count()} CPU devices; medians of {args.repeats}")
    print(f"{'K':>6}{'psum every step':>18}{'local + sync once':>20}{'ratio':>8}")
    for k in args.keys:
        xs = jnp.asarray(np.random.default_rng(0).normal(size=(8, args.steps, k)), jnp.float32)
        every = median_per_step(build(k, args.steps, True), xs, args.steps, args.repeats)
        once = median_per_step(build(k, args.steps, False), xs, args.steps, args.repeats)
        rows.append({"keys": k, "psum_every_step_s": every, "sync_once_s": once})
        print(f"{k:>6}{every * 1e6:>16.1f}us{once * 1e6:>18.1f}us{every / once:>8.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
