"""Aggregating evaluation batches on the host, through aggregate_metrics: lazy appends, folding."""

from __future__ import annotations

import copy
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import metricskit as mk
from metricskit import exact
from metricskit.functional import aggregate_metrics, get_metrics, update_metrics


@jax.jit
def _eval_step(values, counts):
    return update_metrics(
        None,
        {
            "ll": {"value": values, "count": counts, "log_modes": ["single_noreduce_wcount"]},
            "nll": {"value": values, "log_modes": ["single_noreduce"]},
            "loss": {"value": values.sum(), "count": values.size, "log_modes": ["mean"]},
        },
    )


def _batches(rng, sizes=(5, 5, 3)):
    return [
        (jnp.asarray(rng.normal(size=n), jnp.float32), jnp.asarray(rng.integers(1, 4, size=n)))
        for n in sizes
    ]


def _delete(entry):
    """Delete a batch's device arrays (as donating it to a jitted function would)."""
    for leaf in jax.tree.leaves(entry):
        leaf.delete()


def test_appending_records_batches_without_moving_them(rng):
    batches = _batches(rng)
    steps = [_eval_step(v, c) for v, c in batches]
    aggregated = None
    for step in steps:
        aggregated = aggregate_metrics(aggregated, step)
    host = get_metrics(aggregated, reset_metrics=False)[1]
    values, counts = host["ll_single_noreduce_wcount"]  # all three batches, appended
    np.testing.assert_array_equal(values, np.concatenate([np.asarray(v) for v, _ in batches]))
    np.testing.assert_array_equal(counts, np.concatenate([np.asarray(c) for _, c in batches]))
    assert host["loss_mean"] == pytest.approx(np.asarray(batches[-1][0], np.float64).mean())
    # nothing was moved or concatenated when the batches were aggregated: an aggregate not
    # yet read still needs each batch's device arrays, per-sample or not
    for key, mode, batch in (("ll", "single_noreduce_wcount", 1), ("loss", "mean", -1)):
        steps = [_eval_step(v, c) for v, c in batches]
        aggregated = None
        for step in steps:
            aggregated = aggregate_metrics(aggregated, step)
        _delete(steps[batch][key])
        with pytest.raises(ValueError, match=rf"batch of metric '{key}' \(log mode '{mode}'\)"):
            get_metrics(aggregated)


def test_bulk_folding_is_bit_identical_to_appending_one_by_one(rng):
    batches = _batches(rng, (4, 1, 7, 3, 3))
    lazy, eager = None, None
    for v, c in batches:
        lazy = aggregate_metrics(lazy, _eval_step(v, c))
        eager = aggregate_metrics(eager, _eval_step(v, c))
        get_metrics(eager, reset_metrics=False)  # forces a fold after every batch
    a, b = get_metrics(lazy)[1], get_metrics(eager)[1]
    for name in a:
        for x, y in zip(jax.tree.leaves(a[name]), jax.tree.leaves(b[name]), strict=True):
            assert np.asarray(x).tobytes() == np.asarray(y).tobytes(), name
    values, counts = a["ll_single_noreduce_wcount"]
    np.testing.assert_array_equal(values, np.concatenate([np.asarray(v) for v, _ in batches]))
    np.testing.assert_array_equal(counts, np.concatenate([np.asarray(c) for _, c in batches]))
    assert int(exact.to_host(lazy["nll"]["single_noreduce"].count)) == 5  # one per step


def test_earlier_results_never_change_and_branches_are_independent(rng):
    b1, b2, b3, b4 = _batches(rng, (2, 2, 2, 2))
    first = aggregate_metrics(aggregate_metrics(None, _eval_step(*b1)), _eval_step(*b2))
    snapshot = copy.deepcopy(get_metrics(first, reset_metrics=False)[1]["nll_single_noreduce"])
    left = aggregate_metrics(first, _eval_step(*b3))  # extends the shared list
    right = aggregate_metrics(first, _eval_step(*b4))  # a branch: copies the list prefix
    np.testing.assert_array_equal(get_metrics(first)[1]["nll_single_noreduce"], snapshot)
    np.testing.assert_array_equal(
        get_metrics(left)[1]["nll_single_noreduce"], np.r_[snapshot, np.asarray(b3[0])]
    )
    np.testing.assert_array_equal(
        get_metrics(right)[1]["nll_single_noreduce"], np.r_[snapshot, np.asarray(b4[0])]
    )


def test_host_states_of_a_store_are_read_only_numpy(rng):
    store = mk.MetricStore(default_log_modes=["mean", "max"]).update({"a": 1.0, "b": 2.0})
    aggregated = aggregate_metrics({}, store)
    moved = [aggregated[key][mode] for key in ("a", "b") for mode in ("max", "mean")]
    assert all(isinstance(x, np.ndarray) and not x.flags.writeable for x in jax.tree.leaves(moved))
    assert float(exact.to_host(moved[3].total)) == 2.0  # b (max, mean): mean
    assert float(exact.to_host(moved[0].value)) == 1.0  # a: max
    with pytest.raises(ValueError, match="read-only"):
        moved[3].total.hi[...] = 0


def _ll(metrics, values, modes=("single_noreduce", "single_noreduce_wcount")):
    return update_metrics(metrics, {"ll": {"value": values, "log_modes": list(modes)}})


def test_an_empty_per_sample_batch_adds_no_samples_to_an_aggregate():
    # a step store reset by get_metrics (or zero-filled from eval_shape) holds no samples
    reset, _ = get_metrics(_ll(None, jnp.array([1.0, 2.0])))
    zero_filled = jax.tree.map(jnp.zeros_like, _ll(None, jnp.array([1.0, 2.0])))
    for empty in (reset, zero_filled):
        agg = aggregate_metrics(aggregate_metrics({}, empty), _ll(empty, jnp.array([3.0, 4.0])))
        host = get_metrics(agg)[1]
        np.testing.assert_array_equal(host["ll_single_noreduce"], [3.0, 4.0])
        np.testing.assert_array_equal(host["ll_single_noreduce_wcount"][0], [3.0, 4.0])
        np.testing.assert_array_equal(host["ll_single_noreduce_wcount"][1], [1, 1])
        # in the middle and at the end too
        agg = aggregate_metrics({}, _ll(None, jnp.array([5.0])))
        agg = aggregate_metrics(aggregate_metrics(agg, empty), _ll(None, jnp.array([6.0])))
        agg = aggregate_metrics(agg, empty)
        np.testing.assert_array_equal(get_metrics(agg)[1]["ll_single_noreduce"], [5.0, 6.0])
    # only empty batches: an empty key (reported 0.0 with the usual warning)
    assert get_metrics(aggregate_metrics({}, reset))[1]["ll_single_noreduce"] == 0.0


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (np.array([1.0, 2.0]), np.array([[3.0, 4.0], [5.0, 6.0]])),
        (np.ones((2, 3)), np.ones((2, 4))),
        (np.array([[1.0, 2.0]]), np.array([1.0, 2.0])),
    ],
)
def test_per_sample_batches_of_another_sample_shape_are_refused_at_aggregate(first, second):
    agg = aggregate_metrics({}, _ll(None, first, ["single_noreduce"]))
    with pytest.raises(ValueError, match=r"aggregate_metrics: .* metric 'll' differ beyond"):
        aggregate_metrics(agg, _ll(None, second, ["single_noreduce"]))
    # a smaller last batch is fine
    smaller = aggregate_metrics(agg, _ll(None, first[:1], ["single_noreduce"]))
    assert len(get_metrics(smaller)[1]["ll_single_noreduce"]) == len(first) + 1


def test_runs_of_exact_per_sample_states_fold_both_words_of_each_field(rng):
    # int64 beyond int32 and float64 values (with x64 off: Words and double-float Pairs,
    # two leaves per field) appended over several eager steps: each part moved and folded
    big = [rng.integers(-(2**40), 2**40, size=n) for n in (3, 1, 4)]
    fine = [1.0 + rng.normal(size=n) * 1e-12 for n in (3, 1, 4)]
    aggregated = None
    for ints, floats in zip(big, fine, strict=True):
        step = update_metrics(
            None,
            {
                "ids": {"value": ints, "log_modes": ["single_noreduce"]},
                "ll": {"value": floats, "count": ints, "log_modes": ["single_noreduce_wcount"]},
            },
        )
        aggregated = aggregate_metrics(aggregated, step)
    host = get_metrics(aggregated)[1]
    np.testing.assert_array_equal(host["ids_single_noreduce"], np.concatenate(big))
    values, counts = host["ll_single_noreduce_wcount"]
    np.testing.assert_array_equal(counts, np.concatenate(big))
    np.testing.assert_allclose(values, np.concatenate(fine), rtol=2.0**-46, atol=0)
    assert np.asarray(values).dtype == np.float64 and np.asarray(counts).dtype == np.int64


def test_pending_batches_are_kept_as_their_arrays_without_copies(rng):
    batches = _batches(rng, (3, 2))
    for deleted in range(len(batches)):
        aggregated, steps = None, []
        for v, c in batches:
            steps.append(_eval_step(v, c))
            aggregated = aggregate_metrics(aggregated, steps[-1])
        # every pending batch is referenced, not copied or moved: deleting one's arrays
        # (the whole group: every key's rows) is seen when the aggregate is first read
        _delete(steps[deleted]["nll"])
        with pytest.raises(ValueError, match=r"metric 'nll' \(log mode 'single_noreduce'\)"):
            get_metrics(aggregated)
    aggregated = None
    for v, c in batches:
        aggregated = aggregate_metrics(aggregated, _eval_step(v, c))
    np.testing.assert_array_equal(
        get_metrics(aggregated)[1]["nll_single_noreduce"],
        np.concatenate([np.asarray(v) for v, _ in batches]),
    )


def test_a_key_that_moves_between_rows_and_a_store_as_the_earlier_aggregate_fold_exactly(rng):
    # batch 1 has keys "a" and "z" in one group (z is row 1); batch 2 only "z" (row 0): runs
    # of one batch each; the first aggregate is a store (its rows are kept as they come)
    def step(keys, values):
        return update_metrics(
            None, {k: {"value": values, "log_modes": ["single_noreduce"]} for k in keys}
        )

    parts = [rng.normal(size=n).astype(np.float32) for n in (2, 3, 1)]
    aggregated = step(["a", "z"], jnp.asarray(parts[0]))
    aggregated = aggregate_metrics(aggregated, step(["z"], jnp.asarray(parts[1])))
    aggregated = aggregate_metrics(aggregated, step(["a", "z"], jnp.asarray(parts[2])))
    np.testing.assert_array_equal(
        get_metrics(aggregated)[1]["z_single_noreduce"], np.concatenate(parts)
    )
    assert aggregated["z"]["single_noreduce"].value.shape == (6,)


def test_a_fully_padded_batch_is_dropped_and_reported_with_its_count(caplog):
    def step(values, counts):
        item = {"value": np.float32(values), "count": np.int32(counts)}
        return update_metrics(None, {"ll": {**item, "log_modes": ["single_noreduce_wcount"]}})

    agg = {}
    for values, counts in [([1, 2], [1, 1]), ([0, 0], [0, 0]), ([0, 0], [0, 0]), ([3], [1])]:
        agg = aggregate_metrics(agg, step(values, counts))
    with caplog.at_level("WARNING", logger="metricskit"):
        values, counts = get_metrics(agg)[1]["ll_single_noreduce_wcount"]
    np.testing.assert_array_equal(values, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(counts, [1, 1, 1])
    assert "aggregate_metrics: 2 parts of metric 'll' (log mode 'single_noreduce_wcount')" in (
        caplog.text
    )
    # a batch with no samples at all loses nothing: no warning
    caplog.clear()
    agg = aggregate_metrics(aggregate_metrics({}, step([], [])), step([4], [1]))
    with caplog.at_level("WARNING", logger="metricskit"):
        assert get_metrics(agg)[1]["ll_single_noreduce_wcount"][0].tolist() == [4.0]
    assert "held only zeros" not in caplog.text


@pytest.mark.parametrize("transform", ["jit", "eval_shape"])
def test_an_aggregate_first_read_inside_a_trace_is_moved_eagerly(rng, transform):
    # the aggregate's batches are concrete: reading them inside a trace moves them now
    batches = _batches(rng, (3, 2))
    agg = None
    for v, c in batches:
        agg = aggregate_metrics(agg, _eval_step(v, c))

    def read(x):
        store = mk.MetricStore.from_mapping(agg)
        return store.update({"loss": {"value": x, "log_modes": ["mean"]}})

    if transform == "jit":
        out = jax.jit(read)(jnp.float32(1.0)).compute()
        expected = np.concatenate([np.asarray(v) for v, _ in batches])
        np.testing.assert_array_equal(out["nll_single_noreduce"], expected)
    else:
        shapes = jax.eval_shape(read, jnp.float32(1.0))  # an abstract store: per-key views too
        assert shapes["nll"]["single_noreduce"].value.shape == (5,)
        assert shapes["nll"]["single_noreduce"].value.dtype == np.float32


@pytest.mark.parametrize(
    "steps",
    [
        [{"a": 2, "b": 3}, {"a": 2, "b": 2}],  # a's group grows (b joins it) at the same row
        [{"a": 2}, {"a": 2, "b": 2}, {"a": 2}],  # b comes and goes
        [{"a": 2, "b": 2}, {"a": 2}, {"a": 1, "b": 1}],
    ],
)
def test_keys_whose_group_changes_size_between_batches_fold_exactly(rng, steps):
    agg, expected = {}, {}
    for sizes in steps:
        values = {k: rng.normal(size=n).astype(np.float32) for k, n in sizes.items()}
        # a key absent from a batch is not carried over (as the documented module)
        expected = {k: [*expected.get(k, []), v] for k, v in values.items()}
        step = {
            k: {"value": jnp.asarray(v), "log_modes": ["single_noreduce"]}
            for k, v in values.items()
        }
        agg = aggregate_metrics(agg, update_metrics(None, step))
    host = get_metrics(agg)[1]
    for k in steps[-1]:
        np.testing.assert_array_equal(host[f"{k}_single_noreduce"], np.concatenate(expected[k]))


def test_a_per_sample_aggregate_is_read_inside_jit_and_scan(rng):
    parts = [rng.normal(size=n).astype(np.float32) for n in (2, 1)]
    agg = {}
    for p in parts:
        step = {"k": {"value": jnp.asarray(p), "log_modes": ["single_noreduce"]}}
        agg = aggregate_metrics(agg, update_metrics(None, step))
    seen = []
    jax.jit(lambda x: seen.append(get_metrics(agg, reset_metrics=False)[1]) or x)(1.0)
    jax.lax.scan(lambda c, x: (seen.append(get_metrics(agg, False)[1]) or c, x), 0.0, jnp.ones(2))
    for host in seen:
        np.testing.assert_array_equal(host["k_single_noreduce"], np.concatenate(parts))


def test_a_store_donated_before_the_aggregate_is_read_is_a_clear_error():
    example = {"ll": {"value": jnp.zeros(4), "log_modes": ["single_noreduce"]}, "loss": 0.0}

    @functools.partial(jax.jit, donate_argnums=0)
    def step(m, x):
        return m.update({"ll": {"value": x, "log_modes": ["single_noreduce"]}, "loss": x.sum()})

    m = step(mk.MetricStore().init(example), jnp.arange(4.0))
    read_first = aggregate_metrics({}, m)
    assert get_metrics(read_first, reset_metrics=False)[1]["loss"] == 6.0  # read: then donate
    late = aggregate_metrics({}, m)
    step(m, jnp.zeros(4))  # donates m, whose arrays the aggregate still references
    if any(x.is_deleted() for x in jax.tree.leaves(m)):  # the backend took the donation
        with pytest.raises(ValueError, match=r"metric '(ll|loss)'.*donated.*get_metrics"):
            get_metrics(late)
    else:
        assert get_metrics(late)[1]["loss"] == 6.0
    assert get_metrics(read_first)[1]["loss"] == 6.0


def test_left_out_parts_are_reported_once_across_branches(caplog):
    def b(values, count):
        step = {"value": jnp.asarray(values), "count": count, "log_modes": ["single_noreduce"]}
        return update_metrics(None, {"k": step})

    agg = aggregate_metrics(aggregate_metrics({}, b([0.0, 0.0], 0)), b([1.0, 2.0], 2))
    with caplog.at_level("WARNING", logger="metricskit"):
        get_metrics(agg, reset_metrics=False)
        assert caplog.text.count("held only zeros") == 1
        for extra in ([3.0], [4.0]):  # two branches of one read aggregate: nothing new
            get_metrics(aggregate_metrics(agg, b(extra, 1)), reset_metrics=False)
        assert caplog.text.count("held only zeros") == 1
        caplog.clear()
        get_metrics(aggregate_metrics(agg, b([0.0], 0)), reset_metrics=False)
    assert "1 part of metric 'k'" in caplog.text
