"""The engine behind :class:`metricskit.MetricStore`, in the order a step's data flows.

:mod:`~metricskit._engine.step` (a step dict -> entries -> layout and plan -> packed inputs) ->
:mod:`~metricskit._engine.kernels` (the compiled update, compute and aggregate; the flat
leaves of a store) -> :mod:`~metricskit._engine.distributed` (devices and processes) ->
:mod:`~metricskit._engine.store` (the :class:`~metricskit.MetricStore` facade and its
results) -> :mod:`~metricskit._engine.evaluation` (evaluation batches appended on the host).
Nothing here is public: :mod:`metricskit` is the API.
"""
