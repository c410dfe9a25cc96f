"""Regression: MSE, RMSE, MAE (exact sums), R², explained variance, Pearson (co-moments).

Each function takes ``predictions`` and ``targets`` of shape ``(N,)`` (one output) and an
optional ``mask`` of the samples that count, and returns a step item for a key of a step
dict. The references are scikit-learn's ``mean_squared_error``, ``root_mean_squared_error``,
``mean_absolute_error``, ``r2_score`` and ``explained_variance_score`` (with their default
``force_finite=True``: a constant target gives 1.0 for a perfect fit, else 0.0) and
``scipy.stats.pearsonr`` (a constant input gives ``nan``).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from metricskit.tasks.modes import counted, step_item, summing_mode
from metricskit.tasks.moments import batch_moments, comoment_mode

__all__ = ["explained_variance", "mae", "mse", "pearson", "r2", "rmse"]


def _errors(predictions: Any, targets: Any) -> Any:
    return jnp.asarray(targets, jnp.float32) - jnp.asarray(predictions, jnp.float32)


def _mean(sums: np.ndarray, count: np.ndarray) -> float:
    return float(np.asarray(sums, np.float64) / np.asarray(count, np.float64))


def _root_mean(sums: np.ndarray, count: np.ndarray) -> float:
    return float(np.sqrt(_mean(sums, count)))


def _sum_item(per_sample: Any, which: Any, mode: str) -> dict[str, Any]:
    total = jnp.sum(jnp.where(which, per_sample, 0.0))
    return step_item(total, jnp.sum(which, dtype=jnp.int32), mode)


def mse(predictions: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """Mean squared error ``mean((y - p)^2)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> step = {"mse": mk.tasks.mse(jnp.array([1.0, 2.0]), jnp.array([1.5, 3.0]))}
        >>> mk.MetricStore().update(step).compute()
        {'mse': 0.625}
    """
    return _sum_item(
        _errors(predictions, targets) ** 2,
        counted(mask, jnp.shape(targets)),
        summing_mode("mse", _mean),
    )


def rmse(predictions: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """Root mean squared error (the square root of the exact mean, taken on the host)."""
    return _sum_item(
        _errors(predictions, targets) ** 2,
        counted(mask, jnp.shape(targets)),
        summing_mode("rmse", _root_mean),
    )


def mae(predictions: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """Mean absolute error ``mean(|y - p|)``."""
    return _sum_item(
        jnp.abs(_errors(predictions, targets)),
        counted(mask, jnp.shape(targets)),
        summing_mode("mae", _mean),
    )


def _r2(count: np.ndarray, mean: np.ndarray, c: np.ndarray) -> float:
    sse = c[1, 1] + count * mean[1] ** 2  # residuals r = y - p: sum r^2 = C_rr + n mean_r^2
    sst = c[0, 0]
    if sst == 0:
        return 1.0 if sse == 0 else 0.0
    return float(1.0 - sse / sst)


def _explained_variance(count: np.ndarray, mean: np.ndarray, c: np.ndarray) -> float:
    if c[0, 0] == 0:
        return 1.0 if c[1, 1] == 0 else 0.0
    return float(1.0 - c[1, 1] / c[0, 0])


def _pearson(count: np.ndarray, mean: np.ndarray, c: np.ndarray) -> float:
    denominator = np.sqrt(c[0, 0] * c[1, 1])
    return float(c[0, 1] / denominator) if denominator > 0 else float("nan")


def _moments_item(variables: Any, which: Any, mode: str) -> dict[str, Any]:
    return step_item(*batch_moments(variables, which), mode)


def r2(predictions: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """The coefficient of determination ``1 - SSE / SST``, from merged co-moments."""
    y = jnp.asarray(targets, jnp.float32)
    variables = jnp.stack([y, _errors(predictions, targets)], axis=-1)
    return _moments_item(variables, counted(mask, jnp.shape(targets)), comoment_mode("r2", _r2))


def explained_variance(predictions: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """Explained variance ``1 - Var(y - p) / Var(y)``, from merged co-moments."""
    y = jnp.asarray(targets, jnp.float32)
    variables = jnp.stack([y, _errors(predictions, targets)], axis=-1)
    mode = comoment_mode("explained_variance", _explained_variance)
    return _moments_item(variables, counted(mask, jnp.shape(targets)), mode)


def pearson(predictions: Any, targets: Any, *, mask: Any = None) -> dict[str, Any]:
    """Pearson's correlation of predictions and targets, from merged co-moments.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> step = {"r": mk.tasks.pearson(jnp.array([1.0, 2.0, 3.0]), jnp.array([2.0, 4.0, 7.0]))}
        >>> round(mk.MetricStore().update(step).compute()["r"], 6)
        0.993399
    """
    variables = jnp.stack(
        [jnp.asarray(predictions, jnp.float32), jnp.asarray(targets, jnp.float32)], axis=-1
    )
    return _moments_item(
        variables, counted(mask, jnp.shape(targets)), comoment_mode("pearson", _pearson)
    )
