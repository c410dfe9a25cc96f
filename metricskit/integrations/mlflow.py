"""An MLflow sink: computed metrics logged to an MLflow run (``mlflow`` extra).

:class:`MlflowSink` logs each write as one ``MlflowClient.log_batch`` call: every metric at
the write's step, arrays summarized by :func:`~metricskit.sinks.summarize` (``name/mean``,
``name/std``, ``name/min``, ``name/max``, ``name/n``), as the built-in sinks write them.
MLflow stores metrics as float64: integers beyond 2**53 are rounded.

MLflow restricts metric names (they may become file paths): only letters, digits, ``_``,
``-``, ``.``, space and ``/``, a normalized relative path (no leading or doubled ``/``, no
``.`` or ``..`` parts), at most 250 characters. The sink checks every name once, before
logging anything, and raises ``ValueError`` naming it; ``sanitize=True`` writes ``_`` for
each character (or empty, ``.`` or ``..`` path part) that is not allowed instead. (Newer
MLflow also accepts ``:`` outside Windows; the sink keeps to what every version and platform
accepts.)
"""

from __future__ import annotations

import os
import posixpath
import re
import time
from collections.abc import Mapping
from typing import Any

from metricskit.sinks import checked_step, require, summarize

__all__ = ["MAX_NAME_LENGTH", "MlflowSink", "mlflow_name"]

MAX_NAME_LENGTH = 250
"""The longest metric name MLflow accepts."""

_NOT_ALLOWED = re.compile(r"[^\w./\- ]")


def _problem(name: str) -> str | None:
    """Why MLflow refuses ``name`` as a metric name, or ``None``."""
    bad = sorted(set(_NOT_ALLOWED.findall(name)))
    if bad:
        return (
            f"has the characters {bad}; MLflow allows letters, digits, '_', '-', '.', ' ' and '/'"
        )
    norm = posixpath.normpath(name)
    if norm != name or norm == "." or norm.startswith(("..", "/")):
        return (
            f"is not a normalized relative path (MLflow would read it as {norm!r}): no leading, "
            "trailing or doubled '/', and no '.' or '..' parts"
        )
    if len(name) > MAX_NAME_LENGTH:
        return f"is {len(name)} characters long; MLflow allows {MAX_NAME_LENGTH}"
    return None


def mlflow_name(name: str, sanitize: bool = False) -> str:
    """The MLflow metric name of a reported metric name.

    Args:
        name: A name as :func:`~metricskit.sinks.summarize` reports it.
        sanitize: Replace each character MLflow does not allow with ``_`` (and each empty,
            ``.`` or ``..`` part of the ``/``-separated path) instead of raising.

    Returns:
        ``name`` itself if MLflow accepts it, else (with ``sanitize``) the replacement.

    Raises:
        ValueError: If MLflow would refuse the name (with ``sanitize``: if the replacement is
            still refused, e.g. too long), naming it and the fix.

    Examples:
        >>> from metricskit.integrations.mlflow import mlflow_name
        >>> mlflow_name("train/loss_mean"), mlflow_name("acc@1 (val)", sanitize=True)
        ('train/loss_mean', 'acc_1 _val_')
    """
    problem = _problem(name)
    if problem is None:
        return name
    if sanitize:
        fixed = _NOT_ALLOWED.sub("_", name)
        fixed = "/".join(p if p not in ("", ".", "..") else "_" for p in fixed.split("/"))
        fixed = "_" + fixed[1:] if fixed.startswith("..") else fixed
        still = _problem(fixed)
        if still is None:
            return fixed
        problem = f"is {fixed!r} with its characters replaced, which {still}"
    fix = "" if sanitize else ", or pass sanitize=True to replace what MLflow does not allow"
    raise ValueError(f"metric name {name!r} {problem}; rename the key in the step metrics{fix}")


class MlflowSink:
    """Computed metrics to an MLflow run, one ``log_batch`` per write.

    Args:
        run_id: An existing run to log to (e.g. ``mlflow.active_run().info.run_id``); the
            sink leaves it open. ``None`` (default) creates a run, which :meth:`close` ends
            as ``FINISHED``.
        experiment: The name of the experiment of a new run (created if it does not exist;
            default: MLflow's default experiment).
        tracking_uri: Where MLflow tracks (``"sqlite:///mlflow.db"``, ``"http://..."``,
            ``"file:///..."``; default: MLflow's own, i.e. ``MLFLOW_TRACKING_URI``).
        run_name: The name of a new run.
        tags: Tags of a new run.
        sanitize: Replace characters MLflow does not allow in metric names instead of
            raising (see :func:`mlflow_name`).

    Attributes:
        client: The ``mlflow.tracking.MlflowClient`` (for params, tags, artifacts).
        run_id: The run logged to.

    Raises:
        ImportError: Without the ``mlflow`` extra (``pip install "metricskit[mlflow]"``).
        ValueError: For ``run_id`` together with the options of a new run, or when MLflow's
            default tracking store cannot be opened (its SQLite default needs SQLAlchemy,
            which ``mlflow-skinny`` does not install): pass ``tracking_uri``.
    """

    def __init__(
        self,
        run_id: str | None = None,
        *,
        experiment: str | None = None,
        tracking_uri: str | os.PathLike[str] | None = None,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        sanitize: bool = False,
    ):
        tracking = require("mlflow.tracking", "mlflow", "MlflowSink")
        self._metric = require("mlflow.entities", "mlflow", "MlflowSink").Metric
        uri = None if tracking_uri is None else os.fspath(tracking_uri)
        try:
            self.client: Any = tracking.MlflowClient(tracking_uri=uri)
        except Exception as e:  # MLflow's default store needs what mlflow-skinny lacks
            if uri is not None or os.environ.get("MLFLOW_TRACKING_URI"):
                raise
            raise ValueError(
                "MlflowSink: MLflow's default tracking store could not be opened "
                f"({type(e).__name__}: {str(e).strip()[:200]}); pass tracking_uri, e.g. "
                "tracking_uri='file:./mlruns' (a local folder, no server), or install "
                "SQLAlchemy for MLflow's default 'sqlite:///mlflow.db'"
            ) from e
        self.sanitize = sanitize
        self._names: dict[str, str] = {}
        self._sources: dict[str, str] = {}
        self._closed = False
        if run_id is not None:
            given = {"experiment": experiment, "run_name": run_name, "tags": tags}
            options = [k for k, v in given.items() if v is not None]
            if options:
                raise ValueError(
                    f"MlflowSink(run_id={run_id!r}) logs to an existing run, so {options} "
                    "cannot apply; pass either run_id or the options of a new run"
                )
            self.run_id: str = self.client.get_run(run_id).info.run_id
            self._owned = False
            return
        if experiment is None:
            experiment_id = require(
                "mlflow.tracking.default_experiment", "mlflow", "MlflowSink"
            ).DEFAULT_EXPERIMENT_ID
        else:
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = (
                found.experiment_id if found else self.client.create_experiment(experiment)
            )
        run = self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags or {}))
        self.run_id = run.info.run_id
        self._owned = True

    def _name(self, name: str) -> str:
        out = self._names.get(name)
        if out is None:
            out = mlflow_name(name, self.sanitize)
            other = self._sources.setdefault(out, name)
            if other != name:
                raise ValueError(
                    f"metric names {other!r} and {name!r} are both {out!r} in MLflow; rename "
                    "one of the keys"
                )
            self._names[name] = out
        return out

    def write(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Log every summarized metric at ``step``, in one batch.

        Args:
            step: The training step.
            metrics: What :meth:`MetricStore.compute <metricskit.MetricStore.compute>`
                returns.

        Raises:
            ValueError: For a metric name MLflow refuses (see :func:`mlflow_name`), a step
                that is not a non-negative whole number, or a write after :meth:`close`,
                before anything of this write is logged.
        """
        step = checked_step(step, "MlflowSink", self._closed)
        flat = summarize(metrics)
        names = [self._name(name) for name in flat]  # all checked before logging
        if not names:
            return
        now = int(time.time() * 1000)
        batch = [
            self._metric(name, float(value), now, step)
            for name, value in zip(names, flat.values(), strict=True)
        ]
        self.client.log_batch(self.run_id, metrics=batch)

    def close(self) -> None:
        """End a run the sink created (``FINISHED``); a run passed in is left open."""
        if self._owned and not self._closed:
            self.client.set_terminated(self.run_id)
        self._closed = True
