"""What a store does with non-finite steps: the NaN policy, in one place.

- ``"propagate"`` (the default): NaN and inf flow into the metrics as float64 arithmetic
  would carry them (a mean with an inf step is inf, a std is NaN).
- ``"skip"``: a step whose value or count has a NaN or inf adds nothing to that key (every
  mode keeps its state, inside the compiled update, with no host sync), and the key gets the
  ``"nonfinite"`` mode, which counts those steps and is reported as ``key_nonfinite``: nothing
  is dropped silently.

The store asks this module which modes a key gets (:func:`modes`), whether a metric's update
is masked (:func:`masked`) and how (:func:`keep_rows`); no other module knows the policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Final

import jax
import jax.numpy as jnp

from metricskit import exact
from metricskit.fields import state
from metricskit.metric import Metric
from metricskit.registry import Mode, register_metric

__all__ = ["NAN_POLICIES", "NonFiniteMetric", "check", "finite", "keep_rows", "masked", "modes"]

NAN_POLICIES: Final = ("propagate", "skip")
_COUNTER: Final = "nonfinite"


def check(policy: Any, where: str) -> str:
    """Validate a NaN policy name.

    Args:
        policy: ``"propagate"`` or ``"skip"``.
        where: What the policy belongs to, for the error message.

    Returns:
        The policy.

    Raises:
        ValueError: For any other value.

    Examples:
        >>> from metricskit import nan_policy
        >>> nan_policy.check("skip", "the store")
        'skip'
    """
    if policy not in NAN_POLICIES:
        raise ValueError(
            f"nan_policy for {where} is {policy!r}; use 'propagate' (non-finite values flow "
            "into the metrics) or 'skip' (non-finite steps are dropped and counted)"
        )
    return str(policy)


def modes(log_modes: Sequence[Mode], skip: bool) -> tuple[Mode, ...]:
    """A key's log modes under its policy: ``skip`` adds the counter of skipped steps."""
    if not skip or _COUNTER in log_modes:
        return tuple(log_modes)
    return (*log_modes, _COUNTER)


def finite(value: Any, count: Any) -> jax.Array:
    """Whether every element of one key's step value and count is finite (a boolean scalar).

    Examples:
        >>> import jax.numpy as jnp
        >>> from metricskit import nan_policy
        >>> bool(nan_policy.finite(jnp.array([1.0, jnp.inf]), 1)), bool(nan_policy.finite(3, 1))
        (False, True)
    """
    ok = jnp.ones((), bool)
    for x in (value, count):
        x = x.hi if isinstance(x, exact.Pair) else x
        if isinstance(x, exact.Words):
            continue
        x = jnp.asarray(x)
        if jnp.issubdtype(x.dtype, jnp.inexact):
            ok = ok & jnp.all(jnp.isfinite(x))
    return ok


def masked(cls: type[Metric]) -> bool:
    """Whether the skip policy masks updates of ``cls`` (all but the counter of skipped steps)."""
    return cls is not NonFiniteMetric


def keep_rows(keep: jax.Array, new: Metric, old: Metric) -> Metric:
    """Per leading row (key) of a stacked metric: ``old`` where ``keep``, else ``new``."""

    def select(x: jax.Array, y: jax.Array) -> jax.Array:
        return jnp.where(keep.reshape(-1, *([1] * (x.ndim - 1))), y, x)

    return jax.tree.map(select, new, old)  # type: ignore[no-any-return]


@register_metric(_COUNTER)
class NonFiniteMetric(Metric):
    """The number of steps whose value or count was not finite: ``key_nonfinite``.

    A store adds this mode to every key under ``nan_policy="skip"``; it may also be asked for
    as a log mode of its own. It is never empty (zero is an answer).

    Examples:
        >>> import metricskit as mk
        >>> store = mk.MetricStore(default_log_modes=["mean"], nan_policy="skip")
        >>> for loss in (1.0, float("nan"), 3.0, float("inf")):
        ...     store = store.update({"loss": loss})
        >>> store.compute()
        {'loss_mean': 2.0, 'loss_nonfinite': 2}
    """

    exact_inputs: ClassVar[bool] = True

    count = state("sum", shape="scalar", dtype="int")  # steps with a non-finite value or count

    def update(self, value: Any, count: Any) -> NonFiniteMetric:
        return self.replace(count=self.count + (~finite(value, count)).astype(self.count.dtype))

    def compute(self) -> Any:
        return self.count

    def is_empty(self) -> jax.Array:
        return jnp.zeros((), bool)
