"""The demo's model: a byte-level language model in plain JAX (no framework), and Adam.

Each byte is predicted from the ``context`` bytes before it: their embeddings, concatenated,
go through one hidden layer (Bengio et al., "A neural probabilistic language model", 2003).
Small enough to train in seconds on a CPU, big enough to learn Python's spelling.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["VOCAB", "adam", "init_params", "logits"]

VOCAB = 256


def init_params(key: jax.Array, context: int, embed: int, hidden: int) -> dict[str, jax.Array]:
    """Random initial parameters (``float32``)."""
    k1, k2, k3 = jax.random.split(key, 3)
    fan_in = context * embed
    return {
        "embed": jax.random.normal(k1, (VOCAB, embed)) * 0.1,
        "w1": jax.random.normal(k2, (fan_in, hidden)) / jnp.sqrt(fan_in),
        "b1": jnp.zeros(hidden),
        "w2": jax.random.normal(k3, (hidden, VOCAB)) / jnp.sqrt(hidden),
        "b2": jnp.zeros(VOCAB),
    }


def logits(params: dict[str, jax.Array], tokens: jax.Array, context: int) -> jax.Array:
    """Next-byte logits ``(B, L - context, 256)`` of ``(B, L)`` byte windows.

    Position ``t`` predicts ``tokens[:, context + t]`` from ``tokens[:, t : context + t]``.
    """
    e = params["embed"][tokens]
    steps = tokens.shape[1] - context
    features = jnp.concatenate([e[:, i : i + steps] for i in range(context)], axis=-1)
    hidden = jax.nn.gelu(features @ params["w1"] + params["b1"])
    return hidden @ params["w2"] + params["b2"]


def adam(params: Any, grads: Any, state: Any, step: jax.Array, lr: float = 3e-3) -> tuple[Any, Any]:
    """One Adam update (Kingma and Ba, 2015; beta1 0.9, beta2 0.999, eps 1e-8).

    ``state`` is ``(m, v)`` with the structure of ``params`` (zeros at the start); ``step``
    counts from 1.
    """
    m, v = state
    m = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, m, grads)
    v = jax.tree.map(lambda v, g: 0.999 * v + 0.001 * g * g, v, grads)
    scale = lr * jnp.sqrt(1 - 0.999**step) / (1 - 0.9**step)
    params = jax.tree.map(lambda p, m, v: p - scale * m / (jnp.sqrt(v) + 1e-8), params, m, v)
    return params, (m, v)
