"""K scalar metrics, each logged as mean, std and max: metricskit and its peers.

Every implementation has ``eager()`` (one step's K values, device scalars as a jitted step
returns them, added outside ``jit``), ``compute_reset()`` (the K x 3 reported values as
Python floats, then the empty state) and, for JAX libraries, ``jit()`` and ``lower()`` (a
jitted step that takes the state and the K values). clu and flax.nnx have no running max, so
each gets the few lines of a max metric that their documentation shows how to write;
torchmetrics has no running std, so a mean of squares stands in for it.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

import metricskit as mk
from metricskit.functional import get_metrics, update_metrics

MODES = ("mean", "std", "max")


@jax.jit
def _make_values(x: jax.Array) -> jax.Array:
    return 1.0 + 0.001 * x


def step_values(k: int) -> dict[str, jax.Array]:
    """K device scalars, as a jitted step's outputs come back."""
    values = _make_values(jnp.arange(k, dtype=jnp.float32))
    return {f"m{j}": values[j] for j in range(k)}


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


def clu_collection(keys: list[str]) -> Any:
    """A clu ``Collection`` with ``key_mean``, ``key_std`` and ``key_max`` per key.

    clu has no running max, so this gives it the few lines its documentation shows; clu
    0.0.12's ``Std.compute`` calls ``jnp.clip(a_min=)``, gone in JAX 0.10, so the same formula
    replaces it.
    """
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
        def compute(self) -> jax.Array:
            mean = self.total / self.count
            variance = jnp.maximum(self.sum_of_squares / self.count - mean**2, 0.0)
            return jnp.sqrt(variance)

    fields = {}
    for key in keys:
        fields[f"{key}_mean"] = metrics.Average.from_output(key)
        fields[f"{key}_std"] = Std.from_output(key)
        fields[f"{key}_max"] = Max.from_output(key)
    return flax.struct.dataclass(
        type("Metrics", (metrics.Collection,), {"__annotations__": fields})
    )


class Clu:
    name = "clu"

    def __init__(self, k: int):
        self.cls = clu_collection([f"m{j}" for j in range(k)])
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
