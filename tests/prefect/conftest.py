"""One Prefect test harness per session, quiet, with the heartbeat and task-run recorder off.

The settings must be in the environment before prefect is imported (verified with Prefect 3.9).
"""

from __future__ import annotations

import logging
import os

os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED"] = "false"

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
from prefect.settings import temporary_settings  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

import headwater as hw  # noqa: E402
from headwater.adapters.prefect import HeadwaterTracker  # noqa: E402
from headwater.observe import forget_clients  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    with (
        temporary_settings(updates={"flows.heartbeat_frequency": None}),
        prefect_test_harness(server_startup_timeout=60),
    ):
        yield


@pytest.fixture(autouse=True)
def _close_tracker_clients() -> Iterator[None]:
    yield
    forget_clients()


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def headwater_log() -> Iterator[list[logging.LogRecord]]:
    """The warnings headwater logs during the test. (Not caplog: Prefect's logging set-up, run
    when the harness starts, replaces the root handlers that caplog relies on.)"""
    handler, logger = _Collect(), logging.getLogger("headwater")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    yield handler.records
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def store(client: hw.Client) -> hw.Client:
    """The test's store (SQLite, then PostgreSQL), where `tracker` records: the name every
    orchestrator suite gives it."""
    return client


@pytest.fixture
def tracker(store_uri: str) -> HeadwaterTracker:
    """A tracker writing to this test's store (SQLite, then PostgreSQL)."""
    return HeadwaterTracker(uri=store_uri)
