"""Each report stream materialized against the sandbox over HTTP (the real client), its rows compared with
the seller world's ground truth, and a second cycle that reads only the new window."""

import logging
from datetime import date, timedelta
from decimal import Decimal

import pandas as pd
import pytest

from amazon_optiply.clients.amazon import SpApiCaller, SpApiCredentials
from amazon_optiply.clients.selling_partner import ReportFailed, SellingPartner
from amazon_optiply.sandbox import seller_streams as truth
from amazon_optiply.streams import reports as sr
from amazon_optiply.transforms.reports import ReportFormatError
from amazon_optiply_tests.streams.materialize import check_passed, materialize, metadata, reports_of, stored

LOG = logging.getLogger(__name__)


def selling_partner(harness) -> SellingPartner:
    env = harness.sandbox.env()
    return SellingPartner(
        SpApiCredentials(env["SP_API_REFRESH_TOKEN"], env["LWA_APP_ID"], env["LWA_CLIENT_SECRET"]),
        SpApiCaller(),
        endpoint=env["SP_API_ENDPOINT"],
        lwa_token_url=env["LWA_TOKEN_URL"],
    )


def assert_same_rows(held: pd.DataFrame, expected: pd.DataFrame, key: list[str]) -> None:
    """The same rows with the same values (Decimals, dates, integers as such), whatever their order."""
    assert len(held) == len(expected) > 0
    columns = list(expected.columns)
    a = held[columns].sort_values(key, ignore_index=True)
    b = expected[columns].sort_values(key, ignore_index=True)
    for column in columns:
        left, right = a[column].tolist(), b[column].tolist()
        if isinstance(right[0], float):
            assert left == pytest.approx(right, abs=0.005), column
        else:
            assert left == right, column


def creates(harness, report_type: str) -> int:
    return len(reports_of(harness, report_type))


# ---- AFN inventory by country -------------------------------------------------------------------------------


def expected_afn(world) -> pd.DataFrame:
    units = truth.afn_units_by_country(world)
    return pd.DataFrame(
        {
            "seller_sku": units["sku"],
            "fulfillment_channel_sku": units["fnsku"],
            "asin": units["asin"],
            "condition_type": units["condition"],
            "country": units["country"].replace({"GB": "UK"}),
            "quantity_for_local_fulfillment": units["quantity"].astype(int),
        }
    )


def test_afn_by_country_keeps_each_rows_country_and_asks_amazon_at_most_every_30_minutes(harness):
    sandbox = harness.sandbox
    result = materialize(harness, "afn_inventory_by_country", "DE")
    first = metadata(result, "afn_inventory_by_country")
    assert first["available"] is True and first["report_reused"] is False
    assert check_passed(result, "afn_inventory_by_country")
    rows = stored(harness, "afn_inventory_by_country", "DE")
    assert rows["quantity_for_local_fulfillment"].dtype == "int64"
    assert_same_rows(rows, expected_afn(sandbox.world), ["seller_sku", "condition_type", "country"])
    # Asked in DE, the report holds the seller's units in every European country, each row with its own.
    assert set(rows["country"]) == {"DE", "FR", "PL"}

    sandbox.advance(timedelta(minutes=20))  # inside Amazon's 30 minutes: the report is read again
    again = metadata(materialize(harness, "afn_inventory_by_country", "DE"), "afn_inventory_by_country")
    assert again["report_reused"] is True and again["report_id"] == first["report_id"]
    assert creates(harness, sr.AFN_BY_COUNTRY) == 1

    sandbox.advance(timedelta(minutes=10))  # 30 minutes on: a new report, with the stock as it is now
    later = metadata(materialize(harness, "afn_inventory_by_country", "DE"), "afn_inventory_by_country")
    assert later["report_reused"] is False and creates(harness, sr.AFN_BY_COUNTRY) == 2
    assert_same_rows(
        stored(harness, "afn_inventory_by_country", "DE"),
        expected_afn(sandbox.world),
        ["seller_sku", "condition_type", "country"],
    )
    assert all(r.status == "DONE" for r in reports_of(harness, sr.AFN_BY_COUNTRY)), "a request went FATAL"

    us = metadata(materialize(harness, "afn_inventory_by_country", "US"), "afn_inventory_by_country")
    assert us["available"] is False and "not a European marketplace" in us["reason"]
    assert creates(harness, sr.AFN_BY_COUNTRY) == 2, "asked outside Europe, where Amazon ends it FATAL"


# ---- sales and traffic --------------------------------------------------------------------------------------


def expected_sales_and_traffic(world, days: list[date], as_of) -> pd.DataFrame:
    return pd.concat([truth.sales_and_traffic_truth(world, "DE", d, as_of) for d in days], ignore_index=True)


@pytest.mark.slow  # eleven day reports over two cycles
def test_sales_and_traffic_reads_whole_days_and_rereads_the_days_amazon_still_revises(harness):
    sandbox = harness.sandbox
    now = sandbox.clock.now()
    result = materialize(harness, "sales_and_traffic", "DE")
    first = metadata(result, "sales_and_traffic")
    yesterday = now.date() - timedelta(days=1)
    days = [yesterday - timedelta(days=i) for i in range(6, -1, -1)]
    assert (first["data_start"], first["data_end"]) == (str(days[0]), str(days[-1]))
    assert check_passed(result, "sales_and_traffic")
    rows = stored(harness, "sales_and_traffic", "DE")
    expected = expected_sales_and_traffic(sandbox.world, days, now)
    assert_same_rows(rows, expected, ["date", "sku"])
    assert isinstance(rows["ordered_product_sales"].iloc[0], Decimal) and isinstance(
        rows["date"].iloc[0], date
    )
    assert rows["units_ordered"].sum() > 50
    for report in reports_of(harness, sr.SALES_AND_TRAFFIC):  # one report per whole UTC day, per SKU
        assert report.data_start.time().isoformat() == "00:00:00"
        assert report.data_end - report.data_start == timedelta(hours=23, minutes=59, seconds=59)
        assert report.options.options == {"dateGranularity": "DAY", "asinGranularity": "SKU"}

    sandbox.advance(timedelta(days=1))
    later_now = sandbox.clock.now()
    asked_before = creates(harness, sr.SALES_AND_TRAFFIC)
    second = metadata(materialize(harness, "sales_and_traffic", "DE"), "sales_and_traffic")
    # Only the days Amazon still revised at the last read, and the new one: 3 + 1 reports, not 8.
    revised_until = {d: sr.whole_day(d)[0] + timedelta(days=1, hours=72) for d in days}
    open_days = [d for d in days if revised_until[d] > now] + [yesterday + timedelta(days=1)]
    assert len(open_days) == 4 and creates(harness, sr.SALES_AND_TRAFFIC) - asked_before == 4
    assert (second["data_start"], second["data_end"]) == (str(open_days[0]), str(open_days[-1]))
    rows_again = stored(harness, "sales_and_traffic", "DE")
    assert_same_rows(
        rows_again, expected_sales_and_traffic(sandbox.world, open_days, later_now), ["date", "sku"]
    )
    # The re-read day came back revised (sessions arrive late), and final now: its last read is final.
    revised = open_days[0]
    assert revised_until[revised] <= later_now and second["final_through"] == str(revised)
    before = rows[rows["date"] == revised].set_index("sku")["sessions"]
    after = rows_again[rows_again["date"] == revised].set_index("sku")["sessions"]
    assert (after.reindex(before.index) > before).any()


def test_sales_and_traffic_traps_widened_windows_and_two_years(harness):
    partner, now = selling_partner(harness), harness.sandbox.clock.now()
    day = now.date() - timedelta(days=3)
    noon = sr.whole_day(day)[0] + timedelta(hours=12)
    options = {"dateGranularity": "DAY", "asinGranularity": "SKU"}
    widened = partner.fetch_report(
        "DE", sr.SALES_AND_TRAFFIC, LOG, noon, noon + timedelta(days=1), options=options
    )
    with pytest.raises(ReportFormatError, match="not the one day"):  # Amazon summed two days into byAsin
        sr.sales_and_traffic_by_sku(widened.text, day, widened.report_id)
    start, end = sr.whole_day(now.date() - timedelta(days=731))
    assert (
        partner.fetch_report("DE", sr.SALES_AND_TRAFFIC, LOG, start, end, options=options).status
        == "CANCELLED"
    )


# ---- the FBA inventory ledger -------------------------------------------------------------------------------

SUMMARY_KEY = ["date", "msku", "fnsku", "location"]
DETAIL_KEY = ["date_and_time", "msku", "event_type", "reference_id", "quantity"]


@pytest.mark.slow  # two views over two cycles
def test_ledger_summary_and_detail_read_every_event_daily_by_country_up_to_yesterday(harness):
    sandbox, world = harness.sandbox, harness.sandbox.world
    now = sandbox.clock.now()
    yesterday = now.date() - timedelta(days=1)
    first = yesterday - timedelta(days=29)
    summary = materialize(harness, "fba_inventory_ledger", "DE")
    detail = materialize(harness, "fba_inventory_ledger_detail", "DE")
    for result, asset in ((summary, "fba_inventory_ledger"), (detail, "fba_inventory_ledger_detail")):
        assert check_passed(result, asset)
        assert (metadata(result, asset)["data_start"], metadata(result, asset)["data_end"]) == (
            str(first),
            str(yesterday),
        )
    (summary_report,) = reports_of(harness, sr.LEDGER_SUMMARY)
    assert summary_report.options.options == {
        "aggregateByLocation": "COUNTRY",
        "aggregatedByTimePeriod": "DAILY",
    }
    assert summary_report.options.dates_in_body
    (detail_report,) = reports_of(harness, sr.LEDGER_DETAIL)
    assert detail_report.options.options == {}, "an eventType would leave the other events out"

    rows = stored(harness, "fba_inventory_ledger", "DE")
    assert_same_rows(rows, truth.ledger_summary_truth(world, "DE", first, yesterday, now), SUMMARY_KEY)
    assert set(rows["location"]) == {"DE", "FR", "PL"} and isinstance(rows["date"].iloc[0], date)
    events = stored(harness, "fba_inventory_ledger_detail", "DE")
    expected_events = truth.ledger_events_truth(world, "DE", first, yesterday, now)
    assert_same_rows(
        events,
        expected_events.assign(date_and_time=pd.to_datetime(expected_events["date_and_time"])),
        DETAIL_KEY,
    )
    assert set(events["event_type"]) == {"Shipments", "Receipts", "CustomerReturns", "Adjustments"}
    assert (events.loc[events["event_type"] == "Shipments", "quantity"] < 0).all()

    sandbox.advance(timedelta(days=1))
    later_now = sandbox.clock.now()
    new_day = yesterday + timedelta(days=1)
    again = metadata(materialize(harness, "fba_inventory_ledger", "DE"), "fba_inventory_ledger")
    assert (again["data_start"], again["data_end"]) == (str(new_day), str(new_day))
    assert len(reports_of(harness, sr.LEDGER_SUMMARY)) == 2
    assert_same_rows(
        stored(harness, "fba_inventory_ledger", "DE"),
        truth.ledger_summary_truth(world, "DE", new_day, new_day, later_now),
        SUMMARY_KEY,
    )
    metadata(materialize(harness, "fba_inventory_ledger_detail", "DE"), "fba_inventory_ledger_detail")
    assert len(reports_of(harness, sr.LEDGER_DETAIL)) == 2
    assert set(stored(harness, "fba_inventory_ledger_detail", "DE")["date"]) == {new_day}


def test_ledger_traps_empty_without_dates_in_the_body_or_with_today(harness):
    partner, now = selling_partner(harness), harness.sandbox.clock.now()
    daily = {"aggregateByLocation": "COUNTRY", "aggregatedByTimePeriod": "DAILY"}
    no_dates = partner.fetch_report("DE", sr.LEDGER_SUMMARY, LOG, options=daily)
    assert no_dates.status == "DONE" and len(no_dates.text.splitlines()) == 1  # header only
    start, _ = sr.whole_day(now.date() - timedelta(days=2))
    _, end_today = sr.whole_day(now.date())
    with_today = partner.fetch_report("DE", sr.LEDGER_SUMMARY, LOG, start, end_today, options=daily)
    assert len(with_today.text.splitlines()) == 1
    monthly = partner.fetch_report("DE", sr.LEDGER_SUMMARY, LOG, start, end_today - timedelta(days=1))
    with pytest.raises(ReportFormatError, match="MONTHLY"):  # the default period, when DAILY is not sent
        sr.ledger_summary(monthly.text)


# ---- FBA customer shipment sales ----------------------------------------------------------------------------

SHIPMENT_KEY = ["amazon_order_id", "sku", "shipment_date"]


def expected_shipments(world, start, end, as_of) -> pd.DataFrame:
    frame = truth.customer_shipments_truth(world, "DE", start, end, as_of)
    return frame.assign(shipment_date=pd.to_datetime(frame["shipment_date"]))


def test_customer_shipment_sales_end_three_hours_back_and_the_next_window_follows_on(harness):
    sandbox, world = harness.sandbox, harness.sandbox.world
    now = sandbox.clock.now()
    result = materialize(harness, "fba_customer_shipment_sales", "DE")
    first = metadata(result, "fba_customer_shipment_sales")
    assert check_passed(result, "fba_customer_shipment_sales")
    end = (now - timedelta(hours=3)).replace(microsecond=0)
    start = end - timedelta(days=30) + timedelta(seconds=1)
    assert first["data_end"] == end.strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = stored(harness, "fba_customer_shipment_sales", "DE")
    # The buyer's city, state and postal code are in Amazon's report and nowhere in the asset.
    assert list(rows.columns) == list(sr.CUSTOMER_SHIPMENT_NAMES.values())
    assert_same_rows(rows, expected_shipments(world, start, end, now), SHIPMENT_KEY)
    assert isinstance(rows["item_price_per_unit"].iloc[0], Decimal)

    sandbox.advance(timedelta(hours=2))
    second = metadata(
        materialize(harness, "fba_customer_shipment_sales", "DE"), "fba_customer_shipment_sales"
    )
    assert second["data_start"] == (end + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(reports_of(harness, sr.CUSTOMER_SHIPMENT_SALES)) == 2
    later = stored(harness, "fba_customer_shipment_sales", "DE")
    new_end = end + timedelta(hours=2)
    # Every shipment of the whole span once: none lost to Amazon's lag, none read twice.
    both = pd.concat([rows, later], ignore_index=True)
    assert_same_rows(both, expected_shipments(world, start, new_end, sandbox.clock.now()), SHIPMENT_KEY)
    assert not both.duplicated(sr.CUSTOMER_SHIPMENT_KEY).any()


def test_customer_shipments_show_in_amazons_report_hours_after_they_ship(harness):
    sandbox, world = harness.sandbox, harness.sandbox.world
    now = sandbox.clock.now()
    report = selling_partner(harness).fetch_report(
        "DE", sr.CUSTOMER_SHIPMENT_SALES, LOG, now - timedelta(hours=6), now
    )
    rows, _ = sr.customer_shipment_sales(report.text)
    shipped = truth.fba_shipments(world, "DE", now - timedelta(hours=6), now)
    assert len(rows) == (shipped["visible_at"] <= now).sum() < len(shipped), "a window up to now misses some"


def test_a_backfill_goes_through_the_run_config_in_windows_of_at_most_30_days(harness):
    sandbox, world = harness.sandbox, harness.sandbox.world
    now = sandbox.clock.now()
    materialize(harness, "fba_customer_shipment_sales", "DE")  # the cursor is now 3 hours back
    day = (now - timedelta(days=45)).date()
    result = materialize(harness, "fba_customer_shipment_sales", "DE", backfill_from=str(day))
    backfill = metadata(result, "fba_customer_shipment_sales")
    assert backfill["backfill"] is True and backfill["data_start"] == f"{day}T00:00:00Z"
    asked = reports_of(harness, sr.CUSTOMER_SHIPMENT_SALES)[1:]
    assert len(asked) == 2 and all(r.data_end - r.data_start < timedelta(days=30) for r in asked)
    end = (now - timedelta(hours=3)).replace(microsecond=0)
    assert_same_rows(
        stored(harness, "fba_customer_shipment_sales", "DE"),
        expected_shipments(world, sr.whole_day(day)[0], end, now),
        SHIPMENT_KEY,
    )


def test_afn_by_country_is_fatal_outside_europe_and_inside_its_cooldown(harness):
    partner = selling_partner(harness)
    with pytest.raises(ReportFailed, match="only to FBA sellers in Europe"):
        partner.fetch_report("US", sr.AFN_BY_COUNTRY, LOG)
    assert partner.fetch_report("DE", sr.AFN_BY_COUNTRY, LOG).status == "DONE"
    harness.sandbox.advance(timedelta(minutes=15))  # past the 10 minutes reuse, inside Amazon's 30
    with pytest.raises(ReportFailed, match="cooldown"):
        partner.fetch_report("DE", sr.AFN_BY_COUNTRY, LOG)
