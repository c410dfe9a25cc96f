"""Evaluation loops: per-sample losses of N batches from a jitted eval step, aggregated.

The data is what a training script has: device arrays (or the store) that a jitted evaluation
step returns, one per batch. Workloads, per batch:

- ``metricskit``: the eval step returns the store (``update_metrics(None, ...)`` inside
  ``jit``); ``aggregate_metrics`` per batch, ``get_metrics`` at the end.
- ``metricskit eager update``: the eval step returns the losses; ``update_metrics(None, ...)``
  and ``aggregate_metrics`` per batch, eagerly.
- ``torchmetrics CatMetric``: fed the same device arrays (``torch.from_dlpack``), then
  ``compute``.
- floors: a Python list of ``np.asarray`` per batch and one ``np.concatenate``; and the copy
  alone (``np.concatenate`` of host arrays made beforehand: the memcpy).

Also the peak memory of the aggregation in a fresh process (rise of the peak RSS over the
aggregated data's size) and the whole loop (eval step + aggregation) against the same loop
with a plain list.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from harness import Table, installed, median_time

import metricskit as mk  # noqa: F401  (registers the modes)
from metricskit.functional import aggregate_metrics, get_metrics, update_metrics


@jax.jit
def eval_store(x: jax.Array, i: jax.Array) -> Any:
    """An evaluation step that logs per-sample losses into a store."""
    return update_metrics(None, {"ll": {"value": x * i, "log_modes": ["single_noreduce"]}})


@jax.jit
def eval_raw(x: jax.Array, i: jax.Array) -> jax.Array:
    """The same step returning the losses."""
    return x * i


def _outputs(step: Callable[..., Any], n: int, size: int) -> list[Any]:
    x = jnp.linspace(0.0, 1.0, size, dtype=jnp.float32)
    out = [step(x, jnp.float32(i)) for i in range(n)]
    jax.block_until_ready(out)
    return out


def aggregate_stores(stores: list[Any]) -> np.ndarray:
    aggregated: Any = {}
    for store in stores:
        aggregated = aggregate_metrics(aggregated, store)
    return get_metrics(aggregated)[1]["ll_single_noreduce"]  # type: ignore[no-any-return]


def aggregate_eagerly(arrays: list[jax.Array]) -> np.ndarray:
    aggregated: Any = {}
    for x in arrays:
        step = update_metrics(None, {"ll": {"value": x, "log_modes": ["single_noreduce"]}})
        aggregated = aggregate_metrics(aggregated, step)
    return get_metrics(aggregated)[1]["ll_single_noreduce"]  # type: ignore[no-any-return]


def aggregate_torchmetrics(arrays: list[jax.Array]) -> np.ndarray:
    import torch
    from torchmetrics.aggregation import CatMetric

    cat = CatMetric()
    for x in arrays:
        cat.update(torch.from_dlpack(x))
    return cat.compute().numpy()  # type: ignore[no-any-return]


def plain_list(arrays: list[jax.Array]) -> np.ndarray:
    kept = [np.asarray(x) for x in arrays]
    return np.concatenate(kept)


def memcpy(host: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(host)


WORKLOADS: dict[str, tuple[Callable[[list[Any]], np.ndarray], str]] = {
    "metricskit": (aggregate_stores, "store"),
    "metricskit eager update": (aggregate_eagerly, "raw"),
    "torchmetrics CatMetric": (aggregate_torchmetrics, "raw"),
    "floor: list + concatenate": (plain_list, "raw"),
    "floor: memcpy": (memcpy, "host"),
}


def _data(kind: str, n: int, size: int) -> list[Any]:
    if kind == "store":
        return _outputs(eval_store, n, size)
    raw = _outputs(eval_raw, n, size)
    return [np.asarray(x) for x in raw] if kind == "host" else raw


def run(
    table: Table,
    batches: list[int],
    size: int,
    repeats: int,
    peers: bool,
    memory_peers: bool = True,
) -> None:
    """The aggregation workloads (us per batch), linearity, memory and the whole loop.

    ``memory_peers=False`` measures the peak memory of metricskit and the list floor only
    (each measurement is a fresh process; the peer's costs seconds of imports).
    """
    names = [n for n in WORKLOADS if peers or not n.startswith("torchmetrics")]
    if "torchmetrics CatMetric" in names and not installed("torchmetrics"):
        names.remove("torchmetrics CatMetric")
    for n in batches:
        size_label = f"N={n}, {size}/batch"
        for name in names:
            aggregate, kind = WORKLOADS[name]
            data = _data(kind, n, size)
            seconds = median_time(lambda a=aggregate, d=data: a(d), repeats)
            table.add("eval aggregation", size_label, name, seconds / n * 1e6, "us")
            del data
            gc.collect()
    n = max(batches)
    for name in ("metricskit", "torchmetrics CatMetric", "floor: list + concatenate"):
        if name in names and (memory_peers or not name.startswith("torchmetrics")):
            rise = memory(name, n, size)
            table.add("eval peak RSS rise / data", f"N={n}, {size}/batch", name, rise, "x")
    whole_loop(table, n, size, repeats)


def whole_loop(table: Table, n: int, size: int, repeats: int) -> None:
    """The eval step and the aggregation together, against the same loop with a plain list."""
    x = jnp.linspace(0.0, 1.0, size, dtype=jnp.float32)
    steps = [jnp.float32(i) for i in range(n)]

    def with_metricskit() -> Any:
        aggregated: Any = {}
        for i in steps:
            aggregated = aggregate_metrics(aggregated, eval_store(x, i))
        return get_metrics(aggregated)[1]["ll_single_noreduce"]

    def with_list() -> Any:
        kept = [np.asarray(eval_raw(x, i)) for i in steps]
        return np.concatenate(kept)

    def step_only() -> Any:
        for i in steps:
            out = eval_raw(x, i)
        return jax.block_until_ready(out)

    label = f"N={n}, {size}/batch"
    for name, fn in (
        ("metricskit", with_metricskit),
        ("floor: list + concatenate", with_list),
        ("eval step alone", step_only),
    ):
        table.add(
            "whole eval loop", label, name, median_time(fn, max(2, repeats // 2)) / n * 1e6, "us"
        )


def memory(name: str, n: int, size: int) -> float:
    """The rise of the peak RSS during one aggregation, over the data, in a fresh process."""
    here = os.path.dirname(os.path.abspath(__file__))
    code = (
        f"import sys; sys.path.insert(0, {here!r}); import evaluation;"
        f"print(evaluation.json.dumps(evaluation.measure_memory({name!r}, {n}, {size})))"
    )
    env = dict(os.environ, XLA_FLAGS="")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1]))


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def measure_memory(name: str, n: int, size: int) -> float:
    aggregate, kind = WORKLOADS[name]
    aggregate(_data(kind, 4, size))  # warm up: imports, compilation
    data = _data(kind, n, size)
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS to the current RSS
        before = _peak_rss_bytes()
    except OSError:
        return float("nan")
    result = aggregate(data)
    assert np.shape(result) == (n * size,)
    return (_peak_rss_bytes() - before) / (n * size * 4)
