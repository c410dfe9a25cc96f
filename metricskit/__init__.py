"""metricskit: exact, fast, distributed metrics for JAX training loops.

The class API (:class:`MetricStore` over registered :class:`Metric` subclasses) is the engine;
:mod:`metricskit.functional` holds the drop-in functional API.
"""

from metricskit import exact, tasks
from metricskit.builtin import MaxMetric, MeanMetric, MinMetric, SingleMetric, StdMetric
from metricskit.division import divide
from metricskit.fields import Spec, state, static
from metricskit.functional import LOGGER, aggregate_metrics, get_metrics, update_metrics
from metricskit.metric import Metric
from metricskit.nan_policy import NonFiniteMetric
from metricskit.persample import NoReduceMetric, NoReduceWCountMetric
from metricskit.registry import LogMode, get_log_mode, register_metric, registered_modes
from metricskit.store import KeyMetrics, MetricStore

__version__ = "0.3.0"

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
