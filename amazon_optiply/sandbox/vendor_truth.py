"""The vendor world's ground truth as Optiply records: what a vendor tenant's Optiply account should hold.

Pure functions of `VendorFacts` (sandbox/vendor.py), computed from the world's model, never from the wire,
with the README's vendor rules written out again here, independently of amazon_optiply/vendor. The
end-to-end tests (amazon_optiply_tests/vendor) and the soak (`python -m amazon_optiply.soak --vendor`)
both compare Optiply with these.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from amazon_optiply.sandbox.vendor import VendorFacts


def cents(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def optiply_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- full flavour ------------------------------------------------------------------------------------------


def expected_suppliers(facts: VendorFacts) -> dict[str, dict]:
    """remoteId (vendor code) -> name: one supplier per vendor code Amazon ordered under."""
    return {po.vendor_code: {"name": po.vendor_code} for po in facts.purchase_orders}


def expected_products(facts: VendorFacts) -> dict[str, dict]:
    """remoteId (EAN) -> name, skuCode (ASIN), eanCode, stockLevel (latest published day's sellable, ≥ 0)."""
    now = facts.now
    latest: dict[str, object] = {}
    for day in facts.days:
        if day.available_at <= now and (day.asin not in latest or day.day > latest[day.asin].day):
            latest[day.asin] = day
    return {
        p.ean: {
            "name": p.title,
            "skuCode": p.asin,
            "eanCode": p.ean,
            "stockLevel": max(latest[p.asin].sellable_on_hand_units, 0) if p.asin in latest else 0,
        }
        for p in facts.products
    }


def expected_supplier_products(facts: VendorFacts) -> dict[str, dict]:
    """remoteId `<vendor code>-<ASIN>` -> supplier (its remoteId), product (its remoteId, the EAN), asin,
    price (net cost per each; None for a weight-priced product) and deliveryTime (lead time, 1-365 days)."""
    out = {}
    for code, asin in sorted({(po.vendor_code, i.asin) for po in facts.purchase_orders for i in po.items}):
        product = facts.product(asin)
        out[f"{code}-{asin}"] = {
            "supplier": code,
            "product": product.ean,
            "asin": asin,
            "price": None if product.cost_unit else float(product.net_cost),
            "deliveryTime": min(max(round(product.lead_time_days), 1), 365),
        }
    return out


def expected_buy_orders(facts: VendorFacts) -> dict[str, dict]:
    """Acknowledged POs without an unusable item and with something accepted: lines of accepted eaches.

    remoteId (PO number) -> supplier, placed, expectedDeliveryDate, completed, totalValue and lines:
    remoteId `<PO>-<item sequence>` -> asin, quantity, subtotalValue, received (cumulative eaches) and
    last_receive_date.
    """
    out = {}
    for po in facts.purchase_orders:
        if po.acknowledged is None or po.has_unknown_unit or po.weight_priced:
            continue
        lines = {
            f"{po.number}-{i.sequence}": {
                "asin": i.asin,
                "quantity": i.accepted_eaches,
                "subtotalValue": cents(i.net_cost * i.accepted_eaches),
                "received": i.received_eaches,
                "last_receive_date": i.last_receive_date,
            }
            for i in po.items
            if i.accepted_eaches > 0
        }
        if not lines:
            continue
        out[po.number] = {
            "supplier": po.vendor_code,
            "placed": optiply_time(po.placed),
            "expectedDeliveryDate": optiply_time(po.window_end),
            "completed": optiply_time(po.closed) if po.closed else None,
            "totalValue": cents(sum((i.net_cost * i.accepted_eaches for i in po.items), Decimal(0))),
            "lines": lines,
        }
    return out


def expected_demand(facts: VendorFacts, orders_start: datetime) -> dict[str, dict]:
    """remoteId <ASIN>-<day> -> quantity (ordered units), totalValue (ordered revenue), published days only."""
    return {
        f"{d.asin}-{d.day.isoformat()}": {
            "quantity": d.ordered_units,
            "totalValue": cents(d.ordered_revenue),
        }
        for d in facts.days
        if d.available_at <= facts.now and d.ordered_units > 0 and d.day >= orders_start.date()
    }


# ---- sell_orders_only ------------------------------------------------------------------------------------


def expected_po_sell_orders(
    facts: VendorFacts, orders_start: datetime, parent_eans: set[str]
) -> dict[str, dict]:
    """POs placed since the orders start, acknowledged or closed, every product in the parent: sell orders.

    remoteId (PO number) -> placed, totalValue and lines: EAN -> quantity, subtotalValue.
    """
    out = {}
    for po in facts.purchase_orders:
        if po.placed < orders_start or po.state == "New" or po.has_unknown_unit or po.weight_priced:
            continue
        ordered = [i for i in po.items if i.ordered_eaches > 0]
        if not ordered or any(i.ean not in parent_eans for i in ordered):
            continue
        lines: dict[str, dict] = {}
        for i in ordered:
            line = lines.setdefault(i.ean, {"quantity": 0, "value": Decimal(0)})
            line["quantity"] += i.ordered_eaches
            line["value"] += i.net_cost * i.ordered_eaches
        out[po.number] = {
            "placed": optiply_time(po.placed),
            "lines": {
                ean: {"quantity": v["quantity"], "subtotalValue": cents(v["value"])}
                for ean, v in lines.items()
            },
            "totalValue": cents(sum((v["value"] for v in lines.values()), Decimal(0))),
        }
    return out
