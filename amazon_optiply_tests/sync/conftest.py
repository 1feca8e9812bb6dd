"""Fixtures: a fresh sandbox seller per test, the platform's environment pointed at it."""

from pathlib import Path

import pytest

from amazon_optiply.sandbox.server import Sandbox
from amazon_optiply_tests.sync.harness import point_at_sandbox, running_harness, sandbox_config


@pytest.fixture
def harness(fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The usual seller (DE and US) on a fresh sandbox, with its own state folder and Dagster instance."""
    with running_harness(fast_tmp_path, monkeypatch) as harness:
        yield harness


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
