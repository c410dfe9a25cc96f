"""The static structure of a :class:`~metricskit.MetricStore` and the plan of one update.

Keys that share a log mode and the shapes and dtypes of their step values and counts form a
*group*: one stacked :class:`~metricskit.Metric` whose leaves carry a leading key axis. A
:class:`Layout` lists the groups; it is pytree metadata (hashable, compared by value), so the
compiled update is cached per layout and never retraces while the layout stays the same.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from metricskit.inputs import Entry, Spec
from metricskit.registry import get_log_mode

__all__ = ["Group", "Layout", "Plan", "Route"]

_MAX_PLANS = 256  # distinct step structures remembered per layout


@attrs.frozen(cache_hash=True)
class Group:
    """Keys that share one stacked metric.

    Attributes:
        mode: The log-mode name.
        value: ``(shape, dtype)`` of one key's step value.
        count: ``(shape, dtype)`` of one key's step count.
        keys: The keys, in stacking order.
    """

    mode: str
    value: Spec
    count: Spec
    keys: tuple[str, ...]

    @property
    def signature(self) -> tuple[str, Spec, Spec]:
        """What keys of this group share."""
        return (self.mode, self.value, self.count)


@attrs.frozen(cache_hash=True)
class Route:
    """Where one step's entries go in one group.

    Attributes:
        group: The group's index in the layout.
        entries: Indices of the step's entries, one per updated key of the group.
        positions: The keys' positions in the group, or ``None`` when every key of the group
            is updated in order (no gather or scatter needed).
        skip: Per updated key, whether a non-finite step is skipped; ``None`` if none is.
    """

    group: int
    entries: tuple[int, ...]
    positions: tuple[int, ...] | None
    skip: tuple[bool, ...] | None = None


@attrs.frozen(cache_hash=True)
class Plan:
    """A static recipe for one update: the layout before, the layout after, the routes."""

    before: Layout
    after: Layout
    routes: tuple[Route, ...]


def _compatible(key: str, what: str, old: Spec, new: Spec) -> None:
    if old[0] != new[0]:
        raise ValueError(
            f"metric {key!r}: the {what} has shape {new[0]}, but earlier steps gave shape "
            f"{old[0]}; a key's shapes are fixed once seen (use a new key, or start from a "
            "fresh store)"
        )
    if not np.can_cast(np.dtype(new[1]), np.dtype(old[1]), casting="same_kind"):
        raise TypeError(
            f"metric {key!r}: the {what} has dtype {new[1]}, but its state holds {old[1]} "
            f"from earlier steps and {new[1]} cannot be cast to it safely; pass {old[1]}"
        )


@attrs.frozen(cache_hash=True)
class Layout:
    """The groups of a store and the order in which its ``(key, mode)`` pairs are reported.

    Attributes:
        groups: The groups, in creation order.
        order: Every ``(key, mode)`` pair, in first-seen order.
    """

    groups: tuple[Group, ...] = ()
    order: tuple[tuple[str, str], ...] = ()
    index: dict[tuple[str, str], tuple[int, int]] = attrs.field(
        init=False, eq=False, hash=False, repr=False
    )
    specs: dict[str, tuple[Spec, Spec]] = attrs.field(init=False, eq=False, hash=False, repr=False)
    names: dict[tuple[str, str], str] = attrs.field(init=False, eq=False, hash=False, repr=False)
    plans: dict[Any, Plan] = attrs.field(init=False, eq=False, hash=False, repr=False)

    def __attrs_post_init__(self) -> None:
        index, specs = {}, {}
        for g, group in enumerate(self.groups):
            for pos, key in enumerate(group.keys):
                index[(key, group.mode)] = (g, pos)
                specs[key] = (group.value, group.count)
        names: dict[tuple[str, str], str] = {}
        seen: dict[str, tuple[str, str]] = {}
        for key, mode in self.order:
            name = key + get_log_mode(mode).postfix
            if name in seen:
                raise ValueError(
                    f"metric {key!r} with log mode {mode!r} would be reported as {name!r}, "
                    f"which metric {seen[name][0]!r} with log mode {seen[name][1]!r} is "
                    "already reported as; rename one of the keys"
                )
            seen[name] = (key, mode)
            names[(key, mode)] = name
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "specs", specs)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "plans", {})

    def plan(self, entries: Sequence[Entry]) -> Plan:
        """The plan for updating a store of this layout with ``entries`` (cached).

        Args:
            entries: One step's normalized entries.

        Returns:
            The (interned) plan.

        Raises:
            ValueError: If a key's shapes differ from earlier steps or two keys would be
                reported under one name.
            TypeError: If a key's dtype cannot be cast safely to its state's dtype.
        """
        sig = tuple((e.key, e.modes, e.value_spec, e.count_spec, e.skip) for e in entries)
        plan = self.plans.get(sig)
        if plan is None:
            if len(self.plans) >= _MAX_PLANS:
                self.plans.clear()
            plan = self.plans[sig] = self._make_plan(sig)
        return plan

    def _make_plan(self, sig: tuple[tuple[str, tuple[str, ...], Spec, Spec, bool], ...]) -> Plan:
        signatures = [g.signature for g in self.groups]
        members = [list(g.keys) for g in self.groups]
        where = {sig: i for i, sig in enumerate(signatures)}
        order = list(self.order)
        index = dict(self.index)
        routed: dict[int, list[tuple[int, int]]] = {}
        for i, (key, modes, vspec, cspec, _) in enumerate(sig):
            if key in self.specs:
                old_v, old_c = self.specs[key]
                _compatible(key, "value", old_v, vspec)
                _compatible(key, "count", old_c, cspec)
                vspec, cspec = old_v, old_c
            for mode in modes:
                if (key, mode) not in index:
                    gsig = (mode, vspec, cspec)
                    if gsig not in where:
                        where[gsig] = len(signatures)
                        signatures.append(gsig)
                        members.append([])
                    g = where[gsig]
                    index[(key, mode)] = (g, len(members[g]))
                    members[g].append(key)
                    order.append((key, mode))
                g, pos = index[(key, mode)]
                routed.setdefault(g, []).append((pos, i))
        after = Layout(
            tuple(Group(*sig, tuple(keys)) for sig, keys in zip(signatures, members, strict=True)),
            tuple(order),
        )
        if after == self:  # the usual step: keep this layout, and with it the plan cache
            after = self
        routes = []
        for g, pairs in sorted(routed.items()):
            positions = tuple(p for p, _ in pairs)
            full = positions == tuple(range(len(after.groups[g].keys)))
            skip = tuple(sig[i][4] for _, i in pairs)
            routes.append(
                Route(
                    g,
                    tuple(i for _, i in pairs),
                    None if full else positions,
                    skip if any(skip) else None,
                )
            )
        return Plan(self, after, tuple(routes))


@functools.cache
def empty_layout() -> Layout:
    """The layout of a store with no metrics."""
    return Layout()
