"""The reduction table: one row per reduction, each operation checked on JAX and NumPy."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from metricskit import exact
from metricskit.metric import REDUCTIONS


@pytest.mark.parametrize("xp", [jnp, np], ids=["jax", "numpy"])
def test_combine_of_every_row(xp):
    a, b = xp.asarray([1.0, 5.0]), xp.asarray([3.0, 2.0])
    expected = {
        "sum": [4.0, 7.0],
        "max": [3.0, 5.0],
        "min": [1.0, 2.0],
        "concat": [1.0, 5.0, 3.0, 2.0],
        "last": [3.0, 2.0],
    }
    for name, want in expected.items():
        combine = REDUCTIONS[name].combine
        assert combine is not None
        np.testing.assert_array_equal(combine(xp, a, b, 0), want)
    assert REDUCTIONS["merge"].combine is None
    with pytest.raises(NotImplementedError, match="merge"):
        REDUCTIONS["merge"].fold_stacked(None, np.stack([np.asarray(a), np.asarray(b)]))


def test_exact_accumulators_combine_exactly():
    words = exact.split_int(np.array([2**40 + 3, -5]))
    total = REDUCTIONS["sum"].combine(np, words, words, 0)
    np.testing.assert_array_equal(exact.to_host(total), [2 * (2**40 + 3), -10])
    big, tiny = exact.split_float(np.array([1e8]))[0], exact.split_float(np.array([1e-3]))[0]
    out = REDUCTIONS["sum"].combine(np, big, tiny, 0)
    assert float(exact.to_host(out)[0]) == pytest.approx(1e8 + 1e-3, rel=1e-15)
    assert REDUCTIONS["max"].combine(np, big, tiny, 0).hi[0] == np.float32(1e8)


@pytest.mark.parametrize("name", ["sum", "max", "min", "concat", "last"])
def test_folding_stacked_parts_is_bit_identical_to_combining_one_by_one(name, rng):
    parts = [rng.normal(size=(2, 3)).astype(np.float32) for _ in range(7)]
    row = REDUCTIONS[name]
    one_by_one = parts[0]
    for p in parts[1:]:
        one_by_one = row.combine(np, one_by_one, p, 0)
    for got in (
        row.fold_stacked(None, np.stack(parts)),
        row.fold_stacked(parts[0], np.stack(parts[1:])),  # after an earlier result
    ):
        assert np.asarray(got).tobytes() == np.asarray(one_by_one).tobytes()
    ints = [rng.integers(-(2**31), 2**31, size=3).astype(np.int32) for _ in range(5)]
    if name == "sum":  # integer sums wrap alike in any order
        want = ints[0]
        for p in ints[1:]:
            want = want + p
        np.testing.assert_array_equal(row.fold_stacked(None, np.stack(ints)), want)


def _stacked(parts):
    return type(parts[0])(*(np.stack([getattr(p, f) for p in parts]) for f in ("hi", "lo")))


def test_exact_sums_fold_without_overflow_and_pairs_in_order():
    words = [exact.split_int(np.array([2**29 + 1, 2**29])) for _ in range(100)]
    stacked = exact.Words(np.stack([w.lo for w in words]), np.stack([w.hi for w in words]))
    total = REDUCTIONS["sum"].fold_stacked(None, stacked)
    np.testing.assert_array_equal(exact.to_host(total), [100 * (2**29 + 1), 100 * 2**29])
    pairs = [exact.split_float(np.array([x]))[0] for x in (1e8, 1e-3, -1e8, 2e-3)]
    one_by_one = pairs[0]
    for p in pairs[1:]:
        one_by_one = exact.combine(one_by_one, p, np)
    got = REDUCTIONS["sum"].fold_stacked(None, _stacked(pairs))
    assert exact.to_host(got).tobytes() == exact.to_host(one_by_one).tobytes()


def test_collectives_exist_for_plain_fields_only():
    assert REDUCTIONS["sum"].collective is not None and REDUCTIONS["concat"].collective is not None
    assert REDUCTIONS["last"].collective is None and REDUCTIONS["merge"].collective is None
    pair = exact.split_float(np.array([1.0]))[0]
    assert REDUCTIONS["sum"].collective(pair, "data", 1) is None  # exact: gathered and folded
