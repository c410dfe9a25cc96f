"""The demo (the README's main job): a language model on real text; logs, evaluations, plot,
checkpoints, and a command line that says what is wrong in one line."""

from __future__ import annotations

import contextlib
import re
import struct
import sys

import numpy as np
import pytest

import metricskit as mk
from metricskit.__main__ import main
from metricskit.demo import QUICK, run_demo, text
from metricskit.plot import families, plot_records
from metricskit.sinks import read_csv, read_jsonl

TRAIN = {
    "loss_mean",
    "loss_std",
    "loss_max",
    "perplexity",
    "token_accuracy",
    "bits_per_byte",
    "grad_norm_mean",
    "grad_norm_max",
}
EVAL = {
    "eval_loss",
    "eval_perplexity",
    "eval_token_accuracy",
    "eval_bits_per_byte",
    "eval_sequence_loss_p50",
    "eval_sequence_loss_p90",
    "eval_sequence_loss_p99",
    "eval_sequence_ll_mean",
    "eval_sequence_ll_min",
}


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


def test_the_corpus_is_the_standard_librarys_source():
    train, held_out, modules = text.corpus()
    total = train.size + held_out.size
    assert train.dtype == np.uint8 and abs(held_out.size - total / 10) <= 1 and total > 100_000
    assert "argparse" in modules and b"def " in train.tobytes()
    windows = text.eval_windows(held_out, 5, 16)
    assert windows.shape == (5, 16) and windows.dtype == np.int32
    np.testing.assert_array_equal(windows.ravel(), held_out[:80])


def test_quick_demo_trains_on_text_evaluates_every_m_steps_and_writes_the_run(tmp_path, capsys):
    result = run_demo(
        steps=40, log_every=10, eval_every=20, out=tmp_path / "run", config=QUICK, seed=1
    )
    folder = tmp_path / "run"
    assert sorted(p.name for p in folder.iterdir()) == [
        "curves.png",
        "eval_state.npz",
        "metrics.jsonl",
        "train_state.npz",
    ]
    records = read_jsonl(folder / "metrics.jsonl")
    assert [r["step"] for r in records] == [10, 20, 20, 30, 40, 40]
    train = [r for r in records if "loss_mean" in r]
    evals = [r for r in records if "eval_loss" in r]
    assert [r["step"] for r in evals] == [20, 40]  # every M steps, not only at the end
    for record in train:  # throughput from the end of the first (compiling) step on
        assert set(record) == {"step", "tokens_per_s"} | TRAIN
        assert record["tokens_per_s"] > 0
    for record in train:
        assert record["loss_max"] >= record["loss_mean"] > 0.0 and record["loss_std"] >= 0.0
        np.testing.assert_allclose(
            record["bits_per_byte"], record["loss_mean"] / np.log(2), rtol=0.05
        )
        assert 0.0 <= record["token_accuracy"] <= 1.0
    assert train[-1]["loss_mean"] < train[0]["loss_mean"]  # it learns
    for record in evals:
        assert set(record) == {"step"} | EVAL
        np.testing.assert_allclose(
            record["eval_perplexity"], np.exp(record["eval_loss"]), rtol=1e-6
        )
        p50, p90, p99 = (record[f"eval_sequence_loss_p{q}"] for q in (50, 90, 99))
        assert p50 <= p90 <= p99
    # the checkpoints hold the metric state: the last evaluation, bit for bit
    eval_store = mk.MetricStore.load(folder / "eval_state.npz")
    host = eval_store.compute()
    assert host["loss"] == result["eval_loss"] == evals[-1]["eval_loss"]
    ll, lengths = host["sequence_single_noreduce_wcount"]
    assert len(ll) == QUICK.eval_sequences and set(lengths.tolist()) == {QUICK.length - 8}
    # every batch counts (the last one smaller), not only the last: the mean per-token loss
    # is the total of the per-sequence log-likelihoods over all held-out tokens
    assert QUICK.eval_sequences % QUICK.eval_batch != 0
    np.testing.assert_allclose(result["eval_loss"], -ll.sum() / lengths.sum(), rtol=1e-5)
    assert float(np.mean(ll)) == result["eval_sequence_ll_mean"]
    assert mk.MetricStore.load(folder / "train_state.npz").compute()["loss_mean"] == pytest.approx(
        train[-1]["loss_mean"], rel=0, abs=0
    )
    assert_valid_png(folder / "curves.png")
    out = capsys.readouterr()
    assert "train: steps 31-40 (the last log window)" in out.out
    assert "eval: after step 40, on 20 held-out windows" in out.out
    assert "40/40" in out.err  # the progress bar


def test_the_plot_has_one_panel_per_family_with_train_and_eval_together(tmp_path):
    records = [
        {"step": 10, "loss_mean": 3.0, "loss_std": 0.5, "loss_max": 4.0, "tokens_per_s": 9.0},
        {"step": 20, "loss_mean": 2.0, "loss_std": 0.4, "loss_max": 3.0, "tokens_per_s": 9.5},
        {"step": 20, "eval_loss": 2.5, "eval_acc": 0.5},
        {"step": 30, "loss_mean": 1.5, "loss_std": 0.2, "loss_max": 2.0, "tokens_per_s": 9.4},
        {"step": 40, "eval_loss": 2.0, "eval_acc": 0.6, "eval_ll/mean": -3.0, "eval_ll/n": 7},
    ]
    assert families(["loss_mean", "loss_std", "loss_max", "eval_loss"])["loss"] == [
        ("train", "mean", "loss_mean"),
        ("train", "std", "loss_std"),
        ("train", "max", "loss_max"),
        ("eval", "value", "eval_loss"),
    ]
    panels = plot_records(records, tmp_path / "c.png")
    assert panels == ["loss", "tokens_per_s", "acc"]  # eval_ll has one point: no panel
    assert_valid_png(tmp_path / "c.png")
    with pytest.raises(ValueError, match="at most one point"):
        plot_records(records[:1], tmp_path / "d.png")


def test_command_line_quick_demo_with_every_sink_then_plot_next_to_the_log(tmp_path, capsys):
    folder = tmp_path / "cli"
    # explicit counts win over --quick's presets (40 steps, log every 10, evaluate every 20)
    argv = ["demo", "--quick", "--steps", "6", "--log-every", "2", "--eval-every", "4"]
    argv += ["--out", str(folder), "--no-progress"]
    argv += ["--sinks", "jsonl", "csv", "tensorboard", "console"]
    assert main(argv) == 0
    rows = read_csv(folder / "metrics.csv")
    assert [r["step"] for r in rows] == [2, 4, 4, 6, 6]
    assert list(folder.glob("events.out.tfevents.*"))
    assert "eval_perplexity" in capsys.readouterr().out
    (folder / "curves.png").unlink()
    assert main(["plot", str(folder / "metrics.jsonl")]) == 0  # no -o: next to the log
    assert_valid_png(folder / "curves.png")
    assert main(["plot", str(folder / "metrics.jsonl"), "-o", str(tmp_path / "c.png")]) == 0
    assert_valid_png(tmp_path / "c.png")
    capsys.readouterr()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--sinks", "csv"], "--sinks csv: .*add jsonl to --sinks, or pass --no-plot"),
        (["demo", "--steps", "0"], "--steps: .*positive"),
        (["demo", "--eval-every", "x"], "--eval-every: .*whole number"),
        (["plot", "missing.jsonl"], "missing.jsonl: no such file"),
        (["plot", "."], r"\.: a folder; pass the metrics.jsonl"),
        (["nonsense"], "invalid choice"),
        (["demo", "--out", ""], "--out : empty; pass a folder"),
    ],
)
def test_command_line_errors_are_one_line_naming_the_flag(argv, message, capsys, tmp_path):
    with contextlib.chdir(tmp_path):
        try:
            status = main(argv)
        except SystemExit as e:  # argparse's own usage errors
            status = e.code
    assert status == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.iterdir())  # nothing written


def test_an_unusable_run_folder_is_one_line_before_training(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "clash" / "metrics.jsonl").mkdir(parents=True)
    for out, message in [
        (tmp_path / "afile", "a file, not a folder"),
        (tmp_path / "afile" / "sub", f"{tmp_path / 'afile'} is a file, not a folder"),
        (tmp_path / "clash", "metrics.jsonl in it is a folder"),
    ]:
        assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"--out {out}: {message}" in err and len(err.strip().splitlines()) == 1


def test_a_run_with_one_log_row_completes_and_says_why_there_is_no_plot(tmp_path, capsys):
    assert main(["demo", "--quick", "--steps", "1", "--out", str(tmp_path), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "no curves.png: nothing to plot" in captured.err
    assert not (tmp_path / "curves.png").exists() and (tmp_path / "metrics.jsonl").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"step": 1, "loss": 1.0}\n[1, 2]\n', "line 2 is not a record"),
        ('{"step": 1, "loss": 1.0}\n{"loss": 2.0}\n', "line 2 is not a record"),
        ('{"step": 1, "loss": 1.0}\n{"step": 2, "lo\n', "line 2 is not JSON"),
        ("", "the log has no numeric metric"),
    ],
)
def test_plot_of_a_malformed_log_names_the_line(tmp_path, capsys, text, message):
    log = tmp_path / "m.jsonl"
    log.write_text(text)
    assert main(["plot", str(log)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_plot_of_an_unknown_metric_names_the_flag(tmp_path, capsys):
    log = tmp_path / "m.jsonl"
    log.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.5}\n')
    assert main(["plot", str(log), "--metrics", "nope"]) == 2
    assert "--metrics: metrics ['nope'] are not in the log" in capsys.readouterr().err


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    assert "(default: 400)" in out and "(default: 100)" in out and "runs/demo" in out
    assert "(default: None)" not in out
    with pytest.raises(SystemExit):
        main(["plot", "--help"])
    assert "(default: None)" not in capsys.readouterr().out


def test_demo_names_the_extra_it_needs(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pytest.raises(ImportError, match=r'pip install "metricskit\[demo\]"'):
        run_demo(steps=2, out=tmp_path)
    with pytest.raises(ValueError, match="add the 'jsonl' sink"):
        run_demo(steps=2, out=tmp_path, sinks=("csv",))
    with pytest.raises(ValueError, match="eval_every must be a positive"):
        run_demo(steps=2, out=tmp_path, eval_every=0)
