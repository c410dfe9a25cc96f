"""One step, on the host: parsed, laid out, planned and packed, before any kernel runs.

1. **Parsing** (:func:`parse`): a step-metrics mapping sends each key to a value (a Python
   number, NumPy or JAX array) or to a dict with ``"value"``, optional ``"count"`` (default 1),
   optional ``"log_modes"`` and optional ``"nan_policy"``. Everything that can be checked
   without reading array contents is checked here (types, dtypes, shapes, modes), so bad input
   fails before any state changes. Entries come out sorted by key.
2. **Layout** (:class:`Layout`): keys that share a log mode and a state *signature* (the shapes
   and storage of the metric's fields, and its static configuration) form a :class:`Group`:
   one stacked metric whose leaves carry a leading key axis, in a canonical order, so the
   order in which a step lists its keys never changes the structure (and never recompiles).
   Everything derived from a layout lives in bounded caches keyed by it.
3. **Planning** (:func:`make_plan`): a static, hashable :class:`Plan` per (layout, step
   structure), cached, so an eager update of an unchanged structure costs a dictionary lookup;
   a step that does not fit the store (a changed shape, an integer state fed floats, two keys
   reported under one name) is refused here, before any state changes.
4. **Packing** (:func:`pack`): host values of a plan slot are stacked with one ``np.array``
   call (64-bit values split into exact 32-bit words with x64 off); a slot with JAX arrays is
   passed as a tuple and stacked inside the compiled update (:func:`decode`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from metricskit import builtin, exact
from metricskit.exact import (
    INT_LIMIT,
    is_wide,
    kind,
    logical,
    logical_of_python,
    upcast,
    x64,
)
from metricskit.log import LOGGER
from metricskit.metric import (
    ConfiguredMetric,
    FieldSpec,
    Metric,
    Mode,
    Spec,
    as_mode,
    get_log_mode,
    mode_name,
    mode_order,
    state_fields,
)

# -- parsing ----------------------------------------------------------------------------------

DEFAULT_LOG_MODES: Final = ("mean_nopostfix",)
_ITEM_KEYS: Final = frozenset({"value", "count", "log_modes", "nan_policy"})
_SCALAR_FLOAT: Final = Spec((), "float64")
_ONE: Final = (1, Spec((), "int32"))


class Entry(NamedTuple):
    """One key of one step, parsed.

    Attributes:
        key: The metric key.
        value: The value as given: a Python number, a NumPy array or scalar, or a JAX array
            (or tracer).
        count: The count, likewise.
        modes: The key's log modes (validated; metric classes as their default
            configuration), the NaN policy's counter included.
        value_spec: Shape and logical dtype of the value.
        count_spec: Shape and logical dtype of the count.
        skip: Whether a non-finite step of this key is skipped (``nan_policy="skip"``).
    """

    key: str
    value: Any
    count: Any
    modes: tuple[Mode, ...]
    value_spec: Spec
    count_spec: Spec
    skip: bool = False


_ARRAY_TYPES: dict[type, bool] = {}  # type -> is it an array type (JAX, tracer or NumPy)
_JAX_TYPES: dict[type, bool] = {}
_MAPPING_TYPES: dict[type, bool] = {}


def is_jax(x: Any) -> bool:
    """Whether ``x`` is a JAX array or tracer (cached by type: ``isinstance`` on ABCs is slow)."""
    t = type(x)
    known = _JAX_TYPES.get(t)
    if known is None:
        known = _JAX_TYPES[t] = isinstance(x, jax.Array)
    return known


@functools.lru_cache(maxsize=4096)
def _interned(shape: tuple[int, ...], dtype: str) -> Spec:
    """One spec object per shape and logical dtype (plans hash and compare them often)."""
    return Spec(shape, dtype)


@functools.lru_cache(maxsize=4096)
def _array_spec(shape: tuple[int, ...], dtype: Any) -> Spec | None:
    """The spec of arrays of ``shape`` and array ``dtype``, ``None`` if it is not numeric."""
    logical_dtype = logical(dtype)
    return None if logical_dtype is None else _interned(tuple(shape), logical_dtype)


@functools.lru_cache(maxsize=1024)
def _checked_modes(modes: tuple[Any, ...]) -> tuple[Mode, ...]:
    """``modes`` (classes as their default configuration) if every name is registered, every
    class is a concrete metric class and none repeats (cached: valid modes only)."""
    out = tuple(as_mode(mode) for mode in modes)
    for mode in out:
        get_log_mode(mode)
    if len(set(out)) != len(out):
        raise ValueError(f"log_modes {list(modes)} repeat a mode; list each mode once")
    return out


def normalize_log_modes(modes: Any, where: str) -> tuple[Mode, ...]:
    """Validate a sequence of log modes.

    Args:
        modes: The caller's log modes (a list or tuple of registered names, metric classes
            and configured metrics).
        where: What the modes belong to, for error messages (``"key 'loss'"``).

    Returns:
        The modes as a tuple (a metric class as its default configuration).

    Raises:
        TypeError: If ``modes`` is a string or not a sequence, or a mode is neither a name, a
            metric class nor a configured metric.
        ValueError: If a mode is unknown or repeated.

    Examples:
        >>> from metricskit._engine.step import normalize_log_modes
        >>> normalize_log_modes(["mean", "max"], "key 'loss'")
        ('mean', 'max')
    """
    if isinstance(modes, str) or not isinstance(modes, Sequence):
        single = isinstance(modes, str) or _is_metric_mode(modes)
        example = [modes] if single else ["mean", "max"]
        raise TypeError(
            f"log_modes for {where} must be a list of mode names, got {modes!r} (a "
            f"{type(modes).__name__}); write e.g. log_modes={example!r}"
        )
    out = tuple(modes)
    if not all(type(mode) is str or _is_metric_mode(mode) for mode in out):
        raise TypeError(
            f"log_modes for {where} must be mode names, metric classes or configured metrics "
            f"(MyMetric(option=...)), got {list(out)!r}"
        )
    try:
        return _checked_modes(out)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{where}: {err}") from None


def _is_metric_mode(mode: Any) -> bool:
    return isinstance(mode, ConfiguredMetric | type)


def _item_modes(given: Any, key: str) -> tuple[Mode, ...]:
    """A step item's ``log_modes``: the cached check, and the full one (with the key named in
    its message) only for what the cache does not hold."""
    if type(given) is list or type(given) is tuple:
        with contextlib.suppress(TypeError, ValueError):
            return _checked_modes(tuple(given))
    return normalize_log_modes(given, f"key {key!r}")


def _pair_spec(x: exact.Pair, key: str, what: str) -> tuple[Any, Spec]:
    """A float32 double-float value: a float64 value in its travelling form (as a float64
    array with ``jax_enable_x64``). Task metrics pass exact counts of any size this way."""
    hi, lo = x.hi, x.lo
    arrays = all(isinstance(a, jax.Array | np.ndarray) for a in (hi, lo))
    if (
        what != "value"
        or not arrays
        or hi.shape != lo.shape
        or {hi.dtype, lo.dtype} != {np.dtype(np.float32)}
    ):
        raise TypeError(
            f"{what} of metric {key!r} is a Pair; only a value may be one, with float32 hi and "
            f"lo arrays of one shape (metricskit.exact.Pair(hi, lo)), got {x!r}"
        )
    spec = _interned(tuple(hi.shape), "float64")
    if exact.x64():
        return jnp.asarray(hi, jnp.float64) + jnp.asarray(lo, jnp.float64), spec
    return x, spec


def _spec(x: Any, key: str, what: str) -> tuple[Any, Spec]:
    """``x`` (converted if it is neither a number nor an array) and its spec."""
    t = type(x)
    if t is float:
        return x, _SCALAR_FLOAT
    if t is exact.Pair:
        return _pair_spec(x, key, what)
    if t is int or t is bool:
        return x, _interned((), logical_of_python(x))
    array = _ARRAY_TYPES.get(t)
    if array is None:
        array = _ARRAY_TYPES[t] = isinstance(x, jax.Array | np.ndarray | np.generic)
    if array:
        spec = _array_spec(x.shape, x.dtype)
        if spec is None:
            raise TypeError(
                f"{what} of metric {key!r} has dtype {x.dtype}, which is not numeric; pass "
                "bool, integer or real floating values"
            )
        return x, spec
    try:
        arr = np.asarray(x)
    except Exception as err:  # ragged lists and the like
        raise TypeError(f"{what} of metric {key!r} is not array-like: {x!r} ({err})") from None
    dtype = logical(arr.dtype) if arr.dtype != object else None
    if dtype is None:
        raise TypeError(
            f"{what} of metric {key!r} must be numeric (bool, int or real float, as a Python "
            f"number, NumPy or JAX array), got {x!r} of type {type(x).__name__}"
        )
    return arr, _interned(arr.shape, dtype)


def parse(
    step_metrics: Mapping[str, Any],
    defaults: Sequence[Mode],
    policy: str = "propagate",
    known: Mapping[str, tuple[Mode, ...]] | None = None,
) -> list[Entry]:
    """Parse and validate one step's metrics.

    Args:
        step_metrics: Key to value, or key to ``{"value", "count", "log_modes", "nan_policy"}``.
        defaults: Modes for keys that give none (already validated).
        policy: The NaN policy for keys that give none.
        known: If given, a key already in the store that gives no modes keeps ``known[key]``
            (the class API's declared modes) instead of taking ``defaults``.

    Returns:
        One :class:`Entry` per key, sorted by key.

    Raises:
        TypeError: For a non-mapping input, a non-string key, a non-numeric value or count,
            or malformed log modes.
        ValueError: For a missing ``"value"``, an unexpected item field, an unknown or
            repeated log mode, a bad NaN policy, or count and value shapes that do not
            broadcast.

    Examples:
        >>> from metricskit._engine.step import parse
        >>> [entry] = parse({"loss": {"value": 2.5, "count": 4}}, ("mean",))
        >>> entry.modes, entry.value_spec, entry.count_spec
        (('mean',), Spec(shape=(), dtype='float64'), Spec(shape=(), dtype='int32'))
    """
    if not isinstance(step_metrics, Mapping):
        raise TypeError(
            f"step metrics must be a dict of key -> value, got {type(step_metrics).__name__}"
        )
    skip_default = policy == "skip"
    defaults = builtin.policy_modes(defaults, skip_default)
    entries = []
    for key in sorted_keys(step_metrics):
        item = step_metrics[key]
        skip = skip_default
        modes: tuple[Mode, ...] | None = None
        mapping = _MAPPING_TYPES.get(type(item))
        if mapping is None:
            mapping = _MAPPING_TYPES[type(item)] = isinstance(item, Mapping)
        if mapping:
            extra = set(item) - _ITEM_KEYS
            if "value" not in item or extra:
                raise ValueError(
                    f"metric {key!r} is a dict with fields {sorted(map(str, item))}; it needs "
                    "'value' and may have 'count', 'log_modes' and 'nan_policy', nothing else"
                )
            value, count = item["value"], item.get("count", 1)
            given = item.get("log_modes")
            if given is not None:
                modes = _item_modes(given, key)
            item_policy = item.get("nan_policy")
            if item_policy is not None:
                skip = builtin.check_policy(item_policy, f"key {key!r}") == "skip"
        else:
            value, count = item, 1
        if modes is None:
            modes = known[key] if known is not None and key in known else defaults
        if skip:
            modes = builtin.policy_modes(modes, skip)
        value, vspec = _spec(value, key, "value")
        count, cspec = _ONE if type(count) is int and count == 1 else _spec(count, key, "count")
        if cspec.shape and cspec.shape != vspec.shape:
            try:
                np.broadcast_shapes(vspec.shape, cspec.shape)
            except ValueError:
                raise ValueError(
                    f"metric {key!r}: count of shape {cspec.shape} does not broadcast against "
                    f"value of shape {vspec.shape}; give a scalar count or one count per value"
                ) from None
        entries.append(Entry(key, value, count, modes, vspec, cspec, skip))
    return entries


def sorted_keys(keys: Iterable[Any]) -> list[str]:
    """Metric keys in the one order the engine uses everywhere (Python's order of strings).

    Raises:
        TypeError: For a key that is not a string.
    """
    return sorted(keys, key=_string)


def _string(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"metric keys must be strings, got {key!r}")
    return key


# -- layout -----------------------------------------------------------------------------------


class Signature(NamedTuple):
    """The per-key structure of a metric's state: its fields' shapes and storage (its static
    options are its log mode's, :attr:`LogMode.options <metricskit.LogMode.options>`).

    Attributes:
        fields: ``(name, FieldSpec)`` for every state field, in declaration order.
    """

    fields: tuple[tuple[str, FieldSpec], ...]


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
    kept = [Group(g.mode, g.signature, tuple(sorted_keys(g.keys))) for g in groups if g.keys]
    kept.sort(key=lambda g: (mode_order(g.mode), repr(g.signature)))
    return Layout(tuple(kept))


@functools.lru_cache(maxsize=4096)
def signature_for(cls: type[Metric], value: Spec, count: Spec) -> Signature:
    """The signature of ``cls.empty(value, count)`` (cached)."""
    return Signature(tuple(cls.field_specs(value, count).items()))


def signature_of(metric: Metric, stacked: bool = False) -> Signature:
    """The signature of an existing state (``stacked``: it has a leading key axis).

    Raises:
        TypeError: If a field holds something other than an array, Pair or Words.
    """
    fields = []
    for f in state_fields(type(metric)):
        try:
            fields.append((f.name, FieldSpec.of(getattr(metric, f.name), stacked)))
        except AttributeError:
            raise TypeError(
                f"{type(metric).__name__}.{f.name} holds {getattr(metric, f.name)!r}, not an "
                "array (or exact Pair/Words)"
            ) from None
    return Signature(tuple(fields))


def empty_state(mode: Mode, signature: Signature, n: int | None, xp: Any = None) -> Metric:
    """The empty (zero) state of ``signature``: stacked ``n`` times, or one key's (``None``).

    Args:
        mode: The log mode (its class is built).
        signature: The structure.
        n: The number of stacked keys, or ``None`` for one unstacked state.
        xp: ``jax.numpy`` (default) or ``numpy``.

    Returns:
        The state.
    """
    log_mode = get_log_mode(mode)
    zeros = [(name, spec.zeros(n, jnp if xp is None else xp)) for name, spec in signature.fields]
    return exact.build(log_mode.cls, [*zeros, *log_mode.options])


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
    for key, mode in index(layout):
        modes.setdefault(key, []).append(mode)
    return {key: tuple(sorted(modes[key], key=mode_order)) for key in sorted_keys(modes)}


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


# -- planning ---------------------------------------------------------------------------------

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
    sig = signature_for(get_log_mode(mode).cls, value, count)
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
    if jnp.issubdtype(jnp.dtype(old), jnp.floating):
        return True
    old_dtype = jnp.dtype(old)
    return (
        old_dtype.kind in "iu"
        and new != "words"
        and _is_int(new)
        and jnp.dtype(new).itemsize <= old_dtype.itemsize
    )


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
    metric's statistics, which would report the placeholder's empty mode beside them. With the
    same shapes the step may be meant (a key logged in other modes now): warn once per
    structure, naming the fix if the earlier modes were a placeholder's."""
    for old_mode in old_modes:
        if not get_log_mode(old_mode).cls.accumulates:
            continue
        old = before.groups[where[(key, old_mode)][0]].signature
        try:
            probe = _signature(old_mode, value, count)
        except ValueError:
            probe = None
        if probe is None or [s.shape for _, s in probe.fields] != [s.shape for _, s in old.fields]:
            raise ValueError(
                f"metric {key!r} holds log mode {mode_name(old_mode)!r} for a value of another "
                f"shape (fields {describe(old)}: a placeholder such as 0.0 in init or a first "
                f"step?), and this step gives it a value of shape {value.shape} under "
                f"{', '.join(map(mode_name, modes))} "
                "only; a key's shapes are fixed once seen. Initialise the key with what the "
                f"step gives it (store.init({{{key!r}: <the task function's output>}})), or "
                "zero-fill jax.eval_shape of the step that makes it"
            )
    shown = ", ".join(map(mode_name, modes))
    LOGGER.warning(
        "Metric %r holds log modes %s and this step gives it only %s: the earlier modes keep "
        "their state and stay reported (as 0.0 with no samples, if a placeholder such as 0.0 in "
        "init made them). If the key was a placeholder, initialise it with what the step gives "
        "it (store.init({%r: <the step's item, e.g. the task function's output>})), or "
        "zero-fill jax.eval_shape of the step that makes it.",
        key,
        ", ".join(map(mode_name, old_modes)),
        shown,
        key,
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


# -- packing ----------------------------------------------------------------------------------

_WARNED: set[str] = set()
_DEFAULT_COUNT = Spec((), "int32")  # the spec of the default count 1


def _host_dtype(spec: Spec) -> Any:
    return np.dtype(spec.dtype) if spec.dtype != "bool" else np.dtype(bool)


def _encode(arr: np.ndarray, spec: Spec, keys: Sequence[str], what: str) -> Any:
    """Host values of logical dtype ``spec.dtype`` in their travelling form."""
    if spec.dtype == "int64" and arr.size and arr.dtype.kind in "iu":
        low, high = (-INT_LIMIT, INT_LIMIT) if not x64() else (-(2**63), 2**63 - 1)
        big = arr > high if arr.dtype.kind == "u" else (arr > high) | (arr < low)
        if big.any():
            at = np.argwhere(big.reshape(len(keys), -1))[0]
            bad, value = keys[int(at[0])], int(arr.reshape(len(keys), -1)[at[0], at[1]])
            scope = "int64 (jax_enable_x64 on)" if x64() else "±2**60 (jax_enable_x64 off)"
            raise ValueError(
                f"{what} of metric {bad!r} is {value}, beyond {scope}, the exact range of "
                "metricskit's integer accumulators; split it over several steps, or pass it "
                "as a float"
            )
    if not is_wide(spec.dtype):
        return arr.astype(_host_dtype(spec), copy=False)
    if kind(spec.dtype) == "int":
        return exact.split_int(arr)
    pair, overflow = exact.split_float(arr)
    if overflow:
        rows = np.asarray(pair.hi).reshape(len(keys), -1)
        finite = np.isfinite(arr.reshape(len(keys), -1))
        for key, hit in zip(keys, (np.isinf(rows) & finite).any(axis=1), strict=True):
            if hit and key not in _WARNED:
                _WARNED.add(key)
                LOGGER.warning(
                    "Metric %r has a finite float64 %s beyond float32's range (about 3.4e38); "
                    "with jax_enable_x64 off it is accumulated as inf of its sign. Turn on "
                    "jax_enable_x64 for float64 range.",
                    key,
                    what,
                )
    return pair


def _stack_host(xs: Sequence[Any], spec: Spec, keys: Sequence[str], what: str) -> Any:
    try:
        if spec.dtype == "int64":  # keep uint64 as it is: it may not fit int64
            arr = np.asarray(xs)
            if arr.dtype.kind not in "iub":
                arr = np.asarray(xs, np.int64)
        else:
            arr = np.asarray(xs, _host_dtype(spec))
    except OverflowError:
        raise ValueError(
            f"{what} of one of the metrics {list(keys)} is an integer beyond ±2**60, the exact "
            "range of metricskit's integer accumulators; split it over several steps"
        ) from None
    return _encode(arr, spec, keys, what)


def _slot_input(entries: Sequence[Entry], spec: Spec, what: str) -> Any:
    xs = [getattr(e, what) for e in entries]
    if what == "count" and spec == _DEFAULT_COUNT and all(type(x) is int for x in xs):
        # default counts (all 1) are no input at all: the kernel makes them (one less
        # argument and host-to-device copy per eager call; ``None`` is part of the jit key)
        return None if all(x == 1 for x in xs) else np.asarray(xs, np.int32)
    on_device = [is_jax(x) or type(x) is exact.Pair for x in xs]  # a Pair: already encoded
    if all(on_device):
        return tuple(xs)  # stacked in the kernel
    if not any(on_device):
        return _stack_host(xs, spec, [e.key for e in entries], what)
    return tuple(
        x
        if device
        else jax.tree.map(lambda y: np.asarray(y[0]), _stack_host([x], spec, [e.key], what))
        for x, e, device in zip(xs, entries, on_device, strict=True)
    )


def pack(entries: Sequence[Entry], plan: Plan) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The values and counts of every slot of ``plan``.

    Returns:
        ``(values, counts)``: per slot, a stacked host array (or exact Pair/Words of them),
        a tuple of per-entry items when some are JAX arrays, or (for counts that are all the
        default 1) ``None``.

    Raises:
        ValueError: If an integer is beyond the exact range (±2**60 with x64 off).
    """
    values, counts = [], []
    for slot in plan.slots:
        chosen = [entries[i] for i in slot.entries]
        values.append(_slot_input(chosen, slot.value, "value"))
        counts.append(_slot_input(chosen, slot.count, "count"))
    return tuple(values), tuple(counts)


def _device(x: Any, spec: Spec) -> Any:
    """One JAX array in the travelling form of ``spec`` (inside the compiled update)."""
    if is_wide(spec.dtype):
        return exact.as_words(x) if kind(spec.dtype) == "int" else exact.as_pair(x, jnp.float32)
    return upcast(x, _host_dtype(spec))


def decode(packed: Any, spec: Spec, n: int) -> Any:
    """A slot's input as one stacked array (or Pair/Words) with a leading axis of ``n`` entries."""
    if packed is None:  # default counts
        return jnp.ones((n, *spec.shape), _host_dtype(spec))
    if not isinstance(packed, tuple):
        return jax.tree.map(jnp.asarray, packed)
    if all(map(is_jax, packed)) and len({p.dtype for p in packed}) == 1:
        return _device(jnp.stack(packed), spec)  # one conversion, not one per entry
    items = [_device(p, spec) if is_jax(p) else p for p in packed]
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *items)
