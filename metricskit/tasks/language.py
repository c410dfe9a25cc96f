"""Language modelling: perplexity, bits per token or byte, token accuracy, per-sequence
log-likelihoods and multiple-choice accuracy from them.

``logits`` are ``(B, T, V)``, ``targets`` ``(B, T)`` token ids and ``mask`` ``(B, T)``
booleans marking real (not padding) tokens. Sums of negative log-likelihoods are exact
(double-float), token counts exact (carried integers), and the final exponential or division
happens on the host in float64, so a perplexity never overflows float32 (it is ``inf`` only
beyond float64's range).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from metricskit.tasks.classification import accuracy
from metricskit.tasks.modes import counted, step_item, summing_mode

__all__ = [
    "bits_per_byte",
    "bits_per_token",
    "multiple_choice_accuracy",
    "perplexity",
    "sequence_log_likelihood",
    "token_accuracy",
    "token_nll",
]


def token_nll(logits: Any, targets: Any) -> jax.Array:
    """Per-token negative log-likelihood (nats), ``(B, T)`` float32."""
    logp = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1)
    return -jnp.take_along_axis(logp, jnp.asarray(targets)[..., None], axis=-1)[..., 0]


def _exp_mean(sums: np.ndarray, count: np.ndarray) -> float:
    with np.errstate(over="ignore"):
        return float(np.exp(np.float64(sums) / np.float64(count)))


def _bits(sums: np.ndarray, count: np.ndarray) -> float:
    return float(np.float64(sums) / np.float64(count) / math.log(2))


def _nll_item(logits: Any, targets: Any, mask: Any, count: Any, mode: str) -> dict[str, Any]:
    m = counted(mask, jnp.shape(targets))
    total = jnp.sum(jnp.where(m, token_nll(logits, targets), 0.0))
    n = jnp.sum(m, dtype=jnp.int32) if count is None else count
    return step_item(total, n, mode)


def perplexity(logits: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """``exp`` of the mean negative log-likelihood per (unmasked) token.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> logits = jnp.zeros((1, 3, 4))  # uniform over 4 tokens: perplexity 4
        >>> step = {"ppl": mk.tasks.perplexity(logits, jnp.array([[0, 1, 2]]))}
        >>> round(mk.MetricStore().update(step).compute()["ppl"], 6)
        4.0
    """
    return _nll_item(logits, targets, mask, None, summing_mode("perplexity", _exp_mean))


def bits_per_token(logits: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """The mean negative log-likelihood per token, in bits."""
    return _nll_item(logits, targets, mask, None, summing_mode("bits", _bits))


def bits_per_byte(logits: Any, targets: Any, num_bytes: Any, *, mask: Any = None) -> dict[str, Any]:
    """The total negative log-likelihood in bits over the number of bytes the tokens encode.

    Args:
        logits: ``(B, T, V)``.
        targets: ``(B, T)`` token ids.
        num_bytes: The number of bytes of the (unmasked) target text of this batch.
        mask: ``(B, T)`` real tokens.
    """
    return _nll_item(logits, targets, mask, num_bytes, summing_mode("bits", _bits))


def token_accuracy(logits: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """The fraction of (unmasked) tokens whose most likely prediction is the target."""
    return accuracy(logits, targets, mask=counted(mask, jnp.shape(targets)))


def sequence_log_likelihood(logits: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """Per-sequence log-likelihoods and lengths, in the ``single_noreduce_wcount`` mode.

    Aggregated over evaluation batches with :func:`metricskit.aggregate_metrics`, the reported
    ``(values, counts)`` are every sequence's total log-likelihood (nats) and its number of
    tokens, in order: what :func:`multiple_choice_accuracy` takes.
    """
    m = counted(mask, jnp.shape(targets))
    ll = -jnp.sum(jnp.where(m, token_nll(logits, targets), 0.0), axis=-1)
    return {
        "value": ll,
        "count": jnp.sum(m, axis=-1, dtype=jnp.int32),
        "log_modes": ["single_noreduce_wcount"],
    }


def multiple_choice_accuracy(
    log_likelihoods: Any, lengths: Any, answers: Any, *, choices: int, normalize: bool = False
) -> float:
    """Accuracy of choosing, per question, the continuation with the highest log-likelihood.

    As evaluation harnesses score multiple-choice tasks: sequences come grouped by question,
    ``choices`` continuations each, in order.

    Args:
        log_likelihoods: ``(Q * choices,)`` per-sequence log-likelihoods.
        lengths: ``(Q * choices,)`` token counts (for ``normalize``).
        answers: ``(Q,)`` the index of the right continuation of each question.
        choices: Continuations per question.
        normalize: Compare log-likelihoods per token (length-normalized), not totals.

    Returns:
        The fraction of questions answered right (float64).

    Examples:
        >>> from metricskit.tasks import multiple_choice_accuracy
        >>> multiple_choice_accuracy([-3.0, -1.0, -2.0, -5.0], [3, 1, 2, 5], [1, 1], choices=2)
        0.5
    """
    ll = np.asarray(log_likelihoods, np.float64).reshape(-1, choices)
    if normalize:
        ll = ll / np.asarray(lengths, np.float64).reshape(-1, choices)
    return float(np.mean(np.argmax(ll, axis=-1) == np.asarray(answers)))
