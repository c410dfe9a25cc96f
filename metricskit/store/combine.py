"""Combining two stores whose layouts differ, key by key (``MetricStore.aggregate``)."""

from __future__ import annotations

from collections.abc import Mapping

from metricskit.metric import Metric, per_sample
from metricskit.store import host
from metricskit.store.entries import KeyMetrics
from metricskit.store.layout import signature_of

__all__ = ["aggregate_entries", "combinable"]


def aggregate_entries(
    first: Mapping[str, KeyMetrics], second: Mapping[str, KeyMetrics]
) -> dict[str, KeyMetrics]:
    """Every key's metrics of two partial stores combined with ``Metric.aggregate``.

    Keys and modes present in one store only are kept as they are.

    Raises:
        ValueError: If a metric's state has other shapes in the two stores (beyond the
            sample axis of per-sample modes).
    """
    out: dict[str, KeyMetrics] = {}
    for key in sorted({*first, *second}):
        if key not in second or key not in first:
            out[key] = first[key] if key in first else second[key]
            continue
        a, b = first[key], second[key]
        merged: dict[str, Metric] = {}
        for mode in sorted({*a, *b}):
            if mode not in a or mode not in b:
                merged[mode] = a[mode] if mode in a else b[mode]
                continue
            x, y = a[mode], b[mode]
            if not combinable(x, y):
                raise ValueError(
                    f"metric {key!r} (log mode {mode!r}) has state {signature_of(x)} in one "
                    f"store and {signature_of(y)} in the other; they cannot be combined"
                )
            with host.device_for((x, y)):
                merged[mode] = x.aggregate(y)
        out[key] = KeyMetrics.of(merged)
    return out


def combinable(a: Metric, b: Metric) -> bool:
    """Whether two states of one mode can be aggregated: the same structure, or per-sample
    states that differ only in their number of samples."""
    sa, sb = signature_of(a), signature_of(b)
    if sa == sb:
        return True
    if not per_sample(type(a)) or sa.statics != sb.statics:
        return False
    return all(
        fa.storage == fb.storage and fa.shape[1:] == fb.shape[1:]
        for (_, fa), (_, fb) in zip(sa.fields, sb.fields, strict=True)
    )
