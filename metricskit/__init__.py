"""metricskit: exact, fast, distributed metrics for JAX training loops.

The class API (:class:`MetricStore` over registered :class:`Metric` subclasses) is the engine;
:mod:`metricskit.functional` holds the drop-in functional API.
"""

from metricskit import exact, tasks
from metricskit._engine.store import KeyMetrics, MetricStore
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
from metricskit.checkpoint import CheckpointError
from metricskit.exact import divide
from metricskit.functional import LOGGER, aggregate_metrics, get_metrics, update_metrics
from metricskit.metric import (
    LogMode,
    Metric,
    Spec,
    get_log_mode,
    register_metric,
    registered_modes,
    state,
    static,
)

__version__ = "0.3.0"

__all__ = [
    "LOGGER",
    "CheckpointError",
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
    "Spec",
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
    "tasks",
    "update_metrics",
]
