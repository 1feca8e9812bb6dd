"""Optiply payloads: products from the enriched catalog, sell orders from the orders report.

Pure pandas. The rules an Optiply user relies on are written here once:

- remoteId of a product is the seller SKU; outside the main marketplace `<sku>_<marketplaceId>`, so the
  same SKU sold in two marketplaces is two Optiply products that never collide.
- Only active listings become products. Nothing is ever deleted because a listing disappeared.
- A sell order is delivered once, when Amazon reports it Unshipped, partially shipped or Shipped (its price
  is known then). Pending orders wait (Amazon reports them again when they change); Cancelled ones are
  skipped; orders placed before the integration's start date are skipped.
- totalValue = sum over the order's lines of item-price + shipping-price + gift-wrap-price
  - |item-promotion-discount| - |ship-promotion-discount|. Taxes reported apart (item-tax, shipping-tax)
  are left out; in EU marketplaces Amazon's prices already include VAT.
- A line's subtotalValue is its item-price (unit price x quantity); lines with quantity 0 (cancelled
  items) are left out.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from amazon_optiply.transforms.catalog import parse_amount

PRODUCT_ATTRIBUTES = ["name", "skuCode", "eanCode", "price", "stockLevel"]

DELIVERABLE_STATUSES = {"Unshipped", "Shipping", "PartiallyShipped", "Shipped"}
WAITING_STATUSES = {"Pending", "PendingAvailability", "InvoiceUnconfirmed"}
CANCELLED_STATUSES = {"Cancelled", "Canceled"}

# What happens to an order, checked in this order; "deliver" when none applies.
SKIP_OR_HOLD_DISPOSITIONS = (
    "already_delivered",
    "before_start",
    "cancelled",
    "pending",
    "invalid",
    "unknown_status",
    "unmatched",
)
DISPOSITIONS = ("deliver", *SKIP_OR_HOLD_DISPOSITIONS)
# Orders neither sent nor deliberately skipped: the cursor must not move past them.
HELD_DISPOSITIONS = ("invalid", "unknown_status", "unmatched")


def product_remote_id(sku: pd.Series, marketplace_id: str, is_main_marketplace: bool) -> pd.Series:
    return sku if is_main_marketplace else sku + f"_{marketplace_id}"


def optiply_product_payloads(
    catalog: pd.DataFrame, marketplace_id: str, is_main_marketplace: bool
) -> pd.DataFrame:
    """Product attributes for every active, well-formed listing."""
    rows = catalog[(catalog["listing_status"] == "Active") & catalog["problem"].isna()]
    rows = rows.drop_duplicates("sku", keep="first")
    return pd.DataFrame(
        {
            "remoteId": product_remote_id(rows["sku"], marketplace_id, is_main_marketplace).astype("string"),
            "name": rows["name"].astype("string"),
            "skuCode": rows["sku"].astype("string"),
            "eanCode": rows["ean_code"].astype("string"),
            "price": rows["price"].astype("float64"),
            "stockLevel": rows["stock_level"].astype("int64"),
        }
    ).reset_index(drop=True)


def attributes_json(row: dict) -> str:
    """The canonical form of a product's attributes, stored after delivery to detect changes."""
    clean = {k: (None if _is_missing(row[k]) else row[k]) for k in PRODUCT_ATTRIBUTES}
    if clean["price"] is not None:
        clean["price"] = round(float(clean["price"]), 2)
    if clean["stockLevel"] is not None:
        clean["stockLevel"] = int(clean["stockLevel"])
    return json.dumps(clean, sort_keys=True, ensure_ascii=False)


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def plan_product_writes(payloads: pd.DataFrame, delivered: pd.DataFrame) -> pd.DataFrame:
    """Decide per product: create (unknown remoteId), update (attributes changed) or unchanged.

    `delivered` holds remote_id, optiply_id and the attributes_json last sent. `changed` lists the
    attributes an update PATCHes, so Optiply only receives what changed.
    """
    plan = payloads.copy()
    plan["attributes"] = [attributes_json(r) for r in plan[PRODUCT_ATTRIBUTES].to_dict("records")]
    known = delivered.set_index("remote_id") if len(delivered) else None
    actions, ids, changed = [], [], []
    for remote_id, attrs in zip(plan["remoteId"], plan["attributes"], strict=True):
        if known is None or remote_id not in known.index:
            actions.append("create")
            ids.append(pd.NA)
            changed.append("")
            continue
        previous = json.loads(known.at[remote_id, "attributes_json"] or "{}")
        current = json.loads(attrs)
        diff = sorted(k for k in PRODUCT_ATTRIBUTES if previous.get(k) != current.get(k))
        actions.append("update" if diff else "unchanged")
        ids.append(int(known.at[remote_id, "optiply_id"]))
        changed.append(",".join(diff))
    plan["action"] = pd.Series(actions, index=plan.index, dtype="string")
    plan["optiply_id"] = pd.array(ids, dtype="Int64")
    plan["changed"] = pd.Series(changed, index=plan.index, dtype="string")
    return plan


def optiply_time(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True, format="ISO8601").dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def deduplicated_order_rows(orders: pd.DataFrame) -> pd.DataFrame:
    """Flat-file order rows have no key; overlapping windows repeat them. Keep the latest row per line."""
    if orders.empty:
        return orders
    ranked = orders.assign(_updated=pd.to_datetime(orders["last-updated-date"], utc=True, format="ISO8601"))
    ranked = ranked.sort_values("_updated", kind="stable")
    return ranked.drop_duplicates(["amazon-order-id", "sku"], keep="last").drop(columns="_updated")


def sell_order_lines(
    orders: pd.DataFrame,
    product_ids: pd.Series,
    marketplace_id: str,
    is_main_marketplace: bool,
    orders_start: pd.Timestamp,
    delivered_order_ids: set[str],
) -> pd.DataFrame:
    """One row per order line with its order's fields and what to do with the order (`disposition`).

    `product_ids` maps product remoteId -> Optiply product id.
    """
    columns = [
        "remoteId",
        "placed",
        "totalValue",
        "sku",
        "asin",
        "productId",
        "quantity",
        "subtotalValue",
        "order_status",
        "last_updated",
        "disposition",
        "problem",
    ]
    if orders.empty:
        return _typed_lines(pd.DataFrame(columns=columns))
    rows = deduplicated_order_rows(orders)
    qty = pd.to_numeric(rows["quantity"].str.strip(), errors="coerce")
    item_price = parse_amount(rows["item-price"])
    extras = (
        parse_amount(rows["shipping-price"]).fillna(0)
        + parse_amount(rows["gift-wrap-price"]).fillna(0)
        - parse_amount(rows["item-promotion-discount"]).fillna(0).abs()
        - parse_amount(rows["ship-promotion-discount"]).fillna(0).abs()
    )
    lines = pd.DataFrame(
        {
            "remoteId": rows["amazon-order-id"].str.strip(),
            "placed_at": pd.to_datetime(rows["purchase-date"], utc=True, format="ISO8601"),
            "sku": rows["sku"].str.strip(),
            "asin": rows["asin"].str.strip(),
            "quantity": qty,
            "subtotalValue": item_price.round(2),
            "line_value": item_price + extras,
            "order_status": rows["order-status"].str.strip(),
            "last_updated": rows["last-updated-date"],
        }
    )
    # The order's status is the one on its latest row (all rows of one report agree).
    lines = lines[~((lines["quantity"] == 0) & ~lines["order_status"].isin(CANCELLED_STATUSES))]
    remote_ids = product_remote_id(lines["sku"], marketplace_id, is_main_marketplace)
    lines["productId"] = remote_ids.map(product_ids).astype("Int64")
    lines["placed"] = lines["placed_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    lines["totalValue"] = lines.groupby("remoteId")["line_value"].transform("sum").round(2)

    status = lines["order_status"]
    line_problem = pd.Series(pd.NA, index=lines.index, dtype="string")
    line_problem = line_problem.mask(
        lines["quantity"].isna() | (lines["quantity"] < 0), "unparsable quantity"
    )
    line_problem = line_problem.mask(
        lines["subtotalValue"].isna() & status.isin(DELIVERABLE_STATUSES), "no item-price"
    )
    order_problem = line_problem.groupby(lines["remoteId"]).transform("first")
    unmatched = lines["productId"].isna().groupby(lines["remoteId"]).transform("any")

    disposition = np.select(
        [
            lines["remoteId"].isin(delivered_order_ids),
            lines["placed_at"] < orders_start,
            status.isin(CANCELLED_STATUSES),
            status.isin(WAITING_STATUSES),
            order_problem.notna(),
            ~status.isin(DELIVERABLE_STATUSES),
            unmatched,
        ],
        SKIP_OR_HOLD_DISPOSITIONS,
        default="deliver",
    )
    lines["disposition"] = disposition
    lines["problem"] = order_problem.mask(
        (lines["disposition"] == "unmatched") & lines["productId"].isna(),
        "no Optiply product for SKU " + lines["sku"],
    )
    return _typed_lines(lines[columns])


def _typed_lines(lines: pd.DataFrame) -> pd.DataFrame:
    return lines.astype(
        {
            "remoteId": "string",
            "placed": "string",
            "totalValue": "float64",
            "sku": "string",
            "asin": "string",
            "productId": "Int64",
            "quantity": "Int64",
            "subtotalValue": "float64",
            "order_status": "string",
            "last_updated": "string",
            "disposition": "string",
            "problem": "string",
        }
    ).reset_index(drop=True)


def sell_order_payload(order_lines: pd.DataFrame) -> dict:
    """The JSON:API attributes of one sell order from its lines (all with disposition `deliver`)."""
    first = order_lines.iloc[0]
    return {
        "remoteId": str(first["remoteId"]),
        "placed": str(first["placed"]),
        "totalValue": round(float(first["totalValue"]), 2),
        "orderLines": [
            {
                "productId": int(r.productId),
                "quantity": int(r.quantity),
                "subtotalValue": round(float(r.subtotalValue), 2),
            }
            for r in order_lines.itertuples(index=False)
        ],
    }
