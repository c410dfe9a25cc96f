"""metricskit against its peers: medians of the same workloads, measured in one run.

    python benchmarks/run.py [--quick] [--keys 100 1000] [--batches 500 5000]
                             [--sizes 256 4096] [--repeats 7] [--json results.json]

Workloads (K scalar metrics each logged as mean, std and max; N noreduce batches):

- ``eager update``: one step's K values (JAX scalars, as a jitted step returns them) added
  outside ``jit``.
- ``jitted update``: a jitted step that takes the metric state and K values and returns the
  new state (steady state, after compilation).
- ``compute + reset``: the K reported values as Python floats on the host, then the empty
  state.
- ``aggregate noreduce``: N host batches of per-sample values appended, then the result as
  one NumPy array.
- ``compile``: lowering and compiling the jitted update once (seconds, one sample).
- ``peak memory``: of the N=max aggregation, tracemalloc's peak and the rise of the peak RSS,
  as a multiple of the aggregated data.

Peers run where installed (``pip install "metricskit[bench]"``): clu.metrics, flax.nnx
metrics and torchmetrics. clu and nnx have no running max, so each gets the few lines of a
max metric that their documentation shows how to write. The ratio columns are peer time over
metricskit time (higher is better for metricskit); ``metricskit fn`` is the functional API.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import metricskit as mk
from metricskit.functional import aggregate_metrics, get_metrics, update_metrics

MODES = ("mean", "std", "max")


def median_time(
    fn: Callable[[], Any],
    repeats: int,
    number: int = 1,
    sync: Callable[[], Any] = lambda: None,
) -> float:
    """Median over ``repeats`` of the mean time of ``number`` calls of ``fn`` (seconds).

    ``sync`` (waiting for the device) runs once after each ``number`` calls, inside the
    timing: steps dispatch asynchronously, as in a training loop, and the total is measured.
    """
    fn()  # warm up (compilation, caches)
    sync()
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        sync()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def step_values(k: int, i: int = 0) -> dict[str, jax.Array]:
    return {f"m{j}": jnp.float32(1.0 + 0.001 * (i + j)) for j in range(k)}


# -- metricskit ------------------------------------------------------------------------------


class Metricskit:
    name = "metricskit"

    def __init__(self, k: int):
        self.values = step_values(k)
        self.store = mk.MetricStore(default_log_modes=MODES).init(self.values)
        self.jitted = jax.jit(lambda store, values: store.update(values))

    def eager(self) -> None:
        self.store = self.store.update(self.values)

    def jit(self) -> None:
        self.store = self.jitted(self.store, self.values)

    def sync(self) -> None:
        jax.block_until_ready(self.store)

    def compute_reset(self) -> None:
        self.store.compute()
        self.store = self.store.reset()

    def lower(self) -> Any:
        return self.jitted.lower(self.store, self.values)


class MetricskitFunctional(Metricskit):
    name = "metricskit fn"

    def __init__(self, k: int):
        super().__init__(k)
        self.jitted = jax.jit(lambda metrics, values: update_metrics(metrics, values, MODES))

    def eager(self) -> None:
        self.store = update_metrics(self.store, self.values, MODES)

    def compute_reset(self) -> None:
        self.store, _ = get_metrics(self.store)


def aggregate_metricskit(batches: list[Any]) -> np.ndarray:
    store = mk.MetricStore()
    for batch in batches:
        store = store.append_batches(batch)
    return store.compute()["ll_single_noreduce"]  # type: ignore[no-any-return]


def aggregate_functional(batches: list[Any]) -> np.ndarray:
    aggregated: Any = {}
    for batch in batches:
        aggregated = aggregate_metrics(aggregated, batch)
    return get_metrics(aggregated)[1]["ll_single_noreduce"]  # type: ignore[no-any-return]


def metricskit_batches(n: int, size: int) -> list[Any]:
    """N host batches, as ``jax.device_get`` of an evaluation step's store gives them."""
    item = {"value": np.ones(size, np.float32), "count": size, "log_modes": ["single_noreduce"]}
    batch = jax.device_get(mk.MetricStore().update({"ll": item}))
    return [batch] * n


# -- peers -----------------------------------------------------------------------------------


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


class Clu:
    name = "clu"

    def __init__(self, k: int):
        import flax
        from clu import metrics

        @flax.struct.dataclass
        class Max(metrics.Metric):  # type: ignore[misc]
            value: jax.Array

            @classmethod
            def from_model_output(cls, values: jax.Array, **_: Any) -> Any:
                return cls(value=jnp.max(values))

            @classmethod
            def empty(cls) -> Any:
                return cls(value=jnp.array(-jnp.inf))

            def merge(self, other: Any) -> Any:
                return type(self)(value=jnp.maximum(self.value, other.value))

            def compute(self) -> jax.Array:
                return self.value

        @flax.struct.dataclass
        class Std(metrics.Std):  # type: ignore[misc]
            def compute(self) -> jax.Array:  # clu 0.0.12 calls jnp.clip(a_min=), gone in JAX 0.10
                mean = self.total / self.count
                variance = jnp.maximum(self.sum_of_squares / self.count - mean**2, 0.0)
                return jnp.sqrt(variance)

        fields = {}
        for j in range(k):
            fields[f"m{j}_mean"] = metrics.Average.from_output(f"m{j}")
            fields[f"m{j}_std"] = Std.from_output(f"m{j}")
            fields[f"m{j}_max"] = Max.from_output(f"m{j}")
        self.cls = flax.struct.dataclass(
            type("Metrics", (metrics.Collection,), {"__annotations__": fields})
        )
        self.values = step_values(k)
        self.state = self.cls.empty()
        self.jitted = jax.jit(self._update)

    def _update(self, state: Any, values: dict[str, jax.Array]) -> Any:
        return state.merge(self.cls.single_from_model_output(**values))

    def eager(self) -> None:
        self.state = self._update(self.state, self.values)

    def jit(self) -> None:
        self.state = self.jitted(self.state, self.values)

    def sync(self) -> None:
        jax.block_until_ready(self.state)

    def compute_reset(self) -> None:
        {k: float(v) for k, v in self.state.compute().items()}
        self.state = self.cls.empty()

    def lower(self) -> Any:
        return self.jitted.lower(self.state, self.values)


def aggregate_clu(batches: list[Any]) -> np.ndarray:
    from clu import metrics

    collecting = metrics.CollectingMetric.from_outputs(("ll",))
    state = None
    for batch in batches:
        update = collecting.from_model_output(ll=batch)
        state = update if state is None else state.merge(update)
    return state.compute()["ll"]  # type: ignore[no-any-return,union-attr]


class Nnx:
    name = "flax.nnx"

    def __init__(self, k: int):
        from flax import nnx

        class Max(nnx.metrics.Metric):  # type: ignore[misc]
            def __init__(self, argname: str):
                self.argname = argname
                self.value = nnx.metrics.MetricState(jnp.array(-jnp.inf, jnp.float32))

            def reset(self) -> None:
                self.value[...] = jnp.array(-jnp.inf, jnp.float32)

            def update(self, **kwargs: Any) -> None:
                self.value[...] = jnp.maximum(self.value[...], jnp.max(kwargs[self.argname]))

            def compute(self) -> jax.Array:
                return self.value[...]

        metrics = {}
        for j in range(k):
            metrics[f"m{j}_mean_std"] = nnx.metrics.Welford(f"m{j}")
            metrics[f"m{j}_max"] = Max(f"m{j}")
        self.metrics = nnx.MultiMetric(**metrics)
        self.values = step_values(k)
        self.jitted = nnx.jit(lambda metrics, values: metrics.update(**values))

    def eager(self) -> None:
        self.metrics.update(**self.values)

    def jit(self) -> None:
        self.jitted(self.metrics, self.values)

    def sync(self) -> None:
        jax.block_until_ready(jax.tree.leaves(self.metrics))

    def compute_reset(self) -> None:
        out = {}
        for name, value in self.metrics.compute().items():
            if not isinstance(value, jax.Array):  # Welford's statistics
                out[name + "_mean"] = float(value.mean)
                out[name + "_std"] = float(value.standard_deviation)
            else:
                out[name] = float(value)
        self.metrics.reset()


class Torchmetrics:
    name = "torchmetrics"

    def __init__(self, k: int):
        import torch
        import torchmetrics.aggregation as agg

        torch.set_num_threads(1)
        # torchmetrics has no running std: the usual mean of squares stands in for it
        self.metrics = [(agg.MeanMetric(), agg.MeanMetric(), agg.MaxMetric()) for _ in range(k)]
        self.values = [torch.tensor(1.0 + 0.001 * j) for j in range(k)]

    def eager(self) -> None:
        for (mean, square, peak), value in zip(self.metrics, self.values, strict=True):
            mean.update(value)
            square.update(value * value)
            peak.update(value)

    def compute_reset(self) -> None:
        out = {}
        for j, (mean, square, peak) in enumerate(self.metrics):
            m = float(mean.compute())
            out[f"m{j}_mean"] = m
            out[f"m{j}_std"] = math.sqrt(max(float(square.compute()) - m * m, 0.0))
            out[f"m{j}_max"] = float(peak.compute())
            for metric in (mean, square, peak):
                metric.reset()


def aggregate_torchmetrics(batches: list[Any]) -> np.ndarray:
    import torch
    import torchmetrics.aggregation as agg

    torch.set_num_threads(1)
    cat = agg.CatMetric()
    for batch in batches:
        cat.update(batch)
    return cat.compute().numpy()  # type: ignore[no-any-return]


# -- the run ---------------------------------------------------------------------------------


def peers_for(names: list[str]) -> list[type]:
    available = {"clu": installed("clu"), "flax.nnx": installed("flax"), "torch": False}
    available["torchmetrics"] = installed("torchmetrics") and installed("torch")
    classes = [Clu, Nnx, Torchmetrics]
    return [c for c in classes if c.name in names and available[c.name]]


def time_steps(impl: Any, method: str, repeats: int, number: int) -> float | None:
    if not hasattr(impl, method):
        return None
    return median_time(getattr(impl, method), repeats, number, getattr(impl, "sync", lambda: None))


def compile_seconds(impl: Any) -> float | None:
    if not hasattr(impl, "lower"):
        return None
    jax.clear_caches()
    start = time.perf_counter()
    impl.lower().compile()
    return time.perf_counter() - start


AGGREGATORS: dict[str, tuple[Callable[[list[Any]], np.ndarray], Callable[..., list[Any]]]] = {
    "metricskit": (aggregate_metricskit, metricskit_batches),
    "metricskit fn": (aggregate_functional, metricskit_batches),
    "clu": (aggregate_clu, lambda n, size: [jnp.ones(size, jnp.float32)] * n),
    "torchmetrics": (
        aggregate_torchmetrics,
        lambda n, size: [__import__("torch").ones(size)] * n,
    ),
}


def memory(name: str, n: int, size: int) -> dict[str, float]:
    """Peak memory of one aggregation, in a fresh process, as a multiple of the data."""
    here = os.path.dirname(os.path.abspath(__file__))
    code = (
        f"import sys; sys.path.insert(0, {here!r}); import run;"
        f"print(run.json.dumps(run.measure_memory({name!r}, {n}, {size})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def measure_memory(name: str, n: int, size: int) -> dict[str, float]:
    aggregate, make = AGGREGATORS[name]
    batches = make(n, size)
    aggregate(make(2, size))  # warm up imports and compilation
    data = n * size * 4
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS to the current RSS
        rss_before = _peak_rss_bytes()
    except OSError:
        rss_before = 0
    tracemalloc.start()
    result = aggregate(batches)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = _peak_rss_bytes() - rss_before if rss_before else float("nan")
    assert np.shape(result) == (n * size,)
    # torch allocates outside Python's allocators: tracemalloc does not see its tensors
    traced = float("nan") if name == "torchmetrics" else peak / data
    return {"tracemalloc": traced, "rss": rss / data}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--keys", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--batches", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 4096])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--peers", nargs="*", default=["clu", "flax.nnx", "torchmetrics"])
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    # compute + reset computes empty states after the first round: keep every library quiet
    mk.LOGGER.setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    if args.quick:
        args.keys, args.batches, args.sizes, args.repeats = [100], [100, 1000], [256], 3
    peers = peers_for(args.peers)
    impls = [Metricskit, MetricskitFunctional, *peers]
    columns = [c.name for c in impls]
    rows: list[dict[str, Any]] = []

    def record(workload: str, size: str, unit: str, results: dict[str, float | None]) -> None:
        rows.append({"workload": workload, "size": size, "unit": unit, "results": results})
        print_row(rows[-1], columns)

    print_header(columns)
    for k in args.keys:
        built = {c.name: c(k) for c in impls}
        number = max(2, (200 if args.quick else 2000) // k)
        for workload, method in (
            ("eager update", "eager"),
            ("jitted update", "jit"),
            ("compute + reset", "compute_reset"),
        ):
            record(
                workload,
                f"K={k}",
                "ms",
                {
                    name: (
                        t * 1e3 if (t := time_steps(impl, method, args.repeats, number)) else None
                    )
                    for name, impl in built.items()
                },
            )
        record(
            "compile",
            f"K={k}",
            "s",
            {name: compile_seconds(impl) for name, impl in built.items()},
        )
    names = [n for n in AGGREGATORS if n in columns]
    for size in args.sizes:
        for n in args.batches:
            results: dict[str, float | None] = {}
            for name in names:
                if name == "clu" and n * size > 5000 * 256:
                    results[name] = None  # quadratic re-concatenation: minutes
                    continue
                aggregate, make = AGGREGATORS[name]
                batches = make(n, size)
                results[name] = median_time(lambda a=aggregate, b=batches: a(b), args.repeats) * 1e3
            record("aggregate noreduce", f"N={n}, {size}/batch", "ms", results)
        n = max(args.batches)
        for kind in ("tracemalloc", "rss"):
            mem = {
                name: memory(name, n, size)[kind]
                for name in names
                if name not in ("clu", "metricskit fn")
            }
            record(f"peak {kind} / data", f"N={n}, {size}/batch", "x", mem)  # type: ignore[arg-type]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"jax": jax.__version__, "rows": rows}, f, indent=1)


def print_header(columns: list[str]) -> None:
    peers = [c for c in columns if not c.startswith("metricskit")]
    head = f"{'workload':<25}{'size':<20}{'unit':<5}" + "".join(f"{c:>15}" for c in columns)
    head += "".join(f"{c + '/mk':>18}" for c in peers)
    print(head)
    print("-" * len(head))


def print_row(row: dict[str, Any], columns: list[str]) -> None:
    results = row["results"]
    cells = "".join(f"{fmt(results.get(c)):>15}" for c in columns)
    mine = results.get("metricskit")
    ratios = "".join(
        f"{fmt(results[c] / mine if mine and results.get(c) else None, 'x'):>18}"
        for c in columns
        if not c.startswith("metricskit")
    )
    print(f"{row['workload']:<25}{row['size']:<20}{row['unit']:<5}{cells}{ratios}", flush=True)


def fmt(value: float | None, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value >= 100:
        return f"{value:.0f}{suffix}"
    return f"{value:.3g}{suffix}"


if __name__ == "__main__":
    main()
