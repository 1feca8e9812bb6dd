"""The pandera models of the report-based stream assets, one per asset and named after it."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series


def _all(values: pd.Series, kind: type, nullable: bool = False) -> pd.Series:
    return values.map(lambda v: isinstance(v, kind) or (nullable and (v is None or v is pd.NA)))


class _StreamModel(pa.DataFrameModel):
    class Config:
        coerce = False
        strict = False  # Amazon adds columns; the ones the asset keeps are pinned here


class AfnInventoryByCountry(_StreamModel):
    seller_sku: Series[str] = pa.Field(str_length={"min_value": 1})
    fulfillment_channel_sku: Series[str]
    asin: Series[str]
    condition_type: Series[str]
    # As Amazon writes it: two letters, UK for the United Kingdom.
    country: Series[str] = pa.Field(str_matches=r"^[A-Z]{2}$")
    quantity_for_local_fulfillment: Series[int] = pa.Field(ge=0)

    @pa.dataframe_check(error="one row per SKU, FNSKU, condition and country")
    def one_row_per_sku_and_country(cls, df):
        return ~df.duplicated(["seller_sku", "fulfillment_channel_sku", "condition_type", "country"])


class SalesAndTraffic(_StreamModel):
    date: Series[object]
    parent_asin: Series[str]
    child_asin: Series[str] = pa.Field(nullable=True)
    sku: Series[str] = pa.Field(str_length={"min_value": 1})
    units_ordered: Series[pa.Int64] = pa.Field(ge=0)
    units_ordered_b2b: Series[pa.Int64] = pa.Field(nullable=True, ge=0)
    ordered_product_sales: Series[object]
    ordered_product_sales_b2b: Series[object] = pa.Field(nullable=True)
    currency: Series[str] = pa.Field(str_matches=r"^[A-Z]{3}$")
    total_order_items: Series[pa.Int64] = pa.Field(ge=0)
    sessions: Series[pa.Int64] = pa.Field(nullable=True, ge=0)
    page_views: Series[pa.Int64] = pa.Field(nullable=True, ge=0)
    buy_box_percentage: Series[pa.Float64] = pa.Field(nullable=True, ge=0, le=100)
    report_id: Series[str]

    @pa.check("date", error="not a calendar date")
    def is_a_date(cls, values):
        return _all(values, date)

    @pa.check("ordered_product_sales", error="not a Decimal amount")
    def sales_are_decimal(cls, values):
        return _all(values, Decimal)

    @pa.check("ordered_product_sales_b2b", error="not a Decimal amount")
    def b2b_sales_are_decimal(cls, values):
        return _all(values, Decimal, nullable=True)

    @pa.dataframe_check(error="one row per day and SKU")
    def one_row_per_day_and_sku(cls, df):
        return ~df.duplicated(["date", "sku"])


class FbaInventoryLedger(_StreamModel):
    date: Series[object]
    fnsku: Series[str]
    asin: Series[str]
    msku: Series[str]
    disposition: Series[str]
    starting_warehouse_balance: Series[int]
    receipts: Series[int]
    customer_shipments: Series[int] = pa.Field(le=0)
    ending_warehouse_balance: Series[int]
    location: Series[str]

    @pa.check("date", error="not a calendar date")
    def is_a_date(cls, values):
        return _all(values, date)

    @pa.dataframe_check(error="one row per day, FNSKU, disposition and location")
    def one_row_per_day_and_location(cls, df):
        return ~df.duplicated(["date", "fnsku", "msku", "disposition", "location"])


class FbaInventoryLedgerDetail(_StreamModel):
    date: Series[object]
    fnsku: Series[str]
    msku: Series[str]
    event_type: Series[str] = pa.Field(str_length={"min_value": 1})
    reference_id: Series[str]
    quantity: Series[int]  # signed: shipments and losses are negative
    fulfillment_center: Series[str]
    country: Series[str]
    date_and_time: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "us", "tz": "UTC"})

    @pa.check("date", error="not a calendar date")
    def is_a_date(cls, values):
        return _all(values, date)


class FbaCustomerShipmentSales(_StreamModel):
    shipment_date: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "us", "tz": "UTC"})
    sku: Series[str] = pa.Field(str_length={"min_value": 1})
    fnsku: Series[str]
    asin: Series[str]
    fulfillment_center_id: Series[str]
    quantity: Series[int] = pa.Field(gt=0)
    amazon_order_id: Series[str] = pa.Field(str_matches=r"^\d{3}-\d{7}-\d{7}$")
    currency: Series[str] = pa.Field(str_matches=r"^[A-Z]{3}$")
    item_price_per_unit: Series[object]
    shipping_price: Series[object]
    gift_wrap_price: Series[object]

    @pa.check("item_price_per_unit", "shipping_price", "gift_wrap_price", error="not a Decimal amount")
    def amounts_are_decimal(cls, values):
        return _all(values, Decimal)

    @pa.dataframe_check(error="the buyer's location is personal data and must not be stored")
    def no_buyer_location(cls, df):
        return not {
            "ship-city",
            "ship-state",
            "ship-postal-code",
            "ship_city",
            "ship_state",
            "ship_postal_code",
        } & set(df.columns)

    @pa.dataframe_check(error="one row per order, SKU, shipment time and fulfilment center")
    def one_row_per_shipment_line(cls, df):
        return ~df.duplicated(["amazon_order_id", "sku", "shipment_date", "fulfillment_center_id"])
