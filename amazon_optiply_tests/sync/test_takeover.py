"""Taking over an Optiply account the old Amazon integration fed: its products (keyed by ASIN) become the
listings' products, its sell orders are never posted again. Optiply is compared with the ground truth."""

from datetime import timedelta

import pandas as pd
import pytest

from amazon_optiply.marketplaces import MARKETPLACES
from amazon_optiply.sandbox.old_integration import seed_old_integration
from amazon_optiply.sandbox.report_documents import LISTINGS_ALL
from amazon_optiply.sandbox.seller import ELIGIBLE_ORDER_STATUSES
from amazon_optiply.sandbox.server import OPTIPLY_COUPLING_ID
from amazon_optiply.transforms.optiply import existing_products_frame, take_over_successors
from amazon_optiply_tests.sync.ground_truth import (
    assert_orders_match_ground_truth,
    assert_products_match_ground_truth,
    optiply_products,
)
from amazon_optiply_tests.sync.harness import MAIN, MARKETPLACE_CODES
from amazon_optiply_tests.sync.test_bad_input import set_field, tamper_listings


def our_remote_id(sku: str, marketplace: str) -> str:
    return sku if marketplace == MAIN else f"{sku}_{MARKETPLACES[marketplace].marketplace_id}"


def shared_asins(harness, marketplace: str) -> dict[str, list[str]]:
    """ASIN -> its active SKUs, for ASINs with several."""
    listings = harness.sandbox.world.listings[marketplace]
    skus = listings[listings["status"] == "Active"].groupby("asin")["sku"].apply(sorted)
    return skus[skus.map(len) > 1].to_dict()


@pytest.mark.slow  # a long end-to-end test: two cycles
def test_first_sync_takes_over_the_old_integrations_products_and_never_posts_its_orders_again(harness):
    world, optiply = harness.sandbox.world, harness.sandbox.optiply
    now = harness.sandbox.clock.now()
    orders_start = harness.orders_start.to_pydatetime()
    old = seed_old_integration(
        world,
        optiply,
        OPTIPLY_COUPLING_ID,
        MAIN,
        orders_since=orders_start - timedelta(days=1),
        stopped_at=now - timedelta(hours=12),
    )
    old_orders = optiply.snapshot()["sellOrders"]
    # What would make the test prove nothing: no ASIN with several SKUs in either marketplace, or none
    # whose old product names a SKU other than the lowest.
    for code in MARKETPLACE_CODES:
        assert shared_asins(harness, code), code
    assert any(
        old.skus[asin] != skus[0] for asin, skus in shared_asins(harness, MAIN).items() if asin in old.skus
    )
    # One listing is unusable in the first sync (a bad price), so it has no product on record until the
    # next. It was sold in an order the old integration posted: the first sync holds that order instead of
    # delivering it, and it must still never be posted once its product is there.
    posted_by_old = [
        o
        for o in world.orders_placed_between(MAIN, orders_start, now)
        if o.order_id in old.sell_orders and o.status_at(now) in ELIGIBLE_ORDER_STATUSES
    ]
    late_sku = next(
        line["sku"]
        for o in posted_by_old
        for line in o.lines
        if line["asin"] in old.skus and line["asin"] not in shared_asins(harness, MAIN)
    )
    late_asin = world.listings[MAIN].set_index("sku").at[late_sku, "asin"]
    tamper_listings(harness, MAIN, {late_sku}, set_field("price", "N/A"))

    harness.sync()
    late = optiply.snapshot()["products"][old.products[(MAIN, late_asin)]]
    assert late["remoteId"] == late_asin, "a product set aside was written"
    assert harness.materialization_metadata(MAIN, "optiply_existing_sell_orders")["dagster/row_count"] > 0

    del harness.sandbox.amazon.tamper_documents[LISTINGS_ALL]
    harness.sandbox.advance(timedelta(minutes=30))
    harness.sync()

    # One product per listing, every value current: the old products carry our remoteIds now.
    products = optiply_products(harness)
    expected = harness.expected_products()
    assert_products_match_ground_truth(harness, expected, products)
    assert len(products) == len(expected) == products["id"].nunique()
    optiply_id = products.set_index("remoteId")["id"]
    for (code, legacy_id), product_id in old.products.items():
        successor = our_remote_id(old.skus[legacy_id], code)
        assert optiply_id[successor] == product_id, (successor, "did not take over", product_id)
    posted = [w for w in optiply.writes() if w["method"] == "POST" and w["path"].endswith("/products")]
    assert len(posted) == len(expected) - len(old.products), "a listing's old product was created again"
    metadata = harness.materialization_metadata(MAIN, "optiply_products")
    assert metadata["products_taken_over"] == 1 and metadata["products_created"] == 0  # the late listing

    # The old integration's orders are untouched and never posted again; ours point at current products.
    orders = optiply.snapshot()["sellOrders"]
    remote_ids = [o["remoteId"] for o in orders.values()]
    assert len(remote_ids) == len(set(remote_ids)), "a sell order was posted twice"
    assert {i: orders[i] for i in old_orders} == old_orders
    ours = {i: o for i, o in orders.items() if i not in old_orders}
    expected_orders = {
        code: [o for o in found if o.order_id not in old.sell_orders]
        for code, found in harness.expected_orders().items()
    }
    assert_orders_match_ground_truth(harness, products, expected_orders, held=ours, at_least=30)
    taken_over = set(old.products.values())
    assert any(line["productId"] in taken_over for o in ours.values() for line in o["orderLines"])


def test_take_over_goes_to_the_sku_the_old_product_names_else_the_lowest_sku():
    listings = pd.DataFrame(
        {
            "skuCode": ["kw-2", "HX-1", "KW-3", "B-1", "A-9", "C-5"],
            "legacy_remote_id": ["B0NAMED", "B0NAMED", "B0NAMED", "B0BLANK", "B0BLANK", "B0NONE"],
        },
        index=[10, 11, 12, 13, 14, 15],
    )
    records = [
        {"id": 1, "remoteId": "B0NAMED", "skuCode": "KW-3", "name": "n", "stockLevel": 0},
        {"id": 2, "remoteId": "B0BLANK", "skuCode": None, "name": "n", "stockLevel": 0},
        {"id": 3, "remoteId": "B0GONE", "skuCode": "Z-1", "name": "n", "stockLevel": 0},
    ]
    legacy = existing_products_frame(records, OPTIPLY_COUPLING_ID).set_index("remoteId")

    # The SKU the old product stands for, else the lowest SKU in code-point order (upper case first).
    assert take_over_successors(listings, legacy) == {12: "B0NAMED", 14: "B0BLANK"}
