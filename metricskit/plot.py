"""Curves of a run: one panel per metric of a JSON-lines log (needs the ``plot`` extra).

``python -m metricskit plot runs/demo/metrics.jsonl -o curves.png`` calls :func:`plot_jsonl`.
matplotlib is imported when a plot is made, with the object API and the Agg canvas, so no
display and no global pyplot state are involved.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from metricskit.sinks import read_jsonl, require

__all__ = ["NothingToPlotError", "families", "plot_jsonl", "plot_records"]


class NothingToPlotError(ValueError):
    """The log has no metric with two points or more (e.g. a run with one log row)."""


_EVAL = "eval_"
_STAT = re.compile(r"^(?P<family>.+?)(?:[_/](?P<stat>mean|std|max|min|n|p\d+(?:\.\d+)?))?$")


def families(names: Sequence[str]) -> dict[str, list[tuple[str, str, str]]]:
    """Group metric names into panels: family -> ``(split, stat, name)``, first-seen order.

    ``eval_`` names are the evaluation split of the training metric without the prefix;
    a ``_mean``, ``_std``, ``_max``, ``_min`` or quantile (``_p90``) suffix (or ``/mean`` etc.
    of a summarized array) is a statistic of its family; a bare name is its own ``value``.

    Examples:
        >>> from metricskit.plot import families
        >>> panels = families(["loss_mean", "loss_max", "eval_loss", "tokens_per_s"])
        >>> list(panels), panels["loss"][2]
        (['loss', 'tokens_per_s'], ('eval', 'value', 'eval_loss'))
    """
    out: dict[str, list[tuple[str, str, str]]] = {}
    for name in names:
        split, base = ("eval", name[len(_EVAL) :]) if name.startswith(_EVAL) else ("train", name)
        match = _STAT.match(base)
        family, stat = (match["family"], match["stat"]) if match else (base, None)
        out.setdefault(family, []).append((split, stat or "value", name))
    return out


def plot_records(
    records: Sequence[dict[str, Any]],
    output: str | os.PathLike[str],
    metrics: Sequence[str] | None = None,
    title: str | None = None,
) -> list[str]:
    """Plot ``records`` against ``step``: one panel per metric family, to an image file.

    In a panel, each split (training, and ``eval_`` evaluation) draws its mean (or value)
    as a line, ``± std`` as a shaded band, the max dashed and the min dotted; quantiles are
    thin lines. Families with no more than one point are left out (a table shows them
    better), and so are sample counts (``/n``).

    Args:
        records: Dicts with a ``"step"`` and metric values (as :func:`read_jsonl` returns).
        output: The image file to write (its suffix picks the format, e.g. ``.png``).
        metrics: The metrics to plot (default: every numeric one, first-seen order).
        title: A title over the panels.

    Returns:
        The plotted families, in panel order.

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
    series = {n: [(r["step"], float(r[n])) for r in records if n in r] for n in names}
    panels = {
        family: members
        for family, members in families(names).items()
        if any(len(series[n]) > 1 for _, stat, n in members if stat != "n")
    }
    if not panels:
        if not names:
            raise NothingToPlotError("nothing to plot: the log has no numeric metric")
        raise NothingToPlotError(
            f"nothing to plot: every metric of {names} has at most one point; log more often"
        )
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.4 * cols, 3.0 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (family, members) in zip(axes, panels.items(), strict=False):
        _draw_family(ax, family, members, series)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fig.savefig(os.fspath(output), dpi=90)
    return list(panels)


_COLORS = {"train": "C0", "eval": "C1"}
_QUANTILE_STYLES = ("-", "--", "-.", ":")


def _draw_family(
    ax: Any,
    family: str,
    members: list[tuple[str, str, str]],
    series: dict[str, list[tuple[float, float]]],
) -> None:
    """One panel: each split's line, std band, max and min, and quantiles."""
    for split in ("train", "eval"):
        stats = {stat: series[n] for s, stat, n in members if s == split and stat != "n"}
        color = _COLORS[split]
        centre = stats.get("mean") or stats.get("value")
        if centre:
            steps, values = zip(*centre, strict=True)
            marker = "o" if len(centre) < 12 else None
            ax.plot(steps, values, color=color, marker=marker, ms=3, label=split)
            spread = dict(stats.get("std", []))
            band = [(x, y, spread[x]) for x, y in centre if x in spread]
            if band:
                xs, ys, sd = (np.asarray(c) for c in zip(*band, strict=True))
                ax.fill_between(xs, ys - sd, ys + sd, color=color, alpha=0.2, lw=0,
                                label=f"{split} ± std")  # fmt: skip
        for stat, style in (("max", "--"), ("min", ":")):
            if stats.get(stat):
                steps, values = zip(*stats[stat], strict=True)
                ax.plot(steps, values, color=color, ls=style, lw=1, label=f"{split} {stat}")
        quantiles = sorted((float(stat[1:]), stat) for stat in stats if stat.startswith("p"))
        for k, (_, stat) in enumerate(quantiles):  # each its own dash pattern, as a legend reads
            steps, values = zip(*stats[stat], strict=True)
            ax.plot(steps, values, color=color, lw=1.0, ls=_QUANTILE_STYLES[k % 4],
                    marker="o" if len(steps) < 12 else None, ms=2,
                    label=f"{split} {stat}")  # fmt: skip
    ax.locator_params(axis="x", integer=True)  # steps are whole numbers
    ax.set_title(family, fontsize=10)
    ax.set_ylabel(family, fontsize=8)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    if len(ax.get_legend_handles_labels()[0]) > 1:
        ax.legend(fontsize=7)


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
        The plotted families.
    """
    return plot_records(read_jsonl(path), output, metrics, title=os.fspath(path))
