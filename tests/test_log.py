"""The metricskit logger: one object under every name, and the one empty metrics warn through."""

from __future__ import annotations

import logging

import metricskit as mk
import metricskit.functional
from metricskit import log


def test_every_name_is_the_same_logger():
    assert log.LOGGER is mk.LOGGER
    assert log.LOGGER is metricskit.functional.LOGGER
    assert log.LOGGER is logging.getLogger("metricskit")
    assert log.LOGGER.name == "metricskit"


def test_a_handler_on_the_named_logger_sees_an_empty_metric_warning(caplog):
    store = mk.MetricStore(default_log_modes=("mean",)).update({"loss": 2.0}).reset()
    with caplog.at_level(logging.WARNING, logger="metricskit"):
        assert store.compute() == {"loss_mean": 0.0}
    records = [r for r in caplog.records if r.name == "metricskit"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    assert "'loss'" in records[0].getMessage() and "'mean'" in records[0].getMessage()


def test_left_out_parts_are_reported_with_their_number(caplog):
    with caplog.at_level("WARNING", logger="metricskit"):
        log.warn_empty_parts("aggregate_metrics", "'ll' (log mode 'single_noreduce')", 1)
        log.warn_empty_parts("MetricStore.aggregate", "'x' (log mode 'single_noreduce')", 3)
    first, second = (r.getMessage() for r in caplog.records)
    assert first.startswith("aggregate_metrics: 1 part of metric 'll' (log mode 'single_noreduce')")
    assert second.startswith("MetricStore.aggregate: 3 parts of metric 'x'")
    assert "nonzero value or count" in second
