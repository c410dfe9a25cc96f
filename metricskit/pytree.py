"""One recipe to register an attrs class as a JAX pytree.

We register custom nodes rather than ``jax.tree_util.register_dataclass``: on the JAX versions
we test, tree definitions of two *different* dataclass-registered classes with the same number
of leaves compare equal (only their hashes differ), so jit's cache can, on a hash-table probe
collision, run one metric class's compiled kernel on another class's state. Custom nodes
compare their types.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

__all__ = ["register_pytree"]


def register_pytree(cls: type, data_fields: Sequence[str], meta_fields: Sequence[str]) -> None:
    """Register ``cls`` as a pytree whose ``data_fields`` are leaves and ``meta_fields`` static.

    Unflattening sets the attributes directly (no ``__init__``, converters or validators), so it
    is cheap and safe with tracers and placeholder leaves.

    Args:
        cls: An attrs class (slotted or not, frozen or not).
        data_fields: Names of the fields that are pytree children.
        meta_fields: Names of the fields that are hashable, static structure.

    Examples:
        >>> import attrs, jax
        >>> from metricskit.pytree import register_pytree
        >>> @attrs.frozen
        ... class Pair:
        ...     x: object
        ...     tag: str
        >>> register_pytree(Pair, ["x"], ["tag"])
        >>> jax.tree.map(lambda v: v + 1, Pair(1, "a"))
        Pair(x=2, tag='a')
    """
    data, meta = tuple(data_fields), tuple(meta_fields)
    keys = tuple(jax.tree_util.GetAttrKey(name) for name in data)

    def flatten(obj: Any) -> tuple[list[Any], tuple[Any, ...]]:
        return [getattr(obj, n) for n in data], tuple(getattr(obj, n) for n in meta)

    def flatten_with_keys(obj: Any) -> tuple[list[tuple[Any, Any]], tuple[Any, ...]]:
        children, aux = flatten(obj)
        return list(zip(keys, children, strict=True)), aux

    def unflatten(aux: tuple[Any, ...], children: Any) -> Any:
        obj: Any = object.__new__(cls)
        for name, value in zip(meta, aux, strict=True):
            object.__setattr__(obj, name, value)
        for name, value in zip(data, children, strict=True):
            object.__setattr__(obj, name, value)
        return obj

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
