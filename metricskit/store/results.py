"""Computed results on the host: exact values finished in float64, one value per reported name.

What a metric's ``compute`` returns (arrays, exact :class:`~metricskit.exact.Pair`,
:class:`~metricskit.exact.Words`, :class:`~metricskit.exact.Ratio`, or tuples of them) is
moved to the host in one transfer for the whole store, finished there (pairs summed in float64,
ratios divided in float64, so an exact mean is correctly rounded), and handed out per reported
name: size-1 results as Python ``int``/``float``, larger ones as read-only NumPy arrays (views
of one buffer per group, so nothing handed back aliases a store's state or can be written).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from metricskit import exact
from metricskit.log import LOGGER
from metricskit.metric import Metric, per_sample
from metricskit.registry import Mode, get_log_mode
from metricskit.store import engine, host
from metricskit.store.entries import Row, on_host
from metricskit.store.layout import Layout, names

__all__ = ["compute", "host_value", "report", "stacked_rows", "warn_empty"]


def _frozen(x: np.ndarray) -> np.ndarray:
    """A read-only view (the caller cannot write through it into anything of ours)."""
    view = x.view()
    view.flags.writeable = False
    return view


def _finish(x: Any, stacked: bool) -> Any:
    """Exact results as float64/int64 NumPy (``stacked``: axis 0 is the key axis)."""
    if isinstance(x, tuple):
        return tuple(_finish(p, stacked) for p in x)
    if isinstance(x, exact.Finish) and stacked:  # the host function takes one key at a time
        operand = _finish(x.operand, stacked)
        n = len(jax.tree.leaves(operand)[0])
        with np.errstate(all="ignore"):  # as exact.to_host: NaN or inf is a value, not a warning
            rows = [x.fn(jax.tree.map(lambda a, i=i: a[i], operand)) for i in range(n)]
        if rows and isinstance(rows[0], tuple):
            return tuple(np.stack([np.asarray(r[j]) for r in rows]) for j in range(len(rows[0])))
        if rows and not isinstance(rows[0], np.ndarray | np.generic | float | int):
            objects = np.empty(len(rows), object)  # objects a host finish made, one per key
            objects[:] = rows
            return objects
        return np.stack([np.asarray(r) for r in rows]) if rows else np.zeros((0,))
    if isinstance(x, exact.Ratio) and stacked:
        num = np.asarray(exact.to_host(x.numerator))
        den = np.asarray(exact.to_host(x.denominator))
        if den.ndim < num.ndim:  # align per-key shapes to the right, after the key axis
            den = den.reshape(den.shape[:1] + (1,) * (num.ndim - den.ndim) + den.shape[1:])
        elif num.ndim < den.ndim:
            num = num.reshape(num.shape[:1] + (1,) * (den.ndim - num.ndim) + num.shape[1:])
        x = exact.Ratio(num, den)
    return exact.to_host(x)


def _python(x: np.ndarray) -> Any:
    """A size-1 result as a Python number."""
    return x.reshape(()).item()


def host_value(x: Any) -> Any:
    """One key's computed result (device or host arrays) as it is reported.

    Examples:
        >>> import numpy as np
        >>> from metricskit import exact
        >>> from metricskit.store.results import host_value
        >>> host_value(exact.Ratio(np.int32(3), np.int32(4)))
        0.75
        >>> host_value(np.arange(2.0)).flags.writeable
        False
    """
    x = _finish(x, stacked=False)
    if isinstance(x, tuple):
        return tuple(_frozen(np.asarray(p)) for p in x)
    if not isinstance(x, np.ndarray | np.generic):
        return x  # an object a host finish made (e.g. a histogram)
    x = np.asarray(x)
    return _python(x) if x.size == 1 else _frozen(x)


def stacked_rows(values: Any, n: int) -> list[Any]:
    """The per-key results of a group's computed values (leading key axis of size ``n``)."""
    values = _finish(values, stacked=True)
    if isinstance(values, tuple):
        parts = [_frozen(np.asarray(p)) for p in values]
        return [tuple(p[i] for p in parts) for i in range(n)]
    values = np.asarray(values)
    if values.size == n:
        return values.reshape(n).tolist()  # type: ignore[no-any-return]
    frozen = _frozen(values)
    return [frozen[i] for i in range(n)]


def report(
    layout: Layout, rows: Sequence[Sequence[Any]], empties: Sequence[Sequence[bool]]
) -> dict[str, Any]:
    """Every reported name's value, in canonical order, from each group's per-key results and
    emptiness; empty metrics report ``0.0`` (with one warning naming them)."""
    out: dict[str, Any] = {}
    empty: list[str] = []
    for name, g, row, part in names(layout):
        if empties[g][row]:
            out[name] = 0.0
            group = layout.groups[g]
            if part <= 0:
                empty.append(f"{group.keys[row]!r} (log mode {group.mode!r})")
        elif part < 0:
            out[name] = rows[g][row]
        else:  # one of the values a metric reports under names of their own
            values = rows[g][row]
            mode = layout.groups[g].mode
            if not isinstance(values, tuple) or len(values) != len(get_log_mode(mode).parts):
                _wrong_parts(mode, values)
            value = np.asarray(values[part])
            out[name] = _python(value) if value.size == 1 else _frozen(value)
    warn_empty(empty)
    return out


def _wrong_parts(mode: Mode, values: Any) -> None:
    log_mode = get_log_mode(mode)
    got = f"a tuple of {len(values)}" if isinstance(values, tuple) else "one value, not a tuple"
    raise ValueError(
        f"{log_mode.cls.__name__} (log mode {mode!r}) reports parts {log_mode.parts}, so its "
        f"compute() must return a tuple of {len(log_mode.parts)} values; it returned {got} "
        "(declare parts, or parts_of, for each value it returns)"
    )


def warn_empty(metrics: Sequence[str]) -> None:
    """Log one warning naming the metrics (``"'key' (log mode 'mode')"``) that have no
    samples, which are reported as ``0.0``."""
    if metrics:
        shown = ", ".join(metrics[:20])
        more = f" and {len(metrics) - 20} more" if len(metrics) > 20 else ""
        noun = "Metric" if len(metrics) == 1 else "Metrics"
        LOGGER.warning("%s %s%s: count 0 (no samples); reporting 0.0.", noun, shown, more)


def compute(layout: Layout, metrics: Sequence[Metric]) -> dict[str, Any]:
    """The reported metrics of a store's groups (local, concrete state), one transfer.

    Device groups run one jitted compute together and come back in one ``device_get``; host
    groups of per-sample evaluation results compute per key on their NumPy leaves. The state
    is concrete, so all of it runs now, even inside a trace (a store or an evaluation
    aggregate closed over by a jitted function).
    """
    with jax.ensure_compile_time_eval():
        return _compute(layout, metrics)


def _compute(layout: Layout, metrics: Sequence[Metric]) -> dict[str, Any]:
    on_cpu = [per_sample(type(m)) and on_host(m) for m in metrics]
    kernels = tuple(m for m, h in zip(metrics, on_cpu, strict=True) if not h)
    with host.device_for(kernels):
        computed = iter(jax.device_get(engine.compute_jit(kernels)) if kernels else ())
    rows, empties = [], []
    for m, h, group in zip(metrics, on_cpu, layout.groups, strict=True):
        if h:
            per_key = [Row(m, r, group.signature).metric() for r in range(len(group.keys))]
            rows.append([host_value(k.compute()) for k in per_key])
            empties.append([bool(k.is_empty()) for k in per_key])
        else:
            values, empty = next(computed)
            rows.append(stacked_rows(values, len(group.keys)))
            empties.append(np.asarray(empty).tolist())
    return report(layout, rows, empties)
