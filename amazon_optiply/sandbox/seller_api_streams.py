"""The seller world's API streams: order items, financial events, inbound shipments to FBA, AWD stock, the account.

Everything derives deterministically from the seller world (seller.py): its orders, SKUs and FBA inventory,
and the sandbox clock. The inbound shipments also move the world's FBA inventory (`apply_slot`, called for
every 30-minute slot), so getInventorySummaries' inbound quantities are always the sum of the open
shipments. Each stream has its ground truth here, built from this module's own model, not from the wire
shapes seller_api.py renders, so tests compare the pipeline with what the world holds.

GUESSES (Amazon documents none of these):
- Inbound shipments of a Pan-European pool belong to the pool's first marketplace; getShipments for another
  marketplace of the pool finds none.
- A shipment's "last updated" is its latest status change, its creation included. Units counted as
  received (RECEIVING: part of them, CLOSED: all) are fulfillable from that status change on, and only
  that change moves the FBA row's lastUpdatedTime: inbound quantities change without it (Amazon: the
  startDateTime filter does not see inbound changes).
- A shipment event is posted when its order ships and becomes visible in listFinancialEvents between
  30 minutes and 47.5 hours later ("orders from the last 48 hours might not be included"). About one
  shipped order in twenty is refunded three days later. Per region a monthly subscription fee
  (ServiceFeeEvent) and a daily FBA inventory reimbursement (AdjustmentEvent), neither with a marketplace.
- AWD holds about one US FBA SKU in five and one SKU not listed in the US; its stock does not move.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd

from amazon_optiply.marketplaces import MARKETPLACES, fba_pool
from amazon_optiply.sandbox.seller import SHIPPED, SLOT, Order, SellerWorld, money_decimals

# ---- inbound shipments to FBA ------------------------------------------------------------------------------

WORKING, DELETED, CLOSED, RECEIVING = "WORKING", "DELETED", "CLOSED", "RECEIVING"
# The statuses a shipment passes through, in order; DELETED ends a WORKING shipment the seller gives up.
FLOW = ("WORKING", "SHIPPED", "IN_TRANSIT", "DELIVERED", "CHECKED_IN", "RECEIVING", "CLOSED")
SHIPPED_STATUSES = frozenset({"SHIPPED", "IN_TRANSIT", "DELIVERED", "CHECKED_IN"})
# Slots (30 minutes) from the status before to this one: (fewest, most).
STEP_SLOTS = {
    "SHIPPED": (12, 72),
    "IN_TRANSIT": (4, 24),
    "DELIVERED": (24, 96),
    "CHECKED_IN": (1, 4),
    "RECEIVING": (2, 12),
    "CLOSED": (12, 48),
}
LONGEST_SHIPMENT = sum(most for _, most in STEP_SLOTS.values()) + 24  # slots from creation to its last change
NEW_SHIPMENT_EVERY = 16  # slots: a new shipment is created every 8 hours
CENTRES = {"EU": ("LEJ1", "DTM2", "MUC3"), "US": ("MKC6", "ONT8", "PHX6")}


@dataclass(frozen=True)
class ShipmentItem:
    sku: str
    fnsku: str
    quantity: int
    in_case: int  # units per case; 0 when individually packed


@dataclass
class InboundShipment:
    shipment_id: str
    marketplace: str
    name: str
    centre: str
    events: list[tuple[datetime, str]]  # time order; the first is its creation (WORKING)
    items: list[ShipmentItem]
    receive_share: float  # the share of each item counted as received when RECEIVING starts

    @property
    def created(self) -> datetime:
        return self.events[0][0]

    @property
    def cases_required(self) -> bool:
        return all(i.in_case for i in self.items)

    def status_at(self, t: datetime) -> str | None:
        status = None
        for when, s in self.events:
            if when <= t:
                status = s
        return status

    def last_updated_at(self, t: datetime) -> datetime | None:
        times = [when for when, _ in self.events if when <= t]
        return times[-1] if times else None

    def received(self, item: ShipmentItem, t: datetime) -> int:
        status = self.status_at(t)
        if status == CLOSED:
            return item.quantity
        if status == RECEIVING:
            return math.floor(item.quantity * self.receive_share)
        return 0

    def inbound(self, item: ShipmentItem, t: datetime) -> tuple[int, int, int]:
        """What the item adds to FBA's (inboundWorking, inboundShipped, inboundReceiving) at `t`."""
        status = self.status_at(t)
        if status == WORKING:
            return item.quantity, 0, 0
        if status in SHIPPED_STATUSES:
            return 0, item.quantity, 0
        if status == RECEIVING:
            return 0, 0, item.quantity - self.received(item, t)
        return 0, 0, 0

    def changes_at(self, t: datetime) -> bool:
        return any(when == t for when, _ in self.events)


def _shipment_id(rng: random.Random) -> str:
    return "FBA1" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(8))


def _flow_after(rng: random.Random, status: str, at: datetime, deleted_share: float = 0.0) -> list:
    """The statuses after `status` (reached at `at`) until CLOSED, or DELETED while still WORKING."""
    events = []
    if status == WORKING and rng.random() < deleted_share:
        return [(at + SLOT * rng.randint(4, 20), DELETED)]
    for nxt in FLOW[FLOW.index(status) + 1 :]:
        at = at + SLOT * rng.randint(*STEP_SLOTS[nxt])
        events.append((at, nxt))
    return events


@dataclass
class _PoolInbound:
    """The inbound shipments of one FBA pool, owned by its first marketplace."""

    marketplace: str
    frame: pd.DataFrame  # the pool's base FBA rows (sku, fnsku), never mutated
    fixed: list[InboundShipment]  # open at the origin, or closed before it
    new: dict[int, InboundShipment] = field(default_factory=dict)  # created after the origin, by index
    row_of: dict[str, int] = field(default_factory=dict)  # fnsku -> row index of the pool's FBA frame


class ApiStreams:
    """What the API streams read from one seller world; made once per world (`streams_of`)."""

    def __init__(self, world: SellerWorld) -> None:
        self.world = world
        self.config = world.config
        self.origin = world.config.origin
        self.pools: dict[str, _PoolInbound] = {}
        for pool, members in world.pools.items():
            owner = members[0]
            base = world.base_fba[owner]
            inbound = _PoolInbound(owner, base[["sku", "fnsku"]].copy(), [])
            inbound.row_of = {f: i for i, f in enumerate(base["fnsku"])}
            inbound.fixed = self._fixed_shipments(owner, base)
            self.pools[pool] = inbound
        self.awd = self._awd_stock() if "US" in self.config.marketplaces else {}

    # ---- inbound shipments -------------------------------------------------------------------------
    def _rng(self, *parts: object) -> random.Random:
        return random.Random("-".join(str(p) for p in (self.config.seed, *parts)))

    def _fixed_shipments(self, mp: str, base: pd.DataFrame) -> list[InboundShipment]:
        """Shipments open at the origin, which make up its FBA rows' inbound quantities, and older closed ones."""
        rng = self._rng(mp, "inbound")
        region = "EU" if fba_pool(mp) == "EU" else "US"
        centres = CENTRES.get(region, CENTRES["US"])
        shipments = []
        for column, statuses in (
            ("inbound_working", (WORKING,)),
            ("inbound_shipped", ("SHIPPED", "IN_TRANSIT", "DELIVERED", "CHECKED_IN")),
        ):
            rows = base[base[column] > 0]
            for start in range(0, len(rows), 6):
                chunk = rows.iloc[start : start + 6]
                status = rng.choice(statuses)
                created = self.origin - SLOT * rng.randint(48, 240)
                events = [(created, WORKING)]
                if status != WORKING:
                    events.append((self.origin - SLOT * rng.randint(1, 40), status))
                events += _flow_after(rng, status, self.origin)
                items = [ShipmentItem(r.sku, r.fnsku, int(getattr(r, column)), 0) for r in chunk.itertuples()]
                shipments.append(self._shipment(rng, mp, centres, events, items))
        # Closed before the origin: history only, their units long counted as fulfillable.
        for _ in range(4):
            created = self.origin - SLOT * rng.randint(20 * 48, 40 * 48)
            events = [(created, WORKING), *_flow_after(rng, WORKING, created)]
            picked = base.iloc[rng.sample(range(len(base)), min(3, len(base)))] if len(base) else base
            items = [ShipmentItem(r.sku, r.fnsku, rng.randint(1, 8) * 12, 12) for r in picked.itertuples()]
            shipments.append(self._shipment(rng, mp, centres, events, items))
        return shipments

    def _shipment(self, rng, mp, centres, events, items) -> InboundShipment:
        created = events[0][0]
        return InboundShipment(
            shipment_id=_shipment_id(rng),
            marketplace=mp,
            name=f"FBA ({created.strftime('%d/%m/%Y, %H:%M')}) - {rng.randint(1, 3)}",
            centre=rng.choice(centres),
            events=events,
            items=items,
            receive_share=rng.choice((0.25, 0.5, 0.8)),
        )

    def _new_shipment(self, pool: _PoolInbound, k: int) -> InboundShipment:
        """The k-th shipment created after the origin (every NEW_SHIPMENT_EVERY slots)."""
        if k not in pool.new:
            rng = self._rng(pool.marketplace, "inbound-new", k)
            created = self.origin + SLOT * NEW_SHIPMENT_EVERY * (k + 1)
            events = [(created, WORKING), *_flow_after(rng, WORKING, created, deleted_share=1 / 6)]
            base = pool.frame
            picked = base.iloc[rng.sample(range(len(base)), min(rng.randint(2, 3), len(base)))]
            in_case = rng.choice((0, 12))
            items = [
                ShipmentItem(r.sku, r.fnsku, rng.randint(1, 8) * (in_case or 6), in_case)
                for r in picked.itertuples()
            ]
            region = "EU" if fba_pool(pool.marketplace) == "EU" else "US"
            centres = CENTRES.get(region, CENTRES["US"])
            pool.new[k] = self._shipment(rng, pool.marketplace, centres, events, items)
        return pool.new[k]

    def _new_created_until(self, t: datetime) -> int:
        """How many shipments have been created after the origin by `t`."""
        return max(0, math.floor((t - self.origin) / (SLOT * NEW_SHIPMENT_EVERY)))

    def shipments(self, mp: str, at: datetime) -> list[InboundShipment]:
        """The marketplace's inbound shipments created by `at` (none outside the pool's first marketplace)."""
        pool = self.pools.get(fba_pool(mp))
        if pool is None or pool.marketplace != mp or not len(pool.frame):
            return []
        out = [s for s in pool.fixed if s.created <= at]
        out += [self._new_shipment(pool, k) for k in range(self._new_created_until(at))]
        return out

    def apply_slot(self, slot: int) -> None:
        """Move the world's FBA rows with the shipments changing at the slot's start (under the world's lock)."""
        t = self.origin + slot * SLOT
        before = t - timedelta(microseconds=1)
        for pool in self.pools.values():
            if not len(pool.frame):
                continue
            first_new = max(0, self._new_created_until(t - SLOT * LONGEST_SHIPMENT) - 1)
            candidates = pool.fixed + [
                self._new_shipment(pool, k) for k in range(first_new, self._new_created_until(t))
            ]
            fba = self.world.fba[pool.marketplace]
            for shipment in candidates:
                if not shipment.changes_at(t):
                    continue
                for item in shipment.items:
                    row = pool.row_of[item.fnsku]
                    now_in, was_in = shipment.inbound(item, t), shipment.inbound(item, before)
                    for column, now, was in zip(
                        ("inbound_working", "inbound_shipped", "inbound_receiving"),
                        now_in,
                        was_in,
                        strict=True,
                    ):
                        if now != was:
                            fba.at[row, column] = fba.at[row, column] + now - was
                    received = shipment.received(item, t) - shipment.received(item, before)
                    if received:
                        fba.at[row, "fulfillable"] = fba.at[row, "fulfillable"] + received
                        fba.at[row, "last_updated"] = t

    # ---- AWD ------------------------------------------------------------------------------------------
    def _awd_stock(self) -> dict[str, AwdStock]:
        rng = self._rng("US", "awd")
        skus = sorted(set(self.world.base_fba["US"]["sku"]))
        stock = {}
        for sku in [s for s in skus if rng.random() < 0.2] + ["AWD-ONLY-0001"]:
            available, reserved = rng.randint(0, 300), rng.randint(0, 30) * (rng.random() < 0.4)
            onhand = available + reserved
            first = rng.randint(0, onhand) if onhand else 0
            lots = [(self.origin + timedelta(days=rng.randint(200, 700)), onhand - first)]
            if first:
                lots.append((self.origin + timedelta(days=rng.randint(30, 199)), first))
            stock[sku] = AwdStock(
                sku=sku,
                available=available,
                reserved=reserved,
                replenishment=rng.randint(0, 60) * (rng.random() < 0.5),
                inbound=rng.randint(0, 120) * (rng.random() < 0.3),
                lots=tuple(
                    sorted(
                        (when.replace(hour=10, minute=0, second=0, microsecond=0), n) for when, n in lots if n
                    )
                ),
            )
        return stock


@dataclass(frozen=True)
class AwdStock:
    sku: str
    available: int  # availableDistributableQuantity
    reserved: int  # reservedDistributableQuantity
    replenishment: int  # in transit from AWD to FBA
    inbound: int  # in transit from the seller to AWD
    lots: tuple[tuple[datetime, int], ...]  # (expiration, on-hand units)

    @property
    def onhand(self) -> int:
        return self.available + self.reserved


def streams_of(world: SellerWorld) -> ApiStreams:
    """The world's API streams, made on first use (deterministic: from the world's base state only)."""
    with world._lock:
        streams = world.__dict__.get("_api_streams")
        if streams is None:
            streams = world.__dict__["_api_streams"] = ApiStreams(world)
        return streams


def apply_slot(world: SellerWorld, slot: int) -> None:
    """The slot's inbound shipment changes, applied to the world's FBA rows (seller.py calls it per slot)."""
    streams_of(world).apply_slot(slot)


def expected_inbound_items(
    world: SellerWorld, mp: str, updated_after: datetime, updated_before: datetime, at: datetime
) -> pd.DataFrame:
    """A row per item of the marketplace's shipments last updated in [after, before] (both included), at `at`."""
    rows = []
    for shipment in streams_of(world).shipments(mp, at):
        if not updated_after <= shipment.last_updated_at(at) <= updated_before:
            continue
        for item in shipment.items:
            rows.append(
                {
                    "shipment_id": shipment.shipment_id,
                    "shipment_status": shipment.status_at(at),
                    "destination_fulfillment_center_id": shipment.centre,
                    "seller_sku": item.sku,
                    "fulfillment_network_sku": item.fnsku,
                    "quantity_shipped": item.quantity,
                    "quantity_received": shipment.received(item, at),
                    "quantity_in_case": item.in_case,
                }
            )
    return pd.DataFrame(rows)


def expected_inbound_units(world: SellerWorld, mp: str, at: datetime) -> pd.DataFrame:
    """Per SKU, the units of the marketplace's FBA pool on their way in at `at`: working, shipped, receiving."""
    owner = world.pools[fba_pool(mp)][0]
    units: dict[str, list[int]] = {}
    for shipment in streams_of(world).shipments(owner, at):
        for item in shipment.items:
            row = units.setdefault(item.sku, [0, 0, 0])
            for i, n in enumerate(shipment.inbound(item, at)):
                row[i] += n
    return pd.DataFrame(
        [(sku, *n) for sku, n in units.items()],
        columns=["sku", "inbound_working_quantity", "inbound_shipped_quantity", "inbound_receiving_quantity"],
    )


def expected_awd(world: SellerWorld) -> pd.DataFrame:
    """The AWD inventory (US) as the awd_inventory asset should hold it."""
    rows = [
        {
            "sku": s.sku,
            "total_onhand_quantity": s.onhand,
            "total_inbound_quantity": s.inbound,
            "available_distributable_quantity": s.available,
            "reserved_distributable_quantity": s.reserved,
            "replenishment_quantity": s.replenishment,
            "expiration_lots": len(s.lots),
            "earliest_expiration": min((when for when, _ in s.lots), default=None),
        }
        for s in streams_of(world).awd.values()
    ]
    return pd.DataFrame(rows)


# ---- order items -------------------------------------------------------------------------------------------


def _money(value: float, currency: str) -> Decimal:
    return Decimal(f"{value:.{money_decimals(currency)}f}")


def order_item_id(order: Order, line: int) -> str:
    """A 14-digit OrderItemId, stable per order line."""
    mp_index, k = int(order.order_id[:3]) - 301, int(order.order_id[4:11])
    return f"{mp_index:02d}{k:08d}{line:04d}"


def order_items(order: Order, at: datetime) -> list[dict]:
    """The order's items as getOrderItems knows them at `at`: money as Decimal (None: not given yet).

    Pending orders carry no pricing (Amazon: not until payment is authorised); cancelled ones none either,
    and their QuantityOrdered is 0 (as the orders report's quantity). QuantityShipped follows the order's
    status: all lines when Shipped, the first line when partially shipped.
    """
    from amazon_optiply.sandbox.seller import CANCELLED, PARTIALLY_SHIPPED, PENDING

    status = order.status_at(at)
    currency = MARKETPLACES[order.marketplace].currency
    priced = status not in (PENDING, CANCELLED)
    out = []
    for i, line in enumerate(order.lines):
        shipped = line["quantity"] if status == SHIPPED or (status == PARTIALLY_SHIPPED and i == 0) else 0
        money = {
            "ItemPrice": line["item_price"],
            "ItemTax": line["item_tax"],
            "ShippingPrice": line["shipping_price"],
            "ShippingTax": line["shipping_tax"],
            "PromotionDiscount": line["item_promotion_discount"],
            "ShippingDiscount": line["ship_promotion_discount"],
        }
        out.append(
            {
                "order_id": order.order_id,
                "order_item_id": order_item_id(order, i),
                "asin": line["asin"],
                "sku": line["sku"],
                "title": line["name"],
                "quantity_ordered": 0 if status == CANCELLED else line["quantity"],
                "quantity_shipped": shipped,
                "currency": currency,
                "money": {k: _money(v, currency) for k, v in money.items()} if priced else {},
                "promotion_ids": [line["promotion_ids"]] if priced and line["promotion_ids"] else [],
                "is_gift": bool(line["gift_wrap_price"]),
            }
        )
    return out


def order_by_id(world: SellerWorld, order_id: str, at: datetime) -> Order | None:
    """The order with this AmazonOrderId placed by `at`, or None (ids are `<302 + marketplace>-<k>-<random>`)."""
    try:
        mp_index, k = int(order_id[:3]) - 302, int(order_id[4:11])
    except ValueError:
        return None
    marketplaces = world.config.marketplaces
    if not 0 <= mp_index < len(marketplaces) or k < 0:
        return None
    order = world.order(marketplaces[mp_index], k)
    return order if order.order_id == order_id and order.purchase_date <= at else None


def expected_order_items(world: SellerWorld, order_ids: list[str], at: datetime) -> pd.DataFrame:
    """One row per item of these orders, as the order_items asset should hold them (money as decimal strings)."""
    rows = []
    for order_id in order_ids:
        order = order_by_id(world, order_id, at)
        for item in order_items(order, at) if order else []:
            money = item["money"]
            rows.append(
                {
                    "amazon_order_id": item["order_id"],
                    "order_item_id": item["order_item_id"],
                    "asin": item["asin"],
                    "seller_sku": item["sku"],
                    "quantity_ordered": item["quantity_ordered"],
                    "quantity_shipped": item["quantity_shipped"],
                    "currency": item["currency"] if money else None,
                    "item_price": str(money["ItemPrice"]) if money else None,
                    "item_tax": str(money["ItemTax"]) if money else None,
                    "shipping_price": str(money["ShippingPrice"]) if money else None,
                    "shipping_tax": str(money["ShippingTax"]) if money else None,
                    "promotion_discount": str(money["PromotionDiscount"]) if money else None,
                    "shipping_discount": str(money["ShippingDiscount"]) if money else None,
                }
            )
    return pd.DataFrame(rows)


# ---- financial events ----------------------------------------------------------------------------------------

FINANCES_LAG_MIN, FINANCES_LAG_MAX = timedelta(minutes=30), timedelta(hours=47, minutes=30)
REFUND_SHARE, REFUND_AFTER = 0.05, timedelta(days=3)
COMMISSION_RATE = Decimal("0.15")
FBA_FEE_PER_UNIT = {
    "EUR": Decimal("3.15"),
    "USD": Decimal("3.86"),
    "GBP": Decimal("2.89"),
    "JPY": Decimal("421"),
}
SUBSCRIPTION_FEE = {
    "EUR": Decimal("39.00"),
    "USD": Decimal("39.99"),
    "GBP": Decimal("25.00"),
    "JPY": Decimal("4900"),
}


@dataclass(frozen=True)
class FinanceRow:
    """One amount of one event, as the flattened stream should hold it."""

    event_type: str  # the event list without "EventList": Shipment, Refund, ServiceFee, Adjustment
    amazon_order_id: str | None
    marketplace_name: str | None
    posted_date: datetime
    seller_sku: str | None
    order_item_id: str | None
    component: str  # the list holding the amount (ItemChargeList, ItemFeeList, ...) or the event's own
    amount_field: str  # ChargeAmount, FeeAmount, PromotionAmount, AdjustmentAmount, TotalAmount, ...
    amount_type: str  # Principal, Commission, FBAInventoryReimbursement, ...
    amount: Decimal
    currency: str


@dataclass
class FinanceEvent:
    list_name: str  # ShipmentEventList, RefundEventList, ServiceFeeEventList, AdjustmentEventList
    key: str  # stable, for ordering and the visibility lag
    posted: datetime
    visible_at: datetime
    region: str
    body: dict  # the event as Amazon writes it (Decimal money; seller_api.py renders it exactly)
    rows: list[FinanceRow]


def _rounded(value: Decimal, currency: str) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-money_decimals(currency)), rounding=ROUND_HALF_UP)


class _EventBuilder:
    """Builds an event's body and its ground-truth rows side by side."""

    def __init__(self, list_name: str, posted: datetime, order_id=None, marketplace_name=None) -> None:
        self.list_name, self.posted = list_name, posted
        self.order_id, self.marketplace_name = order_id, marketplace_name
        self.rows: list[FinanceRow] = []

    def amount(
        self, component, field_name, amount_type, value: Decimal, currency, sku=None, item_id=None
    ) -> dict:
        self.rows.append(
            FinanceRow(
                self.list_name.removesuffix("EventList"),
                self.order_id,
                self.marketplace_name,
                self.posted,
                sku,
                item_id,
                component,
                field_name,
                amount_type,
                value,
                currency,
            )
        )
        return {"CurrencyCode": currency, "CurrencyAmount": value}

    def charge(self, component, charge_type, value, currency, sku, item_id) -> dict:
        money = self.amount(component, "ChargeAmount", charge_type, value, currency, sku, item_id)
        return {"ChargeType": charge_type, "ChargeAmount": money}

    def fee(self, component, fee_type, value, currency, sku=None, item_id=None) -> dict:
        return {
            "FeeType": fee_type,
            "FeeAmount": self.amount(component, "FeeAmount", fee_type, value, currency, sku, item_id),
        }


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Finances:
    """The seller's financial events per region, from its orders and a few account-level events."""

    def __init__(self, world: SellerWorld) -> None:
        self.world = world
        self.config = world.config

    def _lagged(self, key: str, posted: datetime) -> datetime:
        rng = random.Random(f"{self.config.seed}-{key}-lag")
        span = (FINANCES_LAG_MAX - FINANCES_LAG_MIN).total_seconds()
        return posted + FINANCES_LAG_MIN + timedelta(seconds=round(rng.uniform(0, span)))

    def region_marketplaces(self, region: str | None) -> list[str]:
        return [m for m in self.config.marketplaces if region is None or MARKETPLACES[m].region == region]

    def events(self, region: str | None, start: datetime, end: datetime) -> list[FinanceEvent]:
        """Every event posted in [start, end) in the region (None: every region), visible or not yet."""
        out: list[FinanceEvent] = []
        regions = sorted({MARKETPLACES[m].region for m in self.region_marketplaces(region)})
        for mp in self.region_marketplaces(region):
            reach = start - self.world.ORDER_LIFETIME - REFUND_AFTER - timedelta(days=1)
            for order in self.world.orders_placed_between(mp, reach, end):
                shipped = next((t for t, s in order.events if s == SHIPPED), None)
                if shipped is None:
                    continue
                if start <= shipped < end:
                    out.append(self._shipment_event(order, shipped))
                refund_rng = random.Random(f"{self.config.seed}-{order.order_id}-refund")
                if refund_rng.random() < REFUND_SHARE:
                    refunded = shipped + REFUND_AFTER + timedelta(minutes=refund_rng.randint(0, 600))
                    if start <= refunded < end:
                        out.append(self._refund_event(order, refunded))
        for reg in regions:
            out += self._account_events(reg, start, end)
        return sorted(out, key=lambda e: (e.posted, e.key))

    def visible(
        self, region: str | None, start: datetime, end: datetime, now: datetime
    ) -> list[FinanceEvent]:
        """What listFinancialEvents answers at `now`: events posted in [start, end) Amazon has released."""
        return [e for e in self.events(region, start, end) if e.visible_at <= now]

    def _shipment_event(self, order: Order, posted: datetime) -> FinanceEvent:
        mp = order.marketplace
        currency = MARKETPLACES[mp].currency
        b = _EventBuilder("ShipmentEventList", posted, order.order_id, MARKETPLACES[mp].name)
        items = []
        for i, line in enumerate(order.lines):
            sku, item_id = line["sku"], order_item_id(order, i)
            charges = [
                ("Principal", line["item_price"]),
                ("Tax", line["item_tax"]),
                ("ShippingCharge", line["shipping_price"]),
                ("ShippingTax", line["shipping_tax"]),
            ]
            if line["gift_wrap_price"]:
                charges.append(("Giftwrap", line["gift_wrap_price"]))
            principal = _money(line["item_price"], currency)
            item = {
                "SellerSKU": sku,
                "OrderItemId": item_id,
                "QuantityShipped": line["quantity"],
                "ItemChargeList": [
                    b.charge("ItemChargeList", kind, _money(v, currency), currency, sku, item_id)
                    for kind, v in charges
                ],
                "ItemFeeList": [
                    b.fee(
                        "ItemFeeList",
                        "Commission",
                        -_rounded(principal * COMMISSION_RATE, currency),
                        currency,
                        sku,
                        item_id,
                    )
                ],
            }
            if order.fulfillment_channel == "Amazon":
                fee = -_rounded(FBA_FEE_PER_UNIT.get(currency, Decimal("3.15")) * line["quantity"], currency)
                item["ItemFeeList"].append(
                    b.fee("ItemFeeList", "FBAPerUnitFulfillmentFee", fee, currency, sku, item_id)
                )
            if mp == "US":  # marketplace facilitator states: Amazon withholds the sales tax it collected
                withheld = -_money(line["item_tax"], currency)
                item["ItemTaxWithheldList"] = [
                    {
                        "TaxCollectionModel": "MarketplaceFacilitator",
                        "TaxesWithheld": [
                            b.charge(
                                "TaxesWithheld",
                                "MarketplaceFacilitatorTax-Principal",
                                withheld,
                                currency,
                                sku,
                                item_id,
                            )
                        ],
                    }
                ]
            promotions = []
            for promo_id, value in (
                (line["promotion_ids"] or "PROMO-ITEM", line["item_promotion_discount"]),
                ("PROMO-SHIP", line["ship_promotion_discount"]),
            ):
                if value:
                    money = b.amount(
                        "PromotionList",
                        "PromotionAmount",
                        "PromotionMetaDataDefinitionValue",
                        -_money(value, currency),
                        currency,
                        sku,
                        item_id,
                    )
                    promotions.append(
                        {
                            "PromotionType": "PromotionMetaDataDefinitionValue",
                            "PromotionId": promo_id,
                            "PromotionAmount": money,
                        }
                    )
            if promotions:
                item["PromotionList"] = promotions
            items.append(item)
        body = {
            "AmazonOrderId": order.order_id,
            "SellerOrderId": order.order_id,
            "MarketplaceName": MARKETPLACES[mp].name,
            "PostedDate": _iso(posted),
            "ShipmentItemList": items,
        }
        key = f"shipment-{order.order_id}"
        return FinanceEvent(
            "ShipmentEventList", key, posted, self._lagged(key, posted), MARKETPLACES[mp].region, body, b.rows
        )

    def _refund_event(self, order: Order, posted: datetime) -> FinanceEvent:
        """A refund of the order's first line: its principal and tax back, 80% of the commission returned."""
        mp = order.marketplace
        currency = MARKETPLACES[mp].currency
        b = _EventBuilder("RefundEventList", posted, order.order_id, MARKETPLACES[mp].name)
        line = order.lines[0]
        sku, item_id = line["sku"], order_item_id(order, 0)
        principal = _money(line["item_price"], currency)
        commission = _rounded(principal * COMMISSION_RATE, currency)
        adjustment = {
            "SellerSKU": sku,
            "OrderAdjustmentItemId": f"9{item_id[1:]}",
            "QuantityShipped": line["quantity"],
            "ItemChargeAdjustmentList": [
                b.charge("ItemChargeAdjustmentList", "Principal", -principal, currency, sku, None),
                b.charge(
                    "ItemChargeAdjustmentList",
                    "Tax",
                    -_money(line["item_tax"], currency),
                    currency,
                    sku,
                    None,
                ),
            ],
            "ItemFeeAdjustmentList": [
                b.fee(
                    "ItemFeeAdjustmentList",
                    "Commission",
                    _rounded(commission * Decimal("0.8"), currency),
                    currency,
                    sku,
                ),
                b.fee(
                    "ItemFeeAdjustmentList",
                    "RefundCommission",
                    -_rounded(commission * Decimal("0.2"), currency),
                    currency,
                    sku,
                ),
            ],
        }
        body = {
            "AmazonOrderId": order.order_id,
            "SellerOrderId": order.order_id,
            "MarketplaceName": MARKETPLACES[mp].name,
            "PostedDate": _iso(posted),
            "ShipmentItemAdjustmentList": [adjustment],
        }
        key = f"refund-{order.order_id}"
        return FinanceEvent(
            "RefundEventList", key, posted, self._lagged(key, posted), MARKETPLACES[mp].region, body, b.rows
        )

    def _account_events(self, region: str, start: datetime, end: datetime) -> list[FinanceEvent]:
        """The region's monthly subscription fee and daily FBA inventory reimbursements (no marketplace)."""
        first = self.region_marketplaces(region)[0]
        currency = MARKETPLACES[first].currency
        out = []
        day = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        while day < end:
            if day.day == 1:
                posted = day + timedelta(hours=6)
                if start <= posted < end:
                    b = _EventBuilder("ServiceFeeEventList", posted)
                    fee = b.fee(
                        "FeeList", "Subscription", -SUBSCRIPTION_FEE.get(currency, Decimal("39.00")), currency
                    )
                    body = {"FeeDescription": "Subscription Fee", "FeeList": [fee]}
                    key = f"subscription-{region}-{day:%Y%m%d}"
                    out.append(
                        FinanceEvent(
                            "ServiceFeeEventList",
                            key,
                            posted,
                            self._lagged(key, posted),
                            region,
                            body,
                            b.rows,
                        )
                    )
            posted = day + timedelta(hours=5)
            fba = self.world.base_fba.get(first)
            if start <= posted < end and fba is not None and len(fba):
                rng = random.Random(f"{self.config.seed}-{region}-{day:%Y%m%d}-reimbursement")
                row = fba.iloc[rng.randrange(len(fba))]
                quantity = rng.randint(1, 3)
                unit = _rounded(Decimal(str(row["price"])) * Decimal("0.55"), currency)
                b = _EventBuilder("AdjustmentEventList", posted)
                total = unit * quantity
                item = {
                    "Quantity": str(quantity),
                    "PerUnitAmount": b.amount(
                        "AdjustmentItemList",
                        "PerUnitAmount",
                        "FBAInventoryReimbursement",
                        unit,
                        currency,
                        row["sku"],
                    ),
                    "TotalAmount": b.amount(
                        "AdjustmentItemList",
                        "TotalAmount",
                        "FBAInventoryReimbursement",
                        total,
                        currency,
                        row["sku"],
                    ),
                    "SellerSKU": row["sku"],
                    "FnSKU": row["fnsku"],
                    "ProductDescription": row["name"],
                    "ASIN": row["asin"],
                }
                amount = b.amount(
                    "AdjustmentEvent", "AdjustmentAmount", "FBAInventoryReimbursement", total, currency
                )
                body = {
                    "AdjustmentType": "FBAInventoryReimbursement",
                    "PostedDate": _iso(posted),
                    "StoreName": self.config.store_name,
                    "AdjustmentAmount": amount,
                    "AdjustmentItemList": [item],
                }
                key = f"reimbursement-{region}-{day:%Y%m%d}"
                out.append(
                    FinanceEvent(
                        "AdjustmentEventList", key, posted, self._lagged(key, posted), region, body, b.rows
                    )
                )
            day += timedelta(days=1)
        return out


def finances_of(world: SellerWorld) -> Finances:
    return Finances(world)


def expected_financial_rows(
    world: SellerWorld, marketplace: str, start: datetime, end: datetime, home: bool
) -> list[FinanceRow]:
    """The rows the order_financial_events asset of `marketplace` should hold for events posted in [start, end).

    Events naming the marketplace; in the region's home partition (`home`) also those naming none.
    """
    region = MARKETPLACES[marketplace].region
    name = MARKETPLACES[marketplace].name
    rows = []
    for event in finances_of(world).events(region, start, end):
        for row in event.rows:
            if row.marketplace_name == name or (home and row.marketplace_name is None):
                rows.append(row)
    return rows


# ---- the account ---------------------------------------------------------------------------------------------


def participations(world: SellerWorld) -> list[dict]:
    """getMarketplaceParticipations' payload: every marketplace of the seller, participating."""
    out = []
    for code in world.config.marketplaces:
        m = MARKETPLACES[code]
        out.append(
            {
                "marketplace": {
                    "id": m.marketplace_id,
                    "name": m.name,
                    "countryCode": m.country_code,
                    "defaultCurrencyCode": m.currency,
                    "defaultLanguageCode": m.language,
                    "domainName": m.domain,
                },
                "participation": {"isParticipating": True, "hasSuspendedListings": False},
                "storeName": world.config.store_name,
            }
        )
    return out


# The seller's legal entity. The primary contact is a person: the platform must never keep it.
ACCOUNT = {
    "businessType": "PRIVATE_LIMITED",
    "sellingPlan": "PROFESSIONAL",
    "business": {
        "name": "Sandbox Küchenwelt GmbH",
        "registeredBusinessAddress": {
            "addressLine1": "Lagerstraße 5",
            "city": "Leipzig",
            "stateOrProvinceCode": "SN",
            "postalCode": "04109",
            "countryCode": "DE",
        },
        "companyRegistrationNumber": "HRB 123456",
        "companyTaxIdentificationNumber": "DE123456789",
    },
    "primaryContact": {
        "name": "Erika Mustermann",
        "address": {
            "addressLine1": "Heidestraße 17",
            "city": "Köln",
            "postalCode": "51147",
            "countryCode": "DE",
        },
    },
}


def account(world: SellerWorld) -> dict:
    """getAccount's payload."""
    return {**ACCOUNT, "marketplaceParticipationList": participations(world)}
