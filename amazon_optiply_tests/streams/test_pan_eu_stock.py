"""Pan-European FBA stock end to end: a DE + FR seller (and US) whose pool's units sit in both countries (and
some in Poland). With AFN inventory by country answering, each marketplace's products carry their own
country's units; when it ends FATAL, or with AMAZON_PAN_EU_STOCK=pool_in_main, today's rule (the pool in the
main marketplace) applies. Optiply's products are compared with the seller world's ground truth."""

from datetime import timedelta

import pandas as pd
import pytest

from amazon_optiply.marketplaces import MARKETPLACES
from amazon_optiply.sandbox.seller_streams import AFN_BY_COUNTRY, expected_products_by_country
from amazon_optiply.sync import sync_marketplace
from amazon_optiply.tenants import DEFAULT_TENANT, TenantRegistry
from amazon_optiply_tests.sync.ground_truth import assert_products_match_ground_truth, optiply_products

pytestmark = pytest.mark.slow  # a sync of three marketplaces and two of the pool's two

SYNCED = ["DE", "FR", "US"]
FR_ID, US_ID = MARKETPLACES["FR"].marketplace_id, MARKETPLACES["US"].marketplace_id


def by_country(world) -> pd.DataFrame:
    return pd.concat(
        [
            expected_products_by_country(world, "DE", None, "DE", SYNCED),
            expected_products_by_country(world, "FR", FR_ID, "DE", SYNCED),
            world.expected_products("US", US_ID),
        ],
        ignore_index=True,
    )


def pool_in_main(world) -> pd.DataFrame:
    """DE and FR by today's rule (US, outside the pool, is not synced again after the first cycle)."""
    return pd.concat(
        [world.expected_products("DE", None), world.expected_products("FR", FR_ID, counts_pooled_fba=False)],
        ignore_index=True,
    )


def sync_pool_marketplaces(harness) -> pd.DataFrame:
    """One sync of DE and FR; Optiply's products of both."""
    from amazon_optiply.definitions import defs

    tenant = TenantRegistry.load().tenant(DEFAULT_TENANT)
    for marketplace in ("DE", "FR"):
        result = sync_marketplace(defs(), tenant, marketplace, harness.instance)
        assert result.success, result.error
    products = optiply_products(harness)
    return products[~products["remoteId"].str.endswith(US_ID)]


def test_each_marketplace_carries_its_countrys_units_and_todays_rule_when_afn_by_country_fails(
    harness, monkeypatch
):
    world = harness.sandbox.world
    harness.sync()
    expected = by_country(world)
    assert_products_match_ground_truth(harness, expected)
    today = pool_in_main(world).set_index("remoteId")["stockLevel"]
    fr = expected[expected["remoteId"].str.endswith(FR_ID)].set_index("remoteId")["stockLevel"]
    assert (fr > today.reindex(fr.index)).sum() > 10, (
        "FR products would carry none of the pool by today's rule"
    )
    for marketplace in ("DE", "FR"):
        stock = harness.materialization_metadata(marketplace, "warehouse_stock")
        assert stock["stock_rule"] == "by_country" and stock["skus_by_country"] > 10, marketplace
    assert (
        harness.materialization_metadata("US", "warehouse_stock")["stock_rule"] == "pool_in_main_marketplace"
    )

    # AFN inventory by country ends FATAL: the sync still delivers, with the pool in DE again.
    harness.sandbox.amazon.forced_outcomes[AFN_BY_COUNTRY] = (
        "FATAL",
        "inventory by country is being rebuilt",
    )
    harness.sandbox.advance(timedelta(minutes=31))  # past the 30 minutes a report is read again
    held = sync_pool_marketplaces(harness)
    assert_products_match_ground_truth(harness, pool_in_main(world), held)
    for marketplace in ("DE", "FR"):
        afn = harness.materialization_metadata(marketplace, "afn_inventory_by_country")
        assert afn["available"] is False and "inventory by country is being rebuilt" in afn["reason"]
        stock = harness.materialization_metadata(marketplace, "warehouse_stock")
        assert stock["stock_rule"] == "pool_in_main_marketplace"
        assert "FATAL" in stock["stock_rule_reason"], stock["stock_rule_reason"]

    # The report answers again, but the tenant keeps the whole pool in its main marketplace.
    del harness.sandbox.amazon.forced_outcomes[AFN_BY_COUNTRY]
    monkeypatch.setenv("AMAZON_PAN_EU_STOCK", "pool_in_main")
    harness.sandbox.advance(timedelta(minutes=31))  # past the FATAL's cooldown
    held = sync_pool_marketplaces(harness)
    assert_products_match_ground_truth(harness, pool_in_main(world), held)
    assert harness.materialization_metadata("FR", "afn_inventory_by_country")["available"] is True
    stock = harness.materialization_metadata("FR", "warehouse_stock")
    assert stock["stock_rule"] == "pool_in_main_marketplace"
    assert stock["stock_rule_reason"] == "AMAZON_PAN_EU_STOCK is pool_in_main"
