"""Report documents as Amazon writes them: tab-separated, exact headers, the marketplace's charset, gzip.

Amazon's flat files are not CSV: no quoting at all, so a name with a double quote is written as is.
"""

from __future__ import annotations

import gzip
from datetime import datetime

from amazon_optiply.marketplaces import MARKETPLACES, python_codec
from amazon_optiply.sandbox.seller import CANCELLED, PENDING, Order, SellerWorld

LISTINGS_ALL = "GET_MERCHANT_LISTINGS_ALL_DATA"
ORDERS_BY_LAST_UPDATE = "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL"
ORDERS_BY_ORDER_DATE = "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_ORDER_DATE_GENERAL"
FBA_MYI_UNSUPPRESSED = "GET_FBA_MYI_UNSUPPRESSED_INVENTORY_DATA"
SUPPORTED_REPORT_TYPES = (LISTINGS_ALL, ORDERS_BY_LAST_UPDATE, ORDERS_BY_ORDER_DATE, FBA_MYI_UNSUPPRESSED)

LISTINGS_COLUMNS = [
    "item-name",
    "item-description",
    "listing-id",
    "seller-sku",
    "price",
    "quantity",
    "open-date",
    "image-url",
    "item-is-marketplace",
    "product-id-type",
    "zshop-shipping-fee",
    "item-note",
    "item-condition",
    "zshop-category1",
    "zshop-browse-path",
    "zshop-storefront-feature",
    "asin1",
    "asin2",
    "asin3",
    "will-ship-internationally",
    "expedited-shipping",
    "zshop-boldface",
    "product-id",
    "bid-for-featured-placement",
    "add-delete",
    "pending-quantity",
    "fulfillment-channel",
    "merchant-shipping-group",
    "status",
]

FBA_MYI_COLUMNS = [
    "sku",
    "fnsku",
    "asin",
    "product-name",
    "condition",
    "your-price",
    "mfn-listing-exists",
    "mfn-fulfillable-quantity",
    "afn-listing-exists",
    "afn-warehouse-quantity",
    "afn-fulfillable-quantity",
    "afn-unsellable-quantity",
    "afn-reserved-quantity",
    "afn-total-quantity",
    "per-unit-volume",
    "afn-inbound-working-quantity",
    "afn-inbound-shipped-quantity",
    "afn-inbound-receiving-quantity",
    "afn-researching-quantity",
    "afn-reserved-future-supply",
    "afn-future-supply-buyable",
]

ORDERS_COLUMNS = [
    "amazon-order-id",
    "merchant-order-id",
    "purchase-date",
    "last-updated-date",
    "order-status",
    "fulfillment-channel",
    "sales-channel",
    "order-channel",
    "url",
    "ship-service-level",
    "product-name",
    "sku",
    "asin",
    "item-status",
    "quantity",
    "currency",
    "item-price",
    "item-tax",
    "shipping-price",
    "shipping-tax",
    "gift-wrap-price",
    "gift-wrap-tax",
    "item-promotion-discount",
    "ship-promotion-discount",
    "ship-city",
    "ship-state",
    "ship-postal-code",
    "ship-country",
    "promotion-ids",
    "is-business-order",
    "purchase-order-number",
    "price-designation",
]


def _tsv(columns: list[str], rows: list[list[str]]) -> str:
    lines = ["\t".join(columns)]
    lines.extend("\t".join(row) for row in rows)
    return "\r\n".join(lines) + "\r\n"


def encode_document(text: str, charset: str) -> bytes:
    """Encode as Amazon does (characters outside the charset become '?') and gzip."""
    return gzip.compress(text.encode(python_codec(charset), errors="replace"), compresslevel=5)


def render_listings(world: SellerWorld, mp: str) -> str:
    listings = world.listings[mp]
    rows = []
    for r in listings.itertuples(index=False):
        if r.eans:
            product_id, product_id_type = r.eans[0], "4"
        elif r.upc:
            product_id, product_id_type = r.upc, "3"
        else:
            product_id, product_id_type = r.asin, "1"
        rows.append(
            [
                r.name,
                "",
                r.listing_id,
                r.sku,
                f"{r.price:.2f}",
                "" if r.quantity < 0 else str(int(r.quantity)),
                r.open_date,
                "",
                "y",
                product_id_type,
                "",
                "",
                "11",
                "",
                "",
                "",
                r.asin,
                "",
                "",
                "",
                "",
                "",
                product_id,
                "",
                "",
                "0",
                r.fulfillment_channel,
                "Migrated Template",
                r.status,
            ]
        )
    return _tsv(LISTINGS_COLUMNS, rows)


def render_fba_myi(world: SellerWorld, mp: str) -> str:
    rows = []
    for r in world.fba[mp].itertuples(index=False):
        inbound = r.inbound_working + r.inbound_shipped + r.inbound_receiving
        warehouse = r.fulfillable + r.unfulfillable + r.reserved + r.researching
        rows.append(
            [
                r.sku,
                r.fnsku,
                r.asin,
                r.name,
                "New" if r.condition == "NewItem" else "Used",
                f"{r.price:.2f}",
                "No",
                "",
                "Yes",
                str(warehouse),
                str(r.fulfillable),
                str(r.unfulfillable),
                str(r.reserved),
                str(warehouse + inbound),
                "0.12",
                str(r.inbound_working),
                str(r.inbound_shipped),
                str(r.inbound_receiving),
                str(r.researching),
                "0",
                "0",
            ]
        )
    return _tsv(FBA_MYI_COLUMNS, rows)


def _amazon_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _money(x: float) -> str:
    return f"{x:.2f}"


def render_orders(orders: list[Order], as_of: datetime) -> str:
    rows = []
    for order in orders:
        status = order.status_at(as_of)
        market = MARKETPLACES[order.marketplace]
        priced = status not in (PENDING, CANCELLED)  # Amazon leaves amounts blank until an order is confirmed
        last_update = order.last_update_at(as_of)
        for ln in order.lines:
            item_status = {PENDING: "Unshipped", CANCELLED: "Cancelled"}.get(status, status)
            rows.append(
                [
                    order.order_id,
                    "",
                    _amazon_time(order.purchase_date),
                    _amazon_time(last_update),
                    status,
                    order.fulfillment_channel,
                    market.name,
                    "",
                    "",
                    "Standard",
                    ln["name"],
                    ln["sku"],
                    ln["asin"],
                    item_status,
                    "0" if status == CANCELLED else str(ln["quantity"]),
                    market.currency,
                    _money(ln["item_price"]) if priced else "",
                    _money(ln["item_tax"]) if priced else "",
                    _money(ln["shipping_price"]) if priced else "",
                    _money(ln["shipping_tax"]) if priced else "",
                    _money(ln["gift_wrap_price"]) if priced and ln["gift_wrap_price"] else "",
                    _money(ln["gift_wrap_tax"]) if priced and ln["gift_wrap_price"] else "",
                    # Amazon reports discounts as negative amounts.
                    _money(-ln["item_promotion_discount"])
                    if priced and ln["item_promotion_discount"]
                    else "",
                    _money(-ln["ship_promotion_discount"])
                    if priced and ln["ship_promotion_discount"]
                    else "",
                    "Berlin" if market.region == "EU" else "Seattle",
                    "",
                    "10115" if market.region == "EU" else "98101",
                    market.country_code,
                    ln["promotion_ids"],
                    "false",
                    "",
                    "",
                ]
            )
    return _tsv(ORDERS_COLUMNS, rows)


def render_report(
    world: SellerWorld, report_type: str, mp: str, start: datetime, end: datetime, as_of: datetime
) -> tuple[str, int]:
    """The report's text and its row count (0 means the window holds no data: CANCELLED)."""
    if report_type == LISTINGS_ALL:
        return render_listings(world, mp), len(world.listings[mp])
    if report_type == FBA_MYI_UNSUPPRESSED:
        return render_fba_myi(world, mp), len(world.fba[mp])
    if report_type == ORDERS_BY_LAST_UPDATE:
        orders = world.orders_updated_between(mp, start, end)
    elif report_type == ORDERS_BY_ORDER_DATE:
        orders = world.orders_placed_between(mp, start, end)
    else:
        raise ValueError(report_type)
    return render_orders(orders, min(end, as_of)), len(orders)
