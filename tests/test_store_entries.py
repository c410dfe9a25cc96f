"""KeyMetrics views and stacking mappings of them back into groups (without copies)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metricskit as mk
from metricskit._engine.store import KeyMetrics, Row, Whole, stack


def _store(**step):
    return mk.MetricStore(default_log_modes=["mean", "max"]).update(step)


def test_views_copy_nothing_until_a_mode_is_read():
    store = _store(a=1.0, b=2.0)
    entry = store["b"]
    assert all(isinstance(s, Row) for s in entry.sources().values())
    assert float(mk.exact.to_host(entry["mean"].total)) == 2.0 and len(entry) == 2
    assert repr(entry) == "KeyMetrics(max, mean)"


def test_key_metrics_are_pytrees_that_keep_rows_under_jit():
    store = _store(a=1.0, b=2.0)
    entry = jax.jit(lambda e: e)(store["a"])
    assert isinstance(entry.sources()["mean"], Row) and entry.sources()["mean"].row == 0
    assert float(mk.exact.to_host(entry["max"].value)) == 1.0


def test_stacking_merged_stores_takes_whole_groups_and_gathers_the_rest():
    one, two = _store(a=1.0, b=2.0), _store(a=3.0, c=4.0)
    layout, stacked, passthrough = stack(dict(one.items()))
    assert layout == one.layout and all(
        x is y for x, y in zip(jax.tree.leaves(stacked), jax.tree.leaves(one.metrics), strict=True)
    )
    merged = {f"one_{k}": v for k, v in one.items()} | {f"two_{k}": v for k, v in two.items()}
    merged["step"] = 7
    layout, stacked, passthrough = stack(merged)
    assert passthrough == {"step": 7}
    store = mk.MetricStore()._evolve(stacked, layout)
    assert store.compute()["two_c_max"] == 4.0 and store.compute()["one_b_mean"] == 2.0
    reordered = {"b": one["b"], "a": one["a"]}
    assert mk.MetricStore.from_mapping(reordered).compute() == one.compute()


def test_plain_per_mode_dicts_and_own_states_are_accepted_and_checked():
    state = mk.MeanMetric.empty(mk.Spec((), "float32"), mk.Spec((), "int32"))
    state = state.update(jnp.float32(3.0), jnp.int32(2))
    store = mk.MetricStore.from_mapping({"x": {"mean": state}, "y": KeyMetrics.of({"mean": state})})
    assert store.compute() == {"x_mean": 1.5, "y_mean": 1.5}
    assert isinstance(KeyMetrics.of({"mean": state}).sources()["mean"], Whole)
    with pytest.raises(TypeError, match=r"metrics\['x'\]\['max'\] is a MeanMetric"):
        mk.MetricStore.from_mapping({"x": {"max": state}})
    with pytest.raises(TypeError, match=r"'x'.*one key's metrics"):
        stack({"x": {"mean": 1.0}})
    host = jax.device_get(state)
    assert isinstance(host.total.hi, np.ndarray)
    assert mk.MetricStore.from_mapping({"h": {"mean": host}}).compute() == {"h_mean": 1.5}


def test_an_entry_with_an_unknown_log_mode_is_refused_naming_the_key():
    from metricskit.functional import aggregate_metrics

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
