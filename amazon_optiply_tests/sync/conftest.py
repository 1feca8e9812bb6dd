"""Fixtures: a fresh sandbox seller per test, the platform's environment pointed at it."""

from pathlib import Path

import dagster as dg
import pytest

from amazon_optiply.sandbox.server import Sandbox
from amazon_optiply_tests.sync.harness import SyncHarness, point_at_sandbox, sandbox_config


@pytest.fixture
def harness(fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh sandbox (a new Optiply account), its own state folder and an in-memory Dagster instance.

    The runs are executed in process, so the instance needs no daemon and no DAGSTER_HOME: an ephemeral
    one keeps its runs and events in memory, which halves a sync's time against SQLite files.
    """
    sandbox = Sandbox(sandbox_config()).start()
    try:
        orders_start = point_at_sandbox(sandbox, fast_tmp_path, monkeypatch)
        with dg.DagsterInstance.ephemeral() as instance:
            yield SyncHarness(sandbox, instance, orders_start, fast_tmp_path)
    finally:
        sandbox.stop()


@pytest.fixture
def sandbox_env(fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The harness's sandbox seller and environment without a Dagster instance, for tests that bring their own.

    Yields (sandbox, orders_start). SYNC_STATE_DATABASE_URL points at SQLite under the test's folder until
    the test sets it.
    """
    sandbox = Sandbox(sandbox_config()).start()
    try:
        yield sandbox, point_at_sandbox(sandbox, fast_tmp_path, monkeypatch)
    finally:
        sandbox.stop()
