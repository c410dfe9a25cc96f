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
