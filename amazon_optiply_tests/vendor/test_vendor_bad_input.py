"""Issue 14's bad input for the vendor integration, end to end (the real client over HTTP against the sandbox's
Vendor Central): a purchase order with a line in an unknown unit, a weight-priced cost, a date range Amazon
refuses, vendor reports ending FATAL or CANCELLED. Each gives a clear error or a held record, and nothing
wrong reaches Optiply; what is written is compared with the vendor world's ground truth.
"""

from __future__ import annotations

import itertools
import math
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml
from sp_api.api import VendorOrders

from amazon_optiply.clients.amazon import AmazonError, SpApiCaller, SpApiCredentials, utc_iso
from amazon_optiply.clients.selling_partner import SellingPartner
from amazon_optiply.state import SyncState
from amazon_optiply.tenants import TenantRegistry, tenant_state
from amazon_optiply.vendor.orders import purchase_orders, windows
from amazon_optiply_tests.vendor.harness import TENANT, VendorHarness, vendor_harness
from amazon_optiply_tests.vendor.test_vendor_sync import (
    assert_full_flavour_matches_ground_truth,
    assert_sell_orders_only_matches_ground_truth,
    by_remote_id,
)

INVENTORY, SALES = "GET_VENDOR_INVENTORY_REPORT", "GET_VENDOR_SALES_REPORT"
AMAZONS_LIMIT = timedelta(days=7)  # Vendor Orders refuses a created/changed/updated range over 7 days


# ---- helpers -------------------------------------------------------------------------------------------


def metadata(h: VendorHarness, asset: str) -> dict:
    """The latest materialization's metadata of a vendor asset (one partition: vendorco/DE)."""
    event = h.instance.get_latest_materialization_event(dg.AssetKey(asset))
    assert event is not None, f"{asset} was never materialized"
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def rows(h: VendorHarness, asset: str) -> pd.DataFrame:
    """The rows a payload asset stored in its latest materialization."""
    return pd.read_parquet(metadata(h, asset)["path"])


def state(h: VendorHarness) -> SyncState:
    return tenant_state(TenantRegistry.load().tenant(TENANT))


def posted(h: VendorHarness, since: int, entity: str) -> list[dict]:
    """The POSTs of `entity` Optiply received since write number `since`."""
    return [
        w
        for w in h.sandbox.optiply.writes()[since:]
        if w["method"] == "POST" and w["path"] == f"/v1/{entity}"
    ]


def stock(h: VendorHarness) -> dict[str, int]:
    return {p["remoteId"]: p["stockLevel"] for p in h.optiply("products").values()}


def reports_of(h: VendorHarness, report_type: str) -> list:
    """The sandbox's reports of a type, in the order they were requested."""
    found = [r for r in h.sandbox.amazon.reports.values() if r.report_type == report_type]
    return sorted(found, key=lambda r: int(r.report_id))


def preload_parent(h: VendorHarness) -> dict[str, int]:
    """sell_orders_only: the parent system's products in Optiply; their id by EAN."""
    h.sandbox.optiply.preload_products(h.sandbox.vendor.parent_products())
    return {p["eanCode"]: i for i, p in h.optiply("products").items()}


def held_rows(payload: pd.DataFrame, number: str) -> pd.DataFrame:
    order = payload[payload["remoteId"] == number]
    assert len(order), f"{number} has no payload row: dropped silently instead of held"
    assert (order["disposition"] == "held").all(), (number, set(order["disposition"]))
    return order


# ---- a line in an unknown unit -------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["full", "sell_orders_only"])
def test_a_purchase_order_with_a_line_in_an_unknown_unit_is_held_naming_the_unit(
    fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flavour: str
):
    with vendor_harness(fast_tmp_path, monkeypatch, flavour, unknown_unit_orders=3) as h:
        ids_by_ean = preload_parent(h) if flavour == "sell_orders_only" else {}
        h.sync()
        bad = {po.number: po for po in h.facts().purchase_orders if po.has_unknown_unit}
        assert len(bad) == 3
        if flavour == "full":
            payload_asset, entity = "vendor_buy_order_payloads", "buyOrders"
            in_scope = bad  # the whole lookback is read
            # One of them would otherwise be a buy order (acknowledged, units accepted): this proves something.
            assert any(
                po.acknowledged and any(i.accepted_eaches for i in po.items if i.known_unit)
                for po in in_scope.values()
            )
            assert_full_flavour_matches_ground_truth(
                h
            )  # every other order, line and receipt as Amazon has it
            lines = h.optiply("buyOrderLines").values()
            assert not {line["remoteId"].split("-")[0] for line in lines} & set(bad)
        else:
            payload_asset, entity = "vendor_sell_order_payloads", "sellOrders"
            in_scope = {n: po for n, po in bad.items() if po.placed >= h.orders_start and po.state != "New"}
            assert in_scope, "no unknown-unit order after the orders start: the test would prove nothing"
            assert_sell_orders_only_matches_ground_truth(h, ids_by_ean)

        assert not set(by_remote_id(h.optiply(entity))) & set(bad), "an order with an unknown unit went out"
        payload = rows(h, payload_asset)
        for number, po in in_scope.items():
            problem = held_rows(payload, number)["problem"].iloc[0]
            for item in po.items:
                if not item.known_unit:
                    named = f"item {item.sequence}: orderedQuantity in unknown unit {item.unit_of_measure!r}"
                    assert named in problem, (number, problem)
        # The operator sees them: the payload's `held` metadata and the raw orders' `problems` name each.
        held = metadata(h, payload_asset)["held"]
        problems = metadata(h, "vendor_purchase_orders")["problems"]
        for number, po in in_scope.items():
            unit = next(i.unit_of_measure for i in po.items if not i.known_unit)
            assert number in held and f"unknown unit {unit!r}" in held
            assert number in problems


# ---- a weight-priced cost ------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["full", "sell_orders_only"])
def test_a_weight_priced_cost_holds_the_order_saying_per_kilograms(
    fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flavour: str
):
    # sell_orders_only: orders from before the vendor's history, so its weight-priced orders are in scope.
    settings = {"orders_start": (datetime.now(UTC) - timedelta(days=30)).isoformat()}
    with vendor_harness(
        fast_tmp_path,
        monkeypatch,
        flavour,
        settings=settings if flavour == "sell_orders_only" else None,
        weight_priced_products=3,
    ) as h:
        ids_by_ean = preload_parent(h) if flavour == "sell_orders_only" else {}
        h.sync()
        facts = h.facts()
        weight = {po.number: po for po in facts.purchase_orders if po.weight_priced}
        if flavour == "full":
            payload_asset, entity = "vendor_buy_order_payloads", "buyOrders"
            in_scope = weight
            assert any(
                po.acknowledged and any(i.accepted_eaches for i in po.items) for po in in_scope.values()
            ), "no weight-priced order would be a buy order: the test would prove nothing"
            assert_full_flavour_matches_ground_truth(h)
            # Its supplier product is there (lead time and all) but without a price, rather than a wrong one.
            supplier_products = by_remote_id(h.optiply("supplierProducts"))
            priced_by_weight = [p for p in facts.products if p.cost_unit]
            assert len(priced_by_weight) == 3
            for product in priced_by_weight:
                key = f"{product.vendor_code}-{product.asin}"
                assert key in supplier_products, key
                assert supplier_products[key].get("price") is None, (key, supplier_products[key])
                assert supplier_products[key].get("deliveryTime"), key
            assert sum(1 for sp in supplier_products.values() if sp.get("price") is not None) >= 20
        else:
            payload_asset, entity = "vendor_sell_order_payloads", "sellOrders"
            in_scope = {
                n: po for n, po in weight.items() if po.placed >= h.orders_start and po.state != "New"
            }
            assert_sell_orders_only_matches_ground_truth(h, ids_by_ean)
        assert len(in_scope) >= 3, "too few weight-priced orders to prove anything"

        assert not set(by_remote_id(h.optiply(entity))) & set(weight), "a weight-priced order went out"
        payload = rows(h, payload_asset)
        for number, po in in_scope.items():
            order = held_rows(payload, number)
            problem = order["problem"].iloc[0]
            for item in po.items:
                if item.cost_unit:
                    product = facts.product(item.asin)
                    said = (
                        f"item {item.sequence}: netCost {item.net_cost:.2f} {product.currency} is per "
                        f"{item.cost_unit}, not per each"
                    )
                    assert said in problem, (number, problem)
            assert "per KILOGRAMS" in problem
            assert order["subtotalValue"].isna().all(), "a held order carries no computed value"


# ---- a range Amazon refuses ----------------------------------------------------------------------------


def assert_windows_cover(start: datetime, end: datetime) -> None:
    got = windows(start, end)
    if start >= end:
        assert got == []
        return
    assert got[0][0] == start and got[-1][1] == end, "the windows do not cover the range"
    for a, b in got:
        assert timedelta(0) < b - a <= AMAZONS_LIMIT, (a, b)
    for (_, previous_end), (next_start, _) in itertools.pairwise(got):
        assert previous_end == next_start, "a gap or an overlap between windows"
    assert len(got) == math.ceil((end - start) / AMAZONS_LIMIT), "more calls than needed"


@pytest.mark.parametrize(
    "length",
    [
        timedelta(0),
        -timedelta(days=1),
        timedelta(microseconds=1),
        timedelta(days=7) - timedelta(microseconds=1),
        timedelta(days=7),
        timedelta(days=7, microseconds=1),
        timedelta(days=10),
        timedelta(days=14),
        timedelta(days=30),
        timedelta(days=60),
        timedelta(days=180),
    ],
)
def test_windows_are_never_longer_than_seven_days_contiguous_and_cover_the_range(length: timedelta):
    start = datetime(2026, 3, 29, 0, 30, 15, 123456, tzinfo=UTC)  # across a DST change: UTC has none
    assert_windows_cover(start, start + length)


def test_windows_of_random_ranges():
    rng = random.Random(14)
    origin = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(500):
        start = origin + timedelta(seconds=rng.uniform(0, 365 * 86400))
        assert_windows_cover(start, start + timedelta(seconds=rng.uniform(0, 181 * 86400)))


@pytest.mark.parametrize("days", [30, pytest.param(180, marks=pytest.mark.slow)])
def test_a_long_purchase_order_lookback_is_read_in_windows_amazon_accepts(
    fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch, days: int
):
    with vendor_harness(
        fast_tmp_path, monkeypatch, "full", settings={"purchase_order_lookback_days": days}
    ) as h:
        h.sync()  # one window Amazon refused (400 InvalidInput, not retried) would have failed the run
        now = h.sandbox.clock.now()
        window = metadata(h, "vendor_purchase_orders")["window"]
        assert window.startswith(f"created {utc_iso(now - timedelta(days=days))} to {utc_iso(now)}")
        # Every window asked for (one page each here): the whole lookback, in as few calls as Amazon allows.
        windows_needed = math.ceil(days / 7)
        calls = h.sandbox.amazon.calls
        assert calls["getPurchaseOrdersStatus"] == windows_needed
        assert calls["getPurchaseOrders"] >= windows_needed
        assert not h.sandbox.amazon.throttled
        assert_full_flavour_matches_ground_truth(h)


def test_a_range_over_seven_days_is_refused_by_amazon_with_a_clear_error(
    fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    with vendor_harness(fast_tmp_path, monkeypatch) as h:
        env = h.sandbox.env()
        partner = SellingPartner(
            SpApiCredentials(env["SP_API_REFRESH_TOKEN"], env["LWA_APP_ID"], env["LWA_CLIENT_SECRET"]),
            SpApiCaller(),
            endpoint=env["SP_API_ENDPOINT"],
            lwa_token_url=env["LWA_TOKEN_URL"],
        )
        api = partner.api(VendorOrders, "DE")
        now = h.sandbox.clock.now()
        start = now - timedelta(days=10)
        with pytest.raises(AmazonError) as refused:
            partner.caller.call(
                "getPurchaseOrders",
                lambda: api.get_purchase_orders(
                    createdAfter=utc_iso(start), createdBefore=utc_iso(now), includeDetails="true"
                ),
                expect="orders",
            )
        message = str(refused.value)
        assert message.startswith("getPurchaseOrders refused by Amazon (400 "), message
        assert "not retried" in message
        assert "InvalidInput: Invalid Input" in message, "Amazon's error code and text must reach the message"
        assert "must not exceed 7 days" in message
        assert h.sandbox.amazon.calls["getPurchaseOrders"] == 1, "a 400 is not worth a retry"

        # The platform's reader asks for the same ten days in two windows Amazon accepts, and gets them all.
        orders = [o for page in purchase_orders(partner, "DE", start, now) for o in page]
        expected = {po.number for po in h.facts().purchase_orders if po.placed >= start}
        assert len(expected) >= 20
        assert {o["purchaseOrderNumber"] for o in orders} == expected
        assert h.sandbox.amazon.calls["getPurchaseOrders"] == 1 + 2


# ---- the inventory report ending FATAL or CANCELLED ----------------------------------------------------


@pytest.mark.slow  # three cycles
def test_a_fatal_inventory_report_fails_the_run_naming_it_and_stock_stays(
    fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    with vendor_harness(fast_tmp_path, monkeypatch) as h:
        h.sync()
        before = h.sandbox.optiply.snapshot()
        assert any(level > 0 for level in stock(h).values())
        h.advance(timedelta(days=1))  # a new day published: Amazon's stock moved
        reason = "The inventory figures could not be compiled (forced by the test)."
        h.sandbox.amazon.forced_outcomes[INVENTORY] = ("FATAL", reason)
        writes = h.writes()

        result = h.run()

        assert not result.success
        assert result.error.startswith("vendor_inventory_report: "), result.error
        assert f"{INVENTORY} report" in result.error and "for DE ended FATAL" in result.error
        assert reason in result.error, "Amazon's error document must reach the failure message"
        assert reason in state(h).report_fatal(INVENTORY, "DE")[1]
        # Nothing zeroed, nothing stale written over: products hold the last delivered stock ...
        after = h.sandbox.optiply.snapshot()
        assert after["products"] == before["products"]
        expected = h.expected_products()
        assert any(expected[k]["stockLevel"] != v for k, v in stock(h).items()), (
            "nothing changed: proves nothing"
        )
        # ... and no other write went out on the failed report: Optiply holds exactly what it held.
        assert h.sandbox.optiply.writes()[writes:] == []
        assert after == before

        del h.sandbox.amazon.forced_outcomes[INVENTORY]
        h.sync()
        assert_full_flavour_matches_ground_truth(h)
        assert state(h).report_fatal(INVENTORY, "DE") is None


@pytest.mark.slow  # two cycles
def test_an_inventory_report_cancelled_for_the_newest_day_and_the_day_before_fails_saying_no_data(
    fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    with vendor_harness(fast_tmp_path, monkeypatch) as h:
        h.sync()
        before = h.sandbox.optiply.snapshot()
        h.advance(timedelta(days=1))
        newest = h.facts().available_days()[-1]
        h.sandbox.amazon.forced_outcomes[INVENTORY] = ("CANCELLED", "")
        asked_before, writes = len(reports_of(h, INVENTORY)), h.writes()

        result = h.run()

        assert not result.success
        assert result.error.startswith("vendor_inventory_report: "), result.error
        assert f"{INVENTORY} for DE" in result.error and "no data" in result.error
        assert str(newest) in result.error and "stock is left as last delivered" in result.error
        asked = [r.data_start.date() for r in reports_of(h, INVENTORY)[asked_before:]]
        assert asked == [newest, newest - timedelta(days=1)], "the newest day, then the day before, once each"
        assert h.sandbox.optiply.writes()[writes:] == []
        assert h.sandbox.optiply.snapshot() == before
        assert any(h.expected_products()[k]["stockLevel"] != v for k, v in stock(h).items())


@pytest.mark.slow  # two cycles
def test_an_inventory_report_cancelled_for_the_newest_day_only_gives_the_day_befores_stock(
    fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    with vendor_harness(fast_tmp_path, monkeypatch) as h:
        facts = h.facts()
        newest = facts.available_days()[-1]
        day_before = newest - timedelta(days=1)
        h.sandbox.amazon.forced_outcomes[(INVENTORY, newest)] = ("CANCELLED", "")

        h.sync()

        assert metadata(h, "vendor_inventory_report")["day"] == day_before.isoformat()
        figures, newest_figures = (h.sandbox.vendor.day_figures(d) for d in (day_before, newest))
        expected = {p.ean: max(figures[p.asin].sellable_on_hand_units, 0) for p in facts.products}
        assert stock(h) == expected
        assert any(
            max(newest_figures[p.asin].sellable_on_hand_units, 0) != expected[p.ean] for p in facts.products
        ), "the two days have the same stock: the test would prove nothing"
        asked = [r.data_start.date() for r in reports_of(h, INVENTORY)]
        assert asked == [newest, day_before]

        # Once Amazon gives the newest day, products carry its stock.
        del h.sandbox.amazon.forced_outcomes[(INVENTORY, newest)]
        h.sync()
        assert_full_flavour_matches_ground_truth(h)


@pytest.mark.slow  # two cycles
def test_stock_never_goes_back_to_an_older_day_than_already_read(
    fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Day D's stock delivered, then Amazon cancels D: the day before is not read (it would be older stock)."""
    with vendor_harness(fast_tmp_path, monkeypatch) as h:
        h.sync()
        newest = h.facts().available_days()[-1]
        before, writes = stock(h), h.writes()
        asked_before = len(reports_of(h, INVENTORY))
        h.sandbox.amazon.forced_outcomes[(INVENTORY, newest)] = ("CANCELLED", "")

        result = h.run()

        assert not result.success and "older than the stock already read" in result.error, result.error
        assert [r.data_start.date() for r in reports_of(h, INVENTORY)[asked_before:]] == [newest]
        assert stock(h) == before and h.writes() == writes


# ---- the sales report ending FATAL ---------------------------------------------------------------------


@pytest.mark.slow  # three cycles over two days
def test_a_fatal_sales_report_writes_no_demand_and_the_next_cycle_delivers_the_missing_days_once(
    fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    with vendor_harness(fast_tmp_path, monkeypatch) as h:
        h.sync()
        cursor = state(h).stream_cursor("vendor_sales_days", "DE")
        assert cursor is not None
        delivered = set(by_remote_id(h.optiply("sellOrders")))
        assert delivered == set(h.expected_demand())
        h.advance(timedelta(days=2))
        missing = set(h.expected_demand()) - delivered
        assert len({key.split("-", 1)[1] for key in missing}) == 2, "two new days of demand"
        reason = "The sales figures could not be compiled (forced by the test)."
        h.sandbox.amazon.forced_outcomes[SALES] = ("FATAL", reason)
        writes = h.writes()

        result = h.run()

        assert not result.success
        assert result.error.startswith("vendor_sales_report: "), result.error
        assert f"{SALES} report" in result.error and "for DE ended FATAL" in result.error
        assert reason in result.error
        assert posted(h, writes, "sellOrders") == [], "demand was written on a failed sales report"
        assert set(by_remote_id(h.optiply("sellOrders"))) == delivered
        assert state(h).stream_cursor("vendor_sales_days", "DE") == cursor, "the sales cursor moved"
        # Stock and buy orders do not wait for the sales report: they are Amazon's, now.
        products = by_remote_id(h.optiply("products"))
        assert {k: p["stockLevel"] for k, p in products.items()} == {
            k: p["stockLevel"] for k, p in h.expected_products().items()
        }
        assert set(by_remote_id(h.optiply("buyOrders"))) == set(h.expected_buy_orders())

        del h.sandbox.amazon.forced_outcomes[SALES]
        writes = h.writes()
        h.sync()
        new = [w["attributes"]["remoteId"] for w in posted(h, writes, "sellOrders")]
        assert sorted(new) == sorted(missing), "the missing days, each once, and nothing else"
        assert_full_flavour_matches_ground_truth(h)
        assert state(h).stream_cursor("vendor_sales_days", "DE") > cursor


# ---- the sales report ending CANCELLED -----------------------------------------------------------------


@pytest.mark.slow  # two cycles
def test_a_sales_report_cancelled_for_days_amazon_has_published_fails_naming_them(
    fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # The orders start is before the vendor's history on Amazon: Amazon cancels a report holding those days.
    settings = {"orders_start": (datetime.now(UTC) - timedelta(days=30)).isoformat()}
    with vendor_harness(fast_tmp_path, monkeypatch, settings=settings) as h:
        first_day = h.facts().available_days()[0]
        assert h.orders_start.date() < first_day

        result = h.run()

        # A clear error, not a silent "up to date" with every day of demand missing, cycle after cycle.
        assert not result.success
        assert result.error.startswith("vendor_sales_report: "), result.error
        error = result.error
        assert f"{SALES} for DE: Amazon has no data for {h.orders_start.date()}.." in error
        assert "(CANCELLED)" in error and "set orders_start" in error
        assert not h.optiply("sellOrders")
        assert state(h).stream_cursor("vendor_sales_days", "DE") is None
        # Stock and buy orders do not wait for the sales report.
        assert {k: p["stockLevel"] for k, p in by_remote_id(h.optiply("products")).items()} == {
            k: p["stockLevel"] for k, p in h.expected_products().items()
        }
        assert set(by_remote_id(h.optiply("buyOrders"))) == set(h.expected_buy_orders())

        # The consultant sets the orders start to the vendor's first day: its demand arrives, each day once.
        registry = Path(os.environ["TENANTS_FILE"])
        tenants = yaml.safe_load(registry.read_text())
        h.orders_start = datetime.combine(first_day, datetime.min.time(), UTC)
        tenants["tenants"][0]["settings"]["orders_start"] = h.orders_start.isoformat()
        registry.write_text(yaml.safe_dump(tenants))
        h.sync()
        assert len(h.optiply("sellOrders")) >= 100
        assert_full_flavour_matches_ground_truth(h)


@pytest.mark.slow  # three cycles over two days
def test_a_sales_report_cancelled_for_the_newest_day_delivers_the_days_before_it_and_that_day_later(
    fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    with vendor_harness(fast_tmp_path, monkeypatch) as h:
        h.sync()
        delivered = set(by_remote_id(h.optiply("sellOrders")))
        h.advance(timedelta(days=2))
        newest = h.facts().available_days()[-1]
        by_day = {}
        for key in set(h.expected_demand()) - delivered:
            by_day.setdefault(key.split("-", 1)[1], set()).add(key)
        assert sorted(by_day) == [str(newest - timedelta(days=1)), str(newest)]
        # Amazon is late with the newest day: a report holding it is CANCELLED.
        h.sandbox.amazon.forced_outcomes[(SALES, newest)] = ("CANCELLED", "")
        writes = h.writes()

        h.sync()

        new = [w["attributes"]["remoteId"] for w in posted(h, writes, "sellOrders")]
        assert sorted(new) == sorted(by_day[str(newest - timedelta(days=1))]), "the day before, once"
        assert str(newest) in metadata(h, "vendor_sales_report")["waiting_for"]
        assert state(h).stream_cursor("vendor_sales_days", "DE").date() == newest

        del h.sandbox.amazon.forced_outcomes[(SALES, newest)]
        writes = h.writes()
        h.sync()
        new = [w["attributes"]["remoteId"] for w in posted(h, writes, "sellOrders")]
        assert sorted(new) == sorted(by_day[str(newest)]), "the newest day, once"
        assert_full_flavour_matches_ground_truth(h)
