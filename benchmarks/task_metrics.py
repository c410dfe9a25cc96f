"""Task metrics in an evaluation loop: accuracy and macro F1 over 10 classes, batch 1024.

Every implementation is fed as a JAX user feeds it: a jitted eval step produces the logits of
a batch on the device, and the metrics of the batch are accumulated; after N batches the
metrics are computed. Rows (medians, per batch):

- ``metricskit``: the step returns ``store.update({"acc": tasks.accuracy(...), "f1":
  tasks.f1(..., average="macro")})`` (exact integer statistics, merged in the step);
- ``metrax``: ``Accuracy`` merged in the step, and the macro F1 from ``FBetaScore`` over
  one-hot predictions (its per-class counts; metrax 0.2.4's ``FBetaScore`` has no ``merge``,
  so the step adds its fields, as a user has to);
- ``torchmetrics``: ``MulticlassAccuracy(average="micro")`` and
  ``MulticlassF1Score(average="macro")`` updated with the step's logits moved to torch;
- ``floor: hand-written counts``: the same statistics summed by hand in the step (int32
  correct count and per-class true positives, predictions and labels).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from harness import Table, installed, median_time

import metricskit as mk
from metricskit import tasks

CLASSES = 10
BATCH = 1024
FEATURES = 32


def _data(batches: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    weights = jax.random.normal(k1, (FEATURES, CLASSES))
    x = jax.random.normal(k2, (batches, BATCH, FEATURES))
    y = jax.random.randint(k3, (batches, BATCH), 0, CLASSES)
    return weights, x, y


def _logits(weights: jax.Array, x: jax.Array) -> jax.Array:
    return x @ weights  # the model's forward pass (the same in every implementation)


def _metricskit() -> tuple[Callable[[], Any], Callable[..., Any], Callable[[Any], Any]]:
    @jax.jit
    def step(store: mk.MetricStore, weights: jax.Array, x: jax.Array, y: jax.Array) -> Any:
        logits = _logits(weights, x)
        return store.update(
            {
                "acc": tasks.accuracy(logits, y),
                "f1": tasks.f1(logits, y, num_classes=CLASSES, average="macro"),
            }
        )

    def compute(store: mk.MetricStore) -> dict[str, float]:
        host = store.compute()
        return {"acc": host["acc"], "f1": host["f1"]}

    return mk.MetricStore, step, compute


def _hand() -> tuple[Callable[[], Any], Callable[..., Any], Callable[[Any], Any]]:
    def init() -> Any:
        return jnp.zeros((), jnp.int32), jnp.zeros((3, CLASSES), jnp.int32)

    @jax.jit
    def step(state: Any, weights: jax.Array, x: jax.Array, y: jax.Array) -> Any:
        pred = jnp.argmax(_logits(weights, x), -1)
        p, t = (
            jax.nn.one_hot(pred, CLASSES, dtype=jnp.int32),
            jax.nn.one_hot(y, CLASSES, dtype=jnp.int32),
        )
        counts = jnp.stack([jnp.sum(p * t, 0), jnp.sum(p, 0), jnp.sum(t, 0)])
        return state[0] + jnp.sum(pred == y, dtype=jnp.int32), state[1] + counts

    def compute(state: Any) -> dict[str, float]:
        correct, (tp, predicted, true) = jax.device_get(state)
        f1 = np.where(predicted + true > 0, 2 * tp / np.maximum(predicted + true, 1), 0.0)
        return {"acc": float(correct) / float(true.sum()), "f1": float(f1.mean())}

    return init, step, compute


def _metrax() -> tuple[Callable[[], Any], Callable[..., Any], Callable[[Any], Any]]:
    import metrax

    def init() -> Any:
        return None

    def batch(weights: jax.Array, x: jax.Array, y: jax.Array) -> Any:
        pred = jnp.argmax(_logits(weights, x), -1)
        acc = metrax.Accuracy.from_model_output(pred, y)
        onehot = jax.nn.one_hot(pred, CLASSES), jax.nn.one_hot(y, CLASSES)
        return acc, metrax.FBetaScore.from_model_output(*onehot)

    first = jax.jit(batch)

    @jax.jit
    def step(state: Any, weights: jax.Array, x: jax.Array, y: jax.Array) -> Any:
        acc, f = batch(weights, x, y)
        acc0, f0 = state
        merged = f0.replace(
            true_positives=f0.true_positives + f.true_positives,
            false_positives=f0.false_positives + f.false_positives,
            false_negatives=f0.false_negatives + f.false_negatives,
        )
        return acc0.merge(acc), merged

    def run(state: Any, *args: Any) -> Any:
        return first(*args) if state is None else step(state, *args)

    def compute(state: Any) -> dict[str, float]:
        acc, f = state
        return {"acc": float(acc.compute()), "f1": float(jnp.mean(f.compute()))}

    return init, run, compute


def _torchmetrics() -> tuple[Callable[[], Any], Callable[..., Any], Callable[[Any], Any]]:
    import torch
    from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

    def init() -> Any:
        return (
            MulticlassAccuracy(num_classes=CLASSES, average="micro"),
            MulticlassF1Score(num_classes=CLASSES, average="macro"),
        )

    logits = jax.jit(_logits)

    def step(state: Any, weights: jax.Array, x: jax.Array, y: jax.Array) -> Any:
        out = torch.from_numpy(np.asarray(logits(weights, x)))
        target = torch.from_numpy(np.asarray(y))
        for metric in state:
            metric.update(out, target)
        return state

    def compute(state: Any) -> dict[str, float]:
        return {"acc": float(state[0].compute()), "f1": float(state[1].compute())}

    return init, step, compute


def implementations(peers: bool) -> dict[str, Callable[[], Any]]:
    """The implementations to time, by row name (peers where installed)."""
    found: dict[str, Callable[[], Any]] = {
        "metricskit": _metricskit,
        "floor: hand-written counts": _hand,
    }
    if peers and installed("metrax"):
        found["metrax"] = _metrax
    if peers and installed("torchmetrics") and installed("torch"):
        found["torchmetrics"] = _torchmetrics
    return found


def run(table: Table, batches: int, repeats: int, peers: bool) -> dict[str, dict[str, float]]:
    """Time the loop of each implementation; returns each one's computed metrics."""
    weights, x, y = _data(batches)
    results: dict[str, dict[str, float]] = {}
    size = f"C={CLASSES} B={BATCH}"
    for name, make in implementations(peers).items():
        init, step, compute = make()

        def loop(init: Any = init, step: Any = step, compute: Any = compute) -> dict[str, float]:
            state = init()
            for i in range(batches):
                state = step(state, weights, x[i], y[i])
            return compute(state)  # type: ignore[no-any-return]

        results[name] = loop()
        seconds = median_time(loop, repeats)
        table.add("task metrics: acc + macro F1", size, name, seconds / batches * 1e6, "us")
    return results
