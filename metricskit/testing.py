"""A conformance suite for metrics: run it on your own :class:`~metricskit.Metric` subclass.

Every built-in metric passes :func:`check_metric`; a registered user metric should too. The
checks use a store with one key, so they exercise the metric as users do (stacked, vmapped,
jitted), and compare results with NumPy's ``assert_allclose``.

Examples:
    >>> from metricskit.testing import check_metric
    >>> check_metric("mean", reference=lambda values, counts: values.sum(0) / counts.sum())
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np

from metricskit._engine.store import MetricStore, is_all_zero
from metricskit.metric import (
    Metric,
    Mode,
    Spec,
    get_log_mode,
    per_sample,
    reduction_of,
    state_fields,
)

ModeLike = Mode | type[Metric]
"""A log mode: a registered name, a configured metric or a metric class."""

__all__ = [
    "assert_results_close",
    "check_associative",
    "check_empty_is_zeros",
    "check_invariants",
    "check_jit_matches_eager",
    "check_metric",
    "check_split",
    "make_stream",
    "partial_kind",
]

KEY = "x"


def _signature(tree: Any) -> tuple[Any, list[tuple[Any, ...]]]:
    sig = [
        (np.shape(x), np.asarray(x).dtype, getattr(x, "weak_type", False))
        for x in jax.tree.leaves(tree)
    ]
    return jax.tree.structure(tree), sig


def assert_results_close(
    got: Mapping[str, Any], want: Mapping[str, Any], rtol: float = 1e-5, atol: float = 1e-6
) -> None:
    """Assert two ``compute()`` results have the same names and close values (NaN == NaN).

    Args:
        got: The result under test.
        want: The expected result.
        rtol: Relative tolerance.
        atol: Absolute tolerance.

    Raises:
        AssertionError: On a difference.
    """
    assert got.keys() == want.keys(), (sorted(got), sorted(want))
    for name in want:
        g = got[name] if isinstance(got[name], tuple) else (got[name],)
        w = want[name] if isinstance(want[name], tuple) else (want[name],)
        assert len(g) == len(w), name
        for a, b in zip(g, w, strict=True):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True, err_msg=name)


def _close(got: Any, want: Any, rtol: float, atol: float, message: str) -> None:
    """:func:`assert_results_close`, its error headed by ``message``."""
    try:
        assert_results_close(got, want, rtol, atol)
    except AssertionError as error:
        raise AssertionError(f"{message}\n{error}") from None


def partial_kind(mode: ModeLike) -> str:
    """What two partial states of ``mode`` that ``aggregate`` combines are parts of.

    ``"concat"`` for per-sample metrics (disjoint slices of the same steps' samples),
    ``"sum"`` for metrics that hold only the latest step (additive parts of that step, as
    ``single``), ``"stream"`` otherwise (disjoint runs of steps).

    Examples:
        >>> from metricskit.testing import partial_kind
        >>> partial_kind("mean"), partial_kind("single"), partial_kind("single_noreduce")
        ('stream', 'sum', 'concat')
    """
    cls = get_log_mode(mode).cls
    if per_sample(cls):
        return "concat"
    return "stream" if cls.accumulates else "sum"


def make_stream(
    mode: ModeLike, shape: tuple[int, ...] = (4,), steps: int = 8, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Random float32 step values and integer counts for ``mode``.

    Counts are per sample (the value's shape) for metrics whose partial states are slices of
    samples (``partial == "concat"``), one per step otherwise.

    Returns:
        ``(values, counts)`` with a leading step axis.
    """
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 3.0, size=(steps, *shape)).astype(np.float32)
    per_value = partial_kind(mode) == "concat"
    counts = rng.integers(1, 5, size=(steps, *shape) if per_value else (steps,))
    return values, counts.astype(np.int32)


def _item(mode: ModeLike, value: Any, count: Any) -> dict[str, Any]:
    return {KEY: {"value": value, "count": count, "log_modes": [mode]}}


def _step(mode: ModeLike) -> Callable[[MetricStore, Any, Any], MetricStore]:
    return lambda store, value, count: store.update(_item(mode, value, count))


def _feed(
    mode: ModeLike, values: Any, counts: Any, store: MetricStore | None = None
) -> MetricStore:
    store = MetricStore() if store is None else store
    for value, count in zip(values, counts, strict=True):
        store = store.update(_item(mode, value, count))
    return store


_WINNING = {"max": 1.0, "min": -1.0}  # the sign of a fill that would win the reduction


def _poisoned(metric: Metric) -> Metric:
    """``metric`` with every ``"max"``/``"min"`` field filled with a value that would win it
    (the count stays zero): a state that is empty by its count alone."""
    changes = {}
    for field in state_fields(type(metric)):
        sign = _WINNING.get(reduction_of(field))
        if sign is not None:

            def fill(x: Any, sign: float = sign) -> Any:
                x = jnp.asarray(x)
                if x.dtype == jnp.bool_:
                    return x
                kind: Any = jnp.finfo if jnp.issubdtype(x.dtype, jnp.floating) else jnp.iinfo
                big = kind(x.dtype).max
                return jnp.full_like(x, big if sign > 0 else -big)

            changes[field.name] = jax.tree.map(fill, getattr(metric, field.name))
    return metric.replace(**changes)


def _check_count_alone_is_empty(mode: ModeLike, shape: tuple[int, ...], steps: int) -> None:
    """A state with count zero is empty whatever its ``"max"``/``"min"`` fields hold: zeros
    fill them in the empty state, and zero is not the identity of a maximum or minimum
    (metrics with a ``count`` field; others define emptiness in ``is_empty``)."""
    cls = get_log_mode(mode).cls
    if "count" not in {f.name for f in state_fields(cls)}:
        return  # emptiness is the metric's own (is_empty), not a count's
    values, counts = make_stream(mode, shape, steps)
    count_spec = Spec(counts.shape[1:], "int32")
    empty: Metric = cls.empty(Spec(shape, "float32"), count_spec)
    poisoned = _poisoned(empty)
    if poisoned is empty or all(
        bool(np.all(np.asarray(a) == np.asarray(b)))
        for a, b in zip(jax.tree.leaves(poisoned), jax.tree.leaves(empty), strict=True)
    ):
        return
    clean = jax.tree.map(lambda x: x, empty)
    for value, count in zip(values, counts, strict=True):
        v, c = jnp.asarray(value), jnp.asarray(count)
        clean, poisoned = clean.update(v, c), poisoned.update(v, c)
    results = {"update()": poisoned}
    if not per_sample(cls):
        results["aggregate(state, empty)"] = clean.aggregate(_poisoned(empty))
        results["aggregate(empty, state)"] = _poisoned(empty).aggregate(clean)
    for label, result in results.items():
        for got, want in zip(
            jax.tree.leaves(result.compute()), jax.tree.leaves(clean.compute()), strict=True
        ):
            np.testing.assert_array_equal(
                np.asarray(got),
                np.asarray(want),
                err_msg=(
                    f"{mode}: {label} lets an empty state's max/min field win (zero is not "
                    "the identity of a maximum or minimum, and the all-zeros state must act "
                    "as empty): use the field only where count > 0, "
                    + (
                        "in update (jnp.where(self.count > 0, jnp.maximum(self.peak, value), "
                        "value))"
                        if label == "update()"
                        else "in aggregate too: declare the field state('merge') and take "
                        "each side's value only where its count > 0 (jnp.where(self.count == "
                        "0, other.peak, jnp.where(other.count == 0, self.peak, "
                        "jnp.maximum(self.peak, other.peak))))"
                    )
                ),
            )


def check_empty_is_zeros(mode: ModeLike, shape: tuple[int, ...] = (4,), steps: int = 6) -> None:
    """The empty state is all zeros, a reset gives it back, and a zero-filled state acts empty.

    Checks that ``empty()`` is all zeros for float and integer steps; that a reset store equals
    a fresh one leaf by leaf, in values; that the empty (all-zeros) state is the identity of
    ``aggregate`` on both sides (except for per-sample metrics, whose device aggregate
    concatenates), for a stream of all-negative and one of all-positive values
    (so a running maximum of negative values, or a minimum of positive ones, that lets the zero
    fill win is caught); and that a store zero-filled from the abstract output of a step (as
    trainers initialise metrics: ``jax.tree.map(jnp.zeros_like, jax.eval_shape(step, ...))``)
    reports, after a stream of steps, exactly what a fresh store reports.

    Raises:
        AssertionError: On a difference, with the sub-check and the rule it enforces.
    """
    cls = get_log_mode(mode).cls
    for dtype in ("float32", "int32", "float64"):
        empty: Metric = cls.empty(Spec(shape, dtype), Spec((), "int32"))
        assert is_all_zero(empty), (
            f"{mode}: empty() is not all zeros for {dtype} steps; declare each field's empty "
            "value as zero (derive emptiness from a count field)"
        )
    _check_count_alone_is_empty(mode, shape, steps)
    values, counts = make_stream(mode, shape, steps)
    for shifted in (values - np.abs(values).max() - 1.0, values + np.abs(values).max() + 1.0):
        fed = _feed(mode, shifted, counts)
        fresh = MetricStore().init(_item(mode, shifted[0], counts[0]))
        reset = fed.reset()
        assert is_all_zero(reset), f"{mode}: reset() is not all zeros"
        assert _signature(reset) == _signature(fresh), f"{mode}: reset() changed the structure"
        for a, b in zip(jax.tree.leaves(reset), jax.tree.leaves(fresh), strict=True):
            np.testing.assert_array_equal(
                np.asarray(a), np.asarray(b), err_msg=f"{mode}: reset() != the empty state"
            )
        rule = (
            "the all-zeros state must act as empty: make update and aggregate ignore a "
            "state whose count is 0 (e.g. jnp.where(self.count > 0, ..., value))"
        )
        # per-sample metrics concatenate on the device (static shapes keep the empty part);
        # their host appending (append_batches, aggregate_metrics) drops empty states
        sides = [("state, empty", fed, reset), ("empty, state", reset, fed)]
        for label, a, b in [] if per_sample(cls) else sides:
            message = f"{mode}: aggregate({label}) != state; {rule}"
            _close(a.aggregate(b).compute(), fed.compute(), 0, 0, message)
        abstract = jax.eval_shape(_step(mode), MetricStore(), shifted[0], counts[0])
        zero_filled = _feed(mode, shifted, counts, jax.tree.map(jnp.zeros_like, abstract))
        message = f"{mode}: zero-filled state != fresh store; {rule}"
        _close(zero_filled.compute(), fed.compute(), 0, 0, message)


def check_invariants(mode: ModeLike, shape: tuple[int, ...] = (4,)) -> None:
    """Leaf structure, shapes and dtypes (weak types too) never change, and a step compiles once.

    Checked through ``init``, ``update``, ``aggregate`` (unless the metric concatenates) and
    ``reset``, for Python float (0-d only), NumPy float32, JAX bfloat16 and float32 values.

    Raises:
        AssertionError: On a change, or a recompilation.
    """
    cls = get_log_mode(mode).cls
    kinds: list[Callable[[np.ndarray], Any]] = [
        lambda x: x.astype(np.float32),
        lambda x: jnp.asarray(x, jnp.bfloat16),
        lambda x: jnp.asarray(x, jnp.float32),
    ]
    if shape == ():
        kinds.insert(0, float)
    x = np.full(shape, 1.5)
    for kind in kinds:
        store = MetricStore().init(_item(mode, kind(x), 1))
        expected = _signature(store)
        updated = store.update(_item(mode, kind(x), 2))
        results = [updated, updated.reset(), store.reset()]
        if not per_sample(cls):
            results.append(updated.aggregate(updated))
        for result in results:
            assert _signature(result) == expected, (mode, kind, _signature(result), expected)

        @jax.jit
        def step(store: MetricStore, value: Any) -> MetricStore:
            return store.update(_item(mode, value, 2))

        for _ in range(3):
            store = step(store, kind(x))
        store = step(store.reset(), kind(x))
        assert cast(Any, step)._cache_size() == 1, (mode, kind, "recompiled")


def check_jit_matches_eager(
    mode: ModeLike, values: Any, counts: Any, rtol: float = 1e-5, atol: float = 1e-6
) -> None:
    """The same stream gives the same result eagerly and inside a jitted step."""
    eager, step = _feed(mode, values, counts), jax.jit(_step(mode))
    store = MetricStore().init(_item(mode, values[0], counts[0]))
    for value, count in zip(values, counts, strict=True):
        store = step(store, jnp.asarray(value), jnp.asarray(count))
    assert_results_close(store.compute(), eager.compute(), rtol, atol)


def _parts(mode: ModeLike, values: Any, counts: Any, cuts: Sequence[int]) -> list[MetricStore]:
    """Partial stores whose aggregate holds the whole stream, as ``Metric.partial`` says."""
    kind = partial_kind(mode)
    n = len(cuts) + 1
    if kind == "stream":
        bounds = [0, *cuts, len(values)]
        return [_feed(mode, values[a:b], counts[a:b]) for a, b in itertools.pairwise(bounds)]
    if kind == "sum":  # additive parts of each step: values split by weights, counts by ints
        weights = np.linspace(1.0, 2.0, n) / np.linspace(1.0, 2.0, n).sum()
        value_parts = [values * w for w in weights[:-1]]
        value_parts.append(values - sum(value_parts))
        count_parts = [counts // n] * (n - 1) + [counts - (n - 1) * (counts // n)]
        return [_feed(mode, v, c) for v, c in zip(value_parts, count_parts, strict=True)]
    size = np.shape(values)[1] // n  # "concat": equal slices of each step's samples
    return [
        _feed(mode, values[:, i * size : (i + 1) * size], counts[:, i * size : (i + 1) * size])
        for i in range(n)
    ]


def _whole(mode: ModeLike, values: Any, counts: Any, cuts: Sequence[int]) -> MetricStore:
    if partial_kind(mode) == "concat":
        size = np.shape(values)[1] // (len(cuts) + 1) * (len(cuts) + 1)
        return _feed(mode, values[:, :size], counts[:, :size])
    return _feed(mode, values, counts)


def check_split(
    mode: ModeLike,
    values: Any,
    counts: Any,
    cuts: Sequence[int],
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> None:
    """Accumulating parts and combining them with ``aggregate`` equals the whole stream.

    Args:
        mode: A log mode: a registered name, a metric class or a configured metric.
        values: Step values with a leading step axis.
        counts: Step counts with a leading step axis.
        cuts: For ``partial == "stream"`` metrics, sorted step indices in ``(0, steps)``
            where the stream is cut; for the others, ``len(cuts) + 1`` is the number of parts.
    """
    parts = _parts(mode, values, counts, cuts)
    combined = functools.reduce(MetricStore.aggregate, parts)
    assert_results_close(
        combined.compute(), _whole(mode, values, counts, cuts).compute(), rtol, atol
    )


def check_associative(
    mode: ModeLike,
    values: Any,
    counts: Any,
    cuts: Sequence[int],
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> None:
    """``(a + b) + c == a + (b + c)`` for three partial states (``len(cuts) == 2``)."""
    a, b, c = _parts(mode, values, counts, cuts)
    assert_results_close(
        a.aggregate(b).aggregate(c).compute(), a.aggregate(b.aggregate(c)).compute(), rtol, atol
    )


def check_metric(
    mode: ModeLike,
    *,
    shape: tuple[int, ...] = (4,),
    steps: int = 8,
    seed: int = 0,
    reference: Callable[[np.ndarray, np.ndarray], Any] | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> None:
    """Run the whole conformance suite on the log mode ``mode``.

    Args:
        mode: A registered name, a metric class (its defaults) or a configured metric
            (``MyMetric(option=...)``).
        shape: The shape of one step's value.
        steps: The length of the random stream.
        seed: The stream's random seed.
        reference: Optional ``reference(values, counts)`` giving the expected reported value
            (NumPy, float64) for the whole stream; for a metric with several parts, a tuple
            of the values in the order of its parts.
        rtol: Relative tolerance of comparisons.
        atol: Absolute tolerance of comparisons.

    Raises:
        AssertionError: When a check fails.
    """
    values, counts = make_stream(mode, shape, steps, seed)
    check_empty_is_zeros(mode, shape)
    check_invariants(mode, shape)
    check_jit_matches_eager(mode, values, counts, rtol, atol)
    cuts = [steps // 3, 2 * steps // 3] if partial_kind(mode) == "stream" else [0, 0]
    check_split(mode, values, counts, cuts[:1], rtol, atol)
    check_associative(mode, values, counts, cuts, rtol, atol)
    if reference is not None:
        log_mode = get_log_mode(mode)
        several = bool(log_mode.parts)  # the reference gives a tuple of values, in parts order
        names = [KEY + log_mode.postfix + part for part in log_mode.parts or ("",)]
        spread = np.abs(values).max() + 1.0
        # as drawn, all negative and all positive: a zero fill that wins a max or min shows
        for label, stream in (
            ("random", values),
            ("all-negative", values - spread),
            ("all-positive", values + spread),
        ):
            host = _feed(mode, stream, counts).compute()
            want = reference(stream.astype(np.float64), counts)
            got = {name: host[name] for name in names}
            expected = dict(zip(names, want if several else (want,), strict=True))
            _close(
                got,
                expected,
                rtol,
                atol,
                f"{mode}: differs from the reference on the {label} stream",
            )
