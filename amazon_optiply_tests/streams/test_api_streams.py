"""The API streams end to end: each asset materialized with the real client over HTTP against the sandbox seller,
its rows compared with the world's ground truth, then a second cycle that reads only what is new."""

from datetime import timedelta
from decimal import Decimal

import pandas as pd
import pytest

from amazon_optiply.defs.seller.amazon.assets import orders_report
from amazon_optiply.defs.seller.streams import api as streams
from amazon_optiply.sandbox import seller_api_streams as truth
from amazon_optiply.sandbox.seller import CANCELLED, PENDING
from amazon_optiply.sandbox.seller_api import seller_api_hooks
from amazon_optiply.streams import api_client
from amazon_optiply_tests.streams.helpers import (
    answered,
    answered_so_far,
    calls,
    materialize,
    metadata,
    no_personal_columns,
)

# ---- order_items ---------------------------------------------------------------------------------------------


ITEM_COLUMNS = [
    "amazon_order_id",
    "order_item_id",
    "asin",
    "seller_sku",
    "quantity_ordered",
    "quantity_shipped",
    "currency",
    "item_price",
    "item_tax",
    "shipping_price",
    "shipping_tax",
    "promotion_discount",
    "shipping_discount",
]


def itemisable(report: pd.DataFrame) -> list[str]:
    per_order = report.drop_duplicates("amazon-order-id")
    return sorted(per_order.loc[~per_order["order-status"].isin([PENDING, CANCELLED]), "amazon-order-id"])


def assert_items_match(h, frame: pd.DataFrame, order_ids: list[str]) -> None:
    expected = truth.expected_order_items(h.sandbox.world, order_ids, h.sandbox.clock.now())
    got = frame[ITEM_COLUMNS].astype(object).where(frame[ITEM_COLUMNS].notna(), None)
    got = got.sort_values("order_item_id").reset_index(drop=True)
    expected = expected[ITEM_COLUMNS].sort_values("order_item_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected.astype(object), check_dtype=False)


@pytest.mark.slow  # two cycles of the orders report and every order's items
def test_order_items_are_fetched_once_per_order_with_exact_prices(h):
    first = materialize(h, [orders_report, streams.order_items], "DE")
    report, frame = first.output_for_node("orders_report"), first.output_for_node("order_items")
    wanted = itemisable(report)
    assert len(wanted) > 20 and set(frame["amazon_order_id"]) == set(wanted)
    assert_items_match(h, frame, wanted)
    # Types: exact decimal strings, whole quantities, the key unique; no buyer data.
    assert frame["item_price"].dtype == "string" and frame["quantity_ordered"].dtype == "Int64"
    assert frame["order_item_id"].is_unique
    assert all(Decimal(p) == Decimal(p).quantize(Decimal("0.01")) for p in frame["item_price"].dropna())
    no_personal_columns(frame)
    # Orders of three or four items take a second page: NextToken is followed, not dropped as the tap did.
    lines = {o: len(truth.order_by_id(h.sandbox.world, o, h.sandbox.clock.now()).lines) for o in wanted}
    assert any(n > 2 for n in lines.values())
    assert answered(h, "getOrderItems") == sum(1 + (n > 2) for n in lines.values())
    assert metadata(first, "order_items")["orders_itemised"] == len(wanted)

    before = answered_so_far(h)
    h.sandbox.advance(timedelta(hours=3))
    second = materialize(h, [orders_report, streams.order_items], "DE")
    report, frame = second.output_for_node("orders_report"), second.output_for_node("order_items")
    new = sorted(set(itemisable(report)) - set(wanted))
    assert new, "no new orders in 3 hours; the test would prove nothing"
    assert sorted(set(frame["amazon_order_id"])) == new  # only orders never itemised
    assert_items_match(h, frame, new)
    new_lines = [len(truth.order_by_id(h.sandbox.world, o, h.sandbox.clock.now()).lines) for o in new]
    assert calls(h, before, "getOrderItems") == sum(1 + (n > 2) for n in new_lines)
    meta = metadata(second, "order_items")
    assert meta["orders_itemised"] == len(new) and meta["orders_still_queued"] == 0


def test_order_items_left_over_by_the_time_budget_wait_in_the_state_database(h, monkeypatch):
    monkeypatch.setattr(streams, "ORDER_ITEMS_RUN_SECONDS", 0.0)  # one order per run
    first = materialize(h, [orders_report, streams.order_items], "DE")
    wanted = itemisable(first.output_for_node("orders_report"))
    meta = metadata(first, "order_items")
    assert meta["orders_itemised"] == 1 and meta["orders_still_queued"] == len(wanted) - 1
    second = materialize(h, [orders_report, streams.order_items], "DE")
    assert metadata(second, "order_items")["orders_queued_new"] == 0
    done = set(first.output_for_node("order_items")["amazon_order_id"])
    assert set(second.output_for_node("order_items")["amazon_order_id"]).isdisjoint(done)


# ---- order_financial_events --------------------------------------------------------------------------------------

FINANCE_KEY = [
    "event_type",
    "amazon_order_id",
    "seller_sku",
    "order_item_id",
    "component",
    "amount_field",
    "amount_type",
    "amount",
    "currency",
    "posted_date",
]


def finance_rows(frame: pd.DataFrame) -> list[tuple]:
    out = []
    for r in frame.astype(object).where(frame.notna(), None).to_dict("records"):
        out.append(tuple(Decimal(r[k]) if k == "amount" else r[k] for k in FINANCE_KEY))
    return sorted(out, key=str)


def truth_rows(rows: list[truth.FinanceRow]) -> list[tuple]:
    out = [
        (
            r.event_type,
            r.amazon_order_id,
            r.seller_sku,
            r.order_item_id,
            r.component,
            r.amount_field,
            r.amount_type,
            r.amount,
            r.currency,
            pd.Timestamp(r.posted_date),
        )
        for r in rows
    ]
    return sorted(out, key=str)


def test_financial_events_are_read_48_hours_behind_amazon_one_row_per_amount(h, monkeypatch):
    world, origin = h.sandbox.world, h.sandbox.config.seller.origin
    monkeypatch.setenv("ORDERS_START", (origin - timedelta(days=5)).isoformat())
    seller_api_hooks(h.sandbox.amazon).expire_next_tokens = 1  # the first page token presented has expired

    first = materialize(h, [streams.order_financial_events], "DE")
    frame = first.output_for_node("order_financial_events")
    meta = metadata(first, "order_financial_events")
    start, end = origin - timedelta(days=5), h.sandbox.clock.now() - timedelta(hours=48)
    assert meta["window_start"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert meta["window_end"] == end.strftime("%Y-%m-%dT%H:%M:%SZ")
    expected = truth.expected_financial_rows(world, "DE", start, end, home=True)
    assert {r.event_type for r in expected} >= {"Shipment", "Refund", "Adjustment"}
    assert finance_rows(frame) == truth_rows(expected)
    assert frame["amount"].dtype == "string" and str(frame["posted_date"].dtype) == "datetime64[ns, UTC]"
    assert frame["row_key"].is_unique and frame["posted_date"].max() < end
    # Pages were followed (100 events a page) and the expired token restarted its window.
    assert meta["pages_read"] >= 2 and answered(h, "listFinancialEvents") > 1 + meta["pages_read"]

    # The US marketplace is its own region: its events and the NA account's, with the tax Amazon withheld.
    us = materialize(h, [streams.order_financial_events], "US").output_for_node("order_financial_events")
    assert finance_rows(us) == truth_rows(truth.expected_financial_rows(world, "US", start, end, home=True))
    assert "MarketplaceFacilitatorTax-Principal" in set(us["amount_type"])

    before = answered_so_far(h)
    h.sandbox.advance(timedelta(days=1))
    second = materialize(h, [streams.order_financial_events], "DE")
    meta = metadata(second, "order_financial_events")
    assert meta["window_start"] == end.strftime("%Y-%m-%dT%H:%M:%SZ")
    new_end = h.sandbox.clock.now() - timedelta(hours=48)
    expected = truth.expected_financial_rows(world, "DE", end, new_end, home=True)
    assert expected and finance_rows(second.output_for_node("order_financial_events")) == truth_rows(expected)
    assert (
        calls(h, before, "listFinancialEvents") == 1 + meta["pages_read"]
    )  # the clock, then one day's pages


def test_financial_events_read_nothing_until_48_hours_have_passed(h):
    """The first window starts at ORDERS_START (two days before the origin here) and ends 48 h before now."""
    result = materialize(h, [streams.order_financial_events], "DE")
    meta = metadata(result, "order_financial_events")
    assert len(result.output_for_node("order_financial_events")) == 0
    assert "nothing new" in meta["window_end"] and meta["windows_read"] == 0
    assert answered(h, "listFinancialEvents") == 1  # only Amazon's clock


# ---- awd_inventory ----------------------------------------------------------------------------------------------


def test_awd_inventory_is_read_whole_in_the_us_and_not_at_all_elsewhere(h, monkeypatch):
    monkeypatch.setattr(api_client, "AWD_PAGE_SIZE", 5)  # pages, and the empty page Amazon may answer
    result = materialize(h, [streams.awd_inventory], "US")
    frame = result.output_for_node("awd_inventory")
    expected = truth.expected_awd(h.sandbox.world)
    got = frame.astype(object).where(frame.notna(), None).sort_values("sku").reset_index(drop=True)
    pd.testing.assert_frame_equal(
        got, expected.sort_values("sku").reset_index(drop=True).astype(object), check_dtype=False
    )
    assert frame["available_distributable_quantity"].dtype == "Int64"
    pages = -(-len(expected) // 5) + 1  # the empty second page
    assert answered(h, "listInventory") == pages

    de = materialize(h, [streams.awd_inventory], "DE")
    assert len(de.output_for_node("awd_inventory")) == 0
    assert "US marketplace only" in metadata(de, "awd_inventory")["read"]
    assert answered(h, "listInventory") == pages


# ---- fba_inbound_shipments --------------------------------------------------------------------------------------

INBOUND_COLUMNS = [
    "shipment_id",
    "shipment_status",
    "destination_fulfillment_center_id",
    "seller_sku",
    "fulfillment_network_sku",
    "quantity_shipped",
    "quantity_received",
    "quantity_in_case",
]


def assert_shipments_match(frame: pd.DataFrame, expected: pd.DataFrame) -> None:
    key = ["shipment_id", "seller_sku"]
    got = frame[INBOUND_COLUMNS].astype(object).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        got,
        expected[INBOUND_COLUMNS].sort_values(key).reset_index(drop=True).astype(object),
        check_dtype=False,
    )


def test_inbound_shipments_and_their_items_then_only_those_updated(h):
    world, now = h.sandbox.world, h.sandbox.clock.now()
    first = materialize(h, [streams.fba_inbound_shipments], "DE")
    frame, meta = first.output_for_node("fba_inbound_shipments"), metadata(first, "fba_inbound_shipments")
    assert meta["window_end"] == now.strftime("%Y-%m-%dT%H:%M:%SZ")
    expected = truth.expected_inbound_items(world, "DE", now - timedelta(days=90), now, now)
    assert expected["shipment_id"].nunique() > 5  # more than a page of getShipments
    assert_shipments_match(frame, expected)
    assert frame["quantity_shipped"].dtype == "Int64" and frame["ship_from_country"].eq("DE").all()
    shipments = expected["shipment_id"].nunique()
    assert answered(h, "getShipmentItemsByShipmentId") == shipments
    assert answered(h, "getShipments") == 1 + -(-shipments // 5)  # the clock, then every page

    before = answered_so_far(h)
    later = h.sandbox.advance(timedelta(days=1))
    second = materialize(h, [streams.fba_inbound_shipments], "DE")
    frame = second.output_for_node("fba_inbound_shipments")
    assert metadata(second, "fba_inbound_shipments")["window_start"] == (now - timedelta(minutes=5)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    updated = truth.expected_inbound_items(world, "DE", now - timedelta(minutes=5), later, later)
    assert 0 < updated["shipment_id"].nunique() < shipments
    assert_shipments_match(frame, updated)
    assert calls(h, before, "getShipmentItemsByShipmentId") == updated["shipment_id"].nunique()


# ---- seller_account, marketplace_participations ----------------------------------------------------------------


def test_account_and_marketplaces_are_the_accounts_in_every_partition_without_personal_data(h):
    for marketplace in ("DE", "US"):
        result = materialize(h, [streams.seller_account, streams.marketplace_participations], marketplace)
        account = result.output_for_node("seller_account")
        assert account.to_dict("records") == [
            {
                "business_type": "PRIVATE_LIMITED",
                "selling_plan": "PROFESSIONAL",
                "business_name": "Sandbox Küchenwelt GmbH",
                "registered_country_code": "DE",
                "participating_marketplaces": "DE,US",
            }
        ]
        no_personal_columns(account)
        assert "Mustermann" not in account.to_string() and "HRB" not in account.to_string()
        markets = result.output_for_node("marketplace_participations")
        assert sorted(markets["country_code"]) == ["DE", "US"] and markets["is_participating"].all()
        assert set(markets["marketplace_id"]) == {"A1PA6795UKMFR9", "ATVPDKIKX0DER"}
    assert answered(h, "getAccount") == 2  # one call per partition
