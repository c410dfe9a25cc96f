"""Sinks: what is written reads back, arrays are summarized (never dropped), extras are named."""

from __future__ import annotations

import io
import math
import struct
import sys

import numpy as np
import pytest

import metricskit as mk
from metricskit.sinks import (
    ConsoleSink,
    CsvSink,
    JsonlSink,
    MultiSink,
    Sink,
    TensorBoardSink,
    make_sink,
    read_csv,
    read_jsonl,
    require,
    summarize,
)


def logs(rng):
    """Three logs as MetricStore.compute returns them: scalars, arrays and (values, counts)."""
    out = []
    for _ in range(3):
        ll, counts = rng.normal(size=5), rng.integers(1, 9, size=5)
        out.append(
            {
                "loss_mean": float(rng.normal()),
                "tokens": int(rng.integers(0, 1000)),
                "per_sample": rng.normal(size=7).astype(np.float32),
                "ll_single_noreduce_wcount": (ll, counts),
            }
        )
    return out


def expected_summary(metrics):
    out = {}
    for name, value in metrics.items():
        if isinstance(value, tuple):
            values, counts = (np.asarray(v, np.float64) for v in value)
            out.update(array_stats(name, values))
            out[f"{name}/weighted_mean"] = values.sum() / counts.sum()
        elif np.ndim(value):
            out.update(array_stats(name, np.asarray(value, np.float64)))
        else:
            out[name] = value
    return out


def array_stats(name, a):
    return {
        f"{name}/mean": a.mean(),
        f"{name}/std": a.std(),
        f"{name}/min": a.min(),
        f"{name}/max": a.max(),
        f"{name}/n": a.size,
    }


def assert_records_close(got, want):
    assert set(got) == set(want)
    for key, value in want.items():
        assert type(got[key]) is type(value) or isinstance(value, float | np.floating), key
        np.testing.assert_allclose(got[key], value, rtol=1e-12, err_msg=key)


def test_summarize_matches_numpy_and_drops_nothing(rng):
    for metrics in logs(rng):
        got = summarize(metrics)
        assert_records_close(got, expected_summary(metrics))
        assert all(isinstance(v, int | float) for v in got.values())
    assert summarize({"empty": np.zeros(0)}) == {"empty/n": 0}
    assert summarize({"flag": np.bool_(True), "n": np.int64(3)}) == {"flag": 1, "n": 3}


@pytest.mark.parametrize("arrays", ["summary", "full"])
def test_jsonl_round_trip(tmp_path, rng, arrays):
    written = logs(rng)
    written[1]["loss_mean"] = float("nan")
    path = tmp_path / "run" / "metrics.jsonl"
    sink = JsonlSink(path, arrays=arrays)
    for step, metrics in enumerate(written):
        sink.write(10 * step, metrics)
    sink.close()
    records = read_jsonl(path)
    assert [r["step"] for r in records] == [0, 10, 20]
    for record, metrics in zip(records, written, strict=True):
        want = expected_summary(metrics)
        if arrays == "full":
            np.testing.assert_array_equal(record.pop("per_sample"), metrics["per_sample"])
            values, counts = record.pop("ll_single_noreduce_wcount")
            np.testing.assert_array_equal(values, metrics["ll_single_noreduce_wcount"][0])
            np.testing.assert_array_equal(counts, metrics["ll_single_noreduce_wcount"][1])
        record.pop("step")
        if math.isnan(want["loss_mean"]):
            assert math.isnan(record.pop("loss_mean"))
            want.pop("loss_mean")
        assert_records_close(record, want)
    sink = JsonlSink(path, append=True)  # resuming a run appends
    sink.write(30, {"loss_mean": 1.0})
    sink.close()
    assert [r["step"] for r in read_jsonl(path)] == [0, 10, 20, 30]


def test_jsonl_on_a_stream_leaves_it_open():
    stream = io.StringIO()
    sink = JsonlSink(stream)
    sink.write(1, {"a": 2})
    sink.close()
    assert stream.getvalue() == '{"step": 1, "a": 2}\n'
    with pytest.raises(ValueError, match="arrays='all'"):
        JsonlSink(stream, arrays="all")


def test_csv_round_trip_with_a_metric_that_appears_later(tmp_path, rng):
    written = logs(rng)
    written[2]["late"] = 4.5
    path = tmp_path / "metrics.csv"
    sink = CsvSink(path)
    for step, metrics in enumerate(written):
        sink.write(step, metrics)
    sink.close()
    rows = read_csv(path)
    assert [r["step"] for r in rows] == [0, 1, 2]
    for row, metrics in zip(rows, written, strict=True):
        row.pop("step")
        assert_records_close(row, expected_summary(metrics))
    stream = io.StringIO()
    sink = CsvSink(stream)
    sink.write(0, {"a": 1.0})
    with pytest.raises(ValueError, match=r"\['b'\] appeared after the CSV header"):
        sink.write(1, {"a": 1.0, "b": 2.0})


def read_tensorboard_scalars(folder):
    """Parse tensorboardX event files (TFRecord framing) into {tag: [(step, value)]}."""
    from tensorboardX.proto import event_pb2

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_tensorboard_round_trip(tmp_path, rng):
    written = logs(rng)
    sink = make_sink("tensorboard", tmp_path)
    assert isinstance(sink, TensorBoardSink)
    for step, metrics in enumerate(written):
        sink.write(step, metrics)
    sink.close()
    scalars = read_tensorboard_scalars(tmp_path)
    want = [expected_summary(m) for m in written]
    assert set(scalars) == set(want[0])
    for tag, points in scalars.items():
        assert [s for s, _ in points] == [0, 1, 2]
        np.testing.assert_allclose(
            [v for _, v in points], [w[tag] for w in want], rtol=1e-6, err_msg=tag
        )


def test_console_table_round_trip(rng):
    stream = io.StringIO()
    metrics = logs(rng)[0]
    ConsoleSink(stream).write(5, metrics)
    title, rule, *lines = stream.getvalue().splitlines()
    assert title == "step 5" and set(rule) == {"-"}
    table = {name: float(value) for name, value in (line.split() for line in lines)}
    want = expected_summary(metrics)
    assert list(table) == list(want)
    np.testing.assert_allclose(list(table.values()), list(want.values()), rtol=5e-6)  # 6 digits


def test_a_user_sink_fits_the_protocol_and_multisink_closes_all(tmp_path):
    class Recorder:
        def __init__(self):
            self.seen, self.closed = [], False

        def write(self, step, metrics):
            self.seen.append((step, dict(metrics)))

        def close(self):
            self.closed = True

    mine = Recorder()
    assert isinstance(mine, Sink)
    jsonl = make_sink("jsonl", tmp_path)
    both = MultiSink([jsonl, mine])
    both.write(3, {"x": 1.5})
    both.close()
    assert mine.seen == [(3, {"x": 1.5})] and mine.closed
    assert read_jsonl(tmp_path / "metrics.jsonl") == [{"step": 3, "x": 1.5}]
    with pytest.raises(ValueError, match="unknown sink 'parquet'"):
        make_sink("parquet", tmp_path)


def test_store_results_go_straight_into_a_sink(tmp_path):
    store = mk.MetricStore(default_log_modes=("mean", "single_noreduce"))
    store = store.update({"loss": np.array([1.0, 2.0, 4.0], np.float32)})
    sink = JsonlSink(tmp_path / "m.jsonl")
    sink.write(1, store.compute())
    sink.close()
    (record,) = read_jsonl(tmp_path / "m.jsonl")
    assert record["loss_single_noreduce/n"] == 3 and record["loss_single_noreduce/max"] == 4.0
    assert record["loss_mean/n"] == 3  # an elementwise mean is an array too: summarized
    np.testing.assert_allclose(record["loss_mean/mean"], 7 / 3, rtol=1e-7)


def test_a_missing_extra_is_named(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match=r'pip install "metricskit\[tensorboard\]"'):
        TensorBoardSink(tmp_path)
    with pytest.raises(ImportError, match=r"metricskit\[demo\]"):
        require("no_such_module_here", "demo", "the demo")
