"""The plan of one update: the layout after it, how the state grows, where each input goes.

A :class:`Plan` is static and hashable, made once per (layout, step structure) and kept in a
bounded module-level cache, so an eager update of an unchanged structure costs a dictionary
lookup and the compiled update never retraces. Making a plan is also where a step that does
not fit the store (a changed shape, an integer state fed floats, two keys reported under one
name) is refused, before any state changes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import attrs
import jax.numpy as jnp

from metricskit.fields import Spec
from metricskit.registry import Mode, get_log_mode, mode_name
from metricskit.store.layout import (
    Group,
    Layout,
    Signature,
    canonical,
    describe,
    index,
    key_modes,
    names,
    signature_for,
)
from metricskit.store.parse import Entry

__all__ = ["Plan", "Route", "Slot", "make_plan", "step_signature"]

StepSignature = tuple[tuple[str, tuple[Mode, ...], Spec, Spec, bool], ...]


@attrs.frozen(cache_hash=True)
class Slot:
    """One stacked input of the compiled update: some entries' values (and counts), stacked.

    Attributes:
        entries: The entries' indices, in stacking order.
        value: The spec every one of their values has.
        count: The spec every one of their counts has.
    """

    entries: tuple[int, ...]
    value: Spec
    count: Spec


@attrs.frozen(cache_hash=True)
class Route:
    """One slot applied to some rows of one group.

    Attributes:
        group: The group's index in :attr:`Plan.after`.
        slot: The input slot.
        rows: The rows of the group it updates, or ``None`` for all rows in order.
        skip: Per row, whether a non-finite step is skipped; ``None`` if no row is.
    """

    group: int
    slot: int
    rows: tuple[int, ...] | None
    skip: tuple[bool, ...] | None


@attrs.frozen(cache_hash=True)
class Source:
    """Where the rows of a group after the update come from, before it.

    Attributes:
        group: The group's index in :attr:`Plan.before`, or ``-1`` for a new group.
        rows: For each row after, its row before, or ``-1`` for a new (zero) row; ``None``
            when the group is unchanged.
    """

    group: int
    rows: tuple[int, ...] | None


@attrs.frozen(cache_hash=True)
class Plan:
    """A static recipe for one update."""

    before: Layout
    after: Layout
    sources: tuple[Source, ...]
    slots: tuple[Slot, ...]
    routes: tuple[Route, ...]

    @property
    def grows(self) -> bool:
        """Whether the state changes structure (new keys, modes or groups)."""
        return self.after is not self.before


def step_signature(entries: Sequence[Entry]) -> StepSignature:
    """The static structure of one step (what a plan depends on)."""
    return tuple((e[0], e[3], e[4], e[5], e[6]) for e in entries)  # key, modes, specs, skip


_ORIGINS: dict[Signature, tuple[Spec, Spec]] = {}


def _signature(mode: Mode, value: Spec, count: Spec) -> Signature:
    log_mode = get_log_mode(mode)
    sig = signature_for(log_mode.cls, value, count, log_mode.options)
    if len(_ORIGINS) > 4096:
        _ORIGINS.clear()
    _ORIGINS.setdefault(sig, (value, count))
    return sig


def _is_int(storage: str) -> bool:
    return storage == "words" or (storage != "pair" and jnp.dtype(storage).kind in "biu")


def _fits(new: str, old: str) -> bool:
    """Whether a step giving a field of storage ``new`` can update a state of storage ``old``.

    Floats take anything numeric (rounded if narrower); integers take integers that fit.
    """
    if new == old or old == "pair":
        return True
    if old == "words":
        return _is_int(new)
    kind = "f" if jnp.issubdtype(jnp.dtype(old), jnp.floating) else jnp.dtype(old).kind
    if kind == "f":
        return True
    if kind in "iu":
        return (
            new not in ("pair", "words")
            and _is_int(new)
            and (jnp.dtype(new).itemsize <= jnp.dtype(old).itemsize)
        )
    return False


def _check(key: str, mode: Mode, old: Signature, new: Signature, value: Spec, count: Spec) -> None:
    """Raise if a step of (value, count) cannot update a state of signature ``old``."""
    origin = _ORIGINS.get(old)
    for (name, o), (_, n) in zip(old.fields, new.fields, strict=True):
        if o.shape != n.shape:
            earlier = (
                f"earlier steps gave value shape {origin[0].shape} and count shape "
                f"{origin[1].shape}"
                if origin
                else f"the key's state has fields {describe(old)}"
            )
            raise ValueError(
                f"metric {key!r} (log mode {mode!r}): the value has shape {value.shape} and the "
                f"count shape {count.shape}, but {earlier}; a key's shapes are fixed once seen "
                "(use a new key, or start from a fresh store)"
            )
        if not _fits(n.storage, o.storage):
            if _is_int(o.storage) and not _is_int(n.storage):
                what = "count" if name == "count" else "value"
                given = count.dtype if what == "count" else value.dtype
                raise TypeError(
                    f"metric {key!r} (log mode {mode!r}): its state holds integers (the key was "
                    f"created from an integer {what}, e.g. init({{{key!r}: 0}})), but this "
                    f"step's {what} is {given}; create the key from a float (write 0.0, not 0), "
                    "or keep passing integers"
                )
            raise TypeError(
                f"metric {key!r} (log mode {mode!r}): this step (value {value.dtype}, count "
                f"{count.dtype}) cannot update the key's state (fields {describe(old)}); pass "
                "the dtypes the key was created with"
            )
    if old.statics != new.statics:
        raise TypeError(
            f"metric {key!r} (log mode {mode!r}) has configuration {old.statics}, but this step "
            f"makes {new.statics}"
        )


def _check_replaced(
    key: str,
    modes: tuple[Mode, ...],
    old_modes: tuple[Mode, ...],
    before: Layout,
    where: dict[tuple[str, Mode], tuple[int, int]],
    value: Spec,
    count: Spec,
) -> None:
    """Raise if a step gives a key only new modes for a value of another shape than its
    accumulating state was made for: a placeholder (``init({"f1": 0.0})``) followed by a task
    metric's statistics, which would report the placeholder's empty mode beside them."""
    for old_mode in old_modes:
        if not get_log_mode(old_mode).cls.accumulates:
            continue
        old = before.groups[where[(key, old_mode)][0]].signature
        try:
            probe = _signature(old_mode, value, count)
        except ValueError:
            probe = None
        if probe is None or [s.shape for _, s in probe.fields] != [s.shape for _, s in old.fields]:
            shown = ", ".join(map(mode_name, modes))
            raise ValueError(
                f"metric {key!r} holds log mode {mode_name(old_mode)!r} for a value of another "
                f"shape (fields {describe(old)}: a placeholder such as 0.0 in init or a first "
                f"step?), and this step gives it a value of shape {value.shape} under {shown} "
                "only; a key's shapes are fixed once seen. Initialise the key with what the "
                f"step gives it (store.init({{{key!r}: <the task function's output>}}), e.g. "
                "tasks.f1(...)), or zero-fill jax.eval_shape of the step that makes it"
            )


@functools.lru_cache(maxsize=512)
def make_plan(before: Layout, step: StepSignature) -> Plan:
    """The plan for updating a store of layout ``before`` with a step of structure ``step``.

    Raises:
        ValueError: A key's shapes differ from earlier steps (for an accumulating mode), or
            two metrics would be reported under one name.
        TypeError: A step's dtypes cannot update the key's state.
    """
    where = index(before)
    members: dict[tuple[Mode, Signature], set[str]] = {
        (g.mode, g.signature): set(g.keys) for g in before.groups
    }
    targets: dict[tuple[Mode, Signature], list[tuple[str, int, Spec, Spec, bool]]] = {}
    signatures: dict[tuple[Mode, Spec, Spec], Signature] = {}  # K keys share a few
    known = key_modes(before)
    for i, (key, modes, vspec, cspec, skip) in enumerate(step):
        if key in known and not set(modes) & set(known[key]):
            _check_replaced(key, modes, known[key], before, where, vspec, cspec)
        for mode in modes:
            new = signatures.get((mode, vspec, cspec))
            if new is None:
                try:
                    new = signatures[(mode, vspec, cspec)] = _signature(mode, vspec, cspec)
                except ValueError as e:
                    raise ValueError(f"Metric {key!r} (log mode {mode!r}): {e}") from None
            target = (mode, new)
            if (key, mode) in where:
                g, _ = where[(key, mode)]
                old = before.groups[g].signature
                if old != new:
                    if get_log_mode(mode).cls.accumulates:
                        _check(key, mode, old, new, vspec, cspec)
                        target = (mode, old)
                    else:  # holds the latest step only: the key follows the step's shape
                        members[(mode, old)].discard(key)
                        members.setdefault(target, set()).add(key)
            else:
                members.setdefault(target, set()).add(key)
            targets.setdefault(target, []).append((key, i, vspec, cspec, skip))
    after = canonical(Group(mode, sig, tuple(keys)) for (mode, sig), keys in members.items())
    if after == before:
        after = before
    names(after)  # refuses two metrics reported under one name
    return Plan(before, after, _sources(before, after), *_routes(after, targets))


def _sources(before: Layout, after: Layout) -> tuple[Source, ...]:
    by_sig = {(g.mode, g.signature): i for i, g in enumerate(before.groups)}
    out = []
    for g in after.groups:
        b = by_sig.get((g.mode, g.signature), -1)
        if b >= 0 and before.groups[b].keys == g.keys:
            out.append(Source(b, None))
            continue
        old_rows = {key: r for r, key in enumerate(before.groups[b].keys)} if b >= 0 else {}
        out.append(Source(b, tuple(old_rows.get(key, -1) for key in g.keys)))
    return tuple(out)


def _routes(
    after: Layout, targets: dict[tuple[Mode, Signature], list[tuple[str, int, Spec, Spec, bool]]]
) -> tuple[tuple[Slot, ...], tuple[Route, ...]]:
    slots: dict[Slot, int] = {}
    routes = []
    for g, group in enumerate(after.groups):
        updates = targets.get((group.mode, group.signature))
        if not updates:
            continue
        rows_of = {key: r for r, key in enumerate(group.keys)}
        by_specs: dict[tuple[Spec, Spec], list[tuple[str, int, Spec, Spec, bool]]] = {}
        for update in updates:
            by_specs.setdefault((update[2], update[3]), []).append(update)
        for (vspec, cspec), chosen in by_specs.items():
            chosen.sort(key=lambda u: rows_of[u[0]])
            slot = Slot(tuple(u[1] for u in chosen), vspec, cspec)
            rows = tuple(rows_of[u[0]] for u in chosen)
            skip = tuple(u[4] for u in chosen)
            routes.append(
                Route(
                    g,
                    slots.setdefault(slot, len(slots)),
                    None if rows == tuple(range(len(group.keys))) else rows,
                    skip if any(skip) else None,
                )
            )
    return tuple(slots), tuple(routes)
