"""Host appending through capacity-doubling buffers: same results, earlier results untouched."""

from __future__ import annotations

from typing import ClassVar

import attrs
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typing_extensions import Self

import metricskit as mk
from metricskit import buffers
from metricskit.functional import aggregate_metrics, get_metrics, update_metrics


@pytest.mark.parametrize("axis", [0, 1])
def test_append_equals_concatenate_and_never_changes_earlier_results(axis, rng):
    parts = [rng.normal(size=(3, n) if axis == 1 else (n, 3)) for n in (1, 4, 2, 7, 3, 5)]
    results, snapshots = [parts[0]], [parts[0].copy()]
    for part in parts[1:]:
        results.append(buffers.append(results[-1], part, axis))
        snapshots.append(results[-1].copy())
    for i, (result, snapshot) in enumerate(zip(results, snapshots, strict=True)):
        np.testing.assert_array_equal(result, snapshot)
        np.testing.assert_array_equal(result, np.concatenate(parts[: i + 1], axis=axis))


def test_appends_reuse_one_buffer_until_it_is_full():
    out = np.zeros(1)
    owners = set()
    for _ in range(1000):
        out = buffers.append(out, np.ones(1), axis=0)
        owners.add(id(out.base))
    assert out.shape == (1001,) and out.sum() == 1000
    assert len(owners) <= 12  # capacity grows 1.5x: ~log1.5(1001 / 16) + 1 buffers, not 1000


def test_appending_to_an_older_result_branches_without_touching_the_newer_one():
    a = buffers.append(np.zeros(1), np.ones(1), axis=0)
    b = buffers.append(a, np.full(1, 2.0), axis=0)
    c = buffers.append(a, np.full(1, 3.0), axis=0)  # a's buffer is filled past a: copy
    assert b.tolist() == [0.0, 1.0, 2.0] and c.tolist() == [0.0, 1.0, 3.0]
    assert not np.shares_memory(b, c)


def test_appending_to_a_copy_or_a_slice_of_the_latest_result_copies():
    a = buffers.append(np.zeros(1), np.ones(1), axis=0)
    b = buffers.append(a[:1], np.full(1, 2.0), axis=0)  # a view of a, not a itself
    c = buffers.append(a, np.full(1, 3.0), axis=0)
    assert b.tolist() == [0.0, 2.0] and c.tolist() == [0.0, 1.0, 3.0]
    assert a.tolist() == [0.0, 1.0]


def test_dropped_results_leave_no_bookkeeping_behind():
    before = len(buffers._TIPS)
    out = buffers.append(np.zeros(1), np.ones(1), axis=0)
    for _ in range(50):
        out = buffers.append(out, np.ones(1), axis=0)
    assert len(buffers._TIPS) == before + 1
    del out
    assert len(buffers._TIPS) == before


def test_dtype_promotion_copies():
    a = buffers.append(np.zeros(1, np.int32), np.ones(1, np.int32), axis=0)
    b = buffers.append(a, np.full(1, 0.5), axis=0)
    assert b.dtype == np.float64 and b.tolist() == [0.0, 1.0, 0.5]


def test_aggregate_metrics_over_many_batches(rng):
    batches = rng.normal(size=(300, 4)).astype(np.float32)
    aggregated = {}
    for batch in batches:
        step = update_metrics(None, {"ll": {"value": batch, "log_modes": ["single_noreduce"]}})
        aggregated = aggregate_metrics(aggregated, step)
    np.testing.assert_array_equal(get_metrics(aggregated)[1]["ll_single_noreduce"], batches.ravel())


def noreduce_batch(values, counts=None):
    item = {"value": values, "log_modes": ["single_noreduce_wcount"]}
    if counts is not None:
        item["count"] = counts
    weight = np.float32(0.1) * values.size  # float counts: summed in order, as one by one
    return update_metrics(
        None,
        {
            "ll": item,
            "n": {"value": values.sum(), "count": 2.5},
            "w": {"value": values, "count": weight, "log_modes": ["single_noreduce"]},
        },
    )


def appended_one_by_one(batches):
    """Appending with every intermediate store used at once (no deferred batches)."""
    aggregated = {}
    for batch in batches:
        aggregated = aggregate_metrics(aggregated, batch)
        aggregated.metrics  # noqa: B018 - combines the pending batch now
    return aggregated


def deferred_matching_one_by_one(batches):
    """The deferred aggregate of ``batches``, after checking it bit for bit against appending
    them one by one."""
    deferred = {}
    for batch in batches:
        deferred = aggregate_metrics(deferred, batch)
    eager = appended_one_by_one(batches)
    for x, y in zip(jax.tree.leaves(deferred), jax.tree.leaves(eager), strict=True):
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
    return deferred


def test_deferred_appending_is_bit_identical_to_appending_one_by_one(rng):
    batches = [
        noreduce_batch(
            rng.normal(size=5).astype(np.float32), rng.uniform(0.1, 3, size=5).astype(np.float32)
        )
        for _ in range(40)
    ]
    deferred = deferred_matching_one_by_one(batches)
    values, counts = get_metrics(deferred)[1]["ll_single_noreduce_wcount"]
    np.testing.assert_array_equal(
        values,
        np.concatenate([np.asarray(b.compute()["ll_single_noreduce_wcount"][0]) for b in batches]),
    )
    assert counts.shape == values.shape


def test_branching_from_an_older_aggregate_and_using_it_inside_jit(rng):
    parts = [noreduce_batch(rng.normal(size=3).astype(np.float32)) for _ in range(4)]
    base = aggregate_metrics(aggregate_metrics({}, parts[0]), parts[1])
    left = aggregate_metrics(base, parts[2])
    right = aggregate_metrics(base, parts[3])
    expect = [
        np.concatenate([p.compute()["ll_single_noreduce_wcount"][0] for p in ps])
        for ps in ((parts[0], parts[1], parts[2]), (parts[0], parts[1], parts[3]))
    ]
    np.testing.assert_array_equal(right.compute()["ll_single_noreduce_wcount"][0], expect[1])
    np.testing.assert_array_equal(left.compute()["ll_single_noreduce_wcount"][0], expect[0])
    doubled = jax.jit(lambda s: jax.tree.map(lambda x: x * 2, s))(left)  # flattening combines
    np.testing.assert_array_equal(doubled.compute()["ll_single_noreduce_wcount"][0], 2 * expect[0])
    np.testing.assert_array_equal(base.compute()["ll_single_noreduce_wcount"][0], expect[0][:6])


def test_a_thousand_deferred_batches_combine_without_deep_recursion(rng):
    batch = noreduce_batch(np.arange(4, dtype=np.float32))
    aggregated = {}
    for _ in range(3000):
        aggregated = aggregate_metrics(aggregated, batch)
    values, counts = get_metrics(aggregated)[1]["ll_single_noreduce_wcount"]
    assert values.shape == (12000,) and values.sum() == 3000 * 6 and counts.sum() == 12000


@mk.register_metric("peak_noreduce")
@attrs.frozen(eq=False)
class PeakNoReduce(mk.Metric):
    """Per-sample values (appended across batches) and the largest value seen (a max field)."""

    append_batches: ClassVar[bool] = True
    partial: ClassVar = "concat"

    value: jax.Array = mk.state("concat")
    peak: jax.Array = mk.state("max", empty=float("-inf"))
    steps: jax.Array = mk.state("sum")

    @classmethod
    def empty(cls, value: jax.ShapeDtypeStruct, count: jax.ShapeDtypeStruct) -> Self:
        shape = value.shape or (1,)
        peak = jnp.full((), -jnp.inf, jnp.float32)
        return cls(jnp.zeros(shape, jnp.float32), peak, jnp.zeros((), jnp.int32))

    def update(self, value: jax.Array, count: jax.Array) -> Self:
        value = jnp.atleast_1d(value).astype(jnp.float32)
        peak = jnp.maximum(self.peak, value.max())
        return attrs.evolve(self, value=value, peak=peak, steps=self.steps + 1)

    def compute(self) -> tuple[jax.Array, jax.Array]:
        return self.value, self.peak

    def is_empty(self) -> jax.Array:
        return self.steps == 0


def test_a_user_metric_with_a_max_field_appends_deferred_like_one_by_one(rng):
    batches = [
        update_metrics(None, {"x": {"value": rng.normal(size=3), "log_modes": ["peak_noreduce"]}})
        for _ in range(25)
    ]
    deferred = deferred_matching_one_by_one(batches)
    values, peak = get_metrics(deferred)[1]["x_peak_noreduce"]
    every = np.concatenate([np.asarray(b.compute()["x_peak_noreduce"][0]) for b in batches])
    np.testing.assert_array_equal(values, every)
    assert float(np.asarray(peak)) == every.max()
