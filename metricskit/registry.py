"""The registry from log-mode names to :class:`~metricskit.Metric` subclasses."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import TypeVar

import attrs

from metricskit.fields import reduction_of
from metricskit.metric import Metric, ensure_metric_class, state_fields

__all__ = ["LogMode", "get_log_mode", "register_metric", "registered_modes"]

M = TypeVar("M", bound=type[Metric])


@attrs.frozen
class LogMode:
    """A registered log mode.

    Attributes:
        name: The mode name used in ``log_modes``.
        cls: The :class:`~metricskit.Metric` subclass that implements it.
        postfix: Appended to the metric key in reported results (``"_mean"``, or ``""``).
    """

    name: str
    cls: type[Metric]
    postfix: str


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


def get_log_mode(name: str) -> LogMode:
    """Look up a registered log mode by its exact name.

    Args:
        name: The mode name (case-sensitive).

    Returns:
        The registered :class:`LogMode`.

    Raises:
        ValueError: If no mode has that name; the message lists the registered names.

    Examples:
        >>> import metricskit as mk
        >>> mk.get_log_mode("max").cls.__name__
        'MaxMetric'
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        pass
    close = difflib.get_close_matches(str(name), _REGISTRY, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"unknown log mode {name!r}.{hint} Registered modes: {', '.join(registered_modes())}. "
        "Register a new one with metricskit.register_metric(name). A task metric's mode "
        "(metricskit.tasks) is registered when its function first runs in a process: call it "
        "(or jax.eval_shape the step that does) before loading state that uses it."
    )


def _check_class(cls: type[Metric]) -> None:
    ensure_metric_class(cls)
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise TypeError(f"{cls.__name__} is abstract: implement {missing}")
    merged = [f.name for f in state_fields(cls) if reduction_of(f) == "merge"]
    if merged and cls.aggregate is Metric.aggregate:
        raise TypeError(
            f"{cls.__name__} declares {merged} with state('merge'), which only the metric's "
            "own aggregate knows how to combine: override aggregate(self, other), or declare "
            "the fields with a reduction ('sum', 'max', 'min', 'concat', 'last')"
        )


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
        _check_class(cls)
        _REGISTRY[name] = LogMode(name, cls, suffix)
        return cls

    return decorate
