"""A Weights & Biases sink: computed metrics logged to a W&B run (``wandb`` extra).

:class:`WandbSink` logs each write with ``run.log(metrics, step=step)``: scalars as they are,
arrays summarized by :func:`~metricskit.sinks.summarize` (``name/mean``, ``name/std``,
``name/min``, ``name/max``, ``name/n``), as the built-in sinks write them, and
:class:`~metricskit.tasks.Histogram` results also as ``wandb.Histogram`` (with at most W&B's
512 buckets: adjacent buckets are merged, counts added, when there are more).

W&B keeps one history row per step and drops a ``log`` whose step is lower than the run's
current one (with a warning); the sink raises ``ValueError`` instead. Offline runs
(``mode="offline"``) are written under ``dir`` and uploaded later with ``wandb sync``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from metricskit.sinks import checked_step, require, summarize
from metricskit.tasks.sketch import Histogram

__all__ = ["MAX_BUCKETS", "WandbSink", "coarsen"]

MAX_BUCKETS = 512
"""The most buckets a ``wandb.Histogram`` holds."""


def coarsen(histogram: Histogram, max_buckets: int = MAX_BUCKETS) -> Histogram:
    """At most ``max_buckets`` buckets, merging runs of adjacent buckets (counts added).

    Args:
        histogram: The histogram.
        max_buckets: The most buckets to keep (at least 1).

    Returns:
        ``histogram`` itself if it has few enough buckets, else one whose buckets each merge
        ``ceil(n / max_buckets)`` adjacent ones (the last may merge fewer): the same samples,
        at coarser edges taken from the original ones.

    Raises:
        ValueError: If ``max_buckets`` is less than 1.

    Examples:
        >>> import numpy as np
        >>> from metricskit.integrations.wandb import coarsen
        >>> from metricskit.tasks import Histogram
        >>> h = coarsen(Histogram(np.arange(6.0), np.array([1, 2, 3, 4, 5])), max_buckets=2)
        >>> h.edges.tolist(), h.counts.tolist()
        ([0.0, 3.0, 5.0], [6, 9])
    """
    if max_buckets < 1:
        raise ValueError(f"max_buckets={max_buckets}; it must be at least 1")
    counts = np.asarray(histogram.counts)
    n = counts.size
    if n <= max_buckets:
        return histogram
    starts = np.arange(0, n, -(-n // max_buckets))
    edges = np.asarray(histogram.edges)
    return Histogram(np.append(edges[starts], edges[-1]), np.add.reduceat(counts, starts))


class WandbSink:
    """Computed metrics to a W&B run, one ``run.log`` per write.

    Args:
        run: An existing run (what ``wandb.init`` returned) to log to; the sink does not
            finish it. ``None`` (default) starts one with ``wandb.init`` and the arguments
            below, which :meth:`close` finishes.
        project: The project of a new run.
        dir: The folder of a new run's files (created if missing).
        mode: ``"online"``, ``"offline"`` or ``"disabled"`` (default: W&B's own, i.e.
            ``WANDB_MODE``, else online).
        name: The display name of a new run.
        config: The config (hyperparameters) of a new run.
        histograms: Also log :class:`~metricskit.tasks.Histogram` results as
            ``wandb.Histogram`` (default ``True``); their summaries are logged either way.
        **init_kwargs: More ``wandb.init`` arguments (``entity``, ``group``, ``tags``, ...).

    Attributes:
        run: The W&B run logged to.

    Raises:
        ImportError: Without the ``wandb`` extra (``pip install "metricskit[wandb]"``).
        ValueError: For ``run`` together with arguments of a new run.
    """

    def __init__(
        self,
        run: Any = None,
        *,
        project: str | None = None,
        dir: str | os.PathLike[str] | None = None,
        mode: str | None = None,
        name: str | None = None,
        config: Mapping[str, Any] | None = None,
        histograms: bool = True,
        **init_kwargs: Any,
    ):
        self._wandb = require("wandb", "wandb", "WandbSink")
        self.histograms = histograms
        self._last: int | None = None
        self._closed = False
        given = {"project": project, "dir": dir, "mode": mode, "name": name, "config": config}
        options = {k: v for k, v in given.items() if v is not None} | init_kwargs
        if run is not None:
            if options:
                raise ValueError(
                    f"WandbSink(run=...) logs to an existing run, so {sorted(options)} cannot "
                    "apply; pass either run or the wandb.init arguments of a new run"
                )
            self.run: Any = run
            self._owned = False
            return
        if dir is not None:
            options["dir"] = os.fspath(dir)
            os.makedirs(options["dir"], exist_ok=True)
        self.run = self._wandb.init(**options)
        self._owned = True

    def write(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Log every summarized metric (and histograms) at ``step``.

        Args:
            step: The training step; steps must not decrease.
            metrics: What :meth:`MetricStore.compute <metricskit.MetricStore.compute>`
                returns.

        Raises:
            ValueError: If ``step`` is lower than the last step this sink wrote (W&B would
                drop it), not a non-negative whole number, or after :meth:`close`.
        """
        step = checked_step(step, "WandbSink", self._closed)
        if self._last is not None and step < self._last:
            raise ValueError(
                f"step {step} is lower than the last step written, {self._last}; W&B drops a "
                "log whose step is lower than the run's current one: write steps in increasing "
                "order, or start a new run"
            )
        data: dict[str, Any] = dict(summarize(metrics))
        if self.histograms:
            for key, value in metrics.items():
                if isinstance(value, Histogram) and int(np.sum(value.counts)):
                    h = coarsen(value)
                    data[key] = self._wandb.Histogram(
                        np_histogram=(np.asarray(h.counts).tolist(), np.asarray(h.edges).tolist())
                    )
        self.run.log(data, step=step)
        self._last = step

    def close(self) -> None:
        """Finish a run the sink started (uploading an online one); a run passed in is left
        open."""
        if self._owned and not self._closed:
            self.run.finish()
        self._closed = True
