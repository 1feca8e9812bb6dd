"""The vendor integration end to end: the real client over HTTP against the sandbox's Vendor Central, compared
with the vendor world's ground truth in both flavours and across cycles."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

import pytest

from amazon_optiply.tenants import TenantRegistry, tenant_state
from amazon_optiply_tests.vendor.harness import TENANT, VendorHarness, vendor_harness


@pytest.fixture
def full(fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with vendor_harness(fast_tmp_path, monkeypatch, "full") as harness:
        yield harness


def by_remote_id(records: dict[int, dict]) -> dict[str, dict]:
    remote_ids = [r.get("remoteId") for r in records.values()]
    doubled = [r for r, n in Counter(remote_ids).items() if n > 1]
    assert not doubled, f"written twice: {doubled}"
    return {r["remoteId"]: {"id": i, **r} for i, r in records.items()}


def assert_full_flavour_matches_ground_truth(h: VendorHarness) -> None:
    suppliers = by_remote_id(h.optiply("suppliers"))
    assert {k: v["name"] for k, v in suppliers.items()} == {
        k: v["name"] for k, v in h.expected_suppliers().items()
    }

    products = by_remote_id(h.optiply("products"))
    got = {
        k: {f: v.get(f) for f in ("name", "skuCode", "eanCode", "stockLevel")} for k, v in products.items()
    }
    assert got == h.expected_products()
    product_of_asin = {v["skuCode"]: v["id"] for v in products.values()}

    supplier_products = by_remote_id(h.optiply("supplierProducts"))
    expected_supplier_products = h.expected_supplier_products()
    assert set(supplier_products) == set(expected_supplier_products)
    for key, sp in supplier_products.items():
        want = expected_supplier_products[key]
        assert (
            sp["supplierId"] == suppliers[want["supplier"]]["id"]
            and sp["productId"] == product_of_asin[want["asin"]]
        )
        assert sp.get("price") == want["price"], key
        assert sp.get("deliveryTime") == want["deliveryTime"], key

    expected = h.expected_buy_orders()
    buy_orders = by_remote_id(h.optiply("buyOrders"))
    assert set(buy_orders) == set(expected)
    lines = by_remote_id(h.optiply("buyOrderLines"))
    receipts = h.optiply("receiptLines")
    received: dict[int, int] = defaultdict(int)
    for receipt in receipts.values():
        received[receipt["buyOrderLineId"]] += receipt["quantity"]
    for number, order in expected.items():
        got = buy_orders[number]
        assert got["supplierId"] == suppliers[order["supplier"]]["id"]
        for field in ("placed", "expectedDeliveryDate", "totalValue"):
            assert got[field] == order[field], (number, field)
        assert got.get("completed") == order["completed"], number
        for line_id, line in order["lines"].items():
            got_line = lines[line_id]
            assert (
                got_line["buyOrderId"] == got["id"] and got_line["productId"] == product_of_asin[line["asin"]]
            )
            assert (got_line["quantity"], got_line["subtotalValue"]) == (
                line["quantity"],
                line["subtotalValue"],
            )
            # Every receipt once: the receipt lines add up to what Amazon has received, never more.
            assert received[got_line["id"]] == line["received"], line_id
    # The newest receipt of a line names the count it brought the line to, on Amazon's last receive date.
    by_receipt = by_remote_id(receipts)
    for order in expected.values():
        for line_id, line in order["lines"].items():
            if line["received"]:
                latest = by_receipt[f"{line_id}-{line['received']}"]
                assert latest["occurred"] == line["last_receive_date"].strftime("%Y-%m-%dT%H:%M:%SZ"), line_id

    demand = by_remote_id(h.optiply("sellOrders"))
    expected_demand = h.expected_demand()
    assert set(demand) == set(expected_demand)
    for key, order in expected_demand.items():
        asin = key.split("-", 1)[0]
        (line,) = demand[key]["orderLines"]
        assert (line["productId"], line["quantity"]) == (product_of_asin[asin], order["quantity"]), key
        assert demand[key]["totalValue"] == order["totalValue"], key


def assert_sell_orders_only_matches_ground_truth(h: VendorHarness, ids_by_ean: dict[str, int]) -> dict:
    """Optiply's sell orders are exactly the expected purchase orders, matched by EAN; returns those."""
    expected = h.expected_po_sell_orders(set(ids_by_ean))
    orders = by_remote_id(h.optiply("sellOrders"))
    assert set(orders) == set(expected)
    for number, order in expected.items():
        got = orders[number]
        assert (got["placed"], got["totalValue"]) == (order["placed"], order["totalValue"]), number
        lines = {line["productId"]: line for line in got["orderLines"]}
        assert lines.keys() == {ids_by_ean[ean] for ean in order["lines"]}
        for ean, line in order["lines"].items():
            got_line = lines[ids_by_ean[ean]]
            assert (got_line["quantity"], got_line["subtotalValue"]) == (
                line["quantity"],
                line["subtotalValue"],
            )
    return expected


def test_full_flavour_models_amazons_stock_of_the_vendors_products(full: VendorHarness):
    full.sync()
    assert_full_flavour_matches_ground_truth(full)
    facts = full.facts()
    # The world exercises what the rules are about (else this test proves little).
    assert any(po.weight_priced for po in facts.purchase_orders), "no weight-priced purchase order"
    assert any(i.unit_of_measure == "Cases" for po in facts.purchase_orders for i in po.items)
    assert any(p.upc for p in facts.products)
    assert len(full.optiply("buyOrders")) >= 10 and len(full.optiply("receiptLines")) >= 5
    assert any(o.get("completed") for o in full.optiply("buyOrders").values())


@pytest.mark.slow  # five cycles over two days of the vendor world
def test_across_cycles_each_receipt_is_delivered_once_and_a_quiet_cycle_writes_nothing(full: VendorHarness):
    full.sync()
    writes = full.writes()
    full.sync()  # nothing changed at Amazon
    assert full.writes() == writes, full.sandbox.optiply.writes()[writes:]
    for _ in range(4):  # two days: orders acknowledged, partly received, closed
        full.advance(timedelta(hours=12))
        full.sync()
        assert_full_flavour_matches_ground_truth(full)
    assert len(full.optiply("receiptLines")) > len(
        {r["buyOrderLineId"] for r in full.optiply("receiptLines").values()}
    )


def unconfirm_every_write(entities: tuple[str, ...]) -> dict[str, int]:
    """The state of a sync killed as Optiply applied each of these writes, before it heard back: every record
    delivered is an intent again (a buy order's nested lines, never intents themselves, not on record)."""
    state = tenant_state(TenantRegistry.load().tenant(TENANT))
    counts = {}
    for entity in entities:
        records = state.records(entity, "DE")
        done = list(records.loc[records["state"] == "done", "remote_id"])
        for remote_id in done:
            state.forget_record(entity, remote_id)
            if entity != "buyOrderLines":
                state.record_intent(entity, remote_id, "DE")
        counts[entity] = len(done)
    return counts


def test_writes_a_killed_sync_left_unconfirmed_are_settled_never_repeated_and_brought_up_to_date(
    full: VendorHarness,
):
    full.sync()
    counts = unconfirm_every_write(
        (
            "suppliers",
            "products",
            "supplierProducts",
            "buyOrders",
            "buyOrderLines",
            "receiptLines",
            "sellOrders",
        )
    )
    assert counts["receiptLines"] >= 5 and counts["products"] >= 20, counts
    stock = {p["remoteId"]: p["stockLevel"] for p in full.optiply("products").values()}
    full.advance(timedelta(days=1))  # a new published day: stock moves, receipts come in, orders close
    assert any(stock[k] != v["stockLevel"] for k, v in full.expected_products().items())
    full.sync()
    # Nothing written twice; every receipt once (they add up to Amazon's count); stock is today's.
    assert_full_flavour_matches_ground_truth(full)


def test_sell_orders_only_posts_amazons_purchase_orders_as_sell_orders_matched_by_ean(
    fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    with vendor_harness(fast_tmp_path, monkeypatch, "sell_orders_only") as h:
        parent = h.sandbox.vendor.parent_products()
        h.sandbox.optiply.preload_products(parent)
        ids_by_ean = {p["eanCode"]: i for i, p in h.optiply("products").items()}
        h.sync()
        expected = assert_sell_orders_only_matches_ground_truth(h, ids_by_ean)
        assert len(expected) >= 5
        # Nothing but sell orders is written in this flavour.
        assert all(not h.optiply(e) for e in ("suppliers", "supplierProducts", "buyOrders", "receiptLines"))
        assert len(h.optiply("products")) == len(parent)
        # An order whose product the parent lacks is held, not lost: it goes out once the product exists.
        held = [
            po
            for po in h.facts().purchase_orders
            if po.placed >= h.orders_start
            and po.state != "New"
            and not po.weight_priced
            and not po.has_unknown_unit
            and po.number not in expected
            and any(i.ordered_eaches > 0 for i in po.items)
        ]
        assert held, "the world has no order for a product the parent lacks"
