"""The store: parsing, layout, planning, packing, the compiled engine and the facade.

The path of one step: :mod:`~metricskit.store.parse` (step dict -> entries) ->
:mod:`~metricskit.store.plan` (entries + layout -> plan, cached) -> :mod:`~metricskit.store.pack`
(entries -> stacked inputs) -> :mod:`~metricskit.store.engine` (one compiled update) ->
:class:`MetricStore` (a new immutable store). Reporting goes :mod:`~metricskit.store.engine`
(compute) -> :mod:`~metricskit.store.results` (host values by name).
"""

from metricskit.store.entries import KeyMetrics
from metricskit.store.store import MetricStore

__all__ = ["KeyMetrics", "MetricStore"]
