"""Precision, recall, F-beta and F1: scikit-learn's numbers for every average, one set of
options shared by the four functions."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

import metricskit as mk
from metricskit.tasks.fscores import ScoreOptions

PRED = np.array([0, 1, 1, 2, 2, 0, 1])
TRUE = np.array([0, 1, 2, 2, 1, 0, 0])
SKLEARN = {
    "precision": skm.precision_score,
    "recall": skm.recall_score,
    "f1": skm.f1_score,
}


@pytest.mark.parametrize("average", ["micro", "macro", "weighted", "none"])
def test_every_average_is_scikit_learns(average):
    items = {
        name: getattr(mk.tasks, name)(jnp.asarray(PRED), jnp.asarray(TRUE), num_classes=3,
                                      average=average)
        for name in SKLEARN
    }  # fmt: skip
    items["f2"] = mk.tasks.fbeta(
        jnp.asarray(PRED), jnp.asarray(TRUE), num_classes=3, beta=2.0, average=average
    )
    host = mk.MetricStore().update(items).compute()
    sk_average = None if average == "none" else average
    for name, fn in SKLEARN.items():
        np.testing.assert_array_equal(host[name], fn(TRUE, PRED, average=sk_average))
    want = skm.fbeta_score(TRUE, PRED, beta=2.0, average=sk_average)
    np.testing.assert_allclose(host["f2"], want, rtol=1e-15)


def test_the_options_are_declared_once_and_unknown_ones_are_named():
    assert set(ScoreOptions.__annotations__) == {"average", "zero_division", "mask", "threshold"}
    for name in ("precision", "recall", "f1"):
        with pytest.raises(TypeError, match=rf"{name}\(\) got unknown options \['averag'\]"):
            getattr(mk.tasks, name)(jnp.asarray(PRED), jnp.asarray(TRUE), num_classes=3,
                                    averag="macro")  # fmt: skip
    with pytest.raises(ValueError, match="average='median'"):
        mk.tasks.recall(jnp.asarray(PRED), jnp.asarray(TRUE), num_classes=3, average="median")


def test_numpy_scalar_options_are_taken_as_python_numbers():
    logits, labels = jnp.array([[2.0, 0.0, 1.0], [0.0, 2.0, 1.0]]), jnp.array([0, 2])
    got = mk.tasks.fbeta(logits, labels, num_classes=np.int64(3), beta=np.float32(2.0))
    want = mk.tasks.fbeta(logits, labels, num_classes=3, beta=2.0)
    assert got["log_modes"] == want["log_modes"]
    assert mk.MetricStore().update({"f": got}).compute() == (
        mk.MetricStore().update({"f": want}).compute()
    )


@pytest.mark.parametrize("multilabel", [False, True])
def test_every_average_and_zero_division_follows_scikit_learns_rules(multilabel):
    """Classes without support or predictions, in every combination: scikit-learn's
    _nanaverage rules (a weighted average over no support is the plain mean; NaN scores are
    left out), for the four scores and every zero_division."""
    rng = np.random.default_rng(7)
    for trial in range(40):
        n, c = int(rng.integers(1, 5)), int(rng.integers(2, 4))
        if multilabel:  # sparse: often a class has no support, or is never predicted
            true = rng.integers(0, 2, (n, c)) * (rng.random((n, c)) < 0.4)
            pred = rng.integers(0, 2, (n, c)) * (rng.random((n, c)) < 0.4)
            p, y = jnp.asarray(pred, jnp.float32), jnp.asarray(true)
        else:
            true, pred = rng.integers(0, c, n), rng.integers(0, c, n)
            p, y = jnp.asarray(pred), jnp.asarray(true)
        if trial == 0 and multilabel:  # the case: one false positive, nothing true
            true, pred = np.zeros((1, 3), int), np.array([[0, 1, 0]])
            p, y, c = jnp.asarray(pred, jnp.float32), jnp.asarray(true), 3
        items, want = {}, {}
        for average in ("micro", "macro", "weighted", "none"):
            for zd in (0.0, 1.0, float("nan")):
                for name, beta in (("precision", 1), ("recall", 1), ("f1", 1), ("fbeta", 0.5)):
                    key = f"{name}/{average}/{zd}"
                    kwargs = {"beta": beta} if name == "fbeta" else {}
                    items[key] = getattr(mk.tasks, name)(
                        p, y, num_classes=c, average=average, zero_division=zd, **kwargs
                    )
                    sk = skm.precision_recall_fscore_support(
                        true, pred, labels=list(range(c)), beta=beta, zero_division=zd,
                        average=None if average == "none" else average,
                    )  # fmt: skip
                    want[key] = sk[{"precision": 0, "recall": 1}.get(name, 2)]
        host = mk.MetricStore().update(items).compute()
        for key, value in want.items():
            np.testing.assert_allclose(host[key], value, rtol=1e-15, err_msg=key)
