"""A small, self-contained training loop that shows a MetricStore at work.

A softmax classifier learns synthetic Gaussian clusters with plain JAX (no downloads, no extra
packages). Each jitted step updates the store on the device; every ``log_every`` steps one
``compute()`` brings all metrics to the host, then the store is reset. An evaluation pass
collects per-sample losses with the ``single_noreduce`` mode.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from metricskit.functional import aggregate_metrics, get_metrics, update_metrics
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
    return update_metrics(
        None, {"sample_loss": {"value": losses, "count": y.size, "log_modes": ["single_noreduce"]}}
    )


def run_demo(steps: int = 300, seed: int = 0, log_every: int = 50) -> dict[str, Any]:
    """Train the demo classifier and print the logged metrics.

    Args:
        steps: Number of training steps.
        seed: Random seed of the data and the initial parameters.
        log_every: Steps between two logs.

    Returns:
        The last logged training metrics and the evaluation summary.
    """
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
    for step in range(steps):
        batch = slice(step * _BATCH, (step + 1) * _BATCH)
        params, store = _train_step(params, store, x[batch], y[batch])
        if (step + 1) % log_every == 0 or step + 1 == steps:
            logged = store.compute()
            store = store.reset()
            print(f"step {step + 1:5d}  " + "  ".join(f"{k}={v:.4f}" for k, v in logged.items()))
    ex, ey = _data(seed + 1, 8 * _BATCH)
    aggregated: Any = {}
    for i in range(8):
        batch = slice(i * _BATCH, (i + 1) * _BATCH)
        aggregated = aggregate_metrics(aggregated, _eval_step(params, ex[batch], ey[batch]))
    _, host = get_metrics(aggregated)
    losses = host["sample_loss_single_noreduce"]
    summary = {"eval_samples": losses.size, "eval_loss": float(np.mean(losses))}
    print(f"eval: {summary['eval_samples']} samples, mean loss {summary['eval_loss']:.4f}")
    return {**logged, **summary}
