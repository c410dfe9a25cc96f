"""Accuracy of exact accumulation against naive float32 metrics, x64 off (NumPy float64 truth).

python benchmarks/exact_errors.py
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from exact_overhead import NaiveMean, NaiveStd  # registers the naive_* modes

import metricskit as mk
from metricskit import exact


def _scan(store: mk.MetricStore, xs: jax.Array) -> mk.MetricStore:
    return jax.lax.scan(lambda s, x: (s.update({"x": x}), None), store, xs)[0]


def main() -> None:
    assert {"naive_mean", "naive_std"} <= set(mk.registered_modes()), (NaiveMean, NaiveStd)
    rel = lambda got, want: abs(float(got) - float(want)) / abs(float(want))  # noqa: E731
    store = mk.MetricStore(default_log_modes=["mean", "naive_mean"]).init({"x": np.float32(0)})
    host = jax.jit(_scan)(store, jnp.full(10**7, 2.3, jnp.float32)).compute()
    truth = float(np.float32(2.3))
    print(f"mean of 1e7 x float32 2.3: exact rel {rel(host['x_mean'], truth):.1e}, "
          f"naive {host['x_naive_mean']:.4f}")  # fmt: skip

    item = {"value": jnp.float32(2e6), "count": jnp.int32(10**6)}
    store = mk.MetricStore(default_log_modes=["mean", "naive_mean"])
    store = store.init({"x": {"value": np.float32(0), "count": np.int32(1)}})
    body = lambda s, _: (s.update({"x": item}), None)  # noqa: E731
    store = jax.jit(lambda s: jax.lax.scan(body, s, None, length=3000)[0])(store)
    count = exact.acc_to_host(store.unstack()["x"]["mean"].count)
    print(f"3000 x (2e6, count 1e6): {store.compute()}, count {int(count)}")

    rng = np.random.default_rng(20261129)
    for n, center, spread in ((2000, 1e4, 1e-2), (50_000, 5e3, 1e-1)):
        values = (center + rng.normal(0, spread, size=n)).astype(np.float32)
        store = mk.MetricStore(default_log_modes=["std", "naive_std"]).init({"x": np.float32(0)})
        host = jax.jit(_scan)(store, jnp.asarray(values)).compute()
        truth = np.std(values.astype(np.float64))
        exact_rel, naive_rel = rel(host["x_std"], truth), rel(host["x_naive_std"], truth)
        print(f"std of {n} x {center:g} + N(0, {spread:g}): exact rel {exact_rel:.1e}, "
              f"naive rel {naive_rel:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
