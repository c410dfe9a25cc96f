"""A store as a pytree: its four attributes set once, its state flattened by its layout.

:class:`~metricskit.MetricStore` is registered here (:func:`register`): its leaves are the
stacked metrics' arrays (:mod:`metricskit.store.leaves`), its static structure the default
log modes, the NaN policy and the layout. Unflattening sets the attributes directly (no
``__init__``, no checks), so it is cheap and safe with tracers; copy, deepcopy and pickle
rebuild a store the same way.
"""

from __future__ import annotations

import functools
from typing import Any, TypeVar

import jax

from metricskit.metric import Metric
from metricskit.registry import Mode
from metricskit.store import leaves
from metricskit.store.layout import Layout

__all__ = ["FIELDS", "build", "flatten", "register", "unflatten"]

FIELDS = ("default_log_modes", "nan_policy", "layout", "metrics")
"""A store's attributes, in the order :func:`build` takes them."""

S = TypeVar("S")
_set = object.__setattr__


def build(
    store: S,
    default_log_modes: tuple[Mode, ...] | None,
    policy: str,
    layout: Layout,
    metrics: tuple[Metric, ...],
) -> S:
    """Set a store's attributes (:data:`FIELDS`), once: no checks, tracer-safe."""
    _set(store, "default_log_modes", default_log_modes)
    _set(store, "nan_policy", policy)
    _set(store, "layout", layout)
    _set(store, "metrics", metrics)
    return store


def flatten(store: Any) -> tuple[list[Any], tuple[Any, ...]]:
    """``(leaves, static structure)`` of a store."""
    aux = (store.default_log_modes, store.nan_policy, store.layout)
    return leaves.flatten(store.metrics, store.layout), aux


def _flatten_with_keys(store: Any) -> tuple[list[Any], tuple[Any, ...]]:
    flat, aux = flatten(store)
    keys = (jax.tree_util.GetAttrKey(p) for p in leaves.paths(store.layout))
    return list(zip(keys, flat, strict=True)), aux


def unflatten(cls: type[S], aux: tuple[Any, ...], children: Any) -> S:
    """The store of class ``cls`` with static structure ``aux`` and leaves ``children``
    (every store a jitted step returns comes through here)."""
    modes, policy, layout = aux
    return build(object.__new__(cls), modes, policy, layout, leaves.unflatten(layout, children))


def register(cls: type) -> None:
    """Register the store class ``cls`` as a pytree (leaves with their paths as keys)."""
    jax.tree_util.register_pytree_with_keys(
        cls, _flatten_with_keys, functools.partial(unflatten, cls), flatten
    )
