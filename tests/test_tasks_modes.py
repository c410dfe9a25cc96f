"""The engine of task metrics: summing metrics (a user's own task metric in a few lines),
masks, and every family through the functional API, a checkpoint and 8 devices."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import metricskit as mk
from metricskit.compat import make_mesh, shard_map
from metricskit.tasks.modes import SumsMetric, counted, step_item


class Brier(SumsMetric):
    scale = mk.static(1.0)

    def finish(self, sums, count):
        return self.scale * float(sums / count)


def brier(probs, labels, *, mask=None, scale=1.0):
    """A user's own task metric: the mean squared error of predicted probabilities."""
    which = counted(mask, jnp.shape(labels))
    total = jnp.sum(jnp.where(which, (probs - labels) ** 2, 0.0))
    return step_item(total, jnp.sum(which, dtype=jnp.int32), Brier(scale=scale))


def test_a_users_task_metric_in_a_few_lines(rng):
    p = rng.uniform(size=(3, 40)).astype(np.float32)
    y = rng.integers(0, 2, size=(3, 40)).astype(np.float32)
    m = rng.random((3, 40)) < 0.7
    update = jax.jit(lambda store, p, y, m: store.update({"brier": brier(p, y, mask=m)}))
    store = mk.MetricStore()
    for i in range(3):
        store = update(store, p[i], y[i], m[i])
    want = np.mean((p[m].astype(np.float64) - y[m]) ** 2)
    assert store.compute()["brier"] == pytest.approx(want, rel=1e-6)
    assert mk.get_log_mode(Brier(scale=1.0)).cls is Brier


def test_two_options_of_one_task_metric_are_two_modes_of_one_class_and_never_collide():
    p, y = jnp.array([0.9, 0.2]), jnp.array([1.0, 0.0])
    store = mk.MetricStore().update({"a": brier(p, y), "b": brier(p, y, scale=2.0)})
    host = store.compute()
    assert host == {"a": pytest.approx(0.025), "b": pytest.approx(0.05)}
    assert [g.mode for g in store.layout.groups] == [Brier(scale=1.0), Brier(scale=2.0)]
    a = mk.tasks.fbeta(jnp.zeros((2, 3)), jnp.zeros(2, int), num_classes=3, beta=0.5)
    b = mk.tasks.fbeta(jnp.ones((2, 3)), jnp.ones(2, int), num_classes=3, beta=0.5)
    assert a["log_modes"] == b["log_modes"] and hash(a["log_modes"][0]) == hash(b["log_modes"][0])


def test_counted_broadcasts_a_mask_over_the_trailing_axes():
    mask = jnp.array([True, False])
    np.testing.assert_array_equal(counted(mask, (2, 3)), [[True] * 3, [False] * 3])
    np.testing.assert_array_equal(counted(None, (2,)), [True, True])


def _every_family(lg, lb, sc, tokens_logits, tokens):
    return {
        "loss": jnp.mean(sc),
        "acc": mk.tasks.accuracy(lg, lb),
        "f1": mk.tasks.f1(lg, lb, num_classes=4, average="macro"),
        "auc": mk.tasks.roc_auc(sc, lb % 2, bins=64),
        "ece": mk.tasks.calibration_error(jax.nn.softmax(lg), lb, bins=5),
        "r2": mk.tasks.r2(sc, lg[:, 0]),
        "pearson": mk.tasks.pearson(sc, lg[:, 0]),
        "ppl": mk.tasks.perplexity(tokens_logits, tokens),
        "ndcg": mk.tasks.ndcg(lg, (lb[:, None] == jnp.arange(4)).astype(jnp.float32), k=2),
        "mrr": mk.tasks.mrr(lg, (lb[:, None] == jnp.arange(4)).astype(jnp.float32)),
        "q": mk.tasks.quantiles(sc, q=(0.5, 0.9)),
    }


def _batches(rng, n_batches=3, n=16):
    for _ in range(n_batches):
        yield (
            jnp.asarray(rng.normal(size=(n, 4)), jnp.float32),
            jnp.asarray(rng.integers(0, 4, size=n)),
            jnp.asarray(rng.uniform(size=n), jnp.float32),
            jnp.asarray(rng.normal(size=(n, 5, 6)), jnp.float32),
            jnp.asarray(rng.integers(0, 6, size=(n, 5))),
        )


def test_every_family_through_the_functional_api_and_a_checkpoint(rng, tmp_path):
    batches = list(_batches(rng))
    whole = [jnp.concatenate(parts) for parts in zip(*batches, strict=True)]
    want = mk.MetricStore().update(_every_family(*whole)).compute()

    @jax.jit
    def train_step(metrics, batch):
        return mk.update_metrics(metrics, _every_family(*batch))

    metrics = train_step({}, batches[0])
    mk.MetricStore.from_mapping(metrics).save(tmp_path / "metrics.npz")
    resumed = mk.MetricStore.load(tmp_path / "metrics.npz", like=metrics)
    for batch in batches[1:]:
        metrics, resumed = train_step(metrics, batch), train_step(resumed, batch)
    _, scalars, *_ = mk.get_metrics(metrics)
    assert set(scalars) == set(want) == {*want} and "q_p50" in scalars
    for key, value in want.items():
        assert scalars[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    assert mk.get_metrics(resumed)[1] == scalars  # the checkpoint continues exactly


@pytest.mark.extended
def test_every_family_on_eight_devices_gives_one_devices_numbers(rng):
    assert jax.device_count() == 8, "XLA_FLAGS must force 8 host devices (conftest)"
    mesh = make_mesh((8,), ("data",))
    batch = next(_batches(rng, 1, 64))
    one = mk.MetricStore().update(_every_family(*batch)).compute()

    def synced(*b):
        return mk.MetricStore().update(_every_family(*b)).sync("data")

    def reduced(*b):
        return mk.MetricStore().update(_every_family(*b), axis_name="data")

    for fn in (synced, reduced):
        mapped = shard_map(fn, mesh=mesh, in_specs=(P("data"),) * 5, out_specs=P())
        host = jax.jit(mapped)(*batch).compute()
        assert host.keys() == one.keys()
        for key in one:
            np.testing.assert_allclose(
                host[key], one[key], rtol=1e-5, atol=1e-6, err_msg=f"{fn.__name__} {key}"
            )


def test_task_functions_under_jit_take_concrete_inputs_they_close_over():
    # the eager value checks ran NumPy on jnp results, which are tracers inside the trace
    logits, labels = jnp.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]), jnp.array([0, 2])
    probs, binary = jnp.array([0.2, 0.9]), jnp.array([0, 1])
    items = {
        "f1": lambda: mk.tasks.f1(logits, labels, num_classes=3),
        "acc": lambda: mk.tasks.accuracy(logits, labels),
        "auc": lambda: mk.tasks.roc_auc(probs, binary),
        "ece": lambda: mk.tasks.calibration_error(jnp.stack([1 - probs, probs], -1), binary),
        "ndcg": lambda: mk.tasks.ndcg(logits, jnp.eye(3)[labels]),
        "ppl": lambda: mk.tasks.perplexity(jnp.zeros((1, 2, 3)), jnp.array([[0, 2]])),
    }
    for name, item in items.items():
        eager = mk.MetricStore().update({name: item()}).compute()
        jitted = jax.jit(lambda item=item, name=name: mk.MetricStore().update({name: item()}))()
        assert jitted.compute() == eager, name
