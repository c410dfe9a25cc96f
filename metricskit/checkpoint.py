"""Checkpoints of metric state: a :class:`~metricskit.MetricStore` in one NumPy ``.npz`` file.

Each leaf is stored under its pytree path (``.metrics[0].total``) with its exact bytes, so any
dtype survives, bfloat16 included, and a store loaded from a checkpoint written mid-epoch
continues exactly as the uninterrupted run would. A JSON header records the format, the
store's layout (keys, log modes, step shapes and dtypes) and each leaf's dtype and shape;
loading checks all of it before building anything.

Examples:
    >>> import os, tempfile
    >>> import metricskit as mk
    >>> store = mk.MetricStore(default_log_modes=("mean", "max")).update({"loss": 2.0})
    >>> path = os.path.join(tempfile.mkdtemp(), "metrics.npz")
    >>> store.save(path)
    >>> mk.MetricStore.load(path).update({"loss": 4.0}).compute()
    {'loss_mean': 3.0, 'loss_max': 4.0}
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import TYPE_CHECKING, Any, cast

import jax
import jax.numpy as jnp
import numpy as np

from metricskit.layout import Group, Layout

if TYPE_CHECKING:
    from metricskit.store import MetricStore

__all__ = ["FORMAT", "CheckpointError", "load", "save"]

FORMAT = "metricskit.checkpoint/1"
"""The format tag every checkpoint's header carries."""

_HEADER = "__metricskit__"


class CheckpointError(ValueError):
    """A file that is not a complete metricskit checkpoint, or not of the expected structure."""


def _layout_json(layout: Layout) -> dict[str, Any]:
    return {
        "groups": [
            {
                "mode": g.mode,
                "value": [list(g.value[0]), g.value[1]],
                "count": [list(g.count[0]), g.count[1]],
                "keys": list(g.keys),
            }
            for g in layout.groups
        ],
        "order": [list(pair) for pair in layout.order],
    }


def _layout_from_json(data: dict[str, Any]) -> Layout:
    groups = tuple(
        Group(
            g["mode"],
            (tuple(g["value"][0]), g["value"][1]),
            (tuple(g["count"][0]), g["count"][1]),
            tuple(g["keys"]),
        )
        for g in data["groups"]
    )
    return Layout(groups, tuple((key, mode) for key, mode in data["order"]))


def _leaves(store: MetricStore) -> list[tuple[str, np.ndarray]]:
    flat, _ = jax.tree_util.tree_flatten_with_path(store)
    return [(jax.tree_util.keystr(path), np.asarray(jax.device_get(x))) for path, x in flat]


def _ignore_samples(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A leaf's shape without axis 1, the sample axis that appended batches grow."""
    return shape[:1] + shape[2:]


def save(store: MetricStore, path: str | os.PathLike[str]) -> None:
    """Write ``store`` to ``path`` (a ``.npz`` file), atomically.

    The file is written beside ``path`` and renamed over it only when complete, so a crash
    while saving leaves the previous checkpoint in place.

    Args:
        store: The store (device or host leaves; replicated state is read from the local
            device).
        path: Where to write. NumPy does not add a suffix.
    """
    from metricskit.distributed import local_copy

    leaves = _leaves(local_copy(store))
    header = {
        "format": FORMAT,
        "default_log_modes": store.default_log_modes,
        "nan_policy": store.nan_policy,
        "layout": _layout_json(store.layout),
        "leaves": [[name, str(x.dtype), list(x.shape)] for name, x in leaves],
    }
    arrays = {_HEADER: np.frombuffer(json.dumps(header).encode(), np.uint8)}
    for name, x in leaves:  # raw bytes: any dtype (bfloat16, float8) round-trips exactly
        arrays[name] = np.ascontiguousarray(x).reshape(-1).view(np.uint8)
    path = os.fspath(path)
    partial = f"{path}.partial"
    with open(partial, "wb") as f:
        cast(Any, np.savez)(f, **arrays)
    os.replace(partial, path)


def _read(path: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    where = f"{path!r}"
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
            if _HEADER not in npz.files:
                raise CheckpointError(
                    f"{where} is not a metricskit checkpoint (no {_HEADER!r} entry); write "
                    "checkpoints with MetricStore.save"
                )
            header = json.loads(npz[_HEADER].tobytes().decode())
            arrays = {name: npz[name] for name in npz.files if name != _HEADER}
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise CheckpointError(
            f"{where} is not a complete metricskit checkpoint ({type(e).__name__}: {e}); it "
            "may be truncated or not a checkpoint at all. Save it again with MetricStore.save"
        ) from e
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise CheckpointError(f"{where} has format {found!r}; this metricskit reads {FORMAT!r}")
    return header, arrays


def load(path: str | os.PathLike[str], like: MetricStore | None = None) -> MetricStore:
    """Read a store written by :func:`save`.

    Args:
        path: The checkpoint file.
        like: If given, the checkpoint must have exactly this store's structure (keys, log
            modes, step shapes and dtypes, leaf shapes and dtypes), and the loaded store takes
            its default log modes and NaN policy from it.

    Returns:
        A new store with device (JAX) leaves. Nothing passed in is changed.

    Raises:
        CheckpointError: (a ``ValueError``) for a truncated file, a file that is not a
            metricskit checkpoint, or one whose structure differs from ``like``'s.
        FileNotFoundError: If ``path`` does not exist.
    """
    from metricskit.store import MetricStore, _stacked_empty

    path = os.fspath(path)
    header, arrays = _read(path)
    try:
        layout = _layout_from_json(header["layout"])
        template = MetricStore(
            header["default_log_modes"],
            header["nan_policy"],
            metrics=tuple(_stacked_empty(g, len(g.keys)) for g in layout.groups),
            layout=layout,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path!r} has an unreadable store layout: {e}") from e
    if like is not None and like.layout != layout:
        raise CheckpointError(
            f"{path!r} holds a store with keys and modes {list(layout.names.values())}, but "
            f"the store to restore has {list(like.layout.names.values())}; load it without "
            "like= to get the saved structure"
        )
    expected = _leaves(template)
    found = [(name, dtype, tuple(shape)) for name, dtype, shape in header["leaves"]]
    if [(n, d, _ignore_samples(s)) for n, d, s in found] != [
        (name, str(x.dtype), _ignore_samples(x.shape)) for name, x in expected
    ]:
        raise CheckpointError(
            f"{path!r} has leaves {found}, which its layout does not produce; the file was "
            "not written by MetricStore.save of this metricskit version"
        )
    leaves = []
    for (name, x), (_, _, shape) in zip(expected, found, strict=True):
        raw = arrays.get(name)
        if raw is None or raw.size != x.dtype.itemsize * int(np.prod(shape)):
            raise CheckpointError(f"{path!r}: leaf {name!r} is missing or truncated")
        leaves.append(jnp.asarray(raw.view(x.dtype).reshape(shape)))
    store = jax.tree.unflatten(jax.tree.structure(template), leaves)
    if like is not None:
        store = like._evolve(store.metrics, like.layout)
    return store  # type: ignore[no-any-return]
