"""Reported metrics as plain numbers and text: summaries of arrays, JSON values, tables.

What ``compute()`` returns holds Python numbers, NumPy arrays, ``(values, counts)`` tuples of
the ``single_noreduce_wcount`` mode and :class:`~metricskit.tasks.Histogram` objects; the sinks
need flat numbers (:func:`summarize`), JSON (:func:`json_value`) or text (:func:`format_table`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from metricskit.tasks.sketch import Histogram

__all__ = ["format_table", "json_value", "summarize"]


def _scalar(x: Any) -> float | int:
    if isinstance(x, bool | np.bool_):
        return int(x)
    if isinstance(x, int | np.integer):
        return int(x)
    return float(x)


def summarize(metrics: Mapping[str, Any]) -> dict[str, float | int]:
    """Scalars as they are; each array as its mean, std, min, max and size.

    Args:
        metrics: Reported metrics (Python numbers, NumPy arrays, or ``(values, counts)``
            tuples of the ``single_noreduce_wcount`` mode).

    Returns:
        A flat dict of Python numbers. An array ``a`` under ``name`` becomes ``name/mean``,
        ``name/std``, ``name/min``, ``name/max`` and ``name/n``; a ``(values, counts)`` pair
        adds ``name/weighted_mean`` (``sum(values) / sum(counts)``, e.g. the per-token
        log-likelihood). An empty array gives only ``name/n = 0``.

    Examples:
        >>> import numpy as np
        >>> from metricskit.sinks import summarize
        >>> summarize({"loss": 0.5, "ll": np.array([1.0, 3.0])})
        {'loss': 0.5, 'll/mean': 2.0, 'll/std': 1.0, 'll/min': 1.0, 'll/max': 3.0, 'll/n': 2}
    """
    out: dict[str, float | int] = {}
    for name, value in metrics.items():
        if isinstance(value, Histogram):
            out.update(_histogram_summary(name, value))
            continue
        counts = None
        if isinstance(value, tuple):
            value, counts = value
        if np.ndim(value) == 0 and counts is None:
            out[name] = _scalar(value)
            continue
        a = np.asarray(value, np.float64).ravel()
        if a.size:
            with np.errstate(all="ignore"):  # NaN and inf are values here, not warnings
                stats = (a.mean(), a.std(), a.min(), a.max())
            out.update(
                {
                    f"{name}/mean": float(stats[0]),
                    f"{name}/std": float(stats[1]),
                    f"{name}/min": float(stats[2]),
                    f"{name}/max": float(stats[3]),
                }
            )
        out[f"{name}/n"] = int(a.size)
        if counts is not None and a.size:
            total = float(np.sum(np.asarray(counts, np.float64)))
            out[f"{name}/weighted_mean"] = float(a.sum()) / total if total else 0.0
    return out


def _histogram_summary(name: str, h: Histogram) -> dict[str, float | int]:
    """A histogram's sample count, its mean from the bucket centres, its min and max as the
    outer edges of the occupied buckets, and its NaN count when there are NaNs."""
    counts = np.asarray(h.counts, np.float64)
    total = int(counts.sum())
    nans = {f"{name}/nan_count": h.nan_count} if h.nan_count else {}
    if not total:
        return {f"{name}/n": 0, **nans}
    centres = (np.asarray(h.edges[:-1]) + np.asarray(h.edges[1:])) / 2
    used = np.flatnonzero(counts)
    return {
        f"{name}/mean": float(np.sum(centres * counts) / total),
        f"{name}/min": float(h.edges[used[0]]),
        f"{name}/max": float(h.edges[used[-1] + 1]),
        f"{name}/n": total,
        **nans,
    }


def json_value(x: Any) -> Any:
    if isinstance(x, Histogram):
        out = {"edges": np.asarray(x.edges).tolist(), "counts": np.asarray(x.counts).tolist()}
        return {**out, "nan_count": x.nan_count} if x.nan_count else out
    if isinstance(x, tuple):
        return [json_value(v) for v in x]
    if np.ndim(x) == 0:
        v = _scalar(x)
        return v if not (isinstance(v, float) and not math.isfinite(v)) else str(v)
    a = np.asarray(x)
    if a.dtype.kind == "f" and not np.isfinite(a).all():  # JSON has no NaN: strings, as scalars
        cells = a.astype(np.float64).astype(object)
        bad = ~np.isfinite(a)
        cells[bad] = [str(float(v)) for v in a[bad]]
        return cells.tolist()
    return a.tolist()


def format_table(rows: Sequence[tuple[str, Any]], title: str | None = None) -> str:
    """A two-column text table of names and values.

    Args:
        rows: ``(name, value)`` pairs.
        title: A heading line, if any.

    Returns:
        The table, lines joined with newlines.

    Examples:
        >>> from metricskit.sinks import format_table
        >>> print(format_table([("loss", 0.25), ("n", 3)], title="eval"))
        eval
        ----------
        loss  0.25
        n        3
    """
    cells = [(name, _cell(value)) for name, value in rows]
    left = max((len(n) for n, _ in cells), default=0)
    right = max((len(v) for _, v in cells), default=0)
    lines = [f"{n:<{left}}  {v:>{right}}" for n, v in cells]
    if title is not None:
        lines = [title, "-" * max(len(title), left + right + 2), *lines]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
