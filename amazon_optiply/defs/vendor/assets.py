"""The Amazon Vendor integration per vendor account (`<tenant>/<marketplace>`): raw Amazon data, payloads per
Optiply entity, and their delivery. The rules are in the README's vendor section; the transforms in
amazon_optiply/vendor/transforms.py.
"""

import functools
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd

from amazon_optiply.catalog_cache import catalog_identifiers_cached
from amazon_optiply.clients.amazon import utc_iso
from amazon_optiply.clients.selling_partner import ReportFailed
from amazon_optiply.defs.metadata import frame_metadata, markdown_rows, schema_check, schema_check_spec
from amazon_optiply.defs.shared import DELIVERY_FRESHNESS, OPTIPLY_WRITES_POOL, writes_frame
from amazon_optiply.delivery import (
    BUY_ORDERS,
    PRODUCTS,
    RECEIPT_LINES,
    SELL_ORDERS,
    deliver_buy_orders,
    deliver_receipt_lines,
    deliver_records,
    optiply_ids,
    received_on_record,
    settle_intended,
)
from amazon_optiply.partitions import marketplace_of, vendor_partitions
from amazon_optiply.resources import AmazonResource, OptiplyResource, SyncStateResource, VendorSettings
from amazon_optiply.state import SyncState
from amazon_optiply.vendor import schemas
from amazon_optiply.vendor import transforms as vt
from amazon_optiply.vendor.orders import amazon_now, purchase_order_statuses, purchase_orders

RAW_GROUP, OPTIPLY_GROUP = "vendor_amazon", "vendor_optiply"
INVENTORY_REPORT, SALES_REPORT = "GET_VENDOR_INVENTORY_REPORT", "GET_VENDOR_SALES_REPORT"
SALES_STREAM = "vendor_sales_days"
INVENTORY_STREAM = "vendor_inventory_day"  # the newest day whose stock was read
# Amazon publishes a day's vendor figures the next day around noon UTC; a DAY report spans at most 15 days.
PUBLISHED_AFTER = timedelta(hours=12)
MAX_REPORT_DAYS = 14
SUPPLIERS, SUPPLIER_PRODUCTS = "suppliers", "supplierProducts"

vendor_raw_asset = functools.partial(
    dg.asset,
    partitions_def=vendor_partitions,
    group_name=RAW_GROUP,
    kinds={"amazon", "pandas"},
    owners=["team:integrations"],
)
vendor_payload_asset = functools.partial(
    dg.asset,
    partitions_def=vendor_partitions,
    group_name=OPTIPLY_GROUP,
    kinds={"pandas", "optiply"},
    owners=["team:integrations"],
)
vendor_delivery_asset = functools.partial(
    dg.asset,
    partitions_def=vendor_partitions,
    group_name=OPTIPLY_GROUP,
    kinds={"optiply"},
    owners=["team:integrations"],
    freshness_policy=DELIVERY_FRESHNESS,
    pool=OPTIPLY_WRITES_POOL,
)


def latest_published_day(now: datetime) -> datetime:
    """Midnight of the newest whole day Amazon has published figures for."""
    return (now - PUBLISHED_AFTER).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)


def _day_window(first: datetime, last: datetime) -> tuple[datetime, datetime]:
    """Whole calendar days as Amazon wants them: first 00:00:00 to last 23:59:59."""
    return first, last + timedelta(days=1) - timedelta(seconds=1)


def _report_options(settings: VendorSettings) -> dict[str, str]:
    return {
        "reportPeriod": "DAY",
        "distributorView": settings.distributor_view,
        "sellingProgram": settings.selling_program,
    }


# ---- raw Amazon data ---------------------------------------------------------------------------------


@vendor_raw_asset(check_specs=[schema_check_spec("vendor_purchase_orders")])
def vendor_purchase_orders(
    context: dg.AssetExecutionContext, amazon: AmazonResource, vendor_settings: VendorSettings
):
    """Every purchase order Amazon placed with the vendor in the lookback, a row per item, in eaches.

    The whole lookback is read every cycle (7-day windows, pages of 100): an order changes until it closes,
    and re-reading costs a few calls, where a missed change would cost a wrong buy order.
    """
    marketplace = marketplace_of(context.partition_key)
    now = amazon_now(amazon.partner, marketplace)
    start = now - timedelta(days=vendor_settings.purchase_order_lookback_days)
    orders = [o for page in purchase_orders(amazon.partner, marketplace, start, now) for o in page]
    frame = vt.purchase_order_items(orders)
    problems = frame[frame["problem"].notna()]
    yield dg.Output(
        frame,
        metadata=frame_metadata(
            frame,
            window=f"created {utc_iso(start)} to {utc_iso(now)} (Amazon's clock)",
            purchase_orders=int(frame["purchase_order_number"].nunique()),
            items_with_problems=len(problems),
            problems=markdown_rows(problems[["purchase_order_number", "item_sequence_number", "problem"]]),
        ),
    )
    yield schema_check(frame, schemas.VendorPurchaseOrders)


@vendor_raw_asset(check_specs=[schema_check_spec("vendor_purchase_order_status")])
def vendor_purchase_order_status(
    context: dg.AssetExecutionContext, amazon: AmazonResource, vendor_settings: VendorSettings
):
    """Accepted, rejected and (cumulative) received eaches per item, and OPEN/CLOSED, for the same orders."""
    marketplace = marketplace_of(context.partition_key)
    now = amazon_now(amazon.partner, marketplace)
    start = now - timedelta(days=vendor_settings.purchase_order_lookback_days)
    statuses = [s for page in purchase_order_statuses(amazon.partner, marketplace, start, now) for s in page]
    frame = vt.purchase_order_status_items(statuses)
    yield dg.Output(
        frame,
        metadata=frame_metadata(frame, window=f"created {utc_iso(start)} to {utc_iso(now)} (Amazon's clock)"),
    )
    yield schema_check(frame, schemas.VendorPurchaseOrderStatus)


@vendor_raw_asset(check_specs=[schema_check_spec("vendor_inventory_report")])
def vendor_inventory_report(
    context: dg.AssetExecutionContext,
    amazon: AmazonResource,
    vendor_settings: VendorSettings,
    sync_state: SyncStateResource,
):
    """Amazon's stock of the vendor's products on the newest published day (GET_VENDOR_INVENTORY_REPORT).

    CANCELLED means Amazon has no data for that day yet: the day before is asked for once, unless stock of
    a newer day was already read (stock never goes back in time); a second CANCELLED fails the asset, so
    products keep their last stock instead of getting none or an older one.
    """
    marketplace = marketplace_of(context.partition_key)
    day = latest_published_day(amazon_now(amazon.partner, marketplace))
    state = sync_state.open()
    newest_read = state.stream_cursor(INVENTORY_STREAM, marketplace)
    candidates = [d for d in (day, day - timedelta(days=1)) if newest_read is None or d >= newest_read]
    for attempt_day in candidates:
        start, end = _day_window(attempt_day, attempt_day)
        report = amazon.partner.fetch_report(
            marketplace, INVENTORY_REPORT, context.log, start, end, state, _report_options(vendor_settings)
        )
        if report.status == "DONE":
            break
        context.log.warning(f"{INVENTORY_REPORT} for {attempt_day.date()} was CANCELLED (no data yet)")
    else:
        before = (
            "the day before" if len(candidates) > 1 else "the day before is older than the stock already read"
        )
        raise ReportFailed(
            f"{INVENTORY_REPORT} for {marketplace}: Amazon has no data for {day.date()} (CANCELLED) and "
            f"{before}{' (CANCELLED too)' if len(candidates) > 1 else f' ({newest_read.date()})'}; "
            "stock is left as last delivered"
        )
    state.set_stream_cursor(INVENTORY_STREAM, marketplace, attempt_day)
    frame = vt.inventory_by_asin(report.text or "{}")
    yield dg.Output(
        frame,
        metadata=frame_metadata(frame, day=str(attempt_day.date()), report_id=report.report_id),
    )
    yield schema_check(frame, schemas.VendorInventoryReport)


@vendor_raw_asset(check_specs=[schema_check_spec("vendor_sales_report")])
def vendor_sales_report(
    context: dg.AssetExecutionContext,
    amazon: AmazonResource,
    vendor_settings: VendorSettings,
    sync_state: SyncStateResource,
):
    """Amazon's customer demand per ASIN and day (GET_VENDOR_SALES_REPORT), the published days not yet
    delivered: from the cursor (first run: the orders start) to the newest published day, 14 days a report.

    Amazon cancels a report holding a day it has no data for. A report reaching the newest day is asked
    again once without it (Amazon may publish late: that day waits for the next cycle); older days Amazon
    still cancels fail the asset, named, instead of being skipped or reported as up to date, since no later
    cycle would read them either (an orders start before the vendor's history on Amazon, for one).
    """
    marketplace = marketplace_of(context.partition_key)
    state = sync_state.open()
    now = amazon_now(amazon.partner, marketplace)
    last = latest_published_day(now)
    first = state.stream_cursor(SALES_STREAM, marketplace)
    if first is None:
        first = vendor_settings.orders_start_for_first_run(now).replace(
            hour=0, minute=0, second=0, microsecond=0
        )

    def fetch(first_day: datetime, last_day: datetime):
        start, end = _day_window(first_day, last_day)
        return amazon.partner.fetch_report(
            marketplace, SALES_REPORT, context.log, start, end, state, _report_options(vendor_settings)
        )

    frames, read, waiting = [], [], ""
    while first <= last:
        chunk_end = min(first + timedelta(days=MAX_REPORT_DAYS - 1), last)
        report = fetch(first, chunk_end)
        if report.status != "DONE" and chunk_end == last:
            waiting = f"{last.date()} (CANCELLED: not published yet, asked again next cycle)"
            if first == last:
                break
            chunk_end = last - timedelta(days=1)
            report = fetch(first, chunk_end)
        if report.status != "DONE":
            raise ReportFailed(
                f"{SALES_REPORT} for {marketplace}: Amazon has no data for {first.date()}..{chunk_end.date()} "
                f"(CANCELLED), days it publishes by noon UTC the day after; their demand is not delivered and "
                f"the sales cursor stays at {first.date()}. Amazon may be late (the next cycle asks again), or "
                "the orders start is before the vendor's history on Amazon (set orders_start to its first day)"
            )
        frames.append(vt.sales_by_asin(report.text or "{}"))
        read.append(f"{first.date()}..{chunk_end.date()}")
        first = chunk_end + timedelta(days=1)
        if waiting:
            break
    frame = pd.concat(frames, ignore_index=True) if frames else vt.sales_by_asin("{}")
    yield dg.Output(
        frame,
        metadata=frame_metadata(
            frame,
            days_read=", ".join(read) or ("none" if waiting else "none (up to date)"),
            waiting_for=waiting or "nothing",
        ),
    )
    yield schema_check(frame, schemas.VendorSalesReport)


@vendor_raw_asset(check_specs=[schema_check_spec("vendor_catalog")])
def vendor_catalog(
    context: dg.AssetExecutionContext,
    vendor_purchase_orders: pd.DataFrame,
    vendor_inventory_report: pd.DataFrame,
    amazon: AmazonResource,
    sync_state: SyncStateResource,
    vendor_settings: VendorSettings,
):
    """EAN and title per ASIN ordered or stocked, from Amazon's catalog (cached in the state database)."""
    from amazon_optiply import schemas as seller_schemas

    marketplace = marketplace_of(context.partition_key)
    asins = pd.concat([vendor_purchase_orders["asin"].dropna(), vendor_inventory_report["asin"]])
    frame, fetched = catalog_identifiers_cached(
        marketplace, asins, amazon.partner, sync_state.open(), vendor_settings.catalog_refresh_days
    )
    yield dg.Output(frame, metadata=frame_metadata(frame, asins_fetched=fetched))
    yield schema_check(frame, seller_schemas.CatalogIdentifiers)


# ---- Optiply payloads ----------------------------------------------------------------------------------


@vendor_payload_asset(check_specs=[schema_check_spec("vendor_existing_products", blocking=True)])
def vendor_existing_products(
    context: dg.AssetExecutionContext, optiply: OptiplyResource, sync_state: SyncStateResource
):
    """sell_orders_only: the account's ENABLED products with an EAN, which another system (the parent) made."""
    from amazon_optiply import schemas as seller_schemas
    from amazon_optiply.transforms.optiply import existing_products_frame

    state = sync_state.open()
    with optiply.client(state) as client:
        records = list(client.iter_records(PRODUCTS, {"status": "ENABLED"}))
    frame = existing_products_frame(records, optiply.coupling_id)
    yield dg.Output(frame, metadata=frame_metadata(frame, with_ean=int(frame["eanCode"].notna().sum())))
    yield schema_check(frame, seller_schemas.OptiplyExistingProducts)


@vendor_payload_asset(check_specs=[schema_check_spec("vendor_supplier_payloads", blocking=True)])
def vendor_supplier_payloads(vendor_purchase_orders: pd.DataFrame):
    """One supplier per vendor code Amazon orders under."""
    frame = vt.suppliers(vendor_purchase_orders)
    yield dg.Output(frame, metadata=frame_metadata(frame))
    yield schema_check(frame, schemas.VendorSupplierPayloads)


@vendor_payload_asset(check_specs=[schema_check_spec("vendor_product_payloads", blocking=True)])
def vendor_product_payloads(
    vendor_inventory_report: pd.DataFrame, vendor_purchase_orders: pd.DataFrame, vendor_catalog: pd.DataFrame
):
    """One product per ASIN Amazon stocks or orders: remoteId = EAN, stock = Amazon's sellable units."""
    frame = vt.vendor_products(vendor_inventory_report, vendor_purchase_orders, vendor_catalog)
    without_ean = frame[frame["eanCode"].isna()]
    yield dg.Output(
        frame,
        metadata=frame_metadata(
            frame, without_ean=len(without_ean), without_ean_asins=markdown_rows(without_ean)
        ),
    )
    yield schema_check(frame, schemas.VendorProductPayloads)


@vendor_payload_asset(check_specs=[schema_check_spec("vendor_supplier_product_payloads", blocking=True)])
def vendor_supplier_product_payloads(
    vendor_purchase_orders: pd.DataFrame,
    vendor_product_payloads: pd.DataFrame,
    vendor_inventory_report: pd.DataFrame,
):
    """One per vendor code and product: price = net cost per each, delivery time = Amazon's lead time."""
    frame = vt.supplier_products(vendor_purchase_orders, vendor_product_payloads, vendor_inventory_report)
    yield dg.Output(frame, metadata=frame_metadata(frame, without_price=int(frame["price"].isna().sum())))
    yield schema_check(frame, schemas.VendorSupplierProductPayloads)


@vendor_payload_asset(check_specs=[schema_check_spec("vendor_buy_order_payloads", blocking=True)])
def vendor_buy_order_payloads(
    vendor_purchase_orders: pd.DataFrame,
    vendor_purchase_order_status: pd.DataFrame,
    vendor_product_payloads: pd.DataFrame,
):
    """A row per buy order line; each order's disposition says whether it goes out (see the README)."""
    frame = vt.buy_orders(vendor_purchase_orders, vendor_purchase_order_status, vendor_product_payloads)
    orders = frame.drop_duplicates("remoteId")
    held = orders[orders["disposition"] == "held"]
    yield dg.Output(
        frame,
        metadata=frame_metadata(
            frame,
            **{f"orders_{d}": int((orders["disposition"] == d).sum()) for d in vt.BUY_ORDER_DISPOSITIONS},
            held=markdown_rows(held[["remoteId", "problem"]]),
        ),
    )
    yield schema_check(frame, schemas.VendorBuyOrderPayloads)


@vendor_payload_asset(
    check_specs=[schema_check_spec("vendor_receipt_line_payloads", blocking=True)],
    deps=["vendor_buy_orders"],
)
def vendor_receipt_line_payloads(
    context: dg.AssetExecutionContext,
    vendor_buy_order_payloads: pd.DataFrame,
    optiply: OptiplyResource,
    sync_state: SyncStateResource,
):
    """What Amazon received since the last delivered receipt of each line (its cumulative count minus ours).

    Receipt writes a crash left unconfirmed are settled with Optiply first, so none is counted twice.
    """
    marketplace = marketplace_of(context.partition_key)
    state = sync_state.open()
    with optiply.client(state) as client:
        settled = settle_intended(client, state, RECEIPT_LINES, marketplace)
    frame = vt.receipt_lines(vendor_buy_order_payloads, received_on_record(state, marketplace))
    yield dg.Output(frame, metadata=frame_metadata(frame, receipts_settled=settled))
    yield schema_check(frame, schemas.VendorReceiptLinePayloads)


def _orders_start(state: SyncState, marketplace: str, settings: VendorSettings) -> pd.Timestamp:
    """Sell orders placed before this are never sent; fixed at the first run (kept as a stream cursor)."""
    start = state.stream_cursor("vendor_orders_start", marketplace)
    if start is None:
        start = settings.orders_start_for_first_run(datetime.now(UTC))
        state.set_stream_cursor("vendor_orders_start", marketplace, start)
    return pd.Timestamp(start)


@vendor_payload_asset(check_specs=[schema_check_spec("vendor_sell_order_payloads", blocking=True)])
def vendor_sell_order_payloads(
    context: dg.AssetExecutionContext,
    vendor_purchase_orders: pd.DataFrame,
    vendor_existing_products: pd.DataFrame,
    sync_state: SyncStateResource,
    vendor_settings: VendorSettings,
):
    """sell_orders_only: Amazon's purchase orders as the vendor's sell orders, a line per product by EAN."""
    marketplace = marketplace_of(context.partition_key)
    products = vendor_existing_products.dropna(subset=["eanCode"])
    by_ean = dict(zip(products["eanCode"], products["optiply_id"].astype(int), strict=True))
    start = _orders_start(sync_state.open(), marketplace, vendor_settings)
    frame = vt.sell_orders_from_purchase_orders(vendor_purchase_orders, by_ean, start)
    yield dg.Output(frame, metadata=_sell_order_metadata(frame))
    yield schema_check(frame, schemas.VendorSellOrderPayloads)


@vendor_payload_asset(
    check_specs=[schema_check_spec("vendor_demand_payloads", blocking=True)], deps=["vendor_products"]
)
def vendor_demand_payloads(
    context: dg.AssetExecutionContext,
    vendor_sales_report: pd.DataFrame,
    vendor_product_payloads: pd.DataFrame,
    sync_state: SyncStateResource,
    vendor_settings: VendorSettings,
):
    """Full flavour: Amazon's customer demand (ordered units per ASIN and day) as sell orders."""
    marketplace = marketplace_of(context.partition_key)
    state = sync_state.open()
    start = _orders_start(state, marketplace, vendor_settings)
    frame = vt.sell_orders_from_sales(
        vendor_sales_report, vendor_product_payloads, optiply_ids(state, PRODUCTS, marketplace), start
    )
    yield dg.Output(frame, metadata=_sell_order_metadata(frame))
    yield schema_check(frame, schemas.VendorSellOrderPayloads)


def _sell_order_metadata(frame: pd.DataFrame) -> dict:
    orders = frame.drop_duplicates("remoteId")
    held = orders[orders["disposition"] == "held"]
    return frame_metadata(
        frame,
        **{f"orders_{d}": int(n) for d, n in orders["disposition"].value_counts().items()},
        held=markdown_rows(held[["remoteId", "problem"]]),
    )


# ---- deliveries ----------------------------------------------------------------------------------------


def _delivered(report, state: SyncState, entity: str, marketplace: str, **extra) -> dg.MaterializeResult:
    records = state.records(entity, marketplace)
    return dg.MaterializeResult(
        metadata={
            **{f"{entity}_{k}": v for k, v in sorted(report.counts.items())},
            "writes_recovered": report.recovered,
            f"{entity}_known": int((records["state"] == "done").sum()),
            **extra,
            **frame_metadata(writes_frame(report)),
        }
    )


def _without_nulls(row: dict) -> dict:
    return {k: v for k, v in row.items() if v is not None and not (isinstance(v, float) and pd.isna(v))}


@vendor_delivery_asset()
def vendor_suppliers(
    context: dg.AssetExecutionContext,
    vendor_supplier_payloads: pd.DataFrame,
    optiply: OptiplyResource,
    sync_state: SyncStateResource,
) -> dg.MaterializeResult:
    """Suppliers delivered: one per vendor code, created once."""
    marketplace = marketplace_of(context.partition_key)
    state = sync_state.open()
    desired = [_without_nulls(r) for r in vendor_supplier_payloads.to_dict("records")]
    with optiply.client(state) as client:
        report = deliver_records(client, state, SUPPLIERS, marketplace, desired)
    return _delivered(report, state, SUPPLIERS, marketplace)


@vendor_delivery_asset()
def vendor_products(
    context: dg.AssetExecutionContext,
    vendor_product_payloads: pd.DataFrame,
    optiply: OptiplyResource,
    sync_state: SyncStateResource,
) -> dg.MaterializeResult:
    """Products delivered: new ones POSTed, changed stock or names PATCHed, the rest left alone."""
    marketplace = marketplace_of(context.partition_key)
    state = sync_state.open()
    desired = [
        _without_nulls(
            {
                "remoteId": r["remoteId"],
                "name": r["name"],
                "skuCode": r["asin"],
                "eanCode": r["eanCode"],
                "stockLevel": int(r["stockLevel"]),
            }
        )
        for r in vendor_product_payloads.to_dict("records")
    ]
    with optiply.client(state) as client:
        report = deliver_records(client, state, PRODUCTS, marketplace, desired)
    return _delivered(report, state, PRODUCTS, marketplace)


@vendor_delivery_asset(deps=["vendor_suppliers", "vendor_products"])
def vendor_supplier_products(
    context: dg.AssetExecutionContext,
    vendor_supplier_product_payloads: pd.DataFrame,
    optiply: OptiplyResource,
    sync_state: SyncStateResource,
) -> dg.MaterializeResult:
    """Supplier products delivered, pointing at the supplier and product ids this integration delivered."""
    marketplace = marketplace_of(context.partition_key)
    state = sync_state.open()
    supplier_ids, product_ids = (
        optiply_ids(state, SUPPLIERS, marketplace),
        optiply_ids(state, PRODUCTS, marketplace),
    )
    desired, missing = [], 0
    for r in vendor_supplier_product_payloads.to_dict("records"):
        if r["supplier_remote_id"] not in supplier_ids or r["product_remote_id"] not in product_ids:
            missing += 1
            continue
        desired.append(
            _without_nulls(
                {
                    "remoteId": r["remoteId"],
                    "name": r["name"],
                    "supplierId": supplier_ids[r["supplier_remote_id"]],
                    "productId": product_ids[r["product_remote_id"]],
                    "skuCode": r["articleCode"],
                    "eanCode": r["eanCode"],
                    "price": r["price"],
                    "deliveryTime": None if pd.isna(r["deliveryTime"]) else int(r["deliveryTime"]),
                }
            )
        )
    with optiply.client(state) as client:
        report = deliver_records(client, state, SUPPLIER_PRODUCTS, marketplace, desired)
    return _delivered(report, state, SUPPLIER_PRODUCTS, marketplace, waiting_for_supplier_or_product=missing)


@vendor_delivery_asset(deps=["vendor_suppliers", "vendor_products"])
def vendor_buy_orders(
    context: dg.AssetExecutionContext,
    vendor_buy_order_payloads: pd.DataFrame,
    optiply: OptiplyResource,
    sync_state: SyncStateResource,
) -> dg.MaterializeResult:
    """Buy orders delivered with their lines nested, once; completed PATCHed when Amazon closes the order."""
    marketplace = marketplace_of(context.partition_key)
    state = sync_state.open()
    supplier_ids, product_ids = (
        optiply_ids(state, SUPPLIERS, marketplace),
        optiply_ids(state, PRODUCTS, marketplace),
    )
    deliverable = vendor_buy_order_payloads[vendor_buy_order_payloads["disposition"] == "deliver"]
    orders = [
        vt.buy_order_attributes(lines, supplier_ids[lines.iloc[0]["supplier_remote_id"]], product_ids)
        for _, lines in deliverable.groupby("remoteId", sort=True)
    ]
    with optiply.client(state) as client:
        report = deliver_buy_orders(client, state, marketplace, orders)
    return _delivered(report, state, BUY_ORDERS, marketplace)


@vendor_delivery_asset()
def vendor_receipt_lines(
    context: dg.AssetExecutionContext,
    vendor_receipt_line_payloads: pd.DataFrame,
    optiply: OptiplyResource,
    sync_state: SyncStateResource,
) -> dg.MaterializeResult:
    """Receipt lines delivered, each once (its remoteId names the cumulative count it brings its line to)."""
    marketplace = marketplace_of(context.partition_key)
    state = sync_state.open()
    with optiply.client(state) as client:
        report = deliver_receipt_lines(client, state, marketplace, vendor_receipt_line_payloads)
    return _delivered(report, state, RECEIPT_LINES, marketplace)


def _deliver_sell_orders(context, payloads: pd.DataFrame, optiply, sync_state) -> tuple:
    marketplace = marketplace_of(context.partition_key)
    state = sync_state.open()
    deliverable = payloads[payloads["disposition"] == "deliver"]
    desired = [vt.sell_order_attributes(lines) for _, lines in deliverable.groupby("remoteId", sort=True)]
    with optiply.client(state) as client:
        report = deliver_records(client, state, SELL_ORDERS, marketplace, desired, create_only=True)
    return report, state, marketplace


@vendor_delivery_asset()
def vendor_sell_orders(
    context: dg.AssetExecutionContext,
    vendor_sell_order_payloads: pd.DataFrame,
    optiply: OptiplyResource,
    sync_state: SyncStateResource,
) -> dg.MaterializeResult:
    """sell_orders_only: each purchase order posted once as a sell order; held ones wait for their product."""
    report, state, marketplace = _deliver_sell_orders(
        context, vendor_sell_order_payloads, optiply, sync_state
    )
    return _delivered(report, state, SELL_ORDERS, marketplace)


@vendor_delivery_asset()
def vendor_demand(
    context: dg.AssetExecutionContext,
    vendor_demand_payloads: pd.DataFrame,
    optiply: OptiplyResource,
    sync_state: SyncStateResource,
) -> dg.MaterializeResult:
    """Full flavour: each ASIN-day of customer demand posted once; the sales cursor moves only afterwards
    (to the first day still held, so a held day is read again)."""
    report, state, marketplace = _deliver_sell_orders(context, vendor_demand_payloads, optiply, sync_state)
    days = pd.to_datetime(vendor_demand_payloads["placed"], utc=True)
    if len(days):
        held = days[vendor_demand_payloads["disposition"] == "held"]
        cursor = held.min() if len(held) else days.max() + pd.Timedelta(days=1)
        state.set_stream_cursor(SALES_STREAM, marketplace, cursor.to_pydatetime())
    return _delivered(report, state, SELL_ORDERS, marketplace)
