"""Where logged metrics go: JSON lines, CSV, TensorBoard, a console table, or your own sink.

A sink is anything with ``write(step, metrics)`` and ``close()`` (the :class:`Sink`
protocol); ``metrics`` is what :meth:`MetricStore.compute <metricskit.MetricStore.compute>`
returns. Scalars are written as they are. Arrays (the ``noreduce`` modes) are never dropped:
:func:`summarize` turns each into ``name/mean``, ``name/std``, ``name/min``, ``name/max`` and
``name/n`` (and ``name/weighted_mean`` for ``(values, counts)``), which every built-in sink
writes; :class:`JsonlSink` can also keep the full arrays.

Only :class:`JsonlSink`, :class:`CsvSink` and :class:`ConsoleSink` are standard library;
:class:`TensorBoardSink` needs the ``tensorboard`` extra (``pip install
"metricskit[tensorboard]"``) and imports it when created.

Examples:
    >>> import io
    >>> from metricskit.sinks import JsonlSink, read_jsonl
    >>> buffer = io.StringIO()
    >>> sink = JsonlSink(buffer)
    >>> sink.write(10, {"loss": 0.5, "acc": 0.75})
    >>> _ = buffer.seek(0)
    >>> read_jsonl(buffer)
    [{'step': 10, 'loss': 0.5, 'acc': 0.75}]
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any, Protocol, runtime_checkable

import numpy as np

from metricskit.summary import format_table, json_value, summarize
from metricskit.tasks.sketch import Histogram

__all__ = [
    "ConsoleSink",
    "CsvSink",
    "JsonlSink",
    "MultiSink",
    "Sink",
    "TensorBoardSink",
    "checked_step",
    "format_table",
    "make_sink",
    "read_csv",
    "read_jsonl",
    "require",
    "summarize",
]


def checked_step(step: Any, sink: str, closed: bool = False) -> int:
    """A sink's ``step`` as an ``int``, refusing what a tracking backend would silently
    change (a fractional step is truncated or merged into another row) and writes after
    ``close()``.

    Raises:
        ValueError: After ``close()``, or for a step that is not a non-negative whole number.
    """
    if closed:
        raise ValueError(f"{sink}.write() after close(): make a new sink")
    if (
        isinstance(step, bool)
        or not isinstance(step, int | float | np.integer | np.floating)
        or not float(step).is_integer()
        or step < 0
    ):
        raise ValueError(f"{sink}: the step must be a non-negative whole number, got {step!r}")
    return int(step)


def require(module: str, extra: str, what: str) -> Any:
    """Import an optional dependency, or say which extra installs it.

    Args:
        module: The module to import.
        extra: The metricskit extra that installs it.
        what: What needs it, for the message.

    Returns:
        The module.

    Raises:
        ImportError: Naming the extra to install.

    Examples:
        >>> from metricskit.sinks import require
        >>> require("json", "demo", "the demo").dumps(1)
        '1'
    """

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"{what} needs {module!r}, which is not installed; install it with "
            f'pip install "metricskit[{extra}]"'
        ) from e


@runtime_checkable
class Sink(Protocol):
    """What the loop writes logged metrics to."""

    def write(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Record the metrics logged at ``step``."""

    def close(self) -> None:
        """Flush and release the sink's resources."""


def _open(target: str | os.PathLike[str] | IO[str], mode: str) -> tuple[IO[str], bool]:
    """A text stream for ``target`` and whether this sink owns it (opened it)."""
    if isinstance(target, str | os.PathLike):
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        return open(target, mode, newline="" if "w" in mode or "a" in mode else None), True
    return target, False


class JsonlSink:
    """One JSON object per write: ``{"step": step, name: value, ...}`` (JSON lines).

    Args:
        target: A path (created, with its folders) or an open text stream.
        arrays: ``"summary"`` (default) writes :func:`summarize`'s statistics for arrays;
            ``"full"`` writes them as JSON lists as well (under their own names).
        append: Append to an existing file instead of replacing it (when resuming a run).

    Non-finite floats are written as the strings ``"nan"``, ``"inf"``, ``"-inf"`` (JSON has
    no literal for them); :func:`read_jsonl` turns them back into floats.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | IO[str],
        arrays: str = "summary",
        append: bool = False,
    ):
        if arrays not in ("summary", "full"):
            raise ValueError(f"arrays={arrays!r}: use 'summary' or 'full'")
        self.arrays = arrays
        self._stream, self._owned = _open(target, "a" if append else "w")

    def write(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Append one line for ``step``."""
        record: dict[str, Any] = {"step": int(step)}
        record.update({k: json_value(v) for k, v in summarize(metrics).items()})
        if self.arrays == "full":
            record.update(
                {
                    k: json_value(v)
                    for k, v in metrics.items()
                    if isinstance(v, tuple | Histogram) or np.ndim(v)
                }
            )
        self._stream.write(json.dumps(record) + "\n")
        self._stream.flush()

    def close(self) -> None:
        """Close the file (a stream passed in is left open)."""
        if self._owned:
            self._stream.close()


def _number(x: Any) -> Any:
    if isinstance(x, str) and x in ("nan", "inf", "-inf"):
        return float(x)
    if isinstance(x, list):
        return [_number(v) for v in x]
    return x


def read_jsonl(source: str | os.PathLike[str] | IO[str]) -> list[dict[str, Any]]:
    """The records of a JSON-lines file written by :class:`JsonlSink`.

    Args:
        source: A path or an open text stream.

    Returns:
        One dict per line, with ``"nan"``/``"inf"`` strings turned back into floats.

    Raises:
        ValueError: For a line that is not a JSON object with a numeric ``"step"``, naming
            the file's line number.
    """
    stream, owned = _open(source, "r")
    records = []
    try:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"line {number} is not JSON ({e.msg})") from None
            step = record.get("step") if isinstance(record, dict) else None
            if not isinstance(step, int | float) or isinstance(step, bool):
                raise ValueError(
                    f"line {number} is not a record of a metrics.jsonl (a JSON object with a "
                    "numeric 'step')"
                )
            records.append({k: _number(v) for k, v in record.items()})
    finally:
        if owned:
            stream.close()
    return records


class CsvSink:
    """A CSV table: a ``step`` column and one column per summarized metric.

    Args:
        target: A path (created, with its folders) or an open text stream.

    A metric that first appears after the first write adds a column: a file target is
    rewritten with the wider header (earlier rows get empty cells), so nothing is dropped.
    A stream target cannot be rewritten, so a new metric raises ``ValueError`` there.
    """

    def __init__(self, target: str | os.PathLike[str] | IO[str]):
        self._path = os.fspath(target) if isinstance(target, str | os.PathLike) else None
        self._stream, self._owned = _open(target, "w")
        self._columns: list[str] = []
        self._rows: list[dict[str, Any]] = []

    def write(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Append one row for ``step``."""
        row: dict[str, Any] = {"step": int(step), **summarize(metrics)}
        new = [k for k in row if k not in self._columns]
        if new and self._columns:
            if self._path is None:
                raise ValueError(
                    f"metrics {new} appeared after the CSV header was written to a stream; "
                    "pass a path to CsvSink (it rewrites the file), or log every metric from "
                    "the first step"
                )
            self._columns += new
            self._stream.close()
            self._stream = open(self._path, "w", newline="")  # noqa: SIM115 - closed in close()
            writer = csv.DictWriter(self._stream, self._columns)
            writer.writeheader()
            writer.writerows(self._rows)
        elif new:
            self._columns = list(row)
            csv.DictWriter(self._stream, self._columns).writeheader()
        csv.DictWriter(self._stream, self._columns).writerow(row)
        self._rows.append(row)
        self._stream.flush()

    def close(self) -> None:
        """Close the file (a stream passed in is left open)."""
        if self._owned or self._path is not None:
            self._stream.close()


def _parse_number(text: str) -> float | int:
    try:
        return int(text)
    except ValueError:
        return float(text)


def read_csv(source: str | os.PathLike[str] | IO[str]) -> list[dict[str, float | int]]:
    """The rows of a CSV file written by :class:`CsvSink`, as numbers (empty cells left out).

    Args:
        source: A path or an open text stream.

    Returns:
        One dict per row: integers written as integers come back as ``int``, the rest as
        ``float`` (``nan`` and ``inf`` included).
    """
    stream, owned = _open(source, "r")
    try:
        return [
            {k: _parse_number(v) for k, v in row.items() if v != ""}
            for row in csv.DictReader(stream)
        ]
    finally:
        if owned:
            stream.close()


class TensorBoardSink:
    """Scalars for TensorBoard, one event file per run, through ``tensorboardX``.

    Args:
        logdir: The run's folder.

    Raises:
        ImportError: Without the ``tensorboard`` extra (``pip install
            "metricskit[tensorboard]"``).
    """

    def __init__(self, logdir: str | os.PathLike[str]):
        tensorboardx = require("tensorboardX", "tensorboard", "TensorBoardSink")
        self._writer = tensorboardx.SummaryWriter(os.fspath(logdir))

    def write(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Add every summarized metric as a scalar at ``step``, and histograms
        (:class:`metricskit.tasks.Histogram`) as TensorBoard histograms."""
        for name, value in summarize(metrics).items():
            self._writer.add_scalar(name, value, int(step))
        for name, value in metrics.items():
            if isinstance(value, Histogram) and int(np.sum(value.counts)):
                edges, counts = np.asarray(value.edges), np.asarray(value.counts)
                centres = (edges[:-1] + edges[1:]) / 2
                self._writer.add_histogram_raw(
                    name,
                    min=float(edges[0]),
                    max=float(edges[-1]),
                    num=int(counts.sum()),
                    sum=float(np.sum(centres * counts)),
                    sum_squares=float(np.sum(centres**2 * counts)),
                    bucket_limits=edges[1:].tolist(),
                    bucket_counts=counts.tolist(),
                    global_step=int(step),
                )
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()


class ConsoleSink:
    """A table of the summarized metrics per write, on a text stream.

    Args:
        stream: Where to print (default ``sys.stdout`` at the time of each write).
    """

    def __init__(self, stream: IO[str] | None = None):
        self._stream = stream

    def write(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Print the table of ``step``."""
        stream = self._stream or sys.stdout
        table = format_table(list(summarize(metrics).items()), title=f"step {int(step)}")
        stream.write(table + "\n")
        stream.flush()

    def close(self) -> None:
        """Nothing to release."""


class MultiSink:
    """Several sinks behind one: each write goes to all of them, in order.

    Args:
        sinks: The sinks.
    """

    def __init__(self, sinks: Iterable[Sink]):
        self.sinks = list(sinks)

    def write(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Write to every sink."""
        for sink in self.sinks:
            sink.write(step, metrics)

    def close(self) -> None:
        """Close every sink (all of them, even if one fails; the first error is raised)."""
        errors = []
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as e:  # close the others first
                errors.append(e)
        if errors:
            raise errors[0]


_MAKERS: dict[str, Callable[[str], Sink]] = {
    "jsonl": lambda folder: JsonlSink(os.path.join(folder, "metrics.jsonl")),
    "csv": lambda folder: CsvSink(os.path.join(folder, "metrics.csv")),
    "tensorboard": lambda folder: TensorBoardSink(folder),
    "console": lambda folder: ConsoleSink(),
}

SINKS = tuple(_MAKERS)
"""The names :func:`make_sink` knows (the demo's ``--sinks`` choices): one entry each."""


def make_sink(name: str, folder: str | os.PathLike[str]) -> Sink:
    """A built-in sink by name, writing into a run's folder.

    Args:
        name: ``"jsonl"`` (``metrics.jsonl``), ``"csv"`` (``metrics.csv``),
            ``"tensorboard"`` (event files in the folder) or ``"console"``.
        folder: The run's folder.

    Returns:
        The sink.

    Raises:
        ValueError: For an unknown name.
    """
    make = _MAKERS.get(name)
    if make is not None:
        return make(os.fspath(folder))
    raise ValueError(f"unknown sink {name!r}; use one of {list(SINKS)}")
