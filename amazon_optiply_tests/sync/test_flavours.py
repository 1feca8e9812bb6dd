"""The seed's options against the sandbox: secondary flavour by SKU and by EAN, adoption of existing
products, the stock source, and a deployment that lost its state. Each compares Optiply's final state
with the generator's ground truth."""

from collections.abc import Callable
from datetime import timedelta

import pytest

from amazon_optiply.sandbox.optiply import OTHER_COUPLING_ID
from amazon_optiply_tests.sync.ground_truth import (
    assert_orders_match_ground_truth,
    assert_products_match_ground_truth,
    optiply_products,
)
from amazon_optiply_tests.sync.harness import MARKETPLACE_CODES


def preload_shop_products(harness, rows: list[dict]) -> dict[str, int]:
    """Products as another shop system (Shopify, WooCommerce) created them; returns key -> Optiply id."""
    attributes = [{"name": r["name"], "stockLevel": 7, **r["codes"]} for r in rows]
    ids = harness.sandbox.optiply.preload_products(attributes, coupling_id=OTHER_COUPLING_ID)
    return {r["key"]: i for r, i in zip(rows, ids, strict=True)}


def assert_secondary_orders(harness, product_for_line: Callable[[dict], int | None]) -> dict[str, set[str]]:
    """Orders whose every line finds its product are in Optiply, once, pointing at it; the others are not.

    Returns per marketplace the eligible orders that must be held.
    """
    held_in_optiply = harness.sandbox.optiply.snapshot()["sellOrders"]
    by_remote_id = {r["remoteId"]: r for r in held_in_optiply.values()}
    assert len(by_remote_id) == len(held_in_optiply), "a sell order was posted twice"
    must_hold: dict[str, set[str]] = {}
    delivered = 0
    for code, orders in harness.expected_orders().items():
        must_hold[code] = set()
        for order in orders:
            ids = [product_for_line(line) for line in order.lines]
            record = by_remote_id.pop(order.order_id, None)
            if any(i is None for i in ids):
                assert record is None, f"order {order.order_id} has a line without product but was sent"
                must_hold[code].add(order.order_id)
                continue
            assert record is not None, f"order {order.order_id} missing in Optiply"
            assert abs(float(record["totalValue"]) - order.total_value) < 0.005
            sent = sorted((ln["productId"], ln["quantity"]) for ln in record["orderLines"])
            assert sent == sorted((i, ln["quantity"]) for i, ln in zip(ids, order.lines, strict=True))
            delivered += 1
    assert not by_remote_id, f"Optiply holds orders it should not: {sorted(by_remote_id)[:5]}"
    assert delivered > 50
    return must_hold


def assert_no_product_written(harness) -> None:
    writes = harness.sandbox.optiply.writes()
    assert [w for w in writes if "/products" in w["path"]] == [], "the secondary flavour wrote a product"


def held_orders_in_check(harness) -> dict[str, int]:
    return {
        code: harness.check_metadata(code, "optiply_sell_order_payloads", "orders_held")["orders_held"]
        for code in MARKETPLACE_CODES
    }


def test_secondary_by_sku_holds_unmatched_orders_and_delivers_them_once_the_product_exists(
    harness, monkeypatch
):
    monkeypatch.setenv("OPTIPLY_FLAVOUR", "secondary")
    monkeypatch.setenv("OPTIPLY_MATCH_KEY", "skuCode")
    catalog = harness.sandbox.world.catalog
    ordered = {ln["sku"] for orders in harness.expected_orders().values() for o in orders for ln in o.lines}
    late = set(sorted(ordered)[::9])  # these products reach Optiply from the shop system only later
    rows = [
        {"key": sku, "name": f"Shop {sku}", "codes": {"skuCode": sku}}
        for sku in catalog["sku"]
        if sku not in late
    ]
    product_ids = preload_shop_products(harness, rows)
    shop_products_before = harness.sandbox.optiply.snapshot()["products"]
    harness.sandbox.optiply.reset_request_log()

    harness.sync()
    must_hold = assert_secondary_orders(harness, lambda line: product_ids.get(line["sku"]))
    assert all(must_hold.values()), "no order waits for a late product; the test would prove nothing"
    assert held_orders_in_check(harness) == {code: len(ids) for code, ids in must_hold.items()}
    held_table = harness.check_metadata("DE", "optiply_sell_order_payloads", "orders_held")["held"]
    assert any(sku in held_table for sku in late)
    assert_no_product_written(harness)

    product_ids |= preload_shop_products(
        harness, [{"key": sku, "name": f"Shop {sku}", "codes": {"skuCode": sku}} for sku in sorted(late)]
    )
    harness.sync()  # the next cycle: the held orders find their products
    must_hold = assert_secondary_orders(harness, lambda line: product_ids.get(line["sku"]))
    assert not any(must_hold.values())
    assert held_orders_in_check(harness) == {code: 0 for code in MARKETPLACE_CODES}
    assert_no_product_written(harness)
    products_now = harness.sandbox.optiply.snapshot()["products"]
    assert {i: products_now[i] for i in shop_products_before} == shop_products_before


def test_secondary_by_ean_matches_any_ean_of_the_asin_and_gives_up_after_retention(harness, monkeypatch):
    monkeypatch.setenv("OPTIPLY_FLAVOUR", "secondary")  # the match key defaults to eanCode
    catalog = harness.sandbox.world.catalog.drop_duplicates("asin")
    with_ean = catalog[catalog["eans"].map(len) > 0]
    # The shop system knows the item by its last EAN and its own SKU: only the EAN can match.
    rows = [
        {"key": r.asin, "name": f"Shop item {i}", "codes": {"eanCode": r.eans[-1], "skuCode": f"SHOP-{i}"}}
        for i, r in enumerate(with_ean.itertuples())
    ]
    assert any(len(e) > 1 for e in with_ean["eans"])
    product_ids = preload_shop_products(harness, rows)
    harness.sandbox.optiply.reset_request_log()

    harness.sync()
    must_hold = assert_secondary_orders(harness, lambda line: product_ids.get(line["asin"]))
    assert all(must_hold.values()), "every ordered item has an EAN; the test would prove nothing"
    check = harness.check_metadata("US", "optiply_sell_order_payloads", "orders_held")
    assert check["orders_held"] == len(must_hold["US"]) and not check["passed"]
    assert "has no EAN" in check["held"]
    assert_no_product_written(harness)

    # Past the retention period the held orders are given up: reported, and no longer holding the cursor.
    monkeypatch.setenv("HELD_ORDER_RETENTION_DAYS", "0")
    summaries = harness.sync()
    for code in MARKETPLACE_CODES:
        check = harness.check_metadata(code, "optiply_sell_order_payloads", "orders_held")
        assert (check["orders_held"], check["orders_given_up"]) == (0, len(must_hold[code]))
        assert summaries[code]["orders_delivered"] == 0
    assert_secondary_orders(harness, lambda line: product_ids.get(line["asin"]))
    harness.sandbox.optiply.reset_request_log()
    harness.sync()
    assert harness.sandbox.optiply.writes() == []


def test_full_flavour_adopts_existing_products_by_ean_instead_of_duplicating(harness):
    world = harness.sandbox.world
    de = world.expected_products("DE")
    de = de[de["eanCode"].notna()]
    unique_ean = de.drop_duplicates("eanCode", keep=False)
    conflicted = unique_ean.iloc[0]  # two Optiply products carry its EAN: which one is it?
    rows = [
        {"key": ean, "name": "Imported long ago", "codes": {"eanCode": ean}}
        for ean in de["eanCode"].drop_duplicates()
    ]
    existing = harness.sandbox.optiply.preload_products(
        [{"name": r["name"], "stockLevel": 0, **r["codes"]} for r in rows], coupling_id=None
    )
    harness.sandbox.optiply.preload_products(
        [{"name": "A second copy", "stockLevel": 1, "eanCode": conflicted["eanCode"]}], coupling_id=None
    )

    harness.sync()
    expected = harness.expected_products()
    expected = expected[expected["remoteId"] != conflicted["remoteId"]].reset_index(drop=True)
    held = optiply_products(harness)
    ours = held[held["remoteId"].notna()]  # the two copies of the conflicted EAN are left alone
    products = assert_products_match_ground_truth(harness, expected, ours)
    assert len(held) == len(expected) + 2, "a product was created although Optiply had it"
    assert set(existing) - set(ours["id"]) == {existing[rows.index(_row_of(rows, conflicted["eanCode"]))]}
    check = harness.check_metadata("DE", "optiply_product_payloads", "products_unambiguous")
    assert check["conflicts"] == 1 and conflicted["remoteId"] in check["conflicting"]
    assert_orders_match_ground_truth(harness, products, _without_sku(harness, conflicted["skuCode"]))


def _row_of(rows: list[dict], key: str) -> dict:
    return next(r for r in rows if r["key"] == key)


def _without_sku(harness, sku: str) -> dict:
    """Expected orders, leaving out those with a line of `sku` (its product is in conflict, so they wait)."""
    return {
        code: [o for o in orders if all(ln["sku"] != sku for ln in o.lines)]
        for code, orders in harness.expected_orders().items()
    }


def test_listing_stock_source_uses_the_merchant_quantity(harness, monkeypatch):
    monkeypatch.setenv("AMAZON_STOCK_SOURCE", "listing")
    harness.sync()
    expected = harness.expected_products(stock_source="listing")
    products = assert_products_match_ground_truth(harness, expected)
    fba_expected = harness.expected_products()
    assert (expected["stockLevel"] != fba_expected["stockLevel"]).sum() > 20  # the choice matters
    assert_orders_match_ground_truth(harness, products)


@pytest.mark.slow  # a long end-to-end test: two cycles, the state lost between
def test_lost_state_database_duplicates_nothing(harness):
    harness.sync()
    (harness.workdir / "state.sqlite").unlink()  # a fresh deployment, or a lost volume
    # The Optiply token was kept in that database too; Optiply issues no new one until the old one
    # expires (the sync fails until then, saying so). Let that hour pass.
    harness.sandbox.optiply.expire_tokens()
    harness.sandbox.advance(timedelta(minutes=30))
    orders_before = {r["remoteId"] for r in harness.sandbox.optiply.snapshot()["sellOrders"].values()}
    harness.sandbox.optiply.reset_request_log()

    harness.sync()
    products = assert_products_match_ground_truth(harness)
    assert_orders_match_ground_truth(harness, products)
    writes = harness.sandbox.optiply.writes()
    assert [w for w in writes if w["method"] == "POST" and "/products" in w["path"]] == []
    posted = {
        w["attributes"]["remoteId"] for w in writes if w["method"] == "POST" and "sellOrders" in w["path"]
    }
    assert posted and not posted & orders_before
