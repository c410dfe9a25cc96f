"""Co-moments merged exactly: the state behind R², explained variance and Pearson correlation.

A step gives the count, means and co-moment matrix ``C = sum (x - mean)(x - mean)^T`` of a
few variables over its batch (centred in the batch, the means carried as two float32s, so
float32 loses nothing to values far from zero); the state merges them with Chan's parallel
formula in double-float arithmetic (Chan, Golub and LeVeque, "Algorithms for computing the
sample variance", 1983):

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

    The mean is carried as two float32s (``hi + lo``: the rounded mean and the mean of the
    residuals ``x - hi``), so merging batches far from zero keeps the deviations' precision.

    Args:
        variables: ``(N, d)`` samples.
        weights: ``(N,)`` booleans: which samples count.

    Returns:
        ``(packed, n)``: ``packed`` is ``(2 d + d * d,)`` float32 (the means' ``hi``, their
        ``lo``, then the row-major co-moment matrix), ``n`` the int32 count.
    """
    w = weights.astype(jnp.float32)[:, None]
    x = variables.astype(jnp.float32)
    n = jnp.maximum(jnp.sum(w), 1.0)
    hi = jnp.sum(x * w, axis=0) / n
    lo = jnp.sum((x - hi) * w, axis=0) / n
    centred = ((x - hi) - lo) * w
    comoments = centred.T @ centred
    packed = jnp.concatenate([hi, lo, comoments.reshape(-1)])
    return packed, jnp.sum(weights, dtype=jnp.int32)


Moments = tuple[exact.Pair, exact.Pair, exact.Pair]  # count (), means (d,), co-moments (d, d)


def chan_merge(a: Moments, b: Moments) -> Moments:
    """The moments of the union of two sets of samples (Chan, Golub and LeVeque), in
    double-float arithmetic."""
    n_a, mean_a, c_a = a
    n_b, mean_b, c_b = b
    n = exact.add(n_a, n_b)
    safe = exact.where(n.hi > 0, n, exact.as_pair(jnp.ones_like(n.hi)))
    weight = exact.div(n_b, safe)  # n_b / n
    delta = exact.sub(mean_b, mean_a)
    mean = exact.add(mean_a, exact.mul(delta, _bcast(weight, delta)))
    outer = exact.mul(_col(delta), _row(delta))
    spread = exact.mul(outer, _bcast(exact.mul(n_a, weight), outer))
    return n, mean, exact.add(exact.add(c_a, c_b), spread)


def _unpack(packed: Any, count: Any) -> Moments:
    """A step's packed ``(value, count)`` as double-float moments."""
    p = exact.as_pair(packed)
    d = _dims(p.hi.shape[-1])
    hi = exact.Pair(p.hi[:d], p.lo[:d])
    lo = exact.Pair(p.hi[d : 2 * d], p.lo[d : 2 * d])
    comoments = exact.Pair(p.hi[2 * d :].reshape(d, d), p.lo[2 * d :].reshape(d, d))
    return exact.as_pair(count), exact.add(hi, lo), comoments


def merge_batches(packed: jax.Array, counts: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Several batches' ``(packed, n)`` (a leading axis) merged into one packed batch (the
    devices of one step, for ``update(..., axis_name=...)``)."""
    moments = _unpack(packed[0], counts[0].astype(jnp.float32))
    for i in range(1, packed.shape[0]):
        moments = chan_merge(moments, _unpack(packed[i], counts[i].astype(jnp.float32)))
    _, mean, comoments = moments
    flat = (mean.hi, mean.lo, (comoments.hi + comoments.lo).reshape(-1))
    return jnp.concatenate(flat), jnp.sum(counts).astype(jnp.int32)


def _dims(length: int) -> int:
    """``d`` from the packed length ``2 d + d * d``."""
    return math.isqrt(1 + length) - 1


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
        d = _dims(value.shape[-1]) if value.shape else 0
        if value.shape != (2 * d + d * d,) or d < 1:
            raise ValueError(
                f"this mode takes the packed co-moments of one batch (a (2d + d*d,) vector), "
                f"but the value has shape {value.shape}; make the step item with "
                "metricskit.tasks.r2, explained_variance or pearson (or batch_moments)"
            )
        return {
            "count": FieldSpec((), "pair"),
            "mean": FieldSpec((d,), "pair"),
            "comoments": FieldSpec((d, d), "pair"),
        }

    def update(self, value: Any, count: Any) -> CoMoments:
        n, mean, comoments = chan_merge(self._moments(), _unpack(value, count))
        return self.replace(count=n, mean=mean, comoments=comoments)

    def aggregate(self, other: CoMoments) -> CoMoments:
        n, mean, comoments = chan_merge(self._moments(), other._moments())
        return self.replace(count=n, mean=mean, comoments=comoments)

    def _moments(self) -> Moments:
        return self.count, self.mean, self.comoments

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
