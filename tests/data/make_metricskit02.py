"""Writes the format-2 checkpoint fixtures with metricskit 0.2 (commit ea5a3a1):
``PYTHONPATH=<a checkout of 0.2> python make_metricskit02.py OUT.npz [noq] > OUT.json``
(``noq``: without the quantiles, whose 0.2 name does not translate without ``like=``).
tests/test_checkpoint.py builds the same step with this version's task functions."""

import json
import sys

import jax.numpy as jnp
import numpy as np

import metricskit as mk


def step(rng: np.random.Generator, quantiles: bool = True) -> dict:
    """One step of every task family, drawn from ``rng``."""
    x = jnp.asarray(rng.normal(size=16), jnp.float32)
    logits = jnp.asarray(rng.normal(size=(16, 3)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 3, size=16))
    probs = jnp.asarray(rng.uniform(size=16), jnp.float32)
    binary = jnp.asarray(rng.integers(0, 2, size=16))
    tl = jnp.asarray(rng.normal(size=(2, 4, 5)), jnp.float32)
    tt = jnp.asarray(rng.integers(0, 5, size=(2, 4)))
    nan = float("nan")
    return {
        "loss": x.mean(),
        "f1": mk.tasks.f1(logits, labels, num_classes=3),
        "fbeta": mk.tasks.fbeta(
            logits, labels, num_classes=3, beta=0.5, average="weighted", zero_division=nan
        ),
        "recall": mk.tasks.recall(logits, labels, num_classes=3, average="none", zero_division=1.0),
        "cm": mk.tasks.confusion_matrix(logits, labels, num_classes=3),
        **({"q": mk.tasks.quantiles(x, q=(0.1, 0.5))} if quantiles else {}),
        "hist": mk.tasks.histogram(x, relative_accuracy=0.05),
        "mse": mk.tasks.mse(x, x * 0.5),
        "r2": mk.tasks.r2(x, x * 0.5 + 1),
        "auc": mk.tasks.roc_auc(probs, binary),
        "ece": mk.tasks.calibration_error(jnp.stack([1 - probs, probs], -1), binary, bins=10),
        "ppl": mk.tasks.perplexity(tl, tt),
        "mrr": mk.tasks.mrr(logits, jnp.eye(3)[labels]),
    }


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    store = mk.MetricStore(default_log_modes=["mean", "max"])
    for _ in range(2):
        store = store.update(step(rng, quantiles=len(sys.argv) <= 2))
    store.save(sys.argv[1])
    out = {k: getattr(v, "tolist", lambda v=v: v)() for k, v in store.compute().items()}
    del out["hist"]
    print(json.dumps(out))
