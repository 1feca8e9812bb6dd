"""From the API streams' answers to frames: order items, financial events, AWD inventory, inbound shipments,
the account and its marketplaces.

Pure pandas: answers in, DataFrames out, no I/O. Money stays exact: Orders money arrives as a string
(`{CurrencyCode, Amount: "10.00"}`) and is kept as that decimal string; Finances money arrives as a JSON
number that api_client parses as Decimal, kept as its decimal string. Never a float.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

import pandas as pd

from amazon_optiply.marketplaces import MARKETPLACES

DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")


def decimal_text(value: object, what: str) -> str | None:
    """An amount as an exact decimal string ("10.00", "-3.15"); None when absent. Refuses anything else."""
    if value is None or value == "":
        return None
    if isinstance(value, float):
        raise ValueError(f"{what}: {value!r} arrived as a float; amounts must stay exact")
    try:
        text = format(Decimal(str(value)), "f")
    except InvalidOperation:
        raise ValueError(f"{what}: {value!r} is not a decimal amount") from None
    if not DECIMAL.match(text):
        raise ValueError(f"{what}: {value!r} is not a decimal amount")
    return text


def _int(value: object) -> int | None:
    if value is None or value == "":
        return None
    return int(value)


def _flag(value: object) -> bool | None:
    """Amazon's booleans, real or written as "true"/"false" (IsGift, IsBuyerRequestedCancel)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"


# ---- order items ------------------------------------------------------------------------------------------------

ORDER_ITEM_MONEY = {
    "item_price": "ItemPrice",
    "item_tax": "ItemTax",
    "shipping_price": "ShippingPrice",
    "shipping_tax": "ShippingTax",
    "shipping_discount": "ShippingDiscount",
    "shipping_discount_tax": "ShippingDiscountTax",
    "promotion_discount": "PromotionDiscount",
    "promotion_discount_tax": "PromotionDiscountTax",
    "cod_fee": "CODFee",
    "cod_fee_discount": "CODFeeDiscount",
}
ORDER_ITEM_COLUMNS = {
    "amazon_order_id": "string",
    "order_item_id": "string",
    "marketplace": "string",
    "order_status": "string",  # as the orders report had it when the order was itemised
    "asin": "string",
    "seller_sku": "string",
    "title": "string",
    "quantity_ordered": "Int64",
    "quantity_shipped": "Int64",
    "number_of_items": "Int64",
    "currency": "string",
    **dict.fromkeys(ORDER_ITEM_MONEY, "string"),  # exact decimal strings; empty until the order is priced
    "points_granted": "Int64",
    "points_value": "string",
    "promotion_ids": "string",
    "is_gift": "boolean",
    "condition_id": "string",
    "condition_subtype_id": "string",
    "condition_note": "string",
    "price_designation": "string",
    "tax_collection_model": "string",
    "tax_collection_responsible_party": "string",
    "is_transparency": "boolean",
    "serial_number_required": "boolean",
    "ioss_number": "string",
    "deemed_reseller_category": "string",
    "store_chain_store_id": "string",
    "buyer_requested_cancel": "boolean",
    "buyer_cancel_reason": "string",
    "scheduled_delivery_start_date": "string",
    "scheduled_delivery_end_date": "string",
}


def order_item_row(order_id: str, marketplace: str, order_status: str, item: dict) -> dict:
    """One getOrderItems item as a row.

    BuyerInfo (and any buyer name, e-mail or address) is left out on purpose: it is personal data Optiply
    never needs, and this platform does not ask Amazon for the restricted token that would bring it.
    Only the fields named here are kept, so a personal field Amazon adds later never lands either.
    """
    where = f"order {order_id} item {item.get('OrderItemId')}"
    currencies = {
        m["CurrencyCode"] for k in ORDER_ITEM_MONEY.values() if (m := item.get(k)) and m.get("CurrencyCode")
    }
    if len(currencies) > 1:
        raise ValueError(f"{where}: amounts in several currencies {sorted(currencies)}")
    points = item.get("PointsGranted") or {}
    tax = item.get("TaxCollection") or {}
    cancel = item.get("BuyerRequestedCancel") or {}
    row = {
        "amazon_order_id": order_id,
        "order_item_id": item.get("OrderItemId"),
        "marketplace": marketplace,
        "order_status": order_status,
        "asin": item.get("ASIN"),
        "seller_sku": item.get("SellerSKU"),
        "title": item.get("Title"),
        "quantity_ordered": _int(item.get("QuantityOrdered")),
        "quantity_shipped": _int(item.get("QuantityShipped")),
        "number_of_items": _int((item.get("ProductInfo") or {}).get("NumberOfItems")),
        "currency": next(iter(currencies), None),
        **{
            column: decimal_text((item.get(key) or {}).get("Amount"), f"{where} {key}")
            for column, key in ORDER_ITEM_MONEY.items()
        },
        "points_granted": _int(points.get("PointsNumber")),
        "points_value": decimal_text(
            (points.get("PointsMonetaryValue") or {}).get("Amount"), f"{where} points"
        ),
        "promotion_ids": ",".join(item.get("PromotionIds") or []) or None,
        "is_gift": _flag(item.get("IsGift")),
        "condition_id": item.get("ConditionId"),
        "condition_subtype_id": item.get("ConditionSubtypeId"),
        "condition_note": item.get("ConditionNote"),
        "price_designation": item.get("PriceDesignation"),
        "tax_collection_model": tax.get("Model"),
        "tax_collection_responsible_party": tax.get("ResponsibleParty"),
        "is_transparency": _flag(item.get("IsTransparency")),
        "serial_number_required": _flag(item.get("SerialNumberRequired")),
        "ioss_number": item.get("IossNumber") or None,
        "deemed_reseller_category": item.get("DeemedResellerCategory"),
        "store_chain_store_id": item.get("StoreChainStoreId"),
        "buyer_requested_cancel": _flag(cancel.get("IsBuyerRequestedCancel")),
        "buyer_cancel_reason": cancel.get("BuyerCancelReason") or None,
        "scheduled_delivery_start_date": item.get("ScheduledDeliveryStartDate"),
        "scheduled_delivery_end_date": item.get("ScheduledDeliveryEndDate"),
    }
    return row


def order_items_frame(rows: Iterable[dict]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(ORDER_ITEM_COLUMNS)).astype(ORDER_ITEM_COLUMNS)


# ---- financial events ---------------------------------------------------------------------------------------------

FINANCE_COLUMNS = {
    "row_key": "string",
    "event_type": "string",  # the event list without "EventList": Shipment, Refund, ServiceFee, Adjustment, ...
    "marketplace": "string",  # from MarketplaceName; empty for account-level events
    "marketplace_name": "string",
    "amazon_order_id": "string",
    "seller_order_id": "string",
    "posted_date": "datetime64[ns, UTC]",
    "seller_sku": "string",
    "order_item_id": "string",
    "order_adjustment_item_id": "string",
    "component": "string",  # the list holding the amount (ItemChargeList, ItemFeeList, ...) or "<type>Event"
    "amount_field": "string",  # ChargeAmount, FeeAmount, PromotionAmount, TotalAmount, PerUnitAmount, ...
    "amount_type": "string",  # ChargeType, FeeType, PromotionType, AdjustmentType, ... of the amount
    "amount": "string",  # exact decimal string
    "currency": "string",
}
# Fields that say whose an amount is; a dict's own value wins over its parents'.
_CONTEXT = {
    "AmazonOrderId": "amazon_order_id",
    "SellerOrderId": "seller_order_id",
    "MarketplaceName": "marketplace_name",
    "PostedDate": "posted_date",
    "SellerSKU": "seller_sku",
    "OrderItemId": "order_item_id",
    "OrderAdjustmentItemId": "order_adjustment_item_id",
}
_TYPE_FIELDS = ("ChargeType", "FeeType", "PromotionType", "AdjustmentType")
_MARKETPLACE_BY_NAME = {m.name: m.country_code for m in MARKETPLACES.values()}


def _is_money(value: object) -> bool:
    return isinstance(value, dict) and "CurrencyAmount" in value


def _type_of(node: dict) -> str | None:
    for name in _TYPE_FIELDS:
        if isinstance(node.get(name), str):
            return node[name]
    for name, value in node.items():
        if name.endswith("Type") and isinstance(value, str):
            return value
    return None


def _flatten(node: dict, context: dict, component: str, path: str, rows: list[dict]) -> None:
    context = {**context, **{column: node[key] for key, column in _CONTEXT.items() if key in node}}
    if (kind := _type_of(node)) is not None:
        context["amount_type"] = kind
    for key, value in node.items():
        if _is_money(value):
            rows.append(
                {
                    **context,
                    "path": f"{path}.{key}",
                    "component": component,
                    "amount_field": key,
                    "amount_type": context.get("amount_type") or key,
                    "amount": decimal_text(value.get("CurrencyAmount"), f"{path}.{key}"),
                    "currency": value.get("CurrencyCode"),
                }
            )
        elif isinstance(value, list):
            for i, element in enumerate(value):
                if isinstance(element, dict):
                    _flatten(element, context, key, f"{path}.{key}[{i}]", rows)
        elif isinstance(value, dict):
            _flatten(value, context, key, f"{path}.{key}", rows)


def financial_event_rows(events: dict, page: int = 0) -> list[dict]:
    """One page's FinancialEvents, every event list flattened to one row per amount (charge, fee, ...).

    An amount keeps the order id, SKU, order item and posting date of the event and item it sits in, the
    list it came from (`component`), its field (`amount_field`) and its charge, fee, promotion or adjustment
    type. Event-level amounts (an adjustment's total) and their items' amounts (its lines) are both rows,
    told apart by `component` and `amount_field`. `page` numbers the pages of one read, so events keep
    apart across pages.
    """
    rows: list[dict] = []
    for list_name, entries in sorted(events.items()):
        if not isinstance(entries, list):
            continue
        event_type = list_name.removesuffix("EventList")
        for i, event in enumerate(entries):
            found: list[dict] = []
            _flatten(event, {"event_type": event_type}, f"{event_type}Event", "", found)
            rows += [{**row, "event_ref": f"{page}/{list_name}[{i}]"} for row in found]
    return rows


def financial_events_frame(rows: list[dict]) -> pd.DataFrame:
    """The rows of a read as a frame with a stable `row_key` per amount.

    The key is the event's type, order and posting time, its place among events identical in those (a
    second refund of an order posted the same second), and the amount's path inside the event.
    """
    frame = pd.DataFrame(rows, columns=[*FINANCE_COLUMNS, "event_ref", "path"])
    if frame.empty:
        return frame[list(FINANCE_COLUMNS)].astype(FINANCE_COLUMNS)
    frame["posted_date"] = pd.to_datetime(frame["posted_date"], utc=True)
    frame["marketplace"] = frame["marketplace_name"].map(_MARKETPLACE_BY_NAME)
    identity = (
        frame["event_type"]
        + "|"
        + frame["amazon_order_id"].fillna("")
        + "|"
        + frame["posted_date"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    # Events sharing an identity are numbered in the order Amazon listed them.
    events = pd.DataFrame({"identity": identity, "event_ref": frame["event_ref"]})
    firsts = events.drop_duplicates().copy()
    firsts["n"] = firsts.groupby("identity").cumcount()
    n = events.merge(firsts, on=["identity", "event_ref"], how="left")["n"].to_numpy()
    frame["row_key"] = identity + "|" + pd.Series(n, index=frame.index).astype(str) + "|" + frame["path"]
    return frame[list(FINANCE_COLUMNS)].astype(FINANCE_COLUMNS)


def finances_region_home(marketplaces: list[str], main: str, marketplace: str) -> bool:
    """Whether this marketplace's partition keeps its region's events that name no marketplace of the tenant:
    the main marketplace if it is in the region, else the tenant's first marketplace there."""
    region = MARKETPLACES[marketplace].region
    in_region = [m for m in [main, *marketplaces] if MARKETPLACES[m].region == region]
    return in_region[0] == marketplace


def events_of_partition(
    frame: pd.DataFrame, marketplace: str, region_home: bool, tenant_marketplaces: list[str]
) -> pd.DataFrame:
    """The rows a marketplace's partition keeps of its region's events.

    listFinancialEvents answers the whole region, not one marketplace. A partition keeps the events naming
    its marketplace; the region's home partition also keeps those naming no marketplace (account fees,
    reimbursements) or one the tenant does not sync, so every row lands in exactly one partition.
    """
    named = frame["marketplace"]
    mine = named == marketplace
    if region_home:
        mine |= named.isna() | ~named.isin(tenant_marketplaces)
    return frame[mine.fillna(False)].reset_index(drop=True)


# ---- AWD inventory -------------------------------------------------------------------------------------------------

AWD_COLUMNS = {
    "sku": "string",
    "total_onhand_quantity": "Int64",
    "total_inbound_quantity": "Int64",  # seller -> AWD, not yet received
    "available_distributable_quantity": "Int64",
    "reserved_distributable_quantity": "Int64",
    "replenishment_quantity": "Int64",  # AWD -> FBA, not yet received at FBA
    "expiration_lots": "Int64",
    "earliest_expiration": "datetime64[ns, UTC]",
}


def awd_inventory_frame(summaries: list[dict]) -> pd.DataFrame:
    """listInventory summaries (details=SHOW) as one row per SKU."""
    rows = []
    for s in summaries:
        details = s.get("inventoryDetails") or {}
        lots = s.get("expirationDetails") or []
        expirations = [lot["expiration"] for lot in lots if lot.get("expiration")]
        rows.append(
            {
                "sku": s.get("sku"),
                "total_onhand_quantity": _int(s.get("totalOnhandQuantity")),
                "total_inbound_quantity": _int(s.get("totalInboundQuantity")),
                "available_distributable_quantity": _int(details.get("availableDistributableQuantity")),
                "reserved_distributable_quantity": _int(details.get("reservedDistributableQuantity")),
                "replenishment_quantity": _int(details.get("replenishmentQuantity")),
                "expiration_lots": len(lots),
                "earliest_expiration": min(expirations) if expirations else None,
            }
        )
    frame = pd.DataFrame(rows, columns=list(AWD_COLUMNS))
    frame["earliest_expiration"] = pd.to_datetime(frame["earliest_expiration"], utc=True)
    return frame.astype(AWD_COLUMNS)


def awd_units(awd: pd.DataFrame) -> pd.DataFrame:
    """Per SKU, the AWD units a purchaser counts as the seller's stock: available and reserved distributable
    (on hand in AWD) plus replenishment (on its way from AWD to FBA). What is on its way from the seller to
    AWD (totalInboundQuantity) is left out: it is an open purchase, already shipped."""
    units = (
        awd["available_distributable_quantity"].fillna(0)
        + awd["reserved_distributable_quantity"].fillna(0)
        + awd["replenishment_quantity"].fillna(0)
    )
    out = pd.DataFrame({"sku": awd["sku"], "awd_quantity": units.astype("int64")})
    return out.groupby("sku", as_index=False)["awd_quantity"].sum()


# ---- inbound shipments -----------------------------------------------------------------------------------------

INBOUND_COLUMNS = {
    "shipment_id": "string",
    "marketplace": "string",
    "shipment_name": "string",
    "shipment_status": "string",
    "destination_fulfillment_center_id": "string",
    "label_prep_type": "string",
    "are_cases_required": "boolean",
    "box_contents_source": "string",
    "confirmed_need_by_date": "string",
    "ship_from_country": "string",
    "seller_sku": "string",
    "fulfillment_network_sku": "string",
    "quantity_shipped": "Int64",
    "quantity_received": "Int64",
    "quantity_in_case": "Int64",
    "release_date": "string",
}


def inbound_shipment_rows(marketplace: str, shipment: dict, items: list[dict]) -> list[dict]:
    """A row per item of one shipment. Of the ship-from address only the country is kept: the rest may be a
    person's home address."""
    head = {
        "shipment_id": shipment.get("ShipmentId"),
        "marketplace": marketplace,
        "shipment_name": shipment.get("ShipmentName"),
        "shipment_status": shipment.get("ShipmentStatus"),
        "destination_fulfillment_center_id": shipment.get("DestinationFulfillmentCenterId"),
        "label_prep_type": shipment.get("LabelPrepType"),
        "are_cases_required": _flag(shipment.get("AreCasesRequired")),
        "box_contents_source": shipment.get("BoxContentsSource"),
        "confirmed_need_by_date": shipment.get("ConfirmedNeedByDate"),
        "ship_from_country": (shipment.get("ShipFromAddress") or {}).get("CountryCode"),
    }
    return [
        {
            **head,
            "seller_sku": item.get("SellerSKU"),
            "fulfillment_network_sku": item.get("FulfillmentNetworkSKU"),
            "quantity_shipped": _int(item.get("QuantityShipped")),
            "quantity_received": _int(item.get("QuantityReceived")),
            "quantity_in_case": _int(item.get("QuantityInCase")),
            "release_date": item.get("ReleaseDate"),
        }
        for item in items
    ]


def inbound_shipments_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(INBOUND_COLUMNS)).astype(INBOUND_COLUMNS)


# ---- the account -----------------------------------------------------------------------------------------------

# Business types that are a person, not a company: their "business name" is a person's name.
NATURAL_PERSONS = {"INDIVIDUAL", "SOLE_PROPRIETORSHIP", "NATURAL_PERSON_COMPANY", "CRAFTSMAN"}
ACCOUNT_COLUMNS = {
    "business_type": "string",
    "selling_plan": "string",
    "business_name": "string",
    "registered_country_code": "string",
    "participating_marketplaces": "string",
}


def seller_account_frame(account: dict) -> pd.DataFrame:
    """getAccount as one row. Left out on purpose: the primary contact (a person's name and home address),
    addresses, registration and tax numbers, and the business name of a natural person. Optiply needs none."""
    business = account.get("business") or {}
    business_type = account.get("businessType")
    participating = sorted(
        p["marketplace"]["countryCode"]
        for p in account.get("marketplaceParticipationList") or []
        if (p.get("participation") or {}).get("isParticipating")
    )
    row = {
        "business_type": business_type,
        "selling_plan": account.get("sellingPlan"),
        "business_name": None if business_type in NATURAL_PERSONS else business.get("name"),
        "registered_country_code": (business.get("registeredBusinessAddress") or {}).get("countryCode"),
        "participating_marketplaces": ",".join(participating),
    }
    return pd.DataFrame([row], columns=list(ACCOUNT_COLUMNS)).astype(ACCOUNT_COLUMNS)


PARTICIPATION_COLUMNS = {
    "marketplace_id": "string",
    "country_code": "string",
    "name": "string",
    "default_currency_code": "string",
    "default_language_code": "string",
    "domain_name": "string",
    "store_name": "string",
    "is_participating": "boolean",
    "has_suspended_listings": "boolean",
}


def marketplace_participations_frame(payload: list[dict]) -> pd.DataFrame:
    rows = []
    for p in payload:
        m, part = p.get("marketplace") or {}, p.get("participation") or {}
        rows.append(
            {
                "marketplace_id": m.get("id"),
                "country_code": m.get("countryCode"),
                "name": m.get("name"),
                "default_currency_code": m.get("defaultCurrencyCode"),
                "default_language_code": m.get("defaultLanguageCode"),
                "domain_name": m.get("domainName"),
                "store_name": p.get("storeName"),
                "is_participating": _flag(part.get("isParticipating")),
                "has_suspended_listings": _flag(part.get("hasSuspendedListings")),
            }
        )
    return pd.DataFrame(rows, columns=list(PARTICIPATION_COLUMNS)).astype(PARTICIPATION_COLUMNS)
