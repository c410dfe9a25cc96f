"""clu metric writers: what the adapter writes reads back from clu's log lines and from the
TensorBoard event files of clu's SummaryWriter, exactly (TensorBoard keeps float32)."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest
from helpers import sink_results

import metricskit as mk
from metricskit.integrations.clu import CluWriterSink, per_sample_arrays, write_scalars
from metricskit.sinks import Sink, summarize


@pytest.fixture(scope="module")
def metric_writers():
    """clu's writers (the package imports TensorFlow: once, only for this module's tests)."""
    from clu import metric_writers

    return metric_writers


def logs(rng):
    return sink_results(rng)


def logged_line(step: int, scalars: dict) -> str:
    """The line clu's LoggingWriter logs for ``write_scalars(step, scalars)``."""
    values = [f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in scalars.items()]
    return f"[{step}] " + ", ".join(sorted(values))


def test_a_logging_writer_behind_an_async_writer_logs_every_summarized_metric(
    metric_writers, rng, caplog
):
    caplog.set_level(logging.INFO, logger="absl")
    results = logs(rng)
    sink = CluWriterSink(metric_writers.AsyncWriter(metric_writers.LoggingWriter()))
    assert isinstance(sink, Sink)
    for step, metrics in zip((10, 20, 30), results, strict=True):
        sink.write(step, metrics)
    sink.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "absl"]
    want = [logged_line(step, summarize(m)) for step, m in zip((10, 20, 30), results, strict=True)]
    assert lines == want
    assert "err/mean" in lines[0] and "tok_ll_single_noreduce_wcount/weighted_mean" in lines[0]


def test_histograms_of_per_sample_arrays_go_through_write_histograms(metric_writers, caplog):
    caplog.set_level(logging.INFO, logger="absl")
    metrics = {
        "loss": 0.5,
        "ll": np.array([1.0, 2.0, 4.0]),
        "pair": (np.array([3.0, 5.0]), np.array([1, 2])),
        "empty": np.zeros(0),
        "h": mk.tasks.Histogram(np.array([0.0, 1.0]), np.array([2])),
    }
    assert list(per_sample_arrays(metrics)) == ["ll", "pair"]
    np.testing.assert_array_equal(per_sample_arrays(metrics)["pair"], [3.0, 5.0])
    sink = CluWriterSink(metric_writers.LoggingWriter(), histograms=True)
    sink.write(7, metrics)
    sink.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "absl"]
    assert lines[0] == logged_line(7, summarize(metrics))
    assert [line.split(" = ")[0] for line in lines[1:]] == [
        "[7] Histogram for 'll'",
        "[7] Histogram for 'pair'",
    ]


def test_the_default_writer_writes_tensorboard_events_that_read_back(metric_writers, rng, tmp_path):
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    results = logs(rng)
    writer = metric_writers.create_default_writer(tmp_path, asynchronous=True)
    sink = CluWriterSink(writer, histograms=True)
    for step, metrics in zip((10, 20, 30), results, strict=True):
        sink.write(step, metrics)
    sink.close()

    events = event_accumulator.EventAccumulator(
        str(tmp_path), size_guidance={event_accumulator.TENSORS: 0}
    )
    events.Reload()
    want: dict[str, list[tuple[int, np.float32]]] = {}
    for step, metrics in zip((10, 20, 30), results, strict=True):
        for name, value in summarize(metrics).items():
            want.setdefault(name, []).append((step, np.float32(value)))
    tags = set(events.Tags()["tensors"])
    assert tags == set(want) | {"ll_single_noreduce", "tok_ll_single_noreduce_wcount"}
    for name, points in want.items():
        got = [(e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in events.Tensors(name)]
        assert [s for s, _ in got] == [s for s, _ in points], name
        assert [v.dtype for _, v in got] == [np.float32] * len(points), name
        assert [v for _, v in got] == [w for _, w in points], name
    histogram = tensor_util.make_ndarray(events.Tensors("ll_single_noreduce")[0].tensor_proto)
    assert histogram[:, 2].sum() == 5  # every sample of the first step's array, bucketed


def test_write_scalars_with_a_writer_kept_open(metric_writers, caplog):
    caplog.set_level(logging.INFO, logger="absl")
    writer = metric_writers.LoggingWriter()
    write_scalars(writer, 3, {"loss": 0.25, "n": 7, "ll": np.array([1.0, 3.0])})
    write_scalars(writer, 4, {})  # nothing to write: no line
    sink = CluWriterSink(writer, close_writer=False)
    sink.write(5, {"acc": 0.5})
    sink.close()  # flushes only
    writer.write_scalars(6, {"after": 1.0})
    assert [r.getMessage() for r in caplog.records if r.name == "absl"] == [
        "[3] ll/max=3, ll/mean=2, ll/min=1, ll/n=2, ll/std=1, loss=0.25, n=7",
        "[5] acc=0.5",
        "[6] after=1",
    ]


def test_fractional_steps_and_writes_after_close_are_refused(metric_writers, caplog):
    writer = metric_writers.LoggingWriter()
    sink = CluWriterSink(writer)
    with pytest.raises(ValueError, match=r"non-negative whole number, got 1\.5"):
        sink.write(1.5, {"loss": 1.0})
    sink.close()
    sink.close()  # once
    with pytest.raises(ValueError, match=r"CluWriterSink.write\(\) after close"):
        sink.write(2, {"loss": 1.0})


def test_what_is_not_a_writer_is_named():
    with pytest.raises(TypeError, match=r"dict, which has no \['write_scalars', 'flush', 'close'"):
        CluWriterSink({})
    with pytest.raises(TypeError, match=r"has no \['write_scalars'\]; pass a clu metric writer"):
        write_scalars(object(), 0, {"a": 1.0})


def test_importing_the_integrations_imports_none_of_their_libraries():
    code = (
        "import sys\n"
        "import metricskit.integrations.clu, metricskit.integrations.mlflow\n"
        "import metricskit.integrations.orbax, metricskit.integrations.wandb\n"
        "print(sorted(m for m in ('clu', 'mlflow', 'orbax', 'tensorflow', 'wandb')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "[]"
