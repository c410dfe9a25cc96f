"""A user's metric module: importable by module path, so that a checkpoint of a store that
uses it loads in a fresh process (the tests run it there with this folder on PYTHONPATH)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import metricskit as mk


class DecayedMean(mk.Metric):
    """An exponentially decayed mean (docs/custom_metrics.md): later steps weigh more."""

    decay = mk.static(0.9)
    total = mk.state("merge")
    weight = mk.state("merge")
    steps = mk.state("sum", shape="scalar", dtype="int")

    def update(self, value, count):
        return self.replace(
            total=self.decay * self.total + value,
            weight=self.decay * self.weight + count,
            steps=self.steps + 1,
        )

    def aggregate(self, other):  # self holds the earlier steps, other the later ones
        f = self.decay**other.steps
        return self.replace(
            total=f * self.total + other.total,
            weight=f * self.weight + other.weight,
            steps=self.steps + other.steps,
        )

    def compute(self):
        return mk.divide(self.total, self.weight)


def mixed_step(rng: np.random.Generator, n: int = 64) -> dict:
    """A step of two configurations of each kind: two quantile sets, two F1 averages, two
    decays, beside r2 and a plain loss (what a checkpoint round trip must keep apart)."""
    x = jnp.asarray(rng.normal(size=n), jnp.float32)
    logits = jnp.asarray(rng.normal(size=(n, 3)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 3, size=n))
    return {
        "q_tails": mk.tasks.quantiles(x, q=(0.0, 1.0)),
        "q_low": mk.tasks.quantiles(x, q=(0.1,)),
        "f1_macro": mk.tasks.f1(logits, labels, num_classes=3),
        "f1_micro": mk.tasks.f1(logits, labels, num_classes=3, average="micro"),
        "r2": mk.tasks.r2(x, x + 0.1),
        "fast": {"value": x.sum(), "log_modes": [DecayedMean(decay=0.5)]},
        "slow": {"value": x.sum(), "log_modes": [DecayedMean(decay=0.99)]},
        "loss": x.mean(),
    }
