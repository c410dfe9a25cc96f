"""K metrics computed inside a jitted step and accumulated in the same step (in-graph).

Two steps, each in four variants (no metrics; hand-written float32 accumulation of sum, sum of
squares and max; a metricskit store with mean, std and max; a clu collection with the same):

- ``metrics step``: the step's only work is the K metrics (slices of one vector the step
  computes) and their accumulation: the cost of the accumulation itself.
- ``MLP train step``: a 784-512-512-10 MLP, batch 256, SGD, whose step logs the loss, the
  accuracy and K-2 further metrics (per-unit activation statistics).

Per step time (state donated, as trainers do) and cold compile time of each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from harness import Table, compile_seconds, installed, median_time
from peers import clu_collection

import metricskit as mk

MODES = ("mean", "std", "max")


def _keys(k: int) -> list[str]:
    return [f"m{j:05d}" for j in range(k)]


def _metrics_of(vector: jax.Array, k: int) -> dict[str, jax.Array]:
    return {key: vector[j] for j, key in enumerate(_keys(k))}


def _hand_init(k: int) -> Any:
    return (jnp.zeros(k), jnp.zeros(k), jnp.full(k, -jnp.inf), jnp.zeros((), jnp.int32))


def _hand_update(state: Any, metrics: dict[str, jax.Array]) -> Any:
    total, squares, peak, steps = state
    v = jnp.stack(list(metrics.values()))
    return total + v, squares + v * v, jnp.maximum(peak, v), steps + 1


def variants(k: int, peers: bool) -> dict[str, tuple[Callable[[], Any], Callable[[Any, Any], Any]]]:
    """Name -> (initial state, ``update(state, metrics)``)."""
    out: dict[str, tuple[Callable[[], Any], Callable[[Any, Any], Any]]] = {
        "no metrics": (lambda: jnp.zeros(()), lambda state, metrics: state),
        "hand-written float32": (lambda: _hand_init(k), _hand_update),
        "metricskit": (
            lambda: mk.MetricStore(default_log_modes=MODES).init(
                dict.fromkeys(_keys(k), np.float32(0))
            ),
            lambda store, metrics: store.update(metrics),
        ),
    }
    if peers and installed("clu") and k <= 1000:
        collection = clu_collection(_keys(k))
        out["clu"] = (
            collection.empty,
            lambda state, metrics: state.merge(collection.single_from_model_output(**metrics)),
        )
    return out


def metrics_step(update: Callable[[Any, Any], Any], k: int) -> Callable[..., Any]:
    def step(state: Any, x: jax.Array) -> Any:
        vector = jnp.tanh(x * jnp.arange(k, dtype=jnp.float32))
        return update(state, _metrics_of(vector, k))

    return step


def _mlp_params(key: jax.Array) -> list[tuple[jax.Array, jax.Array]]:
    sizes = [784, 512, 512, 10]
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        (jax.random.normal(kk, (a, b), jnp.float32) / np.sqrt(a), jnp.zeros(b, jnp.float32))
        for kk, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def mlp_step(update: Callable[[Any, Any], Any], k: int) -> Callable[..., Any]:
    def loss_fn(params: Any, x: jax.Array, y: jax.Array) -> Any:
        hidden = x
        for w, b in params[:-1]:
            hidden = jax.nn.relu(hidden @ w + b)
        logits = hidden @ params[-1][0] + params[-1][1]
        loss = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(y.shape[0]), y])
        return loss, (logits, hidden)

    def step(params: Any, state: Any, x: jax.Array, y: jax.Array) -> Any:
        (loss, (logits, hidden)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y)
        params = jax.tree.map(lambda p, g: p - 0.01 * g, params, grads)
        unit_means = jnp.resize(jnp.mean(hidden, axis=0), (max(k - 2, 1),))
        vector = jnp.concatenate(
            [jnp.stack([loss, jnp.mean(jnp.argmax(logits, -1) == y)]), unit_means]
        )[:k]
        return params, update(state, _metrics_of(vector, k))

    return step


def run(table: Table, keys: list[int], repeats: int, peers: bool, mlp: bool = True) -> None:
    """Per-step times and compile times of both steps, for each K."""
    x = jnp.float32(0.5)
    rng = np.random.default_rng(0)
    xb = jnp.asarray(rng.normal(size=(256, 784)), jnp.float32)
    yb = jnp.asarray(rng.integers(0, 10, size=256), jnp.int32)
    for k in keys:
        for name, (init, update) in variants(k, peers).items():
            step = jax.jit(metrics_step(update, k), donate_argnums=0)
            state = [init()]

            def run_metrics(step: Any = step, state: list[Any] = state) -> None:
                state[0] = step(state[0], x)

            seconds = median_time(
                run_metrics, repeats, 50, lambda s=state: jax.block_until_ready(s[0])
            )
            table.add("in-graph metrics step", f"K={k}", name, seconds * 1e6, "us")
            compiled = compile_seconds(lambda s=step, i=init: s.lower(i(), x))
            table.add("compile: metrics step", f"K={k}", name, compiled, "s")
            if not mlp:
                continue
            train = jax.jit(mlp_step(update, k), donate_argnums=(0, 1))
            carry = [_mlp_params(jax.random.key(0)), init()]

            def run_mlp(train: Any = train, carry: list[Any] = carry) -> None:
                carry[0], carry[1] = train(carry[0], carry[1], xb, yb)

            seconds = median_time(run_mlp, repeats, 10, lambda c=carry: jax.block_until_ready(c))
            table.add("MLP train step", f"K={k}", name, seconds * 1e3, "ms")


def zero_filled_compiles(k: int) -> int:
    """Compilations of a jitted step whose store starts zero-filled from ``jax.eval_shape``."""

    def step(metrics: Any, x: jax.Array) -> Any:
        vector = jnp.tanh(x * jnp.arange(k, dtype=jnp.float32))
        return mk.update_metrics(metrics, _metrics_of(vector, k), MODES)

    jitted = jax.jit(step, donate_argnums=0)
    metrics = jax.tree.map(jnp.zeros_like, jax.eval_shape(step, None, jnp.float32(0)))
    for i in range(3):
        metrics = jitted(metrics, jnp.float32(i))
        metrics, _ = mk.get_metrics(metrics)
    return int(jitted._cache_size())
