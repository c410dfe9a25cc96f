"""metricskit: exact, fast, distributed metrics for JAX training loops.

The class API (:class:`MetricStore` over registered :class:`Metric` subclasses) is the engine;
:mod:`metricskit.functional` holds the drop-in functional API.
"""

from metricskit import exact
from metricskit.builtin import (
    MaxMetric,
    MeanMetric,
    MinMetric,
    NonFiniteMetric,
    NoReduceMetric,
    NoReduceWCountMetric,
    SingleMetric,
    StdMetric,
)
from metricskit.functional import aggregate_metrics, get_metrics, update_metrics
from metricskit.metric import Metric
from metricskit.numerics import divide
from metricskit.reductions import state, static
from metricskit.registry import LogMode, get_log_mode, register_metric, registered_modes
from metricskit.store import LOGGER, KeyMetrics, MetricStore

__version__ = "0.1.0"

__all__ = [
    "LOGGER",
    "KeyMetrics",
    "LogMode",
    "MaxMetric",
    "MeanMetric",
    "Metric",
    "MetricStore",
    "MinMetric",
    "NoReduceMetric",
    "NoReduceWCountMetric",
    "NonFiniteMetric",
    "SingleMetric",
    "StdMetric",
    "aggregate_metrics",
    "divide",
    "exact",
    "get_log_mode",
    "get_metrics",
    "register_metric",
    "registered_modes",
    "state",
    "static",
    "update_metrics",
]
