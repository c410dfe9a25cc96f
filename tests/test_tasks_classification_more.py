"""Jaccard, Dice, specificity, balanced accuracy, Matthews' correlation and Cohen's kappa
against scikit-learn (and a float64 NumPy specificity built on its
multilabel_confusion_matrix): random data eager and jitted, merged from random splits, edge
cases, invalid inputs, and on 8 devices."""

from __future__ import annotations

import itertools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from sklearn import metrics as skm

import metricskit as mk
from metricskit.compat import make_mesh, shard_map

T = mk.tasks
C = 4
AVERAGES = ["micro", "macro", "weighted", "none"]
WEIGHTS = [None, "linear", "quadratic"]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's undefined-metric warnings
        yield


def _specificity(true, pred, c, average, zero_division=0.0, jaccard=False):
    """The reference: one-vs-rest counts of scikit-learn's multilabel_confusion_matrix,
    averaged in float64 as the other scores (_nanaverage rules); ``jaccard=True``: the
    Jaccard index (for zero_division=nan, which scikit-learn's jaccard_score refuses)."""
    mcm = skm.multilabel_confusion_matrix(true, pred, labels=list(range(c)))
    tn, fp, fn, tp = (mcm[:, i, j].astype(np.float64) for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)))
    num, den = (tp, tp + fp + fn) if jaccard else (tn, tn + fp)
    if average == "micro":
        num, den = num.sum(keepdims=True), den.sum(keepdims=True)
    elif average == "binary":
        num, den = num[1:], den[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(den == 0, zero_division, num / den)
    if average in ("micro", "binary"):
        return float(score[0])
    if average == "none":
        return score
    keep = ~np.isnan(score)
    if not keep.any():
        return math.nan
    support = (tp + fn)[keep]
    if average == "weighted" and support.sum() > 0:
        return float(np.average(score[keep], weights=support))
    return float(np.mean(score[keep]))


def _step(logits, probs, labels, mask=None):
    step = {
        "balanced": T.balanced_accuracy(logits, labels, num_classes=C, mask=mask),
        "mcc": T.matthews_corrcoef(logits, labels, num_classes=C, mask=mask),
    }
    for w in WEIGHTS:
        step[f"kappa_{w}"] = T.cohen_kappa(logits, labels, num_classes=C, weights=w, mask=mask)
    for avg in AVERAGES:
        for name in ("jaccard", "dice", "specificity"):
            step[f"{name}_{avg}"] = getattr(T, name)(
                logits, labels, num_classes=C, average=avg, mask=mask
            )
    return step


def _expected(logits, probs, labels):
    pred, true = logits.argmax(-1).reshape(-1), labels.reshape(-1)
    probs = probs.reshape(-1, C).astype(np.float64)
    labels_ = list(range(C))
    out = {
        "balanced": skm.balanced_accuracy_score(true, pred),
        "mcc": skm.matthews_corrcoef(true, pred),
    }
    for w in WEIGHTS:
        out[f"kappa_{w}"] = skm.cohen_kappa_score(true, pred, labels=labels_, weights=w)
    for avg in AVERAGES:
        a = None if avg == "none" else avg
        out[f"jaccard_{avg}"] = skm.jaccard_score(true, pred, labels=labels_, average=a)
        out[f"dice_{avg}"] = skm.f1_score(true, pred, labels=labels_, average=a)
        out[f"specificity_{avg}"] = _specificity(true, pred, C, avg)
    return out


def _check(host, want, rtol=1e-12):
    assert set(host) == set(want)
    for name, value in want.items():
        np.testing.assert_allclose(host[name], value, rtol=rtol, atol=1e-15, err_msg=name)


def _data(rng, shape):
    logits = rng.normal(size=(*shape, C)).astype(np.float32)
    probs = np.asarray(jax.nn.softmax(jnp.asarray(logits) * 3.0, axis=-1))
    return logits, probs, rng.integers(0, C, size=shape)


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_random_batches_of_two_sample_axes_match_scikit_learn(use_jit, rng):
    """(B, T, C) inputs, a random split into batches, each summed into one store."""
    logits, probs, labels = _data(rng, (12, 5))
    mask = rng.random((12, 5)) < 0.8

    def update(store, lg, pr, lb, m):
        return store.update(_step(lg, pr, lb, m))

    update = jax.jit(update) if use_jit else update
    store = mk.MetricStore()
    cuts = [0, *sorted(rng.choice(np.arange(1, 12), 3, replace=False)), 12]
    for a, b in itertools.pairwise(cuts):
        store = update(store, logits[a:b], probs[a:b], labels[a:b], mask[a:b])
    _check(store.compute(), _expected(logits[mask], probs[mask], labels[mask]))


@pytest.mark.parametrize("multilabel", [False, True])
def test_every_average_and_zero_division_follows_the_references(multilabel):
    """Small random cases: classes without support or predictions in every combination, for
    Jaccard (scikit-learn's jaccard_score), Dice (f1_score) and specificity, binary too."""
    rng = np.random.default_rng(3)
    for _ in range(25):
        n, c = int(rng.integers(1, 5)), int(rng.integers(2, 4))
        if multilabel:
            true = rng.integers(0, 2, (n, c)) * (rng.random((n, c)) < 0.4)
            pred = rng.integers(0, 2, (n, c)) * (rng.random((n, c)) < 0.4)
            p, y = jnp.asarray(pred, jnp.float32), jnp.asarray(true)
        else:
            true, pred = rng.integers(0, c, n), rng.integers(0, c, n)
            p, y = jnp.asarray(pred), jnp.asarray(true)
        averages = [*AVERAGES, "binary"] if c == 2 and not multilabel else AVERAGES
        items, want = {}, {}
        for average in averages:
            a = None if average == "none" else average
            for zd in (0.0, 1.0, float("nan")):
                for name in ("jaccard", "dice", "specificity"):
                    key = f"{name}/{average}/{zd}"
                    items[key] = getattr(T, name)(
                        p, y, num_classes=c, average=average, zero_division=zd
                    )
                kw = {"labels": list(range(c)), "average": a, "zero_division": zd}
                want[f"jaccard/{average}/{zd}"] = (
                    skm.jaccard_score(true, pred, **kw)
                    if zd == zd
                    else _specificity(true, pred, c, average, zd, jaccard=True)
                )
                want[f"dice/{average}/{zd}"] = skm.f1_score(true, pred, **kw)
                want[f"specificity/{average}/{zd}"] = _specificity(true, pred, c, average, zd)
        _check(mk.MetricStore().update(items).compute(), want, rtol=1e-15)


def test_binary_scores_and_multilabel_inputs(rng):
    scores, y = rng.uniform(size=60).astype(np.float32), rng.integers(0, 2, 60)
    pred = (scores > 0.3).astype(int)
    host = mk.MetricStore().update({
        "iou": T.jaccard(scores, y, num_classes=2, average="binary", threshold=0.3),
        "spec": T.specificity(scores, y, num_classes=2, average="binary", threshold=0.3),
        "bal": T.balanced_accuracy(scores, y, num_classes=2, threshold=0.3),
        "mcc": T.matthews_corrcoef(scores, y, num_classes=2, threshold=0.3),
    }).compute()  # fmt: skip
    assert host["iou"] == pytest.approx(skm.jaccard_score(y, pred), rel=1e-15)
    tn, fp = skm.confusion_matrix(y, pred)[0]
    assert host["spec"] == pytest.approx(tn / (tn + fp), rel=1e-15)
    assert host["bal"] == pytest.approx(skm.balanced_accuracy_score(y, pred), rel=1e-15)
    assert host["mcc"] == pytest.approx(skm.matthews_corrcoef(y, pred), rel=1e-14)
    ml_scores, ml = rng.uniform(size=(30, 3)).astype(np.float32), rng.integers(0, 2, (30, 3))
    items = {a: T.specificity(ml_scores, ml, num_classes=3, average=a) for a in AVERAGES}
    items |= {f"iou_{a}": T.jaccard(ml_scores, ml, num_classes=3, average=a) for a in AVERAGES}
    host = mk.MetricStore().update(items).compute()
    ml_pred = (ml_scores > 0.5).astype(int)
    for a in AVERAGES:
        np.testing.assert_allclose(host[a], _specificity(ml, ml_pred, 3, a), rtol=1e-15)
        want = skm.jaccard_score(ml, ml_pred, average=None if a == "none" else a)
        np.testing.assert_allclose(host[f"iou_{a}"], want, rtol=1e-15)


def test_specificity_counts_the_true_negatives_of_an_elementwise_multilabel_mask(rng):
    scores, y = rng.uniform(size=(40, 3)).astype(np.float32), rng.integers(0, 2, (40, 3))
    mask = rng.random((40, 3)) < 0.6
    host = (
        mk.MetricStore()
        .update({"s": T.specificity(scores, y, num_classes=3, average="none", mask=mask)})
        .compute()
    )
    for j in range(3):
        m = mask[:, j]
        tn, fp = skm.confusion_matrix(y[m, j], (scores[m, j] > 0.5).astype(int), labels=[0, 1])[0]
        assert host["s"][j] == tn / (tn + fp)


def test_confusion_scores_degenerate_cases_are_scikit_learns():
    rng = np.random.default_rng(5)
    cases = [
        (np.array([1, 1, 1]), np.array([1, 1, 1])),  # one class only: mcc 0, kappa nan
        (np.array([0, 0, 0]), np.array([0, 1, 2])),  # constant labels
        (np.array([2, 0, 1]), np.array([1, 1, 1])),  # constant predictions
        (np.array([0]), np.array([1])),
    ]
    cases += [(rng.integers(0, 3, n), rng.integers(0, 3, n)) for n in rng.integers(1, 6, 30)]
    for true, pred in cases:
        items = {"mcc": T.matthews_corrcoef(jnp.asarray(pred), jnp.asarray(true), num_classes=3)}
        items["bal"] = T.balanced_accuracy(jnp.asarray(pred), jnp.asarray(true), num_classes=3)
        for w in WEIGHTS:
            items[f"k_{w}"] = T.cohen_kappa(
                jnp.asarray(pred), jnp.asarray(true), num_classes=3, weights=w
            )
        host = mk.MetricStore().update(items).compute()
        np.testing.assert_allclose(host["mcc"], skm.matthews_corrcoef(true, pred), rtol=1e-14)
        np.testing.assert_allclose(host["bal"], skm.balanced_accuracy_score(true, pred))
        for w in WEIGHTS:
            want = skm.cohen_kappa_score(true, pred, labels=[0, 1, 2], weights=w)
            np.testing.assert_allclose(host[f"k_{w}"], want, rtol=1e-14, err_msg=(true, pred, w))


def test_nan_scores_and_invalid_values_eager_and_under_jit():
    logits = jnp.array([[2.0, 0.0, 0.0, 0.0], [0.0, jnp.nan, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    probs = jax.nn.softmax(logits, axis=-1)
    labels = jnp.array([0, 1, 2])
    host = mk.MetricStore().update(_step(logits, probs, labels)).compute()
    for key, value in host.items():
        assert np.all(np.isnan(value)), key
    # the NaN sample masked out: a number again
    host = mk.MetricStore().update(_step(logits, probs, labels, jnp.array([1, 0, 1]))).compute()
    assert not any(np.any(np.isnan(v)) for v in host.values())


def test_bad_arguments_are_named():
    p, y = jnp.ones((3, 2)) / 2, jnp.array([0, 1, 1])
    with pytest.raises(ValueError, match="weights='cubic'"):
        T.cohen_kappa(p, y, num_classes=2, weights="cubic")  # type: ignore[arg-type]
    multilabel = jnp.ones((3, 2), jnp.int32)
    for fn in (T.balanced_accuracy, T.matthews_corrcoef, T.cohen_kappa):
        with pytest.raises(ValueError, match="multilabel"):
            fn(p, multilabel, num_classes=2)
    with pytest.raises(ValueError, match="num_classes=3"):
        T.jaccard(p, y, num_classes=3)
    with pytest.raises(TypeError, match=r"specificity\(\) got unknown options"):
        T.specificity(p, y, num_classes=2, weights=None)  # type: ignore[call-arg]


def test_all_masked_reports_the_stores_empty_value_and_checkpoints_round_trip(rng, tmp_path):
    logits, probs, labels = _data(rng, (8,))
    with warnings.catch_warnings():
        empty = mk.MetricStore().update(_step(logits, probs, labels, np.zeros(8, bool))).compute()
    assert all(np.all(v == 0.0) for v in empty.values())
    store = mk.MetricStore().update(_step(logits, probs, labels))
    store.save(tmp_path / "c.npz")
    loaded = mk.MetricStore.load(tmp_path / "c.npz")
    more = _step(*_data(rng, (8,)))
    a, b = store.update(more).compute(), loaded.update(more).compute()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_eight_devices_sync_and_axis_name_give_one_devices_numbers(rng):
    assert jax.device_count() == 8, "XLA_FLAGS must force 8 host devices (conftest)"
    mesh = make_mesh((8,), ("data",))
    logits, probs, labels = _data(rng, (32, 2))

    def synced(lg, pr, lb):
        return mk.MetricStore().update(_step(lg, pr, lb)).sync("data")

    def reduced(lg, pr, lb):
        return mk.MetricStore().update(_step(lg, pr, lb), axis_name="data")

    one = mk.MetricStore().update(_step(logits, probs, labels)).compute()
    _check(one, _expected(logits, probs, labels))
    for fn in (synced, reduced):
        mapped = shard_map(fn, mesh=mesh, in_specs=(P("data"),) * 3, out_specs=P())
        host = jax.jit(mapped)(jnp.asarray(logits), jnp.asarray(probs), jnp.asarray(labels))
        host = host.compute()
        for key in one:
            # exact counts: the same number
            np.testing.assert_array_equal(host[key], one[key], err_msg=f"{fn.__name__} {key}")
