"""Classification task metrics against scikit-learn: random data and edge cases, eager and
jitted, merged from random splits, and on 8 devices."""

from __future__ import annotations

import functools
import itertools

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from jax.sharding import PartitionSpec as P
from sklearn import metrics as skm

import metricskit as mk
from metricskit.compat import make_mesh, shard_map

C = 4
AVERAGES = ["micro", "macro", "weighted", "none"]


def _multiclass(rng, n, c=C):
    return rng.normal(size=(n, c)).astype(np.float32), rng.integers(0, c, size=n)


def _step(logits, labels, mask=None):
    """Every classification metric of one batch (multiclass)."""
    step = {
        "acc": mk.tasks.accuracy(logits, labels, mask=mask),
        "top2": mk.tasks.accuracy(logits, labels, mask=mask, top_k=2),
        "cm": mk.tasks.confusion_matrix(logits, labels, num_classes=C, mask=mask),
    }
    for avg in AVERAGES:
        for kind in ("precision", "recall", "f1"):
            fn = getattr(mk.tasks, kind)
            step[f"{kind}_{avg}"] = fn(logits, labels, num_classes=C, average=avg, mask=mask)
        step[f"f2_{avg}"] = mk.tasks.fbeta(
            logits, labels, num_classes=C, beta=2.0, average=avg, mask=mask
        )
    return step


def _expected(logits, labels, zero_division=0.0):
    pred = logits.argmax(-1)
    labels_ = list(range(C))
    out = {
        "acc": skm.accuracy_score(labels, pred) if len(labels) else 0.0,
        "top2": skm.top_k_accuracy_score(labels, logits, k=2, labels=labels_)
        if len(labels)
        else 0.0,
        "cm": skm.confusion_matrix(labels, pred, labels=labels_),
    }
    for avg in AVERAGES:
        a = None if avg == "none" else avg
        kw = {"average": a, "labels": labels_, "zero_division": zero_division}
        out[f"precision_{avg}"] = skm.precision_score(labels, pred, **kw)
        out[f"recall_{avg}"] = skm.recall_score(labels, pred, **kw)
        out[f"f1_{avg}"] = skm.f1_score(labels, pred, **kw)
        out[f"f2_{avg}"] = skm.fbeta_score(labels, pred, beta=2.0, **kw)
    return out


def _check(host, want):
    assert set(host) == set(want)
    for name, value in want.items():
        np.testing.assert_allclose(host[name], value, rtol=1e-12, atol=0, err_msg=name)


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_multiclass_metrics_match_scikit_learn_over_batches(use_jit, rng):
    batches = [_multiclass(rng, n) for n in (32, 32, 17)]

    def update(store, logits, labels):
        return store.update(_step(logits, labels))

    update = jax.jit(update) if use_jit else update
    store = mk.MetricStore()
    for logits, labels in batches:
        store = update(store, jnp.asarray(logits), jnp.asarray(labels))
    logits = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    _check(store.compute(), _expected(logits, labels))


def test_edge_cases_never_predicted_one_class_and_zero_division():
    logits = np.zeros((6, C), np.float32)
    logits[:, 1] = 1.0  # always predicts class 1
    for labels in (np.array([1, 1, 1, 1, 1, 1]), np.array([0, 0, 2, 2, 3, 3])):
        for zd in (0.0, 1.0):
            step = {}
            for avg in AVERAGES:
                for kind in ("precision", "recall", "f1"):
                    step[f"{kind}_{avg}"] = getattr(mk.tasks, kind)(
                        logits, labels, num_classes=C, average=avg, zero_division=zd
                    )
            host = mk.MetricStore().update(step).compute()
            want = {k: v for k, v in _expected(logits, labels, zd).items() if k in host}
            _check(host, want)


def test_a_mask_that_hides_everything_reports_empty_and_masks_select_samples(rng, caplog):
    logits, labels = _multiclass(rng, 20)
    mask = rng.random(20) < 0.6
    host = mk.MetricStore().update(_step(logits, labels, mask)).compute()
    _check(host, _expected(logits[mask], labels[mask]))
    with caplog.at_level("WARNING", logger="metricskit"):
        empty = mk.MetricStore().update(_step(logits, labels, np.zeros(20, bool))).compute()
    assert empty["acc"] == 0.0 and empty["f1_macro"] == 0.0 and "count 0" in caplog.text


def test_binary_and_multilabel_inputs(rng):
    scores = rng.uniform(size=50).astype(np.float32)
    y = rng.integers(0, 2, size=50)
    host = (
        mk.MetricStore()
        .update(
            {
                "acc": mk.tasks.accuracy(scores, y),
                "f1": mk.tasks.f1(scores, y, num_classes=2, average="binary"),
                "p": mk.tasks.precision(scores, y, num_classes=2, average="binary"),
            }
        )
        .compute()
    )
    pred = (scores > 0.5).astype(int)
    assert host["acc"] == skm.accuracy_score(y, pred)
    assert host["f1"] == pytest.approx(skm.f1_score(y, pred), rel=1e-12)
    assert host["p"] == pytest.approx(skm.precision_score(y, pred), rel=1e-12)
    ml_scores = rng.uniform(size=(40, 3)).astype(np.float32)
    ml = rng.integers(0, 2, size=(40, 3))
    host = (
        mk.MetricStore()
        .update({"f1": mk.tasks.f1(ml_scores, ml, num_classes=3, average="macro")})
        .compute()
    )
    assert host["f1"] == pytest.approx(
        skm.f1_score(ml, (ml_scores > 0.5).astype(int), average="macro"), rel=1e-12
    )
    with pytest.raises(ValueError, match=r"binary.*num_classes=2"):
        mk.tasks.f1(ml_scores, ml, num_classes=3, average="binary")
    with pytest.raises(ValueError, match="average='mean'"):
        mk.tasks.f1(ml_scores, ml, num_classes=3, average="mean")  # type: ignore[arg-type]


@st.composite
def _splits(draw):
    n = draw(st.integers(2, SPLIT_SIZE))
    cut = sorted(draw(st.lists(st.integers(1, n - 1), min_size=1, max_size=3, unique=True)))
    return n, cut, draw(st.integers(0, 1000))


SPLIT_SIZE = 40


@jax.jit
def _split_step(logits, labels, scores, mask):
    out = {k: _step(logits, labels, mask)[k] for k in ("acc", "f1_macro", "cm")}
    out["auc"] = mk.tasks.roc_auc(scores, labels % 2, bins=64, mask=mask)
    return mk.MetricStore().update(out)


@pytest.mark.extended
@settings(max_examples=15)
@given(_splits())
def test_any_split_aggregates_to_the_whole(case):
    n, cuts, seed = case
    rng = np.random.default_rng(seed)
    logits, labels = _multiclass(rng, SPLIT_SIZE)  # fixed shapes, parts chosen by masks
    scores = rng.uniform(size=SPLIT_SIZE).astype(np.float32)

    def step(lo, hi):
        where = (np.arange(SPLIT_SIZE) >= lo) & (np.arange(SPLIT_SIZE) < hi)
        return _split_step(logits, labels, scores, where)

    bounds = [0, *cuts, n]
    parts = [step(a, b) for a, b in itertools.pairwise(bounds)]
    merged = functools.reduce(mk.MetricStore.aggregate, parts).compute()
    whole = step(0, n).compute()
    assert merged.keys() == whole.keys()
    for key in whole:
        np.testing.assert_array_equal(merged[key], whole[key])


@pytest.mark.extended
def test_eight_devices_sync_and_axis_name_give_one_devices_numbers(rng):
    assert jax.device_count() == 8, "XLA_FLAGS must force 8 host devices (conftest)"
    mesh = make_mesh((8,), ("data",))
    logits, labels = _multiclass(rng, 64)
    scores = rng.uniform(size=64).astype(np.float32)

    def items(lg, lb, sc):
        return {
            "acc": mk.tasks.accuracy(lg, lb),
            "f1": mk.tasks.f1(lg, lb, num_classes=C, average="macro"),
            "auc": mk.tasks.roc_auc(sc, lb % 2, bins=128),
            "r2": mk.tasks.r2(sc, (lb % 2).astype(jnp.float32)),
            "ece": mk.tasks.calibration_error(jnp.stack([1 - sc, sc], -1), lb % 2, bins=8),
            "tokens_f1": mk.tasks.f1(  # two sample axes
                lg.reshape(-1, 2, C), lb.reshape(-1, 2), num_classes=C, average="weighted"
            ),
            "ndcg": mk.tasks.ndcg(lg, jax.nn.one_hot(lb, C)),
        }

    def synced(lg, lb, sc):
        return mk.MetricStore().update(items(lg, lb, sc)).sync("data")

    def reduced(lg, lb, sc):
        return mk.MetricStore().update(items(lg, lb, sc), axis_name="data")

    one = mk.MetricStore().update(items(logits, labels, scores)).compute()
    for fn in (synced, reduced):
        mapped = shard_map(fn, mesh=mesh, in_specs=(P("data"),) * 3, out_specs=P())
        got = jax.jit(mapped)(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(scores))
        host = got.compute()
        for key in one:
            np.testing.assert_allclose(
                host[key], one[key], rtol=1e-5, err_msg=f"{fn.__name__} {key}"
            )
        for key in ("acc", "f1", "tokens_f1"):  # exact counts: the same number
            assert host[key] == one[key], (fn.__name__, key)
        np.testing.assert_allclose(host["ece"], one["ece"], rtol=1e-12)
        np.testing.assert_allclose(host["ndcg"], one["ndcg"], rtol=1e-12)


# -- bad inputs and non-finite scores (findings of a newcomer's break-it session) ----------

T = mk.tasks
LOGITS = jnp.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]])


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: T.accuracy(LOGITS[:2], jnp.array([[0], [1]])), ValueError, r"\(2, 3\).*\(2, 1\)"),
        (lambda: T.accuracy(LOGITS, jnp.array([0, 1, 2]), top_k=0), ValueError, "top_k=0"),
        (lambda: T.accuracy(LOGITS, jnp.array([0, 1, 2]), top_k=4), ValueError, r"\[1, 3\]"),
        (lambda: T.accuracy(jnp.array([0, 1]), jnp.array([1, 1]), top_k=2), ValueError, "scores"),
        (lambda: T.accuracy(LOGITS, jnp.array([0, 1, 5])), ValueError, r"class id 5.*\[0, 3\)"),
        (lambda: T.accuracy(LOGITS, jnp.array([0, -1, 2])), ValueError, "class id -1"),
        (lambda: T.accuracy(LOGITS, jnp.array([0.0, 1.0, 2.0])), TypeError, "integers"),
        (lambda: T.f1(LOGITS, jnp.array([0, 1, 2]), num_classes=4), ValueError, "num_classes=3"),
        (lambda: T.f1(LOGITS, jnp.array([0, 1, 2]), num_classes=0), ValueError, "num_classes=0"),
        (
            lambda: T.f1(jnp.ones((2, 4)), jnp.ones((2, 4), int), num_classes=3),
            ValueError,
            "4 labels",
        ),
        (
            lambda: T.f1(jnp.array([0.2, 0.8]), jnp.array([0, 1]), num_classes=3),
            ValueError,
            "binary scores",
        ),
        (
            lambda: T.fbeta(LOGITS, jnp.array([0, 1, 2]), num_classes=3, beta=-1.0),
            ValueError,
            "beta=-1",
        ),
        (
            lambda: T.fbeta(LOGITS, jnp.array([0, 1, 2]), num_classes=3, beta=float("inf")),
            ValueError,
            "recall",
        ),
        (
            lambda: T.f1(LOGITS, jnp.array([0, 1, 2]), num_classes=3, zero_division="warn"),
            ValueError,
            "zero_division='warn'",
        ),
        (
            lambda: T.confusion_matrix(jnp.eye(3), jnp.array([0, 1, 2]), num_classes=2),
            ValueError,
            "num_classes=3",
        ),
        (
            lambda: T.confusion_matrix(jnp.ones((2, 4)), jnp.ones((2, 4), int), num_classes=4),
            ValueError,
            "multilabel",
        ),
        (lambda: T.roc_auc(jnp.array([0.5, 2.0]), jnp.array([0, 1])), ValueError, "sigmoid"),
        (lambda: T.roc_auc(jnp.array([0.5, 0.2]), jnp.array([0, 2])), ValueError, "0 or 1"),
        (lambda: T.roc_auc(jnp.array([0.5, 0.2]), jnp.array([0, 1]), bins=0), ValueError, "bins"),
        (
            lambda: T.calibration_error(LOGITS, jnp.array([0, 1, 2])),
            ValueError,
            "softmax",
        ),
        (
            lambda: T.calibration_error(jnp.full((3, 3), 1 / 3), jnp.array([0, 1, 2]), bins=0),
            ValueError,
            "bins",
        ),
    ],
)
def test_bad_inputs_are_clear_errors_before_any_state_changes(make, error, message):
    store = mk.MetricStore().update({"loss": 1.0})
    with pytest.raises(error, match=message):
        store = store.update({"bad": make()})
    assert list(store) == ["loss"]


def test_out_of_range_ids_under_a_mask_are_padding_not_errors():
    labels = jnp.array([0, 1, -100])  # a common padding id, masked out
    mask = jnp.array([True, True, False])
    for fn in (jax.jit, lambda f: f):
        host = fn(
            lambda y: mk.MetricStore().update(
                {
                    "acc": T.accuracy(LOGITS, y, mask=mask),
                    "f1": T.f1(LOGITS, y, num_classes=3, average="micro", mask=mask),
                }
            )
        )(labels).compute()
        assert host == {"acc": 1.0, "f1": 1.0}


def test_bool_labels_and_multilabel_masks_match_scikit_learn(rng):
    scores = rng.random((40, 3)).astype(np.float32)
    labels = rng.random((40, 3)) < 0.5
    mask = rng.random((40, 3)) < 0.8
    host = (
        mk.MetricStore()
        .update(
            {
                "f1": T.f1(scores, labels, num_classes=3, average="none", mask=mask),
                "bin": T.f1(scores[:, 0], labels[:, 0], num_classes=2, average="binary"),
                "cm": T.confusion_matrix(scores[:, 0], labels[:, 0], num_classes=2),
            }
        )
        .compute()
    )
    want = [skm.f1_score(labels[mask[:, j], j], scores[mask[:, j], j] > 0.5) for j in range(3)]
    np.testing.assert_allclose(host["f1"], want, rtol=1e-12)
    assert host["bin"] == pytest.approx(skm.f1_score(labels[:, 0], scores[:, 0] > 0.5), abs=1e-12)
    np.testing.assert_array_equal(
        host["cm"], skm.confusion_matrix(labels[:, 0], scores[:, 0] > 0.5, labels=[0, 1])
    )


@pytest.mark.parametrize("average", ["macro", "weighted", "micro", "none"])
def test_zero_division_nan_leaves_classes_out_as_scikit_learn_does(average):
    preds, labels = jnp.array([0, 0, 1, 1]), jnp.array([0, 0, 1, 1])
    for kind in ("precision", "recall", "f1"):
        got = (
            mk.MetricStore()
            .update(
                {
                    "s": getattr(T, kind)(
                        preds, labels, num_classes=3, average=average, zero_division=np.nan
                    )
                }
            )
            .compute()["s"]
        )
        want = getattr(skm, f"{kind}_score")(
            labels, preds, labels=[0, 1, 2], average=None if average == "none" else average,
            zero_division=np.nan,
        )  # fmt: skip
        np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("use_jit", [False, True])
def test_a_nan_score_makes_the_key_nan_and_skip_counts_it(use_jit):
    logits = jnp.array([[jnp.nan, 1.0, 0.0], [0.0, 2.0, 0.0]])
    labels = jnp.array([0, 1])
    probs = jnp.array([jnp.nan, 0.2, 0.7])
    ys = jnp.array([1, 0, 1])

    def step(store, logits, probs):
        return store.update(
            {
                "acc": T.accuracy(logits, labels),
                "f1": T.f1(logits, labels, num_classes=3),
                "f1n": T.f1(logits, labels, num_classes=3, average="none"),
                "cm": T.confusion_matrix(logits, labels, num_classes=3),
                "auc": T.roc_auc(probs, ys),
                "ap": T.average_precision(probs, ys),
                "ece": T.calibration_error(jax.nn.softmax(logits), labels),
            }
        )

    run = jax.jit(step) if use_jit else step
    host = run(mk.MetricStore(), logits, probs).compute()
    for key in ("acc", "f1", "auc", "ap", "ece"):
        assert np.isnan(host[key]), key
    assert np.isnan(host["f1n"]).all() and np.isnan(host["cm"]).all()
    skipped = run(mk.MetricStore(nan_policy="skip"), logits, probs).compute()
    assert skipped["acc_nonfinite"] == 1  # the skip policy sees the NaN of a float statistic


def test_task_options_are_the_configuration_of_one_class_never_a_generated_name():
    from metricskit.tasks.fscores import FScores

    logits, labels = jnp.array([[2.0, 0.0], [0.0, 2.0]]), jnp.array([0, 1])
    macro = mk.tasks.f1(logits, labels, num_classes=2)["log_modes"][0]
    assert macro == FScores(kind="f1", average="macro", beta=1.0, zero_division=0.0)
    micro = mk.tasks.f1(logits, labels, num_classes=2, average="micro")["log_modes"][0]
    assert micro != macro and micro.cls is macro.cls is FScores
    assert not any(name.startswith("f1_") for name in mk.registered_modes())


def test_zero_division_nan_written_afresh_each_step_is_one_mode():
    # float("nan") is a new object each time, and nan != nan: still one registered mode
    logits, labels = jnp.array([[2.0, 0.0], [0.0, 2.0]]), jnp.array([0, 0])
    store = mk.MetricStore()
    for _ in range(2):
        item = mk.tasks.precision(
            logits, labels, num_classes=2, average="macro", zero_division=float("nan")
        )
        store = store.update({"p": item})
    assert store.compute()["p"] == skm.precision_score(
        [0, 0, 0, 0], [0, 1, 0, 1], average="macro", zero_division=np.nan
    )


@pytest.mark.parametrize("name", ["precision", "recall", "f1", "fbeta"])
def test_an_empty_batch_adds_nothing_to_precision_recall_and_f_scores(name):
    fn = getattr(mk.tasks, name)
    extra = {"beta": 2.0} if name == "fbeta" else {}
    empty = fn(jnp.zeros((0, 3)), jnp.zeros((0,), jnp.int32), num_classes=3, **extra)
    full = fn(jnp.eye(3)[jnp.array([0, 1, 2, 1])], jnp.array([0, 1, 2, 2]), num_classes=3, **extra)
    both = mk.MetricStore().update({"s": empty}).update({"s": full}).compute()
    assert both == mk.MetricStore().update({"s": full}).compute()
    multilabel = fn(jnp.zeros((0, 3)), jnp.zeros((0, 3), jnp.int32), num_classes=3, **extra)
    assert int(multilabel["count"]) == 0


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("mask_axes", [None, 1, 2], ids=["no-mask", "mask-B", "mask-BT"])
def test_any_number_of_sample_axes_is_the_flattened_samples(use_jit, mask_axes, rng):
    """(B, T, C) logits with (B, T) labels, and a mask of the sample axes (or of the leading
    one): every classification metric is scikit-learn's on the flattened samples."""
    b, t = 3, 5
    logits = rng.normal(size=(b, t, C)).astype(np.float32)
    labels = rng.integers(0, C, size=(b, t))
    mask = None if mask_axes is None else rng.random((b, t)[:mask_axes]) < 0.7

    def update(store, *arrays):
        return store.update(_step(*arrays))

    update = jax.jit(update) if use_jit else update
    args = [jnp.asarray(logits), jnp.asarray(labels)]
    store = update(mk.MetricStore(), *args, None if mask is None else jnp.asarray(mask))
    keep = np.ones((b, t), bool) if mask is None else np.broadcast_to(
        mask.reshape(mask.shape + (1,) * (2 - mask.ndim)), (b, t)
    )  # fmt: skip
    _check(store.compute(), _expected(logits[keep], labels[keep]))


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_class_id_maps_of_any_rank_are_per_pixel_samples(use_jit, rng):
    """(B, H, W) predicted class ids with (B, H, W) labels (segmentation maps), and binary
    probability maps: per-pixel samples, as scikit-learn on the flattened pixels."""
    pred, true = rng.integers(0, C, (2, 3, 4)), rng.integers(0, C, (2, 3, 4))
    probs, binary = rng.random((2, 3, 4)).astype(np.float32), rng.integers(0, 2, (2, 3, 4))

    def step(pred, true, probs, binary):
        out = {"cm": mk.tasks.confusion_matrix(pred, true, num_classes=C)}
        for avg in AVERAGES:
            out[f"f1_{avg}"] = mk.tasks.f1(pred, true, num_classes=C, average=avg)
        out["binary_f1"] = mk.tasks.f1(probs, binary, num_classes=2, average="binary")
        out["counts"] = {"value": mk.tasks.class_counts(pred, true, C), "log_modes": ["mean"]}
        return mk.MetricStore().update(out)

    step = jax.jit(step) if use_jit else step
    host = step(*(jnp.asarray(x) for x in (pred, true, probs, binary))).compute()
    p, y = pred.ravel(), true.ravel()
    np.testing.assert_array_equal(host["cm"], skm.confusion_matrix(y, p, labels=range(C)))
    for avg in AVERAGES:
        want = skm.f1_score(y, p, labels=range(C), average=None if avg == "none" else avg)
        np.testing.assert_allclose(host[f"f1_{avg}"], want, rtol=1e-15)
    want = skm.f1_score(binary.ravel(), probs.ravel() > 0.5)
    np.testing.assert_allclose(host["binary_f1"], want, rtol=1e-15)
    mcm = skm.multilabel_confusion_matrix(y, p, labels=range(C))
    np.testing.assert_array_equal(
        host["counts_mean"], np.stack([mcm[:, 1, 1], mcm[:, 0, 1], mcm[:, 1, 0]])
    )


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_accuracy_counts_are_exact_past_float32s_integers(use_jit):
    """2^24 + 3 correct samples in one batch reported 1.0000000596 (a float32 sum of hits);
    the hits travel as an exact double-float, so the mean is the correctly rounded one."""
    n = 2**24 + 3
    labels = jnp.zeros(n, jnp.int32)

    def step(store, predictions):
        return store.update({"acc": mk.tasks.accuracy(predictions, labels)})

    step = jax.jit(step) if use_jit else step
    assert step(mk.MetricStore(), labels).compute()["acc"] == 1.0
    store = step(mk.MetricStore(), labels.at[5].set(1))
    assert store.compute()["acc"] == (n - 1) / n
    assert step(store, labels).compute()["acc"] == (2 * n - 1) / (2 * n)
