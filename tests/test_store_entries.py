"""One key's metrics (KeyMetrics) and stores built from mappings of them, without copies."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metricskit as mk
from metricskit.functional import aggregate_metrics, get_metrics


def _store(**step):
    return mk.MetricStore(default_log_modes=["mean", "max"]).update(step)


def _total(metric):
    return float(mk.exact.to_host(metric.total))


def test_views_copy_nothing_until_a_mode_is_read():
    store = _store(a=1.0, b=2.0)
    entry = store["b"]
    assert isinstance(entry, mk.KeyMetrics) and len(entry) == 2 and list(entry) == ["max", "mean"]
    # the view holds the store's stacked groups themselves (every key's rows), not copies
    assert all(x is y for x, y in zip(jax.tree.leaves(entry), jax.tree.leaves(store), strict=True))
    assert jax.tree.leaves(entry)[0].shape == (2,)
    assert _total(entry["mean"]) == 2.0 and np.shape(entry["mean"].total.hi) == ()  # b's row
    assert repr(entry) == "KeyMetrics(max, mean)"


def test_key_metrics_are_pytrees_that_keep_rows_under_jit():
    store = _store(a=1.0, b=2.0)
    for key, value in (("a", 1.0), ("b", 2.0)):
        entry = jax.jit(lambda e: e)(store[key])
        assert isinstance(entry, mk.KeyMetrics) and list(entry) == ["max", "mean"]
        assert all(x.shape[0] == 2 for x in jax.tree.leaves(entry))  # whole groups travel
        assert _total(entry["mean"]) == value  # and the key's row is read from them
        assert float(mk.exact.to_host(entry["max"].value)) == value


def test_stores_of_merged_entries_take_whole_groups_and_gather_the_rest():
    one, two = _store(a=1.0, b=2.0), _store(a=3.0, c=4.0)
    again = mk.MetricStore.from_mapping(dict(one.items()), default_log_modes=["mean", "max"])
    assert jax.tree.structure(again) == jax.tree.structure(one)
    assert all(x is y for x, y in zip(jax.tree.leaves(again), jax.tree.leaves(one), strict=True))
    merged = {f"one_{k}": v for k, v in one.items()} | {f"two_{k}": v for k, v in two.items()}
    store = mk.MetricStore.from_mapping(merged)
    assert list(store) == ["one_a", "one_b", "two_a", "two_c"]
    assert store.compute()["two_c_max"] == 4.0 and store.compute()["one_b_mean"] == 2.0
    assert all(x.shape[0] == 4 for x in jax.tree.leaves(store))  # rows of both, gathered
    # plain values beside the entries pass through
    host = get_metrics({**merged, "step": 7}, reset_metrics=False)[1]
    assert host["step"] == 7 and host == {**store.compute(), "step": 7}
    reordered = {"b": one["b"], "a": one["a"]}
    assert mk.MetricStore.from_mapping(reordered).compute() == one.compute()


def test_plain_per_mode_dicts_and_own_states_are_accepted_and_checked():
    state = mk.MeanMetric.empty(mk.Spec((), "float32"), mk.Spec((), "int32"))
    state = state.update(jnp.float32(3.0), jnp.int32(2))
    own = mk.KeyMetrics.of({"mean": state})
    assert own["mean"] is state  # a state of its own is kept as it is
    store = mk.MetricStore.from_mapping({"x": {"mean": state}, "y": own})
    assert store.compute() == {"x_mean": 1.5, "y_mean": 1.5}
    with pytest.raises(TypeError, match=r"metrics\['x'\]\['max'\] is a MeanMetric"):
        mk.MetricStore.from_mapping({"x": {"max": state}})
    with pytest.raises(TypeError, match=r"'x'.*one key's metrics"):
        mk.MetricStore.from_mapping({"x": {"mean": 1.0}})
    host = jax.device_get(state)
    assert isinstance(host.total.hi, np.ndarray)
    assert mk.MetricStore.from_mapping({"h": {"mean": host}}).compute() == {"h_mean": 1.5}


def test_an_entry_with_an_unknown_log_mode_is_refused_naming_the_key():
    metric = mk.MetricStore().update({"k": 1.0})["k"]["mean_nopostfix"]
    for call in (
        lambda: aggregate_metrics({}, {"val/k": {"meen": metric}}),
        lambda: mk.MetricStore.from_mapping({"val/k": {"meen": metric}}),
    ):
        with pytest.raises(ValueError, match=r"metrics\['val/k'\]: unknown log mode 'meen'"):
            call()


@pytest.mark.parametrize("mode", [3, None, b"mean"])
def test_an_entry_whose_log_mode_is_not_a_string_is_a_type_error(mode):
    metric = mk.MetricStore().update({"k": 1.0})["k"]["mean_nopostfix"]
    with pytest.raises(TypeError, match=r"metrics\['loss'\] has log mode .*names, metric classes"):
        mk.MetricStore.from_mapping({"loss": {mode: metric}})
