"""One recipe to register an attrs class as a JAX pytree.

We register custom nodes rather than ``jax.tree_util.register_dataclass``: on the JAX versions
we test, tree definitions of two *different* dataclass-registered classes with the same number
of leaves compare equal (only their hashes differ), so jit's cache can, on a hash-table probe
collision, run one metric class's compiled kernel on another class's state. Custom nodes
compare their types.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, cast

import attrs
import jax

__all__ = ["register_pytree", "replace"]

T = TypeVar("T")


@functools.cache
@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in attrs.fields(cls))


@functools.cache
def _field_set(cls: type) -> frozenset[str]:
    return frozenset(_field_names(cls))


def replace(obj: T, changes: Mapping[str, Any]) -> T:
    """A copy of the attrs instance ``obj`` with ``changes``, built as unflattening builds it.

    Unlike ``attrs.evolve`` this runs no ``__init__``, converters or validators: it is for
    swapping array fields of a state (a few hundred nanoseconds, not microseconds).

    Args:
        obj: An instance of an attrs class registered with :func:`register_pytree`.
        changes: New values by field name.

    Returns:
        The new instance; ``obj`` is unchanged.

    Examples:
        >>> import attrs
        >>> from metricskit.pytree import replace
        >>> @attrs.frozen
        ... class Point:
        ...     x: int
        ...     y: int
        >>> replace(Point(1, 2), {"y": 5})
        Point(x=1, y=5)
    """
    cls = type(obj)
    names = _field_names(cast(Any, cls))
    if not _field_set(cast(Any, cls)).issuperset(changes):
        unknown = set(changes).difference(names)
        raise TypeError(
            f"{cls.__name__}.replace() got {sorted(unknown)}, which are not fields of "
            f"{cls.__name__} (its fields: {list(names)}); check the spelling"
        )
    new: Any = object.__new__(cls)
    for name in names:
        object.__setattr__(new, name, changes[name] if name in changes else getattr(obj, name))
    return new  # type: ignore[no-any-return]


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
    get_data, get_meta = _getter(data), _getter(meta)
    slotted = "__dict__" not in dir(cls) or bool(getattr(cls, "__slots__", ()))

    def flatten(obj: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        return get_data(obj), get_meta(obj)

    def flatten_with_keys(obj: Any) -> tuple[list[tuple[Any, Any]], tuple[Any, ...]]:
        children, aux = flatten(obj)
        return list(zip(keys, children, strict=True)), aux

    def unflatten(aux: tuple[Any, ...], children: Any) -> Any:
        obj: Any = object.__new__(cls)
        if slotted:
            for name, value in zip(meta, aux, strict=True):
                object.__setattr__(obj, name, value)
            for name, value in zip(data, children, strict=True):
                object.__setattr__(obj, name, value)
        else:  # one dict update: the fast path for metrics (attrs classes with a __dict__)
            obj.__dict__.update(zip(meta, aux, strict=True))
            obj.__dict__.update(zip(data, children, strict=True))
        return obj

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)


def _getter(names: tuple[str, ...]) -> Any:
    """A function returning the tuple of the named attributes of an object (C-speed)."""
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        name = names[0]
        return lambda obj: (getattr(obj, name),)
    return operator.attrgetter(*names)
