"""The sandbox's Vendor Central, driven by python-amazon-sp-api itself (VendorOrders, Reports, Catalog Items).

Every test compares what the client receives with the vendor world's own ground truth (`VendorWorld.facts`),
computed from its model and never from the wire, so a sandbox answering with the wrong shape, unit, amount
or state fails here. Identifiers, case conversion and dates are checked with rules written out again below.
"""

from __future__ import annotations

import gzip
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sp_api.api import Reports, VendorOrders
from sp_api.api.catalog_items.catalog_items_2022_04_01 import CatalogItemsV20220401
from sp_api.auth import access_token_client
from sp_api.base.exceptions import (
    SellingApiBadRequestException,
    SellingApiForbiddenException,
    SellingApiNotFoundException,
)
from sp_api.util import load_all_pages

from amazon_optiply.clients.amazon import SpApiCredentials, build_api
from amazon_optiply.marketplaces import MARKETPLACES
from amazon_optiply.sandbox.amazon import AmazonSettings
from amazon_optiply.sandbox.seller import SellerConfig
from amazon_optiply.sandbox.server import Sandbox, SandboxConfig
from amazon_optiply.sandbox.vendor import (
    UNKNOWN_UNIT,
    PurchaseOrderFacts,
    VendorConfig,
    VendorWorld,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
# A fixed clock start, so the tests can name days: at 09:30 on 10 March the 9th is not yet published
# (a day's data comes the next day at 12:00 UTC), the 8th is.
ORIGIN = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
DE = MARKETPLACES["DE"].marketplace_id
INVENTORY = "GET_VENDOR_INVENTORY_REPORT"
SALES = "GET_VENDOR_SALES_REPORT"
DAY_OPTIONS = {"reportPeriod": "DAY", "distributorView": "MANUFACTURING", "sellingProgram": "RETAIL"}
FINAL = ("DONE", "FATAL", "CANCELLED")
AMAZON_MISSING_OPTIONS = (
    "This report type requires the reportPeriod, distributorView, sellingProgram reportOption to be "
    "specified. Please review the document for this report type on GitHub, provide a value for this "
    "reportOption in your request, and try again."
)


# ---- plumbing -------------------------------------------------------------------------------------------


def _start(vendor: VendorConfig | None = None, rate_scale: float = 1000.0, **settings) -> Sandbox:
    access_token_client.cache.clear()
    config = SandboxConfig(
        seller=SellerConfig(marketplaces=("DE",), skus=30, orders_per_day=5, origin=ORIGIN),
        amazon=AmazonSettings(
            report_queue_seconds=0.02, report_processing_seconds=0.05, rate_scale=rate_scale, **settings
        ),
        frozen_clock=True,
        vendor=vendor,
    )
    return Sandbox(config).start()


@pytest.fixture(autouse=True)
def _no_default_marketplace_override(monkeypatch):
    monkeypatch.delenv("SP_API_DEFAULT_MARKETPLACE", raising=False)


@pytest.fixture(scope="module")
def vendor_sandbox():
    """A vendor with two unknown-unit POs in its history, frozen at ORIGIN: for tests that only read."""
    sandbox = _start(VendorConfig(origin=ORIGIN, unknown_unit_orders=2))
    yield sandbox
    sandbox.stop()


@pytest.fixture
def make_sandbox():
    """A dedicated sandbox for tests that move the clock or change settings."""
    started: list[Sandbox] = []

    def make(vendor: VendorConfig | None = VendorConfig(origin=ORIGIN), **kwargs) -> Sandbox:  # noqa: B008
        sandbox = _start(vendor, **kwargs)
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()


def _api(sandbox: Sandbox, api_class):
    env = sandbox.env()
    credentials = SpApiCredentials(
        refresh_token=env["SP_API_REFRESH_TOKEN"],
        lwa_app_id=env["LWA_APP_ID"],
        lwa_client_secret=env["LWA_CLIENT_SECRET"],
    )
    return build_api(api_class, "DE", credentials, env["SP_API_ENDPOINT"], env["LWA_TOKEN_URL"], timeout=10)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _gs1_ok(code: str) -> bool:
    """The GS1 check digit (EAN-13 and UPC-A alike): weights 3, 1, 3, … from the right, before the check."""
    body, check = code[:-1], int(code[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def _eaches(quantity: dict) -> int:
    """An ItemQuantity in eaches: Cases count unitSize eaches each."""
    return quantity["amount"] * (quantity["unitSize"] if quantity["unitOfMeasure"] != "Eaches" else 1)


def _all_pages(call, **params) -> tuple[list[dict], int]:
    """Every page of a vendor listing, following `nextToken` (the vendor APIs' spelling); (rows, pages)."""
    key = "ordersStatus" if call.__name__ == "get_purchase_orders_status" else "orders"

    @load_all_pages(next_token_param="nextToken", throttle_by_seconds=0)
    def pages(**kwargs):
        return call(**kwargs)

    rows, n = [], 0
    for page in pages(**params):
        rows.extend(page.payload[key])
        n += 1
    return rows, n


def _history(sandbox: Sandbox, call, **params) -> list[dict]:
    """All POs (or statuses) of the vendor's history, in 7-day createdAfter/createdBefore windows."""
    now = sandbox.clock.now()
    start = sandbox.vendor.start
    rows: dict[str, dict] = {}
    while start < now:
        end = min(start + timedelta(days=7), now)
        page, _ = _all_pages(call, createdAfter=_iso(start), createdBefore=_iso(end), **params)
        rows.update({row["purchaseOrderNumber"]: row for row in page})
        start = end
    return list(rows.values())


def _check_order(order: dict, po: PurchaseOrderFacts) -> None:
    assert order["purchaseOrderNumber"] == po.number
    assert order["purchaseOrderState"] == po.state
    d = order["orderDetails"]
    assert _t(d["purchaseOrderDate"]) == po.placed
    assert _t(d["purchaseOrderStateChangedDate"]) == po.state_changed
    assert (_t(d["purchaseOrderChangedDate"]) if "purchaseOrderChangedDate" in d else None) == po.changed
    assert d["purchaseOrderType"] == "RegularOrder"
    assert d["sellingParty"] == {"partyId": po.vendor_code}
    assert d["shipToParty"]["partyId"] == po.ship_to
    windows = [d[k] for k in ("deliveryWindow", "shipWindow") if k in d]
    assert len(windows) == 1
    start, end = windows[0].split("--")
    assert _t(start) < _t(end)
    assert _t(end) == po.window_end
    assert len(d["items"]) == len(po.items)
    for wire, item in zip(d["items"], po.items, strict=True):
        assert wire["itemSequenceNumber"] == item.sequence
        assert wire["amazonProductIdentifier"] == item.asin
        assert wire["vendorProductIdentifier"] == item.vendor_product_id
        assert isinstance(wire["isBackOrderAllowed"], bool)
        q = wire["orderedQuantity"]
        assert set(q) == {"amount", "unitOfMeasure", "unitSize"}
        assert q["unitOfMeasure"] == item.unit_of_measure
        assert q["amount"] == item.amount
        if q["unitOfMeasure"] == "Eaches":
            assert q["unitSize"] == 1
        assert _eaches(q) == item.ordered_eaches
        for money, truth in ((wire["netCost"], item.net_cost), (wire["listPrice"], item.list_price)):
            assert isinstance(money["amount"], str)  # Amazon's Decimal is a string
            assert re.fullmatch(r"\d+\.\d\d", money["amount"])
            assert Decimal(money["amount"]) == truth
            assert money["currencyCode"] == "EUR"
            assert money.get("unitOfMeasure") == item.cost_unit


def _check_status(status: dict, po: PurchaseOrderFacts) -> None:
    assert status["purchaseOrderNumber"] == po.number
    assert status["purchaseOrderStatus"] == po.status
    assert _t(status["purchaseOrderDate"]) == po.placed
    assert _t(status["lastUpdatedDate"]) == po.last_updated
    assert status["sellingParty"] == {"partyId": po.vendor_code}
    assert status["shipToParty"] == {"partyId": po.ship_to}
    for wire, item in zip(status["itemStatus"], po.items, strict=True):
        assert wire["itemSequenceNumber"] == item.sequence
        assert wire["buyerProductIdentifier"] == item.asin
        assert wire["vendorProductIdentifier"] == item.vendor_product_id
        ordered = wire["orderedQuantity"]
        assert _eaches(ordered["orderedQuantity"]) == item.ordered_eaches
        details = ordered["orderedQuantityDetails"]
        assert (
            sum(_eaches(x["orderedQuantity"]) for x in details if "orderedQuantity" in x)
            == item.original_eaches
        )
        assert sum(_eaches(x["cancelledQuantity"]) for x in details if "cancelledQuantity" in x) == (
            item.cancelled_eaches
        )
        ack = wire["acknowledgementStatus"]
        assert ack["confirmationStatus"] == item.confirmation_status
        assert _eaches(ack["acceptedQuantity"]) == item.accepted_eaches
        assert _eaches(ack["rejectedQuantity"]) == item.rejected_eaches
        assert ("acknowledgementStatusDetails" in ack) == (po.acknowledged is not None)
        receiving = wire["receivingStatus"]
        assert receiving["receiveStatus"] == item.receive_status
        assert _eaches(receiving["receivedQuantity"]) == item.received_eaches
        last = receiving.get("lastReceiveDate")
        assert (_t(last) if last else None) == item.last_receive_date


def _error(info) -> dict:
    (error,) = info.value.error
    return error


# ---- 1. Purchase orders: shapes and values against the ground truth ---------------------------------------------


def test_every_po_of_the_history_matches_the_ground_truth(vendor_sandbox):
    orders = _history(vendor_sandbox, _api(vendor_sandbox, VendorOrders).get_purchase_orders)
    facts = vendor_sandbox.vendor.facts(vendor_sandbox.clock.now())
    assert sorted(o["purchaseOrderNumber"] for o in orders) == sorted(
        po.number for po in facts.purchase_orders
    )
    assert len(orders) == 56  # 14 days × 4 POs a day
    for order in orders:
        assert re.fullmatch(r"[0-9A-Z]{8}", order["purchaseOrderNumber"])
        _check_order(order, facts.purchase_order(order["purchaseOrderNumber"]))

    # The history holds every case the pipeline must handle, on the wire.
    items = [i for o in orders for i in o["orderDetails"]["items"]]
    units = {i["orderedQuantity"]["unitOfMeasure"] for i in items}
    assert units == {"Cases", "Eaches", UNKNOWN_UNIT}
    assert {o["purchaseOrderState"] for o in orders} == {"New", "Acknowledged", "Closed"}
    assert any("purchaseOrderChangedDate" in o["orderDetails"] for o in orders)
    assert any(i["orderedQuantity"]["amount"] == 0 for i in items), "an item Amazon cancelled"
    assert any(i["netCost"].get("unitOfMeasure") == "KILOGRAMS" for i in items)
    assert any("shipWindow" in o["orderDetails"] for o in orders)
    assert any("deliveryWindow" in o["orderDetails"] for o in orders)


def test_vendor_product_identifiers_are_valid_eans_or_upcs_matching_the_products(vendor_sandbox):
    facts = vendor_sandbox.vendor.facts(vendor_sandbox.clock.now())
    kinds = set()
    for po in facts.purchase_orders:
        for item in po.items:
            code = item.vendor_product_id
            assert code.isdigit() and _gs1_ok(code), code
            if len(code) == 13:
                kinds.add("EAN")
                assert code == item.ean and item.upc is None
            else:
                kinds.add("UPC")
                assert len(code) == 12 and item.upc == code
                assert item.ean == "0" + code  # a UPC-A is an EAN-13 with a leading zero
    assert kinds == {"EAN", "UPC"}
    upc_share = sum(p.upc is not None for p in facts.products) / len(facts.products)
    assert 0.1 <= upc_share <= 0.35
    assert all(_gs1_ok(p.ean) and len(p.ean) == 13 for p in facts.products)


def test_get_purchase_order_by_number_and_its_refusals(vendor_sandbox):
    vendor_orders = _api(vendor_sandbox, VendorOrders)
    facts = vendor_sandbox.vendor.facts(vendor_sandbox.clock.now())
    for po in facts.purchase_orders[::9]:
        _check_order(vendor_orders.get_purchase_order(po.number).payload, po)

    with pytest.raises(SellingApiNotFoundException):
        vendor_orders.get_purchase_order("ZZZZZZZZ")
    with pytest.raises(SellingApiBadRequestException) as info:
        vendor_orders.get_purchase_order("ABC")
    assert _error(info)["code"] == "InvalidInput"


def test_a_po_placed_after_now_is_invisible_everywhere(vendor_sandbox):
    world = vendor_sandbox.vendor
    now = vendor_sandbox.clock.now()
    future = next(p for p in world.purchase_order_plans(now + timedelta(days=2)) if p.created > now)
    vendor_orders = _api(vendor_sandbox, VendorOrders)
    with pytest.raises(SellingApiNotFoundException):
        vendor_orders.get_purchase_order(future.number)
    window = {"createdAfter": _iso(now - timedelta(days=1)), "createdBefore": _iso(now + timedelta(days=5))}
    orders, _ = _all_pages(vendor_orders.get_purchase_orders, **window)
    statuses, _ = _all_pages(vendor_orders.get_purchase_orders_status, **window)
    for rows in (orders, statuses):
        assert rows and all(_t(_placed(r)) <= now for r in rows)
        assert future.number not in {r["purchaseOrderNumber"] for r in rows}


def _placed(row: dict) -> str:
    return row["orderDetails"]["purchaseOrderDate"] if "orderDetails" in row else row["purchaseOrderDate"]


def test_every_status_of_the_history_matches_the_ground_truth(vendor_sandbox):
    statuses = _history(vendor_sandbox, _api(vendor_sandbox, VendorOrders).get_purchase_orders_status)
    facts = vendor_sandbox.vendor.facts(vendor_sandbox.clock.now())
    assert len(statuses) == len(facts.purchase_orders)
    for status in statuses:
        _check_status(status, facts.purchase_order(status["purchaseOrderNumber"]))
        # Amazon's status timestamps carry milliseconds.
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", status["lastUpdatedDate"])
    items = [i for s in statuses for i in s["itemStatus"]]
    assert {i["acknowledgementStatus"]["confirmationStatus"] for i in items} == {
        "ACCEPTED",
        "PARTIALLY_ACCEPTED",
        "REJECTED",
        "UNCONFIRMED",
    }
    assert {i["receivingStatus"]["receiveStatus"] for i in items} == {
        "NOT_RECEIVED",
        "PARTIALLY_RECEIVED",
        "RECEIVED",
    }
    # Received quantities come in eaches, whatever the ordered unit.
    assert {i["receivingStatus"]["receivedQuantity"]["unitOfMeasure"] for i in items} == {"Eaches"}
    cancelled = [
        d for i in items for d in i["orderedQuantity"]["orderedQuantityDetails"] if "cancelledQuantity" in d
    ]
    assert cancelled


def test_filters_select_what_the_ground_truth_says(vendor_sandbox):
    vendor_orders = _api(vendor_sandbox, VendorOrders)
    now = vendor_sandbox.clock.now()
    facts = vendor_sandbox.vendor.facts(now)
    week = {"createdAfter": _iso(now - timedelta(days=7))}
    recent = [po for po in facts.purchase_orders if po.placed >= now - timedelta(days=7)]

    def numbers(call, **params) -> set[str]:
        rows, _ = _all_pages(call, **week, **params)
        return {r["purchaseOrderNumber"] for r in rows}

    get, status = vendor_orders.get_purchase_orders, vendor_orders.get_purchase_orders_status
    assert numbers(get, purchaseOrderState="Closed") == {po.number for po in recent if po.state == "Closed"}
    assert numbers(get, orderingVendorCode="OPTV2") == {
        po.number for po in recent if po.vendor_code == "OPTV2"
    }
    assert numbers(get, isPOChanged="true") == {po.number for po in recent if po.is_changed}
    assert numbers(get, isPOChanged="false") == {po.number for po in recent}  # the default: no filter
    assert numbers(get, poItemState="Cancelled") == {po.number for po in recent if po.has_cancelled_item}
    assert numbers(status, purchaseOrderStatus="OPEN") == {po.number for po in recent if po.status == "OPEN"}
    assert numbers(status, itemReceiveStatus="PARTIALLY_RECEIVED") == {
        po.number for po in recent if any(i.receive_status == "PARTIALLY_RECEIVED" for i in po.items)
    }
    assert numbers(status, shipToPartyId="FRA7") == {po.number for po in recent if po.ship_to == "FRA7"}

    # includeDetails=false: numbers and states only.
    slim, _ = _all_pages(get, **week, includeDetails="false")
    assert slim and all(set(o) == {"purchaseOrderNumber", "purchaseOrderState"} for o in slim)

    # One status by number, no dates needed.
    po = facts.purchase_orders[3]
    (only,) = status(purchaseOrderNumber=po.number).payload["ordersStatus"]
    _check_status(only, po)

    # changedAfter/changedBefore (GUESS): a PO counts as changed at its changed or state-changed date.
    since = now - timedelta(days=2)
    changed = {
        p.number
        for p in facts.purchase_orders
        if since <= p.state_changed <= now or (p.changed is not None and since <= p.changed <= now)
    }
    rows, _ = _all_pages(get, changedAfter=_iso(since))
    assert {r["purchaseOrderNumber"] for r in rows} == changed
    # updatedAfter: lastUpdatedDate within the window.
    rows, _ = _all_pages(status, updatedAfter=_iso(since))
    assert {r["purchaseOrderNumber"] for r in rows} == {
        p.number for p in facts.purchase_orders if p.last_updated >= since
    }


# ---- 2. Amazon's refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("get_purchase_orders", {"createdAfter": -8}),  # a missing createdBefore means now: 8 days
        ("get_purchase_orders", {"createdAfter": -10, "createdBefore": -2.9}),
        ("get_purchase_orders", {"changedAfter": -8}),
        ("get_purchase_orders", {"changedAfter": -3, "changedBefore": -4}),  # After later than Before
        ("get_purchase_orders", {"createdAfter": -200, "createdBefore": -199}),  # older than 6 months
        ("get_purchase_orders", {"createdAfter": "2026-03-0400:00:00"}),  # Amazon's own bad example
        ("get_purchase_orders", {"limit": 0}),
        ("get_purchase_orders", {"limit": 101}),
        ("get_purchase_orders", {"purchaseOrderState": "Open"}),
        ("get_purchase_orders_status", {"updatedAfter": -7.01}),
        ("get_purchase_orders_status", {"createdAfter": -8, "createdBefore": -0.5}),
        ("get_purchase_orders_status", {"itemReceiveStatus": "PARTIAL"}),
    ],
)
def test_bad_ranges_and_values_are_400_invalid_input(vendor_sandbox, operation, params):
    now = vendor_sandbox.clock.now()
    query = {
        k: _iso(now + timedelta(days=v)) if isinstance(v, float | int) and k != "limit" else v
        for k, v in params.items()
    }
    call = getattr(_api(vendor_sandbox, VendorOrders), operation)
    with pytest.raises(SellingApiBadRequestException) as info:
        call(**query)
    error = _error(info)
    assert (error["code"], error["message"]) == ("InvalidInput", "Invalid Input")


def test_a_range_of_exactly_7_days_and_one_6_months_back_are_accepted(vendor_sandbox):
    vendor_orders = _api(vendor_sandbox, VendorOrders)
    now = vendor_sandbox.clock.now()
    week = vendor_orders.get_purchase_orders(
        createdAfter=_iso(now - timedelta(days=7)), createdBefore=_iso(now)
    ).payload["orders"]
    assert len(week) == 28
    old = now - timedelta(days=180)
    assert vendor_orders.get_purchase_orders(
        createdAfter=_iso(old), createdBefore=_iso(old + timedelta(days=1))
    ).payload == {"orders": []}


def test_sort_order_is_ignored_newest_first_as_amazon_does(vendor_sandbox):
    vendor_orders = _api(vendor_sandbox, VendorOrders)
    week = {"createdAfter": _iso(vendor_sandbox.clock.now() - timedelta(days=7))}
    asc = vendor_orders.get_purchase_orders(**week, sortOrder="ASC").payload["orders"]
    desc = vendor_orders.get_purchase_orders(**week, sortOrder="DESC").payload["orders"]
    assert asc == desc
    dates = [_t(o["orderDetails"]["purchaseOrderDate"]) for o in asc]
    assert dates == sorted(dates, reverse=True)


def test_vendor_apis_answer_403_for_an_account_without_a_vendor(make_sandbox):
    sandbox = make_sandbox(vendor=None)
    with pytest.raises(SellingApiForbiddenException) as info:
        _api(sandbox, VendorOrders).get_purchase_orders()
    assert _error(info)["code"] == "Unauthorized"
    with pytest.raises(SellingApiBadRequestException) as info:
        _api(sandbox, Reports).create_report(reportType=SALES, reportOptions=DAY_OPTIONS)
    assert "Invalid Report Type" in _error(info)["message"]


def test_vendor_calls_are_rate_limited_at_10_per_second_burst_10(make_sandbox):
    sandbox = make_sandbox(rate_scale=1.0)
    _api(sandbox, VendorOrders).get_purchase_orders_status(limit=1)  # fetch an LWA token once
    token = next(iter(sandbox.amazon.access_tokens))
    url = f"{sandbox.sp_api_url}/vendor/orders/v1/purchaseOrders"
    with httpx.Client(headers={"x-amz-access-token": token}) as client:
        answers = [client.get(url, params={"limit": 1}) for _ in range(30)]
    statuses = [a.status_code for a in answers]
    assert statuses[:10] == [200] * 10
    assert 429 in statuses
    throttled = next(a for a in answers if a.status_code == 429)
    assert throttled.json()["errors"][0]["code"] == "QuotaExceeded"
    assert answers[0].headers["x-amzn-RateLimit-Limit"] == "10"


# ---- 3. Paging ------------------------------------------------------------------------------------------


def test_next_token_pages_cover_the_window_once_and_the_library_pages_with_lowercase_next_token(
    vendor_sandbox,
):
    vendor_orders = _api(vendor_sandbox, VendorOrders)
    week = {"createdAfter": _iso(vendor_sandbox.clock.now() - timedelta(days=7))}
    whole = [o["purchaseOrderNumber"] for o in vendor_orders.get_purchase_orders(**week).payload["orders"]]
    paged, pages = _all_pages(vendor_orders.get_purchase_orders, **week, limit=5)
    assert pages == 6  # 28 POs by 5
    assert [o["purchaseOrderNumber"] for o in paged] == whole
    statuses, pages = _all_pages(vendor_orders.get_purchase_orders_status, **week, limit=10)
    assert pages == 3
    assert [s["purchaseOrderNumber"] for s in statuses] == whole

    # The paging key is nextToken: NextToken is an unknown parameter, ignored, so it answers page one again
    # (load_all_pages' default NextToken would loop forever).
    first = vendor_orders.get_purchase_orders(**week, limit=5)
    again = vendor_orders.get_purchase_orders(**week, limit=5, NextToken=first.next_token)
    assert again.payload["orders"] == first.payload["orders"]
    # A token of one operation is no token for the other.
    with pytest.raises(SellingApiBadRequestException):
        vendor_orders.get_purchase_orders_status(nextToken=first.next_token)


def test_next_token_expires(make_sandbox):
    sandbox = make_sandbox(next_token_ttl_seconds=0.6)
    vendor_orders = _api(sandbox, VendorOrders)
    week = {"createdAfter": _iso(sandbox.clock.now() - timedelta(days=7)), "limit": 5}
    first = vendor_orders.get_purchase_orders(**week)
    assert vendor_orders.get_purchase_orders(**week, nextToken=first.next_token).payload["orders"]
    time.sleep(0.7)
    with pytest.raises(SellingApiBadRequestException) as info:
        vendor_orders.get_purchase_orders(**week, nextToken=first.next_token)
    assert "expired" in _error(info)["details"]


# ---- 4. The lifecycle as the clock moves -----------------------------------------------------------------------


def test_a_po_lives_through_placed_acknowledged_received_in_parts_and_closed(make_sandbox):
    sandbox = make_sandbox()
    world: VendorWorld = sandbox.vendor
    now = sandbox.clock.now()
    # A PO placed in the coming days that gets acknowledged, received in several parts and closed.
    po = next(
        p
        for p in world.purchase_order_plans(now + timedelta(days=4))
        if p.created > now
        and p.closed_at is not None
        and any(len(i.receipts) >= 2 for i in p.items)
        and not any(i.accepted_amount == 0 for i in p.items)
    )
    receipt_times = sorted({when for i in po.items for when, _ in i.receipts})
    moments = [po.created - timedelta(seconds=1), po.created, po.acknowledged_at, *receipt_times]
    moments += [po.closed_at - timedelta(seconds=1), po.closed_at]
    vendor_orders = _api(sandbox, VendorOrders)
    seen_states, received_before = [], {}
    for moment in moments:
        sandbox.advance(moment - sandbox.clock.now())
        truth = world.facts(moment)
        if moment < po.created:
            with pytest.raises(SellingApiNotFoundException):
                vendor_orders.get_purchase_order(po.number)
            continue
        facts = truth.purchase_order(po.number)
        _check_order(vendor_orders.get_purchase_order(po.number).payload, facts)
        (status,) = vendor_orders.get_purchase_orders_status(purchaseOrderNumber=po.number).payload[
            "ordersStatus"
        ]
        _check_status(status, facts)
        for item in status["itemStatus"]:
            received = _eaches(item["receivingStatus"]["receivedQuantity"])
            assert received >= received_before.get(item["itemSequenceNumber"], 0), "receipts are cumulative"
            received_before[item["itemSequenceNumber"]] = received
        seen_states.append((facts.state, {i.receive_status for i in facts.items}))
    assert seen_states[0] == ("New", {"NOT_RECEIVED"})
    assert seen_states[1][0] == "Acknowledged"
    assert any("PARTIALLY_RECEIVED" in receive for _, receive in seen_states)
    assert seen_states[-2][0] == "Acknowledged"
    assert seen_states[-1][0] == "Closed"
    final = world.facts(po.closed_at).purchase_order(po.number)
    assert final.closed == po.closed_at == final.state_changed
    assert final.received_eaches > 0


def test_amazon_changes_a_po_before_acknowledging_it(make_sandbox):
    sandbox = make_sandbox()
    world: VendorWorld = sandbox.vendor
    now = sandbox.clock.now()
    po = next(
        p for p in world.purchase_order_plans(now + timedelta(days=5)) if p.created > now and p.changed_at
    )
    vendor_orders = _api(sandbox, VendorOrders)

    sandbox.advance(po.created - now)
    before = vendor_orders.get_purchase_order(po.number).payload
    assert "purchaseOrderChangedDate" not in before["orderDetails"]
    assert [i["orderedQuantity"]["amount"] for i in before["orderDetails"]["items"]] == [
        i.original_amount for i in po.items
    ]
    window = {"createdAfter": _iso(po.created - timedelta(hours=1))}
    assert po.number not in {
        o["purchaseOrderNumber"]
        for o in _all_pages(vendor_orders.get_purchase_orders, **window, isPOChanged="true")[0]
    }

    sandbox.advance(po.changed_at - sandbox.clock.now())
    after = vendor_orders.get_purchase_order(po.number).payload
    facts = world.facts(po.changed_at).purchase_order(po.number)
    _check_order(after, facts)
    assert _t(after["orderDetails"]["purchaseOrderChangedDate"]) == po.changed_at
    assert after["purchaseOrderState"] == "New"
    lowered = [(i.original_amount, i.amount) for i in facts.items if i.amount != i.original_amount]
    assert lowered and all(amount < original for original, amount in lowered)
    changed, _ = _all_pages(
        vendor_orders.get_purchase_orders, changedAfter=_iso(po.changed_at - timedelta(minutes=1))
    )
    assert po.number in {o["purchaseOrderNumber"] for o in changed}
    (status,) = vendor_orders.get_purchase_orders_status(purchaseOrderNumber=po.number).payload[
        "ordersStatus"
    ]
    _check_status(status, facts)
    assert _t(status["lastUpdatedDate"]) == po.changed_at


def test_received_quantities_never_decrease_over_a_week_of_statuses(make_sandbox):
    sandbox = make_sandbox()
    vendor_orders = _api(sandbox, VendorOrders)
    start = sandbox.clock.now()
    seen: dict[tuple[str, str], int] = {}
    grew = 0
    for _ in range(8):
        rows, _ = _all_pages(
            vendor_orders.get_purchase_orders_status,
            createdAfter=_iso(start - timedelta(days=7)),
            createdBefore=_iso(start),
        )
        facts = sandbox.vendor.facts(sandbox.clock.now())
        for status in rows:
            _check_status(status, facts.purchase_order(status["purchaseOrderNumber"]))
            for item in status["itemStatus"]:
                key = (status["purchaseOrderNumber"], item["itemSequenceNumber"])
                received = _eaches(item["receivingStatus"]["receivedQuantity"])
                assert received >= seen.get(key, 0)
                grew += received > seen.get(key, 0) and key in seen
                seen[key] = received
        sandbox.advance(timedelta(hours=21))
    assert grew > 5


# ---- 5. Vendor reports --------------------------------------------------------------------------------------


def _run_report(reports: Reports, report_type: str, **body) -> dict:
    report_id = reports.create_report(reportType=report_type, **body).payload["reportId"]
    deadline = time.monotonic() + 10
    while True:
        report = reports.get_report(report_id).payload
        if report["processingStatus"] in FINAL:
            return report
        assert time.monotonic() < deadline, report
        time.sleep(0.02)


def _document(reports: Reports, report: dict) -> dict:
    document = reports.get_report_document(report["reportDocumentId"]).payload
    download = httpx.get(document["url"])
    assert download.status_code == 200
    assert download.headers["content-type"] == "text/plain;charset=UTF-8"
    return json.loads(gzip.decompress(download.content).decode("utf-8"))


def _days_body(first: date, last: date, **options) -> dict:
    return {
        "reportOptions": {**DAY_OPTIONS, **options},
        "dataStartTime": f"{first.isoformat()}T00:00:00Z",
        "dataEndTime": f"{last.isoformat()}T23:59:59Z",
    }


def _amount(value: Decimal) -> dict:
    return {"amount": float(value), "currencyCode": "EUR"}


def test_inventory_report_gives_every_asin_every_day_as_the_ground_truth(vendor_sandbox):
    reports = _api(vendor_sandbox, Reports)
    first, last = date(2026, 3, 6), date(2026, 3, 8)
    report = _run_report(reports, INVENTORY, **_days_body(first, last))
    assert report["processingStatus"] == "DONE", report
    assert report["marketplaceIds"] == [DE]
    doc = _document(reports, report)
    assert list(doc) == ["reportSpecification", "inventoryAggregate", "inventoryByAsin"]
    assert doc["reportSpecification"] == {
        "reportType": INVENTORY,
        "reportOptions": DAY_OPTIONS,
        "lastUpdatedDate": "2026-03-09",
        "dataStartTime": "2026-03-06",
        "dataEndTime": "2026-03-08",
        "marketplaceIds": [DE],
    }
    facts = vendor_sandbox.vendor.facts(vendor_sandbox.clock.now())
    truth = {(d.asin, d.day.isoformat()): d for d in facts.days if first <= d.day <= last}
    rows = doc["inventoryByAsin"]
    assert {(r["asin"], r["startDate"]) for r in rows} == set(truth)
    for row in rows:
        d = truth[(row["asin"], row["startDate"])]
        assert row["endDate"] == row["startDate"]
        assert row["sellableOnHandInventoryUnits"] == d.sellable_on_hand_units
        assert row["sellableOnHandInventoryCost"] == _amount(d.sellable_on_hand_cost)
        assert row["netReceivedInventoryUnits"] == d.net_received_units
        assert row["netReceivedInventoryCost"] == _amount(d.net_received_cost)
        assert row["openPurchaseOrderUnits"] == d.open_purchase_order_units
        assert row["averageVendorLeadTimeDays"] == d.average_vendor_lead_time_days
        assert row["unfilledCustomerOrderedUnits"] == d.unfilled_customer_ordered_units
        assert row["unsellableOnHandInventoryUnits"] == d.unsellable_on_hand_units
        assert row["averageVendorLeadTimeDays"] == facts.product(row["asin"]).lead_time_days
    assert any(r["sellableOnHandInventoryUnits"] < 0 for r in rows), "backorders count as negative units"
    assert any(r["netReceivedInventoryUnits"] > 0 for r in rows)
    assert any(r["openPurchaseOrderUnits"] > 0 for r in rows)
    by_day = {a["startDate"]: a for a in doc["inventoryAggregate"]}
    assert sorted(by_day) == ["2026-03-06", "2026-03-07", "2026-03-08"]
    for day, aggregate in by_day.items():
        assert aggregate["sellableOnHandInventoryUnits"] == sum(
            r["sellableOnHandInventoryUnits"] for r in rows if r["startDate"] == day
        )


@pytest.mark.parametrize("view", ["MANUFACTURING", "SOURCING"])
def test_sales_report_matches_the_ground_truth_and_ordered_figures_only_for_manufacturing(
    vendor_sandbox, view
):
    reports = _api(vendor_sandbox, Reports)
    day = date(2026, 3, 8)
    report = _run_report(reports, SALES, **_days_body(day, day, distributorView=view))
    assert report["processingStatus"] == "DONE", report
    doc = _document(reports, report)
    assert list(doc) == ["reportSpecification", "salesAggregate", "salesByAsin"]
    assert doc["reportSpecification"]["reportOptions"]["distributorView"] == view
    facts = vendor_sandbox.vendor.facts(vendor_sandbox.clock.now())
    truth = {d.asin: d for d in facts.days if d.day == day}
    assert {r["asin"] for r in doc["salesByAsin"]} == set(truth)
    for row in doc["salesByAsin"]:
        d = truth[row["asin"]]
        assert (row["startDate"], row["endDate"]) == ("2026-03-08", "2026-03-08")
        assert row["shippedUnits"] == d.shipped_units
        assert row["shippedRevenue"] == _amount(d.shipped_revenue)
        assert row["shippedCogs"] == _amount(d.shipped_cogs)
        assert row["customerReturns"] == d.customer_returns
        if view == "MANUFACTURING":
            assert row["orderedUnits"] == d.ordered_units
            assert row["orderedRevenue"] == _amount(d.ordered_revenue)
        else:
            assert "orderedUnits" not in row and "orderedRevenue" not in row
    (aggregate,) = doc["salesAggregate"]
    assert aggregate["shippedUnits"] == sum(d.shipped_units for d in truth.values())


def test_report_options_as_a_list_end_fatal_with_amazons_error_document(vendor_sandbox):
    reports = _api(vendor_sandbox, Reports)
    body = _days_body(date(2026, 3, 8), date(2026, 3, 8))
    body["reportOptions"] = [DAY_OPTIONS]  # python-amazon-sp-api#624
    report = _run_report(reports, SALES, **body)
    assert report["processingStatus"] == "FATAL"
    assert _document(reports, report) == {"errorDetails": AMAZON_MISSING_OPTIONS}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"reportOptions": None}, "reportOptions"),
        ({"reportOptions": {"reportPeriod": "DAY", "distributorView": "MANUFACTURING"}}, "sellingProgram"),
        ({"reportOptions": {**DAY_OPTIONS, "distributorView": "RETAIL"}}, "distributorView"),
        ({"reportOptions": {**DAY_OPTIONS, "reportPeriod": "WEEK"}}, "DAY"),
        ({"dataStartTime": "2026-03-08T06:00:00Z"}, "00:00:00"),
        ({"dataEndTime": "2026-03-08T23:59:58Z"}, "23:59:59"),
        ({"dataEndTime": "2026-03-09T00:00:00Z"}, "23:59:59"),
        ({"dataStartTime": None}, "dataStartTime"),
        ({"marketplaceIds": [MARKETPLACES["FR"].marketplace_id]}, "marketplaceIds"),
    ],
)
def test_bad_vendor_report_requests_are_400_invalid_input(vendor_sandbox, change, needle):
    body = {**_days_body(date(2026, 3, 8), date(2026, 3, 8)), **change}
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(SellingApiBadRequestException) as info:
        _api(vendor_sandbox, Reports).create_report(reportType=SALES, **body)
    error = _error(info)
    assert error["code"] == "InvalidInput"
    assert needle in error["message"]


def test_inventory_report_refuses_the_business_program(vendor_sandbox):
    with pytest.raises(SellingApiBadRequestException):
        _api(vendor_sandbox, Reports).create_report(
            reportType=INVENTORY, **_days_body(date(2026, 3, 8), date(2026, 3, 8), sellingProgram="BUSINESS")
        )


@pytest.mark.parametrize(
    ("first", "last", "options"),
    [
        (date(2026, 3, 9), date(2026, 3, 9), {}),  # published on the 10th at 12:00; now is 09:30
        (date(2026, 3, 8), date(2026, 3, 9), {}),  # one day missing is enough
        (date(2026, 2, 20), date(2026, 2, 21), {}),  # before the vendor's history
        (date(2026, 3, 8), date(2026, 3, 8), {"sellingProgram": "BUSINESS"}),
    ],
)
def test_reports_without_data_end_cancelled(vendor_sandbox, first, last, options):
    report = _run_report(_api(vendor_sandbox, Reports), SALES, **_days_body(first, last, **options))
    assert report["processingStatus"] == "CANCELLED"
    assert "reportDocumentId" not in report


def test_a_day_longer_than_15_days_window_ends_fatal(vendor_sandbox):
    reports = _api(vendor_sandbox, Reports)
    report = _run_report(reports, SALES, **_days_body(date(2026, 2, 20), date(2026, 3, 8)))
    assert report["processingStatus"] == "FATAL"
    assert "15 days" in _document(reports, report)["errorDetails"]


def test_a_day_becomes_reportable_at_noon_the_next_day(make_sandbox):
    sandbox = make_sandbox()
    reports = _api(sandbox, Reports)
    body = _days_body(date(2026, 3, 9), date(2026, 3, 9))
    assert _run_report(reports, INVENTORY, **body)["processingStatus"] == "CANCELLED"
    sandbox.advance(datetime(2026, 3, 10, 11, 59, 59, tzinfo=UTC) - sandbox.clock.now())
    assert _run_report(reports, INVENTORY, **body)["processingStatus"] == "CANCELLED"
    sandbox.advance(timedelta(seconds=1))
    report = _run_report(reports, INVENTORY, **body)
    assert report["processingStatus"] == "DONE"
    rows = _document(reports, report)["inventoryByAsin"]
    assert len(rows) == len(sandbox.vendor.products)


def test_report_faults_still_apply_to_vendor_reports(vendor_sandbox):
    reports = _api(vendor_sandbox, Reports)
    backend = vendor_sandbox.amazon
    body = _days_body(date(2026, 3, 8), date(2026, 3, 8))
    try:
        backend.forced_outcomes[INVENTORY] = ("FATAL", "internal error (forced)")
        report = _run_report(reports, INVENTORY, **body)
        assert report["processingStatus"] == "FATAL"
        assert _document(reports, report) == {"errorDetails": "internal error (forced)"}
        backend.forced_outcomes[INVENTORY] = ("CANCELLED", "")
        assert _run_report(reports, INVENTORY, **body)["processingStatus"] == "CANCELLED"
    finally:
        backend.forced_outcomes.pop(INVENTORY, None)
    listed = reports.get_reports(reportTypes=[INVENTORY]).payload["reports"]
    assert {r["processingStatus"] for r in listed} >= {"FATAL", "CANCELLED"}


# ---- 6. Catalog, parent products, determinism ---------------------------------------------------------------


def test_catalog_finds_vendor_asins_by_ean_and_upc(vendor_sandbox):
    world = vendor_sandbox.vendor
    catalog = _api(vendor_sandbox, CatalogItemsV20220401)
    ean_products = [p for p in world.products if p.upc is None][:5]
    upc_products = [p for p in world.products if p.upc][:3]
    found = catalog.search_catalog_items(
        identifiers=[p.ean for p in ean_products],
        identifiersType="EAN",
        includedData=["identifiers", "summaries"],
    ).payload["items"]
    assert sorted(i["asin"] for i in found) == sorted(p.asin for p in ean_products)
    by_upc = catalog.search_catalog_items(
        identifiers=[p.upc for p in upc_products],
        identifiersType="UPC",
        includedData=["identifiers", "summaries"],
    ).payload["items"]
    assert sorted(i["asin"] for i in by_upc) == sorted(p.asin for p in upc_products)
    for item in found + by_upc:
        product = world.products_by_asin[item["asin"]]
        (ids,) = item["identifiers"]
        assert ids["marketplaceId"] == DE
        expected = [{"identifierType": "EAN", "identifier": product.ean}]
        if product.upc:
            expected.append({"identifierType": "UPC", "identifier": product.upc})
        assert ids["identifiers"] == expected
        assert item["summaries"][0]["itemName"] == product.title
    one = catalog.get_catalog_item(upc_products[0].asin, includedData=["summaries"]).payload
    assert one["summaries"][0]["itemName"] == upc_products[0].title


def test_parent_products_preload_into_optiply_and_leave_some_products_out(vendor_sandbox):
    world = vendor_sandbox.vendor
    parents = world.parent_products()
    ids = vendor_sandbox.optiply.preload_products(parents)
    assert len(ids) == len(parents)
    assert {p["eanCode"] for p in parents} == {p.ean for p in world.products if p.in_parent}
    assert 1 <= sum(not p.in_parent for p in world.products) <= 2
    facts = world.facts(vendor_sandbox.clock.now())
    orphans = {i.asin for po in facts.purchase_orders for i in po.items} - {
        p.asin for p in world.products if p.in_parent
    }
    assert orphans, "some PO items match no parent product"


def test_the_ground_truth_holds_together_over_time():
    """The model's own invariants, so the truth the wire is compared with is itself right."""
    world = VendorWorld(VendorConfig(origin=ORIGIN))
    moments = [ORIGIN + timedelta(hours=h) for h in range(0, 24 * 12, 7)]
    previous: dict[str, PurchaseOrderFacts] = {}
    order = {"New": 0, "Acknowledged": 1, "Closed": 2}
    for now in moments:
        for po in world.facts(now).purchase_orders:
            assert po.placed <= po.last_updated <= now
            assert po.window_end > po.placed
            assert (po.status == "CLOSED") == (po.state == "Closed") == (po.closed is not None)
            if po.changed is not None:
                assert po.placed < po.changed and (po.acknowledged is None or po.changed < po.acknowledged)
            for item in po.items:
                assert 0 <= item.ordered_eaches <= item.original_eaches
                assert item.cancelled_eaches == item.original_eaches - item.ordered_eaches
                assert item.unit_size == (1 if item.unit_of_measure == "Eaches" else item.unit_size)
                if po.acknowledged is not None:
                    assert item.accepted_eaches + item.rejected_eaches == item.ordered_eaches
                else:
                    assert item.accepted_eaches == item.rejected_eaches == 0
                assert 0 <= item.received_eaches <= item.accepted_eaches
                assert (item.received_eaches > 0) == (item.last_receive_date is not None)
            before = previous.get(po.number)
            if before is not None:
                assert order[po.state] >= order[before.state]
                for now_item, then_item in zip(po.items, before.items, strict=True):
                    assert now_item.received_eaches >= then_item.received_eaches
            previous[po.number] = po

    # The daily figures agree with the POs: receipts of the day, open units at the day's end, stock moves.
    for day in (date(2026, 3, 5), date(2026, 3, 6), date(2026, 3, 14)):
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        end_before, end = (
            world.facts(start - timedelta(seconds=1)),
            world.facts(start + timedelta(days=1, seconds=-1)),
        )
        figures = world.day_figures(day)
        yesterday = world.day_figures(day - timedelta(days=1))
        received: dict[str, int] = {}
        open_units: dict[str, int] = {}
        for po in end.purchase_orders:
            then = next((p for p in end_before.purchase_orders if p.number == po.number), None)
            for i, item in enumerate(po.items):
                got = item.received_eaches - (then.items[i].received_eaches if then else 0)
                received[item.asin] = received.get(item.asin, 0) + got
                if po.acknowledged is not None and po.closed is None:
                    open_units[item.asin] = (
                        open_units.get(item.asin, 0) + item.accepted_eaches - item.received_eaches
                    )
        for asin, f in figures.items():
            assert f.net_received_units == received.get(asin, 0)
            assert f.open_purchase_order_units == open_units.get(asin, 0)
            assert f.sellable_on_hand_units == (
                yesterday[asin].sellable_on_hand_units
                + f.net_received_units
                + f.customer_returns
                - f.ordered_units
            )
            assert f.unfilled_customer_ordered_units == max(0, -f.sellable_on_hand_units)
            assert 0 <= f.shipped_units <= f.ordered_units


def test_the_world_is_a_pure_function_of_seed_and_time():
    config = VendorConfig(origin=ORIGIN)
    a, b = VendorWorld(config), VendorWorld(config)
    later = ORIGIN + timedelta(days=3, hours=5)
    assert b.facts(later) == b.facts(later)
    assert a.facts(ORIGIN) == b.facts(ORIGIN)  # b asked about a later time first: no state carried over
    assert a.facts(later) == b.facts(later)
    other = VendorWorld(VendorConfig(origin=ORIGIN, seed=12)).facts(ORIGIN)
    assert [p.number for p in other.purchase_orders] != [p.number for p in a.facts(ORIGIN).purchase_orders]
    numbers = [p.number for p in a.facts(later).purchase_orders]
    assert len(numbers) == len(set(numbers))


# ---- 7. The CLI -----------------------------------------------------------------------------------------------


def test_cli_vendor_flag_serves_purchase_orders():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SP_API_", "LWA_", "OPTIPLY_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "amazon_optiply.sandbox", "--sp-api-port", "0", "--optiply-port", "0"]
    proc = subprocess.Popen(
        [*cmd, "--skus", "20", "--marketplaces", "DE", "--vendor"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        printed: dict[str, str] = {}
        deadline = time.monotonic() + 20
        while not {"SP_API_ENDPOINT", "LWA_TOKEN_URL", "LWA_CLIENT_SECRET"} <= printed.keys():
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"the CLI printed only {printed} (exit code {proc.poll()})")
            name, _, value = line.strip().partition("=")
            printed[name] = value
        token = httpx.post(
            printed["LWA_TOKEN_URL"],
            data={
                "grant_type": "refresh_token",
                "refresh_token": printed["SP_API_REFRESH_TOKEN"],
                "client_id": printed["LWA_APP_ID"],
                "client_secret": printed["LWA_CLIENT_SECRET"],
            },
        ).json()["access_token"]
        answer = httpx.get(
            f"{printed['SP_API_ENDPOINT']}/vendor/orders/v1/purchaseOrders",
            headers={"x-amz-access-token": token},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["payload"]["orders"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
