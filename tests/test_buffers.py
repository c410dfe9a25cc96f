"""Host appending through capacity-doubling buffers: same results, earlier results untouched."""

from __future__ import annotations

import numpy as np
import pytest

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
