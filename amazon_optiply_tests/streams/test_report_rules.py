"""The report streams' rules without a sandbox: windows within Amazon's limits and lags, documents parsed
into typed rows (or refused), and the Pan-EU stock rule."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest

from amazon_optiply.streams import reports as sr
from amazon_optiply.transforms.reports import ReportFormatError

NOW = datetime(2026, 6, 10, 5, 30, tzinfo=UTC)


# ---- windows ------------------------------------------------------------------------------------------------


def test_sales_and_traffic_reads_whole_days_to_yesterday_and_keeps_the_trailing_three_open():
    first = sr.sales_and_traffic_plan(NOW, None)
    assert first.days == [date(2026, 6, 3) + timedelta(days=i) for i in range(7)]  # 7 days to yesterday
    # June 7 ended 53.5 hours ago, so Amazon still revises it: the cursor stops there (June 6 is final).
    assert first.next_cursor == datetime(2026, 6, 7, tzinfo=UTC)
    assert sr.whole_day(date(2026, 6, 3)) == (
        datetime(2026, 6, 3, tzinfo=UTC),
        datetime(2026, 6, 3, 23, 59, 59, tzinfo=UTC),
    )
    a_day_later = sr.sales_and_traffic_plan(NOW + timedelta(days=1), first.next_cursor)
    assert a_day_later.days == [date(2026, 6, 7), date(2026, 6, 8), date(2026, 6, 9), date(2026, 6, 10)]
    assert a_day_later.next_cursor == datetime(2026, 6, 8, tzinfo=UTC)


def test_sales_and_traffic_backfill_stays_inside_amazons_two_years_and_skips_no_day():
    plan = sr.sales_and_traffic_plan(NOW, datetime(2026, 6, 7, tzinfo=UTC), "2020-01-01")
    assert plan.backfill and plan.days[0] == date(2024, 6, 11)  # 730 days back is CANCELLED at Amazon
    assert plan.days[-1] == date(2026, 6, 9) and len(plan.days) == 729
    later = sr.sales_and_traffic_plan(NOW, datetime(2026, 6, 1, tzinfo=UTC), "2026-06-05")
    assert later.days[0] == date(2026, 6, 1), "a backfill after the cursor would skip days"
    with pytest.raises(sr.StreamConfigError, match="ISO date"):
        sr.sales_and_traffic_plan(NOW, None, "10/06/2026")


def test_ledger_windows_end_yesterday_in_months_and_stay_inside_18_months():
    plan, windows = sr.ledger_plan(NOW, None)
    assert windows == [(date(2026, 5, 11), date(2026, 6, 9))]
    assert plan.next_cursor == datetime(2026, 6, 10, tzinfo=UTC)
    plan, windows = sr.ledger_plan(NOW, plan.next_cursor)
    assert windows == [] and plan.window == "none (up to date)"
    plan, windows = sr.ledger_plan(NOW, None, "2020-01-01")
    assert windows[0][0] == date(2024, 12, 11)  # 18 months back, plus a day of margin
    assert all((last - first).days < sr.LEDGER_MAX_WINDOW_DAYS for first, last in windows)
    assert [w[0] for w in windows[1:]] == [w[1] + timedelta(days=1) for w in windows[:-1]]
    assert windows[-1][1] == date(2026, 6, 9)


def test_customer_shipment_windows_stop_three_hours_before_now_and_never_overlap():
    plan = sr.customer_shipments_plan(NOW, None)
    end = NOW - timedelta(hours=3)
    assert plan.windows == [(end - timedelta(days=30) + timedelta(seconds=1), end)]
    later = sr.customer_shipments_plan(NOW + timedelta(hours=2), plan.next_cursor)
    assert later.windows == [(end + timedelta(seconds=1), end + timedelta(hours=2))]
    backfill = sr.customer_shipments_plan(NOW, plan.next_cursor, "2026-01-01")
    assert backfill.windows[0][0] == datetime(2026, 1, 1, tzinfo=UTC)
    assert all(e - s < timedelta(days=30) for s, e in backfill.windows)
    assert [w[0] for w in backfill.windows[1:]] == [
        w[1] + timedelta(seconds=1) for w in backfill.windows[:-1]
    ]


# ---- documents ----------------------------------------------------------------------------------------------


def _tsv(*lines: list[str]) -> str:
    return "".join("\t".join(line) + "\r\n" for line in lines)


def test_afn_rows_keep_their_country_and_set_aside_a_bad_quantity():
    text = _tsv(
        [
            "seller-sku",
            "fulfillment-channel-sku",
            "asin",
            "condition-type",
            "country",
            "quantity-for-local-fulfillment",
        ],
        ["A", "X1", "B000000001", "NewItem", "DE", "5"],
        ["A", "X1", "B000000001", "NewItem", "UK", "2"],
        ["B", "X2", "B000000002", "NewItem", "FR", "n/a"],
    )
    frame, bad = sr.afn_inventory_by_country(text)
    assert frame[["seller_sku", "country", "quantity_for_local_fulfillment"]].values.tolist() == [
        ["A", "DE", 5],
        ["A", "UK", 2],
    ]
    assert frame["quantity_for_local_fulfillment"].dtype == "int64"
    assert len(bad) == 1 and "'n/a'" in bad["reason"].iloc[0]


def test_a_monthly_ledger_is_refused_and_an_extra_store_column_tolerated():
    header = list(sr.LEDGER_SUMMARY_NAMES)
    monthly = _tsv(header, ["06/2026", "X1", "B1", "A", "t", "SELLABLE", *["1"] * 14, "DE"])
    with pytest.raises(ReportFormatError, match="MONTHLY"):
        sr.ledger_summary(monthly)
    detail = _tsv(
        [*sr.LEDGER_DETAIL_NAMES, "Store"],
        ["07/06/2026", "X1", "B1", "A", "t", "Shipments", "R1", "-1", "LEJ1", "SELLABLE", "", "DE", "0", "0",
         "2026-07-06T00:00:00-0700", "Amazon"],
    )  # fmt: skip
    frame, bad, extra = sr.ledger_detail(detail)
    assert extra == ["Store"] and bad.empty
    assert frame.loc[0, "date"] == date(2026, 7, 6) and frame.loc[0, "quantity"] == -1
    assert frame.loc[0, "date_and_time"] == pd.Timestamp("2026-07-06T07:00:00Z")


def test_sales_and_traffic_of_a_widened_window_is_refused():
    document = '{"reportSpecification": {"dataStartTime": "2026-06-01", "dataEndTime": "2026-06-02"}, "salesAndTrafficByAsin": []}'
    with pytest.raises(ReportFormatError, match="not the one day"):
        sr.sales_and_traffic_by_sku(document, date(2026, 6, 1), "1")
    one_day = document.replace("2026-06-02", "2026-06-01").replace(
        "[]",
        '[{"parentAsin": "B1", "childAsin": "B1", "sku": "A", "salesByAsin": {"unitsOrdered": 2, '
        '"orderedProductSales": {"amount": 19.90, "currencyCode": "EUR"}, "totalOrderItems": 1}, '
        '"trafficByAsin": {"sessions": 4}}]',
    )
    row = sr.sales_and_traffic_by_sku(one_day, date(2026, 6, 1), "1").iloc[0]
    assert row["ordered_product_sales"] == Decimal("19.90") and row["date"] == date(2026, 6, 1)
    assert pd.isna(row["units_ordered_b2b"]), "a field Amazon leaves out is unknown, not 0"


def test_customer_shipments_leave_the_buyers_location_out():
    text = _tsv(
        ["shipment-date", "sku", "fnsku", "asin", "fulfillment-center-id", "quantity", "amazon-order-id", "currency",
         "item-price-per-unit", "shipping-price", "gift-wrap-price", "ship-city", "ship-state", "ship-postal-code"],
        ["2026-06-01T10:00:00+00:00", "A", "X1", "B1", "LEJ1", "2", "302-0000001-0000001", "EUR", "9.99", "0.00",
         "0.00", "Hamburg", "Hamburg", "20095"],
    )  # fmt: skip
    frame, bad = sr.customer_shipment_sales(text)
    assert bad.empty and len(frame) == 1
    assert not {"ship-city", "ship-state", "ship-postal-code"} & set(frame.columns)
    assert "Hamburg" not in frame.astype(str).to_string()
    assert frame.loc[0, "item_price_per_unit"] == Decimal("9.99")


# ---- the Pan-EU stock rule ----------------------------------------------------------------------------------


def _stock(rows: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """Today's warehouse_stock: sku -> (fba units as today's rule counts them here, listing quantity)."""
    frame = pd.DataFrame(
        [(sku, fba, listing) for sku, (fba, listing) in rows.items()],
        columns=["sku", "fba_quantity", "listing_quantity"],
    )
    frame["listing_quantity"] = frame["listing_quantity"].astype("Int64")
    use_fba = frame["fba_quantity"] > 0
    frame["stock_level"] = frame["fba_quantity"].astype("Int64").where(use_fba, frame["listing_quantity"])
    frame["stock_source"] = pd.Series(["fba" if u else "listing" for u in use_fba], dtype="string")
    frame["sku"] = frame["sku"].astype("string")
    return frame


def _afn(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "seller_sku": [r[0] for r in rows],
            "country": [r[1] for r in rows],
            "quantity_for_local_fulfillment": [r[2] for r in rows],
        }
    )


AFN = _afn(
    [("both", "DE", 5), ("both", "FR", 3), ("fr-only", "FR", 4), ("with-pl", "DE", 2), ("with-pl", "PL", 6)]
)


def test_each_marketplace_carries_its_own_countrys_units_and_the_home_the_rest_of_the_pool():
    # DE is the pool's home: today's rule gives it the whole pool (totalQuantity), FR gets none.
    home = sr.stock_by_country(
        _stock({"both": (10, 0), "fr-only": (6, 0), "with-pl": (9, 0), "absent": (7, 0)}),
        AFN,
        "DE",
        True,
        ["DE", "FR"],
    )
    fr = sr.stock_by_country(
        _stock({"both": (0, 0), "fr-only": (0, 0), "with-pl": (0, 0), "absent": (0, 4)}),
        AFN,
        "FR",
        False,
        ["DE", "FR"],
    )
    # both: DE 5 + the 2 units beyond local ones; FR 3. fr-only: DE 0 + 2 beyond, FR 4. with-pl: the PL units
    # (no synced marketplace sells in PL) stay with the home. absent: not in the report, today's rule.
    assert home.set_index("sku")["stock_level"].to_dict() == {
        "both": 7,
        "fr-only": 2,
        "with-pl": 9,
        "absent": 7,
    }
    assert fr.set_index("sku")["stock_level"].to_dict() == {
        "both": 3,
        "fr-only": 4,
        "with-pl": 0,
        "absent": 4,
    }
    for sku in ("both", "fr-only", "with-pl", "absent"):  # the pool is counted once, as today
        today = _stock({"both": (10, 0), "fr-only": (6, 0), "with-pl": (9, 0), "absent": (7, 0)})
        assert (
            home.set_index("sku").loc[sku, "fba_quantity"] + fr.set_index("sku").loc[sku, "fba_quantity"]
            == (today.set_index("sku").loc[sku, "fba_quantity"])
        )
    assert fr.set_index("sku")["fba_rule"].to_dict() == {
        "both": "by_country",
        "fr-only": "by_country",
        "with-pl": "by_country",
        "absent": "pool_in_main_marketplace",
    }


def test_a_sku_absent_in_a_country_gets_0_there_only_when_the_report_places_it_elsewhere():
    # FR is not the home here. "de-only" has rows, none in FR: 0 FBA units in FR, so its listing quantity
    # (blank, 0, for an FBA listing). "absent" has no row anywhere: today's rule for it, not 0 from the report.
    afn = _afn([("de-only", "DE", 8)])
    fr = sr.stock_by_country(_stock({"de-only": (0, 0), "absent": (0, 0)}), afn, "FR", False, ["DE", "FR"])
    assert fr.set_index("sku")["fba_rule"].to_dict() == {
        "de-only": "by_country",
        "absent": "pool_in_main_marketplace",
    }
    # In the home, a SKU without any row keeps the whole pool: never 0 because the report left it out.
    de = sr.stock_by_country(_stock({"de-only": (8, 0), "absent": (12, 0)}), afn, "DE", True, ["DE", "FR"])
    assert de.set_index("sku")["stock_level"].to_dict() == {"de-only": 8, "absent": 12}
    # No listing at all (an empty listings report): nothing to place.
    assert sr.stock_by_country(_stock({}), afn, "DE", True, ["DE", "FR"]).empty
    # No rows at all (the report unavailable): today's rule for every SKU.
    unchanged = sr.stock_by_country(_stock({"x": (12, 0)}), _afn([]), "DE", True, ["DE", "FR"])
    assert unchanged["stock_level"].tolist() == [12] and unchanged["fba_rule"].tolist() == [
        "pool_in_main_marketplace"
    ]


def test_the_united_kingdom_is_uk_in_the_report_and_zero_fba_units_fall_back_to_the_listing():
    afn = _afn([("a", "UK", 4), ("b", "UK", 0)])
    gb = sr.stock_by_country(_stock({"a": (4, 0), "b": (0, 9)}), afn, "GB", True, ["GB"])
    assert gb.set_index("sku")["stock_level"].to_dict() == {"a": 4, "b": 9}
    assert gb.set_index("sku")["stock_source"].to_dict() == {"a": "fba", "b": "listing"}
