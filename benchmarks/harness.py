"""Timing, tables and results for the benchmarks (medians, ratios, one JSON file)."""

from __future__ import annotations

import gc
import importlib.util
import json
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (peers are optional)."""
    return importlib.util.find_spec(module) is not None


def median_time(
    fn: Callable[[], Any],
    repeats: int,
    number: int = 1,
    sync: Callable[[], Any] = lambda: None,
    budget: float | None = None,
) -> float:
    """Median over ``repeats`` of the mean time of ``number`` calls of ``fn`` (seconds).

    ``sync`` (waiting for the device) runs once after each ``number`` calls, inside the timing:
    steps dispatch asynchronously, as in a training loop, and the total is measured. The
    garbage collector runs before each repeat, not during it. With ``budget`` (seconds), a
    repeat makes fewer than ``number`` calls where one call (timed after the warm-up) already
    takes a good part of it, so that slow implementations do not dominate the run.
    """
    fn()  # warm up (compilation, caches)
    sync()
    if budget is not None:
        start = time.perf_counter()
        fn()
        sync()
        number = max(1, min(number, int(budget / (time.perf_counter() - start))))
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        sync()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def compile_seconds(lower: Callable[[], Any]) -> float:
    """Seconds to compile what ``lower()`` lowers (caches cleared first: a cold compile)."""
    jax.clear_caches()
    lowered = lower()
    start = time.perf_counter()
    lowered.compile()
    return time.perf_counter() - start


class Table:
    """Rows of (workload, size, implementation, median), printed as they come.

    Each row also shows the implementation's time over metricskit's time in the same
    workload and size (``x mk``: above 1 means metricskit is faster).
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        print(f"{'workload':<34}{'size':<16}{'implementation':<26}{'median':>12}  {'x mk':>8}")
        print("-" * 98)

    def add(self, workload: str, size: str, name: str, value: float | None, unit: str) -> None:
        """Record and print one median (``None``: not run)."""
        mine = next(
            (
                r["value"]
                for r in self.rows
                if r["workload"] == workload and r["size"] == size and r["name"] == "metricskit"
            ),
            None,
        )
        ratio = value / mine if value is not None and mine else None
        self.rows.append(
            {"workload": workload, "size": size, "name": name, "value": value, "unit": unit,
             "ratio": ratio}
        )  # fmt: skip
        print(
            f"{workload:<34}{size:<16}{name:<26}{fmt(value):>9} {unit:<3}{fmt(ratio, 'x'):>8}",
            flush=True,
        )

    def value(self, workload: str, size: str, name: str) -> float | None:
        """A recorded median."""
        for r in self.rows:
            if (r["workload"], r["size"], r["name"]) == (workload, size, name):
                return r["value"]  # type: ignore[no-any-return]
        return None

    def summary(self) -> str:
        """A Markdown table: one line per workload and size, each implementation's median
        with its ratio to metricskit's (``impl / metricskit``) in parentheses."""
        lines = ["| workload | size | metricskit | others (x metricskit) |", "|---|---|---|---|"]
        seen: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in self.rows:
            seen.setdefault((r["workload"], r["size"]), []).append(r)
        for (workload, size), rows in seen.items():
            mine = next((r for r in rows if r["name"] == "metricskit"), None)
            base = mine["value"] if mine else None
            others = []
            for r in rows:
                if r is mine:
                    continue
                ratio = (
                    f" ({fmt(r['value'] / base, 'x')})" if base and r["value"] is not None else ""
                )
                others.append(f"{r['name']} {fmt(r['value'])} {r['unit']}{ratio}".strip())
            here = f"{fmt(base)} {mine['unit']}" if mine else "-"
            lines.append(f"| {workload} | {size} | {here} | {'; '.join(others)} |")
        return "\n".join(lines)

    def dump(self, path: str) -> None:
        """Write the rows (and the JAX version) as JSON."""
        with open(path, "w") as f:
            json.dump({"jax": jax.__version__, "rows": self.rows}, f, indent=1)


def fmt(value: float | None, suffix: str = "") -> str:
    """A number in three significant digits (``-`` for none)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}{suffix}"
    return f"{value:.3g}{suffix}"
