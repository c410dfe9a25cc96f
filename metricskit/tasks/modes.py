"""The log modes of task metrics: a state of exact sums, finished on the host in float64.

A task metric is two pieces: a jittable function of model outputs that returns *sufficient
statistics* as a step item (``{"value": stats, "log_modes": [mode]}``), and a registered log
mode that sums those statistics exactly (carried integers for counts, double-floats for
float sums) and finishes the number on the host, in float64, with a plain NumPy function
(:class:`~metricskit.exact.Finish`). Summing is associative, so a task metric works in a
store, under ``jit`` and ``shard_map``, across devices (``sync``, ``axis_name``), processes and
evaluation batches, and in checkpoints, like any log mode.

:func:`summing_mode` makes (once, by name) the registered mode of one finishing function.
Task modes report under the bare key (postfix ``""``), or under ``key + suffix`` for each of
several values (``parts``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from metricskit import exact
from metricskit.fields import state
from metricskit.metric import Metric
from metricskit.registry import get_log_mode, register_metric, registered_modes

__all__ = ["SumsMetric", "Unpacked", "counted", "step_item", "summing_mode"]


class SumsMetric(Metric):
    """Exact sums of a step's sufficient statistics, finished on the host by ``finish``.

    ``value`` is the step's statistics (any shape; integers summed as carried integers,
    floats as double-floats), ``count`` the step's count (summed exactly). ``finish(sums,
    count)`` turns the totals (int64 or float64 NumPy) into the reported value.
    """

    exact_inputs: ClassVar[bool] = True
    finish: ClassVar[Callable[[np.ndarray, np.ndarray], Any]]

    sums = state("sum", dtype="value", exact=True)  # value shape
    count = state("sum", shape="count", dtype="count", exact=True)  # count shape

    def update(self, value: Any, count: Any) -> SumsMetric:
        return self.replace(
            sums=exact.accumulate(self.sums, value), count=exact.accumulate(self.count, count)
        )

    def compute(self) -> exact.Finish:
        return exact.Finish(Unpacked(type(self).finish), (self.sums, self.count))


class Unpacked:
    """A hashable finishing function called with a key's host totals unpacked:
    ``Unpacked(f)((a, b))`` is ``f(a, b)`` (equal when ``f`` is the same function, so a mode's
    finishing is one static of its compiled kernels)."""

    __slots__ = ("finish",)

    def __init__(self, finish: Callable[..., Any]):
        self.finish = finish

    def __call__(self, operand: tuple[Any, ...]) -> Any:
        return self.finish(*operand)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unpacked) and other.finish is self.finish

    def __hash__(self) -> int:
        return hash(self.finish)


def summing_mode(
    name: str,
    finish: Callable[[np.ndarray, np.ndarray], Any],
    *,
    parts: tuple[str, ...] = (),
) -> str:
    """The registered mode ``name`` that sums statistics exactly and reports ``finish``.

    Made once per name (later calls return the name): task functions call it with the
    parameters (average, beta, zero division, ...) spelled into the name.

    Args:
        name: The mode name (characters other than letters, digits and ``_`` become ``_``).
        finish: ``finish(sums, count)`` on one key's host totals -> the reported value (a
            tuple of ``len(parts)`` values if ``parts`` is given).
        parts: Suffixes for several reported values (see ``Metric.parts``).

    Returns:
        The (sanitized) name.
    """
    name = re.sub(r"[^0-9A-Za-z_]", "_", name)  # "f1_beta0.5" -> "f1_beta0_5": an identifier
    if name in registered_modes():
        cls = get_log_mode(name).cls
        if not issubclass(cls, SumsMetric):
            raise ValueError(
                f"log mode {name!r} is already registered as {cls.__name__}: give this summing "
                "mode another name"
            )
        if not (_same(cls.finish, finish) and cls.parts == parts):
            raise ValueError(
                f"summing mode {name!r} is already registered with another finishing function "
                f"({cls.finish!r}); give this one another name"
            )
        return name
    cls = type(
        f"Sums_{name}",
        (SumsMetric,),
        {"finish": staticmethod(finish), "parts": parts, "__module__": __name__},
    )
    register_metric(name, postfix="")(cls)
    return name


def _same(f: Any, g: Any) -> bool:
    """Whether two finishing functions are the same (partials of the same function and
    arguments; or functions of the same code, e.g. a re-run notebook cell)."""
    if f is g:
        return True
    if isinstance(f, functools.partial) and isinstance(g, functools.partial):
        return bool(_same(f.func, g.func) and f.args == g.args and f.keywords == g.keywords)
    code_f, code_g = getattr(f, "__code__", None), getattr(g, "__code__", None)
    return (
        code_f is not None
        and code_g is not None
        and code_f.co_code == code_g.co_code
        and (getattr(f, "__qualname__", None) == getattr(g, "__qualname__", None))
    )


def counted(mask: Any, shape: tuple[int, ...]) -> jax.Array:
    """The samples that count, as booleans of ``shape`` (all of them without a mask; a mask
    of fewer dimensions applies to the leading ones)."""
    if mask is None:
        return jnp.ones(shape, bool)
    m = jnp.asarray(mask).astype(bool)
    return jnp.broadcast_to(m.reshape(m.shape + (1,) * (len(shape) - m.ndim)), shape)


def step_item(value: Any, count: Any, mode: str) -> dict[str, Any]:
    """A step dict entry: statistics ``value``, their ``count`` and the mode that sums them."""
    return {"value": value, "count": count, "log_modes": [mode]}
