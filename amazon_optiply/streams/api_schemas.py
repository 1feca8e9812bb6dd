"""One pandera model per API stream asset, named after it; each asset's `schema` check validates its value."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

DECIMAL = r"^-?\d+(\.\d+)?$"
ORDER_ID = r"^\d{3}-\d{7}-\d{7}$"


class _Model(pa.DataFrameModel):
    class Config:
        coerce = False
        strict = False  # Amazon adds fields; the ones used are pinned


class OrderItems(_Model):
    amazon_order_id: Series[str] = pa.Field(str_matches=ORDER_ID)
    order_item_id: Series[str] = pa.Field(unique=True, str_length={"min_value": 1})
    asin: Series[str]
    seller_sku: Series[str] = pa.Field(nullable=True)
    quantity_ordered: Series[pa.Int64] = pa.Field(ge=0)
    quantity_shipped: Series[pa.Int64] = pa.Field(nullable=True, ge=0)
    currency: Series[str] = pa.Field(nullable=True, str_matches=r"^[A-Z]{3}$")
    item_price: Series[str] = pa.Field(nullable=True, str_matches=DECIMAL)
    item_tax: Series[str] = pa.Field(nullable=True, str_matches=DECIMAL)
    shipping_price: Series[str] = pa.Field(nullable=True, str_matches=DECIMAL)
    shipping_tax: Series[str] = pa.Field(nullable=True, str_matches=DECIMAL)
    promotion_discount: Series[str] = pa.Field(nullable=True, str_matches=DECIMAL)
    shipping_discount: Series[str] = pa.Field(nullable=True, str_matches=DECIMAL)

    @pa.dataframe_check(error="a priced item lacks its currency")
    def priced_items_have_a_currency(cls, df):
        return df["item_price"].isna() | df["currency"].notna()


class OrderFinancialEvents(_Model):
    row_key: Series[str] = pa.Field(unique=True)
    event_type: Series[str] = pa.Field(str_length={"min_value": 1})
    amazon_order_id: Series[str] = pa.Field(nullable=True)
    posted_date: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    seller_sku: Series[str] = pa.Field(nullable=True)
    component: Series[str]
    amount_field: Series[str]
    amount_type: Series[str]
    amount: Series[str] = pa.Field(str_matches=DECIMAL)
    currency: Series[str] = pa.Field(str_matches=r"^[A-Z]{3}$")


class AwdInventory(_Model):
    sku: Series[str] = pa.Field(unique=True, str_length={"min_value": 1})
    total_onhand_quantity: Series[pa.Int64] = pa.Field(nullable=True, ge=0)
    total_inbound_quantity: Series[pa.Int64] = pa.Field(nullable=True, ge=0)
    available_distributable_quantity: Series[pa.Int64] = pa.Field(nullable=True, ge=0)
    reserved_distributable_quantity: Series[pa.Int64] = pa.Field(nullable=True, ge=0)
    replenishment_quantity: Series[pa.Int64] = pa.Field(nullable=True, ge=0)


class FbaInboundShipments(_Model):
    shipment_id: Series[str] = pa.Field(str_length={"min_value": 1})
    shipment_status: Series[str]
    seller_sku: Series[str] = pa.Field(str_length={"min_value": 1})
    quantity_shipped: Series[pa.Int64] = pa.Field(ge=0)
    quantity_received: Series[pa.Int64] = pa.Field(nullable=True, ge=0)
    quantity_in_case: Series[pa.Int64] = pa.Field(nullable=True, ge=0)

    @pa.dataframe_check(error="a shipment lists one SKU twice")
    def one_row_per_shipment_item(cls, df):
        return ~df.duplicated(["shipment_id", "seller_sku"])


class SellerAccount(_Model):
    business_type: Series[str]
    selling_plan: Series[str] = pa.Field(isin=["PROFESSIONAL", "INDIVIDUAL"])
    business_name: Series[str] = pa.Field(nullable=True)
    participating_marketplaces: Series[str]

    @pa.dataframe_check(error="the account is one row")
    def one_account(cls, df):
        return len(df) == 1


class MarketplaceParticipations(_Model):
    marketplace_id: Series[str] = pa.Field(unique=True)
    country_code: Series[str] = pa.Field(str_matches=r"^[A-Z]{2}$")
    is_participating: Series[pd.BooleanDtype] = pa.Field(nullable=True)
