"""Pure transforms of the vendor integration: Amazon's purchase orders, statuses and vendor reports in, Optiply
payloads out. DataFrames and dicts only; every rule is in the README's vendor section.

Quantities are in eaches everywhere past `purchase_order_items` (Amazon orders in Cases of `unitSize` or in
Eaches); money is Decimal until the payload, rounded half-up to cents there.
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import pandas as pd

CENT = Decimal("0.01")
UNITS = ("Cases", "Eaches")

ITEM_COLUMNS = {
    "purchase_order_number": "string",
    "purchase_order_state": "string",  # New, Acknowledged, Closed
    "vendor_code": "string",  # sellingParty.partyId: one Optiply supplier each
    "purchase_order_date": "datetime64[ns, UTC]",
    "state_changed_date": "datetime64[ns, UTC]",
    "delivery_window_end": "datetime64[ns, UTC]",
    "item_sequence_number": "string",
    "asin": "string",
    "vendor_product_identifier": "string",
    "ean": "string",  # the identifier as a GTIN-13 (a 12-digit UPC gets its leading 0), else null
    "ordered_eaches": "Int64",  # null when the unit is unknown
    "net_cost": "string",  # Amazon's decimal string, per each (or per weight unit, see cost_unit)
    "cost_unit": "string",  # set when Amazon prices by weight (KILOGRAMS, POUNDS, ...)
    "problem": "string",  # why the item cannot become an Optiply line, else null
}

STATUS_COLUMNS = {
    "purchase_order_number": "string",
    "purchase_order_status": "string",  # OPEN, CLOSED
    "last_updated_date": "datetime64[ns, UTC]",
    "item_sequence_number": "string",
    "confirmation_status": "string",
    "accepted_eaches": "Int64",
    "rejected_eaches": "Int64",
    "received_eaches": "Int64",  # cumulative: everything Amazon received of the item so far
    "last_receive_date": "datetime64[ns, UTC]",
}


def gtin13(identifier: str | None) -> str | None:
    """An EAN-13 as is; a 12-digit UPC-A as its GTIN-13 ("0" + UPC); anything else has no EAN."""
    code = (identifier or "").strip()
    if code.isdigit() and len(code) == 13:
        return code
    if code.isdigit() and len(code) == 12:
        return "0" + code
    return None


def eaches(quantity: dict | None) -> int | None:
    """Amazon's ItemQuantity in eaches: amount × unitSize for Cases, amount for Eaches; None if unknown."""
    if not quantity:
        return 0
    amount, unit = quantity.get("amount"), quantity.get("unitOfMeasure", "Eaches")
    if amount is None:
        return 0
    if unit == "Eaches":
        return int(amount)
    if unit == "Cases" and quantity.get("unitSize"):
        return int(amount) * int(quantity["unitSize"])
    return None


def _time(value: str | None) -> pd.Timestamp | None:
    return pd.Timestamp(value).tz_convert("UTC") if value else None


def window_end(window: str | None) -> pd.Timestamp | None:
    """The end of Amazon's "start--end" window string."""
    return _time(window.split("--")[-1]) if window and "--" in window else None


def _item_problem(item: dict, ordered: int | None) -> str | None:
    quantity = item.get("orderedQuantity") or {}
    if ordered is None:
        return (
            f"item {item.get('itemSequenceNumber')}: orderedQuantity in unknown unit "
            f"{quantity.get('unitOfMeasure')!r} (unitSize {quantity.get('unitSize')}); Amazon's units are {UNITS}"
        )
    cost = item.get("netCost") or {}
    if cost.get("unitOfMeasure"):
        return (
            f"item {item.get('itemSequenceNumber')}: netCost {cost.get('amount')} {cost.get('currencyCode')} is "
            f"per {cost['unitOfMeasure']}, not per each; its value cannot be known without the weight"
        )
    try:
        Decimal(str(cost.get("amount")))
    except InvalidOperation:
        return f"item {item.get('itemSequenceNumber')}: netCost {cost.get('amount')!r} is not a decimal"
    return None


def purchase_order_items(orders: list[dict]) -> pd.DataFrame:
    """One row per purchase order item, quantities in eaches, each item's problem named (or null)."""
    rows = []
    # Amazon's windows include both bounds, so an order on a boundary comes twice: keep one.
    for order in {o["purchaseOrderNumber"]: o for o in orders}.values():
        details = order.get("orderDetails") or {}
        for item in details.get("items") or []:
            ordered = eaches(item.get("orderedQuantity"))
            cost = item.get("netCost") or {}
            identifier = item.get("vendorProductIdentifier")
            rows.append(
                {
                    "purchase_order_number": order["purchaseOrderNumber"],
                    "purchase_order_state": order.get("purchaseOrderState"),
                    "vendor_code": (details.get("sellingParty") or {}).get("partyId"),
                    "purchase_order_date": _time(details.get("purchaseOrderDate")),
                    "state_changed_date": _time(details.get("purchaseOrderStateChangedDate")),
                    # Some orders carry a ship window instead: the vendor ships by its end.
                    "delivery_window_end": window_end(
                        details.get("deliveryWindow") or details.get("shipWindow")
                    ),
                    "item_sequence_number": str(item.get("itemSequenceNumber")),
                    "asin": item.get("amazonProductIdentifier"),
                    "vendor_product_identifier": identifier,
                    "ean": gtin13(identifier),
                    "ordered_eaches": ordered,
                    "net_cost": None if cost.get("amount") is None else str(cost.get("amount")),
                    "cost_unit": cost.get("unitOfMeasure"),
                    "problem": _item_problem(item, ordered),
                }
            )
    frame = pd.DataFrame(rows, columns=list(ITEM_COLUMNS))
    return (
        frame.astype(ITEM_COLUMNS)
        .sort_values(["purchase_order_number", "item_sequence_number"])
        .reset_index(drop=True)
    )


def purchase_order_status_items(statuses: list[dict]) -> pd.DataFrame:
    """One row per purchase order item's status: accepted, rejected and (cumulative) received eaches."""
    rows = []
    for status in {s["purchaseOrderNumber"]: s for s in statuses}.values():
        for item in status.get("itemStatus") or []:
            ack = item.get("acknowledgementStatus") or {}
            receiving = item.get("receivingStatus") or {}
            rows.append(
                {
                    "purchase_order_number": status["purchaseOrderNumber"],
                    "purchase_order_status": status.get("purchaseOrderStatus"),
                    "last_updated_date": _time(status.get("lastUpdatedDate")),
                    "item_sequence_number": str(item.get("itemSequenceNumber")),
                    "confirmation_status": ack.get("confirmationStatus"),
                    "accepted_eaches": eaches(ack.get("acceptedQuantity")),
                    "rejected_eaches": eaches(ack.get("rejectedQuantity")),
                    "received_eaches": eaches(receiving.get("receivedQuantity")),
                    "last_receive_date": _time(receiving.get("lastReceiveDate")),
                }
            )
    frame = pd.DataFrame(rows, columns=list(STATUS_COLUMNS))
    return (
        frame.astype(STATUS_COLUMNS)
        .sort_values(["purchase_order_number", "item_sequence_number"])
        .reset_index(drop=True)
    )


# ---- vendor reports (JSON documents) ---------------------------------------------------------------------


def _amount(value: object) -> float | None:
    if isinstance(value, dict):
        value = value.get("amount")
    return None if value is None else float(value)


def inventory_by_asin(document: str) -> pd.DataFrame:
    """GET_VENDOR_INVENTORY_REPORT's inventoryByAsin: per ASIN and day, sellable units and the vendor lead time."""
    rows = [
        {
            "asin": r["asin"],
            "day": pd.Timestamp(r["startDate"]).date().isoformat(),
            "sellable_on_hand_units": int(r.get("sellableOnHandInventoryUnits") or 0),
            "open_purchase_order_units": int(r.get("openPurchaseOrderUnits") or 0),
            "average_vendor_lead_time_days": _amount(r.get("averageVendorLeadTimeDays")),
        }
        for r in json.loads(document).get("inventoryByAsin") or []
    ]
    columns = {
        "asin": "string",
        "day": "string",
        "sellable_on_hand_units": "int64",
        "open_purchase_order_units": "int64",
        "average_vendor_lead_time_days": "float64",
    }
    return pd.DataFrame(rows, columns=list(columns)).astype(columns)


def sales_by_asin(document: str) -> pd.DataFrame:
    """GET_VENDOR_SALES_REPORT's salesByAsin: per ASIN and day, ordered and shipped units and revenue."""
    rows = [
        {
            "asin": r["asin"],
            "day": pd.Timestamp(r["startDate"]).date().isoformat(),
            "ordered_units": int(r.get("orderedUnits") or 0),
            "ordered_revenue": _amount(r.get("orderedRevenue")),
            "shipped_units": int(r.get("shippedUnits") or 0),
            "shipped_revenue": _amount(r.get("shippedRevenue")),
        }
        for r in json.loads(document).get("salesByAsin") or []
    ]
    columns = {
        "asin": "string",
        "day": "string",
        "ordered_units": "int64",
        "ordered_revenue": "float64",
        "shipped_units": "int64",
        "shipped_revenue": "float64",
    }
    return pd.DataFrame(rows, columns=list(columns)).astype(columns)


# ---- Optiply payloads -------------------------------------------------------------------------------------


def money(value: Decimal) -> float:
    return float(value.quantize(CENT, rounding=ROUND_HALF_UP))


def optiply_time(value: pd.Timestamp | None) -> str | None:
    return None if value is None or pd.isna(value) else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def product_remote_id(ean: str | None, asin: str) -> str:
    """The notes' rule: eanCode is the remoteId; an ASIN the catalog gives no EAN keeps its ASIN (never lost)."""
    return ean or asin


def vendor_products(inventory: pd.DataFrame, items: pd.DataFrame, identifiers: pd.DataFrame) -> pd.DataFrame:
    """One Optiply product per ASIN Amazon stocks or orders: remoteId, name, articleCode, eanCode, stockLevel.

    stockLevel is the latest day's sellable on-hand units at Amazon; backorders (negative units) count 0.
    """
    latest = inventory.sort_values("day").drop_duplicates("asin", keep="last").set_index("asin")
    asins = sorted(set(latest.index) | set(items["asin"].dropna()))
    codes = (
        identifiers.set_index("asin")
        if len(identifiers)
        else pd.DataFrame(columns=["ean_codes", "item_name"])
    )
    po_ean = items.dropna(subset=["ean"]).drop_duplicates("asin").set_index("asin")["ean"]
    rows = []
    for asin in asins:
        catalog_ean = str(codes.at[asin, "ean_codes"]).split(",")[0] if asin in codes.index else ""
        ean = catalog_ean or po_ean.get(asin) or None
        name = (
            str(codes.at[asin, "item_name"]) if asin in codes.index and codes.at[asin, "item_name"] else asin
        )
        units = int(latest.at[asin, "sellable_on_hand_units"]) if asin in latest.index else 0
        rows.append(
            {
                "remoteId": product_remote_id(ean, asin),
                "asin": asin,
                "name": name[:255],
                "articleCode": asin,
                "eanCode": ean,
                "stockLevel": max(units, 0),
            }
        )
    columns = {
        "remoteId": "string",
        "asin": "string",
        "name": "string",
        "articleCode": "string",
        "eanCode": "string",
        "stockLevel": "int64",
    }
    return pd.DataFrame(rows, columns=list(columns)).astype(columns)


def lead_time_days(value: float | None) -> int | None:
    """Optiply's deliveryTime takes 1-365 days or nothing."""
    if value is None or pd.isna(value):
        return None
    return min(max(round(value), 1), 365)


def suppliers(items: pd.DataFrame) -> pd.DataFrame:
    """One Optiply supplier per vendor code (Amazon buys from the vendor under each code)."""
    codes = sorted(set(items["vendor_code"].dropna()))
    return pd.DataFrame({"remoteId": codes, "name": codes}, dtype="string")


def supplier_products(items: pd.DataFrame, products: pd.DataFrame, inventory: pd.DataFrame) -> pd.DataFrame:
    """One per vendor code and product: price = the latest purchase order's net cost per each, deliveryTime =
    Amazon's average vendor lead time (latest day). A weight-priced item gets no price rather than a wrong one."""
    latest_lead = (
        inventory.sort_values("day")
        .drop_duplicates("asin", keep="last")
        .set_index("asin")["average_vendor_lead_time_days"]
    )
    by_asin = products.set_index("asin")
    ordered = items.dropna(subset=["vendor_code", "asin"]).sort_values(
        ["purchase_order_date", "purchase_order_number"]
    )
    rows = []
    for (vendor_code, asin), group in ordered.groupby(["vendor_code", "asin"], sort=True):
        if asin not in by_asin.index:
            continue
        last = group.iloc[-1]
        price = None
        if pd.isna(last["cost_unit"]) and not pd.isna(last["net_cost"]):
            price = money(Decimal(str(last["net_cost"])))
        product = by_asin.loc[asin]
        rows.append(
            {
                "remoteId": f"{vendor_code}-{asin}",
                "supplier_remote_id": vendor_code,
                "product_remote_id": product["remoteId"],
                "name": product["name"],
                "articleCode": asin,
                "eanCode": product["eanCode"],
                "price": price,
                "deliveryTime": lead_time_days(latest_lead.get(asin)),
            }
        )
    columns = {
        "remoteId": "string",
        "supplier_remote_id": "string",
        "product_remote_id": "string",
        "name": "string",
        "articleCode": "string",
        "eanCode": "string",
        "price": "Float64",
        "deliveryTime": "Int64",
    }
    return pd.DataFrame(rows, columns=list(columns)).astype(columns)


BUY_ORDER_DISPOSITIONS = ("deliver", "waiting", "held", "nothing_accepted")


def buy_orders(items: pd.DataFrame, statuses: pd.DataFrame, products: pd.DataFrame) -> pd.DataFrame:
    """One row per buy order line: Amazon's purchase orders to the vendor, once acknowledged.

    Line quantity = accepted eaches (what the vendor will ship), subtotal = quantity × net cost, the order's
    expected delivery = the end of Amazon's delivery window, completed = when the purchase order closed.
    disposition: deliver; waiting (not acknowledged yet); held (an item with a problem: unknown unit,
    weight-priced cost, a product unknown); nothing_accepted (every item rejected or cancelled).
    """
    merged = items.merge(statuses, on=["purchase_order_number", "item_sequence_number"], how="left")
    product_of = products.set_index("asin")["remoteId"]
    rows = []
    for number, group in merged.groupby("purchase_order_number", sort=True):
        problems = [p for p in group["problem"].dropna()]
        unknown = sorted(set(group["asin"].dropna()) - set(product_of.index))
        if unknown:
            problems.append(f"no product for ASIN(s) {', '.join(unknown)}")
        acknowledged = group["confirmation_status"].notna() & (group["confirmation_status"] != "UNCONFIRMED")
        closed = (group["purchase_order_status"] == "CLOSED").any()
        first = group.iloc[0]
        if problems:
            disposition = "held"
        elif not acknowledged.any():
            disposition = "waiting"
        elif (group["accepted_eaches"].fillna(0) <= 0).all():
            disposition = "nothing_accepted"
        else:
            disposition = "deliver"
        completed = None
        if closed:
            completed = (
                first["state_changed_date"]
                if not pd.isna(first["state_changed_date"])
                else group["last_updated_date"].max()
            )
        for _, item in group.iterrows():
            accepted = 0 if pd.isna(item["accepted_eaches"]) else int(item["accepted_eaches"])
            subtotal = None
            if disposition == "deliver":
                subtotal = money(Decimal(str(item["net_cost"])) * accepted)
            rows.append(
                {
                    "remoteId": number,
                    "line_remote_id": f"{number}-{item['item_sequence_number']}",
                    "supplier_remote_id": first["vendor_code"],
                    "product_remote_id": product_of.get(item["asin"]),
                    "placed": optiply_time(first["purchase_order_date"]),
                    "expectedDeliveryDate": optiply_time(first["delivery_window_end"]),
                    "completed": optiply_time(completed),
                    "quantity": accepted,
                    "subtotalValue": subtotal,
                    "received_eaches": 0
                    if pd.isna(item["received_eaches"])
                    else int(item["received_eaches"]),
                    "last_receive_date": optiply_time(item["last_receive_date"]),
                    "disposition": disposition,
                    "problem": "; ".join(problems) or None,
                }
            )
    columns = {
        "remoteId": "string",
        "line_remote_id": "string",
        "supplier_remote_id": "string",
        "product_remote_id": "string",
        "placed": "string",
        "expectedDeliveryDate": "string",
        "completed": "string",
        "quantity": "int64",
        "subtotalValue": "Float64",
        "received_eaches": "int64",
        "last_receive_date": "string",
        "disposition": "string",
        "problem": "string",
    }
    return pd.DataFrame(rows, columns=list(columns)).astype(columns)


def buy_order_attributes(lines: pd.DataFrame, supplier_id: int, product_ids: dict[str, int]) -> dict:
    """The POST body of one buy order with its lines nested (only lines with accepted units)."""
    first = lines.iloc[0]
    kept = lines[lines["quantity"] > 0]
    attributes = {
        "remoteId": first["remoteId"],
        "supplierId": supplier_id,
        "placed": first["placed"],
        "totalValue": money(sum((Decimal(str(v)) for v in kept["subtotalValue"]), Decimal(0))),
        "expectedDeliveryDate": first["expectedDeliveryDate"],
        "orderLines": [
            {
                "type": "buyOrderLines",
                "attributes": {
                    "remoteId": line["line_remote_id"],
                    "productId": product_ids[line["product_remote_id"]],
                    "quantity": int(line["quantity"]),
                    "subtotalValue": float(line["subtotalValue"]),
                },
            }
            for _, line in kept.iterrows()
        ],
    }
    if not pd.isna(first["completed"]):
        attributes["completed"] = first["completed"]
    return {
        k: v for k, v in attributes.items() if v is not None and not (isinstance(v, float) and pd.isna(v))
    }


def receipt_lines(lines: pd.DataFrame, received_on_record: dict[str, int]) -> pd.DataFrame:
    """What Amazon received since the last sync, per buy order line: cumulative received − delivered receipts.

    remoteId `<line>-<cumulative eaches>` names the state it brings the line to, so the same receipt read
    twice is the same record, and a count Amazon lowers (a correction) writes nothing negative.
    """
    rows = []
    for _, line in lines[lines["disposition"] == "deliver"].iterrows():
        if int(line["quantity"]) <= 0:
            continue  # a rejected item has no line in Optiply to receive on
        received = int(line["received_eaches"])
        before = received_on_record.get(line["line_remote_id"], 0)
        if received > before:
            rows.append(
                {
                    "remoteId": f"{line['line_remote_id']}-{received}",
                    "line_remote_id": line["line_remote_id"],
                    "quantity": received - before,
                    "received_total": received,
                    "occurred": line["last_receive_date"],
                }
            )
    columns = {
        "remoteId": "string",
        "line_remote_id": "string",
        "quantity": "int64",
        "received_total": "int64",
        "occurred": "string",
    }
    return pd.DataFrame(rows, columns=list(columns)).astype(columns)


SELL_ORDER_COLUMNS = {
    "remoteId": "string",
    "placed": "string",
    "product_remote_id": "string",  # the match key the product was found by (EAN or ASIN)
    "productId": "Int64",
    "quantity": "int64",
    "subtotalValue": "Float64",
    "disposition": "string",  # deliver, waiting, held, before_start, nothing_ordered
    "problem": "string",
}


def sell_orders_from_purchase_orders(
    items: pd.DataFrame, product_ids_by_ean: dict[str, int], orders_start: pd.Timestamp
) -> pd.DataFrame:
    """sell_orders_only: each of Amazon's purchase orders is one sell order of the vendor, a line per product.

    Quantity = ordered eaches (Amazon's demand, after its own changes and cancellations), subtotal =
    quantity × net cost. Sent once the order is no longer New (Amazon changes New orders), matched to the
    account's products by EAN; an order with an unmatched product or an item problem is held.
    """
    rows = []
    for number, group in items.groupby("purchase_order_number", sort=True):
        first = group.iloc[0]
        ordered = group[group["ordered_eaches"].fillna(1) > 0]
        problems = list(group["problem"].dropna())
        unmatched = sorted(
            f"{r.asin} ({r.vendor_product_identifier})"
            for r in ordered.itertuples()
            if product_ids_by_ean.get(r.ean) is None
        )
        if unmatched and not problems:
            problems.append(f"no Optiply product with the EAN of {', '.join(unmatched)}")
        if first["purchase_order_date"] < orders_start:
            disposition = "before_start"
        elif problems:
            disposition = "held"
        elif first["purchase_order_state"] == "New":
            disposition = "waiting"
        elif ordered.empty:
            disposition = "nothing_ordered"
        else:
            disposition = "deliver"
        lines = ordered.assign(
            cost=[Decimal(str(c)) if not pd.isna(c) else Decimal(0) for c in ordered["net_cost"]]
        )
        for ean, line in lines.groupby(lines["ean"].fillna(lines["asin"]), sort=True):
            quantity = int(line["ordered_eaches"].fillna(0).sum())
            value = sum(
                (c * int(q) for c, q in zip(line["cost"], line["ordered_eaches"].fillna(0), strict=True)),
                Decimal(0),
            )
            rows.append(
                {
                    "remoteId": number,
                    "placed": optiply_time(first["purchase_order_date"]),
                    "product_remote_id": ean,
                    "productId": product_ids_by_ean.get(ean),
                    "quantity": quantity,
                    "subtotalValue": money(value) if disposition == "deliver" else None,
                    "disposition": disposition,
                    "problem": "; ".join(problems) or None,
                }
            )
        if ordered.empty:
            rows.append(
                {
                    "remoteId": number,
                    "placed": optiply_time(first["purchase_order_date"]),
                    "product_remote_id": None,
                    "productId": None,
                    "quantity": 0,
                    "subtotalValue": None,
                    "disposition": disposition,
                    "problem": "; ".join(problems) or None,
                }
            )
    return pd.DataFrame(rows, columns=list(SELL_ORDER_COLUMNS)).astype(SELL_ORDER_COLUMNS)


def sell_orders_from_sales(
    sales: pd.DataFrame, products: pd.DataFrame, product_ids: dict[str, int], orders_start: pd.Timestamp
) -> pd.DataFrame:
    """Full flavour: Amazon's customer demand for the vendor's products, one sell order per ASIN and day.

    Quantity = ordered units (the demand Optiply forecasts on; shipped units miss what Amazon could not ship),
    subtotal = ordered revenue. remoteId `<ASIN>-<day>`; days before the orders start are skipped.
    """
    remote_of = products.set_index("asin")["remoteId"]
    rows = []
    for r in sales[sales["ordered_units"] > 0].sort_values(["day", "asin"]).itertuples():
        remote = remote_of.get(r.asin)
        product_id = product_ids.get(remote) if remote is not None else None
        placed = pd.Timestamp(r.day, tz="UTC")
        if placed < orders_start.normalize():
            disposition, problem = "before_start", None
        elif product_id is None:
            disposition, problem = "held", f"no product delivered for ASIN {r.asin}"
        else:
            disposition, problem = "deliver", None
        rows.append(
            {
                "remoteId": f"{r.asin}-{r.day}",
                "placed": optiply_time(placed),
                "product_remote_id": remote,
                "productId": product_id,
                "quantity": int(r.ordered_units),
                "subtotalValue": money(Decimal(str(r.ordered_revenue or 0))),
                "disposition": disposition,
                "problem": problem,
            }
        )
    return pd.DataFrame(rows, columns=list(SELL_ORDER_COLUMNS)).astype(SELL_ORDER_COLUMNS)


def sell_order_attributes(lines: pd.DataFrame) -> dict:
    """The POST body of one sell order with its lines nested, as the seller side posts them."""
    first = lines.iloc[0]
    total = sum((Decimal(str(v)) for v in lines["subtotalValue"]), Decimal(0))
    return {
        "remoteId": first["remoteId"],
        "placed": first["placed"],
        "completed": first["placed"],
        "totalValue": money(total),
        "orderLines": [
            {
                "productId": int(r.productId),
                "quantity": int(r.quantity),
                "subtotalValue": float(r.subtotalValue),
            }
            for r in lines.itertuples()
        ],
    }
