"""clu metric writers as sinks (``clu`` extra).

:class:`CluWriterSink` makes any ``clu.metric_writers.MetricWriter`` (``LoggingWriter``,
``SummaryWriter``, ``AsyncWriter``, ``MultiWriter``, what ``create_default_writer`` returns)
a :class:`~metricskit.sinks.Sink`; :func:`write_scalars` writes one result with a writer you
keep using yourself. Scalars go through ``write_scalars``, arrays as
:func:`~metricskit.sinks.summarize` summarizes them (``name/mean``, ``name/std``, ...), as the
built-in sinks write them; with ``histograms=True`` the per-sample arrays (the ``noreduce``
modes) also go through ``write_histograms``, which buckets them.

Nothing here imports clu: the writer is what you pass. clu's ``metric_writers`` package
imports TensorFlow and TensorBoard, which clu does not install itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from metricskit.sinks import checked_step, summarize
from metricskit.tasks.sketch import Histogram

__all__ = ["CluWriterSink", "per_sample_arrays", "write_scalars"]


def _check_writer(writer: Any, methods: tuple[str, ...]) -> None:
    missing = [m for m in methods if not callable(getattr(writer, m, None))]
    if missing:
        raise TypeError(
            f"writer is a {type(writer).__name__}, which has no {missing}; pass a clu "
            "metric writer, e.g. clu.metric_writers.create_default_writer(logdir)"
        )


def write_scalars(writer: Any, step: int, metrics: Mapping[str, Any]) -> None:
    """Write computed metrics with a clu writer's ``write_scalars``, arrays summarized.

    Args:
        writer: A ``clu.metric_writers.MetricWriter``.
        step: The training step.
        metrics: What :meth:`MetricStore.compute <metricskit.MetricStore.compute>` returns.

    Raises:
        TypeError: If ``writer`` has no ``write_scalars`` method.
    """
    _check_writer(writer, ("write_scalars",))
    scalars = summarize(metrics)
    if scalars:
        writer.write_scalars(int(step), scalars)


def per_sample_arrays(metrics: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The non-empty arrays among computed metrics, for ``write_histograms``.

    Args:
        metrics: What :meth:`MetricStore.compute <metricskit.MetricStore.compute>` returns.

    Returns:
        ``{name: values}`` for every array result (the values of a ``(values, counts)``
        pair); scalars and :class:`~metricskit.tasks.Histogram` results (already bucketed)
        are left out.
    """
    out = {}
    for name, value in metrics.items():
        if isinstance(value, Histogram):
            continue
        if isinstance(value, tuple):
            value = value[0]
        if np.ndim(value) and np.size(value):
            out[name] = np.asarray(value)
    return out


class CluWriterSink:
    """A clu ``MetricWriter`` as a sink.

    Args:
        writer: The clu metric writer.
        histograms: Also write per-sample arrays with ``write_histograms`` (default
            ``False``: their summaries only).
        close_writer: Close the writer in :meth:`close` (default ``True``; ``False`` only
            flushes it, for a writer used elsewhere too).

    Attributes:
        writer: The clu writer.

    Raises:
        TypeError: If ``writer`` lacks the methods of a clu metric writer this sink calls.
    """

    def __init__(self, writer: Any, *, histograms: bool = False, close_writer: bool = True):
        methods = ("write_scalars", "flush", "close")
        _check_writer(writer, (*methods, "write_histograms") if histograms else methods)
        self.writer = writer
        self.histograms = histograms
        self.close_writer = close_writer
        self._closed = False

    def write(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Write every summarized metric at ``step`` (and, with ``histograms``, the arrays):
        ``step`` is the training step and ``metrics`` what :meth:`MetricStore.compute
        <metricskit.MetricStore.compute>` returns.

        Raises:
            ValueError: For a step that is not a non-negative whole number, or after
                :meth:`close`.
        """
        step = checked_step(step, "CluWriterSink", self._closed)
        write_scalars(self.writer, step, metrics)
        arrays = per_sample_arrays(metrics) if self.histograms else {}
        if arrays:
            self.writer.write_histograms(step, arrays)

    def close(self) -> None:
        """Flush the writer, and close it unless ``close_writer=False`` (once)."""
        if self._closed:
            return
        self.writer.flush()
        if self.close_writer:
            self.writer.close()
        self._closed = True
