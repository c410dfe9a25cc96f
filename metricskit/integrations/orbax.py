"""Checkpoint stores with Orbax, inside a training state (``orbax`` extra).

A :class:`~metricskit.MetricStore` is a pytree of arrays, so ``ocp.args.StandardSave`` saves
it with the parameters, sharded arrays included, every leaf with its exact bytes and dtype.
Two things Orbax does not do by itself:

- **Restore into a store.** Without a target, Orbax returns a dict of the leaves. Pass
  :func:`abstract_store` of the state (a ``jax.ShapeDtypeStruct`` with the sharding of every
  leaf, in the same pytree types) to ``ocp.args.StandardRestore``: the result is a state of
  stores with the same shardings, which a jitted step takes without recompiling (if the
  state it was compiled for was placed with ``jax.device_put``: see the docs page).
- **Check the keys.** Which key and log mode each row of a leaf belongs to is pytree metadata
  (the store's layout), which Orbax does not write. Restoring into a store with other keys of
  the same shapes succeeds and mislabels the values (``a`` and ``b`` swapped, ``c`` reported
  with ``b``'s value). Save :func:`store_layouts` of the state as a JSON item next to it and
  call :func:`check_store_layouts` after restoring; it raises
  :class:`~metricskit.checkpoint.CheckpointError` for any difference.

The same record describes each store whole (every metric's class and options), so
:func:`restore_targets` builds the restore target of the stores from the record alone: a fresh
process restores a checkpoint with task or user metrics with nothing called first.

The recipe with ``ocp.CheckpointManager`` is in ``docs/integrations/orbax.md``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

import jax
import numpy as np

from metricskit._engine.kernels import refuse_tracers
from metricskit._engine.step import empty_state, key_modes
from metricskit._engine.store import MetricStore
from metricskit.checkpoint import (
    CheckpointError,
    current_path,
    layout_from_json,
    layout_json,
    modes_from_json,
    modes_json,
)
from metricskit.sinks import require

__all__ = ["abstract_store", "check_store_layouts", "restore_targets", "store_layouts"]

T = TypeVar("T")


def abstract_store(state: T) -> T:
    """The restore target of a store, or of a training state (any pytree) holding stores.

    Args:
        state: A :class:`~metricskit.MetricStore` or a pytree with stores among its nodes
            (``{"params": ..., "metrics": store}``, a flax ``TrainState``), of the structure
            to restore: the same keys, log modes, shapes, dtypes and shardings as the saved one.

    Returns:
        The same pytree with every array replaced by a ``jax.ShapeDtypeStruct`` of its shape,
        dtype and sharding (``ocp.utils.to_shape_dtype_struct``): pass it to
        ``ocp.args.StandardRestore``. Stores stay stores (their layout is pytree metadata).

    Raises:
        ImportError: Without the ``orbax`` extra.
        TypeError: If ``state`` holds traced values (call it outside ``jax.jit``).

    Examples:
        >>> import jax
        >>> import metricskit as mk
        >>> from metricskit.integrations.orbax import abstract_store
        >>> target = abstract_store({"metrics": mk.MetricStore().update({"loss": 2.0})})
        >>> type(target["metrics"]).__name__, type(jax.tree.leaves(target)[0]).__name__
        ('MetricStore', 'ShapeDtypeStruct')
    """
    ocp = require("orbax.checkpoint", "orbax", "abstract_store")
    refuse_tracers(state, "abstract_store")
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)  # type: ignore[no-any-return]


def _stores(state: Any) -> list[tuple[str, MetricStore]]:
    flat, _ = jax.tree_util.tree_flatten_with_path(
        state, is_leaf=lambda x: isinstance(x, MetricStore)
    )
    return [(jax.tree_util.keystr(path), x) for path, x in flat if isinstance(x, MetricStore)]


def _record(store: MetricStore) -> dict[str, Any]:
    flat, _ = jax.tree_util.tree_flatten_with_path(store)
    return {
        "keys": {
            key: [m if isinstance(m, str) else repr(m) for m in modes]
            for key, modes in key_modes(store.layout).items()
        },
        "groups": layout_json(store.layout),
        "meta": {
            "default_log_modes": modes_json(store.default_log_modes),
            "nan_policy": store.nan_policy,
        },
        "leaves": [
            [jax.tree_util.keystr(path), np.dtype(x.dtype).name, list(x.shape)] for path, x in flat
        ],
    }


def store_layouts(state: Any) -> dict[str, dict[str, Any]]:
    """What Orbax does not record about the stores in ``state``, as JSON to save beside it.

    Args:
        state: A :class:`~metricskit.MetricStore` or a pytree holding stores (arrays or the
            abstract target).

    Returns:
        ``{path: record}`` for every store, ``path`` being its pytree path in ``state``
        (``"['metrics']"``; ``""`` for a store passed alone) and ``record`` its keys and log
        modes, its layout and its leaves' paths, dtypes and shapes. Save it with
        ``ocp.args.JsonSave``.

    Raises:
        ValueError: If ``state`` holds no store.
    """
    stores = _stores(state)
    if not stores:
        raise ValueError(
            f"store_layouts: the {type(state).__name__} passed holds no MetricStore; pass the "
            "training state (or the store) that the checkpoint saves"
        )
    return {path: _record(store) for path, store in stores}


def _pairs(record: Mapping[str, Any]) -> set[tuple[str, str]]:
    return {(key, mode) for key, modes in record["keys"].items() for mode in modes}


def _groups(record: Mapping[str, Any]) -> list[Any]:
    """A record's groups (``layout_json``) with class paths as they are in this version; a
    record of metricskit 0.2 has none (its leaves' paths, dtypes and shapes are checked)."""

    def current(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: current_path(v) if k == "class" else current(v) for k, v in x.items()}
        return [current(v) for v in x] if isinstance(x, list) else x

    return [current(json.loads(json.dumps(g))) for g in record.get("groups", ())]  # as saved


def _check_one(where: str, saved: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    mine, theirs = _pairs(saved), _pairs(expected)
    if mine != theirs:
        raise CheckpointError(
            f"{where} in the checkpoint has other (key, mode) pairs than the store to restore "
            f"into: missing {sorted(theirs - mine)}, not expected {sorted(mine - theirs)}; "
            "restore into a store initialized with the saved keys and log modes"
        )
    groups, wanted = _groups(saved), _groups(expected)
    if groups and groups != wanted and sorted(map(repr, groups)) == sorted(map(repr, wanted)):
        raise CheckpointError(
            f"{where} holds the structure of the store to restore into with its groups in "
            "another order (a version that recorded some metric classes under other module "
            "paths wrote it), so its leaves would land in other groups: restore it with "
            "restore_targets(record), which builds its own structure, and continue from that"
        )
    if groups and groups != wanted:
        differ = [(a, b) for a, b in zip(groups, wanted, strict=False) if a != b]
        a, b = differ[0] if differ else (groups, wanted)
        raise CheckpointError(
            f"{where} has the same keys and log modes as the store to restore into but another "
            f"state structure (shapes, storage or configuration): {a} in the checkpoint, {b} "
            "in the store to restore into"
        )
    for a, b in zip(saved["leaves"], expected["leaves"], strict=False):
        if list(a) != list(b):
            raise CheckpointError(
                f"{where}: leaf {b[0]} is {a[1]} {tuple(a[2])} in the checkpoint but {b[1]} "
                f"{tuple(b[2])} in the store to restore into (saved with another "
                "jax_enable_x64 setting, for example); Orbax would convert it"
            )
    if len(saved["leaves"]) != len(expected["leaves"]):
        raise CheckpointError(
            f"{where} has {len(saved['leaves'])} leaves in the checkpoint but "
            f"{len(expected['leaves'])} in the store to restore into"
        )


def check_store_layouts(saved: Mapping[str, Any], like: Any) -> None:
    """Raise unless the stores in a checkpoint are those of ``like``, key for key.

    Args:
        saved: What :func:`store_layouts` returned for the saved state (read back with
            ``ocp.args.JsonRestore``).
        like: The state restored into, or its :func:`abstract_store` target, or the
            restored state.

    Raises:
        metricskit.checkpoint.CheckpointError: A ``ValueError`` naming the store's path and
            what differs: where the stores are, the (key, mode) pairs, the state structure or
            a leaf's dtype.
        TypeError: If ``saved`` is not a mapping.
        ValueError: If ``like`` holds no store.
    """
    if not isinstance(saved, Mapping):
        raise TypeError(
            f"saved is a {type(saved).__name__}; pass what store_layouts() returned, as "
            "ocp.args.JsonRestore() reads it back"
        )
    expected = store_layouts(like)
    if set(saved) != set(expected):
        raise CheckpointError(
            f"the checkpoint records stores at {sorted(saved)} but the state to restore into "
            f"has stores at {sorted(expected)}; restore into a state of the saved structure"
        )
    for path, record in expected.items():
        where = "the store" if path == "" else f"the store at {path}"
        try:
            _check_one(where, saved[path], record)
        except (KeyError, TypeError, IndexError) as e:
            raise CheckpointError(
                f"{where}: the saved record is not one that store_layouts() writes "
                f"({type(e).__name__}: {e})"
            ) from e


def restore_targets(saved: Mapping[str, Any]) -> dict[str, MetricStore]:
    """The restore target of every store in a checkpoint, from its saved record alone.

    Args:
        saved: What :func:`store_layouts` returned for the saved state (read back with
            ``ocp.args.JsonRestore``).

    Returns:
        ``{path: store}``: for every saved store, a :class:`~metricskit.MetricStore` of the
        saved keys, metrics (classes imported as needed, options as saved), default log modes
        and NaN policy, whose leaves are ``jax.ShapeDtypeStruct`` (no sharding: leaves are
        restored to the default device; give a sharded target with :func:`abstract_store`
        to restore across devices). Pass ``restore_targets(saved)[""]`` (a store saved
        alone) to ``ocp.args.StandardRestore``, or put it where the store sits in the state.

    Raises:
        metricskit.checkpoint.CheckpointError: For a record without the store's structure
            (written by metricskit 0.2: restore into a store built as before, with
            :func:`abstract_store`), or a metric class that cannot be imported.

    Examples:
        >>> import metricskit as mk
        >>> from metricskit.integrations.orbax import restore_targets, store_layouts
        >>> record = store_layouts(mk.MetricStore().update({"loss": 2.0}))
        >>> target = restore_targets(record)[""]
        >>> list(target), type(target.metrics[0].total.hi).__name__
        (['loss'], 'ShapeDtypeStruct')
    """
    out = {}
    for path, record in saved.items():
        where = "the store" if path == "" else f"the store at {path}"
        if not isinstance(record, Mapping) or "groups" not in record:
            raise CheckpointError(
                f"{where}: the saved record has no store structure (written by metricskit "
                "0.2); restore into a store built as before, with abstract_store(like)"
            )
        try:
            layout = layout_from_json(record["groups"])
        except CheckpointError as e:
            raise CheckpointError(f"{where}: {e}") from e
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{where}: the saved record is malformed ({e})") from e
        template = [empty_state(g.mode, g.signature, len(g.keys), np) for g in layout.groups]
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),  # type: ignore[no-untyped-call]
            template,
        )
        meta = record.get("meta", {})
        modes = modes_from_json(meta.get("default_log_modes"))
        store = MetricStore(modes, meta.get("nan_policy", "propagate"))
        out[path] = store._evolve(abstract, layout)
    return out
