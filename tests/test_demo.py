"""The demo (the README's main job): trains, logs to JSONL, plots, checkpoints, and says why not."""

from __future__ import annotations

import struct
import sys

import numpy as np
import pytest

import metricskit as mk
from metricskit.__main__ import main
from metricskit.demo import run_demo
from metricskit.sinks import read_csv, read_jsonl

TRAIN = {
    "loss_mean",
    "loss_std",
    "loss_max",
    "accuracy",
    "grad_norm_mean",
    "grad_norm_single",
    "samples_per_s",
}
EVAL = {"eval_samples", "eval_loss", "eval_loss_std", "eval_loss_max", "eval_accuracy"}


def assert_valid_png(path):
    """A PNG signature, an IHDR of sane size, and an image that matplotlib decodes."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert 200 < width < 5000 and 200 < height < 5000
    from matplotlib import image

    pixels = image.imread(path)
    assert pixels.shape[:2] == (height, width)
    assert np.ptp(pixels[..., :3]) > 0  # something was drawn


def test_demo_writes_metrics_jsonl_and_a_plot(tmp_path, capsys):
    result = run_demo(steps=30, seed=3, log_every=10, out_dir=tmp_path, name="short")
    folder = tmp_path / "short"
    assert sorted(p.name for p in folder.iterdir()) == [
        "curves.png",
        "eval_state.npz",
        "metrics.jsonl",
    ]
    records = read_jsonl(folder / "metrics.jsonl")
    assert [r["step"] for r in records] == [10, 20, 30, 30]
    for record in records[:3]:
        assert set(record) == {"step"} | TRAIN
        assert 0.0 <= record["accuracy"] <= 1.0
        assert record["loss_max"] >= record["loss_mean"] > 0.0 and record["loss_std"] >= 0.0
        assert record["samples_per_s"] > 0
    assert set(records[3]) == {"step"} | EVAL
    assert records[3]["eval_samples"] == 512
    assert records[3]["eval_loss_max"] >= records[3]["eval_loss"] > 0.0
    assert {k: v for k, v in records[2].items() if k != "step"} == {
        k: v for k, v in result.items() if k in TRAIN
    }
    assert_valid_png(folder / "curves.png")
    eval_store = mk.MetricStore.load(folder / "eval_state.npz")
    losses = eval_store.compute()["sample_loss_single_noreduce"]
    np.testing.assert_allclose(losses.mean(), result["eval_loss"], rtol=1e-6)
    out = capsys.readouterr()
    assert "short: after 30 steps" in out.out and "eval_loss" in out.out
    assert "30/30" in out.err  # the progress bar


def test_command_line_demo_with_every_sink_then_plot(tmp_path, capsys):
    argv = ["demo", "--steps", "12", "--log-every", "4", "--out-dir", str(tmp_path)]
    argv += ["--name", "cli", "--sinks", "jsonl", "csv", "tensorboard", "console"]
    assert main([*argv, "--no-progress", "--no-plot"]) == 0
    folder = tmp_path / "cli"
    rows = read_csv(folder / "metrics.csv")
    assert [r["step"] for r in rows] == [4, 8, 12, 12]
    assert rows[:3] == [
        {k: v for k, v in r.items()} for r in read_jsonl(folder / "metrics.jsonl")[:3]
    ]
    assert list(folder.glob("events.out.tfevents.*"))
    out = capsys.readouterr().out
    assert out.count("step 4\n") == 1 and "eval_accuracy" in out
    assert main(["plot", str(folder / "metrics.jsonl"), "-o", str(tmp_path / "c.png")]) == 0
    assert_valid_png(tmp_path / "c.png")
    assert "c.png: 12 panels" in capsys.readouterr().out  # 7 training + 5 evaluation metrics
    with pytest.raises(ValueError, match=r"\['nope'\] are not in the log"):
        main(["plot", str(folder / "metrics.jsonl"), "--metrics", "nope"])
    with pytest.raises(SystemExit):
        main(["nonsense"])


def test_demo_names_the_extra_it_needs(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pytest.raises(ImportError, match=r'pip install "metricskit\[demo\]"'):
        run_demo(steps=2, out_dir=tmp_path)
    with pytest.raises(ValueError, match="add the 'jsonl' sink"):
        run_demo(steps=2, out_dir=tmp_path, sinks=("csv",))
