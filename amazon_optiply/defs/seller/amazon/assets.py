"""Raw Amazon data per marketplace: the listings report, FBA inventory, catalog identifiers, the orders report."""

import functools
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd

from amazon_optiply import schemas
from amazon_optiply.catalog_cache import catalog_identifiers_cached
from amazon_optiply.clients.selling_partner import FetchedReport
from amazon_optiply.defs.metadata import frame_metadata, markdown_rows, schema_check, schema_check_spec
from amazon_optiply.partitions import SettingError, marketplace_of, marketplace_partitions
from amazon_optiply.resources import AmazonResource, IntegrationSettings, SyncStateResource
from amazon_optiply.run_order import ORDER_PATH_TAGS
from amazon_optiply.transforms.catalog import (
    FBA_COLUMNS,
    fba_inventory_frame_from_pages,
)
from amazon_optiply.transforms.optiply import deduplicated_order_rows
from amazon_optiply.transforms.reports import LISTINGS_REQUIRED, ORDERS_REQUIRED, header_set, parse_flat_file

LISTINGS_REPORT = "GET_MERCHANT_LISTINGS_ALL_DATA"
ORDERS_REPORT = "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL"
GROUP = "amazon_raw"
# Amazon's change times and its Date header can disagree by a little: read a few minutes twice.
FBA_READ_OVERLAP = timedelta(minutes=5)
KINDS = {"amazon", "pandas"}

raw_amazon_asset = functools.partial(
    dg.asset,
    partitions_def=marketplace_partitions,
    group_name=GROUP,
    kinds=KINDS,
    owners=["team:integrations"],
)


def _report_metadata(report: FetchedReport, report_type: str, malformed: pd.DataFrame) -> dict:
    return {
        "report_id": report.report_id,
        "report_status": report.status,
        "report_reused": report.reused,
        "report_wait_seconds": round(report.seconds_waited, 2),
        "report_polls": report.polls,
        "data_start": str(report.data_start),
        "data_end": str(report.data_end),
        "charset": str(report.charset),
        # Which localized header set the columns were renamed from (`en`: Amazon's English names).
        "header_set": header_set(report.text or "", report_type),
        "malformed_rows": len(malformed),
        "malformed_preview": markdown_rows(malformed, limit=10),
    }


def _call_metadata(amazon: AmazonResource) -> dict:
    stats = amazon.caller.stats
    return {"sp_api_calls": dict(stats.calls), "sp_api_throttled": dict(stats.throttled)}


def _check_participation(marketplace: str, amazon: AmazonResource) -> None:
    participating = amazon.partner.participating_marketplaces(marketplace)
    if marketplace not in participating:
        raise SettingError(
            f"marketplace {marketplace} is in AMAZON_MARKETPLACES but the seller does not participate in it "
            f"(participating: {', '.join(sorted(participating)) or 'none'})"
        )


@raw_amazon_asset(check_specs=[schema_check_spec("listings_report")])
def listings_report(context: dg.AssetExecutionContext, amazon: AmazonResource, sync_state: SyncStateResource):
    """The seller's listings in this marketplace (GET_MERCHANT_LISTINGS_ALL_DATA), as Amazon wrote them.

    A report that fails (FATAL, CANCELLED, deadline) fails this asset: it never becomes an empty catalogue
    or zero stock, and Optiply keeps the last values. A queued, running or recent report is reused.
    """
    marketplace = marketplace_of(context.partition_key)
    _check_participation(marketplace, amazon)
    report = amazon.partner.fetch_report(marketplace, LISTINGS_REPORT, context.log, state=sync_state.open())
    if report.status == "CANCELLED":
        raise dg.Failure(
            f"{LISTINGS_REPORT} report {report.report_id} for {marketplace} was CANCELLED by Amazon; refusing to treat "
            "it as an empty catalogue. Products in Optiply keep their last values."
        )
    frame, malformed = parse_flat_file(report.text or "", LISTINGS_REPORT, LISTINGS_REQUIRED)
    yield dg.Output(
        frame,
        metadata=frame_metadata(
            frame, **_report_metadata(report, LISTINGS_REPORT, malformed), **_call_metadata(amazon)
        ),
    )
    yield schema_check(frame, schemas.ListingsReport)


@raw_amazon_asset(check_specs=[schema_check_spec("fba_inventory")])
def fba_inventory(
    context: dg.AssetExecutionContext,
    amazon: AmazonResource,
    sync_state: SyncStateResource,
    settings: IntegrationSettings,
):
    """FBA stock per SKU row (getInventorySummaries, Marketplace granularity, with details).

    A full read at most every FBA_FULL_REFRESH_HOURS; in between only the rows Amazon changed since the
    last read (startDateTime, a few minutes of overlap) are asked for and merged into the kept snapshot.
    Amazon's startDateTime does not see changes of the inbound quantities (working, shipped, receiving):
    when they count as stock (AMAZON_COUNT_INBOUND), every read is a full one. Otherwise a row's inbound
    units are as of the last full read or the row's last change.
    """
    marketplace = marketplace_of(context.partition_key)
    state = sync_state.open()
    read_until, full_read_at = state.fba_reads(marketplace)
    full = (
        full_read_at is None
        or settings.count_inbound
        or datetime.now(UTC) - full_read_at > timedelta(hours=settings.fba_full_refresh_hours)
    )
    since = None if full else read_until - FBA_READ_OVERLAP
    answered: list[datetime] = []

    def pages():
        for summaries, answered_at in amazon.partner.inventory_summaries(marketplace, since):
            answered.append(answered_at)
            yield summaries

    changed = fba_inventory_frame_from_pages(pages())  # the answers' bytes into Arrow, no dicts
    amazon_time = answered[0] if answered else None
    state.store_fba(marketplace, changed, amazon_time or datetime.now(UTC), full)
    frame = state.fba_snapshot(marketplace).astype(FBA_COLUMNS)[list(FBA_COLUMNS)]
    yield dg.Output(
        frame,
        metadata=frame_metadata(
            frame,
            read="full" if full else f"changed since {since.isoformat()}",
            rows_read=len(changed),
            inbound_units_as_of="this read"
            if full
            else f"the full read of {full_read_at.isoformat()}, or the row's change since (startDateTime "
            "does not see inbound changes)",
            **_call_metadata(amazon),
        ),
    )
    yield schema_check(frame, schemas.FbaInventory)


@raw_amazon_asset(check_specs=[schema_check_spec("catalog_identifiers")])
def catalog_identifiers(
    context: dg.AssetExecutionContext,
    listings_report: pd.DataFrame,
    amazon: AmazonResource,
    sync_state: SyncStateResource,
    settings: IntegrationSettings,
):
    """EAN and UPC codes per ASIN of the listings (searchCatalogItems, 20 ASINs a call), for the products.

    Kept across runs in the state database: only ASINs never seen or older than CATALOG_REFRESH_DAYS are
    asked for.
    """
    marketplace = marketplace_of(context.partition_key)
    frame, fetched = catalog_identifiers_cached(
        marketplace,
        listings_report["asin1"],
        amazon.partner,
        sync_state.open(),
        settings.catalog_refresh_days,
    )
    yield dg.Output(
        frame,
        metadata=frame_metadata(
            frame,
            asins_fetched=fetched,
            asins_from_cache=len(frame) - fetched,
            **_call_metadata(amazon),
        ),
    )
    yield schema_check(frame, schemas.CatalogIdentifiers)


@raw_amazon_asset(check_specs=[schema_check_spec("order_identifiers")], op_tags=ORDER_PATH_TAGS)
def order_identifiers(
    context: dg.AssetExecutionContext,
    orders_report: pd.DataFrame,
    amazon: AmazonResource,
    sync_state: SyncStateResource,
    settings: IntegrationSettings,
):
    """EAN and UPC codes per ordered ASIN, for the secondary flavour's match by EAN (cached like listings').

    An ASIN sold may no longer be listed, so the listings' identifiers are not enough. The full flavour asks
    for none: its order lines find this integration's own products by SKU, and its order path needs no
    SP-API call beyond the orders report.
    """
    marketplace = marketplace_of(context.partition_key)
    ordered = orders_report["asin"] if "asin" in orders_report else pd.Series(dtype="string")
    if settings.writes_products:
        frame = pd.DataFrame(columns=["asin", "ean_codes", "upc_codes", "item_name"], dtype="string")
        fetched, note = 0, "full flavour: order lines match this integration's products by SKU"
    else:
        frame, fetched = catalog_identifiers_cached(
            marketplace, ordered, amazon.partner, sync_state.open(), settings.catalog_refresh_days
        )
        note = "secondary flavour: order lines match Optiply products by EAN"
    yield dg.Output(
        frame,
        metadata=frame_metadata(
            frame,
            asins_fetched=fetched,
            asins_from_cache=len(frame) - fetched,
            matching=note,
            **_call_metadata(amazon),
        ),
    )
    yield schema_check(frame, schemas.OrderIdentifiers)


@raw_amazon_asset(check_specs=[schema_check_spec("orders_report")], op_tags=ORDER_PATH_TAGS)
def orders_report(
    context: dg.AssetExecutionContext,
    amazon: AmazonResource,
    sync_state: SyncStateResource,
    settings: IntegrationSettings,
):
    """Order lines updated since the last delivered cursor (GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL).

    The window starts an overlap before the cursor, so an order updated while the last window was being
    cut is not missed; rows repeated by the overlap are deduplicated on (amazon-order-id, sku).
    """
    marketplace = marketplace_of(context.partition_key)
    state = sync_state.open()
    cursor, orders_start = state.order_cursor(marketplace)
    now = datetime.now(UTC)
    orders_start = orders_start or settings.orders_start_for_first_run(now)
    window_start = orders_start
    if cursor is not None:
        window_start = max(cursor - timedelta(minutes=settings.orders_overlap_minutes), orders_start)
    # No dataEndTime: Amazon ends the window at its own "now", and its answer tells us where that was.
    report = amazon.partner.fetch_report(
        marketplace, ORDERS_REPORT, context.log, start=window_start, state=state
    )
    frame, malformed = parse_flat_file(report.text or "", ORDERS_REPORT, ORDERS_REQUIRED)
    frame = deduplicated_order_rows(frame).reset_index(drop=True)
    fetched_until = report.data_end or now
    overlap = timedelta(minutes=settings.orders_overlap_minutes)
    if report.status == "CANCELLED" and (cursor is None or fetched_until - cursor > overlap):
        # CANCELLED means "no orders in the window", and the cursor moves on when the next window's overlap
        # still covers this one. A longer window (the first, or a catch-up) is asked for again instead of
        # trusted: if Amazon cancelled it wrongly, its orders would be out of reach for good.
        context.log.warning(
            f"{ORDERS_REPORT} report {report.report_id} for {marketplace} was CANCELLED (no data) for a window "
            f"from {window_start} longer than the overlap; the cursor stays and the window is asked again"
        )
        fetched_until = cursor
    state.note_orders_window(marketplace, fetched_until, orders_start)
    yield dg.Output(
        frame,
        metadata=frame_metadata(
            frame,
            orders=int(frame["amazon-order-id"].nunique()) if len(frame) else 0,
            orders_start=str(orders_start),
            **_report_metadata(report, ORDERS_REPORT, malformed),
            **_call_metadata(amazon),
        ),
    )
    yield schema_check(frame, schemas.OrdersReport)
