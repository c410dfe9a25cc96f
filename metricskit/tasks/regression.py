"""Regression: MSE, RMSE, MAE, MAPE, SMAPE, MSLE, RMSLE, cosine similarity (nearly exact
sums), R², explained variance, Pearson (co-moments).

Each function takes ``predictions`` and ``targets`` of one shape and an optional ``mask`` of
the samples that count, and returns a step item for a key of a step dict. ``mse``, ``rmse``,
``mae``, ``mape``, ``smape``, ``msle`` and ``rmsle`` take any shape (every element is a
sample); ``cosine_similarity`` takes ``(..., D)`` vectors (each vector a sample); ``r2``,
``explained_variance`` and ``pearson`` take one output, ``(N,)`` (or ``(N, 1)``): for ``k``
outputs log one key per output, e.g. ``tasks.r2(predictions[:, j], targets[:, j])``.

Integer inputs are exact; floats are converted to float32 on the device (float64 with
``jax_enable_x64`` is split into two float32s). The errors ``y - p`` and the per-sample terms
(squares, quotients, cosines) are computed in double-float arithmetic (``msle``'s logarithms
to float32's relative precision) and the batch's sums nearly exactly (integer digits on a
grid set by the largest term: at most about 2^-43 of the largest term plus 2^-47 of the sum,
:func:`~metricskit.tasks.batchsums.pair_total`; co-moments about the batch's exact means,
:func:`~metricskit.tasks.moments.batch_moments`), the batches, devices and processes merged
exactly, and the number finished on the host in float64: the result does not depend on how
the samples were split.

The references are scikit-learn's ``mean_squared_error``, ``root_mean_squared_error``,
``mean_absolute_error``, ``mean_absolute_percentage_error``, ``mean_squared_log_error``,
``root_mean_squared_log_error``, ``r2_score`` and ``explained_variance_score`` (with their
default ``force_finite=True``: a constant target gives 1.0 for a perfect fit, else 0.0;
``r2_score`` of fewer than two samples is ``nan``), ``scipy.stats.pearsonr`` (a constant
input, or fewer than two samples, gives ``nan``, as ``numpy.corrcoef``) and torchmetrics'
``SymmetricMeanAbsolutePercentageError`` and ``CosineSimilarity``. A key with no samples at
all reports ``0.0`` (the store's convention, with a warning naming it).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from metricskit import exact
from metricskit.compat import Tracer
from metricskit.metric import ConfiguredMetric
from metricskit.tasks.batchsums import (
    as_pairs,
    dd_add,
    dd_mul,
    dd_sub,
    exponent,
    packed_pair,
    pair_total,
    two_sum,
)
from metricskit.tasks.modes import counted, step_item
from metricskit.tasks.moments import CoMoments, PairSums, batch_moments

__all__ = [
    "R2",
    "CosineSimilarity",
    "ExplainedVariance",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredError",
    "MeanSquaredLogError",
    "Pearson",
    "RootMeanSquaredError",
    "RootMeanSquaredLogError",
    "SymmetricMeanAbsolutePercentageError",
    "cosine_similarity",
    "explained_variance",
    "mae",
    "mape",
    "mse",
    "msle",
    "pearson",
    "r2",
    "rmse",
    "rmsle",
    "smape",
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


_MAPE_EPS = float(np.finfo(np.float64).eps)  # 2^-52, exact in float32: scikit-learn's
_SMAPE_EPS = 1.17e-06  # torchmetrics' symmetric_mean_absolute_percentage_error epsilon


def _abs(x: exact.Pair) -> exact.Pair:
    negative = x.hi < 0
    return exact.Pair(jnp.where(negative, -x.hi, x.hi), jnp.where(negative, -x.lo, x.lo))


def _at_least(x: exact.Pair, eps: float) -> exact.Pair:
    """``max(x, eps)`` for a double-float ``x`` and a float64 constant ``eps``."""
    e_hi = np.float32(eps)
    e_lo = np.float32(eps - np.float64(e_hi))
    below = (x.hi < e_hi) | ((x.hi == e_hi) & (x.lo < e_lo))
    return exact.Pair(jnp.where(below, e_hi, x.hi), jnp.where(below, e_lo, x.lo))


def mape(predictions: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """Mean absolute percentage error ``mean(|y - p| / max(|y|, eps))``.

    scikit-learn's ``mean_absolute_percentage_error``, with its ``eps =
    np.finfo(np.float64).eps`` (``2^-52``): a zero target gives a huge term, ``|p| * 2^52``,
    not an infinity, as scikit-learn (a fraction, not a percentage: 0.1 is 10%). Each term is
    a double-float quotient (relative error about ``2^-46``), the batch's terms summed nearly
    exactly. With x64 off a term beyond float32's range (an error above about ``7.5e22`` over
    a zero target) is ``inf``.

    Arguments, result and errors as :func:`mse`. A NaN in a counted sample makes the key NaN
    (the store's ``nan_policy`` applies).
    """
    p, y = _shapes("mape", predictions, targets)
    ratio = exact.div(_abs(_errors(p, y)), _at_least(_abs(as_pairs(y)), _MAPE_EPS))
    return _sum_item("mape", ratio, mask, _MAPE)


def smape(predictions: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """Symmetric mean absolute percentage error ``mean(2 |y - p| / max(|y| + |p|, eps))``.

    torchmetrics' ``SymmetricMeanAbsolutePercentageError`` (and its functional form), with
    its ``eps = 1.17e-06``: a sample with ``y = p = 0`` counts 0; every term is in ``[0, 2]``
    (a fraction: 2.0 is the 200% of opposite signs). Each term is a double-float quotient,
    the batch's terms summed nearly exactly.

    Arguments, result and errors as :func:`mse`. A NaN in a counted sample, or an infinity
    (``inf / inf``, NaN as in torchmetrics), makes the key NaN.
    """
    p, y = _shapes("smape", predictions, targets)
    e = _abs(_errors(p, y))
    twice = exact.Pair(2 * e.hi, 2 * e.lo)
    scale = _at_least(dd_add(_abs(as_pairs(y)), _abs(as_pairs(p))), _SMAPE_EPS)
    return _sum_item("smape", exact.div(twice, scale), mask, _SMAPE)


def _log_errors(function: str, p: jax.Array, y: jax.Array, mask: Any) -> exact.Pair:
    """``(log1p(y) - log1p(p))^2`` per sample: ``log1p((y - p) / (1 + p))`` (no cancellation
    when ``y`` is near ``p``), NaN where ``y <= -1`` or ``p <= -1``."""
    _which(function, mask, np.shape(y))  # the mask's shape first: its error is the clearer
    if not isinstance(p, Tracer) and not isinstance(y, Tracer) and not isinstance(mask, Tracer):
        which = counted(mask, np.shape(y), np)
        bad = (np.asarray(y, np.float64) <= -1) | (np.asarray(p, np.float64) <= -1)
        if np.any(bad & which):
            raise ValueError(
                f"{function}: predictions or targets hold values <= -1; the squared log error "
                "log1p(y) - log1p(p) is defined above -1 (scikit-learn's mean_squared_log_error "
                "refuses them too): use values > -1 (typically non-negative)"
            )
    pp, yy = as_pairs(p), as_pairs(y)
    # 1 + p: a literal 1 lets XLA's simplifier fold TwoSum's error term away under jit
    one = jnp.where(jnp.isnan(pp.hi), 0.0, 1.0).astype(pp.hi.dtype)
    ratio = exact.div(_errors(p, y), dd_add(pp, exact.Pair(one, jnp.zeros_like(one))))
    # log1p(hi + lo) = log1p(hi) + lo / (1 + hi) to float32's relative precision
    log = jnp.log1p(ratio.hi) + ratio.lo / (1 + ratio.hi)
    invalid = _at_most_minus_one(pp) | _at_most_minus_one(yy)
    log = jnp.where(invalid, jnp.nan, log)
    return dd_mul(exact.Pair(log, jnp.zeros_like(log)), exact.Pair(log, jnp.zeros_like(log)))


def _at_most_minus_one(x: exact.Pair) -> Any:
    return (x.hi < -1) | ((x.hi == -1) & (x.lo <= 0))


def msle(predictions: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """Mean squared logarithmic error ``mean((log1p(y) - log1p(p))^2)``.

    scikit-learn's ``mean_squared_log_error``. Each log ratio is computed as
    ``log1p((y - p) / (1 + p))`` from the double-float quotient, so it keeps float32's
    relative precision (about ``2^-23``) however close ``p`` is to ``y``; the terms are
    non-negative, so the mean keeps it too (the batch's terms summed nearly exactly, merged
    exactly).

    Args:
        predictions: Any shape, the targets' (every element is a sample); ints or floats
            above -1.
        targets: The same shape.
        mask: Booleans of the targets' shape (or of its leading axes): which samples count.

    Returns:
        A step item, reported as the key (a float). Under ``jit``, where values cannot be
        checked, a counted value ``<= -1`` makes its term, and so the step's statistics, NaN
        (the store's ``nan_policy`` applies), as does a NaN.

    Raises:
        ValueError: If the shapes do not match, or (eager calls) a counted prediction or
            target is ``<= -1`` (scikit-learn's rule).
    """
    p, y = _shapes("msle", predictions, targets)
    return _sum_item("msle", _log_errors("msle", p, y, mask), mask, _MSLE)


def rmsle(predictions: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """Root mean squared logarithmic error: the square root, taken on the host, of
    :func:`msle` (scikit-learn's ``root_mean_squared_log_error``).

    Arguments, result and errors as :func:`msle`.
    """
    p, y = _shapes("rmsle", predictions, targets)
    return _sum_item("rmsle", _log_errors("rmsle", p, y, mask), mask, _RMSLE)


def _unit_scaled(x: exact.Pair) -> exact.Pair:
    """Each vector (last axis) scaled by a power of two so that its largest finite component
    is below 1 and at least 1/2 (exact): its squares cannot overflow."""
    top = jnp.max(jnp.where(jnp.isfinite(x.hi), jnp.abs(x.hi), 0.0), axis=-1, keepdims=True)
    e = exponent(top)
    return exact.Pair(jnp.ldexp(x.hi, -e), jnp.ldexp(x.lo, -e))


def _dot(a: exact.Pair, b: exact.Pair) -> exact.Pair:
    terms = dd_mul(a, b)
    return pair_total(exact.Pair(jnp.moveaxis(terms.hi, -1, 0), jnp.moveaxis(terms.lo, -1, 0)))


def cosine_similarity(predictions: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """Mean cosine similarity ``p . y / (|p| |y|)`` of vectors, averaged over the vectors.

    torchmetrics' ``CosineSimilarity(reduction="mean")``. Each vector is scaled by a power of
    two (exact; cosine does not depend on scale), its dot product and squared norms summed
    nearly exactly in double-float, the quotient taken in double-float: no overflow for any
    finite input. A zero vector (prediction or target) counts 0, as
    ``torch.nn.functional.cosine_similarity`` (its eps clamp) and scikit-learn's
    ``cosine_similarity`` give, so an all-zero embedding costs its sample, not the whole
    metric; torchmetrics' ``CosineSimilarity`` divides by zero there (NaN).

    Args:
        predictions: ``(..., D)``: vectors of ``D`` components along the last axis (every
            vector a sample); ints or floats.
        targets: The same shape.
        mask: Booleans of the leading shape ``(...)`` (or of its leading axes): which vectors
            count.

    Returns:
        A step item, reported as the key (a float in ``[-1, 1]``). A NaN or an infinity in a
        counted vector makes the key NaN (the store's ``nan_policy`` applies).

    Raises:
        ValueError: If the shapes do not match, the inputs are scalars, or the mask's shape is
            not a leading part of ``(...)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> p, y = jnp.array([[1.0, 0.0], [1.0, 1.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])
        >>> step = {"cos": mk.tasks.cosine_similarity(p, y)}
        >>> round(mk.MetricStore().update(step).compute()["cos"], 6)
        0.853553
    """
    p, y = _shapes("cosine_similarity", predictions, targets)
    if y.ndim < 1:
        raise ValueError(
            "cosine_similarity: predictions and targets are scalars; pass (N, D) vectors (the "
            "last axis their components)"
        )
    a, b = _unit_scaled(as_pairs(p)), _unit_scaled(as_pairs(y))
    dot, aa, bb = _dot(a, b), _dot(a, a), _dot(b, b)
    zero = (aa.hi == 0) | (bb.hi == 0)
    one = jnp.ones_like(aa.hi)
    norms = exact.mul(exact.sqrt(aa), exact.sqrt(bb))
    norms = exact.Pair(jnp.where(zero, one, norms.hi), jnp.where(zero, 0.0, norms.lo))
    cos = exact.div(dot, norms)
    cos = exact.Pair(jnp.where(zero, 0.0, cos.hi), jnp.where(zero, 0.0, cos.lo))
    if mask is not None and np.shape(mask) != y.shape[:-1][: np.ndim(mask)]:
        raise ValueError(
            f"cosine_similarity: mask has shape {np.shape(mask)} but the vectors have shape "
            f"{y.shape[:-1]} (of {y.shape[-1]} components); pass a mask of the vectors' shape "
            f"{y.shape[:-1]} (or of its leading axes)"
        )
    return _sum_item("cosine_similarity", cos, mask, _COSINE)


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


class MeanAbsolutePercentageError(PairSums):
    """The log mode of :func:`mape`: summed relative errors over their count."""

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        return _mean(sums, count)


class SymmetricMeanAbsolutePercentageError(PairSums):
    """The log mode of :func:`smape`: summed symmetric relative errors over their count."""

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        return _mean(sums, count)


class MeanSquaredLogError(PairSums):
    """The log mode of :func:`msle`: summed squared log errors over their count."""

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        return _mean(sums, count)


class RootMeanSquaredLogError(PairSums):
    """The log mode of :func:`rmsle`: the root of the mean squared log error."""

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        return _root_mean(sums, count)


class CosineSimilarity(PairSums):
    """The log mode of :func:`cosine_similarity`: summed cosines over the vector count."""

    def finish(self, sums: np.ndarray, count: np.ndarray) -> float:
        return _mean(sums, count)


_MSE, _RMSE = MeanSquaredError.configure(), RootMeanSquaredError.configure()
_MAE = MeanAbsoluteError.configure()
_R2, _EV, _PEARSON = R2.configure(), ExplainedVariance.configure(), Pearson.configure()
_MAPE = MeanAbsolutePercentageError.configure()
_SMAPE = SymmetricMeanAbsolutePercentageError.configure()
_MSLE, _RMSLE = MeanSquaredLogError.configure(), RootMeanSquaredLogError.configure()
_COSINE = CosineSimilarity.configure()
