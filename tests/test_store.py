"""MetricStore: one compiled call per structure, few leaves, packing, aggregate, conversion."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import SCALAR_MODES, reference

import metricskit as mk


def _scalar_step(k: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    return {f"m{i:04d}": float(x) for i, x in enumerate(rng.normal(size=k))}


TRACES: list[str] = []


@mk.register_metric("store_trace_probe")
class TraceProbe(mk.Metric):
    """A sum whose update records each time it is traced (not each time it runs)."""

    total = mk.state("sum")

    def update(self, value, count):
        TRACES.append("update")
        return self.replace(total=self.total + value)

    def compute(self):
        return self.total


def _probed(step: dict[str, float]) -> dict[str, object]:
    return {**step, "probe": {"value": 1.0, "log_modes": ["store_trace_probe"]}}


def test_eager_update_is_one_compiled_call_per_structure(compiles):
    store = mk.MetricStore(default_log_modes=("mean", "std", "max"))
    store = store.update(_probed(_scalar_step(50, 0)))  # first structure (store grows from empty)
    store = store.update(_probed(_scalar_step(50, 1)))  # steady state structure
    compiles.clear()
    TRACES.clear()
    for seed in range(2, 8):
        store = store.update(_probed(_scalar_step(50, seed)))
    assert compiles == [] and TRACES == []  # the cached compiled call: not even traced again
    store.update(_probed({**_scalar_step(50, 9), "new_key": 1.0}))  # a new structure:
    assert len(compiles) == 1 and "update" in compiles[0]  # exactly one compile
    assert TRACES == ["update"]  # and one trace
    assert store.compute()["probe_store_trace_probe"] == 8.0  # every step was added


def test_jitted_step_after_init_compiles_once():
    store = mk.MetricStore(default_log_modes=SCALAR_MODES).init(
        {"loss": 0.0, "vec": np.zeros(3, np.float32), "n": {"value": 0, "count": 1}}
    )

    @jax.jit
    def step(store, x):
        return store.update({"loss": x, "vec": jnp.full(3, x), "n": {"value": 2, "count": 1}})

    for x in np.linspace(0, 1, 5, dtype=np.float32):
        store = step(store, x)
    store = store.reset()
    for x in np.linspace(0, 1, 5, dtype=np.float32):
        store = step(store, x)
    assert step._cache_size() == 1
    assert store.compute()["loss_mean"] == pytest.approx(0.5)


@pytest.mark.parametrize("k", [100, 1000])
def test_scalar_metrics_share_few_leaves(k):
    store = mk.MetricStore(default_log_modes=("mean", "std", "max")).update(_scalar_step(k, 0))
    leaves = jax.tree.leaves(store)
    # exact accumulators are two leaves each: mean (total hi/lo, count lo/hi), std (count,
    # mean hi/lo, m2 hi/lo), max (value hi/lo, count): 12 leaves whatever k is
    assert len(leaves) == 4 + 5 + 3
    assert {leaf.shape[0] for leaf in leaves} == {k}
    host = store.compute()
    assert len(host) == 3 * k and list(host)[:3] == ["m0000_max", "m0000_mean", "m0000_std"]


def test_keys_group_by_mode_shape_and_dtype():
    store = mk.MetricStore(default_log_modes=["mean"]).update(
        {"a": 1.0, "b": 2.0, "v": np.ones(3), "w": np.ones(3), "i": {"value": 1, "count": 2.5}}
    )
    groups = store.layout.groups
    assert sorted(g.keys for g in groups) == [("a", "b"), ("i",), ("v", "w")]
    (i_group,) = [g for g in groups if g.keys == ("i",)]  # integer values, float counts
    assert dict(i_group.signature.fields)["total"].storage == "words"
    assert dict(i_group.signature.fields)["count"].storage == "pair"
    assert list(store.keys()) == ["a", "b", "i", "v", "w"]


def test_missing_keys_keep_their_state_and_new_keys_join(rng):
    modes = list(SCALAR_MODES)
    store = mk.MetricStore(default_log_modes=modes)
    seen = {"a": [], "b": [], "c": []}
    for step in range(12):
        present = [k for k in seen if rng.random() < 0.6 or (k == "a" and step == 0)]
        values = {k: float(rng.normal()) for k in present}
        for k, v in values.items():
            seen[k].append(v)
        store = store.update(values)
    host = store.compute()
    for key, values in seen.items():
        if not values:
            continue
        for mode in modes:
            name = key if mode == "mean_nopostfix" else f"{key}_{mode}"
            want = float(reference(mode, values, [1] * len(values)))
            assert host[name] == pytest.approx(want, rel=1e-5, abs=1e-6), name


def test_mixed_host_and_device_values_in_one_group():
    store = mk.MetricStore(default_log_modes=["mean", "max"])
    for a, b in [(1.0, 2.0), (3.0, 8.0)]:
        store = store.update({"a": jnp.float32(a), "b": b, "c": np.float32(b)})
    assert store.compute() == {
        "a_max": 3.0,
        "a_mean": 2.0,
        "b_max": 8.0,
        "b_mean": 5.0,
        "c_max": 8.0,
        "c_mean": 5.0,
    }


@pytest.mark.parametrize("split", [1, 4, 9])
def test_aggregate_of_split_streams_equals_whole_stream(split, rng):
    modes = [*SCALAR_MODES, "single_noreduce", "single_noreduce_wcount"]
    values = rng.normal(size=(10, 3)).astype(np.float32)
    counts = rng.integers(1, 4, size=(10, 3)).astype(np.int32)
    parts = [mk.MetricStore(default_log_modes=modes) for _ in range(2)]
    for i, (v, c) in enumerate(zip(values, counts, strict=True)):
        parts[i >= split] = parts[i >= split].update({"x": {"value": v, "count": c}})
    host = parts[0].aggregate(parts[1]).compute()
    for mode in ("mean", "max", "min", "std"):
        want = reference(mode, list(values), list(counts))
        np.testing.assert_allclose(host[f"x_{mode}"], want, rtol=2e-5, atol=1e-6)
    # single: the two partial latest steps add up (parts of one step)
    want_single = (values[split - 1] + values[-1]) / (counts[split - 1] + counts[-1])
    np.testing.assert_allclose(host["x_single"], want_single, rtol=1e-6)
    np.testing.assert_array_equal(host["x_single_noreduce"], np.r_[values[split - 1], values[-1]])
    _, got_c = host["x_single_noreduce_wcount"]
    np.testing.assert_array_equal(got_c, np.r_[counts[split - 1], counts[-1]])


def test_aggregate_keeps_metrics_present_in_one_store_only():
    a = mk.MetricStore(default_log_modes=["mean", "max"]).update({"x": 1.0, "y": 4.0})
    b = mk.MetricStore(default_log_modes=["mean", "max"]).update({"x": 3.0, "z": -2.0})
    assert a.aggregate(b).compute() == {
        "x_max": 3.0,
        "x_mean": 2.0,
        "y_max": 4.0,
        "y_mean": 4.0,
        "z_max": -2.0,
        "z_mean": -2.0,
    }
    c = mk.MetricStore(default_log_modes=["mean"]).update({"x": np.ones(2)})
    with pytest.raises(ValueError, match=r"'x'.*cannot be combined"):
        a.aggregate(c)


def test_a_store_is_a_mapping_and_round_trips_through_dicts_without_copies():
    store = mk.MetricStore(default_log_modes=["mean", "single_noreduce"]).update(
        {"a": 1.0, "b": np.arange(3.0), "c": {"value": 2.0, "count": 4}}
    )
    assert list(store) == ["a", "b", "c"] and len(store) == 3 and "b" in store
    assert sorted(store["b"]) == ["mean", "single_noreduce"] and "x" not in store
    again = mk.MetricStore.from_mapping(dict(store.items()))
    assert again.layout == store.layout
    for x, y in zip(jax.tree.leaves(again), jax.tree.leaves(store), strict=True):
        assert x is y  # rows that still lie in order are taken as they are
    assert repr(again).startswith("MetricStore(4 groups: a_mean, a_single_noreduce, b_mean")
    with pytest.raises(TypeError, match=r"'a'.*one key's metrics"):
        mk.MetricStore.from_mapping({"a": {"mean": 3.0}})
    with pytest.raises(KeyError):
        store["missing"]


def test_dtype_changes_cast_safely_or_fail():
    store = mk.MetricStore().update({"x": 1})  # int value: integer input
    with pytest.raises(TypeError, match=r"'x'.*holds integers.*float64.*write 0\.0, not 0"):
        store.update({"x": 2.5})
    store = mk.MetricStore().update({"x": 1.5}).update({"x": 2})  # int into a float key: fine
    assert store.compute() == {"x": 1.75}
    with pytest.raises(TypeError, match=r"'x'.*holds integers.*count is float64"):
        mk.MetricStore().update({"x": 1.0}).update({"x": {"value": 1.0, "count": 0.5}})


def test_stores_copy_deepcopy_and_pickle_like_frozen_dicts():
    # trainer code deep-copies state (callbacks, best-checkpoint trackers) and pickles it
    import copy
    import pickle

    store = mk.MetricStore(default_log_modes=("mean", "max")).update(
        {"loss": 2.0, "ll": {"value": jnp.arange(3.0), "log_modes": ["single_noreduce"]}}
    )
    store = store.update({"loss": jnp.float32(4.0), "ll": {"value": jnp.arange(3.0) + 1}})
    want = store.compute()
    for clone in (
        copy.copy(store),
        copy.deepcopy(store),
        pickle.loads(pickle.dumps(store)),
        copy.deepcopy({"metrics": store})["metrics"],
    ):
        assert isinstance(clone, mk.MetricStore)
        assert jax.tree.structure(clone) == jax.tree.structure(store)
        np.testing.assert_equal(clone.compute(), want)
        np.testing.assert_equal(clone.update({"loss": 6.0}).compute()["loss_max"], 6.0)


def test_a_store_refuses_setting_and_deleting_attributes():
    store = mk.MetricStore().update({"x": 1.0})
    with pytest.raises(AttributeError, match="immutable"):
        store.metrics = ()
    with pytest.raises(AttributeError, match="immutable: cannot delete 'metrics'"):
        del store.metrics
    assert store.compute() == {"x": 1.0}


@pytest.mark.parametrize("jitted", [False, True])
def test_a_reset_evaluation_store_grown_by_aggregate_holds_no_old_samples(jitted):
    # the class API's evaluation loop: aggregate per-batch stores, reset each epoch
    modes = ["single_noreduce", "single_noreduce_wcount"]

    def update(store, values):
        item = {"value": values, "count": jnp.full(values.shape, 2), "log_modes": modes}
        return store.update({"ll": item})

    step = jax.jit(update) if jitted else update
    evaluated = None
    for epoch in range(3):
        for n in (4, 4, 2):
            stored = step(mk.MetricStore(), jnp.arange(n, dtype=jnp.float32) + 10 * epoch)
            evaluated = stored if evaluated is None else evaluated.aggregate(stored)
        got = evaluated.compute()
        want = np.concatenate([np.arange(n) + 10.0 * epoch for n in (4, 4, 2)])
        np.testing.assert_array_equal(got["ll_single_noreduce"], want)
        np.testing.assert_array_equal(got["ll_single_noreduce_wcount"][0], want)
        np.testing.assert_array_equal(got["ll_single_noreduce_wcount"][1], np.full(10, 2))
        evaluated = evaluated.reset()
    # an empty side adds nothing, on either side
    one = mk.MetricStore().update({"ll": {"value": jnp.array([7.0]), "log_modes": modes}})
    for combined in (evaluated.aggregate(one), one.aggregate(one.reset())):
        np.testing.assert_array_equal(combined.compute()["ll_single_noreduce"], 7.0)


def test_a_batched_store_is_refused_by_compute_not_read_from_its_first_member():
    stores = jax.vmap(lambda x: mk.MetricStore().update({"loss": x}))(jnp.arange(1.0, 5.0))
    with pytest.raises(ValueError, match=r"has shape \(4, .*vmap.*x\[i\]"):
        stores.compute()
    member = jax.tree.map(lambda x: x[2], stores)
    assert member.compute() == {"loss": 3.0}


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
def test_a_pair_value_is_a_float64_value_in_its_travelling_form(use_jit):
    """A device value beyond float32 (a count past 2^24, a float64-precise sum) given as an
    exact.Pair of float32 parts is summed exactly, beside plain float keys of the same shape."""
    big = float(2**24 + 3)
    hi = np.float32(big)
    pair = mk.exact.Pair(jnp.asarray(hi), jnp.asarray(np.float32(big - float(hi))))

    def step(store, pair):
        return store.update({
            "exact": {"value": pair, "log_modes": ["mean", "max"]},
            "plain": {"value": jnp.float32(0.5), "log_modes": ["mean", "max"]},
        })  # fmt: skip

    step = jax.jit(step) if use_jit else step
    store = step(step(mk.MetricStore(), pair), pair)
    host = store.compute()
    assert host["exact_mean"] == big and host["exact_max"] == big and host["plain_mean"] == 0.5
    with pytest.raises(TypeError, match=r"count of metric 'x' is a Pair; only a value"):
        mk.MetricStore().update({"x": {"value": 1.0, "count": pair}})
    with pytest.raises(TypeError, match=r"float32 hi and lo arrays of one shape"):
        mk.MetricStore().update({"x": mk.exact.Pair(jnp.zeros(2), jnp.zeros(3))})
    with pytest.raises(TypeError, match=r"float32 hi and lo"):
        mk.MetricStore().update({"x": mk.exact.Pair(jnp.zeros(2, jnp.int32), jnp.zeros(2))})
