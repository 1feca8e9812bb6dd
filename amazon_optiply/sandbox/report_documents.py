"""Report documents as Amazon writes them: tab-separated, exact headers, the marketplace's charset, gzip.

Amazon's flat files are not CSV: no quoting at all, so a name with a double quote is written as is.
Amazon JP's listings report has Japanese column names and whole-yen prices.
"""

from __future__ import annotations

import gzip
from datetime import datetime

from amazon_optiply.marketplaces import MARKETPLACES, python_codec
from amazon_optiply.sandbox.seller import CANCELLED, PENDING, Order, SellerWorld, money_decimals

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

# Amazon JP writes the listings report with Japanese column names (the ones it translates; the rest stay English)
# and, for sellers with Amazon Business, the B2B columns after the fulfillment channel.
JP_LISTINGS_COLUMNS = [
    "商品名",
    "商品の説明",
    "出品ID",
    "出品者SKU",
    "価格",
    "数量",
    "出品日",
    "image-url",
    "item-is-marketplace",
    "商品IDタイプ",
    "zshop-shipping-fee",
    "コンディション説明",
    "コンディション",
    "zshop-category1",
    "zshop-browse-path",
    "zshop-storefront-feature",
    "ASIN 1",
    "ASIN 2",
    "ASIN 3",
    "国外へ配送可",
    "迅速な配送",
    "zshop-boldface",
    "商品ID",
    "bid-for-featured-placement",
    "add-delete",
    "在庫数",
    "フルフィルメント・チャンネル",
    "法人価格",
    "数量割引のタイプ",
    "数量の下限1",
    "数量割引1",
    "数量の下限2",
    "数量割引2",
    "数量の下限3",
    "数量割引3",
    "数量の下限4",
    "数量割引4",
    "数量の下限5",
    "数量割引5",
    "merchant-shipping-group",
    "ステータス",
]
JP_B2B_AFTER = LISTINGS_COLUMNS.index("fulfillment-channel") + 1

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


def _price(x: float, currency: str) -> str:
    """An amount as Amazon writes it: two decimals, whole yen without any."""
    return f"{x:.{money_decimals(currency)}f}"


def render_listings(world: SellerWorld, mp: str) -> str:
    listings = world.listings[mp]
    currency = MARKETPLACES[mp].currency
    rows = []
    for i, r in enumerate(listings.itertuples(index=False)):
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
                _price(r.price, currency),
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
        if mp == "JP":
            # One listing in ten offers a business price; no quantity discounts.
            business_price = _price(round(r.price * 0.95), currency) if i % 10 == 0 else ""
            rows[-1][JP_B2B_AFTER:JP_B2B_AFTER] = [business_price, *[""] * 11]
    return _tsv(JP_LISTINGS_COLUMNS if mp == "JP" else LISTINGS_COLUMNS, rows)


def render_fba_myi(world: SellerWorld, mp: str) -> str:
    currency = MARKETPLACES[mp].currency
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
                _price(r.price, currency),
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
                    _price(ln["item_price"], market.currency) if priced else "",
                    _price(ln["item_tax"], market.currency) if priced else "",
                    _price(ln["shipping_price"], market.currency) if priced else "",
                    _price(ln["shipping_tax"], market.currency) if priced else "",
                    _price(ln["gift_wrap_price"], market.currency)
                    if priced and ln["gift_wrap_price"]
                    else "",
                    _price(ln["gift_wrap_tax"], market.currency) if priced and ln["gift_wrap_price"] else "",
                    # Amazon reports discounts as negative amounts.
                    _price(-ln["item_promotion_discount"], market.currency)
                    if priced and ln["item_promotion_discount"]
                    else "",
                    _price(-ln["ship_promotion_discount"], market.currency)
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
