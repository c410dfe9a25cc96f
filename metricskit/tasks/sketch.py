"""Distributions: a mergeable quantile sketch with a relative-accuracy guarantee, as a log mode.

Values fall into logarithmically spaced buckets, ``gamma = (1 + a) / (1 - a)`` wide in ratio
(Masson, Rim and Lee, "DDSketch: a fast and fully-mergeable quantile sketch with
relative-error guarantees", VLDB 2019): a bucket's representative value is within a relative
``a`` of every value in it. The state is the bucket counts (exact integers), so merging steps,
devices, processes and evaluation batches is a sum and loses nothing: the sketch of a union is
the union of the sketches. Memory is fixed (about ``ln(range) / a`` buckets per sign).

- :func:`quantiles` reports ``key_p50``, ``key_p90``, ``key_p99`` (or the quantiles asked
  for): each within a relative ``a`` of the exact quantile (the sample of rank
  ``floor(q (n - 1))``, NumPy's ``method="lower"``) for values of magnitude in
  ``[1e-9, 1e9]``; values outside are clamped to it; a NaN value makes the quantiles NaN
  (as float64 arithmetic would carry it), while the histogram counts NaNs apart
  (:attr:`Histogram.nan_count`).
- :func:`histogram` reports a :class:`Histogram` (bucket edges and counts), which the
  TensorBoard sink writes as a histogram and the other sinks summarize.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import attrs
import jax.numpy as jnp
import numpy as np

from metricskit.metric import ConfiguredMetric, static
from metricskit.tasks.modes import SumsMetric, counted, step_item

__all__ = [
    "Histogram",
    "HistogramSketch",
    "QuantileSketch",
    "histogram",
    "quantiles",
    "sketch_counts",
]

SMALLEST, LARGEST = 1e-9, 1e9


@attrs.frozen(eq=False)
class Histogram:
    """Bucket edges and counts of a distribution (``len(edges) == len(counts) + 1``).

    Attributes:
        edges: Increasing bucket edges (float64).
        counts: Samples per bucket (int64).
        nan_count: NaN values, which no bucket holds (counted, not dropped silently).
    """

    edges: np.ndarray
    counts: np.ndarray
    nan_count: int = 0


MIN_ACCURACY = 1e-4
"""The finest relative accuracy a sketch takes (about 2 * 10^5 buckets per sign)."""


def _buckets(accuracy: float) -> int:
    return math.ceil(math.log(LARGEST / SMALLEST) / math.log((1 + accuracy) / (1 - accuracy)))


@functools.cache
def _geometry(accuracy: float) -> tuple[float, int, int]:
    """``(log gamma, index of the smallest magnitude's bucket, buckets per sign)``."""
    if not (isinstance(accuracy, float) and MIN_ACCURACY <= accuracy < 1):
        raise ValueError(
            f"relative_accuracy={accuracy!r}; pass a float in [{MIN_ACCURACY}, 1), e.g. 0.01 "
            f"(finer sketches need more than {_buckets(MIN_ACCURACY)} buckets per sign)"
        )
    log_gamma = math.log((1 + accuracy) / (1 - accuracy))
    low = math.ceil(math.log(SMALLEST) / log_gamma)
    high = math.ceil(math.log(LARGEST) / log_gamma)
    return log_gamma, low, high - low + 1


def _accuracy(value: Any) -> float:
    """``relative_accuracy`` checked (``ValueError``) and as a Python float."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"relative_accuracy={value!r}; pass a float in [{MIN_ACCURACY}, 1)")
    _geometry(float(value))
    return float(value)


def _samples_mask(mask: Any, shape: tuple[int, ...]) -> Any:
    """``mask`` over the values (their shape, or their leading axes; ``None``: every value)
    as booleans of ``shape``.

    Raises:
        ValueError: For a mask of another shape.
    """
    if mask is None or np.shape(mask) == shape[: np.ndim(mask)]:
        return counted(mask, shape)  # over the leading axes (e.g. the sequences of a batch)
    try:
        return jnp.broadcast_to(jnp.asarray(mask, bool), shape)
    except ValueError:
        raise ValueError(
            f"mask has shape {np.shape(mask)}, but the values have shape {shape}; pass a mask "
            "of the values' shape or of their leading axes"
        ) from None


def sketch_counts(values: Any, accuracy: float, mask: Any = None) -> Any:
    """Bucket counts of ``values``: ``(2 m + 1,)`` int32, negative buckets (largest
    magnitude first), zero, positive buckets (smallest first)."""
    log_gamma, low, m = _geometry(accuracy)
    x = jnp.asarray(values, jnp.float32).reshape(-1)
    kept = ~jnp.isnan(x)
    if mask is not None:
        kept = kept & _samples_mask(mask, np.shape(values)).reshape(-1)
    magnitude = jnp.clip(jnp.abs(x), SMALLEST, LARGEST)
    i = jnp.clip(jnp.ceil(jnp.log(magnitude) / log_gamma).astype(jnp.int32) - low, 0, m - 1)
    bucket = jnp.where(x > 0, m + 1 + i, jnp.where(x < 0, m - 1 - i, m))
    return jnp.zeros(2 * m + 1, jnp.int32).at[bucket].add(kept.astype(jnp.int32))


def _sketch_item(values: Any, accuracy: float, mask: Any, mode: ConfiguredMetric) -> dict[str, Any]:
    """The step item of ``mode``: the values' bucket counts, and the number of unmasked values
    (NaN included: they are the difference, reported by a histogram)."""
    which = _samples_mask(mask, np.shape(values))
    counts = sketch_counts(values, accuracy, mask)
    return step_item(counts, jnp.sum(which, dtype=jnp.int32), mode)


def _values(accuracy: float) -> np.ndarray:
    """Each bucket's representative value (relative error at most ``accuracy``)."""
    log_gamma, low, m = _geometry(accuracy)
    gamma = math.exp(log_gamma)
    positive = 2.0 * np.exp((np.arange(m) + low) * log_gamma) / (gamma + 1.0)
    return np.concatenate([-positive[::-1], [0.0], positive])


def _edges(accuracy: float) -> np.ndarray:
    log_gamma, low, m = _geometry(accuracy)
    upper = np.exp((np.arange(m) + low) * log_gamma)  # bucket i holds (gamma^(i-1), gamma^i]
    lower = upper / math.exp(log_gamma)
    positive = np.concatenate([lower[:1], upper])
    return np.concatenate([-positive[::-1], positive])  # the zero bucket sits across 0


def _quantiles(
    sums: np.ndarray, count: np.ndarray, accuracy: float, qs: tuple[float, ...]
) -> tuple[float, ...]:
    counts = np.asarray(sums, np.int64)
    n = int(counts.sum())
    if n == 0 or n != count:  # no values, or a NaN among them (in no bucket): NaN
        return tuple(float("nan") for _ in qs)
    cumulative = np.cumsum(counts)
    values = _values(accuracy)
    return tuple(
        float(values[np.searchsorted(cumulative, math.floor(q * (n - 1)), side="right")])
        for q in qs
    )


def quantiles(
    values: Any,
    *,
    q: float | tuple[float, ...] = (0.5, 0.9, 0.99),
    relative_accuracy: float = 0.01,
    mask: Any = None,
) -> dict[str, Any]:
    """Quantiles of a stream of values (per-sample losses, gradient norms) in bounded memory.

    Args:
        values: Any shape: every (unmasked, non-NaN) element is a sample.
        q: The quantiles (or one), reported in increasing order as ``key_p50`` etc.
            (``key_p99.9`` for 0.999; twelve significant digits).
        relative_accuracy: ``a``: each reported quantile is within ``a`` relative of the exact
            one (for magnitudes in ``[1e-9, 1e9]``); a float in ``[1e-4, 1)`` (the state holds
            about ``2 * ln(1e18) / (2 a)`` integer buckets).
        mask: Booleans broadcast against ``values``: which samples count.

    Returns:
        A step item.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> x = jnp.arange(1.0, 101.0)
        >>> host = mk.MetricStore().update({"loss": mk.tasks.quantiles(x)}).compute()
        >>> exact = {"loss_p50": 50.0, "loss_p90": 90.0, "loss_p99": 99.0}
        >>> all(abs(host[k] - v) <= 0.01 * v for k, v in exact.items())
        True
    """
    if isinstance(q, int | float | np.number):
        q = (q,)  # one quantile
    qs = tuple(sorted({float(v) for v in q}))  # reported in increasing order
    if not qs or not all(0 <= v <= 1 for v in qs):
        raise ValueError(f"q={q}; pass one or more quantiles in [0, 1]")
    relative_accuracy = _accuracy(relative_accuracy)
    mode = QuantileSketch.configure(relative_accuracy=relative_accuracy, q=qs)
    return _sketch_item(values, relative_accuracy, mask, mode)


class QuantileSketch(SumsMetric):
    """The log mode of :func:`quantiles`: summed bucket counts, reported as quantiles.

    Attributes:
        relative_accuracy: The sketch's relative accuracy.
        q: The quantiles, increasing; each is reported as ``key_p<100 q>``.
    """

    relative_accuracy = static(0.01)
    q = static((0.5, 0.9, 0.99))

    @classmethod
    def parts_of(cls, options: Mapping[str, Any]) -> tuple[str, ...]:
        # 0.99999999 -> p99.999999, not p100
        return tuple(f"_p{100 * v:.12g}" for v in options["q"])

    def finish(self, sums: np.ndarray, count: np.ndarray) -> tuple[float, ...]:
        return _quantiles(sums, count, self.relative_accuracy, self.q)


class HistogramSketch(SumsMetric):
    """The log mode of :func:`histogram`: summed bucket counts, reported as a
    :class:`Histogram`.

    Attributes:
        relative_accuracy: The sketch's relative accuracy.
    """

    relative_accuracy = static(0.01)

    def finish(self, sums: np.ndarray, count: np.ndarray) -> Histogram:
        counts = np.asarray(sums, np.int64)
        edges = _edges(self.relative_accuracy)
        nans = int(count) - int(counts.sum())  # every unmasked value counts once
        used = np.flatnonzero(counts)
        if used.size == 0:
            return Histogram(edges[:1], counts[:0], nans)
        first, last = used[0], used[-1]
        return Histogram(edges[first : last + 2], counts[first : last + 1], nans)


def histogram(values: Any, *, relative_accuracy: float = 0.01, mask: Any = None) -> dict[str, Any]:
    """The distribution of a stream of values as a :class:`Histogram` (see :func:`quantiles`)."""
    relative_accuracy = _accuracy(relative_accuracy)
    mode = HistogramSketch.configure(relative_accuracy=relative_accuracy)
    return _sketch_item(values, relative_accuracy, mask, mode)
