"""Regression: MSE, RMSE, MAE (exact sums), R², explained variance, Pearson (co-moments).

Each function takes ``predictions`` and ``targets`` of one shape and an optional ``mask`` of
the samples that count, and returns a step item for a key of a step dict. ``mse``, ``rmse``
and ``mae`` take any shape (every element is a sample); ``r2``, ``explained_variance`` and
``pearson`` take one output, ``(N,)`` (or ``(N, 1)``): for ``k`` outputs log one key per
output, e.g. ``tasks.r2(predictions[:, j], targets[:, j])``.

Integer inputs are exact; floats are converted to float32 on the device (float64 with
``jax_enable_x64`` is split into two float32s). The errors ``y - p`` and their squares are
computed in double-float arithmetic and the batch's sums nearly exactly (integer digits on a
grid set by the largest term: at most about 2^-43 of the largest term plus 2^-47 of the sum,
:func:`~metricskit.tasks.batchsums.pair_total`; co-moments about the batch's exact means,
:func:`~metricskit.tasks.moments.batch_moments`), the batches, devices and processes merged
exactly, and the number finished on the host in float64: the result does not depend on how
the samples were split.

The references are scikit-learn's ``mean_squared_error``, ``root_mean_squared_error``,
``mean_absolute_error``, ``r2_score`` and ``explained_variance_score`` (with their default
``force_finite=True``: a constant target gives 1.0 for a perfect fit, else 0.0; ``r2_score``
of fewer than two samples is ``nan``) and ``scipy.stats.pearsonr`` (a constant input, or fewer
than two samples, gives ``nan``, as ``numpy.corrcoef``). A key with no samples at all reports
``0.0`` (the store's convention, with a warning naming it).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from metricskit import exact
from metricskit.metric import ConfiguredMetric
from metricskit.tasks.batchsums import as_pairs, dd_mul, dd_sub, packed_pair, pair_total, two_sum
from metricskit.tasks.modes import counted, step_item
from metricskit.tasks.moments import CoMoments, PairSums, batch_moments

__all__ = [
    "R2",
    "ExplainedVariance",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "Pearson",
    "RootMeanSquaredError",
    "explained_variance",
    "mae",
    "mse",
    "pearson",
    "r2",
    "rmse",
]


def _shapes(function: str, predictions: Any, targets: Any) -> tuple[jax.Array, jax.Array]:
    """``predictions`` and ``targets`` as arrays of one shape (a static check: works under
    ``jit``)."""
    p, y = jnp.asarray(predictions), jnp.asarray(targets)
    if p.shape != y.shape:
        raise ValueError(
            f"{function}: predictions have shape {p.shape} but targets have shape {y.shape}; "
            f"they must match (one prediction per target, no broadcasting): reshape "
            f"predictions to targets' shape {y.shape}"
        )
    return p, y


def _which(function: str, mask: Any, shape: tuple[int, ...]) -> jax.Array:
    """The counted samples of ``shape``; ``mask`` must have the targets' shape or a leading
    part of it."""
    if mask is not None:
        m_shape = np.shape(mask)
        if m_shape != shape[: len(m_shape)]:
            raise ValueError(
                f"{function}: mask has shape {m_shape} but targets have shape {shape}; pass a "
                f"mask of the targets' shape {shape} (or of its leading axes, e.g. {shape[:1]})"
            )
    return counted(mask, shape)


def _one_output(function: str, p: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(N,)`` predictions and targets (``(N, 1)`` squeezed); anything else is an error."""
    if y.ndim == 2 and y.shape[1] == 1:
        return p[:, 0], y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"{function} takes one output, predictions and targets of shape (N,), but they "
            f"have shape {y.shape}; pass one output per key, e.g. "
            f"{{'{function}/j': tasks.{function}(predictions[:, j], targets[:, j])}}"
        )
    return p, y


def _errors(p: jax.Array, y: jax.Array) -> exact.Pair:
    """``y - p`` as a double-float (exact for integers and float32; infinite, with a zero
    ``lo``, where ``y - p`` is)."""
    if all(jnp.issubdtype(v.dtype, jnp.floating) and v.dtype.itemsize <= 4 for v in (p, y)):
        s, e = two_sum(as_pairs(y).hi, -as_pairs(p).hi)  # the common case: one TwoSum
        return exact.Pair(s, jnp.where(jnp.isfinite(s), e, 0.0))
    return dd_sub(as_pairs(y), as_pairs(p))


def _sum_item(
    function: str, per_sample: exact.Pair, mask: Any, mode: ConfiguredMetric
) -> dict[str, Any]:
    shape = np.shape(per_sample.hi)
    which = _which(function, mask, shape).reshape(-1)
    flat = exact.Pair(
        jnp.where(which, per_sample.hi.reshape(-1), 0.0),
        jnp.where(which, per_sample.lo.reshape(-1), 0.0),
    )
    return step_item(packed_pair(pair_total(flat)), jnp.sum(which, dtype=jnp.int32), mode)


def _mean(sums: np.ndarray, count: np.ndarray) -> float:
    total = np.asarray(sums, np.float64)
    return float((total[0] + total[1]) / np.float64(count))


def _root_mean(sums: np.ndarray, count: np.ndarray) -> float:
    return float(np.sqrt(_mean(sums, count)))


def mse(predictions: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """Mean squared error ``mean((y - p)^2)`` (scikit-learn's ``mean_squared_error``).

    Args:
        predictions: Any shape, the targets' (every element is a sample); ints or floats.
        targets: The same shape.
        mask: Booleans of the targets' shape (or of its leading axes): which samples count.

    Returns:
        A step item, reported as the key (a float).

    Raises:
        ValueError: If the shapes of predictions, targets and mask do not match.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> step = {"mse": mk.tasks.mse(jnp.array([1.0, 2.0]), jnp.array([1.5, 3.0]))}
        >>> mk.MetricStore().update(step).compute()
        {'mse': 0.625}
    """
    p, y = _shapes("mse", predictions, targets)
    e = _errors(p, y)
    return _sum_item("mse", dd_mul(e, e), mask, _MSE)


def rmse(predictions: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """Root mean squared error: the square root, taken on the host, of :func:`mse`.

    Arguments, result and errors as :func:`mse` (scikit-learn's
    ``root_mean_squared_error``).
    """
    p, y = _shapes("rmse", predictions, targets)
    e = _errors(p, y)
    return _sum_item("rmse", dd_mul(e, e), mask, _RMSE)


def mae(predictions: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """Mean absolute error ``mean(|y - p|)`` (scikit-learn's ``mean_absolute_error``).

    Arguments, result and errors as :func:`mse`.
    """
    p, y = _shapes("mae", predictions, targets)
    e = _errors(p, y)
    negative = e.hi < 0
    magnitude = exact.Pair(jnp.where(negative, -e.hi, e.hi), jnp.where(negative, -e.lo, e.lo))
    return _sum_item("mae", magnitude, mask, _MAE)


def _r2(count: np.ndarray, mean: np.ndarray, c: np.ndarray) -> float:
    if count < 2:
        return float("nan")  # scikit-learn: not well-defined with fewer than two samples
    sse = c[1, 1] + count * mean[1] ** 2  # residuals r = y - p: sum r^2 = C_rr + n mean_r^2
    sst = c[0, 0]
    if sst == 0:
        return 1.0 if sse == 0 else 0.0
    return float(1.0 - sse / sst)


def _explained_variance(count: np.ndarray, mean: np.ndarray, c: np.ndarray) -> float:
    if c[0, 0] == 0:  # a constant target (one sample included): scikit-learn's force_finite
        return 1.0 if c[1, 1] == 0 else 0.0
    return float(1.0 - c[1, 1] / c[0, 0])


def _pearson(count: np.ndarray, mean: np.ndarray, c: np.ndarray) -> float:
    denominator = np.sqrt(c[0, 0] * c[1, 1])
    if count < 2 or not denominator > 0:
        return float("nan")
    return float(np.clip(c[0, 1] / denominator, -1.0, 1.0))


def _moments_item(
    function: str, first: exact.Pair, second: exact.Pair, mask: Any, mode: ConfiguredMetric
) -> dict[str, Any]:
    variables = exact.Pair(
        jnp.stack([first.hi, second.hi], axis=-1), jnp.stack([first.lo, second.lo], axis=-1)
    )
    shape = np.shape(first.hi)
    if mask is not None and np.shape(mask) == (*shape, 1):  # the mask of (N, 1) inputs
        mask = jnp.asarray(mask)[:, 0]
    which = _which(function, mask, shape)
    return step_item(*batch_moments(variables, which), mode)


def r2(predictions: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """The coefficient of determination ``1 - SSE / SST`` (scikit-learn's ``r2_score``).

    Computed from the exactly merged co-moments of the targets and the errors ``y - p``.

    Args:
        predictions: ``(N,)`` (or ``(N, 1)``), ints or floats.
        targets: The same shape.
        mask: ``(N,)`` booleans: which samples count.

    Returns:
        A step item, reported as the key: ``nan`` for fewer than two samples; for constant
        targets 1.0 if every prediction is right, else 0.0 (``force_finite=True``).

    Raises:
        ValueError: If the shapes differ, or the inputs hold several outputs ``(N, k)`` (log
            one key per output: ``r2(predictions[:, j], targets[:, j])``).
    """
    p, y = _one_output("r2", *_shapes("r2", predictions, targets))
    return _moments_item("r2", as_pairs(y), _errors(p, y), mask, _R2)


def explained_variance(predictions: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """Explained variance ``1 - Var(y - p) / Var(y)`` (``explained_variance_score``).

    Arguments and errors as :func:`r2`. A constant target (a single sample included) gives
    1.0 if the errors are constant, else 0.0 (``force_finite=True``).
    """
    p, y = _one_output("explained_variance", *_shapes("explained_variance", predictions, targets))
    return _moments_item("explained_variance", as_pairs(y), _errors(p, y), mask, _EV)


def pearson(predictions: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """Pearson's correlation of predictions and targets (``scipy.stats.pearsonr``).

    Arguments and errors as :func:`r2`. A constant input or fewer than two samples give
    ``nan``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> step = {"r": mk.tasks.pearson(jnp.array([1.0, 2.0, 3.0]), jnp.array([2.0, 4.0, 7.0]))}
        >>> round(mk.MetricStore().update(step).compute()["r"], 6)
        0.993399
    """
    p, y = _one_output("pearson", *_shapes("pearson", predictions, targets))
    return _moments_item("pearson", as_pairs(p), as_pairs(y), mask, _PEARSON)


class MeanSquaredError(PairSums):
    """The log mode of :func:`mse`: summed squared errors over their count."""

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        return _mean(sums, count)


class RootMeanSquaredError(PairSums):
    """The log mode of :func:`rmse`: the root of the mean squared error."""

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        return _root_mean(sums, count)


class MeanAbsoluteError(PairSums):
    """The log mode of :func:`mae`: summed absolute errors over their count."""

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        return _mean(sums, count)


class R2(CoMoments):
    """The log mode of :func:`r2`, from the co-moments of targets and errors."""

    def finish(self, count: np.ndarray, mean: np.ndarray, comoments: np.ndarray) -> float:
        return _r2(count, mean, comoments)


class ExplainedVariance(CoMoments):
    """The log mode of :func:`explained_variance`, from the co-moments of targets and errors."""

    def finish(self, count: np.ndarray, mean: np.ndarray, comoments: np.ndarray) -> float:
        return _explained_variance(count, mean, comoments)


class Pearson(CoMoments):
    """The log mode of :func:`pearson`, from the co-moments of predictions and targets."""

    def finish(self, count: np.ndarray, mean: np.ndarray, comoments: np.ndarray) -> float:
        return _pearson(count, mean, comoments)


_MSE, _RMSE = MeanSquaredError.configure(), RootMeanSquaredError.configure()
_MAE = MeanAbsoluteError.configure()
_R2, _EV, _PEARSON = R2.configure(), ExplainedVariance.configure(), Pearson.configure()
