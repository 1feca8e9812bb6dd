"""Optiply layer per marketplace: the product and sell-order payloads, and their delivery to Optiply."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from amazon_optiply import schemas
from amazon_optiply.defs.metadata import frame_metadata, markdown_rows, schema_check, schema_check_spec
from amazon_optiply.defs.shared import DELIVERY_FRESHNESS, OPTIPLY_WRITES_POOL, writes_frame
from amazon_optiply.delivery import (
    PRODUCTS,
    SELL_ORDERS,
    deliver_products,
    deliver_sell_orders,
    delivered_in_optiply,
    products_under_remote_ids,
    record_existing_sell_orders,
)
from amazon_optiply.marketplaces import MARKETPLACES
from amazon_optiply.partitions import marketplace_of, marketplace_partitions
from amazon_optiply.resources import IntegrationSettings, OptiplyResource, SyncStateResource
from amazon_optiply.run_order import ORDER_PATH_TAGS
from amazon_optiply.transforms import optiply as payloads
from amazon_optiply.transforms.optiply import GIVEN_UP, HELD_DISPOSITIONS, SKIPPED_DISPOSITIONS

GROUP = "optiply"


@dg.asset(
    partitions_def=marketplace_partitions,
    group_name=GROUP,
    kinds={"pandas", "optiply"},
    owners=["team:integrations"],
    check_specs=[schema_check_spec("optiply_existing_products", blocking=True)],
)
def optiply_existing_products(
    context: dg.AssetExecutionContext,
    optiply: OptiplyResource,
    sync_state: SyncStateResource,
    settings: IntegrationSettings,
):
    """The ENABLED products the Optiply account holds (filter[status]=ENABLED, paged), whoever made them.

    Secondary flavour: the products order lines are matched to, read every cycle. Full flavour: read only
    while this marketplace has no delivered product on record (a first sync, or a lost state database),
    as the seed's ETL does: what a first sync adopts instead of duplicating, and how a deployment without
    local state finds what it delivered before. Later cycles know their products and skip the read.
    """
    marketplace = marketplace_of(context.partition_key)
    state = sync_state.open()
    delivered = state.records(PRODUCTS, marketplace)
    if settings.writes_products and (delivered["state"] == "done").any():
        frame = payloads.existing_products_frame([], optiply.coupling_id)
        read = "skipped: this marketplace's products are on record"
    else:
        with optiply.client(state) as client:
            records = list(client.iter_records(PRODUCTS, {"status": "ENABLED"}))
        frame = payloads.existing_products_frame(records, optiply.coupling_id)
        read = "all ENABLED products"
    yield dg.Output(
        frame,
        metadata=frame_metadata(
            frame, read=read, products_of_this_coupling=int(frame["remoteId"].notna().sum())
        ),
    )
    yield schema_check(frame, schemas.OptiplyExistingProducts)


@dg.asset(
    partitions_def=marketplace_partitions,
    group_name=GROUP,
    kinds={"pandas", "optiply"},
    owners=["team:integrations"],
    check_specs=[
        schema_check_spec("optiply_product_payloads", blocking=True),
        dg.AssetCheckSpec(
            "products_unambiguous",
            asset="optiply_product_payloads",
            description="No listing matches several existing Optiply products",
        ),
    ],
)
def optiply_product_payloads(
    context: dg.AssetExecutionContext,
    enriched_catalog: pd.DataFrame,
    optiply_existing_products: pd.DataFrame,
    optiply: OptiplyResource,
    sync_state: SyncStateResource,
    settings: IntegrationSettings,
):
    """Product attributes per active listing, marked create, update, unchanged, take_over, adopt or conflict.

    Compared with what was last delivered (the local state), else with what Optiply holds for our
    remoteId; a product the old Amazon integration made for the listing's ASIN is taken over; in the main
    marketplace an existing Optiply product with the same match key is adopted. When optiply_existing_products
    skipped its read (products on record), a listing not on record is looked up in Optiply by both remoteIds.
    """
    marketplace = marketplace_of(context.partition_key)
    is_main = marketplace == settings.main
    frame = payloads.optiply_product_payloads(
        enriched_catalog, MARKETPLACES[marketplace].marketplace_id, is_main
    )
    state = sync_state.open()
    delivered = state.records(PRODUCTS, marketplace)
    delivered = delivered[delivered["state"] == "done"]
    existing = optiply_existing_products
    not_on_record = frame[~frame["remoteId"].isin(delivered["remote_id"])]
    looked_up = len(not_on_record) if len(delivered) else 0
    if looked_up:
        with optiply.client(state) as client:
            records = products_under_remote_ids(
                client, [*not_on_record["remoteId"], *not_on_record["legacy_remote_id"]]
            )
        found = payloads.existing_products_frame(records, optiply.coupling_id)
        existing = found[found["remoteId"].notna()]  # ours only: adoption by match key is a first sync's
    plan = payloads.plan_product_writes(
        frame, delivered, existing, settings.match_key, adopt_existing=is_main
    )
    conflicts = plan[plan["action"] == "conflict"]
    yield dg.Output(
        plan,
        metadata=frame_metadata(
            plan, actions=plan["action"].value_counts().to_dict(), listings_looked_up_in_optiply=looked_up
        ),
    )
    yield dg.AssetCheckResult(
        check_name="products_unambiguous",
        passed=conflicts.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "marketplace": context.partition_key,
            "conflicts": len(conflicts),
            "conflicting": markdown_rows(conflicts[["remoteId", "changed"]]),
        },
    )
    yield schema_check(plan, schemas.OptiplyProductPayloads)


@dg.asset(
    partitions_def=marketplace_partitions,
    group_name=GROUP,
    kinds={"optiply"},
    owners=["team:integrations"],
    freshness_policy=DELIVERY_FRESHNESS,
    pool=OPTIPLY_WRITES_POOL,
)
def optiply_products(
    context: dg.AssetExecutionContext,
    optiply_product_payloads: pd.DataFrame,
    optiply: OptiplyResource,
    sync_state: SyncStateResource,
    settings: IntegrationSettings,
) -> dg.MaterializeResult:
    """Products delivered to Optiply: new ones POSTed, changed or adopted ones PATCHed, the id map kept.

    Never in the secondary flavour: there another shop system owns the products.
    """
    marketplace = marketplace_of(context.partition_key)
    if not settings.writes_products:
        context.log.info("Secondary flavour: products are not written to Optiply.")
        return dg.MaterializeResult(metadata={"flavour": settings.flavour, "products_written": 0})
    state = sync_state.open()
    with optiply.client(state) as client:
        report = deliver_products(client, state, marketplace, optiply_product_payloads)
    return dg.MaterializeResult(
        metadata={
            "products_created": report.counts.get("created", 0),
            "products_updated": report.counts.get("updated", 0),
            "products_unchanged": report.counts.get("unchanged", 0),
            "products_taken_over": report.counts.get("taken_over", 0),
            "products_adopted": report.counts.get("adopted", 0),
            "products_in_conflict": report.counts.get("conflict", 0),
            "writes_recovered": report.recovered,
            "products_known": int((state.records(PRODUCTS, marketplace)["state"] == "done").sum()),
            # The counts first, then what was written: the UI lists metadata in this order.
            **frame_metadata(writes_frame(report)),
        }
    )


@dg.asset(
    partitions_def=marketplace_partitions,
    group_name=GROUP,
    kinds={"pandas", "optiply"},
    owners=["team:integrations"],
    check_specs=[schema_check_spec("optiply_existing_sell_orders", blocking=True)],
    op_tags=ORDER_PATH_TAGS,
)
def optiply_existing_sell_orders(
    context: dg.AssetExecutionContext,
    orders_report: pd.DataFrame,
    optiply: OptiplyResource,
    sync_state: SyncStateResource,
):
    """The orders of this marketplace's orders report that Optiply already holds, whoever posted them.

    Read only while no sell order of this marketplace is on record as delivered (a first sync, a lost state
    database, or an account the old Amazon integration fed): Optiply's sell orders placed from the report's
    earliest order on (filter[placed][GE], paged), kept when the report names them. Every order of the
    window counts, not only the ones deliverable now: one Pending or held today may have been posted already,
    and later cycles, which skip this read, know it only from the record optiply_sell_orders makes of it.
    """
    marketplace = marketplace_of(context.partition_key)
    state = sync_state.open()
    delivered = state.records(SELL_ORDERS, marketplace)
    frame = payloads.existing_sell_orders_frame({}, orders_report)
    if (delivered["state"] == "done").any():
        read = "skipped: this marketplace's sell orders are on record"
    elif orders_report.empty:
        read = "skipped: no orders in the report"
    else:
        placed_from = payloads.optiply_time(orders_report["purchase-date"]).min()
        with optiply.client(state) as client:
            frame = payloads.existing_sell_orders_frame(
                delivered_in_optiply(client, placed_from), orders_report
            )
        read = f"sell orders placed from {placed_from}"
    yield dg.Output(frame, metadata=frame_metadata(frame, read=read))
    yield schema_check(frame, schemas.OptiplyExistingSellOrders)


@dg.asset(
    partitions_def=marketplace_partitions,
    group_name=GROUP,
    kinds={"pandas", "optiply"},
    owners=["team:integrations"],
    check_specs=[
        schema_check_spec("optiply_sell_order_payloads", blocking=True),
        dg.AssetCheckSpec(
            "orders_held", asset="optiply_sell_order_payloads", description="Orders not sent, and why"
        ),
    ],
    op_tags=ORDER_PATH_TAGS,
)
def optiply_sell_order_payloads(
    context: dg.AssetExecutionContext,
    orders_report: pd.DataFrame,
    order_identifiers: pd.DataFrame,
    optiply_existing_products: pd.DataFrame,
    optiply_existing_sell_orders: pd.DataFrame,
    sync_state: SyncStateResource,
    settings: IntegrationSettings,
):
    """Sell-order lines with their order's fields, the Optiply product id per line, and what to do with each order.

    Full flavour: lines point at the products this integration delivered, as on record in the state
    database when this step runs (after the run's product delivery, which it does not depend on: a failed
    listings report holds only the orders whose products are not in Optiply yet). Secondary flavour: at the
    existing Optiply product with the line's SKU or EAN (the match key). Orders on record as delivered, or
    that Optiply already holds, are `already_delivered`.
    """
    marketplace = marketplace_of(context.partition_key)
    state = sync_state.open()
    if settings.writes_products:
        products = state.records(PRODUCTS, marketplace)
        products = products[products["state"] == "done"]
        matcher = payloads.OwnProducts(
            pd.Series(products["optiply_id"].to_numpy(), index=products["remote_id"]),
            MARKETPLACES[marketplace].marketplace_id,
            marketplace == settings.main,
        )
    else:
        matcher = payloads.ExistingProducts(optiply_existing_products, settings.match_key, order_identifiers)
    delivered = state.records(SELL_ORDERS, marketplace)
    _, orders_start = state.order_cursor(marketplace)
    now = pd.Timestamp.now(tz="UTC")
    lines = payloads.sell_order_lines(
        orders_report,
        matcher,
        pd.Timestamp(orders_start),
        set(delivered.loc[delivered["state"] == "done", "remote_id"])
        | set(optiply_existing_sell_orders["remoteId"]),
        held_since=state.held_since(SELL_ORDERS, marketplace),
        now=now,
        held_retention=pd.Timedelta(days=settings.held_order_retention_days),
    )
    orders = lines.drop_duplicates("remoteId")
    held = lines[lines["disposition"].isin(HELD_DISPOSITIONS)].copy()
    waited = now - pd.to_datetime(held["held_since"], utc=True)  # NaT: held for the first time now
    held["waiting_hours"] = (waited.dt.total_seconds() / 3600).fillna(0).round(1)
    given_up = lines[lines["disposition"] == GIVEN_UP]
    yield dg.Output(
        lines,
        metadata=frame_metadata(lines, orders_by_disposition=orders["disposition"].value_counts().to_dict()),
    )
    yield dg.AssetCheckResult(
        check_name="orders_held",
        passed=held.empty and given_up.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "marketplace": context.partition_key,
            "orders_held": int(held["remoteId"].nunique()),
            "orders_given_up": int(given_up["remoteId"].nunique()),
            "held_order_retention_days": settings.held_order_retention_days,
            "held": markdown_rows(
                held[["remoteId", "sku", "asin", "disposition", "problem", "held_since", "waiting_hours"]]
            ),
            "given_up": markdown_rows(given_up[["remoteId", "sku", "asin", "problem", "held_since"]]),
        },
    )
    yield schema_check(lines, schemas.OptiplySellOrderPayloads)


@dg.asset(
    partitions_def=marketplace_partitions,
    group_name=GROUP,
    kinds={"optiply"},
    owners=["team:integrations"],
    freshness_policy=DELIVERY_FRESHNESS,
    pool=OPTIPLY_WRITES_POOL,
    op_tags=ORDER_PATH_TAGS,
)
def optiply_sell_orders(
    context: dg.AssetExecutionContext,
    optiply_sell_order_payloads: pd.DataFrame,
    optiply_existing_sell_orders: pd.DataFrame,
    optiply: OptiplyResource,
    sync_state: SyncStateResource,
) -> dg.MaterializeResult:
    """Sell orders delivered to Optiply, each exactly once; the orders cursor moves only after delivery.

    Orders Optiply already held (optiply_existing_sell_orders) are recorded first, so they are never posted.
    """
    marketplace = marketplace_of(context.partition_key)
    state = sync_state.open()
    found = record_existing_sell_orders(state, marketplace, optiply_existing_sell_orders)
    with optiply.client(state) as client:
        report = deliver_sell_orders(
            client, state, marketplace, optiply_sell_order_payloads, datetime.now(UTC)
        )
    held = optiply_sell_order_payloads[optiply_sell_order_payloads["disposition"].isin(HELD_DISPOSITIONS)]
    held_since = pd.to_datetime(held["last_updated"], utc=True, format="ISO8601").min() if len(held) else None
    cursor = state.commit_orders_cursor(
        marketplace, held_since.to_pydatetime() if held_since is not None else None
    )
    return dg.MaterializeResult(
        metadata={
            "orders_delivered": report.counts.get("delivered", 0),
            "orders_held": sum(report.counts.get(k, 0) for k in HELD_DISPOSITIONS),
            "orders_given_up": report.counts.get(GIVEN_UP, 0),
            "orders_skipped": sum(report.counts.get(k, 0) for k in SKIPPED_DISPOSITIONS),
            "orders_by_outcome": report.counts,
            "orders_found_in_optiply": found,
            "writes_recovered": report.recovered,
            "orders_cursor": str(cursor),
            # The counts first, then what was written: the UI lists metadata in this order.
            **frame_metadata(writes_frame(report)),
        }
    )
