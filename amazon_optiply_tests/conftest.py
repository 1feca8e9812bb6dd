"""Test-wide settings, folders and order."""

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.pop("SP_API_DEFAULT_MARKETPLACE", None)  # python-amazon-sp-api would override every marketplace

# Memory-backed folders where the machine has them: the sync state and Dagster's storage are SQLite files
# that commit on every write, and on disk each commit waits for the device.
IN_MEMORY_FOLDERS = Path("/dev/shm")


@pytest.fixture
def fast_tmp_path(tmp_path: Path) -> Iterator[Path]:
    """A folder of this test's own, in memory when the machine has a tmpfs, else `tmp_path`."""
    if not IN_MEMORY_FOLDERS.is_dir() or not os.access(IN_MEMORY_FOLDERS, os.W_OK):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=IN_MEMORY_FOLDERS, prefix="amazon-optiply-test-") as folder:
        yield Path(folder)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first, so that with several workers the longest ones do not start last."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
