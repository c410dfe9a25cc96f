"""Writes the fixtures of metricskit 0.3.0 before its engine moved modules (commit 014ff9e):
``PYTHONPATH=<that checkout> python make_metricskit03.py DIR``, with x64 off. It writes
``DIR/metricskit03_classes.npz`` (a store whose modes are built-in classes that 0.3.0 kept in
``metricskit.persample`` and ``metricskit.nan_policy``), ``DIR/metricskit03_classes.json``
(what it computes) and ``DIR/metricskit03_orbax_record.json`` (``store_layouts`` of it and of
a store of task metrics, the record saved beside an Orbax checkpoint)."""

import json
import os
import sys

import jax.numpy as jnp
import numpy as np

import metricskit as mk
from metricskit.integrations.orbax import store_layouts


def stores() -> dict:
    """The stores of the fixtures, made the same way by this and later versions."""
    modes = [mk.NoReduceMetric, mk.NoReduceWCountMetric, mk.NonFiniteMetric, "mean"]
    classes = mk.MetricStore()
    for i in range(3):
        x = jnp.arange(3.0) + i
        classes = classes.update(
            {"ll": {"value": x, "count": jnp.ones(3, jnp.int32), "log_modes": modes}}
        )
    logits = jnp.asarray(np.linspace(-1.0, 1.0, 12).reshape(4, 3), jnp.float32)
    labels = jnp.asarray([0, 2, 1, 2])
    tasks = mk.MetricStore(default_log_modes=["mean", "max"]).update(
        {
            "loss": 0.5,
            "f1": mk.tasks.f1(logits, labels, num_classes=3),
            "q": mk.tasks.quantiles(logits[:, 0], q=(0.1, 0.5)),
        }
    )
    return {"classes": classes, "tasks": tasks}


def _plain(value):
    return value.tolist() if isinstance(value, np.ndarray) else value


if __name__ == "__main__":
    out = sys.argv[1]
    made = stores()
    made["classes"].save(os.path.join(out, "metricskit03_classes.npz"))
    computed = {k: _plain(v) for k, v in made["classes"].compute().items()}
    with open(os.path.join(out, "metricskit03_classes.json"), "w") as f:
        json.dump(
            {k: list(map(_plain, v)) if isinstance(v, tuple) else v for k, v in computed.items()}, f
        )
    with open(os.path.join(out, "metricskit03_orbax_record.json"), "w") as f:
        json.dump(store_layouts(made), f)
