"""Fixtures: a fresh sandbox seller per test (DE, FR and US: a Pan-EU pool and a marketplace outside Europe)."""

from pathlib import Path

import pytest

from amazon_optiply.sandbox.seller import SellerConfig
from amazon_optiply_tests.sync.harness import running_harness

STREAM_MARKETPLACES = ("DE", "FR", "US")


@pytest.fixture
def harness(fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    seller = SellerConfig(marketplaces=STREAM_MARKETPLACES, skus=150, orders_per_day=60, seed=11)
    with running_harness(fast_tmp_path, monkeypatch, seller) as harness:
        yield harness
