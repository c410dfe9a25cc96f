"""Curves of a run: one panel per metric of a JSON-lines log (needs the ``plot`` extra).

``python -m metricskit plot runs/demo/metrics.jsonl -o curves.png`` calls :func:`plot_jsonl`.
matplotlib is imported when a plot is made, with the object API and the Agg canvas, so no
display and no global pyplot state are involved.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from metricskit.sinks import read_jsonl, require

__all__ = ["plot_jsonl", "plot_records"]


def plot_records(
    records: Sequence[dict[str, Any]],
    output: str | os.PathLike[str],
    metrics: Sequence[str] | None = None,
    title: str | None = None,
) -> list[str]:
    """Plot each numeric metric of ``records`` against ``step`` in its own panel, to a PNG.

    Args:
        records: Dicts with a ``"step"`` and metric values (as :func:`read_jsonl` returns).
        output: The image file to write (its suffix picks the format, e.g. ``.png``).
        metrics: The metrics to plot, in order (default: every numeric one, first-seen order).
        title: A title over the panels.

    Returns:
        The plotted metric names.

    Raises:
        ImportError: Without matplotlib (``pip install "metricskit[plot]"``).
        ValueError: If there is nothing to plot, or a requested metric is not in the log.
    """
    require("matplotlib", "plot", "plotting metrics")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    seen: dict[str, None] = {}
    for record in records:
        for name, value in record.items():
            if name != "step" and isinstance(value, int | float) and not isinstance(value, bool):
                seen[name] = None
    names = list(seen) if metrics is None else list(metrics)
    missing = [n for n in names if n not in seen]
    if missing:
        raise ValueError(f"metrics {missing} are not in the log; it has {list(seen)}")
    if not names:
        raise ValueError("the log has no numeric metrics to plot")
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(4.2 * cols, 2.8 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        points = [(r["step"], r[name]) for r in records if name in r]
        ax.plot(
            [p[0] for p in points], [p[1] for p in points], marker="." if len(points) < 30 else None
        )
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fig.savefig(os.fspath(output), dpi=90)
    return names


def plot_jsonl(
    path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    metrics: Sequence[str] | None = None,
) -> list[str]:
    """Plot a JSON-lines log written by :class:`~metricskit.sinks.JsonlSink`.

    Args:
        path: The ``metrics.jsonl`` file.
        output: The image file to write.
        metrics: The metrics to plot (default: all numeric ones).

    Returns:
        The plotted metric names.
    """
    return plot_records(read_jsonl(path), output, metrics, title=os.fspath(path))
