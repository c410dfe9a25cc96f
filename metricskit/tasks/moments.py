"""Co-moments merged exactly: the state behind R², explained variance and Pearson correlation.

A step gives the count, means and co-moment matrix ``C = sum (x - mean)(x - mean)^T`` of a
few variables over its batch (centred in the batch, so float32 loses nothing to the means);
the state merges them with Chan's parallel formula in double-float arithmetic (Chan, Golub and
LeVeque, "Algorithms for computing the sample variance", 1983):

    n = n_a + n_b,  d = mean_b - mean_a,  mean = mean_a + d n_b / n,
    C = C_a + C_b + d d^T n_a n_b / n.

The same merge combines devices, processes and evaluation batches, so the result is the one
of all the samples at once, whichever way they were split. The reported number is finished on
the host in float64 (:class:`~metricskit.exact.Finish`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from metricskit import exact
from metricskit.fields import FieldSpec, Spec, state
from metricskit.metric import Metric
from metricskit.registry import register_metric, registered_modes
from metricskit.tasks.modes import Unpacked

__all__ = ["CoMoments", "batch_moments", "comoment_mode"]


def batch_moments(variables: jax.Array, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A batch's count and its ``[means, co-moments]`` packed in one vector.

    Args:
        variables: ``(N, d)`` samples.
        weights: ``(N,)`` booleans: which samples count.

    Returns:
        ``(packed, n)``: ``packed`` is ``(d + d * d,)`` float32 (means, then the row-major
        co-moment matrix), ``n`` the int32 count.
    """
    w = weights.astype(jnp.float32)[:, None]
    x = variables.astype(jnp.float32)
    n = jnp.sum(w)
    mean = jnp.sum(x * w, axis=0) / jnp.maximum(n, 1.0)
    centred = (x - mean) * w
    comoments = centred.T @ centred
    return jnp.concatenate([mean, comoments.reshape(-1)]), jnp.sum(weights, dtype=jnp.int32)


def merge_batches(packed: jax.Array, counts: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Several batches' ``(packed, n)`` (a leading axis) merged into one, with Chan's formula
    in float32 (the devices of one step, for ``update(..., axis_name=...)``)."""
    d = _dims(packed.shape[-1])
    n, mean, c = counts[0].astype(jnp.float32), packed[0, :d], packed[0, d:].reshape(d, d)
    for i in range(1, packed.shape[0]):
        n_b = counts[i].astype(jnp.float32)
        total = n + n_b
        weight = jnp.where(total > 0, n_b / jnp.where(total > 0, total, 1.0), 0.0)
        delta = packed[i, :d] - mean
        mean = mean + delta * weight
        c = c + packed[i, d:].reshape(d, d) + jnp.outer(delta, delta) * n * weight
        n = total
    return jnp.concatenate([mean, c.reshape(-1)]), jnp.sum(counts).astype(jnp.int32)


def _dims(length: int) -> int:
    return round((-1 + math.sqrt(1 + 4 * length)) / 2)


class CoMoments(Metric):
    """Count, means and co-moments of a few variables, merged with Chan's formula.

    ``finish(count, means, comoments)`` (float64 NumPy: a 0-d count, ``(d,)`` means and
    ``(d, d)`` co-moments) gives the reported value.
    """

    exact_inputs: ClassVar[bool] = True
    finish: ClassVar[Callable[[np.ndarray, np.ndarray, np.ndarray], Any]]
    step_merge: ClassVar[Any] = staticmethod(lambda values, counts: merge_batches(values, counts))

    count = state("merge", shape="scalar", exact=True)  # a double-float: exact below 2^48
    mean = state("merge", exact=True)
    comoments = state("merge", exact=True)

    @classmethod
    def field_specs(cls, value: Spec, count: Spec) -> dict[str, FieldSpec]:
        d = _dims(value.shape[-1])
        return {
            "count": FieldSpec((), "pair"),
            "mean": FieldSpec((d,), "pair"),
            "comoments": FieldSpec((d, d), "pair"),
        }

    def _merge(self, n_b: exact.Pair, mean_b: exact.Pair, c_b: exact.Pair) -> CoMoments:
        n_a = self.count
        n = exact.add(n_a, n_b)
        safe = exact.where(n.hi > 0, n, exact.as_pair(jnp.ones_like(n.hi)))
        weight = exact.div(n_b, safe)  # n_b / n
        delta = exact.sub(mean_b, self.mean)
        mean = exact.add(self.mean, exact.mul(delta, _bcast(weight, delta)))
        outer = exact.mul(_col(delta), _row(delta))
        spread = exact.mul(outer, _bcast(exact.mul(n_a, weight), outer))
        comoments = exact.add(exact.add(self.comoments, c_b), spread)
        return self.replace(count=n, mean=mean, comoments=comoments)

    def update(self, value: Any, count: Any) -> CoMoments:
        packed = exact.as_pair(value)
        d = self.mean.hi.shape[-1]
        mean_b = jax.tree.map(lambda x: x[:d], packed)
        c_b = jax.tree.map(lambda x: x[d:].reshape(d, d), packed)
        return self._merge(exact.as_pair(count), mean_b, c_b)

    def aggregate(self, other: CoMoments) -> CoMoments:
        return self._merge(other.count, other.mean, other.comoments)

    def compute(self) -> exact.Finish:
        return exact.Finish(Unpacked(type(self).finish), (self.count, self.mean, self.comoments))


def _bcast(p: exact.Pair, like: exact.Pair) -> exact.Pair:
    shape = jnp.shape(like.hi)
    return exact.Pair(jnp.broadcast_to(p.hi, shape), jnp.broadcast_to(p.lo, shape))


def _col(p: exact.Pair) -> exact.Pair:
    return exact.Pair(p.hi[:, None], p.lo[:, None])


def _row(p: exact.Pair) -> exact.Pair:
    return exact.Pair(p.hi[None, :], p.lo[None, :])


def comoment_mode(name: str, finish: Callable[[np.ndarray, np.ndarray, np.ndarray], Any]) -> str:
    """The registered mode ``name`` over :class:`CoMoments` reporting ``finish`` (made once)."""
    if name not in registered_modes():
        cls = type(
            f"CoMoments_{name}",
            (CoMoments,),
            {"finish": staticmethod(finish), "__module__": __name__},
        )
        register_metric(name, postfix="")(cls)
    return name
