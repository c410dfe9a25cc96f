"""What a log mode is: a registered name, or a configured metric class.

A log mode in ``log_modes`` is either a name registered with :func:`register_metric` (``"mean"``)
or a :class:`~metricskit.metric.ConfiguredMetric` (a metric class called with its static
options; a bare class means its defaults). :func:`get_log_mode` resolves either to a
:class:`LogMode`: the class, its options and the postfix of reported names.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias, TypeVar, cast

import attrs

from metricskit.metric import ConfiguredMetric, Metric, Options, check_concrete

__all__ = [
    "LogMode",
    "Mode",
    "as_mode",
    "get_log_mode",
    "legacy_mode",
    "mode_name",
    "mode_order",
    "register_legacy_names",
    "register_metric",
    "registered_modes",
]

Mode: TypeAlias = str | ConfiguredMetric
"""A log mode as the engine keeps it: a registered name or a configured metric."""

M = TypeVar("M", bound=type[Metric])


@attrs.frozen
class LogMode:
    """A registered log mode.

    Attributes:
        name: The mode name used in ``log_modes`` (a configured metric's ``repr``).
        cls: The :class:`~metricskit.Metric` subclass that implements it.
        postfix: Appended to the metric key in reported results (``"_mean"``, or ``""``).
        options: ``(name, value)`` of every static field (a configured metric's options; a
            registered name's class defaults).
        parts: Suffixes of the values it reports, after the postfix (see ``Metric.parts``).
    """

    name: str
    cls: type[Metric]
    postfix: str
    options: tuple[tuple[str, Any], ...] = Options()
    parts: tuple[str, ...] = ()


_REGISTRY: dict[str, LogMode] = {}


def registered_modes() -> tuple[str, ...]:
    """The names of all registered log modes, sorted.

    Returns:
        A tuple of names.

    Examples:
        >>> import metricskit as mk
        >>> "mean" in mk.registered_modes() and "single_noreduce_wcount" in mk.registered_modes()
        True
    """
    return tuple(sorted(_REGISTRY))


def get_log_mode(mode: Mode | type[Metric]) -> LogMode:
    """Resolve a log mode: a registered name, a configured metric or a metric class.

    Args:
        mode: A registered name (case-sensitive), a
            :class:`~metricskit.metric.ConfiguredMetric`, or a metric class (its defaults).

    Returns:
        The :class:`LogMode`.

    Raises:
        ValueError: If no mode has that name; the message lists the registered names.
        TypeError: For a class that is not a concrete metric class.

    Examples:
        >>> import metricskit as mk
        >>> mk.get_log_mode("max").cls.__name__
        'MaxMetric'
    """
    try:
        return _REGISTRY[mode]  # type: ignore[index]
    except (KeyError, TypeError):
        pass
    if isinstance(mode, ConfiguredMetric | type):
        return _configured(cast(ConfiguredMetric, as_mode(mode)))
    close = difflib.get_close_matches(str(mode), _REGISTRY, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"unknown log mode {mode!r}.{hint} Registered modes: {', '.join(registered_modes())}. "
        "Register a new one with metricskit.register_metric(name), or pass a metricskit.Metric "
        "class (or one called with its options, MyMetric(option=...)) as the mode."
    )


@functools.lru_cache(maxsize=4096)
def _configured(mode: ConfiguredMetric) -> LogMode:
    return LogMode(repr(mode), mode.cls, mode.postfix, mode.options, mode.parts)


def as_mode(mode: Any) -> Mode:
    """A log mode as the engine keeps it: a metric class becomes its default configuration.

    Raises:
        TypeError: For a class that is not a concrete metric class.
    """
    if isinstance(mode, type):
        if not issubclass(mode, Metric):
            raise TypeError(f"{mode.__name__} is not a metricskit.Metric subclass")
        return ConfiguredMetric.of(mode, {})
    return mode  # type: ignore[no-any-return]


_LEGACY: list[Callable[[str, Sequence[Mode]], Mode | None]] = []


def register_legacy_names(translate: Callable[[str, Sequence[Mode]], Mode | None]) -> None:
    """Add a translator of older mode names (``translate(name, known)`` gives the mode a name
    of an older checkpoint format stands for, preferring one of ``known``, or ``None``)."""
    _LEGACY.append(translate)


def legacy_mode(name: str, known: Sequence[Mode] = ()) -> Mode | None:
    """The mode an older checkpoint's ``name`` stands for, if a translator knows it."""
    for translate in _LEGACY:
        mode = translate(name, known)
        if mode is not None:
            return mode
    return None


def mode_name(mode: Mode) -> str:
    """A log mode in words: a name as it is, a configured metric as its ``repr``."""
    return mode if type(mode) is str else repr(mode)


def mode_order(mode: Mode) -> tuple[int, str]:
    """The canonical order of log modes: names first (sorted), then configured metrics by
    class path and options (the same in every process)."""
    if type(mode) is str:
        return (0, mode)
    assert isinstance(mode, ConfiguredMetric)
    return (1, f"{mode.path}{mode.options!r}{mode.postfix}")


def register_metric(name: str, *, postfix: str | None = None) -> Callable[[M], M]:
    """Register a :class:`~metricskit.Metric` subclass as the log mode ``name``.

    The class becomes a frozen attrs class and a JAX pytree (state fields are leaves, static
    fields are structure), and ``name`` becomes usable in ``log_modes`` everywhere, the
    functional API included. One class may be registered under several names.

    Args:
        name: The log-mode name; reported keys get ``"_" + name`` appended.
        postfix: Override the appended suffix (``""`` reports under the bare key).

    Returns:
        A class decorator that returns the class unchanged.

    Raises:
        ValueError: If ``name`` is taken or not a valid identifier.
        TypeError: If the class is not a concrete subclass of ``Metric`` with every field
            declared by ``metricskit.state`` or ``metricskit.static``.

    Examples:
        >>> import jax.numpy as jnp
        >>> import metricskit as mk
        >>> @mk.register_metric("last_value_doc")
        ... class LastValue(mk.Metric):
        ...     value = mk.state("last")
        ...     count = mk.state("sum", shape="scalar", dtype="int")  # steps seen
        ...     def update(self, value, count):
        ...         return self.replace(value=value.astype(jnp.float32), count=self.count + 1)
        ...     def compute(self):
        ...         return self.value
        >>> store = mk.MetricStore().update({"lr": {"value": 0.5, "log_modes": ["last_value_doc"]}})
        >>> store.compute()
        {'lr_last_value_doc': 0.5}
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"log mode name {name!r} must be a non-empty identifier string")
    if name in _REGISTRY:
        raise ValueError(
            f"log mode {name!r} is already registered (to {_REGISTRY[name].cls.__name__}); "
            f"choose another name. Registered modes: {', '.join(registered_modes())}"
        )
    suffix = f"_{name}" if postfix is None else postfix

    def decorate(cls: M) -> M:
        check_concrete(cls)
        options = ConfiguredMetric.of(cls, {}).options
        _REGISTRY[name] = LogMode(name, cls, suffix, options, cls.parts_of(dict(options)))
        return cls

    return decorate
