"""Parsing one step's metrics into :class:`Entry` objects, on static information only.

A step-metrics mapping sends each key to a value (a Python number, NumPy or JAX array) or to
a dict with ``"value"``, optional ``"count"`` (default 1), optional ``"log_modes"`` and
optional ``"nan_policy"``. Everything that can be checked without reading array contents is
checked here (types, dtypes, shapes, mode names), so bad input fails before any state changes.
Entries come out sorted by key: the order of a step dict never matters.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple

import jax
import numpy as np

from metricskit import nan_policy
from metricskit.dtypes import logical, logical_of_python
from metricskit.fields import Spec
from metricskit.metric import ConfiguredMetric
from metricskit.registry import Mode, as_mode, get_log_mode

__all__ = ["DEFAULT_LOG_MODES", "Entry", "is_jax", "normalize_log_modes", "parse"]

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

    @property
    def on_host(self) -> bool:
        """Whether neither value nor count is a JAX array (so they stack on the host)."""
        return not is_jax(self.value) and not is_jax(self.count)


_ARRAY_TYPES: dict[type, bool] = {}  # type -> is it an array type (JAX, tracer or NumPy)
_JAX_TYPES: dict[type, bool] = {}
_MAPPING_TYPES: dict[type, bool] = {}
_SPECS: dict[tuple[tuple[int, ...], str], Spec] = {}  # interned specs
_RAW_SPECS: dict[tuple[Any, Any], Spec] = {}  # (shape, array dtype) -> interned spec


def is_jax(x: Any) -> bool:
    """Whether ``x`` is a JAX array or tracer (cached by type: ``isinstance`` on ABCs is slow)."""
    t = type(x)
    known = _JAX_TYPES.get(t)
    if known is None:
        known = _JAX_TYPES[t] = isinstance(x, jax.Array)
    return known


def _interned(shape: tuple[int, ...], dtype: str) -> Spec:
    spec = _SPECS.get((shape, dtype))
    if spec is None:
        if len(_SPECS) > 4096:
            _SPECS.clear()
        spec = _SPECS[(shape, dtype)] = Spec(shape, dtype)
    return spec


@functools.lru_cache(maxsize=1024)
def _checked_modes(modes: tuple[Any, ...]) -> tuple[Mode, ...]:
    """``modes`` (classes as their default configuration) if every name is registered, every
    class is a concrete metric class and none repeats (cached: valid modes only)."""
    out = tuple(as_mode(mode) for mode in modes)
    for mode in out:
        get_log_mode(mode)
    if len(set(out)) != len(out):
        raise ValueError(f"repeat a mode: {list(modes)}; list each mode once")
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
        >>> from metricskit.store.parse import normalize_log_modes
        >>> normalize_log_modes(["mean", "max"], "key 'loss'")
        ('mean', 'max')
    """
    if (
        type(modes) is not list
        and type(modes) is not tuple
        and (isinstance(modes, str) or not isinstance(modes, Sequence))
    ):
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
    except TypeError as err:
        raise TypeError(f"{where}: {err}") from None
    except ValueError as err:
        if str(err).startswith("repeat"):
            raise ValueError(f"log_modes for {where} {err}") from None
        raise ValueError(f"{where}: {err}") from None


def _is_metric_mode(mode: Any) -> bool:
    return isinstance(mode, ConfiguredMetric | type)


def _item_modes(given: Any, key: str) -> tuple[Mode, ...]:
    """A step item's ``log_modes``: the cached check, and the full one (with the key named in
    its message) only for what the cache does not hold."""
    if type(given) is list or type(given) is tuple:
        with contextlib.suppress(TypeError, ValueError):
            return _checked_modes(tuple(given))
    return normalize_log_modes(given, f"key {key!r}")


def _spec(x: Any, key: str, what: str) -> tuple[Any, Spec]:
    """``x`` (converted if it is neither a number nor an array) and its spec."""
    t = type(x)
    if t is float:
        return x, _SCALAR_FLOAT
    if t is int or t is bool:
        return x, _interned((), logical_of_python(x))
    array = _ARRAY_TYPES.get(t)
    if array is None:
        array = _ARRAY_TYPES[t] = isinstance(x, jax.Array | np.ndarray | np.generic)
    if array:
        dtype_ = x.dtype
        shape = x.shape
        spec = _RAW_SPECS.get((shape, dtype_))
        if spec is not None:
            return x, spec
        dtype = logical(dtype_)
        if dtype is None:
            raise TypeError(
                f"{what} of metric {key!r} has dtype {x.dtype}, which is not numeric; pass "
                "bool, integer or real floating values"
            )
        if len(_RAW_SPECS) > 4096:
            _RAW_SPECS.clear()
        spec = _RAW_SPECS[(shape, dtype_)] = _interned(tuple(shape), dtype)
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
        >>> from metricskit.store.parse import parse
        >>> [entry] = parse({"loss": {"value": 2.5, "count": 4}}, ("mean",))
        >>> entry.modes, entry.value_spec, entry.count_spec
        (('mean',), Spec(shape=(), dtype='float64'), Spec(shape=(), dtype='int32'))
    """
    if not isinstance(step_metrics, Mapping):
        raise TypeError(
            f"step metrics must be a dict of key -> value, got {type(step_metrics).__name__}"
        )
    skip_default = policy == "skip"
    defaults = nan_policy.modes(defaults, skip_default)
    entries = []
    for key in sorted(step_metrics, key=_sort_key):
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
                skip = nan_policy.check(item_policy, f"key {key!r}") == "skip"
        else:
            value, count = item, 1
        if modes is None:
            modes = known[key] if known is not None and key in known else defaults
        if skip:
            modes = nan_policy.modes(modes, skip)
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


def _sort_key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"metric keys must be strings, got {key!r}")
    return key
