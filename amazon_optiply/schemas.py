"""One pandera model per asset, named after it; each asset's check validates its value with it."""

from __future__ import annotations

import pandera.pandas as pa
from pandera.typing import Series

from amazon_optiply.transforms.optiply import DISPOSITIONS, PRODUCT_ACTIONS


class _Model(pa.DataFrameModel):
    class Config:
        coerce = False
        strict = False  # raw reports may carry extra columns Amazon adds; the ones we use are pinned


class ListingsReport(_Model):
    item_name: Series[str] = pa.Field(alias="item-name", nullable=False)
    seller_sku: Series[str] = pa.Field(alias="seller-sku")
    price: Series[str]
    quantity: Series[str]
    asin1: Series[str]
    fulfillment_channel: Series[str] = pa.Field(alias="fulfillment-channel")
    status: Series[str]


class FbaInventory(_Model):
    seller_sku: Series[str] = pa.Field(str_length={"min_value": 1})
    asin: Series[str] = pa.Field(nullable=True)
    total_quantity: Series[int] = pa.Field(ge=0)
    fulfillable_quantity: Series[int] = pa.Field(ge=0)


class CatalogIdentifiers(_Model):
    asin: Series[str] = pa.Field(unique=True, str_length={"min_value": 10, "max_value": 10})
    ean_codes: Series[str] = pa.Field(str_matches=r"^(\d{13}(,\d{13})*)?$")
    upc_codes: Series[str]
    item_name: Series[str]


class OrderIdentifiers(CatalogIdentifiers):
    pass


class OrdersReport(_Model):
    amazon_order_id: Series[str] = pa.Field(alias="amazon-order-id", str_matches=r"^\d{3}-\d{7}-\d{7}$")
    purchase_date: Series[str] = pa.Field(alias="purchase-date")
    last_updated_date: Series[str] = pa.Field(alias="last-updated-date")
    order_status: Series[str] = pa.Field(alias="order-status")
    sku: Series[str]
    quantity: Series[str]

    @pa.dataframe_check(error="duplicate (amazon-order-id, sku) line after deduplication")
    def one_row_per_line(cls, df):
        return ~df.duplicated(["amazon-order-id", "sku"])


class WarehouseStock(_Model):
    sku: Series[str] = pa.Field(unique=True)
    fba_quantity: Series[int] = pa.Field(ge=0)
    listing_quantity: Series[pa.Int64] = pa.Field(nullable=True, ge=0)
    stock_level: Series[pa.Int64] = pa.Field(nullable=True, ge=0)
    stock_source: Series[str] = pa.Field(isin=["fba", "listing"])
    # Beside the stock (transforms/catalog.py with_inbound_units, with_awd_units).
    inbound_working_quantity: Series[int] | None = pa.Field(ge=0)
    inbound_shipped_quantity: Series[int] | None = pa.Field(ge=0)
    inbound_receiving_quantity: Series[int] | None = pa.Field(ge=0)
    awd_quantity: Series[int] | None = pa.Field(ge=0)


class EnrichedCatalog(_Model):
    sku: Series[str] = pa.Field(nullable=True)
    asin: Series[str] = pa.Field(nullable=True)
    name: Series[str] = pa.Field(nullable=True, str_length={"max_value": 255})
    ean_code: Series[str] = pa.Field(nullable=True, str_matches=r"^\d{13}$")
    price: Series[float] = pa.Field(nullable=True)
    stock_level: Series[pa.Int64] = pa.Field(nullable=True, ge=0)
    marketplace: Series[str]
    problem: Series[str] = pa.Field(nullable=True)


class OptiplyProductPayloads(_Model):
    remoteId: Series[str] = pa.Field(unique=True, str_length={"min_value": 1, "max_value": 255})
    name: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": 255})
    skuCode: Series[str] = pa.Field(str_length={"min_value": 1})
    eanCode: Series[str] = pa.Field(nullable=True, str_matches=r"^\d{13}$")
    price: Series[float] = pa.Field(ge=0, le=9_999_999.99)
    stockLevel: Series[int] = pa.Field(ge=0)
    legacy_remote_id: Series[str] = pa.Field(nullable=True)
    action: Series[str] = pa.Field(isin=list(PRODUCT_ACTIONS))
    optiply_id: Series[pa.Int64] = pa.Field(nullable=True)
    known_from: Series[str] = pa.Field(isin=["state", "optiply", "new"])

    @pa.dataframe_check(error="a product to update, take over, adopt or leave unchanged lacks its Optiply id")
    def known_products_have_ids(cls, df):
        return df["action"].isin(["create", "conflict"]) | df["optiply_id"].notna()


class OptiplyExistingProducts(_Model):
    optiply_id: Series[pa.Int64] = pa.Field(unique=True)
    remoteId: Series[str] = pa.Field(nullable=True)
    name: Series[str] = pa.Field(nullable=True)
    skuCode: Series[str] = pa.Field(nullable=True)
    eanCode: Series[str] = pa.Field(nullable=True)
    price: Series[float] = pa.Field(nullable=True)
    stockLevel: Series[pa.Int64] = pa.Field(nullable=True)


class OptiplyExistingSellOrders(_Model):
    remoteId: Series[str] = pa.Field(unique=True, str_length={"min_value": 1})
    optiply_id: Series[pa.Int64] = pa.Field(unique=True)


class OptiplySellOrderPayloads(_Model):
    remoteId: Series[str] = pa.Field(str_length={"min_value": 1})
    placed: Series[str] = pa.Field(str_matches=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
    totalValue: Series[float] = pa.Field(nullable=True)
    productId: Series[pa.Int64] = pa.Field(nullable=True)
    quantity: Series[pa.Int64] = pa.Field(nullable=True)
    subtotalValue: Series[float] = pa.Field(nullable=True)
    disposition: Series[str] = pa.Field(isin=list(DISPOSITIONS))
    held_since: Series[str] = pa.Field(nullable=True)

    @pa.dataframe_check(error="a line to deliver lacks productId, a positive quantity or a subtotal")
    def deliverable_lines_complete(cls, df):
        deliver = df["disposition"] == "deliver"
        complete = df["productId"].notna() & (df["quantity"].fillna(0) > 0) & df["subtotalValue"].notna()
        return ~deliver | complete
