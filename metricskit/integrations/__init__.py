"""Integrations with other tools of a JAX training loop; each imports its library when used.

- :mod:`metricskit.integrations.orbax`: checkpoint stores with Orbax as part of a training
  state (the restore target, and a check of the keys that Orbax does not record)
  (``orbax`` extra).
- :mod:`metricskit.integrations.mlflow`: :class:`~metricskit.integrations.mlflow.MlflowSink`
  logs to an MLflow run (``mlflow`` extra).
- :mod:`metricskit.integrations.wandb`: :class:`~metricskit.integrations.wandb.WandbSink`
  logs to a Weights & Biases run (``wandb`` extra).
- :mod:`metricskit.integrations.clu`: :class:`~metricskit.integrations.clu.CluWriterSink`
  makes a clu ``MetricWriter`` a sink, and
  :func:`~metricskit.integrations.clu.write_scalars` writes results to one (``clu`` extra).

The submodules are not imported by ``import metricskit`` nor by this package: import the one
you use, e.g. ``from metricskit.integrations.mlflow import MlflowSink``. Each sink follows the
:class:`~metricskit.sinks.Sink` protocol and writes arrays as
:func:`~metricskit.sinks.summarize` summarizes them, as the built-in sinks do.
"""

from __future__ import annotations

__all__: list[str] = []
