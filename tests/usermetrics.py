"""A user's metric module: importable by module path, so that a checkpoint of a store that
uses it loads in a fresh process (the tests run it there with this folder on PYTHONPATH)."""

from __future__ import annotations

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
