"""Sequence task metrics (WER, CER) against jiwer, over batches, splits and edges."""

from __future__ import annotations

import itertools
import warnings

import jax
import jax.numpy as jnp
import jiwer
import numpy as np
import pytest
import sacrebleu
from jax.sharding import PartitionSpec as P
from rouge_score import rouge_scorer

import metricskit as mk
from metricskit.compat import make_mesh, shard_map

T = mk.tasks


def _pairs(rng, n=12, tp=7, tr=6, vocab=5):
    p = rng.integers(0, vocab, size=(n, tp)).astype(np.int32)
    r = rng.integers(0, vocab, size=(n, tr)).astype(np.int32)
    lp = rng.integers(0, tp + 1, size=n).astype(np.int32)
    lr = rng.integers(1, tr + 1, size=n).astype(np.int32)
    return p, r, lp, lr


def _words(ids, lengths):
    return [" ".join(f"w{t}" for t in row[:k]) for row, k in zip(ids, lengths, strict=True)]


def _chars(ids, lengths):
    return ["".join(chr(97 + t) for t in row[:k]) for row, k in zip(ids, lengths, strict=True)]


def _items(p, r, lp, lr, mask=None):
    kw = {"prediction_lengths": lp, "reference_lengths": lr, "mask": mask}
    return {
        "wer": T.wer(p, r, **kw),
        "cer": T.cer(p, r, **kw),
        "bleu": T.bleu(p, r, **kw),
        "bleu_exp2": T.bleu(p, r, max_order=2, smooth=True, **kw),
        **{kind: T.rouge(p, r, kind=kind, **kw) for kind in ROUGE},
    }


ROUGE = ("rouge1", "rouge2", "rougeL")


def _rouge(p, r, lp, lr, kind):
    """rouge-score's mean F-measure on the ids as (digit) words, which its tokenizer keeps."""
    scorer = rouge_scorer.RougeScorer([kind])
    hyps = [" ".join(str(t) for t in row[:k]) for row, k in zip(p, lp, strict=True)]
    refs = [" ".join(str(t) for t in row[:k]) for row, k in zip(r, lr, strict=True)]
    return np.mean([scorer.score(t, h)[kind].fmeasure for t, h in zip(refs, hyps, strict=True)])


def _bleu(p, r, lp, lr, **kw):
    """sacrebleu's corpus BLEU on the ids as words, in [0, 1]."""
    hyps, refs = _words(p, lp), _words(r, lr)
    metric = sacrebleu.metrics.BLEU(tokenize="none", force=True, **kw)
    return metric.corpus_score(hyps, [refs]).score / 100


def _reference(p, r, lp, lr):
    return {
        "wer": jiwer.wer(_words(r, lr), _words(p, lp)),
        "cer": jiwer.cer(_chars(r, lr), _chars(p, lp)),
        "bleu": _bleu(p, r, lp, lr, smooth_method="none"),
        "bleu_exp2": _bleu(p, r, lp, lr, smooth_method="exp", max_ngram_order=2),
        **{kind: _rouge(p, r, lp, lr, kind) for kind in ROUGE},
    }


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_split_batches_match_jiwer_on_the_corpus(use_jit, rng):
    p, r, lp, lr = _pairs(rng)

    def update(store, *args):
        return store.update(_items(*args))

    update = jax.jit(update) if use_jit else update
    want = _reference(p, r, lp, lr)
    whole = update(mk.MetricStore(), p, r, lp, lr).compute()
    store = mk.MetricStore()
    cuts = [0, *sorted(rng.choice(np.arange(1, 12), 2, replace=False)), 12]
    for lo, hi in itertools.pairwise(cuts):
        store = update(store, p[lo:hi], r[lo:hi], lp[lo:hi], lr[lo:hi])
    for host in (whole, store.compute()):
        for key, value in want.items():
            rel = 1e-7 if key.startswith("rouge") else 1e-12  # float32 per-pair F
            assert host[key] == pytest.approx(value, rel=rel), key


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("smooth", [False, True])
def test_bleu_matches_sacrebleu_on_random_corpora(seed, smooth):
    rng = np.random.default_rng(seed)
    p, r, lp, lr = _pairs(rng, n=8, tp=9, tr=8, vocab=int(rng.integers(3, 10)))
    lr[0] = 0  # an empty reference and prediction count too
    lp[1] = 0
    step = {"b": T.bleu(p, r, prediction_lengths=lp, reference_lengths=lr, smooth=smooth)}
    got = mk.MetricStore().update(step).compute()["b"]
    want = _bleu(p, r, lp, lr, smooth_method="exp" if smooth else "none")
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_bleu_of_identical_and_disjoint_corpora(rng):
    p, _, lp, _ = _pairs(rng)
    lp[:] = p.shape[1]
    host = mk.MetricStore().update({
        "same": T.bleu(p, p),
        "none": T.bleu(p, p + 10),
        "none_smooth": T.bleu(p, p + 10, smooth=True),
    }).compute()  # fmt: skip
    assert host == {"same": 1.0, "none": 0.0, "none_smooth": 0.0}
    with pytest.raises(ValueError, match="max_order=0"):
        T.bleu(p, p, max_order=0)


@pytest.mark.parametrize("kind", ROUGE)
def test_rouge_matches_rouge_score_with_empty_sequences(kind, rng):
    p, r, lp, lr = _pairs(rng, n=10, vocab=4)
    lr[0], lp[1], lp[2], lr[2] = 0, 0, 0, 0
    step = {"r": T.rouge(p, r, kind=kind, prediction_lengths=lp, reference_lengths=lr)}
    got = mk.MetricStore().update(step).compute()["r"]
    assert got == pytest.approx(_rouge(p, r, lp, lr, kind), rel=1e-7)
    same = mk.MetricStore().update({"r": T.rouge(p, p, kind=kind)}).compute()["r"]
    assert same == 1.0
    with pytest.raises(ValueError, match="kind='rouge3'"):
        T.rouge(p, r, kind="rouge3")


def test_pad_id_and_mask(rng):
    p, r, lp, lr = _pairs(rng, vocab=4)
    padded_p = np.where(np.arange(p.shape[1]) < lp[:, None], p + 1, 0)
    padded_r = np.where(np.arange(r.shape[1]) < lr[:, None], r + 1, 0)
    mask = rng.random(len(p)) < 0.6
    mask[0] = True
    host = mk.MetricStore().update({
        "wer": T.wer(padded_p, padded_r, pad_id=0, mask=mask),
        "full": T.wer(p, r),
    }).compute()  # fmt: skip
    assert host["wer"] == pytest.approx(
        jiwer.wer(_words(r[mask], lr[mask]), _words(p[mask], lp[mask]))
    )
    full = np.full(len(p), p.shape[1]), np.full(len(p), r.shape[1])
    assert host["full"] == pytest.approx(jiwer.wer(_words(r, full[1]), _words(p, full[0])))


def test_edit_distances_of_small_cases():
    p = jnp.array([[1, 2, 3], [1, 2, 3], [4, 4, 4], [1, 2, 3]])
    r = jnp.array([[1, 2, 3], [3, 2, 1], [1, 1, 0], [0, 0, 0]])
    got = T.edit_distance(p, r, jnp.array([3, 3, 0, 2]), jnp.array([3, 3, 2, 0]))
    assert got.tolist() == [0, 2, 2, 2]


def test_identical_sequences_give_zero_and_empty_references_an_empty_key(rng):
    p, _, lp, _ = _pairs(rng)
    host = mk.MetricStore().update(
        {"wer": T.wer(p, p, prediction_lengths=lp, reference_lengths=lp)}
    )
    assert host.compute()["wer"] == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        none = mk.MetricStore().update({"wer": T.wer(p, p, mask=np.zeros(len(p), bool))})
        assert none.compute() == {"wer": 0.0}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reference_lengths": np.full(4, 7)}, r"holds? 7, outside \[0, 6\]"),
        ({"prediction_lengths": np.full(4, -1)}, r"-1, outside \[0, 5\]"),
        ({"prediction_lengths": np.full(3, 1)}, r"\(4,\) integers"),
        ({"mask": np.ones(5, bool)}, r"mask has shape \(5,\)"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, message):
    p, r = np.zeros((4, 5), np.int32), np.zeros((4, 6), np.int32)
    with pytest.raises(ValueError, match=message):
        T.wer(p, r, **kwargs)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(N, T\) integer"):
        T.wer(np.zeros((4, 5)), np.zeros((4, 5), np.int32))
    with pytest.raises(ValueError, match="the same N"):
        T.cer(np.zeros((4, 5), np.int32), np.zeros((3, 5), np.int32))


def test_lengths_out_of_range_under_jit_give_nan(rng):
    p, r, lp, lr = _pairs(rng)
    lr[2] = r.shape[1] + 1

    @jax.jit
    def update(store, p, r, lp, lr):
        return store.update(_items(p, r, lp, lr))

    host = update(mk.MetricStore(), p, r, lp, lr).compute()
    assert all(np.isnan(value) for value in host.values()), host


@pytest.mark.extended
def test_eight_devices_sync_and_axis_name_give_one_devices_numbers(rng):
    assert jax.device_count() == 8, "XLA_FLAGS must force 8 host devices (conftest)"
    mesh = make_mesh((8,), ("data",))
    args = _pairs(rng, n=16)

    def synced(*a):
        return mk.MetricStore().update(_items(*a)).sync("data")

    def reduced(*a):
        return mk.MetricStore().update(_items(*a), axis_name="data")

    one = mk.MetricStore().update(_items(*args)).compute()
    for fn in (synced, reduced):
        mapped = shard_map(fn, mesh=mesh, in_specs=(P("data"),) * 4, out_specs=P())
        host = jax.jit(mapped)(*(jnp.asarray(a) for a in args)).compute()
        for key in one:  # exact counts: the same number; ROUGE's float32 F per pair
            rel = 1e-7 if key.startswith("rouge") else 0.0
            assert host[key] == pytest.approx(one[key], rel=rel, abs=0.0), (fn.__name__, key)
