"""Test helpers: a NumPy float64 oracle for every built-in log mode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import jax
import jax.numpy as jnp
import numpy as np

import metricskit as mk

X64 = bool(jax.config.read("jax_enable_x64"))
FLOAT = "float64" if X64 else "float32"  # the accumulation / canonical float dtype
INT = "int64" if X64 else "int32"  # the canonical integer dtype

BUILTIN_MODES = (
    "mean",
    "mean_nopostfix",
    "single",
    "max",
    "min",
    "std",
    "single_noreduce",
    "single_noreduce_wcount",
)
SCALAR_MODES = ("mean", "mean_nopostfix", "single", "max", "min", "std")


def reference(mode: str, values: Sequence[Any], counts: Sequence[Any]) -> Any:
    """What ``mode`` reports after the given steps, computed in NumPy float64."""
    v = [np.asarray(x, np.float64) for x in values]
    c = [np.asarray(x, np.float64) for x in counts]
    if mode in ("mean", "mean_nopostfix"):
        total, count = sum(v), sum(c)
        return np.where(count == 0, 0.0, total / np.where(count == 0, 1, count))
    if mode == "single":
        return v[-1] / c[-1]
    if mode in ("max", "min", "std"):
        samples = np.stack(
            [
                np.broadcast_to(x / np.where(n == 0, 1, n), np.broadcast_shapes(x.shape, n.shape))
                for x, n in zip(v, c, strict=True)
            ]
        )
        has = np.stack([np.broadcast_to(n != 0, samples.shape[1:]) for n in c])
        if mode == "max":
            return np.where(has, samples, -np.inf).max(axis=0)
        if mode == "min":
            return np.where(has, samples, np.inf).min(axis=0)
        n = has.sum(axis=0)
        mean = np.where(has, samples, 0).sum(axis=0) / n
        return np.sqrt(np.where(has, (samples - mean) ** 2, 0).sum(axis=0) / n)
    if mode == "single_noreduce":
        return np.atleast_1d(v[-1])
    if mode == "single_noreduce_wcount":
        shape = np.broadcast_shapes(v[-1].shape, c[-1].shape) or (1,)
        return np.broadcast_to(v[-1], shape), np.broadcast_to(c[-1], shape)
    raise AssertionError(mode)


def reported_name(key: str, mode: str) -> str:
    return key if mode == "mean_nopostfix" else f"{key}_{mode}"


@mk.register_metric("cubic_mean")
class PowerMean(mk.Metric):
    """The p-th power mean (sum(count * x**p) / sum(count)) ** (1/p) of per-step x = value/count."""

    powers = mk.state("sum")
    weight = mk.state("sum", shape="count")
    p: float = mk.static(3.0)

    def update(self, value: jax.Array, count: jax.Array) -> Self:
        x = mk.divide(value, count)
        return self.replace(powers=self.powers + count * x**self.p, weight=self.weight + count)

    def compute(self) -> jax.Array:
        return jnp.cbrt(mk.divide(self.powers, self.weight))


@mk.register_metric("last_nonzero")
class LastNonzero(mk.Metric):
    """The last step value that was not zero (an aggregation keeps the later part's)."""

    value = mk.state("last")
    seen = mk.state("max", dtype="bool")

    def update(self, value: jax.Array, count: jax.Array) -> Self:
        nonzero = value != 0
        return self.replace(value=jnp.where(nonzero, value, self.value), seen=self.seen | nonzero)

    def aggregate(self, other: Self) -> Self:
        return self.replace(
            value=jnp.where(other.seen, other.value, self.value), seen=self.seen | other.seen
        )

    def compute(self) -> jax.Array:
        return self.value

    def is_empty(self) -> jax.Array:
        return ~jnp.any(self.seen)


def sink_results(rng, *, tokens="tokens", grad_norm=None, wcount=True, steps=3):
    """What a sink receives: the computed results of ``steps`` updates of one store, with
    scalars, an int, arrays, ``(values, counts)`` pairs and a histogram; ``grad_norm`` (a
    float) adds a ``single`` key that is NaN at the second step."""
    import math

    import metricskit as mk

    store = mk.MetricStore(default_log_modes=("mean", "max"))
    out = []
    for i in range(steps):
        step = {
            "train/loss": float(rng.normal()),
            tokens: {"value": int(rng.integers(0, 1000)), "log_modes": ["single"]},
        }
        if grad_norm is not None:
            step["grad_norm"] = {
                "value": math.nan if i == 1 else grad_norm,
                "log_modes": ["single"],
            }
        step["ll"] = {"value": rng.normal(size=5), "log_modes": ["single_noreduce"]}
        if wcount:
            step["tok_ll"] = {
                "value": rng.normal(size=4),
                "count": rng.integers(1, 9, size=4),
                "log_modes": ["single_noreduce_wcount"],
            }
        step["err"] = mk.tasks.histogram(rng.lognormal(size=50))
        store = store.update(step)
        out.append(store.compute())
    return out
