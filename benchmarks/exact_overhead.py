"""Cost of exact accumulation: the jitted step with exact metrics vs naive float32 metrics.

Also measures the eager update with float64 host inputs (carried as float32 pairs) against
float32 host inputs. Prints medians over repeated runs and their ratios; the machine is noisy,
so read the ratios, not single times.

    python benchmarks/exact_overhead.py [--keys 100 1000] [--steps 200] [--repeats 15] [--json F]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any, Self

import attrs
import jax
import jax.numpy as jnp
import numpy as np

import metricskit as mk


@mk.register_metric("naive_mean")
@attrs.frozen(eq=False)
class NaiveMean(mk.Metric):
    """float32 running sum and int32 count: what peers do."""

    total: jax.Array = mk.state("sum")
    count: jax.Array = mk.state("sum")

    @classmethod
    def empty(cls, value: Any, count: Any) -> Self:
        return cls(jnp.zeros(value.shape, jnp.float32), jnp.zeros(count.shape, jnp.int32))

    def update(self, value: Any, count: Any) -> Self:
        return NaiveMean(self.total + value.astype(jnp.float32), self.count + count)

    def compute(self) -> jax.Array:
        return mk.divide(self.total, self.count)

    def is_empty(self) -> jax.Array:
        return jnp.all(self.count == 0)


@mk.register_metric("naive_std")
@attrs.frozen(eq=False)
class NaiveStd(mk.Metric):
    """E[x^2] - E[x]^2 in float32."""

    s1: jax.Array = mk.state("sum")
    s2: jax.Array = mk.state("sum")
    n: jax.Array = mk.state("sum")

    @classmethod
    def empty(cls, value: Any, count: Any) -> Self:
        z = jnp.zeros(value.shape, jnp.float32)
        return cls(z, z, jnp.zeros(value.shape, jnp.int32))

    def update(self, value: Any, count: Any) -> Self:
        x = mk.divide(value, count)
        return NaiveStd(self.s1 + x, self.s2 + x * x, self.n + 1)

    def compute(self) -> jax.Array:
        mean = mk.divide(self.s1, self.n)
        return jnp.sqrt(jnp.maximum(mk.divide(self.s2, self.n) - mean**2, 0))

    def is_empty(self) -> jax.Array:
        return jnp.all(self.n == 0)


@mk.register_metric("naive_max")
@attrs.frozen(eq=False)
class NaiveMax(mk.Metric):
    """float32 running max of value / count."""

    value: jax.Array = mk.state("max", empty=float("-inf"))

    @classmethod
    def empty(cls, value: Any, count: Any) -> Self:
        return cls(jnp.full(value.shape, -jnp.inf, jnp.float32))

    def update(self, value: Any, count: Any) -> Self:
        return NaiveMax(jnp.maximum(self.value, mk.divide(value, count)))

    def compute(self) -> jax.Array:
        return self.value

    def is_empty(self) -> jax.Array:
        return jnp.isneginf(self.value).all()


def _median_step_time(fn: Any, state: Any, args: Any, steps: int, repeats: int) -> float:
    state = fn(state, *args)
    jax.block_until_ready(state)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            state = fn(state, *args)
        jax.block_until_ready(state)
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def jitted_step(keys: int, modes: list[str], steps: int, repeats: int) -> float:
    names = [f"m{i:04d}" for i in range(keys)]
    store = mk.MetricStore(default_log_modes=modes).init({n: np.float32(0) for n in names})

    @jax.jit
    def step(store: mk.MetricStore, x: jax.Array) -> mk.MetricStore:
        return store.update({n: x[i] for i, n in enumerate(names)})

    x = jnp.asarray(np.random.default_rng(0).normal(size=keys).astype(np.float32))
    return _median_step_time(step, store, (x,), steps, repeats)


def eager_update(keys: int, dtype: Any, steps: int, repeats: int) -> float:
    names = [f"m{i:04d}" for i in range(keys)]
    values = np.random.default_rng(0).normal(size=keys).astype(dtype)
    step_metrics = {n: values[i] for i, n in enumerate(names)}
    store = mk.MetricStore(default_log_modes=["mean", "std", "max"]).update(step_metrics)
    return _median_step_time(lambda s: s.update(step_metrics), store, (), steps, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    exact, naive = ["mean", "std", "max"], ["naive_mean", "naive_std", "naive_max"]
    rows = []
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}; medians of {args.repeats} runs")
    print(f"{'workload':<44}{'K':>6}{'median':>12}{'baseline':>12}{'ratio':>8}")
    for k in args.keys:
        t_exact = jitted_step(k, exact, args.steps, args.repeats)
        t_naive = jitted_step(k, naive, args.steps, args.repeats)
        rows.append(("jitted step: exact / naive float32", k, t_exact, t_naive))
        t64 = eager_update(k, np.float64, max(args.steps // 4, 10), args.repeats)
        t32 = eager_update(k, np.float32, max(args.steps // 4, 10), args.repeats)
        rows.append(("eager update: float64 / float32 host values", k, t64, t32))
    for name, k, t, base in rows:
        print(f"{name:<44}{k:>6}{t * 1e6:>10.1f}us{base * 1e6:>10.1f}us{t / base:>8.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                [{"workload": n, "keys": k, "median_s": t, "baseline_s": b} for n, k, t, b in rows],
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
