"""Checkpoints: bit-exact round trips of every built-in metric, exact continuation, bad files."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Self

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import BUILTIN_MODES, X64

import metricskit as mk
from metricskit.checkpoint import CheckpointError
from metricskit.functional import aggregate_metrics, get_metrics, update_metrics

ALL_MODES = (*BUILTIN_MODES, "nonfinite")


@mk.register_metric("last_raw")
class LastRaw(mk.Metric):
    """The last step's value, kept in bfloat16 (steps arrive canonicalized to float32)."""

    value = mk.state("last", dtype="bfloat16")
    count = mk.state("sum", shape="scalar", dtype="int")  # steps seen

    def update(self, value: jax.Array, count: jax.Array) -> Self:
        return self.replace(value=value.astype(self.value.dtype), count=self.count + 1)

    def aggregate(self, other: Self) -> Self:
        value = jnp.where(other.count > 0, other.value, self.value)
        return self.replace(value=value, count=self.count + other.count)

    def compute(self) -> jax.Array:
        return self.value


def leaves_with_paths(store):
    flat, _ = jax.tree_util.tree_flatten_with_path(store)
    return [(jax.tree_util.keystr(p), np.asarray(x)) for p, x in flat]


def assert_bit_exact(a, b):
    la, lb = leaves_with_paths(a), leaves_with_paths(b)
    assert [p for p, _ in la] == [p for p, _ in lb]
    for (path, x), (_, y) in zip(la, lb, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape, path
        assert x.tobytes() == y.tobytes(), path
    assert a.layout == b.layout
    assert (a.default_log_modes, a.nan_policy) == (b.default_log_modes, b.nan_policy)


def step(rng, i):
    """Step metrics that use every built-in mode, bf16 values and int counts included."""
    return {
        "loss": {"value": jnp.float32(rng.normal()), "log_modes": ["mean", "std", "max", "min"]},
        "acc": {"value": jnp.int32(rng.integers(0, 8)), "count": 8},
        "norm": {
            "value": jnp.asarray(rng.normal(size=3), jnp.bfloat16),
            "log_modes": [
                *("single", "mean_nopostfix", "max", "single_noreduce", "nonfinite", "last_raw")
            ],
        },
        "ll": {
            "value": jnp.asarray(rng.normal(size=4), jnp.float32),
            "count": jnp.asarray(rng.integers(1, 5, size=4), jnp.int32),
            "log_modes": ["single_noreduce_wcount"],
        },
        "host": float(rng.normal() + i),  # a float64 host value: a double-float pair
    }


def run(store, rng, steps, start=0):
    for i in range(start, start + steps):
        store = store.update(step(rng, i))
    return store


def test_every_builtin_metric_round_trips_bit_exactly(tmp_path, rng):
    store = run(mk.MetricStore(nan_policy="skip"), rng, 5)
    used = {g.mode for g in store.layout.groups}
    assert used == {*ALL_MODES, "last_raw"}
    assert any(np.asarray(x).dtype == jnp.bfloat16 for _, x in leaves_with_paths(store))
    path = tmp_path / "m.npz"
    store.save(path)
    loaded = mk.MetricStore.load(path)
    assert_bit_exact(store, loaded)
    assert_bit_exact(store, mk.MetricStore.load(path, like=store))
    np.testing.assert_equal(loaded.compute(), store.compute())
    assert os.listdir(tmp_path) == ["m.npz"]  # written atomically: no partial file left


def test_loading_mid_epoch_and_continuing_is_exactly_the_uninterrupted_run(tmp_path):
    rng = np.random.default_rng(7)
    steps = [step(rng, i) for i in range(12)]
    update = mk.MetricStore.update
    uninterrupted = mk.MetricStore(default_log_modes=("mean", "std"))
    for m in steps:
        uninterrupted = update(uninterrupted, m)
    resumed = mk.MetricStore(default_log_modes=("mean", "std"))
    for m in steps[:5]:
        resumed = update(resumed, m)
    resumed.save(tmp_path / "mid.npz")
    resumed = mk.MetricStore.load(tmp_path / "mid.npz", like=resumed)
    for m in steps[5:]:
        resumed = update(resumed, m)
    assert_bit_exact(uninterrupted, resumed)
    np.testing.assert_equal(resumed.compute(), uninterrupted.compute())


def test_functional_metrics_and_aggregated_eval_batches_round_trip(tmp_path, rng):
    aggregated = {}
    for n in (5, 3):  # the last batch is smaller: the noreduce leaves grow by 8 in all
        batch = update_metrics(
            None, {"ll": {"value": rng.normal(size=n), "log_modes": ["single_noreduce"]}}
        )
        aggregated = aggregate_metrics(aggregated, batch)
    evaluated = mk.MetricStore.from_mapping(aggregated)
    evaluated.save(tmp_path / "eval.npz")
    loaded = mk.MetricStore.load(tmp_path / "eval.npz")
    assert_bit_exact(evaluated, loaded)
    np.testing.assert_array_equal(
        get_metrics(loaded)[1]["ll_single_noreduce"],
        get_metrics(aggregated)[1]["ll_single_noreduce"],
    )


@pytest.fixture
def saved(tmp_path, rng):
    store = run(mk.MetricStore(default_log_modes=("mean", "max")), rng, 3)
    path = tmp_path / "good.npz"
    store.save(path)
    return store, path


def corrupt_cases(path, tmp_path):
    data = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.ones(3))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    return {
        truncated: "truncated",
        empty: "truncated",
        foreign: "not a metricskit checkpoint",
        text: "truncated",
    }


def test_bad_files_raise_clear_errors_and_leave_the_store_untouched(saved, tmp_path):
    store, path = saved
    before = leaves_with_paths(store)
    for bad, message in corrupt_cases(path, tmp_path).items():
        with pytest.raises(CheckpointError, match=message):
            mk.MetricStore.load(bad, like=store)
        with pytest.raises(ValueError, match=os.path.basename(bad)):
            mk.MetricStore.load(bad)
    for (p, x), (_, y) in zip(before, leaves_with_paths(store), strict=True):
        assert x.tobytes() == y.tobytes(), p
    with pytest.raises(FileNotFoundError):
        mk.MetricStore.load(tmp_path / "missing.npz")


def test_a_checkpoint_of_another_structure_is_refused(saved, rng):
    _, path = saved
    other = run(mk.MetricStore(default_log_modes=("mean",)), rng, 1)
    with pytest.raises(
        CheckpointError, match=r"not expected \[\('acc', 'max'\).*load it without like="
    ):
        mk.MetricStore.load(path, like=other)


def test_a_damaged_leaf_is_refused(saved, tmp_path):
    store, path = saved
    with zipfile.ZipFile(path) as z:
        entries = {name: z.read(name) for name in z.namelist()}
    victim = next(n for n in entries if n.startswith("metrics"))
    damaged = tmp_path / "damaged.npz"
    with zipfile.ZipFile(damaged, "w") as z:
        for name, data in entries.items():
            if name != victim:
                z.writestr(name, data)
    with pytest.raises(CheckpointError, match="missing or truncated"):
        mk.MetricStore.load(damaged, like=store)


def test_a_grown_evaluation_store_loads_into_a_one_batch_store(tmp_path, rng):
    # Issue 13.8: only the sample axis of per-sample modes differs: loading succeeds.
    def batch(n):
        return update_metrics(
            None,
            {
                "err": {"value": rng.normal(size=n), "log_modes": ["single_noreduce"]},
                "loss": {"value": float(n), "log_modes": ["mean"]},
            },
        )

    aggregated = {}
    for n in (4, 4, 2):
        aggregated = aggregate_metrics(aggregated, batch(n))
    evaluated = mk.MetricStore.from_mapping(aggregated)
    evaluated.save(tmp_path / "eval.npz")
    like = batch(4)
    loaded = mk.MetricStore.load(tmp_path / "eval.npz", like=like)
    np.testing.assert_array_equal(
        loaded.compute()["err_single_noreduce"], evaluated.compute()["err_single_noreduce"]
    )
    assert loaded.compute()["err_single_noreduce"].shape == (10,)
    other = update_metrics(
        None,
        {
            "err": {"value": rng.normal(size=(4, 2)), "log_modes": ["single_noreduce"]},
            "loss": {"value": 1.0, "log_modes": ["mean"]},
        },
    )
    with pytest.raises(
        CheckpointError, match=r"'err'.*'single_noreduce'.*'value'.*\(10,\).*\(4, 2\)"
    ):
        mk.MetricStore.load(tmp_path / "eval.npz", like=other)


def test_a_mode_name_now_registered_to_another_class_is_a_checkpoint_error(tmp_path):
    # one process saves with "renamed" meaning a class with field `a`; another, where the
    # name means a class with field `b` (an edited notebook cell), loads it
    script = """
import sys
import jax.numpy as jnp
import metricskit as mk
field = sys.argv[2]

@mk.register_metric("renamed")
class Total(mk.Metric):
    locals()[field] = mk.state("sum")
    count = mk.state("sum", shape="count")

    def update(self, value, count):
        total = getattr(self, field) + value
        return self.replace(count=self.count + count, **{field: total})

    def compute(self):
        return getattr(self, field)

if sys.argv[3] == "save":
    mk.MetricStore().update({"x": {"value": 1.0, "log_modes": ["renamed"]}}).save(sys.argv[1])
else:
    try:
        mk.MetricStore.load(sys.argv[1])
    except ValueError as e:  # a CheckpointError
        print(type(e).__name__, e)
"""
    path = str(tmp_path / "s.npz")
    run = [sys.executable, "-c", script, path]
    subprocess.run([*run, "a", "save"], check=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    out = subprocess.run(
        [*run, "b", "load"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    ).stdout
    assert out.startswith("CheckpointError") and "state fields differ from the classes" in out


USER_METRICS = Path(__file__).with_name("usermetrics.py").read_text()

SAVE = """
import json, sys
import numpy as np
import metricskit as mk
from usermetrics import DecayedMean, mixed_step

rng = np.random.default_rng(0)
store = mk.MetricStore(default_log_modes=["mean", DecayedMean(decay=0.5)])
for _ in range(3):
    store = store.update(mixed_step(rng))
store.save(sys.argv[1])
print(json.dumps(store.compute()))
"""

LOAD = """
import json, sys
import metricskit as mk

store = mk.MetricStore.load(sys.argv[1])
assert "usermetrics" in sys.modules  # imported by load, from the recorded class path
print(json.dumps(store.compute()))
store = store.update({"loss": 1.0})  # the default modes came back: mean and DecayedMean(0.5)
print(json.dumps(sorted(k for k in store.compute() if k.startswith("loss"))))
"""


def _run(script: str, *args: str, cwd) -> str:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(cwd)}
    done = subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_store_of_task_and_user_metrics_loads_in_a_fresh_process_with_nothing_called(tmp_path):
    (tmp_path / "usermetrics.py").write_text(USER_METRICS)
    path = str(tmp_path / "s.npz")
    saved = json.loads(_run(SAVE, path, cwd=tmp_path))
    assert {"q_tails_p0", "q_tails_p100", "q_low_p10", "f1_macro", "fast_decayed_mean"} <= set(
        saved
    )
    assert (
        saved["f1_macro"] != saved["f1_micro"]
        and saved["fast_decayed_mean"] != saved["slow_decayed_mean"]
    )
    loaded, loss_names = _run(LOAD, path, cwd=tmp_path).splitlines()
    assert json.loads(loaded) == saved  # the same numbers, bit for bit
    assert json.loads(loss_names) == ["loss_decayed_mean", "loss_mean"]


def test_a_class_that_cannot_be_imported_is_a_checkpoint_error_naming_the_fix(tmp_path):
    class Local(mk.Metric):
        total = mk.state("sum")

        def update(self, value, count):
            return self.replace(total=self.total + value)

        def compute(self):
            return self.total

    path = str(tmp_path / "local.npz")
    mk.MetricStore().update({"x": {"value": 1.0, "log_modes": [Local]}}).save(path)
    with pytest.raises(CheckpointError, match=r"defined inside a function.*module level"):
        mk.MetricStore.load(path)
    like = mk.MetricStore().update({"x": {"value": 0.0, "log_modes": [Local]}})
    assert mk.MetricStore.load(path, like=like).compute() == {"x_local": 1.0}


def _rewrite_header(path: str, out: str, edit) -> None:
    with np.load(path) as npz:
        arrays = {name: npz[name] for name in npz.files}
    header = json.loads(arrays["__metricskit__"].tobytes().decode())
    edit(header)
    arrays["__metricskit__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(out, **arrays)


def test_a_format_2_checkpoint_loads_or_names_its_version_and_what_to_do(tmp_path):
    path, old = str(tmp_path / "new.npz"), str(tmp_path / "old.npz")
    mk.MetricStore(default_log_modes=["mean", "max"]).update({"loss": 2.0}).save(path)

    def as_format_2(header):  # metricskit 0.2 wrote no class paths
        header["format"] = "metricskit.checkpoint/2"
        for group in header["layout"]:
            del group["class"]

    _rewrite_header(path, old, as_format_2)
    assert mk.MetricStore.load(old).update({"loss": 4.0}).compute() == {
        "loss_max": 4.0,
        "loss_mean": 3.0,
    }

    def with_an_unknown_mode_name(header):  # a name no module registers now
        as_format_2(header)
        header["layout"][0]["mode"] = "renamed_since"

    _rewrite_header(path, old, with_an_unknown_mode_name)
    with pytest.raises(CheckpointError, match=r"'renamed_since' is not a registered.*0\.2.*like="):
        mk.MetricStore.load(old)

    def from_the_future(header):
        header["format"] = "metricskit.checkpoint/9"

    _rewrite_header(path, old, from_the_future)
    with pytest.raises(CheckpointError, match=r"format 'metricskit\.checkpoint/9'.*reads"):
        mk.MetricStore.load(old)


DATA = os.path.join(os.path.dirname(__file__), "data")


def _fixture(name: str):
    with open(os.path.join(DATA, f"{name}.json")) as f:
        return os.path.join(DATA, f"{name}.npz"), json.load(f)


def _assert_reports(store, want) -> None:
    got = store.compute()
    assert isinstance(got.pop("hist"), mk.tasks.Histogram)
    assert set(got) == set(want)
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def _task_step(rng, quantiles: bool = True) -> dict:
    """The step of the 0.2 fixtures, made by this version's task functions."""
    spec = importlib.util.spec_from_file_location(
        "make_metricskit02", Path(DATA) / "make_metricskit02.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.step(rng, quantiles)


def test_metricskit_0_2_task_checkpoints_load_with_the_same_numbers(rng):
    # written by metricskit 0.2 (format 2), which named task modes after their options
    path, want = _fixture("metricskit02_no_quantiles")
    if X64:  # the fixtures were saved with x64 off: their accumulators are 32-bit words
        with pytest.raises(CheckpointError, match=r"saved with jax_enable_x64 off.*has it on"):
            mk.MetricStore.load(path)
        return
    store = mk.MetricStore.load(path)
    _assert_reports(store, want)
    assert mk.tasks.fscores.FScores(
        kind="fbeta", average="weighted", beta=0.5, zero_division=float("nan")
    ) in list(store["fbeta"])
    # and it goes on with this version's task functions: the same modes, not new ones
    step = _task_step(rng, quantiles=False)
    assert sorted(store.update(step).compute()) == sorted(store.compute())

    path, want = _fixture("metricskit02_tasks")
    with pytest.raises(CheckpointError, match=r"checkpoint/2.*metricskit 0\.2.*like="):
        mk.MetricStore.load(path)  # its quantile name cannot be read back alone
    like = mk.MetricStore(default_log_modes=["mean", "max"]).init(_task_step(rng))
    _assert_reports(mk.MetricStore.load(path, like=like), want)


def test_altered_headers_are_checkpoint_errors_and_like_imports_nothing(tmp_path, monkeypatch):
    (tmp_path / "usermetrics_like.py").write_text(USER_METRICS)
    monkeypatch.syspath_prepend(str(tmp_path))
    from usermetrics_like import DecayedMean  # type: ignore[import-not-found]

    path, bad = str(tmp_path / "s.npz"), str(tmp_path / "bad.npz")
    store = mk.MetricStore().update({"x": {"value": 2.0, "log_modes": [DecayedMean(decay=0.5)]}})
    store.save(path)

    def edit_statics(header):
        header["layout"][0]["statics"] = [["decay", 0.123]]

    def edit_class(header):
        header["layout"][0]["class"] = "metricskit.builtin:MeanMetric"

    def collide(header):  # two groups reported under one name
        group = json.loads(json.dumps(header["layout"][0]))
        group["mode"]["options"] = group["statics"] = [["decay", 0.7]]
        header["layout"].append(group)

    def from_main(header):
        header["layout"][0]["mode"]["class"] = "__main__:DecayedMean"

    def from_anywhere(header):
        header["layout"][0]["mode"]["class"] = "this:s"

    for edit, message in [
        (edit_statics, "disagree with the mode itself"),
        (edit_class, "disagree with the mode itself"),
        (collide, "unreadable store layout.*reported as"),
        (from_main, r"__main__.*move the class into a module"),
        (from_anywhere, r"this:s is .*not a metricskit\.Metric subclass"),
    ]:
        _rewrite_header(path, bad, edit)
        with pytest.raises(CheckpointError, match=message):
            mk.MetricStore.load(bad)
    # with like= the classes come from the store loaded into: the module is not imported
    monkeypatch.delitem(sys.modules, "usermetrics_like")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    assert mk.MetricStore.load(path, like=store).compute() == {"x_decayed_mean": 2.0}
    assert "usermetrics_like" not in sys.modules
    other = mk.MetricStore().update({"x": {"value": 2.0, "log_modes": [DecayedMean(decay=0.9)]}})
    with pytest.raises(CheckpointError, match=r"which the store to load into does not have"):
        mk.MetricStore.load(path, like=other)
    assert "usermetrics_like" not in sys.modules


def test_loading_into_a_store_of_other_configured_modes_names_the_pairs(tmp_path):
    from usermetrics import DecayedMean

    path = str(tmp_path / "c.npz")
    mk.MetricStore().update({"a": 1.0}).save(path)
    like = mk.MetricStore().update({"x": {"value": 1.0, "log_modes": ["mean", DecayedMean]}})
    with pytest.raises(CheckpointError, match=r"missing \[\('x', 'mean'\), \('x', Decayed"):
        mk.MetricStore.load(path, like=like)


EVOLVING = """
import jax.numpy as jnp
import metricskit as mk


class Evo(mk.Metric):
    decay = mk.static(0.9)
    {extra}
    total = mk.state("sum")
    count = mk.state("sum", shape="count")

    def update(self, value, count):
        return self.replace(total=self.total + value, count=self.count + count)

    def compute(self):
        return mk.divide(self.total, self.count)
"""


def _evolve(tmp_path, module: str, extra: str) -> type:
    (tmp_path / f"{module}.py").write_text(EVOLVING.replace("{extra}", extra))
    sys.modules.pop(module, None)
    importlib.invalidate_caches()
    return importlib.import_module(module).Evo


def test_an_option_the_class_gained_since_the_save_takes_its_default(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # each version is read afresh
    evo = _evolve(tmp_path, "evo_gain", "")
    store = mk.MetricStore().update({"x": {"value": 2.0, "log_modes": [evo(decay=0.5)]}})
    store.save(tmp_path / "s.npz")
    newer = _evolve(tmp_path, "evo_gain", "bias = mk.static(0.0)")
    loaded = mk.MetricStore.load(tmp_path / "s.npz")
    assert list(loaded["x"]) == [newer(decay=0.5, bias=0.0)]
    assert loaded.update({"x": 4.0}).compute() == {"x_evo": 3.0}
    like = mk.MetricStore().init({"x": {"value": 0.0, "log_modes": [newer(decay=0.5)]}})
    assert mk.MetricStore.load(tmp_path / "s.npz", like=like).compute() == {"x_evo": 2.0}

    _evolve(tmp_path, "evo_gain", "bias = mk.static()")  # a new option without a default
    with pytest.raises(
        CheckpointError,
        match=r"bias is a static option without a default.*"
        r"options changed since the checkpoint",
    ):
        mk.MetricStore.load(tmp_path / "s.npz")


def test_an_option_the_class_lost_since_the_save_is_a_checkpoint_error(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    evo = _evolve(tmp_path, "evo_lose", "bias = mk.static(1.0)")
    store = mk.MetricStore().update({"x": {"value": 2.0, "log_modes": [evo()]}})
    store.save(tmp_path / "s.npz")
    _evolve(tmp_path, "evo_lose", "")
    with pytest.raises(CheckpointError, match=r"unknown options \['bias'\].*options changed"):
        mk.MetricStore.load(tmp_path / "s.npz")


TALLY_SAVE = """
import sys
import jax.numpy as jnp
import metricskit as mk


class Tally(mk.Metric):
    n = mk.state("sum", shape="scalar", dtype="int")
    total = mk.state("sum", shape="scalar")

    def update(self, value, count):
        return self.replace(n=self.n + count, total=self.total + value)

    def compute(self):
        return self.n


store = mk.MetricStore().update({"x": {"value": 1.0, "count": 7, "log_modes": [Tally]}})
store.save(sys.argv[1])
"""


def test_a_custom_fields_width_saved_under_the_other_x64_setting_is_named(tmp_path):
    # an "int"/"float" field follows jax_enable_x64: int64 would wrap silently into int32
    (tmp_path / "tally_x64.py").write_text(TALLY_SAVE.split("\n\nstore =")[0])
    saver = TALLY_SAVE.replace("class Tally", "from tally_x64 import Tally\nclass _Unused")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(tmp_path)}
    env["JAX_ENABLE_X64"] = "0" if X64 else "1"
    path = str(tmp_path / "t.npz")
    done = subprocess.run([sys.executable, "-c", saver, path], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr[-3000:]
    saved, now = ("off", "on") if X64 else ("on", "off")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(
            CheckpointError,
            match=rf"saved with jax_enable_x64 {saved} \(log mode Tally\(\) field 'n' holds "
            rf"int(32|64)\), and this process has it {now}",
        ):
            mk.MetricStore.load(path)
    finally:
        sys.path.remove(str(tmp_path))


def _make03():
    spec = importlib.util.spec_from_file_location(
        "make_metricskit03", Path(DATA) / "make_metricskit03.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checkpoints_of_builtin_classes_recorded_under_their_0_3_modules_load():
    # 0.3.0 recorded NoReduceMetric as metricskit.persample:NoReduceMetric and NonFiniteMetric
    # under metricskit.nan_policy; those modules are now metricskit.builtin
    path, want = _fixture("metricskit03_classes")
    with open(path, "rb") as f, np.load(f) as npz:
        header = json.loads(npz["__metricskit__"].tobytes().decode())
    assert {"metricskit.persample:NoReduceMetric", "metricskit.nan_policy:NonFiniteMetric"} <= {
        g["mode"]["class"] for g in header["layout"] if isinstance(g["mode"], dict)
    }
    if X64:  # saved with x64 off: its exact accumulators are 32-bit words
        with pytest.raises(CheckpointError, match=r"saved with jax_enable_x64 off"):
            mk.MetricStore.load(path)
        return
    made = _make03().stores()["classes"]
    for loaded in (mk.MetricStore.load(path), mk.MetricStore.load(path, like=made)):
        got = loaded.compute()
        assert sorted(got) == sorted(want)
        for name, value in want.items():
            np.testing.assert_array_equal(
                np.asarray(got[name], dtype=object), np.asarray(value, dtype=object), err_msg=name
            )
        assert list(loaded["ll"]) == list(made["ll"])
