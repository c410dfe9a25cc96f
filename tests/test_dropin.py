"""The drop-in in real trainer code (issue 12): written the way a JAX trainer is written.

Global metrics are treated as mappings, initialised by zero-filling the abstract output of the
jitted step, donated and sharded; evaluation runs over several datasets whose entries are
merged, with a smaller last batch and an entry carried in the aggregate dict.
"""

from __future__ import annotations

import random

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import metricskit as mk
from metricskit.compat import make_mesh
from metricskit.functional import aggregate_metrics, get_metrics, update_metrics

TRAIN_MODES = ["mean", "max", "min", "std", "single"]


def _loss_step(params, batch):
    """A tiny model's step metrics: loss, accuracy and token count, as a trainer logs them."""
    x, y = batch
    logits = x @ params
    loss = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(y.shape[0]), y])
    correct = jnp.sum(jnp.argmax(logits, -1) == y)
    return {
        "loss": loss,
        "neg_loss": -loss - 10.0,  # all negative: a zero-filled max must not stick at 0
        "accuracy": {"value": correct, "count": y.shape[0], "log_modes": ["mean"]},
        "tokens": {"value": jnp.sum(jnp.ones_like(y)), "count": 1, "log_modes": ["mean"]},
    }


def _batches(rng, n, size=8):
    return [
        (
            jnp.asarray(rng.normal(size=(size, 3)), jnp.float32),
            jnp.asarray(rng.integers(0, 2, size=size), jnp.int32),
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_global_metrics_are_a_mapping_and_merged_datasets_report_every_key(use_jit, rng):
    params = jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)

    def eval_step(metrics, batch):
        return update_metrics(metrics, _loss_step(params, batch), default_log_modes=["mean"])

    eval_step = jax.jit(eval_step) if use_jit else eval_step
    datasets = {"val": _batches(rng, 3), "test": _batches(rng, 2)}
    per_dataset = {}
    for name, batches in datasets.items():
        metrics = None
        for batch in batches:
            metrics = eval_step(metrics, batch)
        per_dataset[name] = metrics
    metrics = per_dataset["val"]
    assert len(metrics) == 4 and "loss" in metrics and "missing" not in metrics
    assert list(metrics.keys()) == ["accuracy", "loss", "neg_loss", "tokens"]
    assert [k for k, _ in metrics.items()] == list(metrics)
    assert sorted(metrics["loss"]) == ["mean"] and isinstance(metrics["loss"]["mean"], mk.Metric)

    merged = {}
    for name, m in per_dataset.items():  # the trainer's evaluation over several datasets
        merged.update({f"{name}_{k}": v for k, v in m.items()})
    _, host = get_metrics(merged)
    for name, batches in datasets.items():
        steps = [jax.device_get(_loss_step(params, b)) for b in batches]
        want_loss = np.mean([float(s["loss"]) for s in steps])
        want_acc = sum(int(s["accuracy"]["value"]) for s in steps) / (8 * len(batches))
        assert host[f"{name}_loss_mean"] == pytest.approx(want_loss, rel=1e-6)
        assert host[f"{name}_accuracy_mean"] == want_acc
        assert host[f"{name}_tokens_mean"] == 8.0
    assert sorted(host) == sorted(
        f"{d}_{k}_mean" for d in datasets for k in ("accuracy", "loss", "neg_loss", "tokens")
    )
    more = update_metrics(merged, {"val_loss": 1.0}, default_log_modes=["mean"])
    assert more["val_loss"]["mean"] is not None and len(more) == 8
    reset, _ = get_metrics(merged)
    assert type(reset) is dict and list(reset) == list(merged)


def test_the_aggregate_is_a_plain_mutable_dict_and_carried_entries_survive(rng):
    @jax.jit
    def eval_step(values):
        step = {"ll": {"value": values, "log_modes": ["single_noreduce"]}, "loss": values.mean()}
        return update_metrics(None, step)

    aggregated = {}
    progress = 0
    for n in (4, 4, 3):  # the last batch is smaller
        batch_metrics = dict(eval_step(jnp.asarray(rng.normal(size=n), jnp.float32)))
        batch_metrics["progress"] = progress  # a carried entry, as lmeval's "step_metrics"
        carried = batch_metrics.pop("progress")
        aggregated = aggregate_metrics(aggregated, batch_metrics)
        assert type(aggregated) is dict
        aggregated["progress"] = carried + 1  # items assigned ...
        progress = aggregated.pop("progress")  # ... popped ...
        snapshot = aggregated.copy()  # ... and copied by the caller
        assert snapshot.keys() == aggregated.keys()
    assert progress == 3
    aggregated["note"] = 7  # a plain value passes through get_metrics, as documented
    _, host = get_metrics(aggregated)
    assert host["ll_single_noreduce"].shape == (11,) and host["note"] == 7
    with pytest.raises(TypeError, match=r"'nested'.*one key's metrics"):
        get_metrics({**aggregated, "nested": eval_step(jnp.ones(2))})


def _train_step(params, batch, metrics):
    return update_metrics(metrics, _loss_step(params, batch), default_log_modes=TRAIN_MODES)


def _reference(params, batches):
    steps = [jax.device_get(_loss_step(params, b)) for b in batches]
    loss = np.array([float(s["loss"]) for s in steps], np.float64)
    neg = -loss - 10.0
    return {
        "loss_mean": loss.mean(),
        "loss_max": loss.max(),
        "loss_min": loss.min(),
        "loss_std": loss.std(),
        "loss_single": loss[-1],
        "neg_loss_max": neg.max(),
        "neg_loss_min": neg.min(),
        "accuracy_mean": sum(int(s["accuracy"]["value"]) for s in steps) / (8 * len(steps)),
    }


def test_trainer_on_8_devices_zero_filled_donated_and_sharded_never_recompiles(rng):
    assert jax.device_count() == 8, "XLA_FLAGS must force 8 host devices (conftest)"
    mesh = make_mesh((8,), ("data",))
    replicated = NamedSharding(mesh, P())
    params = jax.device_put(jnp.asarray(rng.normal(size=(3, 2)), jnp.float32), replicated)
    batches = [jax.device_put(b, NamedSharding(mesh, P("data"))) for b in _batches(rng, 6)]
    shapes = jax.eval_shape(_train_step, params, batches[0], None)  # the trainer's init
    assert list(shapes.keys()) == ["accuracy", "loss", "neg_loss", "tokens"]
    metrics = jax.tree.map(lambda x: jnp.zeros_like(x, device=replicated), shapes)
    step = jax.jit(_train_step, donate_argnames=["metrics"], out_shardings=replicated)
    for epoch in range(3):
        for batch in batches:
            metrics = step(params, batch, metrics)
        metrics, host = get_metrics(metrics)  # logging resets: same shardings, no recompile
        for name, want in _reference(params, batches).items():
            assert host[name] == pytest.approx(want, rel=1e-5, abs=1e-6), (epoch, name)
        assert all(x.sharding == replicated for x in jax.tree.leaves(metrics))
    assert step._cache_size() == 1


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_per_sequence_modes_follow_the_batch_size(use_jit, rng):
    def eval_step(metrics, ll, lengths):
        step = {
            "ll": {"value": ll, "log_modes": ["single_noreduce"]},
            "llw": {"value": ll, "count": lengths, "log_modes": ["single_noreduce_wcount"]},
            "loss": {"value": ll.sum(), "count": ll.shape[0], "log_modes": ["mean"]},
        }
        return update_metrics(metrics, step)

    eval_step = jax.jit(eval_step) if use_jit else eval_step
    metrics, aggregated = None, {}
    sizes = (4, 4, 2)
    lls = [rng.normal(size=n).astype(np.float32) for n in sizes]
    lengths = [rng.integers(1, 9, size=n).astype(np.int32) for n in sizes]
    for ll, n in zip(lls, lengths, strict=True):
        metrics = eval_step(metrics, jnp.asarray(ll), jnp.asarray(n))
        aggregated = aggregate_metrics(aggregated, metrics)
    if use_jit:
        assert eval_step._cache_size() == 3  # None, then 4, then the smaller last batch
    _, host = get_metrics(aggregated)
    np.testing.assert_array_equal(host["ll_single_noreduce"], np.concatenate(lls))
    values, counts = host["llw_single_noreduce_wcount"]
    np.testing.assert_array_equal(values, np.concatenate(lls))
    np.testing.assert_array_equal(counts, np.concatenate(lengths))
    assert host["loss_mean"] == pytest.approx(np.concatenate(lls).mean(), rel=1e-6)
    with pytest.raises(ValueError, match=r"'acc'.*shape \(2,\).*earlier steps.*\(4,\)"):
        m = update_metrics(None, {"acc": np.ones(4)})
        update_metrics(m, {"acc": np.ones(2)})  # accumulating modes keep a key's shape


def test_key_order_is_canonical_and_reordered_keys_never_recompile(compiles):
    keys = [f"k{i}" for i in "hgfedcba"]
    rand = random.Random(0)
    metrics = update_metrics(None, dict.fromkeys(keys, 0.0), TRAIN_MODES)
    metrics = update_metrics(metrics, dict.fromkeys(keys, 0.0), TRAIN_MODES)  # steady state
    compiles.clear()
    values = {}
    for step in range(12):
        order = keys[:]
        rand.shuffle(order)
        step_metrics = {k: float(step + i) for i, k in enumerate(order)}
        values[step] = step_metrics
        metrics = update_metrics(metrics, step_metrics, TRAIN_MODES)
    assert [c for c in compiles if "update" in c] == []
    host = get_metrics(metrics)[1]
    assert list(host)[:5] == ["ka_max", "ka_mean", "ka_min", "ka_single", "ka_std"]
    assert host["kh_single"] == values[11]["kh"]
    other = update_metrics(
        None, dict(reversed(list(dict.fromkeys(keys, 0.0).items()))), TRAIN_MODES
    )
    assert jax.tree.structure(other) == jax.tree.structure(metrics)


def test_flax_freeze_and_unfreeze_round_trip():
    flax_core = pytest.importorskip("flax.core")  # in the test extra: never skipped in CI
    metrics = update_metrics(None, {"loss": 2.0, "acc": {"value": 3, "count": 4}}, ["mean", "max"])
    frozen = flax_core.freeze(metrics)
    assert get_metrics(frozen)[1] == get_metrics(metrics)[1]
    thawed = flax_core.unfreeze(frozen)
    assert type(thawed) is dict and sorted(thawed) == ["acc", "loss"]
    again = update_metrics(thawed, {"loss": 4.0, "acc": {"value": 1, "count": 4}}, ["mean", "max"])
    assert get_metrics(again)[1] == {
        "acc_max": 0.75,
        "acc_mean": 0.5,
        "loss_max": 4.0,
        "loss_mean": 3.0,
    }
    for a, b in zip(
        jax.tree.leaves(mk.MetricStore.from_mapping(thawed)), jax.tree.leaves(metrics), strict=True
    ):
        assert a is b  # unfreezing copies no metric state
    reset, _ = get_metrics(frozen)
    assert isinstance(reset, flax_core.FrozenDict) and sorted(reset) == ["acc", "loss"]
