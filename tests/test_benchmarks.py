"""benchmarks/run.py stays runnable: a tiny run without peers writes a complete JSON table."""

from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


@pytest.mark.skipif(not SCRIPT.exists(), reason="run from a source checkout only")
def test_a_tiny_benchmark_run_covers_every_workload(tmp_path):
    out = tmp_path / "results.json"
    argv = ["--keys", "4", "--batches", "3", "6", "--sizes", "8", "--repeats", "1"]
    subprocess.run(
        [sys.executable, str(SCRIPT), *argv, "--peers", "--json", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    rows = json.loads(out.read_text())["rows"]
    assert [(r["workload"], r["size"]) for r in rows] == [
        ("eager update", "K=4"),
        ("jitted update", "K=4"),
        ("compute + reset", "K=4"),
        ("compile", "K=4"),
        ("aggregate noreduce", "N=3, 8/batch"),
        ("aggregate noreduce", "N=6, 8/batch"),
        ("peak tracemalloc / data", "N=6, 8/batch"),
        ("peak rss / data", "N=6, 8/batch"),
    ]
    for row in rows[:6]:
        assert set(row["results"]) == {"metricskit", "metricskit fn"}
        assert all(v > 0 for v in row["results"].values())
    assert rows[6]["results"]["metricskit"] > 0
    assert math.isfinite(rows[6]["results"]["metricskit"])
