"""The compiled kernels of a store, the flat form of its state, and where kernels run.

- **Where**: stores of NumPy leaves (evaluation results, ``jax.device_get`` of a store) run
  their kernels on the CPU; host-only calls refuse tracers with their own message
  (:func:`refuse_tracers`), the one tracer check.
- **Flat leaves**: a store is flattened in one call by its layout (:func:`flatten`,
  :func:`unflatten`), because the layout already says each group's class, each field's storage
  (a plain array, or the two leaves of a Pair or Words, in :data:`exact.PARTS` order) and the static
  configuration: passing a store in and out of ``jax.jit`` costs what passing its leaves costs.
- **Kernels**: update, compute, aggregate and grow run over every group at once, mapping the
  metric's own kernel over the group's key axis with ``jax.vmap``, so an eager call is one
  compiled call per store structure. The NaN policy is applied here, by asking
  :mod:`metricskit.builtin` which metrics it masks.
"""

from __future__ import annotations

import contextlib
import functools
import operator
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, TypeVar, cast

import jax
import jax.numpy as jnp
import numpy as np

from metricskit import builtin, exact
from metricskit._engine.step import (
    Entry,
    Layout,
    Plan,
    Signature,
    decode,
    empty_state,
    is_jax,
)
from metricskit.compat import Tracer, committed, concrete
from metricskit.metric import Metric, Mode, get_log_mode

# -- where kernels run; the tracer check ------------------------------------------------------


def on_host(tree: Any) -> bool:
    """Whether every leaf of ``tree`` is a NumPy array (and there is at least one)."""
    leaves = jax.tree.leaves(tree)
    return bool(leaves) and all(isinstance(x, np.ndarray | np.generic) for x in leaves)


def device_for(tree: Any) -> contextlib.AbstractContextManager[Any]:
    """Run kernels on host data on the CPU, so that host stores never visit an accelerator."""
    if on_host(tree):
        return cast(
            contextlib.AbstractContextManager[Any],
            jax.default_device(jax.local_devices(backend="cpu")[0]),
        )
    return contextlib.nullcontext()


def traced(tree: Any) -> bool:
    """Whether a leaf of ``tree`` is a tracer (the call runs inside ``jax.jit`` or a map)."""
    if isinstance(tree, Tracer):
        return True
    if tree is None or is_jax(tree):  # one leaf (a store's first): no flattening
        return False
    return any(isinstance(x, Tracer) for x in jax.tree.leaves(tree))


def refuse_tracers(tree: Any, call: str) -> None:
    """Host-only calls say so when they meet a tracer (instead of JAX's concretization error).

    Args:
        tree: What the call was given.
        call: The call's name as a user writes it (``"MetricStore.compute"``).

    Raises:
        TypeError: If a leaf of ``tree`` is a tracer.
    """
    if traced(tree):
        short = call.rsplit(".", 1)[-1]
        raise TypeError(
            f"{call}() was called inside a jax.jit (or other transformed) function, on traced "
            f"values; {short}() is host-side: return the metrics from the jitted function and "
            f"call {short}() on them outside"
        )


def _placement(x: Any) -> str:
    devices = sorted(str(d) for d in x.devices())
    return devices[0] if len(devices) == 1 else f"{len(devices)} devices"


def device_mismatch(entries: Sequence[Entry], state_leaf: Any) -> str:
    """The message for an eager update whose committed arrays lie on different devices.

    Args:
        entries: The step's parsed entries.
        state_leaf: A leaf of the store's state (or ``None`` for an empty store).

    Returns:
        The message: where the store's state and each device-committed value lie, and the fix.
    """
    where = [
        f"{e.key!r} on {_placement(x)}"
        for e in entries
        for x in (e.value, e.count)
        if isinstance(x, jax.Array) and getattr(x, "committed", False)
    ]
    if isinstance(state_leaf, jax.Array) and getattr(state_leaf, "committed", False):
        where.insert(0, f"the store's state on {_placement(state_leaf)}")
    return (
        "MetricStore.update: the step's values and the store's state are committed to different "
        f"devices ({', '.join(where)}); an eager update is one computation on one placement. "
        "Put them on one device (jax.device_put), or update the store inside the jitted or "
        "sharded step that computes the values"
    )


# -- a store's flat leaves --------------------------------------------------------------------


class _GroupRecipe(NamedTuple):
    cls: type[Metric]
    fields: tuple[tuple[str, str], ...]  # (name, storage)
    statics: tuple[tuple[str, Any], ...]


_GET_PARTS = {storage: operator.attrgetter(*parts) for storage, parts in exact.PARTS.items()}


@functools.lru_cache(maxsize=256)
def _recipe(mode: Mode, signature: Signature) -> _GroupRecipe:
    log_mode = get_log_mode(mode)
    fields = tuple((name, spec.storage) for name, spec in signature.fields)
    return _GroupRecipe(log_mode.cls, fields, log_mode.options)


@functools.lru_cache(maxsize=256)
def _recipes(layout: Layout) -> tuple[_GroupRecipe, ...]:
    return tuple(_recipe(g.mode, g.signature) for g in layout.groups)


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
        parts = exact.PARTS.get(storage)
        if parts is None:
            value: Any = next(it)
        else:
            value = object.__new__(exact.ACCUMULATORS[storage])
            for part in parts:
                object.__setattr__(value, part, next(it))
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


def of_metric(metric: Metric, mode: Mode, signature: Signature) -> list[Any]:
    """The leaves of one metric of ``mode`` whose structure is ``signature`` (pytree order)."""
    leaves: list[Any] = []
    _append(leaves, metric, _recipe(mode, signature).fields)
    return leaves


def to_metric(mode: Mode, signature: Signature, leaves: Sequence[Any]) -> Metric:
    """The metric of ``mode`` and structure ``signature`` built from its ``leaves``."""
    return _build(_recipe(mode, signature), iter(leaves))


def first(metrics: Sequence[Metric], layout: Layout) -> Any:
    """The first leaf of ``metrics`` (``None`` if there is none), without flattening."""
    if not metrics:
        return None
    return exact.lead(getattr(metrics[0], _recipes(layout)[0].fields[0][0]))


def uncommitted(metrics: Sequence[Metric], layout: Layout) -> bool:
    """Whether the state is JAX arrays that no one placed on a device (the usual eager case)."""
    x = first(metrics, layout)
    return concrete(x) and not committed(x)


@functools.lru_cache(maxsize=256)
def paths(layout: Layout) -> tuple[str, ...]:
    """Each leaf's path, as ``"metrics[0].total.hi"`` (what checkpoints name leaves by)."""
    out = []
    for g, recipe in enumerate(_recipes(layout)):
        for name, storage in recipe.fields:
            parts = exact.PARTS.get(storage)
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
            leaf = exact.lead(getattr(metric, name))
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


# -- the compiled kernels ---------------------------------------------------------------------


def grow(metrics: Sequence[Metric], plan: Plan) -> list[Metric]:
    """The state in ``plan.after``'s layout: kept groups as they are, new rows and groups zero."""
    out = []
    for group, source in zip(plan.after.groups, plan.sources, strict=True):
        if source.group < 0:
            out.append(empty_state(group.mode, group.signature, len(group.keys)))
        elif source.rows is None:
            out.append(metrics[source.group])
        else:
            old = metrics[source.group]
            n_old = len(plan.before.groups[source.group].keys)
            zero = empty_state(group.mode, group.signature, 1)
            idx = np.array([r if r >= 0 else n_old for r in source.rows], np.int32)
            out.append(jax.tree.map(lambda x, z, i=idx: jnp.concatenate([x, z])[i], old, zero))
    return out


def _like(new: Metric, old: Metric, cls: type[Metric]) -> Metric:
    """``new`` with ``old``'s leaf dtypes (a state's structure and dtypes never change)."""
    got: Any = jax.tree.structure(new)
    if got != jax.tree.structure(old):
        raise TypeError(
            f"{cls.__name__}.update returned a state of structure {jax.tree.structure(new)}, "
            f"but it was given {jax.tree.structure(old)}; update must return the same fields "
            "(use self.replace(...))"
        )
    return cast(
        Metric,
        jax.tree.map(lambda a, b: a if a.dtype == b.dtype else a.astype(b.dtype), new, old),
    )


def update(
    metrics: tuple[Metric, ...], values: tuple[Any, ...], counts: tuple[Any, ...], plan: Plan
) -> tuple[Metric, ...]:
    """Grow the state to the plan's layout, then update every routed group (one vmap each)."""
    out = grow(metrics, plan)
    inputs = [
        (decode(v, slot.value, len(slot.entries)), decode(c, slot.count, len(slot.entries)))
        for v, c, slot in zip(values, counts, plan.slots, strict=True)
    ]
    for route in plan.routes:
        cls = get_log_mode(plan.after.groups[route.group].mode).cls
        value, count = inputs[route.slot]
        if not cls.exact_inputs:
            value, count = exact.to_float(value), exact.to_float(count)  # rounded
        current = out[route.group]
        rows = None if route.rows is None else np.asarray(route.rows, np.int32)
        before = current if rows is None else jax.tree.map(lambda x, r=rows: x[r], current)
        after = _like(jax.vmap(cls.update)(before, value, count), before, cls)
        if route.skip is not None and builtin.masked(cls):
            finite = jax.vmap(builtin.finite)(value, count)
            after = builtin.keep_rows(~finite & np.asarray(route.skip), after, before)
        if rows is None:
            out[route.group] = after
        else:
            out[route.group] = jax.tree.map(  # jnp: a host store's leaves may be NumPy
                lambda x, y, r=rows: jnp.asarray(x).at[r].set(y), current, after
            )
    return tuple(out)


def _update_flat(
    flat: list[Any], values: tuple[Any, ...], counts: tuple[Any, ...], plan: Plan
) -> list[Any]:
    """:func:`update` on and to flat leaves (eagerly, the store's one-call unflattening is
    cheaper than JAX's node by node: about 6 us a call for one per-sample key)."""
    metrics = unflatten(plan.before, flat)
    return flatten(update(metrics, values, counts, plan), plan.after)


update_jit = jax.jit(_update_flat, static_argnames="plan")


def _traced(
    metrics: tuple[Metric, ...], values: tuple[Any, ...], counts: tuple[Any, ...], plan: Plan
) -> bool:
    """Whether the update runs inside a trace, asked of one leaf of the state (traced together
    or not at all) and of each slot's first entry (:func:`~metricskit._engine.step.pack` passes
    JAX values only as entries of a tuple; a slot mixing tracers with concrete arrays takes the
    compiled call). No flattening: this runs on every eager update."""
    if traced(first(metrics, plan.before)):
        return True
    return any(type(s) is tuple and s and traced(s[0]) for s in (*values, *counts))


def apply_update(
    metrics: tuple[Metric, ...], values: tuple[Any, ...], counts: tuple[Any, ...], plan: Plan
) -> tuple[Metric, ...]:
    """:func:`update`: eagerly one compiled call; inside a trace, inlined into the caller's.

    A nested ``jit`` would receive a step's K metrics as K operands of one call, which XLA
    simplifies only after inlining it: at K=10,000 that took 3.6 s to compile against 1.9 s
    for the same step written by hand. Inlined, the stacking of the K values is simplified
    with the step that computes them.
    """
    if _traced(metrics, values, counts, plan):
        return tuple(update(metrics, values, counts, plan))
    flat = update_jit(flatten(metrics, plan.before), values, counts, plan=plan)
    return unflatten(plan.after, flat)


grow_jit = jax.jit(lambda metrics, plan: tuple(grow(metrics, plan)), static_argnames="plan")


@jax.jit
def compute_jit(metrics: tuple[Metric, ...]) -> tuple[tuple[Any, jax.Array], ...]:
    """Every group's computed values and per-key emptiness."""
    return tuple((jax.vmap(type(m).compute)(m), jax.vmap(type(m).is_empty)(m)) for m in metrics)


@jax.jit
def zeros_jit(metrics: tuple[Metric, ...]) -> tuple[Metric, ...]:
    """Every group's empty (all-zero) state, in one compiled call (for unplaced device state:
    state committed to devices keeps its placement through ``metric.zeros_like``)."""
    return tuple(jax.tree.map(jnp.zeros_like, m) for m in metrics)


@jax.jit
def aggregate_jit(a: tuple[Metric, ...], b: tuple[Metric, ...]) -> tuple[Metric, ...]:
    """Every group of ``a`` aggregated with the same group of ``b``."""
    return tuple(jax.vmap(type(x).aggregate)(x, y) for x, y in zip(a, b, strict=True))


# -- a store as a pytree -----------------------------------------------------------------------

S = TypeVar("S")
_set = object.__setattr__


def set_store(
    store: S,
    default_log_modes: tuple[Mode, ...] | None,
    policy: str,
    layout: Layout,
    metrics: tuple[Metric, ...],
) -> S:
    """Set a store's four attributes, once: no checks, tracer-safe."""
    _set(store, "default_log_modes", default_log_modes)
    _set(store, "nan_policy", policy)
    _set(store, "layout", layout)
    _set(store, "metrics", metrics)
    return store


def flatten_store(store: Any) -> tuple[list[Any], tuple[Any, ...]]:
    """``(leaves, static structure)`` of a store."""
    aux = (store.default_log_modes, store.nan_policy, store.layout)
    return flatten(store.metrics, store.layout), aux


def _flatten_store_with_keys(store: Any) -> tuple[list[Any], tuple[Any, ...]]:
    flat, aux = flatten_store(store)
    keys = (jax.tree_util.GetAttrKey(p) for p in paths(store.layout))
    return list(zip(keys, flat, strict=True)), aux


def unflatten_store(cls: type[S], aux: tuple[Any, ...], children: Any) -> S:
    """The store of class ``cls`` with static structure ``aux`` and leaves ``children``
    (every store a jitted step returns comes through here)."""
    modes, policy, layout = aux
    return set_store(object.__new__(cls), modes, policy, layout, unflatten(layout, children))


def register_store(cls: type) -> None:
    """Register the store class ``cls`` as a pytree (leaves with their paths as keys)."""
    jax.tree_util.register_pytree_with_keys(
        cls, _flatten_store_with_keys, functools.partial(unflatten_store, cls), flatten_store
    )
