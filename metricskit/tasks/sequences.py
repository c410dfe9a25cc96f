"""Sequences: word and character error rates, corpus BLEU and ROUGE from padded token ids.

``predictions`` are ``(N, Tp)`` and ``references`` ``(N, Tr)`` integer ids (words for
:func:`wer`, characters for :func:`cer`: tokenize on the host, map tokens to ids). Where each
sequence ends is given by ``prediction_lengths`` / ``reference_lengths`` (``(N,)`` ints), or
by ``pad_id`` (a sequence ends at its first ``pad_id``), or else every position counts.

The edit distance (Levenshtein: substitutions, deletions and insertions of cost 1) is a
dynamic program, a ``jax.lax.scan`` over the reference positions, each row computed for the
whole batch and every prediction position at once (the insertions along a row are a
cumulative minimum): ``O(N Tp Tr)`` work, ``O(N Tp)`` memory. The batch's edits and reference
tokens are exact integers, and the host divides their totals in float64: corpus-level WER,
as jiwer's ``wer`` over a list of sentences (``sum edits / sum reference words``).
:func:`bleu` sums exact clipped n-gram matches and lengths and finishes as sacrebleu's
``corpus_bleu``; :func:`rouge` averages rouge-score's per-pair F-measure.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from metricskit import exact
from metricskit.compat import Tracer
from metricskit.metric import static
from metricskit.tasks.batchsums import as_pairs, pair_total
from metricskit.tasks.modes import SumsMetric, counted, step_item

__all__ = [
    "BLEU",
    "bleu",
    "cer",
    "edit_distance",
    "longest_common_subsequence",
    "ngram_matches",
    "rouge",
    "wer",
]


def _ids(function: str, name: str, x: Any) -> jax.Array:
    a = jnp.asarray(x)
    if a.ndim != 2 or not jnp.issubdtype(a.dtype, jnp.integer):
        raise ValueError(
            f"{function}: {name} have shape {a.shape} and dtype {a.dtype}; pass (N, T) integer "
            "token ids (map each word or character to an id on the host; pad to a common T)"
        )
    return a


def _lengths(
    function: str, name: str, lengths: Any, ids: jax.Array, pad_id: int | None
) -> jax.Array:
    n, t = ids.shape
    if lengths is None:
        if pad_id is None:
            return jnp.full((n,), t, jnp.int32)
        pad = ids == pad_id
        return jnp.where(jnp.any(pad, axis=1), jnp.argmax(pad, axis=1), t).astype(jnp.int32)
    length = jnp.asarray(lengths)
    if length.shape != (n,) or not jnp.issubdtype(length.dtype, jnp.integer):
        raise ValueError(
            f"{function}: {name} have shape {length.shape} and dtype {length.dtype}; pass ({n},) "
            "integers, one length per sequence"
        )
    if not isinstance(length, Tracer):
        values = np.asarray(length)
        bad = values[(values < 0) | (values > t)]
        if bad.size:
            raise ValueError(
                f"{function}: {name} hold {bad[0].item()}, outside [0, {t}] (the padded length "
                f"{t}); pass lengths within the padded sequences"
            )
    return length.astype(jnp.int32)


@jax.jit
def edit_distance(
    predictions: jax.Array,
    references: jax.Array,
    prediction_lengths: jax.Array,
    reference_lengths: jax.Array,
) -> jax.Array:
    """Per sequence, the Levenshtein distance of ``predictions[n, :Lp]`` and
    ``references[n, :Lr]``, ``(N,)`` int32 (lengths assumed in range).

    The rows ``D[i, :]`` of the dynamic program (``D[i, j]`` the distance of the first ``i``
    reference and ``j`` predicted tokens) come from a ``scan`` over ``i``: with
    ``A[j] = min(D[i-1, j] + 1, D[i-1, j-1] + [p_j != r_i])`` and ``A[0] = i``,
    ``D[i, j] = min_{k <= j} (A[k] + j - k)``, a cumulative minimum.
    """
    n, tp = predictions.shape
    j = jnp.arange(tp + 1, dtype=jnp.int32)
    first = jnp.broadcast_to(j, (n, tp + 1))
    lp = jnp.clip(prediction_lengths, 0, tp)
    rows = jnp.arange(n)

    def step(carry: Any, x: Any) -> Any:
        prev, found = carry
        i, token = x
        cost = (predictions != token[:, None]).astype(jnp.int32)
        keep = jnp.minimum(prev[:, :-1] + cost, prev[:, 1:] + 1)
        a = jnp.concatenate([jnp.broadcast_to(i, (n, 1)), keep], axis=1)
        row = j + jax.lax.cummin(a - j, axis=1)
        found = jnp.where(reference_lengths == i, row[rows, lp], found)
        return (row, found), None

    start = jnp.where(reference_lengths == 0, lp, 0)
    steps = (jnp.arange(1, references.shape[1] + 1, dtype=jnp.int32), references.T)
    (_, found), _ = jax.lax.scan(step, (first, start), steps)
    return found


def _pair_inputs(
    function: str,
    predictions: Any,
    references: Any,
    prediction_lengths: Any,
    reference_lengths: Any,
    pad_id: int | None,
    mask: Any,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """Checked ids, lengths, the counted pairs and those with lengths out of range."""
    p = _ids(function, "predictions", predictions)
    r = _ids(function, "references", references)
    if p.shape[0] != r.shape[0]:
        raise ValueError(
            f"{function}: predictions have shape {p.shape} and references {r.shape}: pass one "
            "prediction per reference (the same N)"
        )
    if mask is not None and np.shape(mask) != (p.shape[0],):
        raise ValueError(
            f"{function}: mask has shape {np.shape(mask)}; pass ({p.shape[0]},) booleans, one "
            "per sequence pair"
        )
    lp = _lengths(function, "prediction_lengths", prediction_lengths, p, pad_id)
    lr = _lengths(function, "reference_lengths", reference_lengths, r, pad_id)
    which = counted(mask, (p.shape[0],))
    # under jit, lengths out of range (which eager calls refuse) make the statistics NaN
    bad = which & ((lp < 0) | (lp > p.shape[1]) | (lr < 0) | (lr > r.shape[1]))
    return p, r, lp, lr, which, bad


def _error_rate(
    function: str,
    predictions: Any,
    references: Any,
    prediction_lengths: Any,
    reference_lengths: Any,
    pad_id: int | None,
    mask: Any,
) -> dict[str, Any]:
    p, r, lp, lr, which, bad = _pair_inputs(
        function, predictions, references, prediction_lengths, reference_lengths, pad_id, mask
    )
    edits = jnp.sum(jnp.where(which, edit_distance(p, r, lp, lr), 0), dtype=jnp.int32)
    words = jnp.sum(jnp.where(which, lr, 0), dtype=jnp.int32)
    total = as_pairs(edits)
    total = exact.Pair(jnp.where(jnp.any(bad), jnp.nan, total.hi), total.lo)
    return step_item(total, words, "mean_nopostfix")


def wer(
    predictions: Any,
    references: Any,
    *,
    prediction_lengths: Any = None,
    reference_lengths: Any = None,
    pad_id: int | None = None,
    mask: Any = None,
) -> dict[str, Any]:
    """Corpus word error rate: ``sum_n edits_n / sum_n reference words_n``.

    ``edits_n`` is the Levenshtein distance (substitutions, deletions, insertions) of the
    predicted and reference word ids of sequence pair ``n``, by :func:`edit_distance`:
    ``O(N Tp Tr)`` work. The same number as jiwer's ``wer(references, hypotheses)`` over the
    list of sentences (words mapped to distinct ids).

    Args:
        predictions: ``(N, Tp)`` integer word ids (padded).
        references: ``(N, Tr)`` integer word ids (padded).
        prediction_lengths: ``(N,)`` ints in ``[0, Tp]``: each prediction's words.
        reference_lengths: ``(N,)`` ints in ``[0, Tr]``.
        pad_id: Without lengths: a sequence ends at its first ``pad_id`` (without either:
            every position counts).
        mask: ``(N,)`` booleans: which sequence pairs count.

    Returns:
        A step item, reported as the key (a float; above 1 when predictions have many
        insertions). Statistics: the batch's edits (exact) over its reference words (the
        count). A key whose counted references are all empty reports ``0.0`` (an empty key,
        with the store's warning; jiwer refuses empty references). Under ``jit``, a length
        outside its range makes the statistics NaN (the store's NaN policy applies).

    Raises:
        ValueError: For ids that are not ``(N, T)`` integers, different ``N``, lengths or mask
            of another shape, or (eager calls) lengths out of range.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> predictions = jnp.array([[1, 2, 3, 0], [4, 5, 0, 0]])  # 0 pads
        >>> references = jnp.array([[1, 3, 3, 0], [4, 5, 6, 7]])
        >>> step = {"wer": mk.tasks.wer(predictions, references, pad_id=0)}
        >>> mk.MetricStore().update(step).compute()  # 1 substitution + 2 deletions of 7 words
        {'wer': 0.42857142857142855}
    """
    return _error_rate(
        "wer", predictions, references, prediction_lengths, reference_lengths, pad_id, mask
    )


def cer(
    predictions: Any,
    references: Any,
    *,
    prediction_lengths: Any = None,
    reference_lengths: Any = None,
    pad_id: int | None = None,
    mask: Any = None,
) -> dict[str, Any]:
    """Corpus character error rate: :func:`wer` on character ids.

    The summed edits over the summed reference characters (jiwer's ``cer`` over the list of
    strings). Arguments, result and errors as :func:`wer`.
    """
    return _error_rate(
        "cer", predictions, references, prediction_lengths, reference_lengths, pad_id, mask
    )


@functools.partial(jax.jit, static_argnums=4)
def ngram_matches(
    predictions: jax.Array,
    references: jax.Array,
    prediction_lengths: jax.Array,
    reference_lengths: jax.Array,
    max_order: int,
) -> tuple[jax.Array, jax.Array]:
    """Per sequence pair and order ``n = 1 .. max_order``: the clipped n-gram matches (each
    predicted n-gram counted at most as often as it occurs in the reference) and the number
    of predicted n-grams, two ``(N, max_order)`` int32 arrays.

    The ``k``-th occurrence of a predicted n-gram matches when the reference holds it at least
    ``k`` times (so the matches are ``sum_g min(count_pred(g), count_ref(g))``), from n-gram
    equality tables of every pair of positions: ``O(N T^2 max_order)`` work.
    """
    tp, tr = predictions.shape[1], references.shape[1]
    hr = predictions[:, :, None] == references[:, None, :]  # (N, Tp, Tr)
    hh = predictions[:, :, None] == predictions[:, None, :]  # (N, Tp, Tp)
    hr_pad = jnp.pad(hr, ((0, 0), (0, max_order), (0, max_order)))
    hh_pad = jnp.pad(hh, ((0, 0), (0, max_order), (0, max_order)))
    eq_hr, eq_hh = jnp.ones_like(hr), jnp.ones_like(hh)
    i, j = jnp.arange(tp), jnp.arange(tr)
    earlier = i[None, :] <= i[:, None]  # (i, i'): i' <= i
    matches, totals = [], []
    for order in range(1, max_order + 1):
        k = order - 1
        eq_hr = eq_hr & hr_pad[:, k : k + tp, k : k + tr]
        eq_hh = eq_hh & hh_pad[:, k : k + tp, k : k + tp]
        vh = i[None, :] + order <= prediction_lengths[:, None]  # (N, Tp)
        vr = j[None, :] + order <= reference_lengths[:, None]  # (N, Tr)
        in_ref = jnp.sum(eq_hr & vr[:, None, :], axis=2)
        rank = jnp.sum(eq_hh & (vh[:, None, :] & earlier), axis=2)
        matches.append(jnp.sum(vh & (rank <= in_ref), axis=1, dtype=jnp.int32))
        totals.append(jnp.sum(vh, axis=1, dtype=jnp.int32))
    return jnp.stack(matches, axis=1), jnp.stack(totals, axis=1)


def bleu(
    predictions: Any,
    references: Any,
    *,
    max_order: int = 4,
    smooth: bool = False,
    prediction_lengths: Any = None,
    reference_lengths: Any = None,
    pad_id: int | None = None,
    mask: Any = None,
) -> dict[str, Any]:
    """Corpus BLEU (Papineni et al., 2002) of one reference per prediction, in [0, 1].

    ``BLEU = BP exp(mean_n log p_n)``, ``p_n`` the corpus's clipped n-gram matches over its
    predicted n-grams (:func:`ngram_matches`, exact integer counts), ``BP = exp(1 - R / P)``
    when the predicted length ``P`` is below the reference length ``R`` (else 1), finished on
    the host in float64 as sacrebleu's ``corpus_bleu`` (with ``tokenize="none"`` on the ids
    written as space-separated tokens; sacrebleu reports 100 times this value). No match at
    all, or a zero precision without smoothing, gives 0.

    Args:
        predictions: ``(N, Tp)`` integer token ids (padded).
        references: ``(N, Tr)`` integer token ids: one reference per prediction.
        max_order: The largest n-gram order (a positive int).
        smooth: ``False``: sacrebleu's ``smooth_method="none"``; ``True``: its ``"exp"``
            (its default, mteval's: the ``k``-th zero precision counts as
            ``1 / (2^k total_n)``).
        prediction_lengths, reference_lengths, pad_id, mask: As for :func:`wer`.

    Returns:
        A step item, reported as the key. Statistics: per order the matches and predicted
        n-grams, the predicted and reference lengths (exact). Under ``jit``, lengths out of
        range make them NaN (the store's NaN policy applies).

    Raises:
        ValueError: As :func:`wer`, and for a ``max_order`` that is not a positive int.
    """
    if not (isinstance(max_order, int) and max_order >= 1):
        raise ValueError(f"bleu: max_order={max_order!r} must be a positive int")
    p, r, lp, lr, which, bad = _pair_inputs(
        "bleu", predictions, references, prediction_lengths, reference_lengths, pad_id, mask
    )
    matches, totals = ngram_matches(p, r, lp, lr, max_order)
    rows = jnp.concatenate([matches, totals, lp[:, None], lr[:, None]], axis=1)
    stats = as_pairs(jnp.sum(jnp.where(which[:, None], rows, 0), axis=0, dtype=jnp.int32))
    stats = exact.Pair(jnp.where(jnp.any(bad), jnp.nan, stats.hi), stats.lo)
    mode = BLEU.configure(max_order=max_order, smooth=bool(smooth))
    return step_item(stats, jnp.sum(which, dtype=jnp.int32), mode)


def _bleu_finish(sums: np.ndarray, max_order: int, smooth: bool) -> float:
    """sacrebleu's ``compute_bleu`` (``effective_order=False``), divided by 100."""
    stats = np.asarray(sums, np.float64)
    if np.isnan(stats).any():
        return float("nan")
    correct, total = stats[:max_order], stats[max_order : 2 * max_order]
    sys_len, ref_len = stats[2 * max_order], stats[2 * max_order + 1]
    bp = 1.0
    if sys_len < ref_len:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    if not correct.any():
        return 0.0
    logs, halving = 0.0, 1.0
    for n in range(max_order):
        if total[n] == 0:
            return 0.0  # no predicted n-grams of this order: sacrebleu's precision 0
        if correct[n] > 0:
            logs += math.log(correct[n] / total[n])
        elif smooth:
            halving *= 2
            logs += math.log(1.0 / (halving * total[n]))
        else:
            return 0.0
    return float(bp * math.exp(logs / max_order))


class BLEU(SumsMetric):
    """The log mode of :func:`bleu`: summed n-gram matches, n-grams and lengths."""

    max_order = static(4)
    smooth = static(False)

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        return _bleu_finish(sums, self.max_order, self.smooth)


@jax.jit
def longest_common_subsequence(
    predictions: jax.Array,
    references: jax.Array,
    prediction_lengths: jax.Array,
    reference_lengths: jax.Array,
) -> jax.Array:
    """Per sequence pair, the length of the longest common subsequence, ``(N,)`` int32: a
    ``scan`` over the reference positions, each row ``L[i, j] = max_{k <= j} B[k]`` with
    ``B[j] = max(L[i-1, j], L[i-1, j-1] + [p_j = r_i])`` (a cumulative maximum)."""
    n, tp = predictions.shape
    lp = jnp.clip(prediction_lengths, 0, tp)
    live = jnp.arange(tp)[None, :] < lp[:, None]
    rows = jnp.arange(n)

    def step(carry: Any, x: Any) -> Any:
        prev, found = carry
        i, token = x
        hit = (live & (predictions == token[:, None])).astype(jnp.int32)
        b = jnp.maximum(prev[:, 1:], prev[:, :-1] + hit)
        row = jnp.concatenate([jnp.zeros((n, 1), jnp.int32), jax.lax.cummax(b, axis=1)], axis=1)
        found = jnp.where(reference_lengths == i, row[rows, lp], found)
        return (row, found), None

    first = jnp.zeros((n, tp + 1), jnp.int32)
    steps = (jnp.arange(1, references.shape[1] + 1, dtype=jnp.int32), references.T)
    (_, found), _ = jax.lax.scan(step, (first, jnp.zeros((n,), jnp.int32)), steps)
    return found


def rouge(
    predictions: Any,
    references: Any,
    *,
    kind: str = "rouge1",
    prediction_lengths: Any = None,
    reference_lengths: Any = None,
    pad_id: int | None = None,
    mask: Any = None,
) -> dict[str, Any]:
    """ROUGE F-measure (Lin, 2004), per sequence pair, averaged over the pairs.

    ``kind="rouge1"`` / ``"rouge2"``: clipped unigram / bigram matches ``m`` of the prediction
    and its reference (:func:`ngram_matches`); ``"rougeL"``: the longest common subsequence
    (:func:`longest_common_subsequence`, a ``scan``: ``O(N Tp Tr)`` work). With ``a`` and
    ``b`` the predicted and reference n-grams (tokens for ``rougeL``), precision ``m / a``,
    recall ``m / b``, ``F = 2 m / (a + b)`` (0 without a match), as rouge-score's
    ``RougeScorer`` (its ``fmeasure``) on the ids as tokens. Each pair's F is a float32
    quotient of exact counts (relative error below ``6e-8``), summed nearly exactly.

    Args:
        predictions: ``(N, Tp)`` integer token ids (padded).
        references: ``(N, Tr)`` integer token ids: one reference per prediction.
        kind: ``"rouge1"``, ``"rouge2"`` or ``"rougeL"``.
        prediction_lengths, reference_lengths, pad_id, mask: As for :func:`wer`.

    Returns:
        A step item, reported as the key: the mean F over the counted pairs. Under ``jit``,
        lengths out of range make the statistics NaN (the store's NaN policy applies).

    Raises:
        ValueError: As :func:`wer`, and for an unknown ``kind``.
    """
    if kind not in ("rouge1", "rouge2", "rougeL"):
        raise ValueError(f"rouge: kind={kind!r} must be 'rouge1', 'rouge2' or 'rougeL'")
    p, r, lp, lr, which, bad = _pair_inputs(
        "rouge", predictions, references, prediction_lengths, reference_lengths, pad_id, mask
    )
    if kind == "rougeL":
        m, a, b = longest_common_subsequence(p, r, lp, lr), lp, lr
    else:
        order = int(kind[-1])
        matches, totals = ngram_matches(p, r, lp, lr, order)
        m, a = matches[:, -1], totals[:, -1]
        b = jnp.maximum(lr - (order - 1), 0)
    f = jnp.where(m > 0, 2 * m.astype(jnp.float32) / jnp.maximum(a + b, 1), 0.0)
    f = jnp.where(which, f, 0.0)
    total = pair_total(as_pairs(f))
    total = exact.Pair(jnp.where(jnp.any(bad), jnp.nan, total.hi), total.lo)
    return step_item(total, jnp.sum(which, dtype=jnp.int32), "mean_nopostfix")
