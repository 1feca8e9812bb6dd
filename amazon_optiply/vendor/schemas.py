"""One pandera model per vendor asset; each asset's schema check validates its value with it."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

OPTIPLY_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"


class _Model(pa.DataFrameModel):
    class Config:
        coerce = False
        strict = False


class VendorPurchaseOrders(_Model):
    purchase_order_number: Series[str] = pa.Field(str_matches=r"^[A-Za-z0-9]{8}$")
    purchase_order_state: Series[str] = pa.Field(isin=["New", "Acknowledged", "Closed"])
    vendor_code: Series[str]
    purchase_order_date: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    item_sequence_number: Series[str]
    asin: Series[str] = pa.Field(nullable=True)
    ordered_eaches: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=0)
    net_cost: Series[str] = pa.Field(nullable=True, str_matches=r"^-?\d+(\.\d+)?$")
    problem: Series[str] = pa.Field(nullable=True)

    @pa.dataframe_check
    def one_row_per_item(cls, df: pd.DataFrame) -> bool:
        return not df.duplicated(["purchase_order_number", "item_sequence_number"]).any()


class VendorPurchaseOrderStatus(_Model):
    purchase_order_number: Series[str]
    purchase_order_status: Series[str] = pa.Field(isin=["OPEN", "CLOSED"])
    item_sequence_number: Series[str]
    accepted_eaches: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=0)
    received_eaches: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=0)


class VendorInventoryReport(_Model):
    asin: Series[str] = pa.Field(str_length={"min_value": 10, "max_value": 10})
    day: Series[str] = pa.Field(str_matches=r"^\d{4}-\d{2}-\d{2}$")
    sellable_on_hand_units: Series[int]  # negative: backorders, as Amazon counts them
    average_vendor_lead_time_days: Series[float] = pa.Field(nullable=True, ge=0)


class VendorSalesReport(_Model):
    asin: Series[str] = pa.Field(str_length={"min_value": 10, "max_value": 10})
    day: Series[str] = pa.Field(str_matches=r"^\d{4}-\d{2}-\d{2}$")
    ordered_units: Series[int] = pa.Field(ge=0)
    shipped_units: Series[int] = pa.Field(ge=0)


class VendorSupplierPayloads(_Model):
    remoteId: Series[str] = pa.Field(unique=True, str_length={"min_value": 1})
    name: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": 255})


class VendorProductPayloads(_Model):
    remoteId: Series[str] = pa.Field(unique=True, str_length={"min_value": 1})
    name: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": 255})
    eanCode: Series[str] = pa.Field(nullable=True, str_matches=r"^\d{13}$")
    stockLevel: Series[int] = pa.Field(ge=0)


class VendorSupplierProductPayloads(_Model):
    remoteId: Series[str] = pa.Field(unique=True)
    supplier_remote_id: Series[str]
    product_remote_id: Series[str]
    price: Series[pd.Float64Dtype] = pa.Field(nullable=True, ge=0)
    deliveryTime: Series[pd.Int64Dtype] = pa.Field(nullable=True, ge=1, le=365)


class VendorBuyOrderPayloads(_Model):
    remoteId: Series[str]
    line_remote_id: Series[str] = pa.Field(unique=True)
    placed: Series[str] = pa.Field(str_matches=OPTIPLY_TIME)
    quantity: Series[int] = pa.Field(ge=0)
    subtotalValue: Series[pd.Float64Dtype] = pa.Field(nullable=True, ge=0)
    received_eaches: Series[int] = pa.Field(ge=0)
    disposition: Series[str] = pa.Field(isin=["deliver", "waiting", "held", "nothing_accepted"])

    @pa.dataframe_check
    def delivered_lines_are_priced(cls, df: pd.DataFrame) -> pd.Series:
        return (df["disposition"] != "deliver") | df["subtotalValue"].notna()


class VendorReceiptLinePayloads(_Model):
    remoteId: Series[str] = pa.Field(unique=True)
    line_remote_id: Series[str]
    quantity: Series[int] = pa.Field(ge=1)
    received_total: Series[int] = pa.Field(ge=1)
    occurred: Series[str] = pa.Field(str_matches=OPTIPLY_TIME)


class VendorSellOrderPayloads(_Model):
    remoteId: Series[str]
    placed: Series[str] = pa.Field(str_matches=OPTIPLY_TIME)
    quantity: Series[int] = pa.Field(ge=0)
    subtotalValue: Series[pd.Float64Dtype] = pa.Field(nullable=True, ge=0)
    disposition: Series[str] = pa.Field(
        isin=["deliver", "waiting", "held", "before_start", "nothing_ordered"]
    )

    @pa.dataframe_check
    def delivered_lines_point_at_a_product(cls, df: pd.DataFrame) -> pd.Series:
        return (df["disposition"] != "deliver") | (df["productId"].notna() & (df["quantity"] > 0))
