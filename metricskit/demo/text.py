"""The demo's data: real text that ships with Python itself, read from the running interpreter.

The corpus is the source of a fixed list of pure-Python standard-library modules, as bytes
(a byte-level vocabulary of 256), so the demo needs no download and every machine with Python
has it. The last tenth is held out for evaluation.
"""

from __future__ import annotations

import importlib.util

import numpy as np

__all__ = ["MODULES", "corpus", "eval_windows", "train_windows"]

# Modules present, as .py source, in every CPython from 3.10 on.
MODULES = (
    "argparse",
    "textwrap",
    "difflib",
    "calendar",
    "fractions",
    "pprint",
    "shlex",
    "string",
    "heapq",
    "bisect",
    "dataclasses",
    "functools",
)


def corpus(max_bytes: int = 1 << 20) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The standard library's source as ``uint8`` bytes, split 90/10 into train and eval.

    Args:
        max_bytes: At most this many bytes in all.

    Returns:
        ``(train, eval, modules)``: two ``uint8`` arrays and the modules read.

    Raises:
        RuntimeError: If this Python ships no source for the modules (e.g. a build with only
            ``.pyc`` files), naming them.
    """
    parts, used = [], []
    for name in MODULES:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        if origin is None or not origin.endswith(".py"):
            continue
        with open(origin, "rb") as f:
            parts.append(f.read())
        used.append(name)
    data = np.frombuffer(b"\n".join(parts)[:max_bytes], np.uint8)
    if data.size < 20_000:
        raise RuntimeError(
            f"the demo reads the source of the standard-library modules {list(MODULES)}, "
            "but this Python ships too little of it; install the Python source files"
        )
    cut = int(data.size * 0.9)
    return data[:cut], data[cut:], used


def train_windows(
    data: np.ndarray, rng: np.random.Generator, batch: int, length: int
) -> np.ndarray:
    """``(batch, length)`` random windows of ``data`` (``int32``)."""
    starts = rng.integers(0, data.size - length, size=batch)
    windows: np.ndarray = data[starts[:, None] + np.arange(length)]
    return windows.astype(np.int32)


def eval_windows(data: np.ndarray, count: int, length: int) -> np.ndarray:
    """``(count, length)`` non-overlapping windows from the start of ``data`` (``int32``)."""
    count = min(count, data.size // length)
    return data[: count * length].reshape(count, length).astype(np.int32)
