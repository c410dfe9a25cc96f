"""Orbax: a store inside a sharded training state saves and restores bit for bit, a donating
jitted step does not recompile, and the keys Orbax does not record are checked."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from typing import Self

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from helpers import X64
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import metricskit as mk
from metricskit.checkpoint import CheckpointError
from metricskit.compat import make_mesh
from metricskit.functional import aggregate_metrics, update_metrics
from metricskit.integrations.orbax import (
    abstract_store,
    check_store_layouts,
    restore_targets,
    store_layouts,
)

DATA = os.path.join(os.path.dirname(__file__), "data")


@mk.register_metric("orbax_last_bf16")
class LastBf16(mk.Metric):
    """The last step's value kept in bfloat16: a store leaf of a dtype NumPy lacks."""

    value = mk.state("last", dtype="bfloat16")
    count = mk.state("sum", shape="scalar", dtype="int")

    def update(self, value: jax.Array, count: jax.Array) -> Self:
        return self.replace(value=value.astype(self.value.dtype), count=self.count + 1)

    def compute(self) -> jax.Array:
        return self.value


KEYS = [f"layer{i}/norm" for i in range(8)]  # one stacked group of 8 rows: sharded by rows


def step_metrics(w: jax.Array, x: jax.Array) -> dict:
    return {
        **{key: {"value": w[i, 0], "log_modes": ["mean", "max"]} for i, key in enumerate(KEYS)},
        "loss": {"value": jnp.sum(w) * x, "log_modes": ["mean", "std", "min"]},
        "acc": {"value": jnp.int32(3), "count": 4},
        "out": {"value": w[0, :3], "log_modes": ["orbax_last_bf16", "single_noreduce"]},
        "ll": {
            "value": w[:, 1],
            "count": jnp.arange(1, 9),
            "log_modes": ["single_noreduce_wcount"],
        },
    }


def jit_step(**options):
    """A new donating jitted step (jits of one Python function share one compile cache)."""

    def train_step(state: dict, x: jax.Array) -> dict:
        w = state["params"]["w"] * 0.9 + x
        return {"params": {"w": w}, "metrics": state["metrics"].update(step_metrics(w, x))}

    return jax.jit(train_step, donate_argnames="state", **options)


def initial_state() -> dict:
    w = jnp.arange(32, dtype=jnp.float32).reshape(8, 4) / 7
    store = mk.MetricStore().init(step_metrics(w, jnp.float32(0)))
    return {"params": {"w": w}, "metrics": store}


def place(state: dict, mesh) -> dict:
    """Rows over the mesh where they divide evenly (params, the 8-key group), else replicated."""

    def put(x: jax.Array) -> jax.Array:
        spec = P("data") if x.ndim and x.shape[0] % 8 == 0 else P()
        return jax.device_put(x, NamedSharding(mesh, spec))

    return jax.tree.map(put, state)


def host_leaves(tree) -> list:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [
        (jax.tree_util.keystr(p), np.asarray(x).dtype, np.asarray(x).tobytes()) for p, x in flat
    ]


def assert_bit_identical(a, b) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)  # layouts (keys, modes) included
    assert host_leaves(a) == host_leaves(b)


def save(manager: ocp.CheckpointManager, step: int, state: dict) -> None:
    manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            store_layouts=ocp.args.JsonSave(store_layouts(state)),
        ),
    )
    manager.wait_until_finished()


def restore(manager: ocp.CheckpointManager, step: int, like):
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_store(like)),
            store_layouts=ocp.args.JsonRestore(),
        ),
    )
    check_store_layouts(restored.store_layouts, like=like)
    return restored.state


def test_a_sharded_training_state_round_trips_bit_exactly_without_recompiling(tmp_path, compiles):
    assert jax.device_count() == 8
    mesh = make_mesh((8,), ("data",))
    state = place(initial_state(), mesh)
    sharded = [x.sharding.spec for x in jax.tree.leaves(state["metrics"])]
    assert P("data") in sharded and P() in sharded
    assert any(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(state["metrics"]))
    # the state keeps its shardings step after step (as a sharded training loop pins them)
    step = jit_step(out_shardings=jax.tree.map(lambda x: x.sharding, state))
    for i in range(3):
        state = step(state, jnp.float32(i))
    assert step._cache_size() == 1
    assert [name for name in compiles if "train_step" in name]  # the log names the step
    with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
        save(manager, 3, state)
        expected = jax.tree.map(lambda x: np.array(x), state)  # before the next step donates it
        restored = restore(manager, manager.latest_step(), like=state)
    assert_bit_identical(restored, expected)
    assert type(restored["metrics"]) is mk.MetricStore
    assert restored["metrics"].layout == state["metrics"].layout
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state), strict=True):
        assert a.sharding == b.sharding
    np.testing.assert_equal(restored["metrics"].compute(), state["metrics"].compute())

    compiled = len(compiles)
    resumed = step(restored, jnp.float32(3))
    uninterrupted = step(state, jnp.float32(3))
    assert step._cache_size() == 1
    assert not [name for name in compiles[compiled:] if "train_step" in name]
    assert_bit_identical(resumed, uninterrupted)


@pytest.mark.parametrize("placed", [False, True])
def test_restored_arrays_are_committed_so_place_the_state_before_the_first_step(tmp_path, placed):
    state = initial_state()  # eager arrays that no one placed: uncommitted
    if placed:
        state = jax.device_put(state, jax.devices()[0])
    step = jit_step()
    state = step(state, jnp.float32(1))
    with ocp.CheckpointManager(tmp_path) as manager:
        save(manager, 1, state)
        restored = restore(manager, 1, like=state)
    step(restored, jnp.float32(2))
    # Orbax restores committed arrays: a step compiled for uncommitted ones compiles again.
    assert step._cache_size() == (1 if placed else 2)


def test_an_evaluation_store_of_host_arrays_round_trips(tmp_path, rng):
    aggregated = {}
    for n in (5, 3):
        batch = update_metrics(
            None, {"ll": {"value": rng.normal(size=n), "log_modes": ["single_noreduce"]}}
        )
        aggregated = aggregate_metrics(aggregated, batch)
    store = mk.MetricStore.from_mapping(aggregated)
    assert all(type(x) is np.ndarray for x in jax.tree.leaves(store))
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "eval", store)
    checkpointer.wait_until_finished()
    restored = checkpointer.restore(tmp_path / "eval", abstract_store(store))
    assert_bit_identical(restored, store)
    assert all(type(x) is np.ndarray for x in jax.tree.leaves(restored))
    check_store_layouts(store_layouts(store), like=restored)


def test_orbax_alone_restores_other_keys_silently_and_the_check_refuses_them(tmp_path):
    saved_store = mk.MetricStore().update({"a": 1.5, "b": 2})  # a: float group, b: int group
    swapped = mk.MetricStore().update({"a": 0, "b": 0.0})  # the same leaves, keys swapped
    other = mk.MetricStore().update({"a": 0.0, "c": 0})
    with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
        save(manager, 0, {"metrics": saved_store})
        for like in (swapped, other):
            plain = manager.restore(
                0,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_store({"metrics": like}))
                ),
            )
            assert plain.state["metrics"].compute() != saved_store.compute()  # mislabelled
        with pytest.raises(CheckpointError, match=r"same keys and log modes .* another state"):
            restore(manager, 0, like={"metrics": swapped})
        with pytest.raises(CheckpointError, match=r"missing \[\('c', 'mean_nopostfix'\)\], not"):
            restore(manager, 0, like={"metrics": other})
        np.testing.assert_equal(
            restore(manager, 0, like={"metrics": saved_store})["metrics"].compute(),
            {"a": 1.5, "b": 2.0},
        )


def test_bad_records_and_arguments_are_named():
    store = mk.MetricStore().update({"a": 1.0})
    record = store_layouts(store)
    assert list(record) == [""]
    check_store_layouts(record, like=store)
    wrong_dtype = {"": {**record[""], "leaves": [[record[""]["leaves"][0][0], "bfloat16", [1]]]}}
    with pytest.raises(CheckpointError, match=r"leaf \.metrics\[0\]\.total\.hi is bfloat16"):
        check_store_layouts(wrong_dtype, like=store)
    with pytest.raises(CheckpointError, match="not one that store_layouts"):
        check_store_layouts({"": {"keys": {"a": ["mean_nopostfix"]}}}, like=store)
    with pytest.raises(CheckpointError, match=r"records stores at \[\"\['metrics'\]\"\]"):
        check_store_layouts(store_layouts({"metrics": store}), like={"eval": store})
    with pytest.raises(TypeError, match="pass what store_layouts"):
        check_store_layouts([record], like=store)
    with pytest.raises(ValueError, match="the dict passed holds no MetricStore"):
        store_layouts({"params": jnp.zeros(2)})


def test_abstract_store_refuses_tracers():
    with pytest.raises(TypeError, match=r"abstract_store\(\) was called inside a jax.jit"):
        jax.jit(abstract_store)(mk.MetricStore().update({"a": 1.0}))


def test_without_orbax_the_extra_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "orbax.checkpoint", None)
    with pytest.raises(ImportError, match=r'pip install "metricskit\[orbax\]"'):
        abstract_store(mk.MetricStore())


ORBAX_SAVE = """
import json, sys
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import metricskit as mk
from metricskit.integrations.orbax import store_layouts
from usermetrics import mixed_step

rng = np.random.default_rng(1)
store = mk.MetricStore()
for _ in range(3):
    store = store.update(mixed_step(rng, 32))
state = {"step": jnp.int32(3), "metrics": store}
with ocp.CheckpointManager(sys.argv[1]) as manager:
    manager.save(3, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        store_layouts=ocp.args.JsonSave(store_layouts(state))))
    manager.wait_until_finished()
print(json.dumps(store.compute()))
"""

ORBAX_LOAD = """
import json, sys
import jax
import orbax.checkpoint as ocp
import metricskit as mk
from metricskit.integrations.orbax import check_store_layouts, restore_targets

with ocp.CheckpointManager(sys.argv[1]) as manager:
    layouts = manager.restore(3, args=ocp.args.Composite(
        store_layouts=ocp.args.JsonRestore())).store_layouts
    target = {"step": jax.ShapeDtypeStruct((), "int32"),
              "metrics": restore_targets(layouts)["['metrics']"]}
    state = manager.restore(3, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target))).state
check_store_layouts(layouts, like=state)
assert "usermetrics" in sys.modules and isinstance(state["metrics"], mk.MetricStore)
print(json.dumps(state["metrics"].compute()))
"""


def test_orbax_restores_task_and_user_metrics_in_a_fresh_process_from_the_record(tmp_path):
    import json
    import os
    import subprocess

    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": os.path.dirname(__file__)}
    env.pop("XLA_FLAGS", None)
    outputs = []
    for script in (ORBAX_SAVE, ORBAX_LOAD):
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "ckpt")],
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(json.loads(done.stdout.splitlines()[-1]))
    saved, restored = outputs
    assert restored == saved and saved["f1_macro"] != saved["f1_micro"]
    assert {"q_tails_p0", "q_tails_p100", "q_low_p10", "fast_decayed_mean"} <= set(saved)


def test_restore_targets_refuses_a_record_without_the_store_structure():
    record = store_layouts(mk.MetricStore().update({"a": 1.0}))
    old = {"": {k: v for k, v in record[""].items() if k not in ("groups", "meta")}}
    with pytest.raises(CheckpointError, match=r"no store structure.*metricskit 0\.2"):
        restore_targets(old)
    with pytest.raises(CheckpointError, match="malformed"):
        restore_targets({"": {**record[""], "groups": [{"mode": "mean"}]}})


def test_a_0_3_record_of_moved_classes_and_task_metrics_checks_against_this_version():
    # written by 0.3.0 before its engine moved modules (tests/data/make_metricskit03.py)
    with open(os.path.join(DATA, "metricskit03_orbax_record.json")) as f:
        record = json.load(f)
    spec = importlib.util.spec_from_file_location(
        "make_metricskit03", os.path.join(DATA, "make_metricskit03.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    made = module.stores()
    if X64:  # saved with x64 off: 32-bit words and float32 values, 64-bit ones now
        with pytest.raises(CheckpointError, match=r"another state structure|jax_enable_x64"):
            check_store_layouts(record, like=made)
        return
    tasks = {"['tasks']": record["['tasks']"]}
    check_store_layouts(tasks, like={"tasks": made["tasks"]})  # task classes did not move
    # the moved classes sort (by class path) in another order: the leaves would not line up
    with pytest.raises(CheckpointError, match=r"another order.*restore_targets\(record\)"):
        check_store_layouts(record, like=made)
    changed = {"tasks": made["tasks"].update({"extra": 1.0})}
    with pytest.raises(CheckpointError, match=r"other \(key, mode\) pairs"):
        check_store_layouts(tasks, like=changed)
    f1 = mk.tasks.f1(jnp.ones((2, 4)), jnp.array([0, 3]), num_classes=4)
    wider = {
        "tasks": mk.MetricStore(default_log_modes=["mean", "max"]).init(
            {"loss": 0.5, "f1": f1, "q": mk.tasks.quantiles(jnp.ones(3), q=(0.1, 0.5))}
        )
    }
    with pytest.raises(CheckpointError, match=r"another state structure"):
        check_store_layouts(tasks, like=wider)
