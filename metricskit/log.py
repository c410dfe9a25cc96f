"""The logger metricskit warns through (empty metrics, float64 values beyond float32)."""

from __future__ import annotations

import logging

__all__ = ["LOGGER"]

LOGGER = logging.getLogger("metricskit")
"""The ``"metricskit"`` logger (``metricskit.LOGGER`` and ``metricskit.functional.LOGGER``)."""
