"""The seller's API streams per marketplace: the seed tap's order items, financial events, AWD inventory, FBA
inbound shipments, account and marketplaces, as raw assets (group `amazon_streams`) for a data team's
warehouse. Optiply is fed none of them directly (AWD and inbound units reach stock through warehouse_stock).

Each lands as Parquet with a pandera model and a `schema` check (streams/api_schemas.py), row counts and a
preview, and says in its metadata which window it read. Windows move with cursors in the state database.
The near-real-time streams join the 30-minute sync, the others a daily job (both wired in defs/automation.py);
all spend the tenant's SP-API budget at each operation's documented rate.
"""

import functools
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd

from amazon_optiply.defs.metadata import frame_metadata, schema_check, schema_check_spec
from amazon_optiply.partitions import marketplace_of, marketplace_partitions
from amazon_optiply.resources import AmazonResource, IntegrationSettings, SyncStateResource
from amazon_optiply.streams import api, api_client, api_schemas

GROUP = "amazon_streams"
# Below the order path's -1: in a 30-minute run these steps come after the deliveries they do not feed.
STREAM_TAGS = {"dagster/priority": "-2"}

api_stream_asset = functools.partial(
    dg.asset,
    partitions_def=marketplace_partitions,
    group_name=GROUP,
    kinds={"amazon", "pandas"},
    owners=["team:integrations"],
    op_tags=STREAM_TAGS,
)

# Orders Amazon has not priced yet (Pending) or cancelled before they were ever itemised are not asked for:
# a Pending order comes back in the orders report when it changes, a cancelled one has nothing to price.
NOT_ITEMISED = frozenset({"Pending", "Cancelled"})
# At most this long of getOrderItems calls per run (0.5 per second after a burst of 30: about 60 orders);
# orders left over stay queued in the state database for the next cycle.
ORDER_ITEMS_RUN_SECONDS = 60.0
FINANCES_STREAM = "order_financial_events"
# Amazon: "orders from the last 48 hours might not be included". The window ends 48 h before Amazon's now,
# so an event is read once it can no longer be missing, and the cursor never passes one still to come.
FINANCES_LAG = timedelta(hours=48)
INBOUND_STREAM = "fba_inbound_shipments"
INBOUND_FIRST_LOOKBACK = timedelta(days=90)  # the first read: shipments updated in the last 90 days
INBOUND_OVERLAP = timedelta(minutes=5)  # Amazon's update times and its Date header can disagree a little
AWD_MARKETPLACE = "US"


def _calls(amazon: AmazonResource) -> dict:
    stats = amazon.caller.stats
    return {"sp_api_calls": dict(stats.calls), "sp_api_throttled": dict(stats.throttled)}


def _iso(t: datetime | None) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t else ""


@api_stream_asset(check_specs=[schema_check_spec("order_items")])
def order_items(
    context: dg.AssetExecutionContext,
    orders_report: pd.DataFrame,
    amazon: AmazonResource,
    sync_state: SyncStateResource,
):
    """A row per item of the orders the orders report brought (Orders v0 getOrderItems, every page).

    Each order is itemised once: the orders of each report are queued in the state database, and a run asks
    for queued orders only, oldest first, for at most ORDER_ITEMS_RUN_SECONDS, so a cycle spends calls on new
    orders. Pending orders wait until Amazon prices them (they come back in the report when they change);
    orders first seen cancelled are not asked for. Items are as Amazon had them when itemised: a later
    QuantityShipped is not read again. Buyer name, e-mail and address (BuyerInfo) are personal data Optiply
    never needs: they are neither asked for (no restricted data token) nor kept.
    """
    marketplace = marketplace_of(context.partition_key)
    state = sync_state.open()
    statuses = {}
    if len(orders_report):
        per_order = orders_report.drop_duplicates("amazon-order-id")
        statuses = dict(zip(per_order["amazon-order-id"], per_order["order-status"], strict=True))
    wanted = {order_id: status for order_id, status in statuses.items() if status not in NOT_ITEMISED}
    queued = state.queue_orders(marketplace, wanted, datetime.now(UTC))
    todo = state.orders_to_itemise(marketplace)
    began, rows, done = time.monotonic(), [], []
    for order_id, status in todo:
        if done and time.monotonic() - began > ORDER_ITEMS_RUN_SECONDS:
            break
        items = api_client.order_items(amazon.partner, marketplace, order_id)
        rows += [api.order_item_row(order_id, marketplace, status, item) for item in items]
        done.append((order_id, len(items)))
    frame = api.order_items_frame(rows)
    yield dg.Output(
        frame,
        metadata=frame_metadata(
            frame,
            orders_in_report=len(statuses),
            orders_not_itemised_pending_or_cancelled=len(statuses) - len(wanted),
            orders_queued_new=queued,
            orders_itemised=len(done),
            orders_still_queued=len(todo) - len(done),
            **_calls(amazon),
        ),
    )
    # Only once the rows are stored: a run that dies before asks for these orders again.
    now = datetime.now(UTC)
    for order_id, count in done:
        state.note_itemised(marketplace, order_id, count, now)
    yield schema_check(frame, api_schemas.OrderItems)


@api_stream_asset(check_specs=[schema_check_spec("order_financial_events")])
def order_financial_events(
    context: dg.AssetExecutionContext,
    amazon: AmazonResource,
    sync_state: SyncStateResource,
    settings: IntegrationSettings,
):
    """Financial events posted since the cursor (Finances v0 listFinancialEvents), one row per amount.

    Every event list is flattened to one row per charge, fee, promotion or adjustment amount, with its order,
    SKU, event type, posting time, type and exact decimal amount and currency. The window ends 48 hours before
    Amazon's now (an answer's Date): Amazon may not have released younger events yet. It is read in windows
    of at most 7 days, every page, a window again whole when a page token expires. The API answers a whole
    region: a partition keeps its marketplace's events, and the region's home partition (the main marketplace,
    else the tenant's first in the region) also the account's (fees and reimbursements name no marketplace).
    The first window starts at the orders start (ORDERS_START, or ORDERS_LOOKBACK_DAYS before).
    """
    marketplace = marketplace_of(context.partition_key)
    state = sync_state.open()
    partner = amazon.partner
    amazon_now = api_client.finances_clock(partner, marketplace, datetime.now(UTC) - timedelta(days=3))
    end = (amazon_now - FINANCES_LAG).replace(microsecond=0)
    start = state.stream_cursor(FINANCES_STREAM, marketplace) or settings.orders_start_for_first_run(
        amazon_now
    )
    rows, windows, pages = [], 0, 0
    if start < end:
        for _, window_pages in api_client.financial_events(partner, marketplace, start, end):
            windows += 1
            for page in window_pages:
                rows += api.financial_event_rows(page, page=pages)
                pages += 1
    home = api.finances_region_home(settings.marketplace_codes, settings.main, marketplace)
    region_frame = api.financial_events_frame(rows)
    frame = api.events_of_partition(region_frame, marketplace, home, settings.marketplace_codes)
    yield dg.Output(
        frame,
        metadata=frame_metadata(
            frame,
            window_start=_iso(start),
            window_end=_iso(end)
            if start < end
            else f"{_iso(start)} (nothing new: the window ends 48 h before Amazon's now, {_iso(amazon_now)})",
            amazon_now=_iso(amazon_now),
            windows_read=windows,
            pages_read=pages,
            region_rows=len(region_frame),
            region_home=home,
            **_calls(amazon),
        ),
    )
    if start < end:
        state.set_stream_cursor(FINANCES_STREAM, marketplace, end)
    yield schema_check(frame, api_schemas.OrderFinancialEvents)


@api_stream_asset(check_specs=[schema_check_spec("awd_inventory")])
def awd_inventory(context: dg.AssetExecutionContext, amazon: AmazonResource):
    """AWD inventory per SKU (AWD 2024-05-09 listInventory, details=SHOW, every page): on hand, on its way
    from the seller into AWD, and on its way from AWD to FBA.

    Read whole every time (it has no changed-since filter). AWD exists for the US marketplace only: in any
    other marketplace this asset reads nothing and says so.
    """
    marketplace = marketplace_of(context.partition_key)
    if marketplace != AWD_MARKETPLACE:
        frame = api.awd_inventory_frame([])
        note = f"AWD stores for the {AWD_MARKETPLACE} marketplace only: nothing read for {marketplace}"
    else:
        frame = api.awd_inventory_frame(api_client.awd_inventory(amazon.partner))
        note = "read whole"
    yield dg.Output(frame, metadata=frame_metadata(frame, read=note, **_calls(amazon)))
    yield schema_check(frame, api_schemas.AwdInventory)


@api_stream_asset(check_specs=[schema_check_spec("fba_inbound_shipments")])
def fba_inbound_shipments(
    context: dg.AssetExecutionContext, amazon: AmazonResource, sync_state: SyncStateResource
):
    """A row per item of the inbound shipments to FBA updated since the cursor (FBA Inbound v0 getShipments
    by DATE_RANGE and every NEXT_TOKEN page, any status; getShipmentItemsByShipmentId per shipment).

    The window runs from the cursor (less 5 minutes) to Amazon's now (an answer's Date); the first one
    reaches back 90 days. Items carry QuantityShipped, QuantityReceived and QuantityInCase as Amazon has
    them now. Of the ship-from address only the country is kept.
    """
    marketplace = marketplace_of(context.partition_key)
    state = sync_state.open()
    partner = amazon.partner
    end = api_client.inbound_clock(partner, marketplace, datetime.now(UTC) - timedelta(days=1)).replace(
        microsecond=0
    )
    cursor = state.stream_cursor(INBOUND_STREAM, marketplace)
    start = cursor - INBOUND_OVERLAP if cursor else end - INBOUND_FIRST_LOOKBACK
    shipments = {s["ShipmentId"]: s for s in api_client.inbound_shipments(partner, marketplace, start, end)}
    rows = []
    for shipment_id, shipment in shipments.items():
        items = api_client.inbound_shipment_items(partner, marketplace, shipment_id)
        rows += api.inbound_shipment_rows(marketplace, shipment, items)
    frame = api.inbound_shipments_frame(rows)
    yield dg.Output(
        frame,
        metadata=frame_metadata(
            frame,
            window_start=_iso(start),
            window_end=_iso(end),
            shipments=len(shipments),
            shipments_by_status=dict(frame.drop_duplicates("shipment_id")["shipment_status"].value_counts()),
            **_calls(amazon),
        ),
    )
    state.set_stream_cursor(INBOUND_STREAM, marketplace, end)
    yield schema_check(frame, api_schemas.FbaInboundShipments)


@api_stream_asset(check_specs=[schema_check_spec("seller_account")])
def seller_account(context: dg.AssetExecutionContext, amazon: AmazonResource):
    """The selling account (Sellers getAccount): business type, selling plan, business name and country,
    participating marketplaces. One call.

    The account is the tenant's, not a marketplace's, but Dagster gives an asset one partitions definition,
    and every seller asset is partitioned `<tenant>/<marketplace>`: each partition of a tenant holds the same
    account, asked for with its own marketplace's host. The primary contact (a person's name and home
    address), addresses, registration and tax numbers, and a natural person's business name are left out:
    personal data Optiply never needs.
    """
    marketplace = marketplace_of(context.partition_key)
    frame = api.seller_account_frame(api_client.seller_account(amazon.partner, marketplace))
    yield dg.Output(frame, metadata=frame_metadata(frame, account_wide=True, **_calls(amazon)))
    yield schema_check(frame, api_schemas.SellerAccount)


@api_stream_asset(check_specs=[schema_check_spec("marketplace_participations")])
def marketplace_participations(context: dg.AssetExecutionContext, amazon: AmazonResource):
    """Every marketplace of the account and whether the seller takes part (Sellers getMarketplaceParticipations).
    One call.

    Account-wide like seller_account, and partitioned per tenant and marketplace for the same reason: every
    partition of a tenant holds the same rows.
    """
    marketplace = marketplace_of(context.partition_key)
    payload = api_client.marketplace_participations(amazon.partner, marketplace)
    frame = api.marketplace_participations_frame(payload)
    yield dg.Output(
        frame,
        metadata=frame_metadata(
            frame,
            account_wide=True,
            participating=",".join(frame.loc[frame["is_participating"].fillna(False), "country_code"]),
            **_calls(amazon),
        ),
    )
    yield schema_check(frame, api_schemas.MarketplaceParticipations)


# What the lead wires into jobs: the first join the 30-minute sync, the second run daily.
NEAR_REAL_TIME_API_STREAMS = (order_items, awd_inventory, fba_inbound_shipments)
DAILY_API_STREAMS = (order_financial_events, seller_account, marketplace_participations)
