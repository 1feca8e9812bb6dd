"""Fixtures: the usual sandbox seller (DE and US) with its partitions, for materializing assets one by one."""

import pytest

from amazon_optiply.partitions import TENANT_MARKETPLACES
from amazon_optiply_tests.sync.harness import running_harness


@pytest.fixture
def h(fast_tmp_path, monkeypatch):
    """A fresh sandbox seller, the platform pointed at it, an in-memory instance with every partition."""
    with running_harness(fast_tmp_path, monkeypatch) as harness:
        harness.instance.add_dynamic_partitions(
            TENANT_MARKETPLACES, [f"default/{m}" for m in harness.marketplaces]
        )
        yield harness
