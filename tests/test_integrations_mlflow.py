"""MLflow: what the sink logs reads back from a local tracking store, exactly, at its steps."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from helpers import sink_results
from mlflow.tracking import MlflowClient

from metricskit.integrations.mlflow import MAX_NAME_LENGTH, MlflowSink, mlflow_name
from metricskit.sinks import Sink, summarize


@pytest.fixture
def uri(tmp_path, monkeypatch):
    """A local file tracking store (MLflow 3 asks for an opt-in to it; no server, no database)."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return (tmp_path / "mlruns").as_uri()


def logs(rng):
    return sink_results(rng, tokens="train/tokens", grad_norm=1.0)


def history(uri: str, run_id: str) -> dict[str, list[tuple[int, float]]]:
    client = MlflowClient(tracking_uri=uri)
    names = client.get_run(run_id).data.metrics  # the latest value of every metric
    return {
        name: [(m.step, m.value) for m in client.get_metric_history(run_id, name)] for name in names
    }


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def test_every_summarized_metric_reads_back_exactly_at_its_step(uri, rng):
    results = logs(rng)
    sink = MlflowSink(experiment="metricskit", tracking_uri=uri, run_name="r1", tags={"t": "1"})
    assert isinstance(sink, Sink)
    for step, metrics in zip((10, 20, 30), results, strict=True):
        sink.write(step, metrics)
    sink.close()
    sink.close()  # a second close does nothing

    got = history(uri, sink.run_id)
    want: dict[str, list[tuple[int, float]]] = {}
    for step, metrics in zip((10, 20, 30), results, strict=True):
        for name, value in summarize(metrics).items():
            want.setdefault(name, []).append((step, float(value)))
    assert {"train/loss_mean", "ll_single_noreduce/std", "tok_ll_single_noreduce_wcount/n"} <= set(
        want
    )
    assert "err/mean" in want and "err/n" in want
    assert sorted(got) == sorted(want)
    for name, points in want.items():
        assert [s for s, _ in got[name]] == [s for s, _ in points], name
        assert all(same(a, b) for (_, a), (_, b) in zip(got[name], points, strict=True)), name
    assert math.isnan(dict(got["grad_norm_single"])[20])

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(sink.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "r1"
    assert run.data.tags["t"] == "1"
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "metricskit"
    again = MlflowSink(experiment="metricskit", tracking_uri=uri)  # the experiment is reused
    assert client.get_run(again.run_id).info.experiment_id == experiment.experiment_id
    again.close()


def test_an_existing_run_is_logged_to_and_left_open(uri):
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("mine"))
    sink = MlflowSink(run.info.run_id, tracking_uri=uri)
    sink.write(3, {"loss": 0.25, "n": 7})
    sink.write(4, {})  # nothing to log
    sink.close()
    assert client.get_run(run.info.run_id).info.status == "RUNNING"
    assert history(uri, run.info.run_id) == {"loss": [(3, 0.25)], "n": [(3, 7.0)]}
    with pytest.raises(ValueError, match=r"existing run, so \['experiment', 'run_name'\]"):
        MlflowSink(run.info.run_id, tracking_uri=uri, experiment="x", run_name="y")


def test_the_default_experiment_is_mlflows(uri):
    sink = MlflowSink(tracking_uri=uri)
    sink.write(0, {"loss": 1.0})
    sink.close()
    assert MlflowClient(tracking_uri=uri).get_run(sink.run_id).info.experiment_id == "0"


def test_names_mlflow_refuses_are_named_before_anything_is_logged(uri):
    sink = MlflowSink(tracking_uri=uri)
    with pytest.raises(ValueError, match=r"'acc@1' has the characters \['@'\].*sanitize=True"):
        sink.write(1, {"loss": 1.0, "acc@1": 0.5})
    assert history(uri, sink.run_id) == {}
    sink.close()

    sanitized = MlflowSink(tracking_uri=uri, sanitize=True)
    sanitized.write(1, {"acc@1": 0.5, "val//f1 (macro)": 0.25, "/abs": 1.0, "ok/name": 2.0})
    sanitized.close()
    assert history(uri, sanitized.run_id) == {
        "acc_1": [(1, 0.5)],
        "val/_/f1 _macro_": [(1, 0.25)],
        "_/abs": [(1, 1.0)],
        "ok/name": [(1, 2.0)],
    }

    clash = MlflowSink(tracking_uri=uri, sanitize=True)
    with pytest.raises(ValueError, match=r"'acc@1' and 'acc#1' are both 'acc_1'"):
        clash.write(1, {"acc@1": 0.5, "acc#1": 0.25})
    clash.close()


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("/loss", "not a normalized relative path"),
        ("a//b", "not a normalized relative path"),
        ("a/", "not a normalized relative path"),
        ("../loss", "not a normalized relative path"),
        ("a/./b", "not a normalized relative path"),
        ("", "not a normalized relative path"),
        ("x" * (MAX_NAME_LENGTH + 1), f"is {MAX_NAME_LENGTH + 1} characters long"),
        ("a:b", r"has the characters \[':'\]"),
    ],
)
def test_mlflow_name_rules(name, problem):
    with pytest.raises(ValueError, match=problem):
        mlflow_name(name)
    assert mlflow_name("train/loss_mean.v-2 x") == "train/loss_mean.v-2 x"
    assert mlflow_name("x" * MAX_NAME_LENGTH) == "x" * MAX_NAME_LENGTH
    assert mlflow_name("..loss/../x", sanitize=True) == "_.loss/_/x"
    with pytest.raises(ValueError, match="with its characters replaced, which is 251"):
        mlflow_name("@" * (MAX_NAME_LENGTH + 1), sanitize=True)


def test_arrays_are_summarized_not_dropped(uri):
    sink = MlflowSink(tracking_uri=uri)
    sink.write(5, {"ll": np.array([1.0, 3.0])})
    sink.close()
    assert history(uri, sink.run_id) == {
        "ll/mean": [(5, 2.0)],
        "ll/std": [(5, 1.0)],
        "ll/min": [(5, 1.0)],
        "ll/max": [(5, 3.0)],
        "ll/n": [(5, 2.0)],
    }


def test_without_mlflow_the_extra_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(ImportError, match=r'pip install "metricskit\[mlflow\]"'):
        MlflowSink()


def test_fractional_steps_and_writes_after_close_are_refused(uri):
    sink = MlflowSink(experiment="steps", tracking_uri=uri)
    sink.write(np.int64(3), {"loss": 1.0})
    for step in (2.5, -1, True, "4"):
        with pytest.raises(ValueError, match="non-negative whole number"):
            sink.write(step, {"loss": 2.0})
    sink.close()
    with pytest.raises(ValueError, match=r"MlflowSink.write\(\) after close"):
        sink.write(4, {"loss": 3.0})
    assert history(uri, sink.run_id) == {"loss": [(3, 1.0)]}


def test_without_a_tracking_uri_an_unusable_default_store_says_to_pass_one(tmp_path, monkeypatch):
    # MLflow 3's default store is sqlite:///mlflow.db, which needs SQLAlchemy: mlflow-skinny
    # (the extra) does not install it
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    try:
        import sqlalchemy  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match=r"pass tracking_uri, e\.g\. tracking_uri='file:"):
            MlflowSink(experiment="default-store")
    else:
        MlflowSink(experiment="default-store").close()
