"""Normalization and validation of step metrics, on static information only.

A step-metrics dict maps each key to a value (scalar or array) or to a dict with ``"value"``,
optional ``"count"`` (default 1) and optional ``"log_modes"``. This module turns each key into
an :class:`Entry` with canonical dtypes, checking everything that can be checked without
looking at array contents, so that bad input fails before any state changes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs
import jax
import numpy as np

from metricskit.numerics import count_dtype, float_dtype, input_dtype, is_numeric_dtype
from metricskit.registry import get_log_mode

__all__ = [
    "DEFAULT_LOG_MODES",
    "NAN_POLICIES",
    "Entry",
    "Spec",
    "check_nan_policy",
    "normalize_log_modes",
    "parse_step_metrics",
]

DEFAULT_LOG_MODES: Final = ("mean_nopostfix",)
NAN_POLICIES: Final = ("propagate", "skip")
NONFINITE_MODE: Final = "nonfinite"
_ITEM_KEYS: Final = frozenset({"value", "count", "log_modes", "nan_policy"})

Spec = tuple[tuple[int, ...], str]
"""Shape and dtype name of one step's value or count."""


@attrs.frozen
class Entry:
    """One key of one step, normalized.

    Attributes:
        key: The metric key.
        value: A NumPy array (host input) or a JAX array/tracer, in its canonical dtype for
            host input; JAX arrays are cast inside the compiled update.
        count: Same, for the count.
        modes: The log-mode names, validated.
        value_spec: ``(shape, canonical dtype name)`` of the value.
        count_spec: ``(shape, canonical dtype name)`` of the count.
        skip: Whether a non-finite step of this key is skipped (``nan_policy="skip"``).
    """

    key: str
    value: Any
    count: Any
    modes: tuple[str, ...]
    value_spec: Spec
    count_spec: Spec
    skip: bool = False

    @property
    def on_host(self) -> bool:
        """Whether both value and count are host (NumPy) arrays."""
        return isinstance(self.value, np.ndarray) and isinstance(self.count, np.ndarray)


def normalize_log_modes(modes: Any, where: str) -> tuple[str, ...]:
    """Validate a sequence of log-mode names.

    Args:
        modes: The caller's log modes (a list or tuple of registered names).
        where: What the modes belong to, for error messages (``"key 'loss'"``).

    Returns:
        The modes as a tuple.

    Raises:
        TypeError: If ``modes`` is a string or not a sequence of strings.
        ValueError: If a mode is unknown or repeated.

    Examples:
        >>> from metricskit.inputs import normalize_log_modes
        >>> normalize_log_modes(["mean", "max"], "key 'loss'")
        ('mean', 'max')
    """
    if isinstance(modes, str) or not isinstance(modes, Sequence):
        raise TypeError(
            f"log_modes for {where} must be a list of mode names, got {modes!r}; "
            f"write e.g. log_modes=[{modes!r}]"
        )
    out = tuple(modes)
    for mode in out:
        try:
            get_log_mode(mode)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    if len(set(out)) != len(out):
        raise ValueError(f"log_modes for {where} repeat a mode: {list(out)}; list each mode once")
    return out


def check_nan_policy(policy: Any, where: str) -> str:
    """Validate a NaN/inf policy name.

    Args:
        policy: ``"propagate"`` or ``"skip"``.
        where: What the policy belongs to, for the error message.

    Returns:
        The policy.

    Raises:
        ValueError: For any other value.

    Examples:
        >>> from metricskit.inputs import check_nan_policy
        >>> check_nan_policy("skip", "the store")
        'skip'
    """
    if policy not in NAN_POLICIES:
        raise ValueError(
            f"nan_policy for {where} is {policy!r}; use 'propagate' (non-finite values flow "
            "into the metrics) or 'skip' (non-finite steps are dropped and counted)"
        )
    return str(policy)


@functools.lru_cache(maxsize=256)
def _canonical(dtype: np.dtype, counts: bool, x64: bool) -> tuple[np.dtype, str] | None:
    """The canonical dtype and its name (``None`` if not numeric); cached, it runs per key."""
    if not is_numeric_dtype(dtype):
        return None
    canon = count_dtype(dtype) if counts else input_dtype(dtype)
    return canon, canon.name


@functools.lru_cache(maxsize=1024)
def _small_int_count(x: int, x64: bool) -> tuple[np.ndarray, Spec]:
    """A Python int count (usually the default 1) as a read-only canonical array, cached."""
    dtype = count_dtype(np.dtype(np.int64))
    arr = np.asarray(x, dtype)
    arr.setflags(write=False)
    return arr, ((), dtype.name)


@functools.cache
def _int_range(dtype: np.dtype) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _as_array(x: Any, key: str, what: str, counts: bool, x64: bool) -> tuple[Any, Spec]:
    """Canonicalize one value or count; host inputs are converted here, on the host."""
    if counts and type(x) is int and -(2**31) <= x < 2**31:
        return _small_int_count(x, x64)
    if isinstance(x, jax.Array):
        canon = _canonical(np.dtype(x.dtype), counts, x64)
        if canon is None:
            raise TypeError(f"{what} of metric {key!r} has dtype {x.dtype}, which is not numeric")
        return x, (tuple(x.shape), canon[1])
    try:
        arr = np.asarray(x)
    except Exception as err:  # ragged lists and the like
        raise TypeError(f"{what} of metric {key!r} is not array-like: {x!r} ({err})") from None
    canon = _canonical(arr.dtype, counts, x64)
    if canon is None:
        raise TypeError(
            f"{what} of metric {key!r} must be numeric (bool, int or real float, as a Python "
            f"number, NumPy or JAX array), got {x!r} of type {type(x).__name__}"
        )
    dtype, name = canon
    if arr.dtype.kind in "iu" and arr.dtype.itemsize > dtype.itemsize and arr.size:
        lowest, highest = _int_range(dtype)
        low, high = (arr.item(), arr.item()) if arr.ndim == 0 else (arr.min(), arr.max())
        if low < lowest or high > highest:
            raise ValueError(
                f"{what} of metric {key!r} is {x!r}, outside the range of {dtype.name}; pass "
                "it as a float, or split it over several steps"
            )
    return arr.astype(dtype, copy=False), (arr.shape, name)


def parse_step_metrics(
    step_metrics: Mapping[str, Any],
    default_log_modes: Sequence[str] | None,
    nan_policy: str = "propagate",
) -> list[Entry]:
    """Normalize and validate one step's metrics.

    Args:
        step_metrics: Key to value, or key to ``{"value", "count", "log_modes",
            "nan_policy"}``.
        default_log_modes: Modes for keys that give none (``None``: ``["mean_nopostfix"]``).
        nan_policy: The policy for keys that give none. A key under ``"skip"`` also gets the
            ``"nonfinite"`` mode, which counts its skipped steps.

    Returns:
        One :class:`Entry` per key, in the dict's order.

    Raises:
        TypeError: For a non-dict input, a non-string key, a non-numeric value or count, or
            malformed log modes.
        ValueError: For a missing ``"value"``, an unexpected item field, an unknown or
            repeated log mode, or count and value shapes that do not broadcast.

    Examples:
        >>> from metricskit.inputs import parse_step_metrics
        >>> [entry] = parse_step_metrics({"loss": {"value": 2.5, "count": 4}}, None)
        >>> entry.modes, entry.value_spec, entry.count_spec
        (('mean_nopostfix',), ((), 'float64'), ((), 'int32'))
    """
    if not isinstance(step_metrics, Mapping):
        raise TypeError(
            f"step metrics must be a dict of key -> value, got {type(step_metrics).__name__}"
        )
    defaults = (
        DEFAULT_LOG_MODES
        if default_log_modes is None
        else normalize_log_modes(default_log_modes, "default_log_modes")
    )
    x64 = float_dtype() == np.float64
    entries = []
    for key, item in step_metrics.items():
        if not isinstance(key, str):
            raise TypeError(f"metric keys must be strings, got {key!r}")
        if isinstance(item, Mapping):
            extra = set(item) - _ITEM_KEYS
            if "value" not in item or extra:
                raise ValueError(
                    f"metric {key!r} is a dict with fields {sorted(map(str, item))}; it needs "
                    "'value' and may have 'count', 'log_modes' and 'nan_policy', nothing else"
                )
            value, count = item["value"], item.get("count", 1)
            modes = item.get("log_modes")
            modes = defaults if modes is None else normalize_log_modes(modes, f"key {key!r}")
            policy = item.get("nan_policy")
            policy = nan_policy if policy is None else check_nan_policy(policy, f"key {key!r}")
        else:
            value, count, modes, policy = item, 1, defaults, nan_policy
        skip = policy == "skip"
        if skip and NONFINITE_MODE not in modes:
            modes = (*modes, NONFINITE_MODE)
        value, vspec = _as_array(value, key, "value", False, x64)
        count, cspec = _as_array(count, key, "count", True, x64)
        try:
            if cspec[0]:
                np.broadcast_shapes(vspec[0], cspec[0])
        except ValueError:
            raise ValueError(
                f"metric {key!r}: count of shape {cspec[0]} does not broadcast against value "
                f"of shape {vspec[0]}; give a scalar count or one count per value"
            ) from None
        entries.append(Entry(key, value, count, modes, vspec, cspec, skip))
    return entries
