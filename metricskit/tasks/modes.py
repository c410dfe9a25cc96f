"""The log modes of task metrics: a state of exact sums, finished on the host in float64.

A task metric is two pieces: a jittable function of model outputs that returns *sufficient
statistics* as a step item (``{"value": stats, "log_modes": [metric]}``), and a metric class,
configured with the function's options (``FScores(average="macro", ...)``), that sums those
statistics exactly (carried integers for counts, double-floats for float sums) and finishes the
number on the host, in float64, with its :meth:`SumsMetric.finish` (a plain NumPy function of
the totals and the options, :class:`~metricskit.exact.Finish`). Summing is associative, so a
task metric works in a store, under ``jit`` and ``shard_map``, across devices (``sync``,
``axis_name``), processes and evaluation batches, and in checkpoints (which record the class
and its options), like any log mode.

Task metrics report under the bare key (``postfix = ""``), or under ``key + suffix`` for each
of several values (``parts``).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, overload

import jax
import jax.numpy as jnp
import numpy as np

from metricskit import exact
from metricskit.metric import ConfiguredMetric, Metric, Options, state, static_fields

__all__ = ["HostFinish", "SumsMetric", "counted", "step_item"]


class HostFinish:
    """The host step of a configured metric: ``HostFinish(cls, options)(operand)`` is
    ``metric.finish(*operand)`` for a metric of class ``cls`` with those static options.

    Hashable and compared by class and options, so one configuration is one static of the
    compiled kernels whatever instance computed it.
    """

    __slots__ = ("cls", "options")

    def __init__(self, cls: type[Metric], options: tuple[tuple[str, Any], ...]):
        self.cls, self.options = cls, options

    @classmethod
    def of(cls, metric: Metric) -> HostFinish:
        """The host step of ``metric``'s class and static options."""
        kind = type(metric)
        return cls(kind, Options((f.name, getattr(metric, f.name)) for f in static_fields(kind)))

    def __call__(self, operand: tuple[Any, ...]) -> Any:
        config: Any = object.__new__(self.cls)  # its options only: finish reads no state
        for name, value in self.options:
            object.__setattr__(config, name, value)
        return config.finish(*operand)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, HostFinish)
            and other.cls is self.cls
            and other.options == self.options
        )

    def __hash__(self) -> int:
        return hash((self.cls, self.options))


class SumsMetric(Metric):
    """Exact sums of a step's sufficient statistics, finished on the host by :meth:`finish`.

    ``value`` is the step's statistics (any shape; integers summed as carried integers,
    floats as double-floats), ``count`` the step's count (summed exactly). A subclass
    declares its options with :func:`metricskit.static` and implements :meth:`finish`.
    """

    exact_inputs: ClassVar[bool] = True
    postfix: ClassVar[str | None] = ""

    sums = state("sum", dtype="value", exact=True)  # value shape
    count = state("sum", shape="count", dtype="count", exact=True)  # count shape

    def update(self, value: Any, count: Any) -> SumsMetric:
        return self.replace(
            sums=exact.accumulate(self.sums, value), count=exact.accumulate(self.count, count)
        )

    def compute(self) -> exact.Finish:
        return exact.Finish(HostFinish.of(self), (self.sums, self.count))

    @abc.abstractmethod
    def finish(self, sums: np.ndarray, count: np.ndarray) -> Any:
        """The reported value from one key's totals (int64 or float64 NumPy), on the host.

        Args:
            sums: The summed statistics, of the step value's shape.
            count: The summed count.

        Returns:
            A number, an array, or a tuple of ``len(parts)`` of them.
        """


@overload
def counted(mask: Any, shape: tuple[int, ...]) -> jax.Array: ...


@overload
def counted(mask: Any, shape: tuple[int, ...], xp: Any) -> Any: ...


def counted(mask: Any, shape: tuple[int, ...], xp: Any = jnp) -> Any:
    """The samples that count, as booleans of ``shape`` (all of them without a mask; a mask
    of fewer dimensions applies to the leading ones). ``xp=np`` for the eager value checks of
    concrete inputs, which stay concrete inside a ``jit`` trace that closed over them."""
    if mask is None:
        return xp.ones(shape, bool)
    m = xp.asarray(mask).astype(bool)
    return xp.broadcast_to(m.reshape(m.shape + (1,) * (len(shape) - m.ndim)), shape)


def step_item(value: Any, count: Any, mode: str | ConfiguredMetric) -> dict[str, Any]:
    """A step dict entry: statistics ``value``, their ``count`` and the mode that sums them."""
    return {"value": value, "count": count, "log_modes": [mode]}
