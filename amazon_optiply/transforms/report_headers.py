"""Amazon's localized flat-file headers in one table: each known header set mapped to the English column names.

The parser recognises a report's header set from its header line and renames to English before anything
reads a column; a header set not in this table is an error naming what it cannot place.
"""

from __future__ import annotations

from dataclasses import dataclass

LISTINGS_ALL = "GET_MERCHANT_LISTINGS_ALL_DATA"
ORDERS_BY_LAST_UPDATE = "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL"
ORDERS_BY_ORDER_DATE = "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_ORDER_DATE_GENERAL"

ENGLISH = "en"

_LISTINGS_ENGLISH = (
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
)
_ORDERS_ENGLISH = (
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
)

# Amazon JP (windows-31j). Columns it leaves in English (image-url, zshop-*, merchant-shipping-group, ...) need no
# entry. From sp-api.md's table and the public JP parsers it cites; the B2B columns follow 法人価格 for sellers
# with Amazon Business, named as the English report names them.
_LISTINGS_JA_JP = {
    "商品名": "item-name",
    "商品の説明": "item-description",
    "出品ID": "listing-id",
    "出品者SKU": "seller-sku",
    "価格": "price",
    "数量": "quantity",
    "出品日": "open-date",
    "商品IDタイプ": "product-id-type",
    "コンディション説明": "item-note",
    "コンディション": "item-condition",
    "ASIN 1": "asin1",
    "ASIN 2": "asin2",
    "ASIN 3": "asin3",
    "国外へ配送可": "will-ship-internationally",
    "迅速な配送": "expedited-shipping",
    "商品ID": "product-id",
    "在庫数": "pending-quantity",
    "フルフィルメント・チャンネル": "fulfillment-channel",
    "ステータス": "status",
    "法人価格": "Business Price",
    "数量割引のタイプ": "Quantity Price Type",
    **{f"数量の下限{n}": f"Quantity Lower Bound {n}" for n in range(1, 6)},
    **{f"数量割引{n}": f"Quantity Price {n}" for n in range(1, 6)},
    "使用しない支払い方法": "optional-payment-type-exclusion",
    "配送日時指定SKUリスト": "scheduled-delivery-sku-set",
    "ポイント": "standard-price-point",
    "商品税コード": "ProductTaxCode",
    "出品価格の下限": "minimum-seller-allowed-price",
    "出品価格の上限": "maximum-seller-allowed-price",
    "累積購入割引価格タイプ": "Progressive Price Type",
    **{f"累積購入割引下限{n}": f"Progressive Lower Bound {n}" for n in range(1, 4)},
    **{f"累積購入割引価格{n}": f"Progressive Price {n}" for n in range(1, 4)},
    "調達タイプ": "Sourcing Type",
}

# German listings headers, as the seed's tap (tap-amazon-seller) translates them.
_LISTINGS_DE_DE = {
    "Artikelbezeichnung": "item-name",
    "Artikelbeschreibung": "item-description",
    "Angebotsnummer": "listing-id",
    "Händler-SKU": "seller-sku",
    "Preis": "price",
    "Menge": "quantity",
    "Artikel ist Marketplace-Angebot": "item-is-marketplace",
    "Produkt-ID-Typ": "product-id-type",
    "Anmerkung zum Artikel": "item-note",
    "Artikelzustand": "item-condition",
    "ASIN 1": "asin1",
    "Internationaler Versand": "will-ship-internationally",
    "Produkt-ID": "product-id",
    "hinzufügen-löschen": "add-delete",
    "Anzahl Bestellungen": "pending-quantity",
    "Versender": "fulfillment-channel",
    "Händlerversandgruppe": "merchant-shipping-group",
    "Status": "status",
    "Mindestbestellmenge": "Minimum order quantity",
    "Restposten verkaufen": "Sell remainder",
}

# Per report type: its English columns and every known localized header set (localized name -> English name).
HEADER_SETS: dict[str, tuple[tuple[str, ...], dict[str, dict[str, str]]]] = {
    LISTINGS_ALL: (_LISTINGS_ENGLISH, {"ja_JP": _LISTINGS_JA_JP, "de_DE": _LISTINGS_DE_DE}),
    ORDERS_BY_LAST_UPDATE: (_ORDERS_ENGLISH, {}),
    ORDERS_BY_ORDER_DATE: (_ORDERS_ENGLISH, {}),
}


@dataclass(frozen=True)
class ReadHeader:
    header_set: str  # ENGLISH or the localized set recognised, e.g. "ja_JP"
    columns: list[str]  # the header in English names, in the document's order
    unplaced: list[str]  # columns neither English nor in the recognised set: kept under their own name


def read_header(report_type: str, header: list[str]) -> ReadHeader:
    """The header set a report's header line is written in (most localized names matched), renamed to English."""
    english, localized = HEADER_SETS.get(report_type, ((), {}))
    known_english = set(english).union(*(names.values() for names in localized.values()))

    def localized_hits(names: dict[str, str]) -> int:
        return sum(column in names and column not in known_english for column in header)

    header_set, names = ENGLISH, {}
    best = max(localized.items(), key=lambda item: localized_hits(item[1]), default=None)
    if best is not None and localized_hits(best[1]):
        header_set, names = best
    return ReadHeader(
        header_set,
        [names.get(column, column) for column in header],
        [column for column in header if column not in names and column not in known_english],
    )
