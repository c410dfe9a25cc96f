"""metricskit against its peers and against the floors, in the workloads users run.

    python benchmarks/run.py [--quick] [--keys 100 1000 10000] [--ingraph-keys 3 100 1000]
                             [--batches 500 5000 50000] [--size 256] [--repeats 5]
                             [--no-peers] [--json results.json]

Sections (each prints rows of medians; ``x mk`` is a row's time over metricskit's time in the
same workload and size, so above 1 means metricskit is faster):

- eager update and compute + reset of K scalar metrics in (mean, std, max), from device
  scalars as a jitted step returns them (``peers.py``: clu, flax.nnx, torchmetrics);
- in-graph updates inside a jitted step and an MLP train step, against hand-written float32
  accumulation and clu, with compile times (``ingraph.py``);
- evaluation loops over N batches of per-sample losses from a jitted eval step, against
  torchmetrics' CatMetric, a plain list and a memcpy, with peak memory (``evaluation.py``);
- task metrics (accuracy and macro F1, 10 classes, batch 1024) in a jitted evaluation loop,
  against metrax, torchmetrics and hand-written counts (``task_metrics.py``).

Peers run where installed (``pip install "metricskit[bench]"``). ``--quick`` (K=100 eager and
K=30 in-graph without the MLP step, 500 and 2,000 evaluation batches with the peak memory of
metricskit and the list only, 30 task batches) takes under a minute with every peer on 2 CPU
cores, most of it importing and compiling the peers; the full run takes tens of minutes. Each
repeat of an eager workload makes at most ``BUDGET`` seconds of calls (one call for the
slowest peers).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import evaluation
import ingraph
import jax
import peers
import task_metrics
from harness import Table, installed, median_time

import metricskit as mk

PEER_LIMIT = {"clu": 1000, "flax.nnx": 1000, "torchmetrics": 10000}  # K beyond which a peer
# takes minutes per step (one Python object per metric)
BUDGET = 0.2  # seconds per repeat of the eager workloads: one call each for the slow peers


def keyed(table: Table, keys: list[int], repeats: int, with_peers: bool) -> None:
    """Eager update and compute + reset of K scalar metrics."""
    classes: list[Any] = [peers.Metricskit, peers.MetricskitFunctional]
    if with_peers:
        available = {
            "clu": installed("clu"),
            "flax.nnx": installed("flax"),
            "torchmetrics": installed("torchmetrics") and installed("torch"),
        }
        classes += [c for c in (peers.Clu, peers.Nnx, peers.Torchmetrics) if available[c.name]]
    for k in keys:
        for cls in classes:
            if k > PEER_LIMIT.get(cls.name, k):
                continue
            impl = cls(k)
            number = max(1, 2000 // k)
            sync = getattr(impl, "sync", lambda: None)
            eager = median_time(impl.eager, repeats, number, sync, budget=BUDGET)
            table.add("eager update", f"K={k}", cls.name, eager * 1e3, "ms")
            reset = median_time(impl.compute_reset, repeats, number, budget=BUDGET)
            table.add("compute + reset", f"K={k}", cls.name, reset * 1e3, "ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--keys", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--ingraph-keys", type=int, nargs="+", default=[3, 100, 1000, 10000])
    parser.add_argument("--batches", type=int, nargs="+", default=[500, 5000, 50000])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-peers", action="store_true", help="metricskit and floors only")
    parser.add_argument("--no-mlp", action="store_true", help="skip the MLP train step")
    parser.add_argument("--task-batches", type=int, default=200)
    parser.add_argument("--sections", nargs="+", default=["keys", "ingraph", "eval", "tasks"])
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    mk.LOGGER.setLevel(logging.ERROR)  # compute + reset reports empty states after a round
    warnings.filterwarnings("ignore")
    if args.quick:  # every workload and peer, at sizes that take well under a minute
        args.keys, args.ingraph_keys, args.batches, args.repeats, args.task_batches = (
            [100],
            [30],
            [500, 2000],
            3,
            30,
        )
        args.no_mlp = True
    with_peers = not args.no_peers
    print(f"jax {jax.__version__}, {jax.device_count()} {jax.default_backend()} device(s)")
    table = Table()
    if "keys" in args.sections:
        keyed(table, args.keys, args.repeats, with_peers)
    if "ingraph" in args.sections:
        ingraph.run(table, args.ingraph_keys, args.repeats, with_peers, mlp=not args.no_mlp)
        k = max(args.ingraph_keys)
        table.add(
            "compiles, zero-filled init",
            f"K={k}",
            "metricskit",
            ingraph.zero_filled_compiles(k),
            "",
        )
    if "eval" in args.sections:
        evaluation.run(
            table, args.batches, args.size, args.repeats, with_peers, memory_peers=not args.quick
        )
    if "tasks" in args.sections:
        computed = task_metrics.run(table, args.task_batches, args.repeats, with_peers)
        for name, values in computed.items():
            print(f"  {name}: " + ", ".join(f"{k} {v:.6f}" for k, v in values.items()))
            for k, v in values.items():  # metrax adds 1e-7 to its denominators
                if abs(v - computed["metricskit"][k]) > 1e-5:
                    sys.exit(f"{name} computes {k} = {v}, metricskit {computed['metricskit'][k]}")
    print()
    print(table.summary())
    if args.json:
        table.dump(args.json)


if __name__ == "__main__":
    main()
