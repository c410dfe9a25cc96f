"""benchmarks/run.py stays runnable: a tiny run without peers writes a complete JSON table."""

from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


@pytest.mark.extended
def test_a_tiny_benchmark_run_covers_every_workload(tmp_path):
    assert SCRIPT.exists(), "the tests run from a source checkout (tox changes into it)"
    out = tmp_path / "results.json"
    argv = ["--keys", "4", "--ingraph-keys", "3", "--batches", "3", "6", "--size", "8"]
    argv += ["--task-batches", "2"]
    subprocess.run(
        [sys.executable, str(SCRIPT), *argv, "--repeats", "1", "--no-peers", "--json", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    rows = json.loads(out.read_text())["rows"]
    seen = {(r["workload"], r["name"]) for r in rows}
    for workload in ("eager update", "compute + reset"):
        assert {(workload, "metricskit"), (workload, "metricskit fn")} <= seen
    for name in ("no metrics", "hand-written float32", "metricskit"):
        for workload in ("in-graph metrics step", "compile: metrics step", "MLP train step"):
            assert (workload, name) in seen
    for name in ("metricskit", "metricskit eager update", "floor: list + concatenate"):
        assert ("eval aggregation", name) in seen
    assert ("whole eval loop", "metricskit") in seen
    for name in ("metricskit", "floor: hand-written counts"):
        assert ("task metrics: acc + macro F1", name) in seen
    assert ("compiles, zero-filled init", "metricskit") in seen
    assert all(
        r["value"] is not None and math.isfinite(r["value"]) and r["value"] >= 0 for r in rows
    )
    (compiles,) = [r["value"] for r in rows if r["workload"] == "compiles, zero-filled init"]
    assert compiles == 1
