"""Three marketplaces, the main one named by the Seller Central URL, through `python -m amazon_optiply.sync`.

A separate process, because the marketplace partitions are fixed when the definitions load.
"""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from amazon_optiply.marketplaces import MARKETPLACES
from amazon_optiply.sandbox.server import Sandbox
from amazon_optiply_tests.sync.ground_truth import (
    assert_orders_match_ground_truth,
    assert_products_match_ground_truth,
)
from amazon_optiply_tests.sync.harness import sandbox_config

CODES = ("DE", "FR", "US")

pytestmark = pytest.mark.slow  # a sync process of its own


def test_main_marketplace_from_seller_central_url_and_pan_eu_stock_counted_once(fast_tmp_path: Path):
    config = sandbox_config(marketplaces=CODES, orders_per_day=40, seed=5)
    sandbox = Sandbox(config).start()
    try:
        orders_start = config.seller.origin - timedelta(days=2)
        (fast_tmp_path / "dagster").mkdir()
        env = {
            **os.environ,
            **sandbox.env(),
            "AMAZON_MARKETPLACES": ",".join(CODES),
            "AMAZON_SELLER_CENTRAL_URL": "https://sellercentral.amazon.fr/home",
            # Today's rule, the whole pool in the main marketplace (by country: streams/test_pan_eu_stock.py).
            "AMAZON_PAN_EU_STOCK": "pool_in_main",
            "ORDERS_START": orders_start.isoformat(),
            "OPTIPLY_MIN_WRITE_INTERVAL_SECONDS": "0",
            "SYNC_STATE_DATABASE_URL": f"sqlite:///{fast_tmp_path / 'state.sqlite'}",
            "ASSET_STORAGE_PATH": str(fast_tmp_path / "assets"),
            "DAGSTER_HOME": str(fast_tmp_path / "dagster"),
        }
        done = subprocess.run(
            [sys.executable, "-m", "amazon_optiply.sync"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
        assert [line.split(":")[0] for line in done.stdout.splitlines()] == [f"default/{c}" for c in CODES]

        world = sandbox.world
        expected = pd.concat(
            [
                # FR is the main marketplace: plain SKUs, and it carries the Pan-EU FBA pool.
                world.expected_products("FR", None),
                # DE draws from the same pool: its FBA units are FR's, so DE keeps its listing quantity.
                world.expected_products("DE", MARKETPLACES["DE"].marketplace_id, counts_pooled_fba=False),
                world.expected_products("US", MARKETPLACES["US"].marketplace_id),
            ],
            ignore_index=True,
        )
        harness = SimpleNamespace(sandbox=sandbox)
        products = assert_products_match_ground_truth(harness, expected)
        de_with_pool = world.expected_products("DE", MARKETPLACES["DE"].marketplace_id)
        de_without = expected[expected["remoteId"].str.endswith(MARKETPLACES["DE"].marketplace_id)]
        assert (de_with_pool["stockLevel"].to_numpy() != de_without["stockLevel"].to_numpy()).sum() > 20
        now = sandbox.clock.now()
        assert_orders_match_ground_truth(
            harness, products, {c: world.expected_sell_orders(c, orders_start, now) for c in CODES}
        )
    finally:
        sandbox.stop()
