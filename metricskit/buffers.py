"""Host-side appending in amortized O(1): capacity-doubling buffers behind NumPy views.

Appending evaluation batches by re-concatenating everything each time costs O(N^2) copies for
N batches. Here the result of an append is a *view* ``buffer[:, :n]`` of a larger buffer that
remembers how much of it is filled. The next append writes into the free tail and returns a
longer view, so earlier results never change (they see only their prefix); appending to an
older result, or to a full buffer, copies into a new buffer of twice the size. Peak memory is
at most twice the data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["append"]


class _Buffer(np.ndarray):  # type: ignore[type-arg,unused-ignore]
    """A NumPy buffer that records how far it is filled along the append axis."""

    filled: int


def _owner(a: np.ndarray) -> _Buffer | None:
    base = a.base
    while isinstance(base, np.ndarray):
        if isinstance(base, _Buffer) and hasattr(base, "filled"):
            return base
        base = base.base
    return None


def _prefix(buffer: np.ndarray, axis: int, n: int) -> np.ndarray:
    index = (slice(None),) * axis + (slice(0, n),)
    return np.asarray(buffer[index])


def append(a: Any, b: Any, axis: int) -> np.ndarray:
    """``concatenate([a, b], axis)``, in amortized O(len(b)) when ``a`` came from here.

    Args:
        a: The earlier data (any array; a view returned by this function is extended in place
            of a copy when its buffer has room and nobody appended past it).
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
    a, b = np.asarray(a), np.asarray(b)
    n, m = a.shape[axis], b.shape[axis]
    dtype = np.result_type(a, b)
    owner = _owner(a)
    if (
        owner is not None
        and owner.filled == n
        and owner.shape[axis] >= n + m
        and owner.dtype == dtype
        and a.__array_interface__["data"][0] == owner.__array_interface__["data"][0]
        and a.strides == owner.strides
    ):
        owner[(slice(None),) * axis + (slice(n, n + m),)] = b
        owner.filled = n + m
        return _prefix(owner, axis, n + m)
    shape = list(a.shape)
    shape[axis] = max(2 * (n + m), 16)
    buffer = np.empty(shape, dtype).view(_Buffer)
    buffer[(slice(None),) * axis + (slice(0, n),)] = a
    buffer[(slice(None),) * axis + (slice(n, n + m),)] = b
    buffer.filled = n + m
    return _prefix(buffer, axis, n + m)
