"""The seller's report-based streams per marketplace, raw as Amazon reports them: AFN inventory by country,
sales and traffic per day and SKU, the FBA inventory ledger (summary and detail) and FBA customer shipment
sales. Windows move with cursors in the state database; parsing and windows are in streams/reports.py.

`afn_inventory_by_country` is near real time and feeds `warehouse_stock` (the Pan-EU rule); the others are
daily and never belong in the 30-minute sync.
"""

import functools
from datetime import datetime, timedelta

import dagster as dg
import pandas as pd
from sp_api.api import Reports

from amazon_optiply.clients.amazon import AmazonError, AmazonUnavailableError, ReportDocumentError, utc_iso
from amazon_optiply.clients.selling_partner import FetchedReport, ReportFailed, amazon_time, report_cooldown
from amazon_optiply.defs.metadata import frame_metadata, markdown_rows, schema_check, schema_check_spec
from amazon_optiply.marketplaces import MARKETPLACES
from amazon_optiply.partitions import marketplace_of, marketplace_partitions
from amazon_optiply.resources import AmazonResource, SyncStateResource
from amazon_optiply.streams import reports as sr
from amazon_optiply.streams import schemas
from amazon_optiply.transforms.reports import ReportFormatError

GROUP = "amazon_streams"
NEAR_REAL_TIME_REPORT_STREAMS = ("afn_inventory_by_country",)
DAILY_REPORT_STREAMS = (
    "sales_and_traffic",
    "fba_inventory_ledger",
    "fba_inventory_ledger_detail",
    "fba_customer_shipment_sales",
)
SALES_AND_TRAFFIC_OPTIONS = {"dateGranularity": "DAY", "asinGranularity": "SKU"}
# COUNTRY is Amazon's default, DAILY is not (MONTHLY is); both are sent so neither depends on a default.
LEDGER_SUMMARY_OPTIONS = {"aggregateByLocation": "COUNTRY", "aggregatedByTimePeriod": "DAILY"}

stream_asset = functools.partial(
    dg.asset,
    partitions_def=marketplace_partitions,
    group_name=GROUP,
    kinds={"amazon", "pandas"},
    owners=["team:integrations"],
)


class StreamBackfill(dg.Config):
    """Run config of the daily streams: a backfill over history instead of the cursor."""

    # ISO date (2025-01-31): read from this day (never further back than Amazon keeps: 2 years of sales
    # and traffic, 18 months of ledger and shipments) to the newest day, or from the cursor when that is
    # earlier. Empty: from the cursor.
    backfill_from: str = ""


def amazon_clock(amazon: AmazonResource, marketplace: str, report_type: str) -> datetime:
    """Amazon's time (an answer's Date header): days and lags are Amazon's, not this machine's.

    One getReports call of a page of one report: the cheapest question this app may ask here.
    """
    api = amazon.partner.api(Reports, marketplace)
    answer = amazon.caller.call(
        "getReports",
        lambda: api.get_reports(
            reportTypes=[report_type], marketplaceIds=[MARKETPLACES[marketplace].marketplace_id], pageSize=1
        ),
        expect="reports",
    )
    return amazon_time(answer.headers)


def _calls(amazon: AmazonResource) -> dict:
    stats = amazon.caller.stats
    return {"sp_api_calls": dict(stats.calls), "sp_api_throttled": dict(stats.throttled)}


def _report_row(report: FetchedReport, window: str) -> dict:
    return {"window": window, "report_id": report.report_id, "status": report.status, "reused": report.reused}


def _cursor_text(cursor: datetime | None) -> str:
    return utc_iso(cursor) if cursor is not None else "none (first run)"


# ---- near real time -----------------------------------------------------------------------------------------


@stream_asset(check_specs=[schema_check_spec("afn_inventory_by_country")])
def afn_inventory_by_country(
    context: dg.AssetExecutionContext, amazon: AmazonResource, sync_state: SyncStateResource
):
    """FBA units available for local fulfilment per SKU and country (GET_AFN_INVENTORY_DATA_BY_COUNTRY),
    each row with its country as Amazon writes it (UK for the United Kingdom).

    European marketplaces only (elsewhere Amazon ends it FATAL, so it is not asked for). Amazon makes it at
    most every 30 minutes and ends a request inside that FATAL, so one under 30 minutes old is read again
    instead of asking. A report that cannot be had (FATAL, inside its cooldown, past the deadline, an
    SP-API error) gives no rows and `available: false` with the reason, never a failed step: warehouse_stock
    then counts the Pan-EU pool by today's rule.
    """
    marketplace = marketplace_of(context.partition_key)
    empty = sr.empty_afn_inventory_by_country()

    def unavailable(reason: str):
        context.log.warning(f"{sr.AFN_BY_COUNTRY} for {marketplace} unavailable: {reason}")
        yield dg.Output(
            empty, metadata=frame_metadata(empty, available=False, reason=reason, **_calls(amazon))
        )
        yield schema_check(empty, schemas.AfnInventoryByCountry)

    if marketplace not in sr.AFN_BY_COUNTRY_MARKETPLACES:
        yield from unavailable(
            f"{marketplace} is not a European marketplace: Amazon has this report for EU sellers only"
        )
        return
    try:
        report = amazon.partner.fetch_report(
            marketplace,
            sr.AFN_BY_COUNTRY,
            context.log,
            state=sync_state.open(),
            reuse_done_within=report_cooldown(sr.AFN_BY_COUNTRY) - timedelta(seconds=1),
        )
        frame, bad_rows = sr.afn_inventory_by_country(report.text or "")
    except (ReportFailed, ReportDocumentError, ReportFormatError, AmazonError, AmazonUnavailableError) as exc:
        yield from unavailable(str(exc))
        return
    # CANCELLED is "no data" here: Amazon cancels a report with nothing in it, a seller with no FBA unit in
    # any European country. No row means every SKU keeps today's rule in warehouse_stock, so either way no
    # stock is set to 0 by it.
    yield dg.Output(
        frame,
        metadata=frame_metadata(
            frame,
            available=True,
            report_id=report.report_id,
            report_status=report.status,
            report_reused=report.reused,
            read_at=str(report.data_end),
            rows_by_country=frame["country"].value_counts().to_dict(),
            bad_rows=len(bad_rows),
            bad_rows_preview=markdown_rows(bad_rows, limit=10),
            **_calls(amazon),
        ),
    )
    yield schema_check(frame, schemas.AfnInventoryByCountry)


# ---- daily ----------------------------------------------------------------------------------------------------


@stream_asset(check_specs=[schema_check_spec("sales_and_traffic")])
def sales_and_traffic(
    context: dg.AssetExecutionContext,
    config: StreamBackfill,
    amazon: AmazonResource,
    sync_state: SyncStateResource,
):
    """Sales and traffic per day and SKU (GET_SALES_AND_TRAFFIC_REPORT, dateGranularity DAY, asinGranularity
    SKU): one report per calendar day, T00:00:00Z to T23:59:59Z, since byAsin has no date and sums its whole
    window (and Amazon widens a window off midnight). Each row carries its report's day.

    Amazon revises a day until 72 hours after it ends: the cursor (the first day not yet final) passes a day
    only then, so the trailing 3 days are read again every run. Two years back at most.
    """
    marketplace = marketplace_of(context.partition_key)
    state = sync_state.open()
    now = amazon_clock(amazon, marketplace, sr.SALES_AND_TRAFFIC)
    cursor = state.stream_cursor("sales_and_traffic", marketplace)
    plan = sr.sales_and_traffic_plan(now, cursor, config.backfill_from)
    frames, reports = [], []
    for day in plan.days:
        start, end = sr.whole_day(day)
        report = amazon.partner.fetch_report(
            marketplace, sr.SALES_AND_TRAFFIC, context.log, start, end, state, SALES_AND_TRAFFIC_OPTIONS
        )
        reports.append(_report_row(report, str(day)))
        if report.status == "CANCELLED":
            # Not "no data": a day without sales is DONE with empty lists. Amazon cancels a day beyond its two
            # years, which the plan never asks for, so this is a failure; the cursor stays.
            raise dg.Failure(
                f"{sr.SALES_AND_TRAFFIC} report {report.report_id} for {marketplace}, {day}, was CANCELLED by "
                "Amazon; a day inside Amazon's two years is not read as having no sales"
            )
        frames.append(sr.sales_and_traffic_by_sku(report.text or "", day, report.report_id))
    frame = (
        pd.concat(frames, ignore_index=True) if frames else sr.sales_and_traffic_by_sku("", now.date(), "")
    )
    yield dg.Output(
        frame,
        metadata=frame_metadata(
            frame,
            window=plan.window,
            data_start=str(plan.days[0]) if plan.days else "",
            data_end=str(plan.days[-1]) if plan.days else "",
            days_read=len(plan.days),
            backfill=plan.backfill,
            cursor_before=_cursor_text(cursor),
            final_through=str(plan.next_cursor.date() - timedelta(days=1)),
            reports=markdown_rows(pd.DataFrame(reports), limit=100),
            **_calls(amazon),
        ),
    )
    # After the rows are stored: a run that fails before here reads the same days again.
    state.set_stream_cursor("sales_and_traffic", marketplace, plan.next_cursor)
    yield schema_check(frame, schemas.SalesAndTraffic)


def _ledger_asset(
    context: dg.AssetExecutionContext,
    config: StreamBackfill,
    amazon: AmazonResource,
    sync_state: SyncStateResource,
    stream: str,
    report_type: str,
    options: dict[str, str] | None,
    parse,
    empty: pd.DataFrame,
    model,
):
    marketplace = marketplace_of(context.partition_key)
    state = sync_state.open()
    now = amazon_clock(amazon, marketplace, report_type)
    cursor = state.stream_cursor(stream, marketplace)
    plan, windows = sr.ledger_plan(now, cursor, config.backfill_from)
    frames, bad, extra, reports = [], [], set(), []
    for first, last in windows:
        start, end = sr.whole_day(first)[0], sr.whole_day(last)[1]
        # The dates go in the body as dataStartTime/dataEndTime: DAILY comes back empty otherwise.
        report = amazon.partner.fetch_report(
            marketplace, report_type, context.log, start, end, state, options
        )
        reports.append(_report_row(report, f"{first}..{last}"))
        if report.status == "CANCELLED":
            # "No data" is true here: Amazon cancels a ledger report with nothing in its window.
            continue
        rows, bad_rows, extra_columns = parse(report.text or "")
        frames.append(rows)
        bad.append(bad_rows)
        extra |= set(extra_columns)
    frame = pd.concat(frames, ignore_index=True) if frames else empty
    bad_rows = sr.bad_rows_frame([b for b in bad if len(b)])
    yield dg.Output(
        frame,
        metadata=frame_metadata(
            frame,
            window=plan.window,
            data_start=str(plan.days[0]) if plan.days else "",
            data_end=str(plan.days[-1]) if plan.days else "",
            backfill=plan.backfill,
            cursor_before=_cursor_text(cursor),
            reports=markdown_rows(pd.DataFrame(reports), limit=100),
            bad_rows=len(bad_rows),
            bad_rows_preview=markdown_rows(bad_rows, limit=10),
            extra_columns=sorted(extra),
            **_calls(amazon),
        ),
    )
    state.set_stream_cursor(stream, marketplace, plan.next_cursor)
    yield schema_check(frame, model)


@stream_asset(check_specs=[schema_check_spec("fba_inventory_ledger")])
def fba_inventory_ledger(
    context: dg.AssetExecutionContext,
    config: StreamBackfill,
    amazon: AmazonResource,
    sync_state: SyncStateResource,
):
    """The FBA inventory ledger's summary view, DAILY by country (GET_LEDGER_SUMMARY_VIEW_DATA): per day,
    FNSKU, disposition and country, the starting and ending balance and every kind of event between them.

    Whole days from the cursor to yesterday (a window with today in it comes back empty), the dates in the
    request body (DAILY is empty otherwise), Amazon's MM/DD/YYYY turned into dates. 18 months back at most.
    """
    yield from _ledger_asset(
        context,
        config,
        amazon,
        sync_state,
        "fba_inventory_ledger",
        sr.LEDGER_SUMMARY,
        LEDGER_SUMMARY_OPTIONS,
        sr.ledger_summary,
        sr.ledger_summary("")[0],
        schemas.FbaInventoryLedger,
    )


@stream_asset(check_specs=[schema_check_spec("fba_inventory_ledger_detail")])
def fba_inventory_ledger_detail(
    context: dg.AssetExecutionContext,
    config: StreamBackfill,
    amazon: AmazonResource,
    sync_state: SyncStateResource,
):
    """The FBA inventory ledger's detail view (GET_LEDGER_DETAIL_VIEW_DATA): every event, of every type
    (no eventType option: the tap asked for Adjustments only), quantities signed (shipments negative).

    Same windows as the summary view; undocumented columns Amazon adds (`Store`) are tolerated and named in
    `extra_columns`.
    """
    yield from _ledger_asset(
        context,
        config,
        amazon,
        sync_state,
        "fba_inventory_ledger_detail",
        sr.LEDGER_DETAIL,
        None,
        sr.ledger_detail,
        sr.ledger_detail("")[0],
        schemas.FbaInventoryLedgerDetail,
    )


@stream_asset(check_specs=[schema_check_spec("fba_customer_shipment_sales")])
def fba_customer_shipment_sales(
    context: dg.AssetExecutionContext,
    config: StreamBackfill,
    amazon: AmazonResource,
    sync_state: SyncStateResource,
):
    """Shipped FBA units per order, SKU and fulfilment center with their prices
    (GET_FBA_FULFILLMENT_CUSTOMER_SHIPMENT_SALES_DATA), buyer location columns left out.

    From the cursor to Amazon's now minus 3 hours (shipments show 1 to 3 hours after they ship), in
    windows of at most 30 days; key (order, SKU, shipment time, fulfilment center).
    """
    marketplace = marketplace_of(context.partition_key)
    state = sync_state.open()
    now = amazon_clock(amazon, marketplace, sr.CUSTOMER_SHIPMENT_SALES)
    cursor = state.stream_cursor("fba_customer_shipment_sales", marketplace)
    plan = sr.customer_shipments_plan(now, cursor, config.backfill_from)
    frames, bad, reports = [], [], []
    for start, end in plan.windows:
        report = amazon.partner.fetch_report(
            marketplace, sr.CUSTOMER_SHIPMENT_SALES, context.log, start, end, state
        )
        reports.append(_report_row(report, f"{utc_iso(start)}..{utc_iso(end)}"))
        if report.status == "CANCELLED":
            # "No data" is true here: Amazon cancels the report of a window in which nothing shipped.
            continue
        rows, bad_rows = sr.customer_shipment_sales(report.text or "")
        frames.append(rows)
        bad.append(bad_rows)
    frame = (
        pd.concat(frames, ignore_index=True).drop_duplicates(sr.CUSTOMER_SHIPMENT_KEY, ignore_index=True)
        if frames
        else sr.customer_shipment_sales("")[0]
    )
    bad_rows = sr.bad_rows_frame([b for b in bad if len(b)])
    yield dg.Output(
        frame,
        metadata=frame_metadata(
            frame,
            window=plan.window,
            data_start=utc_iso(plan.windows[0][0]) if plan.windows else "",
            data_end=utc_iso(plan.windows[-1][1]) if plan.windows else "",
            backfill=plan.backfill,
            cursor_before=_cursor_text(cursor),
            reports=markdown_rows(pd.DataFrame(reports), limit=100),
            units_shipped=int(frame["quantity"].sum()),
            bad_rows=len(bad_rows),
            bad_rows_preview=markdown_rows(bad_rows, limit=10),
            **_calls(amazon),
        ),
    )
    state.set_stream_cursor("fba_customer_shipment_sales", marketplace, plan.next_cursor)
    yield schema_check(frame, schemas.FbaCustomerShipmentSales)
