"""Every registered metric (built-in and test-defined) through the public conformance suite."""

from __future__ import annotations

import hypothesis.strategies as st
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import LastNonzero, PowerMean, reference
from hypothesis import given

import metricskit as mk
from metricskit.metric import get_log_mode
from metricskit.testing import (
    check_associative,
    check_empty_is_zeros,
    check_invariants,
    check_metric,
    check_split,
    make_stream,
    partial_kind,
)

REFERENCE_MODES = ["mean", "mean_nopostfix", "single", "max", "min", "std"]


def _is_task_mode(mode: str) -> bool:
    # task modes take packed statistics from their step functions (tests/test_tasks_*.py)
    return get_log_mode(mode).cls.__module__.startswith("metricskit.tasks")


# Fixed at import: other test modules register task modes while the session runs.
_MODES = [
    m for m in mk.registered_modes() if not _is_task_mode(m) and not m.startswith("test_naive")
]


def _modes() -> list[str]:
    assert {"cubic_mean", "last_nonzero"} <= set(_MODES), (PowerMean, LastNonzero)
    return list(_MODES)


def _shapes(mode: str) -> list[tuple[int, ...]]:
    return [(6,)] if partial_kind(mode) == "concat" else [(), (3,)]


@pytest.mark.parametrize("mode", _modes())
def test_every_registered_metric_conforms(mode):
    for shape in _shapes(mode):
        ref = None
        if mode in REFERENCE_MODES:
            ref = lambda v, c, m=mode: reference(m, list(v), list(c))  # noqa: E731
        check_metric(mode, shape=shape, reference=ref)


def _invariant_cases() -> list[tuple[str, tuple[int, ...]]]:
    concat = {m for m in _modes() if partial_kind(m) == "concat"}
    return [(m, s) for m in _modes() for s in ([(2,)] if m in concat else [(), (2,)])]


@pytest.mark.parametrize(("mode", "shape"), _invariant_cases())
def test_shapes_and_dtypes_never_change_and_steps_compile_once(mode, shape):
    # Python float (0-d), NumPy float32, JAX bfloat16 and float32 inputs, checked inside
    check_invariants(mode, shape)


@st.composite
def streams(draw):
    mode = draw(st.sampled_from(_modes()))
    steps = draw(st.integers(3, 12))
    seed = draw(st.integers(0, 2**16))
    if partial_kind(mode) == "stream":
        cuts = sorted(draw(st.sets(st.integers(1, steps - 1), min_size=2, max_size=2)))
    else:
        cuts = [0, 0]
    shape = draw(st.sampled_from([(), (3,)])) if partial_kind(mode) != "concat" else (6,)
    return mode, steps, seed, cuts, shape


@given(streams())
def test_any_split_of_a_stream_aggregates_to_the_whole(case):
    mode, steps, seed, cuts, shape = case
    values, counts = make_stream(mode, shape, steps, seed)
    check_split(mode, values, counts, cuts[:1], rtol=1e-5, atol=1e-5)
    check_split(mode, values, counts, cuts, rtol=1e-5, atol=1e-5)


@given(streams())
def test_aggregate_is_associative(case):
    mode, steps, seed, cuts, shape = case
    values, counts = make_stream(mode, shape, steps, seed)
    check_associative(mode, values, counts, cuts, rtol=1e-6, atol=1e-6)


def test_a_broken_metric_fails_the_suite():
    with pytest.raises(AssertionError):
        check_metric("mean", reference=lambda v, c: v.sum(0) / c.sum() + 1e-3)
    assert np.isfinite(make_stream("mean")[0]).all()


# Metrics that break "all zeros is empty": each must fail the suite, with or without a
# reference (the docs promise the suite catches a running max stuck at the zero fill).
@mk.register_metric("test_naive_max")
class _NaiveMax(mk.Metric):
    peak = mk.state("max")
    count = mk.state("sum", shape="count")

    def update(self, value, count):
        return self.replace(peak=jnp.maximum(self.peak, value), count=self.count + count)

    def compute(self):
        return self.peak


@mk.register_metric("test_naive_min")
class _NaiveMin(mk.Metric):
    low = mk.state("min")
    count = mk.state("sum", shape="count")

    def update(self, value, count):
        return self.replace(low=jnp.minimum(self.low, value), count=self.count + count)

    def compute(self):
        return self.low


@pytest.mark.parametrize("mode", ["test_naive_max", "test_naive_min"])
@pytest.mark.parametrize("with_reference", [False, True])
def test_a_zero_fill_that_wins_an_extremum_fails_the_suite(mode, with_reference):
    ref = None
    if with_reference:
        ref = (lambda v, c: v.max(0)) if mode.endswith("max") else (lambda v, c: v.min(0))
    with pytest.raises(AssertionError, match=r"act as empty|reference on the all-"):
        check_metric(mode, shape=(3,), reference=ref)


def test_the_zero_rule_alone_catches_a_naive_extremum():
    for mode in ("test_naive_max", "test_naive_min"):
        with pytest.raises(AssertionError, match=r"update\(\) lets an empty state's max/min"):
            check_empty_is_zeros(mode, shape=(3,))
