"""The functional API: drop-in facades over :class:`~metricskit.MetricStore`.

These functions have the signatures of the documented ``metrics`` module of a JAX trainer
(``update_metrics``, ``aggregate_metrics``, ``get_metrics``, ``_empty_val``,
``_update_single_metric`` and ``LOGGER``), so code written against it works after changing its
import line. Each is a few lines over the class API; no log mode is implemented twice.

What :func:`update_metrics` returns is a :class:`~metricskit.MetricStore`: a read-only mapping
of key -> per-mode states (``.items()``, ``[key]``, ``in``, ``len``) and a pytree with a handful
of leaves. What :func:`aggregate_metrics` returns is a plain mutable ``dict`` of key ->
per-mode states. Every function accepts either, ``None``, ``{}``, or any dict built from their
entries (renamed keys, several evaluation datasets, ``flax.core.unfreeze``).

Examples:
    >>> from metricskit.functional import get_metrics, update_metrics
    >>> metrics = None
    >>> for loss in (3.0, 1.0):
    ...     metrics = update_metrics(metrics, {"loss": loss, "acc": {"value": 6, "count": 8}})
    >>> metrics, host = get_metrics(metrics)
    >>> host
    {'acc': 0.75, 'loss': 2.0}
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from metricskit import log
from metricskit._engine import evaluation
from metricskit._engine.kernels import refuse_tracers
from metricskit._engine.store import MetricStore, host_value, sources_of

__all__ = [
    "LOGGER",
    "_empty_val",
    "_update_single_metric",
    "aggregate_metrics",
    "get_metrics",
    "update_metrics",
]

LOGGER = log.LOGGER
"""The logger of metricskit (the same object as ``metricskit.LOGGER``).

Empty metrics are reported through it: ``LOGGER.warning("Metric 'loss' (log mode 'mean'):
count 0 (no samples); reporting 0.0.")``.
"""

Metrics = MetricStore | Mapping[str, Any]


_EMPTY = MetricStore()  # immutable and leafless: one serves every ``None``


def _as_store(global_metrics: Metrics | None) -> MetricStore:
    if global_metrics is None:
        return _EMPTY
    if isinstance(global_metrics, MetricStore):
        return global_metrics
    if isinstance(global_metrics, Mapping):
        return MetricStore.from_mapping(global_metrics)
    raise TypeError(
        "global metrics must be None, the result of update_metrics or aggregate_metrics, or a "
        f"dict of their entries; got {type(global_metrics).__name__}"
    )


def update_metrics(
    global_metrics: Metrics | None,
    step_metrics: Mapping[str, Any],
    default_log_modes: Sequence[str] | None = None,
) -> MetricStore:
    """Update metrics with new values.

    Args:
        global_metrics: Global metrics to update. If `None`, a new dictionary is created.
        step_metrics: Metrics to update with.
        default_log_modes: The default log mode for the metrics. If `None`, only the mean will
            be logged. Otherwise, we log each of the modes specified. The metric key will be
            appended with the log mode.

    Returns:
        Updated global metrics: a read-only mapping of key -> per-mode states (and a pytree).

    Raises:
        ValueError: For an unknown log mode or a key whose shape changed (nothing updated).
        TypeError: For a non-numeric value (nothing updated).

    Examples:
        >>> from metricskit.functional import get_metrics, update_metrics
        >>> m = update_metrics({}, {"loss": 2.0}, default_log_modes=["mean", "max"])
        >>> m = update_metrics(m, {"loss": 4.0}, default_log_modes=["mean", "max"])
        >>> sorted(m["loss"]), get_metrics(m)[1]
        (['max', 'mean'], {'loss_max': 4.0, 'loss_mean': 3.0})
    """
    return _as_store(global_metrics).update(step_metrics, default_log_modes=default_log_modes)


def aggregate_metrics(aggregated_metrics: Metrics | None, batch_metrics: Metrics) -> dict[str, Any]:
    """Aggregates metrics of evaluation batches (appends the two ``noreduce`` modes).

    This function aggregates multiple metrics for the `single_noreduce` and
    `single_noreduce_wcount` case.
    For `single_noreduce` batches of single values are concatenated. The count is the number
    of samples. For `single_noreduce_wcount` batches of values are concatenated, as well as
    counts for each sample. This is needed for e.g. the loglikelihood per sequence.
    Concatenation happens in CPU memory after a conversion.

    The function returns batch_metrics in all other cases and moves them to CPU memory.

    Appending costs O(1) per batch: batches are referenced, and moved to the host and
    concatenated all at once when the result is first used. Until then the batch's device
    arrays must live: a store passed here and then donated to a jitted function
    (``donate_argnums``) before the first read makes that read a ``ValueError`` saying so;
    read the aggregate first, or pass a copy.

    Args:
        aggregated_metrics: Previously aggregated metrics to append to potentially.
        batch_metrics: Metrics from a batch

    Returns:
        Newly aggregated metrics: a plain ``dict`` of key -> per-mode states.

    Examples:
        >>> import numpy as np
        >>> from metricskit.functional import aggregate_metrics, get_metrics, update_metrics
        >>> agg = {}
        >>> for batch in (np.array([1.0, 2.0]), np.array([3.0])):
        ...     step = update_metrics(None, {"ll": {"value": batch, "count": batch.size,
        ...                                         "log_modes": ["single_noreduce"]}})
        ...     agg = aggregate_metrics(agg, step)
        >>> get_metrics(agg)[1]["ll_single_noreduce"].tolist()
        [1.0, 2.0, 3.0]
    """
    if not isinstance(batch_metrics, MetricStore | Mapping):  # a store answers first (cheap)
        raise TypeError(
            f"batch_metrics must be the metrics of one batch (update_metrics' result), got "
            f"{type(batch_metrics).__name__}"
        )
    checked = (
        batch_metrics.first_leaf() if isinstance(batch_metrics, MetricStore) else batch_metrics
    )
    refuse_tracers(checked, "aggregate_metrics")
    return evaluation.aggregate(aggregated_metrics, batch_metrics)


def _empty_val(value: Any) -> Any:
    """The empty value of the same kind as ``value``.

    Args:
        value: Any value.

    Returns:
        ``0`` for an int, ``""`` for a str, ``0.0`` for a float, zeros for a NumPy or JAX
        array, and ``value`` itself otherwise.

    Examples:
        >>> import numpy as np
        >>> from metricskit.functional import _empty_val
        >>> _empty_val(3), _empty_val(2.5), _empty_val("a"), _empty_val(np.ones(2))
        (0, 0.0, '', array([0., 0.]))
    """
    if isinstance(value, int):
        return 0
    if isinstance(value, str):
        return ""
    if isinstance(value, float):
        return 0.0
    if isinstance(value, np.ndarray):
        return np.zeros_like(value)
    if isinstance(value, jax.Array):
        return jnp.zeros_like(value)
    return value


def _update_single_metric(
    global_metrics: MutableMapping[str, Any],
    key: str,
    value: Any,
    count: Any,
    log_modes: Sequence[str] | None = None,
) -> None:
    """Update a single metric.

    Updates the host-side dict ``global_metrics`` in place (the one documented exception to
    "nothing passed in is mutated") and returns nothing.

    Args:
        global_metrics: Global metrics to update.
        key: Key of the metric to update.
        value: Value of the metric to update.
        count: Count of the metric to update.
        log_modes: The log modes for the metric.

    Raises:
        TypeError: If ``global_metrics`` is an immutable store (use :func:`update_metrics`),
            or for a non-numeric value.
        ValueError: For an unknown log mode or a changed shape.

    Examples:
        >>> from metricskit.functional import _update_single_metric, get_metrics
        >>> host = {}
        >>> _update_single_metric(host, "tokens", 300, 3, ["mean", "single"])
        >>> _update_single_metric(host, "tokens", 100, 1, ["mean", "single"])
        >>> get_metrics(host)[1]
        {'tokens_mean': 100.0, 'tokens_single': 100.0}
    """
    if not isinstance(global_metrics, MutableMapping):
        raise TypeError(
            f"_update_single_metric updates a host-side dict in place, got "
            f"{type(global_metrics).__name__}; use update_metrics for a MetricStore"
        )
    existing = global_metrics.get(key)
    store = MetricStore() if existing is None else MetricStore.from_mapping({key: existing})
    item: dict[str, Any] = {"value": value, "count": count}
    if log_modes is not None:
        item["log_modes"] = log_modes
    global_metrics[key] = store.update({key: item}, default_log_modes=None)[key]


def get_metrics(
    global_metrics: Metrics, reset_metrics: bool = True
) -> tuple[Metrics, dict[str, Any]]:
    """Calculates metrics to log from global metrics.

    Supports resetting the global metrics after logging. For example, if the global metrics
    are logged every epoch, the global metrics can be reset after obtaining the metrics to log
    such that the next epoch starts with empty metrics.

    Args:
        global_metrics: Global metrics to log.
        reset_metrics: Whether to reset the metrics after logging.

    Returns:
        The updated global metrics if reset_metrics is `True`, otherwise the original global
        metrics. Additionally, the metrics to log on the host device are returned.

    Examples:
        >>> from metricskit.functional import get_metrics, update_metrics
        >>> m = update_metrics(None, {"acc": {"value": 3, "count": 4}})
        >>> m, host = get_metrics(m)
        >>> host
        {'acc': 0.75}
    """
    if isinstance(global_metrics, MetricStore):
        store, passthrough = global_metrics, {}
    elif isinstance(global_metrics, Mapping):
        entries = {k: v for k, v in global_metrics.items() if sources_of(k, v) is not None}
        passthrough = {k: v for k, v in global_metrics.items() if k not in entries}
        store = MetricStore.from_mapping(entries)
    else:
        raise TypeError(
            "get_metrics takes the result of update_metrics or aggregate_metrics, or a dict of "
            f"their entries; got {type(global_metrics).__name__} (nothing to report: call "
            "update_metrics first)"
        )
    refuse_tracers(store.first_leaf(), "get_metrics")  # one leaf tells: no flattening
    host = store.compute()
    for key, value in passthrough.items():  # plain values pass through, as documented
        host[key] = host_value(jax.device_get(value)) if _numeric(value) else value
    if not reset_metrics:
        return global_metrics, host
    reset = store.reset()
    if isinstance(global_metrics, MetricStore):
        return reset, host
    entries_reset = {key: reset.get(key, value) for key, value in global_metrics.items()}
    return _like(global_metrics, entries_reset), host


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float | np.ndarray | np.generic | jax.Array) and not isinstance(
        value, bool
    )


def _like(original: Mapping[str, Any], entries: dict[str, Any]) -> Mapping[str, Any]:
    """``entries`` in the mapping type of ``original`` (a dict, or e.g. a flax FrozenDict)."""
    if type(original) is dict:
        return entries
    try:
        return type(original)(entries)  # type: ignore[call-arg]
    except TypeError:
        return entries
