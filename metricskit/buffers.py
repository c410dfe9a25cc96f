"""Host-side appending in amortized O(1): growing buffers behind NumPy views.

Appending evaluation batches by re-concatenating everything each time costs O(N^2) copies for
N batches. Here the result of an append is a *view* ``buffer[..., :n]`` of a larger buffer.
The latest view of each buffer (its *tip*) is remembered, by identity, through a weak
reference; appending to the tip writes into the free tail and returns a longer view, so
earlier results never change (they see only their prefix). Appending to anything else (an
older result, a copy, a foreign array), or to a full buffer, copies into a new buffer with
room for half as much again, so that the total copying stays O(total size).
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

__all__ = ["append"]

GROWTH = 2.0
"""Capacity of a new buffer, as a multiple of the data it starts with."""


class _Tip(weakref.ref[np.ndarray]):
    """A weak reference to the latest view of a buffer, holding the buffer itself."""

    __slots__ = ("buffer", "key")

    buffer: np.ndarray
    key: int


_TIPS: dict[int, _Tip] = {}  # id(view) -> its tip; entries leave when the view dies


def _forget(tip: _Tip) -> None:
    if _TIPS.get(tip.key) is tip:
        del _TIPS[tip.key]


def _hand_out(buffer: np.ndarray, axis: int, n: int) -> np.ndarray:
    view = buffer[:, :n] if axis == 1 else buffer[(slice(None),) * axis + (slice(0, n),)]
    tip = _Tip(view, _forget)
    tip.buffer, tip.key = buffer, id(view)
    _TIPS[tip.key] = tip
    return view


def append(a: Any, b: Any, axis: int) -> np.ndarray:
    """``concatenate([a, b], axis)``, in amortized O(len(b)) when ``a`` came from here.

    Args:
        a: The earlier data (any array; the latest result of this function is extended in
            place of a copy when its buffer has room).
        b: The data to append; same shape as ``a`` except along ``axis``.
        axis: The append axis.

    Returns:
        A read-only-by-convention view of the concatenation.

    Examples:
        >>> import numpy as np
        >>> from metricskit import buffers
        >>> x = buffers.append(np.zeros(1), np.ones(2), axis=0)
        >>> y = buffers.append(x, np.full(1, 2.0), axis=0)
        >>> x.tolist(), y.tolist(), np.shares_memory(x, y)
        ([0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 2.0], True)
    """
    a = a if type(a) is np.ndarray else np.asarray(a)
    b = b if type(b) is np.ndarray else np.asarray(b)
    assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
    n, m = a.shape[axis], b.shape[axis]
    tip = _TIPS.get(id(a))
    if tip is not None and tip() is a:
        buffer = tip.buffer
        if buffer.shape[axis] >= n + m and (
            b.dtype is a.dtype or np.can_cast(b.dtype, a.dtype, "safe")
        ):
            del _TIPS[tip.key]  # a stays valid; it is just no longer the tip
            if axis == 1:  # stacked groups: the hot path, without building index tuples
                buffer[:, n : n + m] = b
            else:
                buffer[(slice(None),) * axis + (slice(n, n + m),)] = b
            return _hand_out(buffer, axis, n + m)
    shape = list(a.shape)
    shape[axis] = max(int(GROWTH * (n + m)), 16)
    buffer = np.empty(shape, np.result_type(a, b))
    buffer[(slice(None),) * axis + (slice(0, n),)] = a
    buffer[(slice(None),) * axis + (slice(n, n + m),)] = b
    return _hand_out(buffer, axis, n + m)
