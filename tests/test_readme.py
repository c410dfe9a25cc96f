"""The README's examples run and say what they claim."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_two_setup_commands_first():
    text = README.read_text()
    first_section = text.split("## ", 2)[1]
    commands = re.findall(r"```bash\n(.*?)```", first_section, flags=re.S)[0].strip().splitlines()
    assert len(commands) == 2
    assert "python -m metricskit demo" in commands[0] and "tox" in commands[1]
    tox_command = commands[1].split("&&")[1].split("#")[0].strip()
    ci = (README.parent / ".ci" / "run").read_text()
    assert tox_command in ci.splitlines(), "CI runs the README's test command"


def test_class_api_example(capsys):
    namespace: dict = {}
    exec(_blocks()[0], namespace)
    host = namespace["store"].compute()  # after the reset: all empty
    assert list(host) == ["acc_max", "acc_mean", "acc_std", "loss_max", "loss_mean", "loss_std"]
    assert set(host.values()) == {0.0}
    assert namespace["step"]._cache_size() == 1
    printed = capsys.readouterr().out
    assert "'loss_mean': 0.1037" in printed and "'loss_max': 2.0" in printed


def test_functional_api_example(capsys):
    namespace: dict = {}
    exec(_blocks()[1], namespace)
    assert namespace["host"] == {"loss": 2.0, "acc": 0.9375}
    assert list(namespace["host"]) == ["acc", "loss"]  # sorted by key, as the README says
    assert len(namespace["metrics"]) == 2 and sorted(namespace["metrics"]) == ["acc", "loss"]
    np.testing.assert_array_equal(
        namespace["get_metrics"](namespace["evaluated"])[1]["ll_single_noreduce"],
        [-1.5, -2.0, -0.5],
    )


def test_custom_metric_example(capsys):
    namespace: dict = {}
    exec(_blocks()[2], namespace)
    out = capsys.readouterr().out
    assert "'err_rms': 3.535" in out and "'err_root_mean_square': 3.535" in out
