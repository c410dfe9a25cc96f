"""Two processes with two CPU devices each (jax.distributed on 127.0.0.1) match one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import metricskit as mk

WORKER = Path(__file__).with_name("multiprocess_worker.py")
DEADLINE_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reference() -> dict:
    sys.path.insert(0, str(WORKER.parent))
    try:
        from multiprocess_worker import MODES, STEPS, data
    finally:
        sys.path.pop(0)
    d = data()
    summed = mk.MetricStore()  # update(axis_name): one device fed the summed step metrics
    union = mk.MetricStore()  # sync: one device fed every device's samples
    for t in range(STEPS):
        summed = summed.update({
            "loss": {"value": d["loss"][:, t].sum(), "count": d["count"][:, t].sum(),
                     "log_modes": MODES},
            "ll": {"value": d["ll"][:, t].reshape(-1), "log_modes": ["single_noreduce"]},
        })  # fmt: skip
        for dev in range(d["loss"].shape[0]):
            union = union.update(
                {"loss": {"value": d["loss"][dev, t], "count": d["count"][dev, t],
                          "log_modes": [m for m in MODES if m != "single"]}}
            )  # fmt: skip
    sync = union.compute()
    last = {
        "value": d["loss"][:, -1].sum(),
        "count": d["count"][:, -1].sum(),
        "log_modes": ["single"],
    }
    sync.update(mk.MetricStore().update({"loss": last}).compute())
    sync["ll_single_noreduce"] = d["ll"][:, -1].reshape(-1)
    # every process appended its two batches; process_sync concatenates in process order
    evaluation = {"sample_single_noreduce": d["eval"].reshape(-1)}
    return {"update": summed.compute(), "sync": sync, "eval": evaluation}


def _close(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        np.testing.assert_allclose(
            np.asarray(got[name]), np.asarray(value), rtol=1e-5, err_msg=name
        )


@pytest.mark.extended
def test_two_processes_report_what_one_process_reports(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    procs, logs = [], []
    for pid in range(2):
        log = open(tmp_path / f"worker{pid}.log", "w")  # noqa: SIM115 (closed below)
        logs.append(log)
        procs.append(subprocess.Popen(
            [sys.executable, str(WORKER), str(pid), str(port), str(tmp_path / f"out{pid}.json")],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        ))  # fmt: skip
    start = time.monotonic()
    try:
        while any(p.poll() is None for p in procs) and time.monotonic() - start < DEADLINE_S:
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
    output = "\n".join((tmp_path / f"worker{i}.log").read_text()[-3000:] for i in range(2))
    assert all(p.returncode == 0 for p in procs), f"workers failed or timed out:\n{output}"
    results = [json.loads((tmp_path / f"out{i}.json").read_text()) for i in range(2)]
    assert results[0] == results[1]  # every process reports the same global result
    reference = _reference()
    for part in ("update", "sync", "eval"):
        _close(results[0][part], reference[part])


def test_process_sync_is_identity_with_one_process():
    store = mk.MetricStore(default_log_modes=["mean"]).update({"x": 2.0})
    assert store.process_sync() is store


@pytest.mark.parametrize("name", ["update", "sync", "eval"])
def test_reference_is_well_formed(name):
    assert _reference()[name]
