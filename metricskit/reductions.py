"""How each state field combines: one table from a reduction name to its operations.

A :class:`~metricskit.Metric` declares every array field with :func:`state`, naming how two
partial values of that field combine (``"sum"``, ``"max"``, ``"min"``, ``"concat"``,
``"last"``), the exact variants for accumulators of :mod:`metricskit.exact` (``"xsum"``,
``"xmax"``, ``"xmin"``: a trailing axis of size 2 holding a double-float or a carried integer),
or ``"merge"`` when only the metric's own ``aggregate`` knows how. The table maps
each name to the same operation written once for JAX and NumPy arrays (the ``xp`` module),
so device aggregation, host aggregation and the default ``Metric.aggregate`` share it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Literal

import attrs
import numpy as np

from metricskit import buffers, exact

__all__ = ["REDUCTIONS", "Reduction", "ReductionName", "state", "static"]

ReductionName = Literal["sum", "xsum", "max", "xmax", "min", "xmin", "concat", "last", "merge"]

# Metadata keys on attrs fields.
KIND: Final = "metricskit.kind"
REDUCE: Final = "metricskit.reduce"
EMPTY: Final = "metricskit.empty"


@attrs.frozen
class Reduction:
    """One way two partial values of a state field combine.

    Attributes:
        name: The name fields use in :func:`state`.
        combine: ``combine(xp, a, b, axis)`` for ``xp`` in (``jax.numpy``, ``numpy``);
            ``axis`` is the sample axis (``0`` for one metric, ``1`` for a stacked group).
            ``None`` for ``"merge"``, which only the metric's ``aggregate`` can do.
    """

    name: str
    combine: Callable[[Any, Any, Any, int], Any] | None


def _concat(xp: Any, a: Any, b: Any, axis: int) -> Any:
    if xp is np:  # host appending (evaluation batches): amortized O(1), see buffers.append
        return buffers.append(a, b, axis)
    return xp.concatenate([a, b], axis=axis)


REDUCTIONS: Final[dict[str, Reduction]] = {
    r.name: r
    for r in (
        Reduction("sum", lambda xp, a, b, axis: a + b),
        Reduction("xsum", exact.acc_combine),
        Reduction("xmax", exact.acc_max),
        Reduction("xmin", exact.acc_min),
        Reduction("max", lambda xp, a, b, axis: xp.maximum(a, b)),
        Reduction("min", lambda xp, a, b, axis: xp.minimum(a, b)),
        Reduction("concat", _concat),
        Reduction("last", lambda xp, a, b, axis: b),
        Reduction("merge", None),
    )
}


def state(reduce: ReductionName, empty: float = 0) -> Any:
    """Declare an array field of a :class:`~metricskit.Metric` as part of its state.

    Args:
        reduce: How two partial values of this field combine (see :data:`REDUCTIONS`).
        empty: The fill value of this field in the empty state (``-inf`` for a running max).
            :meth:`Metric.reset <metricskit.Metric.reset>` fills the field with it.

    Returns:
        An ``attrs`` field.

    Raises:
        ValueError: If ``reduce`` is not a known reduction.

    Examples:
        >>> import attrs, jax
        >>> import metricskit as mk
        >>> @attrs.frozen(eq=False)
        ... class Peak(mk.Metric):
        ...     peak: jax.Array = mk.state("max", empty=float("-inf"))
        >>> attrs.fields(Peak).peak.metadata["metricskit.reduce"]
        'max'
    """
    if reduce not in REDUCTIONS:
        raise ValueError(
            f"unknown reduction {reduce!r}; use one of {sorted(REDUCTIONS)} "
            "('merge' when only the metric's own aggregate() can combine the field)"
        )
    return attrs.field(metadata={KIND: "state", REDUCE: reduce, EMPTY: empty})


def static(default: Any = attrs.NOTHING) -> Any:
    """Declare a configuration field of a :class:`~metricskit.Metric` (hashable, not traced).

    Args:
        default: The default value, if any.

    Returns:
        An ``attrs`` field that is part of the pytree structure, not a leaf.

    Examples:
        >>> import attrs
        >>> import metricskit as mk
        >>> attrs.fields(attrs.make_class("C", {"p": mk.static(2.0)})).p.default
        2.0
    """
    return attrs.field(default=default, metadata={KIND: "static"})
