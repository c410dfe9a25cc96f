"""Moving many small device arrays to the host at once.

An evaluation loop leaves one small state per batch on the device (a few hundred per-sample
values, a count). Fetching each array costs a fixed overhead (several microseconds on a CPU
backend, far more on an accelerator), so arrays of one shape and dtype are stacked on the
device first, in chunks of :data:`CHUNK` (one compiled stacking per shape, dtype and chunk
size; a short chunk is padded to a power of two), and each chunk is fetched with one transfer.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Final

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["CHUNK", "device_get_many", "stack_to_host"]

CHUNK: Final = 256
"""How many arrays one compiled concatenation takes."""


@functools.cache
def _concat() -> Any:
    return jax.jit(lambda arrays: jnp.stack(arrays))


def _fetch(arrays: list[jax.Array]) -> list[np.ndarray]:
    """Host copies of same-shaped device arrays: stacked per chunk on the device, then moved."""
    with jax.ensure_compile_time_eval():  # concrete arrays: run now, even inside a trace
        return _fetch_now(arrays)


def _fetch_now(arrays: list[jax.Array]) -> list[np.ndarray]:
    chunks = []
    for start in range(0, len(arrays), CHUNK):
        part = arrays[start : start + CHUNK]
        size = min(CHUNK, 1 << (len(part) - 1).bit_length())  # few sizes: few compilations
        chunks.append((_concat()(part + [part[0]] * (size - len(part))), len(part)))
    out: list[np.ndarray] = []
    for stacked, n in jax.device_get(chunks):
        out.extend(np.asarray(stacked)[i] for i in range(n))
    return out


def stack_to_host(arrays: Sequence[Any]) -> np.ndarray:
    """``np.stack`` of arrays of one shape and dtype, device arrays moved in bulk.

    The result is written chunk by chunk into one preallocated host array, so the memory
    needed beyond the result is one chunk.

    Args:
        arrays: JAX or NumPy arrays of one shape and dtype.

    Returns:
        A NumPy array with a new leading axis of ``len(arrays)``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from metricskit.transfer import stack_to_host
        >>> stack_to_host([jnp.arange(2) + i for i in range(3)]).tolist()
        [[0, 1], [1, 2], [2, 3]]
    """
    first = arrays[0]
    if not _on_device(first) and not any(map(_on_device, arrays)):
        return np.stack([np.asarray(x) for x in arrays])
    out = np.empty((len(arrays), *np.shape(first)), np.dtype(first.dtype))
    with jax.ensure_compile_time_eval():  # concrete arrays: run now, even inside a trace
        _stack_into(out, arrays)
    return out


def _stack_into(out: np.ndarray, arrays: Sequence[Any]) -> None:
    try:
        for start in range(0, len(arrays), CHUNK):
            part = list(arrays[start : start + CHUNK])
            size = min(CHUNK, 1 << (len(part) - 1).bit_length())
            stacked = _concat()(part + [part[0]] * (size - len(part)))
            out[start : start + len(part)] = np.asarray(jax.device_get(stacked))[: len(part)]
    except ValueError:  # arrays committed to different devices: fetch them one by one
        for i, x in enumerate(arrays):
            out[i] = np.asarray(jax.device_get(x))


_TRACER = jax.core.Tracer


def _on_device(x: Any) -> bool:
    return isinstance(x, jax.Array) and not isinstance(x, _TRACER)


def device_get_many(trees: Sequence[Any]) -> list[Any]:
    """``jax.device_get`` of every tree, with the leaves fetched in bulk.

    Device leaves of one shape, dtype and placement are fetched together (see the module
    docstring); a lone leaf, and NumPy leaves, are fetched (or kept) as ``jax.device_get``
    does. The result is the same as ``[jax.device_get(t) for t in trees]``.

    Args:
        trees: Pytrees of JAX or NumPy arrays.

    Returns:
        The trees with NumPy leaves, in order.

    Examples:
        >>> import jax.numpy as jnp
        >>> from metricskit.transfer import device_get_many
        >>> out = device_get_many([{"a": jnp.arange(3) + i} for i in range(4)])
        >>> [t["a"].tolist() for t in out]
        [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]]
    """
    flat = [jax.tree.flatten(t) for t in trees]
    groups: dict[tuple[Any, ...], list[tuple[int, int]]] = {}
    for t, (leaves, _) in enumerate(flat):
        for i, x in enumerate(leaves):
            if _on_device(x):
                key = (x.shape, x.dtype, x.sharding)
                groups.setdefault(key, []).append((t, i))
    host = [list(leaves) for leaves, _ in flat]
    for where in groups.values():
        arrays = [flat[t][0][i] for t, i in where]
        fetched = _fetch(arrays) if len(arrays) > 1 else [np.asarray(jax.device_get(arrays[0]))]
        for (t, i), x in zip(where, fetched, strict=True):
            host[t][i] = x
    return [
        jax.tree.unflatten(treedef, [np.asarray(x) for x in leaves])
        for leaves, (_, treedef) in zip(host, flat, strict=True)
    ]
