"""A store's state as one flat list of leaves, and back, by its layout.

A store is flattened in one call (not one call per metric and per exact accumulator), because
its layout already says everything about the structure: each group's metric class, each
field's storage (a plain array, or the two leaves of an exact Pair or Words) and the static
configuration. That makes passing a store in and out of ``jax.jit`` cost what passing its
leaves costs. The leaves come in the order ``jax.tree.leaves`` gives for the metrics.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, cast

import jax

from metricskit import exact
from metricskit.metric import Metric
from metricskit.registry import get_log_mode
from metricskit.store.layout import Layout, Signature

__all__ = [
    "PARTS",
    "check_shapes",
    "first",
    "flatten",
    "of_metric",
    "paths",
    "to_metric",
    "uncommitted",
    "unflatten",
]


class _GroupRecipe(NamedTuple):
    cls: type[Metric]
    fields: tuple[tuple[str, str], ...]  # (name, storage)
    statics: tuple[tuple[str, Any], ...]


PARTS = {"pair": ("hi", "lo"), "words": ("lo", "hi")}
"""The leaves of each exact storage, by attribute, in pytree order."""
_GET_PARTS = {storage: operator.attrgetter(*parts) for storage, parts in PARTS.items()}


@functools.lru_cache(maxsize=256)
def _recipe(cls: type[Metric], signature: Signature) -> _GroupRecipe:
    return _GroupRecipe(
        cls, tuple((name, spec.storage) for name, spec in signature.fields), signature.statics
    )


@functools.lru_cache(maxsize=256)
def _recipes(layout: Layout) -> tuple[_GroupRecipe, ...]:
    return tuple(_recipe(get_log_mode(g.mode).cls, g.signature) for g in layout.groups)


def _append(leaves: list[Any], metric: Metric, fields: tuple[tuple[str, str], ...]) -> None:
    for name, storage in fields:
        value = getattr(metric, name)
        get_parts = _GET_PARTS.get(storage)
        if get_parts is None:
            leaves.append(value)
        else:
            leaves.extend(get_parts(value))


def _build(recipe: _GroupRecipe, it: Iterator[Any]) -> Metric:
    metric: Any = object.__new__(recipe.cls)
    for name, storage in recipe.fields:
        if storage == "pair":
            value: Any = object.__new__(exact.Pair)
            object.__setattr__(value, "hi", next(it))
            object.__setattr__(value, "lo", next(it))
        elif storage == "words":
            value = object.__new__(exact.Words)
            object.__setattr__(value, "lo", next(it))
            object.__setattr__(value, "hi", next(it))
        else:
            value = next(it)
        object.__setattr__(metric, name, value)
    for name, static in recipe.statics:
        object.__setattr__(metric, name, static)
    return cast(Metric, metric)


def flatten(metrics: Sequence[Metric], layout: Layout) -> list[Any]:
    """Every leaf of ``metrics`` (one stacked metric per group of ``layout``), in order."""
    leaves: list[Any] = []
    for metric, recipe in zip(metrics, _recipes(layout), strict=True):
        _append(leaves, metric, recipe.fields)
    return leaves


def unflatten(layout: Layout, leaves: Sequence[Any]) -> tuple[Metric, ...]:
    """The metrics of ``layout`` built from ``leaves`` (as :func:`flatten` gave them).

    The leaves may be anything (arrays, tracers, abstract values, placeholders): nothing is
    checked or converted, as JAX requires of unflattening.
    """
    it = iter(leaves)
    return tuple(_build(recipe, it) for recipe in _recipes(layout))


def of_metric(metric: Metric, signature: Signature) -> list[Any]:
    """The leaves of one metric whose structure is ``signature`` (in pytree order)."""
    leaves: list[Any] = []
    _append(leaves, metric, _recipe(type(metric), signature).fields)
    return leaves


def to_metric(cls: type[Metric], signature: Signature, leaves: Sequence[Any]) -> Metric:
    """The metric of class ``cls`` and structure ``signature`` built from its ``leaves``."""
    return _build(_recipe(cls, signature), iter(leaves))


def first(metrics: Sequence[Metric], layout: Layout) -> Any:
    """The first leaf of ``metrics`` (``None`` if there is none), without flattening."""
    if not metrics:
        return None
    name, storage = _recipes(layout)[0].fields[0]
    value = getattr(metrics[0], name)
    return getattr(value, PARTS[storage][0]) if storage in PARTS else value


def uncommitted(metrics: Sequence[Metric], layout: Layout) -> bool:
    """Whether the state is JAX arrays that no one placed on a device (the usual eager case)."""
    x = first(metrics, layout)
    return (
        isinstance(x, jax.Array)
        and not isinstance(x, jax.core.Tracer)
        and not bool(getattr(x, "committed", getattr(x, "_committed", True)))
    )


@functools.lru_cache(maxsize=256)
def paths(layout: Layout) -> tuple[str, ...]:
    """Each leaf's path, as ``"metrics[0].total.hi"`` (what checkpoints name leaves by)."""
    out = []
    for g, recipe in enumerate(_recipes(layout)):
        for name, storage in recipe.fields:
            parts = PARTS.get(storage)
            if parts is None:
                out.append(f"metrics[{g}].{name}")
            else:
                out.extend(f"metrics[{g}].{name}.{part}" for part in parts)
    return tuple(out)


def check_shapes(metrics: Sequence[Metric], layout: Layout, call: str) -> None:
    """Refuse a store whose leaves do not have the layout's shapes (host-side calls).

    A store batched by ``jax.vmap``, or stacked by ``shard_map``'s ``out_specs`` along a mesh
    axis, carries an extra or longer leading axis on every leaf; reporting it as one store
    would read only its first member.

    Raises:
        ValueError: Naming the call, the leaf, the two shapes and the fix.
    """
    for g, (group, metric) in enumerate(zip(layout.groups, metrics, strict=True)):
        for name, spec in group.signature.fields:
            value = getattr(metric, name)
            leaf = getattr(value, PARTS[spec.storage][0]) if spec.storage in PARTS else value
            shape = tuple(getattr(leaf, "shape", ()))
            if len(shape) == 1 + len(spec.shape) and shape[0] == len(group.keys):
                continue
            want = (len(group.keys), *spec.shape)
            raise ValueError(
                f"{call}: leaf metrics[{g}].{name} (keys {list(group.keys[:3])}, log mode "
                f"{group.mode!r}) has shape {shape}, but the store's structure says {want}: "
                "the store was batched (jax.vmap) or stacked along a mesh axis (shard_map "
                "out_specs); report each member separately (jax.tree.map(lambda x: x[i], "
                "store)), or combine devices inside the map with store.sync(axis_name) and "
                "return it replicated (out_specs=P())"
            )
