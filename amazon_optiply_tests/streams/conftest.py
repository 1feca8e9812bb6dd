"""Fixtures for the tap's other streams: sandbox sellers, the platform pointed at them, one instance each.

`h`: the usual seller (DE and US) with its partitions, for materializing assets one by one (API streams).
`harness`: DE, FR and US: a Pan-EU pool and a marketplace outside Europe (report streams, Pan-EU stock).
"""

from pathlib import Path

import pytest

from amazon_optiply.partitions import TENANT_MARKETPLACES
from amazon_optiply.sandbox.seller import SellerConfig
from amazon_optiply_tests.sync.harness import running_harness

STREAM_MARKETPLACES = ("DE", "FR", "US")


@pytest.fixture
def h(fast_tmp_path, monkeypatch):
    """A fresh sandbox seller, the platform pointed at it, an in-memory instance with every partition."""
    with running_harness(fast_tmp_path, monkeypatch) as harness:
        harness.instance.add_dynamic_partitions(
            TENANT_MARKETPLACES, [f"default/{m}" for m in harness.marketplaces]
        )
        yield harness


@pytest.fixture
def harness(fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    seller = SellerConfig(marketplaces=STREAM_MARKETPLACES, skus=150, orders_per_day=60, seed=11)
    with running_harness(fast_tmp_path, monkeypatch, seller) as harness:
        yield harness
