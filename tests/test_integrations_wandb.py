"""Weights & Biases: an offline run's transaction log, read back with wandb's own reader
(``wandb leet inspect --json``), holds exactly what the sink wrote, at its steps."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import wandb
from helpers import sink_results

from metricskit.integrations.wandb import MAX_BUCKETS, WandbSink, coarsen
from metricskit.sinks import Sink, summarize
from metricskit.tasks import Histogram


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No network, no console capture, files under tmp_path."""
    for name, value in {
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(tmp_path),
        "WANDB_SILENT": "true",
        "WANDB_CONSOLE": "off",
    }.items():
        monkeypatch.setenv(name, value)
    return tmp_path


def records(run_dir: str | os.PathLike[str]) -> list[dict]:
    """The records of the run's ``.wandb`` log, as wandb itself decodes them."""
    (log,) = Path(run_dir).glob("run-*.wandb")
    out = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(log)],
        check=True,
        capture_output=True,
        text=True,
        env=os.environ,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def number(x):
    return float(x) if x in ("NaN", "Infinity", "-Infinity") else x


def history(logged: list[dict]) -> dict[int, dict]:
    """``{step: {name: value}}`` of the history rows, W&B's own ``_`` fields left out."""
    rows = {}
    for rec in logged:
        if rec["type"] == "history":
            item = rec["history"]["item"]
            rows[rec["history"]["step"]["num"]] = {
                k: number(v) for k, v in item.items() if not k.startswith("_")
            }
    return rows


def same(a, b) -> bool:
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


def logs(rng):
    return sink_results(rng, grad_norm=1.5, wcount=False)


def test_a_new_offline_run_holds_every_metric_at_its_step(offline, rng):
    results = logs(rng)
    sink = WandbSink(
        project="metricskit", dir=offline / "runs", mode="offline", name="r1", config={"lr": 0.1}
    )
    assert isinstance(sink, Sink)
    assert sink.run.offline and sink.run.name == "r1" and sink.run.config["lr"] == 0.1
    for step, metrics in zip((10, 20, 30), results, strict=True):
        sink.write(step, metrics)
    run_dir = Path(sink.run.dir).parent
    assert run_dir.is_relative_to(offline / "runs")
    sink.close()
    sink.close()  # a second close does nothing

    logged = records(run_dir)
    rows = history(logged)
    assert sorted(rows) == [10, 20, 30]
    for step, metrics in zip((10, 20, 30), results, strict=True):
        want = dict(summarize(metrics))
        h = metrics["err"]
        want.update({"err._type": "histogram", "err.bins": h.edges.tolist()})
        want["err.values"] = h.counts.tolist()
        assert sorted(rows[step]) == sorted(want)
        assert all(same(rows[step][k], v) for k, v in want.items()), step
    assert math.isnan(rows[20]["grad_norm_single"])
    assert isinstance(rows[10]["tokens_single"], int)
    assert [r["exit"]["exit_code"] for r in logged if r["type"] == "exit"] == [0]  # finished


def test_an_existing_run_is_logged_to_and_left_open(offline):
    run = wandb.init(project="metricskit", dir=offline, mode="offline")
    sink = WandbSink(run, histograms=False)
    sink.write(1, {"loss": 0.5, "h": Histogram(np.array([0.0, 1.0]), np.array([4]))})
    sink.write(1, {"acc": 0.25})  # the same step again: one row
    sink.write(2, {"loss": 0.25})
    sink.close()
    run.log({"after": 1.0}, step=3)  # still open: a finished run refuses to log
    run.finish()
    assert history(records(Path(run.dir).parent)) == {
        1: {"loss": 0.5, "h/mean": 0.5, "h/min": 0.0, "h/max": 1.0, "h/n": 4, "acc": 0.25},
        2: {"loss": 0.25},
        3: {"after": 1.0},
    }
    with pytest.raises(ValueError, match=r"existing run, so \['mode', 'project'\] cannot"):
        WandbSink(run, project="p", mode="offline")


def test_a_decreasing_step_is_refused_instead_of_dropped(offline):
    sink = WandbSink(project="metricskit", mode="offline")
    sink.write(5, {"loss": 1.0})
    with pytest.raises(ValueError, match="step 4 is lower than the last step written, 5"):
        sink.write(4, {"loss": 2.0})
    sink.close()
    assert history(records(Path(sink.run.dir).parent)) == {5: {"loss": 1.0}}


def test_fractional_steps_and_writes_after_close_are_refused(offline):
    sink = WandbSink(project="metricskit", mode="offline")
    sink.write(20, {"loss": 1.0})
    with pytest.raises(ValueError, match=r"non-negative whole number, got 20\.5"):
        sink.write(20.5, {"loss": 2.0})  # W&B would merge it into row 20
    sink.close()
    with pytest.raises(ValueError, match=r"WandbSink.write\(\) after close"):
        sink.write(21, {"loss": 3.0})
    assert history(records(Path(sink.run.dir).parent)) == {20: {"loss": 1.0}}


def test_histograms_beyond_wandbs_bucket_limit_are_coarsened_exactly(offline, rng):
    counts = rng.integers(0, 9, size=1001)
    h = Histogram(np.linspace(-1.0, 1.0, 1002), counts)
    small = coarsen(h)
    assert small.counts.size == 501 <= MAX_BUCKETS  # pairs of buckets; the last one alone
    assert small.counts.tolist() == [int(counts[i : i + 2].sum()) for i in range(0, 1001, 2)]
    assert small.edges.tolist() == [*h.edges[::2].tolist(), h.edges[-1]]
    assert coarsen(small) is small
    with pytest.raises(ValueError, match="max_buckets=0"):
        coarsen(h, max_buckets=0)

    sink = WandbSink(project="metricskit", mode="offline")
    sink.write(0, {"err": h})
    sink.close()
    row = history(records(Path(sink.run.dir).parent))[0]
    assert row["err.values"] == small.counts.tolist() and row["err.bins"] == small.edges.tolist()


def test_without_wandb_the_extra_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match=r'pip install "metricskit\[wandb\]"'):
        WandbSink(mode="offline")
