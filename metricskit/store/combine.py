"""Combining two stores whose layouts differ, key by key (``MetricStore.aggregate``)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import jax
import numpy as np

from metricskit.log import warn_empty_parts
from metricskit.metric import Metric, per_sample, sample_fields
from metricskit.registry import Mode, mode_order
from metricskit.store import host
from metricskit.store.entries import KeyMetrics
from metricskit.store.layout import Signature, signature_of

__all__ = [
    "aggregate_entries",
    "combinable",
    "differ_in_samples_only",
    "drops_empty",
    "is_all_zero",
]


def aggregate_entries(
    first: Mapping[str, KeyMetrics], second: Mapping[str, KeyMetrics]
) -> dict[str, KeyMetrics]:
    """Every key's metrics of two partial stores combined with ``Metric.aggregate``.

    Keys and modes present in one store only are kept as they are.

    Raises:
        ValueError: If a metric's state has other shapes in the two stores (beyond the
            sample axis of per-sample modes).
    """
    return {
        key: KeyMetrics.of(_union(a, b, functools.partial(_aggregate, key)))
        for key, a, b in _pairs(first, second)
    }


def _pairs(first: Mapping[str, Any], second: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(key, first.get(key), second.get(key)) for key in sorted({*first, *second})]


def _union(
    a: Mapping[Mode, Metric] | None,
    b: Mapping[Mode, Metric] | None,
    combine: Callable[[Mode, Metric, Metric], Metric],
) -> dict[Mode, Metric]:
    """Every mode of ``a`` and ``b``: combined where both have it, kept where one has it."""
    a, b = a or {}, b or {}
    out = {}
    for mode in sorted({*a, *b}, key=mode_order):
        x, y = a.get(mode), b.get(mode)
        out[mode] = (
            combine(mode, x, y) if x is not None and y is not None else (x if y is None else y)
        )
    return cast(dict[Mode, Metric], out)


def _aggregate(key: str, mode: Mode, x: Metric, y: Metric) -> Metric:
    if per_sample(type(x)) and not host.traced((x, y)):
        # an empty (all-zeros: reset or zero-filled) per-sample state holds no samples
        x_empty, y_empty = is_all_zero(x), is_all_zero(y)
        if x_empty or y_empty:
            left_out = [m for m, e in ((x, x_empty), (y, y_empty)) if e and _has_samples(m)]
            if left_out:  # zeros that may have been data: say so
                name = f"{key!r} (log mode {mode!r})"
                warn_empty_parts("MetricStore.aggregate", name, len(left_out))
            return y if x_empty else x
    if not combinable(x, y):
        raise ValueError(
            f"metric {key!r} (log mode {mode!r}) has state {signature_of(x)} in one "
            f"store and {signature_of(y)} in the other; they cannot be combined"
        )
    with host.device_for((x, y)):
        return x.aggregate(y)


def _has_samples(metric: Metric) -> bool:
    """Whether a per-sample state's sample axis is not empty."""
    return any(
        np.shape(jax.tree.leaves(getattr(metric, name))[0])[0]
        for name in sample_fields(type(metric))
    )


def combinable(a: Metric, b: Metric) -> bool:
    """Whether two states of one mode can be aggregated: the same structure, or per-sample
    states that differ only in their number of samples."""
    sa, sb = signature_of(a), signature_of(b)
    return sa == sb or (per_sample(type(a)) and differ_in_samples_only(sa, sb))


def differ_in_samples_only(a: Signature, b: Signature) -> bool:
    """Whether two per-sample signatures are equal but for their number of samples (the
    leading axis of each field): same statics, storages, ranks and sample shapes."""
    return a.statics == b.statics and all(
        fa.storage == fb.storage and len(fa.shape) == len(fb.shape) and fa.shape[1:] == fb.shape[1:]
        for (_, fa), (_, fb) in zip(a.fields, b.fields, strict=True)
    )


def is_all_zero(tree: Any) -> bool:
    """Whether every leaf of a (concrete) state, or store, is zero: the empty state.

    The smallest leaves (counts) are checked first and each check reduces where the leaf
    lives, so a non-empty evaluation state is told apart without moving its samples."""
    leaves = sorted(jax.tree.leaves(tree), key=np.size)
    return not any(bool(x.any() if isinstance(x, jax.Array) else np.any(x)) for x in leaves)


def drops_empty(*metrics: Sequence[Metric]) -> bool:
    """Whether aggregating these stores' metrics eagerly may drop an empty per-sample state
    (so the result's layout is not the concatenated one): any per-sample metric, no tracer."""
    return any(per_sample(type(m)) for ms in metrics for m in ms) and not host.traced(metrics)
