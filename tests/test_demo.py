"""The demo (the README's main job) runs and logs sensible metrics."""

from __future__ import annotations

import pytest

from metricskit.__main__ import main
from metricskit.demo import run_demo


def test_demo_trains_and_logs(capsys):
    result = run_demo(steps=40, seed=3, log_every=20)
    assert {"loss_mean", "loss_std", "loss_max", "accuracy", "grad_norm_single"} <= set(result)
    assert 0.0 <= result["accuracy"] <= 1.0 and result["loss_std"] >= 0.0
    assert result["loss_max"] >= result["loss_mean"] > 0.0
    assert result["eval_samples"] == 512
    out = capsys.readouterr().out
    assert out.count("step ") == 2 and "eval: 512 samples" in out


def test_command_line(capsys):
    assert main(["demo", "--steps", "10", "--log-every", "5"]) == 0
    assert capsys.readouterr().out.count("step ") == 2
    with pytest.raises(SystemExit):
        main(["nonsense"])
