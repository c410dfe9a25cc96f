"""Shared test settings: the hypothesis profile (derandomized in CI) and fixtures."""

from __future__ import annotations

import os
from pathlib import Path

# Multi-device tests need 8 CPU devices; the flag must be set before JAX is imported.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

import logging

import hypothesis
import numpy as np
import pytest

hypothesis.settings.register_profile("ci", derandomize=True, deadline=None, max_examples=50)
hypothesis.settings.register_profile("dev", deadline=None, max_examples=50)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


# The layers above the engine are "extended": the older-JAX tox envs leave them out. Of them,
# the "integration" ones (demo, sinks, integrations, docs pages, benchmarks) exercise other
# libraries, not numerics: the x64 env leaves those out too.
_INTEGRATION = (
    "test_demo",
    "test_sinks",
    "test_benchmarks",
    "test_integrations_",
    "test_interop_",
)
_EXTENDED = ("test_tasks_", *_INTEGRATION)
_SKIPPED_MODULES = {"not extended": _EXTENDED, "not integration": _INTEGRATION}


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With ``-m "not extended"`` (or ``"not integration"``) those modules are not even
    imported (their libraries, e.g. TensorFlow for clu's writers, are installed where they
    run)."""
    skipped = _SKIPPED_MODULES.get(config.option.markexpr, ())
    if skipped and collection_path.name.startswith(skipped):
        return True
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name.startswith(_EXTENDED):
            item.add_marker(pytest.mark.extended)
        if item.path.name.startswith(_INTEGRATION):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261129)


class _CompileLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.names: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Compiling "):
            self.names.append(message.split()[1])


@pytest.fixture
def compiles():
    """The names of the functions JAX compiles while the fixture is active."""
    import jax  # after XLA_FLAGS is set above

    handler = _CompileLog()
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    with jax.log_compiles(True):
        yield handler.names
    logger.removeHandler(handler)
