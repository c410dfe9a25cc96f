"""Curves of a run: metric names grouped into panels, and one PNG of every plottable family."""

from __future__ import annotations

import math
import struct

import pytest

from metricskit.plot import NothingToPlotError, families, plot_records

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """(width, height) of a PNG file, after checking its signature and IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == PNG and data[12:16] == b"IHDR" and data.endswith(b"IEND\xaeB`\x82")
    return struct.unpack(">II", data[16:24])


def test_statistics_and_eval_names_join_their_family_in_first_seen_order():
    names = [
        "loss_mean",
        "loss_std",
        "loss_max",
        "eval_loss",
        "lat_p50",
        "lat/p99.9",
        "ll/n",
        "ll/min",
        "tokens_per_s",
        "max",
    ]
    assert families(names) == {
        "loss": [
            ("train", "mean", "loss_mean"),
            ("train", "std", "loss_std"),
            ("train", "max", "loss_max"),
            ("eval", "value", "eval_loss"),
        ],
        "lat": [("train", "p50", "lat_p50"), ("train", "p99.9", "lat/p99.9")],
        "ll": [("train", "n", "ll/n"), ("train", "min", "ll/min")],
        "tokens_per_s": [("train", "value", "tokens_per_s")],
        "max": [("train", "value", "max")],
    }
    assert families([]) == {}


def records():
    return [
        {
            "step": s,
            "loss_mean": 1.0 / (s + 1),
            "loss_std": 0.1,
            "loss_max": 2.0,
            "eval_loss": 0.9 - 0.1 * s,
            "lat_p50": 3.0,
            "lat_p90": 5.0 + s,
            "ll/n": 4,
            "note": "text",
            "flag": True,
            "acc": math.nan if s == 1 else 0.5,
        }
        for s in range(3)
    ] + [{"step": 3, "lr": 1e-3, "count/n": 1}, {"step": 4, "count/n": 2}]


def test_plot_records_writes_a_png_of_the_families_with_two_points(tmp_path):
    out = tmp_path / "sub" / "curves.png"
    assert plot_records(records(), out, title="run") == ["loss", "lat", "acc"]
    assert png_size(out) == (1188, 270)  # three panels in a row, 4.4 x 3.0 inches each at 90 dpi
    some = tmp_path / "loss.png"
    assert plot_records(records(), some, metrics=["eval_loss", "loss_mean"]) == ["loss"]
    assert png_size(some) == (396, 270)


def test_nothing_to_plot_and_missing_metrics_are_value_errors(tmp_path):
    assert issubclass(NothingToPlotError, ValueError)
    out = tmp_path / "x.png"
    with pytest.raises(NothingToPlotError, match="at most one point"):
        plot_records([{"step": 0, "loss": 1.0, "acc": 0.5}], out)
    with pytest.raises(NothingToPlotError, match="at most one point"):
        plot_records([{"step": 0, "n/n": 1}, {"step": 1, "n/n": 2}], out)
    with pytest.raises(NothingToPlotError, match="no numeric metric"):
        plot_records([{"step": 0, "note": "a", "ok": True}, {"step": 1, "ok": False}], out)
    with pytest.raises(NothingToPlotError, match="no numeric metric"):
        plot_records([], out)
    with pytest.raises(ValueError, match=r"\['nope'\] are not in the log") as e:
        plot_records(records(), out, metrics=["loss_mean", "nope"])
    assert not isinstance(e.value, NothingToPlotError) and not out.exists()
