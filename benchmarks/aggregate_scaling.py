"""Host aggregation of noreduce batches: time for N batches, and the ratio N=5000 / N=500.

python benchmarks/aggregate_scaling.py [--sizes 256 4096] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

from metricskit.functional import aggregate_metrics, update_metrics


def run(batches: int, size: int) -> float:
    item = {"value": np.ones(size, np.float32), "count": size, "log_modes": ["single_noreduce"]}
    step = jax.device_get(update_metrics(None, {"ll": item}))
    start = time.perf_counter()
    aggregated: object = {}
    for _ in range(batches):
        aggregated = aggregate_metrics(aggregated, step)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 4096])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'values/batch':>12}{'N=500':>12}{'N=5000':>12}{'ratio':>8}")
    for size in args.sizes:
        small = statistics.median(run(500, size) for _ in range(args.repeats))
        large = statistics.median(run(5000, size) for _ in range(args.repeats))
        print(f"{size:>12}{small * 1e3:>10.0f}ms{large * 1e3:>10.0f}ms{large / small:>8.1f}")


if __name__ == "__main__":
    main()
