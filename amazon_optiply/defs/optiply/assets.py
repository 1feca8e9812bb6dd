"""Optiply layer per marketplace: the product and sell-order payloads, and their delivery to Optiply."""

import dagster as dg
import pandas as pd

from amazon_optiply import schemas
from amazon_optiply.defs.metadata import frame_metadata, markdown_rows, schema_check, schema_check_spec
from amazon_optiply.delivery import PRODUCTS, SELL_ORDERS, deliver_products, deliver_sell_orders
from amazon_optiply.marketplaces import MARKETPLACES
from amazon_optiply.partitions import marketplace_partitions
from amazon_optiply.resources import IntegrationSettings, OptiplyResource, SyncStateResource
from amazon_optiply.transforms import optiply as payloads
from amazon_optiply.transforms.optiply import HELD_DISPOSITIONS

GROUP = "optiply"


def _writes_frame(report) -> pd.DataFrame:
    """What this run wrote to Optiply: the row count and preview of a delivery asset."""
    return pd.DataFrame(report.written, columns=["remoteId", "optiply_id", "action"])


@dg.asset(
    partitions_def=marketplace_partitions,
    group_name=GROUP,
    kinds={"pandas", "optiply"},
    owners=["team:integrations"],
    check_specs=[schema_check_spec("optiply_product_payloads", blocking=True)],
)
def optiply_product_payloads(
    context: dg.AssetExecutionContext,
    enriched_catalog: pd.DataFrame,
    sync_state: SyncStateResource,
    settings: IntegrationSettings,
):
    """Product attributes per active listing, each marked create / update (with the changed fields) / unchanged."""
    country = context.partition_key
    frame = payloads.optiply_product_payloads(
        enriched_catalog, MARKETPLACES[country].marketplace_id, country == settings.main
    )
    delivered = sync_state.open().records(PRODUCTS, country)
    plan = payloads.plan_product_writes(frame, delivered[delivered["state"] == "done"])
    yield dg.Output(plan, metadata=frame_metadata(plan, actions=plan["action"].value_counts().to_dict()))
    yield schema_check(plan, schemas.OptiplyProductPayloads)


@dg.asset(
    partitions_def=marketplace_partitions,
    group_name=GROUP,
    kinds={"optiply"},
    owners=["team:integrations"],
)
def optiply_products(
    context: dg.AssetExecutionContext,
    optiply_product_payloads: pd.DataFrame,
    optiply: OptiplyResource,
    sync_state: SyncStateResource,
) -> dg.MaterializeResult:
    """Products delivered to Optiply: new ones POSTed, changed ones PATCHed, the remoteId -> id map kept."""
    country = context.partition_key
    state = sync_state.open()
    with optiply.client(state) as client:
        report = deliver_products(client, state, country, optiply_product_payloads)
    return dg.MaterializeResult(
        metadata={
            **frame_metadata(_writes_frame(report)),
            "products_created": report.counts.get("created", 0),
            "products_updated": report.counts.get("updated", 0),
            "products_unchanged": report.counts.get("unchanged", 0),
            "writes_recovered": report.recovered,
            "products_known": int((state.records(PRODUCTS, country)["state"] == "done").sum()),
        }
    )


@dg.asset(
    partitions_def=marketplace_partitions,
    group_name=GROUP,
    kinds={"pandas", "optiply"},
    owners=["team:integrations"],
    deps=["optiply_products"],
    check_specs=[
        schema_check_spec("optiply_sell_order_payloads", blocking=True),
        dg.AssetCheckSpec(
            "orders_held", asset="optiply_sell_order_payloads", description="Orders not sent, and why"
        ),
    ],
)
def optiply_sell_order_payloads(
    context: dg.AssetExecutionContext,
    orders_report: pd.DataFrame,
    sync_state: SyncStateResource,
    settings: IntegrationSettings,
):
    """Sell-order lines with their order's fields, the Optiply product id per line, and what to do with each order."""
    country = context.partition_key
    state = sync_state.open()
    products = state.records(PRODUCTS, country)
    products = products[products["state"] == "done"]
    product_ids = pd.Series(products["optiply_id"].to_numpy(), index=products["remote_id"])
    delivered = state.records(SELL_ORDERS, country)
    _, orders_start = state.order_cursor(country)
    lines = payloads.sell_order_lines(
        orders_report,
        product_ids,
        MARKETPLACES[country].marketplace_id,
        country == settings.main,
        pd.Timestamp(orders_start),
        set(delivered.loc[delivered["state"] == "done", "remote_id"]),
    )
    orders = lines.drop_duplicates("remoteId")
    held = lines[lines["disposition"].isin(HELD_DISPOSITIONS)]
    yield dg.Output(
        lines,
        metadata=frame_metadata(lines, orders_by_disposition=orders["disposition"].value_counts().to_dict()),
    )
    yield dg.AssetCheckResult(
        check_name="orders_held",
        passed=held.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "orders_held": int(held["remoteId"].nunique()),
            "held": markdown_rows(held[["remoteId", "sku", "disposition", "problem"]]),
        },
    )
    yield schema_check(lines, schemas.OptiplySellOrderPayloads)


@dg.asset(
    partitions_def=marketplace_partitions,
    group_name=GROUP,
    kinds={"optiply"},
    owners=["team:integrations"],
)
def optiply_sell_orders(
    context: dg.AssetExecutionContext,
    optiply_sell_order_payloads: pd.DataFrame,
    optiply: OptiplyResource,
    sync_state: SyncStateResource,
) -> dg.MaterializeResult:
    """Sell orders delivered to Optiply, each exactly once; the orders cursor moves only after delivery."""
    country = context.partition_key
    state = sync_state.open()
    with optiply.client(state) as client:
        report = deliver_sell_orders(client, state, country, optiply_sell_order_payloads)
    held = optiply_sell_order_payloads[optiply_sell_order_payloads["disposition"].isin(HELD_DISPOSITIONS)]
    held_since = pd.to_datetime(held["last_updated"], utc=True, format="ISO8601").min() if len(held) else None
    cursor = state.commit_orders_cursor(
        country, held_since.to_pydatetime() if held_since is not None else None
    )
    return dg.MaterializeResult(
        metadata={
            **frame_metadata(_writes_frame(report)),
            "orders_delivered": report.counts.get("delivered", 0),
            "orders_held": sum(report.counts.get(k, 0) for k in HELD_DISPOSITIONS),
            "orders_skipped": sum(
                report.counts.get(k, 0) for k in ("cancelled", "pending", "before_start", "already_delivered")
            ),
            "orders_by_outcome": report.counts,
            "writes_recovered": report.recovered,
            "orders_cursor": str(cursor),
        }
    )
