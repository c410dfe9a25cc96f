"""Language modelling: perplexity, bits per token or byte, token accuracy, per-sequence
log-likelihoods and multiple-choice accuracy from them.

``logits`` are ``(B, T, V)``, ``targets`` ``(B, T)`` integer token ids and ``mask`` ``(B, T)``
booleans marking real (not padding) tokens (shapes are checked, under ``jit`` too). Masked
positions may hold any id (a padding id such as -100 or -1): they change nothing. Unmasked ids
must lie in ``[0, V)``: eager calls check them (a ValueError); under ``jit`` the values are not
known when the step is traced, so the caller must pass valid ids, and an unmasked id outside
``[0, V)`` gives a NaN negative log-likelihood (perplexity and bits report ``nan``).

Each token's negative log-likelihood is a float32 (``log_softmax`` of float32 logits); a
batch's tokens are summed nearly exactly (:func:`~metricskit.tasks.batchsums.pair_total`: about
2^-43 of the largest term plus 2^-47 of the sum, so the batch size costs no precision),
batches, devices and processes exactly; token counts are exact (carried integers), and the
final exponential or division happens on the host in float64, so a perplexity never overflows
float32 (it is ``inf`` only beyond float64's range). The per-sequence sums of
:func:`sequence_log_likelihood` are float32 sums over the tokens.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from metricskit.compat import Tracer
from metricskit.metric import ConfiguredMetric
from metricskit.tasks.batchsums import as_pairs, packed_pair, pair_total
from metricskit.tasks.classification import accuracy
from metricskit.tasks.modes import counted, step_item
from metricskit.tasks.moments import PairSums

__all__ = [
    "Bits",
    "Perplexity",
    "bits_per_byte",
    "bits_per_token",
    "multiple_choice_accuracy",
    "perplexity",
    "sequence_log_likelihood",
    "token_accuracy",
    "token_nll",
]


def _shapes(function: str, logits: Any, targets: Any) -> tuple[jax.Array, jax.Array]:
    """``(B, T, V)`` logits and ``(B, T)`` targets (a static check: works under ``jit``)."""
    z, t = jnp.asarray(logits), jnp.asarray(targets)
    if z.ndim != 3 or t.shape != z.shape[:2]:
        raise ValueError(
            f"{function}: logits have shape {z.shape} and targets {t.shape}; pass logits of "
            "shape (batch, tokens, vocabulary) and targets of shape (batch, tokens) "
            f"(here targets of shape {z.shape[:2] if z.ndim == 3 else '(B, T)'}); add a "
            "leading axis of 1 for a single sequence"
        )
    if not jnp.issubdtype(t.dtype, jnp.integer):
        raise ValueError(
            f"{function}: targets have dtype {t.dtype}; pass integer token ids "
            "(targets.astype(jnp.int32))"
        )
    return z, t


def _mask(function: str, mask: Any, shape: tuple[int, ...]) -> jax.Array:
    """The ``(B, T)`` tokens that count; ``mask`` is ``(B, T)`` or ``(B,)`` (sequences)."""
    if mask is not None and np.shape(mask) not in (shape, shape[:1]):
        raise ValueError(
            f"{function}: mask has shape {np.shape(mask)}, but targets have shape {shape}; "
            f"pass a {shape} mask of the real (not padding) tokens"
        )
    return counted(mask, shape)


def _concrete(x: Any) -> bool:
    """``x`` holds values (an eager call), not a tracer of ``jit``."""
    return not isinstance(x, Tracer)


def _check_ids(function: str, targets: jax.Array, vocabulary: int, mask: Any) -> None:
    """Token ids in ``[0, V)`` at the unmasked positions, checked when the values are known."""
    if not (_concrete(targets) and _concrete(mask)):
        return  # under jit: out-of-range ids give NaN (documented)
    ids = np.asarray(targets)
    real = np.asarray(mask, bool)
    bad = real & ((ids < 0) | (ids >= vocabulary))
    if bad.any():
        where = tuple(int(i[0]) for i in np.nonzero(bad))
        raise ValueError(
            f"{function}: targets hold token id {ids[where]} at position {where}, outside "
            f"[0, {vocabulary}) for logits of vocabulary size {vocabulary}; pass ids in range, "
            "or mask padding positions out with mask= (masked positions may hold any id, e.g. "
            "-100)"
        )


def _nll(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Per-token negative log-likelihood; ``nan`` where the id is outside ``[0, V)``."""
    vocabulary = logits.shape[-1]
    valid = (targets >= 0) & (targets < vocabulary)
    safe = jnp.where(valid, targets, 0)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
    return jnp.where(valid, nll, jnp.nan)


def token_nll(logits: Any, targets: Any) -> jax.Array:
    """Per-token negative log-likelihood (nats).

    Args:
        logits: ``(B, T, V)``.
        targets: ``(B, T)`` token ids in ``[0, V)``.

    Returns:
        ``(B, T)`` float32; ``nan`` where a target id is outside ``[0, V)`` (under ``jit``;
        eager calls raise).

    Raises:
        ValueError: If the shapes do not match, or (eager calls) an id is out of range.
    """
    z, t = _shapes("token_nll", logits, targets)
    _check_ids("token_nll", t, z.shape[-1], np.ones(t.shape, bool))
    return _nll(z, t)


def _mean(sums: np.ndarray, count: np.ndarray) -> np.float64:
    """The mean of ``[hi, lo]`` float64 totals over ``count``."""
    total = np.asarray(sums, np.float64)
    return np.float64((total[0] + total[1]) / np.float64(count))


def _exp_mean(sums: np.ndarray, count: np.ndarray) -> float:
    with np.errstate(over="ignore"):
        return float(np.exp(_mean(sums, count)))


def _bits(sums: np.ndarray, count: np.ndarray) -> float:
    return float(_mean(sums, count) / math.log(2))


def _masked_nll(function: str, logits: Any, targets: Any, mask: Any) -> tuple[Any, Any]:
    """The checked per-token NLL, zero at masked positions (whatever id they hold), and the
    ``(B, T)`` tokens that count."""
    z, t = _shapes(function, logits, targets)
    m = _mask(function, mask, t.shape)
    _check_ids(function, t, z.shape[-1], m)
    return jnp.where(m, _nll(z, t), 0.0), m


def _nll_item(
    function: str,
    logits: Any,
    targets: Any,
    mask: Any,
    mode: ConfiguredMetric,
    num_bytes: Any = None,
) -> dict[str, Any]:
    nll, m = _masked_nll(function, logits, targets, mask)
    total = packed_pair(pair_total(as_pairs(nll.reshape(-1))))
    if num_bytes is None:
        return step_item(total, jnp.sum(m, dtype=jnp.int32), mode)
    n = jnp.asarray(num_bytes)
    if n.ndim != 0 or not jnp.issubdtype(n.dtype, jnp.integer):
        raise ValueError(
            f"{function}: num_bytes has shape {n.shape} and dtype {n.dtype}; pass one "
            "non-negative integer scalar (e.g. jnp.int32(n)), the number of bytes of this "
            "batch's unmasked target text"
        )
    # a Python or NumPy number is known even under jit (where jnp.asarray makes a tracer)
    known = np.asarray(num_bytes) if _concrete(num_bytes) else None
    if known is not None and int(known) < 0:
        raise ValueError(
            f"{function}: num_bytes={int(known)}; pass the (non-negative) number of bytes of "
            "this batch's unmasked target text"
        )
    total = jnp.where(n >= 0, total, jnp.nan)  # under jit: a negative count reports nan
    return step_item(total, n.astype(jnp.int32), mode)


def perplexity(logits: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """``exp`` of the mean negative log-likelihood per (unmasked) token.

    Args:
        logits: ``(B, T, V)``.
        targets: ``(B, T)`` integer token ids in ``[0, V)`` where unmasked (masked positions
            may hold any id, e.g. a padding id of -100).
        mask: ``(B, T)`` booleans: the real (not padding) tokens (or ``(B,)``: sequences).

    Returns:
        A step item, reported as the key: ``exp`` of the exact mean NLL, in float64. Under
        ``jit`` ids cannot be checked: an unmasked id outside ``[0, V)`` reports ``nan``.

    Raises:
        ValueError: If the shapes do not match, or (eager calls) an unmasked id is outside
            ``[0, V)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> logits = jnp.zeros((1, 3, 4))  # uniform over 4 tokens: perplexity 4
        >>> step = {"ppl": mk.tasks.perplexity(logits, jnp.array([[0, 1, 2]]))}
        >>> round(mk.MetricStore().update(step).compute()["ppl"], 6)
        4.0
    """
    return _nll_item("perplexity", logits, targets, mask, _PERPLEXITY)


def bits_per_token(logits: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """The mean negative log-likelihood per (unmasked) token, in bits.

    Arguments, result and errors as :func:`perplexity`.
    """
    return _nll_item("bits_per_token", logits, targets, mask, _BITS)


def bits_per_byte(logits: Any, targets: Any, num_bytes: Any, *, mask: Any = None) -> dict[str, Any]:
    """The total negative log-likelihood in bits over the number of bytes the tokens encode.

    Args:
        logits: ``(B, T, V)``.
        targets: ``(B, T)`` token ids (as :func:`perplexity`).
        num_bytes: The number of bytes of the (unmasked) target text of this batch: an
            integer scalar, ``>= 0``.
        mask: ``(B, T)`` real tokens.

    Returns:
        A step item, reported as the key. Under ``jit`` a negative ``num_bytes`` (or an
        unmasked id outside ``[0, V)``) reports ``nan``.

    Raises:
        ValueError: If the shapes do not match, ``num_bytes`` is not an integer scalar, or
            (eager calls) ``num_bytes < 0`` or an unmasked id is outside ``[0, V)``.
    """
    return _nll_item("bits_per_byte", logits, targets, mask, _BITS, num_bytes)


def token_accuracy(logits: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """The fraction of (unmasked) tokens whose most likely prediction is the target.

    Arguments and errors as :func:`perplexity`; under ``jit`` an unmasked id outside
    ``[0, V)`` counts as a wrong prediction.
    """
    z, t = _shapes("token_accuracy", logits, targets)
    m = _mask("token_accuracy", mask, t.shape)
    _check_ids("token_accuracy", t, z.shape[-1], m)
    return accuracy(z, t, mask=m)


def sequence_log_likelihood(logits: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """Per-sequence log-likelihoods and lengths, in the ``single_noreduce_wcount`` mode.

    Aggregated over evaluation batches with :func:`metricskit.aggregate_metrics`, the reported
    ``(values, counts)`` are every sequence's total log-likelihood (nats) and its number of
    tokens, in order: what :func:`multiple_choice_accuracy` takes.

    Args:
        logits: ``(B, T, V)``.
        targets: ``(B, T)`` token ids (as :func:`perplexity`).
        mask: ``(B, T)`` real tokens.

    Returns:
        A step item: ``(B,)`` float32 log-likelihoods and int32 token counts.

    Raises:
        ValueError: As :func:`perplexity`.
    """
    nll, m = _masked_nll("sequence_log_likelihood", logits, targets, mask)
    return {
        "value": -jnp.sum(nll, axis=-1),
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
        answers: ``(Q,)`` ints in ``[0, choices)``: the right continuation of each question.
        choices: Continuations per question, an int ``>= 1``.
        normalize: Compare log-likelihoods per token (length-normalized), not totals.

    Returns:
        The fraction of questions answered right (float64).

    Raises:
        ValueError: If ``choices < 1``, the lengths of the arrays are not ``Q * choices``,
            ``Q * choices`` and ``Q`` (no broadcasting), ``Q`` is 0, an answer is outside
            ``[0, choices)``, or ``normalize`` meets a length below 1.

    Examples:
        >>> from metricskit.tasks import multiple_choice_accuracy
        >>> multiple_choice_accuracy([-3.0, -1.0, -2.0, -5.0], [3, 1, 2, 5], [1, 1], choices=2)
        0.5
    """
    if isinstance(choices, bool) or not isinstance(choices, int | np.integer) or choices < 1:
        raise ValueError(
            f"multiple_choice_accuracy: choices={choices!r}; pass the number of continuations "
            "per question, an int >= 1"
        )
    ll = np.asarray(log_likelihoods, np.float64)
    n = np.asarray(lengths)
    truth = np.asarray(answers)
    if ll.ndim != 1 or n.shape != ll.shape or truth.ndim != 1 or ll.size != choices * truth.size:
        raise ValueError(
            f"multiple_choice_accuracy: log_likelihoods have shape {ll.shape}, lengths "
            f"{n.shape} and answers {truth.shape} with choices={choices}; pass one "
            f"log-likelihood and one length per continuation, (questions * choices,) = "
            f"({choices * truth.size},) for {truth.size} answers, grouped by question"
        )
    if truth.size == 0:
        raise ValueError("multiple_choice_accuracy: answers is empty; pass at least one question")
    if not np.issubdtype(truth.dtype, np.integer) or truth.min() < 0 or truth.max() >= choices:
        integers = np.issubdtype(truth.dtype, np.integer)
        bad = truth[(truth < 0) | (truth >= choices)] if integers else truth
        raise ValueError(
            f"multiple_choice_accuracy: answers hold {bad[:5].tolist()} (dtype "
            f"{truth.dtype}); pass each question's right continuation as an int in "
            f"[0, {choices})"
        )
    scores = ll.reshape(-1, choices)
    if normalize:
        if n.min() < 1:
            raise ValueError(
                f"multiple_choice_accuracy: lengths hold {int(n.min())}, but normalize=True "
                "divides by them; every continuation needs at least one token"
            )
        scores = scores / n.astype(np.float64).reshape(-1, choices)
    return float(np.mean(np.argmax(scores, axis=-1) == truth))


class Perplexity(PairSums):
    """The log mode of :func:`perplexity`: ``exp`` of the summed NLL over the token count."""

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        return _exp_mean(sums, count)


class Bits(PairSums):
    """The log mode of :func:`bits_per_token` and :func:`bits_per_byte`: the summed NLL in
    bits over the count (tokens or bytes)."""

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        return _bits(sums, count)


_PERPLEXITY, _BITS = Perplexity.configure(), Bits.configure()
