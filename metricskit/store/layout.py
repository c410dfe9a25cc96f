"""The static structure of a store: which keys share which stacked metric, in canonical order.

Keys that share a log mode and a state *signature* (the shapes and storage of the metric's
fields, and its static configuration) form a :class:`Group`: one stacked
:class:`~metricskit.Metric` whose leaves carry a leading key axis. A :class:`Layout` lists the
groups in a canonical order, with each group's keys sorted, so the order in which a step
dict lists its keys never changes the structure (and never recompiles). A layout is pytree
metadata: hashable and compared by value. Everything derived from it (where a key is, the
reported names and their order) lives in bounded module-level caches keyed by the layout.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any, NamedTuple, cast

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from metricskit import exact
from metricskit.dtypes import float_dtype, int_dtype
from metricskit.fields import FieldSpec, Spec
from metricskit.metric import Metric, Options, state_fields, static_fields, static_options
from metricskit.registry import Mode, get_log_mode, mode_order

__all__ = [
    "Group",
    "Layout",
    "Signature",
    "build",
    "describe",
    "index",
    "key_modes",
    "names",
    "rows",
    "signature_for",
    "signature_of",
]


class Signature(NamedTuple):
    """The per-key structure of a metric: its fields' shapes and storage, and its statics.

    Attributes:
        fields: ``(name, FieldSpec)`` for every state field, in declaration order.
        statics: ``(name, value)`` for every static field.
    """

    fields: tuple[tuple[str, FieldSpec], ...]
    statics: tuple[tuple[str, Any], ...]


@attrs.frozen(cache_hash=True)
class Group:
    """Keys that share one stacked metric.

    Attributes:
        mode: The log mode (a registered name or a configured metric).
        signature: The per-key state structure.
        keys: The keys, sorted.
    """

    mode: Mode
    signature: Signature
    keys: tuple[str, ...]


@attrs.frozen(cache_hash=True)
class Layout:
    """The groups of a store, in canonical order (by mode, then signature).

    Attributes:
        groups: The groups.
    """

    groups: tuple[Group, ...] = ()


def canonical(groups: Iterable[Group]) -> Layout:
    """A layout of ``groups`` (keys sorted, empty groups dropped) in canonical order."""
    kept = [Group(g.mode, g.signature, tuple(sorted(g.keys))) for g in groups if g.keys]
    kept.sort(key=lambda g: (mode_order(g.mode), repr(g.signature)))
    return Layout(tuple(kept))


@functools.lru_cache(maxsize=4096)
def signature_for(
    cls: type[Metric], value: Spec, count: Spec, options: Options | None = None
) -> Signature:
    """The signature of ``cls.empty(value, count, **dict(options))`` (cached); ``options``
    ``None``: the static fields' defaults."""
    fields = tuple(cls.field_specs(value, count).items())
    statics = static_options(cls, {}) if options is None else options
    return Signature(fields, statics)


def _storage(x: Any) -> tuple[tuple[int, ...], str]:
    if isinstance(x, exact.Pair):
        return tuple(np.shape(x.hi)), "pair"
    if isinstance(x, exact.Words):
        return tuple(np.shape(x.lo)), "words"
    return tuple(np.shape(x)), np.dtype(x.dtype).name


def signature_of(metric: Metric, stacked: bool = False) -> Signature:
    """The signature of an existing state (``stacked``: it has a leading key axis).

    Raises:
        TypeError: If a field holds something other than an array, Pair or Words.
    """
    fields = []
    for f in state_fields(type(metric)):
        try:
            shape, storage = _storage(getattr(metric, f.name))
        except AttributeError:
            raise TypeError(
                f"{type(metric).__name__}.{f.name} holds {getattr(metric, f.name)!r}, not an "
                "array (or exact Pair/Words)"
            ) from None
        fields.append((f.name, FieldSpec(shape[1:] if stacked else shape, storage)))
    statics = Options((f.name, getattr(metric, f.name)) for f in static_fields(type(metric)))
    return Signature(tuple(fields), statics)


def _zeros(spec: FieldSpec, n: int | None, xp: Any) -> Any:
    shape = spec.shape if n is None else (n, *spec.shape)
    if spec.storage in ("pair", "words"):
        dtype = float_dtype() if spec.storage == "pair" else int_dtype()
        parts = (xp.zeros(shape, dtype), xp.zeros(shape, dtype))
        return exact.Pair(*parts) if spec.storage == "pair" else exact.Words(*parts)
    return xp.zeros(shape, jnp.dtype(spec.storage))


def build(mode: Mode, signature: Signature, n: int | None, xp: Any = None) -> Metric:
    """The empty (zero) state of ``signature``: stacked ``n`` times, or one key's (``None``).

    Args:
        mode: The log mode (its class is built).
        signature: The structure.
        n: The number of stacked keys, or ``None`` for one unstacked state.
        xp: ``jax.numpy`` (default) or ``numpy``.

    Returns:
        The state.
    """
    xp = jnp if xp is None else xp
    cls = get_log_mode(mode).cls
    new: Any = object.__new__(cls)
    for name, spec in signature.fields:
        object.__setattr__(new, name, _zeros(spec, n, xp))
    for name, value in signature.statics:
        object.__setattr__(new, name, value)
    return cast(Metric, new)


def describe(signature: Signature) -> str:
    """The fields of a signature in words, for error messages."""
    return ", ".join(f"{name} {tuple(s.shape)} {s.storage}" for name, s in signature.fields)


@functools.lru_cache(maxsize=256)
def index(layout: Layout) -> dict[tuple[str, Mode], tuple[int, int]]:
    """``(key, mode) -> (group, row)`` for every metric of ``layout``."""
    return {
        (key, g.mode): (i, row)
        for i, g in enumerate(layout.groups)
        for row, key in enumerate(g.keys)
    }


@functools.lru_cache(maxsize=256)
def key_modes(layout: Layout) -> dict[str, tuple[Mode, ...]]:
    """Every key of ``layout`` (sorted) and its modes (in :func:`mode_order`)."""
    modes: dict[str, list[Mode]] = {}
    for g in layout.groups:
        for key in g.keys:
            modes.setdefault(key, []).append(g.mode)
    return {key: tuple(sorted(modes[key], key=mode_order)) for key in sorted(modes)}


@functools.lru_cache(maxsize=256)
def names(layout: Layout) -> tuple[tuple[str, int, int, int], ...]:
    """The reported ``(name, group, row, part)`` of every value, in report order (key, then
    mode); ``part`` is ``-1`` for a metric reported under one name, else the index of the
    value among those a metric reports under names of their own (``Metric.parts``).

    Raises:
        ValueError: If two values would be reported under one name.
    """
    where = index(layout)
    out: list[tuple[str, int, int, int]] = []
    seen: dict[str, tuple[str, Mode]] = {}
    for key, modes in key_modes(layout).items():
        for mode in modes:
            log_mode = get_log_mode(mode)
            parts = log_mode.parts
            suffixes = (
                [(log_mode.postfix + s, i) for i, s in enumerate(parts)]
                if parts
                else [(log_mode.postfix, -1)]
            )
            for suffix, part in suffixes:
                name = key + suffix
                if name in seen:
                    raise ValueError(_collision(key, mode, name, *seen[name]))
                seen[name] = (key, mode)
                out.append((name, *where[(key, mode)], part))
    return tuple(out)


def _collision(key: str, mode: Mode, name: str, other_key: str, other_mode: Mode) -> str:
    """The message for two values reported under one name, with the fix that applies."""
    head = (
        f"metric {key!r} with log mode {mode!r} would be reported as {name!r}, which metric "
        f"{other_key!r} with log mode {other_mode!r} is already reported as; "
    )
    if other_key != key:
        return head + "rename one of the keys"
    if mode == other_mode:
        return head + f"the parts {get_log_mode(mode).parts} of this one mode repeat a suffix"
    if repr(mode) == repr(other_mode):  # two classes of one name
        return head + (
            "they are two different classes of the same name (was the class defined again, "
            "e.g. by re-running a notebook cell?): start from a fresh store, or keep using the "
            "first class"
        )
    if isinstance(mode, str) and isinstance(other_mode, str):
        return head + "log the key in only one of the two modes"
    return head + (
        "give the configured metric another postfix (MyMetric(..., postfix='_x')), or log "
        "the key in only one of the two modes"
    )


@functools.lru_cache(maxsize=256)
def rows(layout: Layout) -> tuple[tuple[str, tuple[tuple[Mode, int, int], ...]], ...]:
    """Every key (sorted) with its ``(mode, group, row)`` triples (modes sorted)."""
    where = index(layout)
    return tuple(
        (key, tuple((mode, *where[(key, mode)]) for mode in modes))
        for key, modes in key_modes(layout).items()
    )


def abstract(metric: Metric) -> list[tuple[tuple[int, ...], Any]]:
    """The shapes and dtypes of a state's leaves (for error messages and checks)."""
    return [(tuple(np.shape(x)), np.dtype(x.dtype)) for x in jax.tree.leaves(metric)]
