"""The logger metricskit warns through (empty metrics, float64 values beyond float32)."""

from __future__ import annotations

import logging

LOGGER = logging.getLogger("metricskit")
"""The ``"metricskit"`` logger (``metricskit.LOGGER`` and ``metricskit.functional.LOGGER``)."""


def warn_empty_parts(call: str, metric: str, parts: int) -> None:
    """Report per-sample parts that were not appended because every value and count is zero.

    All zeros is a per-sample mode's empty state (a reset or zero-filled store), so such a
    part adds no samples; a real batch whose every value and count is 0 (a fully padded
    batch) cannot be told apart from it, and is dropped too. Nothing is dropped silently.

    Args:
        call: The call that combined them (``"aggregate_metrics"``).
        metric: The metric, as ``"'key' (log mode 'mode')"``.
        parts: How many parts (batches or stores) were not appended.
    """
    LOGGER.warning(
        "%s: %d %s of metric %s held only zeros (every value and count 0), the empty state of "
        "a per-sample mode (a reset or zero-filled store), and added no samples. If they were "
        "real batches (e.g. fully padded ones) the per-sample arrays are now shorter than the "
        "data: give padded samples a nonzero value or count, or skip logging such batches.",
        call,
        parts,
        "part" if parts == 1 else "parts",
        metric,
    )
