"""A small, self-contained training loop that shows a MetricStore at work.

A softmax classifier learns synthetic Gaussian clusters with plain JAX (no downloads). Each
jitted step updates the store on the device; every ``log_every`` steps one ``compute()``
brings all metrics to the host, they go to the sinks and the progress bar, and the store is
reset. An evaluation pass collects per-sample losses with the ``single_noreduce`` mode. The
run's folder gets ``metrics.jsonl``, ``curves.png`` and ``eval_state.npz`` (a checkpoint of
the evaluation store).

Needs the ``demo`` extra (tqdm and matplotlib): ``pip install "metricskit[demo]"``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from metricskit.functional import aggregate_metrics, get_metrics, update_metrics
from metricskit.sinks import MultiSink, format_table, make_sink, require, summarize
from metricskit.store import MetricStore

__all__ = ["run_demo"]

_CLASSES, _FEATURES, _BATCH = 4, 16, 64


def _data(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(1234).normal(0, 0.35, size=(_CLASSES, _FEATURES))
    labels = rng.integers(0, _CLASSES, size=n)
    x = centers[labels] + rng.normal(size=(n, _FEATURES))
    return x.astype(np.float32), labels.astype(np.int32)


def _loss(params: Any, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    logits = x @ params["w"] + params["b"]
    per_sample = -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1)[:, 0]
    return per_sample.mean(), logits


@jax.jit
def _train_step(
    params: Any, store: MetricStore, x: jax.Array, y: jax.Array
) -> tuple[Any, MetricStore]:
    (loss, logits), grads = jax.value_and_grad(_loss, has_aux=True)(params, x, y)
    params = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
    grad_norm = jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(grads)))
    store = store.update(
        {
            "loss": {"value": loss, "log_modes": ["mean", "std", "max"]},
            "accuracy": {"value": jnp.sum(logits.argmax(-1) == y), "count": y.size},
            "grad_norm": {"value": grad_norm, "log_modes": ["mean", "single"]},
        }
    )
    return params, store


@jax.jit
def _eval_step(params: Any, x: jax.Array, y: jax.Array) -> MetricStore:
    losses = -jnp.take_along_axis(
        jax.nn.log_softmax(x @ params["w"] + params["b"]), y[:, None], axis=1
    )[:, 0]
    correct = (x @ params["w"] + params["b"]).argmax(-1) == y
    return update_metrics(
        None,
        {
            "sample_loss": {"value": losses, "count": y.size, "log_modes": ["single_noreduce"]},
            "accuracy": {"value": correct.sum(), "count": y.size},
        },
    )


def run_demo(
    steps: int = 300,
    seed: int = 0,
    log_every: int = 10,
    out_dir: str | os.PathLike[str] = "runs",
    name: str = "demo",
    sinks: Sequence[str] = ("jsonl",),
    progress: bool = True,
    plot: bool = True,
) -> dict[str, Any]:
    """Train the demo classifier, logging to sinks, a progress bar and a plot.

    Args:
        steps: Number of training steps.
        seed: Random seed of the data and the initial parameters.
        log_every: Steps between two logs.
        out_dir: The folder of runs; this run writes into ``out_dir/name``.
        name: The run's name.
        sinks: Names of :func:`~metricskit.sinks.make_sink` sinks; ``"jsonl"`` writes the
            ``metrics.jsonl`` that the plot is made from.
        progress: Show a tqdm progress bar with the latest metrics.
        plot: Write ``curves.png`` from ``metrics.jsonl`` (needs the ``jsonl`` sink).

    Returns:
        The last logged training metrics and the evaluation summary.

    Raises:
        ImportError: Without the ``demo`` extra, naming it.
        ValueError: For ``plot`` without the ``jsonl`` sink, or an unknown sink.
    """
    if plot and "jsonl" not in sinks:
        raise ValueError("plot=True draws metrics.jsonl: add the 'jsonl' sink or pass plot=False")
    tqdm = require("tqdm", "demo", "the demo's progress bar").tqdm if progress else None
    if plot:
        require("matplotlib", "demo", "the demo's plot")
    folder = os.path.join(os.fspath(out_dir), name)
    os.makedirs(folder, exist_ok=True)
    sink = MultiSink(make_sink(s, folder) for s in sinks)
    x, y = _data(seed, steps * _BATCH)
    key = jax.random.PRNGKey(seed)
    params = {
        "w": 0.01 * jax.random.normal(key, (_FEATURES, _CLASSES)),
        "b": jnp.zeros(_CLASSES),
    }
    store = MetricStore().init(
        {
            "loss": {"value": 0.0, "log_modes": ["mean", "std", "max"]},
            "accuracy": {"value": 0, "count": 1},
            "grad_norm": {"value": 0.0, "log_modes": ["mean", "single"]},
        }
    )
    logged: dict[str, Any] = {}
    bar = tqdm(total=steps, desc=name, unit="step", file=sys.stderr) if tqdm else None
    last_time, last_step = time.perf_counter(), 0
    try:
        for step in range(steps):
            batch = slice(step * _BATCH, (step + 1) * _BATCH)
            params, store = _train_step(params, store, x[batch], y[batch])
            if (step + 1) % log_every == 0 or step + 1 == steps:
                logged = store.compute()  # the one device-to-host transfer of this log
                store = store.reset()
                now = time.perf_counter()
                logged["samples_per_s"] = (step + 1 - last_step) * _BATCH / (now - last_time)
                last_time, last_step = now, step + 1
                sink.write(step + 1, logged)
                if bar is not None:
                    bar.set_postfix(
                        loss=f"{logged['loss_mean']:.4f}",
                        acc=f"{logged['accuracy']:.3f}",
                        refresh=False,
                    )
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        summary = _evaluate(params, seed, folder)
        sink.write(steps, {f"eval_{k}": v for k, v in summary.items()})
    finally:
        sink.close()
    results = {**logged, **{f"eval_{k}": v for k, v in summary.items()}}
    print(format_table(list(results.items()), title=f"{name}: after {steps} steps"))
    if plot:
        from metricskit.plot import plot_jsonl

        plot_jsonl(  # the training curves; the evaluation is one point, in the table
            os.path.join(folder, "metrics.jsonl"), os.path.join(folder, "curves.png"), list(logged)
        )
    print(f"wrote {', '.join(sorted(os.listdir(folder)))} to {folder}")
    return results


def _evaluate(params: Any, seed: int, folder: str) -> dict[str, Any]:
    """Per-sample losses of 8 held-out batches, aggregated with the noreduce mode."""
    ex, ey = _data(seed + 1, 8 * _BATCH)
    aggregated: Any = {}
    for i in range(8):
        batch = slice(i * _BATCH, (i + 1) * _BATCH)
        aggregated = aggregate_metrics(aggregated, _eval_step(params, ex[batch], ey[batch]))
    MetricStore.from_mapping(aggregated).save(os.path.join(folder, "eval_state.npz"))
    _, host = get_metrics(aggregated)
    stats = summarize({"loss": host["sample_loss_single_noreduce"]})
    return {
        "samples": stats["loss/n"],
        "loss": stats["loss/mean"],
        "loss_std": stats["loss/std"],
        "loss_max": stats["loss/max"],
        "accuracy": host["accuracy"],
    }
