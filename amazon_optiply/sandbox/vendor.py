"""The sandbox vendor: a deterministic Amazon Vendor Central account (a brand selling *to* Amazon).

Products, Amazon's purchase orders to the vendor and Amazon's daily figures per ASIN are a pure function
of the seed and the clock time: a purchase order's whole life (placed, changed by Amazon, acknowledged,
received in parts, closed) is drawn once from its own seeded generator, and what any API shows at a
moment `now` is that plan cut at `now`. Advancing the sandbox clock therefore makes things happen, and
the ground truth of any moment is computable (`VendorWorld.facts(now)`), from this model, never from
what the servers sent.

Quantities in the ground truth are in eaches (cases converted with the case size); money is Decimal.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

from amazon_optiply.marketplaces import MARKETPLACES

CASES, EACHES = "Cases", "Eaches"
KNOWN_UNITS = (CASES, EACHES)
UNKNOWN_UNIT = "Pallets"  # what the `unknown_unit_orders` POs carry: neither of Amazon's two units
KILOGRAMS = "KILOGRAMS"

NEW, ACKNOWLEDGED, CLOSED = "New", "Acknowledged", "Closed"  # purchaseOrderState
OPEN_STATUS, CLOSED_STATUS = "OPEN", "CLOSED"  # getPurchaseOrdersStatus' purchaseOrderStatus
ACCEPTED, PARTIALLY_ACCEPTED, REJECTED, UNCONFIRMED = (
    "ACCEPTED",
    "PARTIALLY_ACCEPTED",
    "REJECTED",
    "UNCONFIRMED",
)
NOT_RECEIVED, PARTIALLY_RECEIVED, RECEIVED = "NOT_RECEIVED", "PARTIALLY_RECEIVED", "RECEIVED"

# Amazon fulfilment centres in Germany a PO ships to (shipToParty.partyId), with their towns.
FULFILMENT_CENTRES = {
    "FRA7": ("Frankenthal", "67227"),
    "DUS2": ("Rheinberg", "47495"),
    "LEJ1": ("Leipzig", "04347"),
    "MUC3": ("Graben", "86836"),
    "BER3": ("Brieselang", "14656"),
    "CGN1": ("Koblenz", "56068"),
}

# A day's figures are published the next day at this time (UTC); a report asking for a day before that
# has no data and is CANCELLED.
PUBLISH_DELAY = timedelta(days=1, hours=12)

# The longest a PO's life runs after it is placed (acknowledged <= 1.5 d, first receipt <= 6 d later, two
# more receipts <= 2 d apart, closed <= 3 d after): a scan for what happened on a day looks this far back.
SETTLE = timedelta(days=16)

_BRANDS = ["Nordkraft", "Grünwerk", "Bäckerei Süß", "Alpenmühle", "Küstenglück"]
_GOODS = [
    "Haferflocken",
    "Dinkelmehl Type 630",
    "Espressobohnen",
    "Früchtetee",
    "Senf mittelscharf",
    "Apfelmus",
    "Spülmittel",
    "Küchenrolle",
    "Müsliriegel",
    "Rapsöl",
]
_PACKS = ["500 g", "1 kg", "250 ml", "4er Pack", "6 × 200 g", "Vorteilspack", "Bio"]
_LOOSE = ["lose Ware", "Großgebinde", "Schüttgut"]  # goods sold by the kilogram


def _floor_slot(t: datetime) -> datetime:
    return t.replace(minute=(t.minute // 30) * 30, second=0, microsecond=0)


def _check_digit(body: str) -> str:
    """GS1 check digit: from the right, weights 3, 1, 3, 1 … (the same for EAN-13 and UPC-A)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


def gs1_valid(code: str) -> bool:
    """Whether `code` (EAN-13, UPC-A, any GS1 number) has a valid check digit."""
    return code.isdigit() and len(code) >= 2 and _check_digit(code[:-1]) == code[-1]


def _money(x: Decimal | float | int) -> Decimal:
    return Decimal(str(x)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _seconds(t: datetime) -> datetime:
    return t.replace(microsecond=0)


def six_months_before(t: datetime) -> datetime:
    """The same moment six calendar months earlier (the day clamped to the month's length)."""
    month = t.month - 6
    year = t.year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    days = [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28, 31, 30, 31, 30]
    days += [31, 31, 30, 31, 30, 31]
    return t.replace(year=year, month=month, day=min(t.day, days[month - 1]))


@dataclass(frozen=True)
class VendorConfig:
    seed: int = 11
    # A vendor account's analytics reports have exactly one marketplace.
    marketplace: str = "DE"
    # The vendor group's vendor codes: Amazon's sellingParty.partyId on every PO.
    vendor_codes: tuple[str, ...] = ("OPTV1", "OPTV2")
    products: int = 30
    purchase_orders_per_day: float = 4.0
    # POs exist from `origin - history_days`; daily figures from the first whole day after that.
    history_days: int = 14
    # The sandbox clock's start, which anchors the history (defaults like SellerConfig.origin).
    origin: datetime = field(default_factory=lambda: _floor_slot(datetime.now(UTC)))
    # How many products are priced per KILOGRAMS (netCost.unitOfMeasure set) instead of per each.
    weight_priced_products: int = 1
    # How many POs of the history carry an item whose orderedQuantity.unitOfMeasure is neither Cases nor
    # Eaches (UNKNOWN_UNIT), for bad-input tests.
    unknown_unit_orders: int = 0

    def __post_init__(self) -> None:
        if self.marketplace not in MARKETPLACES:
            raise ValueError(f"unknown marketplace code {self.marketplace!r}")
        if not self.vendor_codes:
            raise ValueError("a vendor has at least one vendor code")
        if self.products < 2 * len(self.vendor_codes):
            raise ValueError("give every vendor code at least two products")
        if not 0 <= self.weight_priced_products <= self.products:
            raise ValueError("weight_priced_products must be between 0 and products")
        if self.purchase_orders_per_day <= 0:
            raise ValueError("purchase_orders_per_day must be positive")


# ---- ground truth: what the world says is true at a moment --------------------------------------------


@dataclass(frozen=True)
class VendorProduct:
    """One of the vendor's products as Amazon knows it."""

    asin: str  # Amazon's ASIN (amazonProductIdentifier on POs, asin in reports)
    title: str  # the catalog's item name (itemName)
    vendor_code: str  # the vendor code that sells it to Amazon (sellingParty.partyId on its POs)
    ean: str  # EAN-13 with a valid check digit; for a UPC product "0" + the UPC
    upc: str | None  # UPC-A (12 digits) for about one product in five, else None
    vendor_product_id: str  # what POs carry as vendorProductIdentifier: the UPC if there is one, else the EAN
    case_size: int  # eaches per case (orderedQuantity.unitSize when ordered in Cases)
    net_cost: Decimal  # netCost.amount: per each, or per `cost_unit` when that is set (2 decimals)
    list_price: Decimal  # listPrice.amount, in the same unit as net_cost
    cost_unit: str | None  # None (priced per each) or "KILOGRAMS" (netCost.unitOfMeasure)
    each_weight_kg: Decimal | None  # for a weight-priced product: kilograms in one each
    lead_time_days: float  # averageVendorLeadTimeDays in the inventory report
    currency: str  # netCost.currencyCode (the marketplace's currency: EUR for DE)
    in_parent: bool  # whether parent_products() (the vendor's own shop system) has it

    @property
    def cost_per_each(self) -> Decimal:
        """What one each costs Amazon: net_cost, or net_cost × each_weight_kg for weight-priced products."""
        if self.each_weight_kg is None:
            return self.net_cost
        return _money(self.net_cost * self.each_weight_kg)

    @property
    def price_per_each(self) -> Decimal:
        if self.each_weight_kg is None:
            return self.list_price
        return _money(self.list_price * self.each_weight_kg)


@dataclass(frozen=True)
class PurchaseOrderItemFacts:
    """One item of a PO as it stands at `now`. Quantities in eaches (amount × unitSize for Cases)."""

    sequence: str  # itemSequenceNumber: "1", "2", …
    asin: str  # amazonProductIdentifier (buyerProductIdentifier in statuses)
    vendor_product_id: str  # vendorProductIdentifier: EAN-13 or UPC-A
    ean: str  # the product's EAN-13 (for a UPC product "0" + UPC)
    upc: str | None  # the product's UPC-A, when it has one
    unit_of_measure: str  # orderedQuantity.unitOfMeasure: Cases, Eaches (or UNKNOWN_UNIT in bad-input POs)
    unit_size: int  # orderedQuantity.unitSize: the case size for Cases, 1 for Eaches
    known_unit: bool  # False for UNKNOWN_UNIT items (their eaches below assume amount × unit_size)
    original_amount: int  # orderedQuantity.amount as placed, in unit_of_measure
    amount: int  # orderedQuantity.amount now (0: cancelled by Amazon), in unit_of_measure
    original_eaches: int  # ordered eaches as placed
    ordered_eaches: int  # ordered eaches now (after Amazon's change)
    cancelled_eaches: int  # original_eaches - ordered_eaches (Amazon's cancelledQuantity, in eaches)
    accepted_eaches: int  # acknowledged as accepted (0 until acknowledged)
    rejected_eaches: int  # acknowledged as rejected (0 until acknowledged)
    received_eaches: int  # cumulative eaches Amazon received up to now (receivingStatus.receivedQuantity)
    last_receive_date: datetime | None  # the latest receipt up to now
    confirmation_status: str  # ACCEPTED, PARTIALLY_ACCEPTED, REJECTED or UNCONFIRMED
    receive_status: str  # NOT_RECEIVED, PARTIALLY_RECEIVED or RECEIVED
    net_cost: Decimal  # netCost.amount (per each, or per cost_unit)
    cost_unit: str | None  # netCost.unitOfMeasure: None (per each) or KILOGRAMS
    list_price: Decimal  # listPrice.amount
    back_order_allowed: bool  # isBackOrderAllowed

    @property
    def cancelled(self) -> bool:
        """Amazon cancelled the item: its amount is 0 on the PO (poItemState=Cancelled)."""
        return self.amount == 0


@dataclass(frozen=True)
class PurchaseOrderFacts:
    """A PO as it stands at `now` (only POs placed at or before `now` exist)."""

    number: str  # purchaseOrderNumber: 8 alphanumeric characters
    vendor_code: str  # sellingParty.partyId
    ship_to: str  # shipToParty.partyId: a fulfilment centre such as FRA7
    state: str  # purchaseOrderState: New, Acknowledged or Closed
    status: str  # getPurchaseOrdersStatus' purchaseOrderStatus: OPEN or CLOSED
    placed: datetime  # purchaseOrderDate
    changed: datetime | None  # purchaseOrderChangedDate, once Amazon changed the PO (before acknowledging)
    acknowledged: datetime | None  # when the vendor acknowledged it (None before)
    closed: datetime | None  # when Amazon closed it (None while open)
    state_changed: datetime  # purchaseOrderStateChangedDate: placed, acknowledged or closed
    last_updated: (
        datetime  # the status' lastUpdatedDate: latest of placed/changed/acknowledged/receipt/closed
    )
    delivery_window: tuple[datetime, datetime] | None  # deliveryWindow (most POs)
    ship_window: tuple[datetime, datetime] | None  # shipWindow (collect POs carry this one instead)
    window_end: datetime  # the end of the delivery window, else of the ship window (expected delivery)
    items: tuple[PurchaseOrderItemFacts, ...]
    received_eaches: int  # Σ items' cumulative received eaches
    last_receive_date: datetime | None  # the latest receipt of any item up to now

    @property
    def is_changed(self) -> bool:
        """isPOChanged: Amazon modified the PO after placing it."""
        return self.changed is not None

    @property
    def has_cancelled_item(self) -> bool:
        return any(item.cancelled for item in self.items)

    @property
    def has_unknown_unit(self) -> bool:
        return any(not item.known_unit for item in self.items)

    @property
    def weight_priced(self) -> bool:
        return any(item.cost_unit for item in self.items)


@dataclass(frozen=True)
class DayFigures:
    """Amazon's figures for one ASIN on one whole UTC day, as its DAY reports give them."""

    asin: str
    day: date
    available_at: datetime  # when reports can give this day (the next day, 12:00 UTC)
    # GET_VENDOR_INVENTORY_REPORT
    sellable_on_hand_units: int  # end of day; backorders count negative, so this can be < 0
    sellable_on_hand_cost: Decimal  # units × cost per each (negative with the units)
    unsellable_on_hand_units: int
    unsellable_on_hand_cost: Decimal
    net_received_units: int  # eaches received from the vendor's POs that day
    net_received_cost: Decimal
    open_purchase_order_units: int  # end of day: accepted, not yet received eaches of POs not closed
    unfilled_customer_ordered_units: int  # backorders: max(0, -sellable_on_hand_units)
    average_vendor_lead_time_days: float
    # GET_VENDOR_SALES_REPORT
    ordered_units: int  # MANUFACTURING view only
    ordered_revenue: Decimal  # MANUFACTURING view only
    shipped_units: int
    shipped_revenue: Decimal
    shipped_cogs: Decimal
    customer_returns: int


@dataclass(frozen=True)
class VendorFacts:
    """Everything true at `now`."""

    now: datetime
    products: tuple[VendorProduct, ...]
    purchase_orders: tuple[PurchaseOrderFacts, ...]  # every PO placed at or before now, oldest first
    days: tuple[DayFigures, ...]  # every ASIN × every whole day ended by now (see available_at)

    def purchase_order(self, number: str) -> PurchaseOrderFacts:
        """The PO with that number (KeyError when none was placed by now)."""
        for po in self.purchase_orders:
            if po.number == number:
                return po
        raise KeyError(number)

    def product(self, asin: str) -> VendorProduct:
        for p in self.products:
            if p.asin == asin:
                return p
        raise KeyError(asin)

    def available_days(self) -> list[date]:
        """The days a report can give at now."""
        return sorted({d.day for d in self.days if d.available_at <= self.now})


# ---- the model: a PO's whole life, drawn once -----------------------------------------------------------


@dataclass(frozen=True)
class ItemPlan:
    sequence: str
    product: VendorProduct
    unit: str
    unit_size: int
    original_amount: int
    amount_after_change: int  # equals original_amount unless Amazon changed this item
    accepted_amount: int  # in `unit`, from the acknowledgement on
    receipts: tuple[tuple[datetime, int], ...]  # (when, cumulative eaches received)
    back_order_allowed: bool

    def amount_at(self, po: PurchaseOrderPlan, now: datetime) -> int:
        if po.changed_at is not None and po.changed_at <= now:
            return self.amount_after_change
        return self.original_amount

    def accepted_at(self, po: PurchaseOrderPlan, now: datetime) -> int:
        return self.accepted_amount if po.acknowledged_at <= now else 0

    def rejected_at(self, po: PurchaseOrderPlan, now: datetime) -> int:
        if po.acknowledged_at > now:
            return 0
        return self.amount_after_change - self.accepted_amount

    def received_at(self, now: datetime) -> tuple[int, datetime | None]:
        """Cumulative eaches received by `now`, and when the latest of those receipts happened."""
        received, last = 0, None
        for when, cumulative in self.receipts:
            if when <= now:
                received, last = cumulative, when
        return received, last

    def confirmation_at(self, po: PurchaseOrderPlan, now: datetime) -> str:
        if po.acknowledged_at > now or self.amount_after_change == 0:
            return UNCONFIRMED  # GUESS: a cancelled (zero) item is never confirmed
        if self.accepted_amount == self.amount_after_change:
            return ACCEPTED
        return PARTIALLY_ACCEPTED if self.accepted_amount else REJECTED

    def receive_status_at(self, po: PurchaseOrderPlan, now: datetime) -> str:
        received, _ = self.received_at(now)
        if received == 0:
            return NOT_RECEIVED
        return RECEIVED if received >= self.accepted_amount * self.unit_size else PARTIALLY_RECEIVED


@dataclass(frozen=True)
class PurchaseOrderPlan:
    index: int
    number: str
    vendor_code: str
    ship_to: str
    created: datetime
    changed_at: datetime | None
    acknowledged_at: datetime
    closed_at: datetime | None  # None: never closed (never fully received)
    delivery_window: tuple[datetime, datetime] | None
    ship_window: tuple[datetime, datetime] | None
    items: tuple[ItemPlan, ...]

    def state_at(self, now: datetime) -> str:
        if self.closed_at is not None and self.closed_at <= now:
            return CLOSED
        return ACKNOWLEDGED if self.acknowledged_at <= now else NEW

    def state_changed_at(self, now: datetime) -> datetime:
        state = self.state_at(now)
        if state == CLOSED:
            assert self.closed_at is not None
            return self.closed_at
        return self.acknowledged_at if state == ACKNOWLEDGED else self.created

    def changed_visible(self, now: datetime) -> datetime | None:
        return self.changed_at if self.changed_at is not None and self.changed_at <= now else None

    def events(self) -> list[datetime]:
        times = [self.created, self.acknowledged_at]
        if self.changed_at is not None:
            times.append(self.changed_at)
        if self.closed_at is not None:
            times.append(self.closed_at)
        times.extend(when for item in self.items for when, _ in item.receipts)
        return times

    def last_updated_at(self, now: datetime) -> datetime:
        return max(t for t in self.events() if t <= now)

    @property
    def window_end(self) -> datetime:
        window = self.delivery_window or self.ship_window
        assert window is not None
        return window[1]

    def facts(self, now: datetime) -> PurchaseOrderFacts:
        items = []
        for item in self.items:
            amount = item.amount_at(self, now)
            received, last = item.received_at(now)
            size = item.unit_size
            items.append(
                PurchaseOrderItemFacts(
                    sequence=item.sequence,
                    asin=item.product.asin,
                    vendor_product_id=item.product.vendor_product_id,
                    ean=item.product.ean,
                    upc=item.product.upc,
                    unit_of_measure=item.unit,
                    unit_size=size,
                    known_unit=item.unit in KNOWN_UNITS,
                    original_amount=item.original_amount,
                    amount=amount,
                    original_eaches=item.original_amount * size,
                    ordered_eaches=amount * size,
                    cancelled_eaches=(item.original_amount - amount) * size,
                    accepted_eaches=item.accepted_at(self, now) * size,
                    rejected_eaches=item.rejected_at(self, now) * size,
                    received_eaches=received,
                    last_receive_date=last,
                    confirmation_status=item.confirmation_at(self, now),
                    receive_status=item.receive_status_at(self, now),
                    net_cost=item.product.net_cost,
                    cost_unit=item.product.cost_unit,
                    list_price=item.product.list_price,
                    back_order_allowed=item.back_order_allowed,
                )
            )
        receipts = [i.last_receive_date for i in items if i.last_receive_date is not None]
        state = self.state_at(now)
        return PurchaseOrderFacts(
            number=self.number,
            vendor_code=self.vendor_code,
            ship_to=self.ship_to,
            state=state,
            status=CLOSED_STATUS if state == CLOSED else OPEN_STATUS,
            placed=self.created,
            changed=self.changed_visible(now),
            acknowledged=self.acknowledged_at if self.acknowledged_at <= now else None,
            closed=self.closed_at if state == CLOSED else None,
            state_changed=self.state_changed_at(now),
            last_updated=self.last_updated_at(now),
            delivery_window=self.delivery_window,
            ship_window=self.ship_window,
            window_end=self.window_end,
            items=tuple(items),
            received_eaches=sum(i.received_eaches for i in items),
            last_receive_date=max(receipts) if receipts else None,
        )


# ---- the world -----------------------------------------------------------------------------------------


class VendorWorld:
    """A vendor's Amazon side as a function of time: products, purchase orders, daily figures."""

    def __init__(self, config: VendorConfig) -> None:
        self.config = config
        self.marketplace = MARKETPLACES[config.marketplace]
        self.currency = self.marketplace.currency
        self._lock = threading.RLock()
        self._pos: dict[int, PurchaseOrderPlan] = {}
        self._days: dict[date, dict[str, DayFigures]] = {}
        self._stock: dict[date, dict[str, int]] = {}  # sellable units at the end of each day
        self.products: tuple[VendorProduct, ...] = self._generate_products()
        self.products_by_asin = {p.asin: p for p in self.products}
        self._demand = self._generate_demand()
        history = int(config.history_days * config.purchase_orders_per_day)
        n = config.unknown_unit_orders
        self._unknown_unit_pos = {(i + 1) * history // (n + 1) for i in range(n)}

    # ---- time -------------------------------------------------------------------------------------------
    @property
    def start(self) -> datetime:
        """When the first PO can be placed: origin - history_days."""
        return self.config.origin - timedelta(days=self.config.history_days)

    @property
    def first_day(self) -> date:
        """The first whole UTC day of the history: reports before it have no data."""
        midnight = datetime.combine(self.start.date(), time(), UTC)
        return self.start.date() if midnight == self.start else self.start.date() + timedelta(days=1)

    @property
    def interval(self) -> timedelta:
        return timedelta(days=1) / self.config.purchase_orders_per_day

    def advance_to(self, t: datetime) -> None:
        """Nothing to apply (the world is a function of time); warms the PO cache up to `t`."""
        self.purchase_order_plans(t)

    @staticmethod
    def day_available_at(day: date) -> datetime:
        return datetime.combine(day, time(), UTC) + PUBLISH_DELAY

    # ---- products ---------------------------------------------------------------------------------------
    def _generate_products(self) -> tuple[VendorProduct, ...]:
        c = self.config
        rng = random.Random(f"vendor-{c.seed}-products")
        n = c.products
        weight = set(rng.sample(range(n), c.weight_priced_products))
        # One or two products the vendor's shop system does not have (no Optiply product to match).
        missing = set(rng.sample(sorted(set(range(n)) - weight), 1 if n < 10 else 2))
        asins: set[str] = set()
        products = []
        for i in range(n):
            asin = "B0" + "".join(rng.choice("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(8))
            while asin in asins:
                asin = "B0" + "".join(rng.choice("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(8))
            asins.add(asin)
            vendor_code = c.vendor_codes[i % len(c.vendor_codes)]
            brand = _BRANDS[c.vendor_codes.index(vendor_code) % len(_BRANDS)]
            if i in weight:
                title = f"{brand} {rng.choice(_GOODS)} {rng.choice(_LOOSE)}, Preis pro kg"
            else:
                title = f"{brand} {rng.choice(_GOODS)} {rng.choice(_PACKS)} Nr. {i}"
            upc = None
            if rng.random() < 0.2:
                body = rng.choice("0678") + f"{rng.randrange(10**10):010d}"
                upc = body + _check_digit(body)
                ean = "0" + upc
            else:
                body = rng.choice(["40", "41", "42", "43", "44"]) + f"{rng.randrange(10**10):010d}"
                ean = body + _check_digit(body)
            net_cost = _money(rng.uniform(0.8, 40.0))
            products.append(
                VendorProduct(
                    asin=asin,
                    title=title,
                    vendor_code=vendor_code,
                    ean=ean,
                    upc=upc,
                    vendor_product_id=upc or ean,
                    case_size=rng.choice([6, 12, 24]),
                    net_cost=net_cost,
                    list_price=_money(net_cost * Decimal(str(round(rng.uniform(1.4, 2.2), 2)))),
                    cost_unit=KILOGRAMS if i in weight else None,
                    each_weight_kg=_money(rng.choice([0.5, 1.0, 2.5, 5.0])) if i in weight else None,
                    lead_time_days=round(rng.uniform(3.0, 14.0), 1),
                    currency=self.currency,
                    in_parent=i not in missing,
                )
            )
        return tuple(products)

    def _generate_demand(self) -> dict[str, tuple[int, float]]:
        """Per ASIN: (sellable units at the start, mean customer orders per day)."""
        rng = random.Random(f"vendor-{self.config.seed}-demand")
        demand = {p.asin: (rng.randint(80, 400), rng.uniform(2.0, 12.0)) for p in self.products}
        # One product sells faster than Amazon restocks it: it runs into backorders (negative units).
        demand[self.products[0].asin] = (40, 15.0)
        return demand

    def parent_products(self) -> list[dict]:
        """The products as the vendor's own shop system created them in Optiply (another coupling).

        eanCode is the EAN-13 (for UPC products "0" + UPC, so matching a UPC needs that conversion);
        one or two products are left out (`VendorProduct.in_parent`), so their PO items match nothing.
        Each dict is a valid Optiply product (OptiplyBackend.preload_products accepts it).
        """
        rng = random.Random(f"vendor-{self.config.seed}-parent")
        return [
            {
                "name": p.title,
                "skuCode": f"SHOP-{i:04d}",
                "eanCode": p.ean,
                "remoteId": f"shop-{i}",
                "price": float(p.price_per_each),
                "stockLevel": rng.randint(0, 500),
            }
            for i, p in enumerate(self.products)
            if p.in_parent
        ]

    def catalog_items(self, mp: str, identifiers: list[str], id_type: str) -> list[dict]:
        """The vendor's ASINs as the Catalog Items API finds them (the same dicts as the seller's).

        A UPC product carries both identifiers: EAN "0" + UPC and the UPC itself.
        """
        if mp != self.config.marketplace:
            return []
        wanted = set(identifiers)
        out = []
        for p in self.products:
            if id_type == "ASIN":
                hit = p.asin in wanted
            elif id_type in ("EAN", "GTIN"):
                hit = p.ean in wanted
            elif id_type == "UPC":
                hit = p.upc in wanted
            else:
                hit = False
            if hit:
                brand = p.title.split(" ")[0]
                out.append(
                    {"asin": p.asin, "name": p.title, "eans": [p.ean], "upc": p.upc or "", "brand": brand}
                )
        return out

    # ---- purchase orders ----------------------------------------------------------------------------------
    def purchase_order_plan(self, k: int) -> PurchaseOrderPlan:
        with self._lock:
            plan = self._pos.get(k)
            if plan is None:
                plan = self._pos[k] = self._generate_po(k)
            return plan

    def _index_before(self, t: datetime) -> int:
        """An index past every PO placed at or before `t`."""
        return max(0, math.floor((t - self.start) / self.interval) + 2)

    def purchase_order_plans(self, now: datetime, since: datetime | None = None) -> list[PurchaseOrderPlan]:
        """Every PO placed in [since, now] (since defaults to the start), oldest first."""
        first = 0 if since is None else max(0, math.floor((since - self.start) / self.interval) - 1)
        plans = [self.purchase_order_plan(k) for k in range(first, self._index_before(now))]
        return [p for p in plans if p.created <= now and (since is None or p.created >= since)]

    def purchase_order_by_number(self, number: str, now: datetime) -> PurchaseOrderPlan | None:
        for plan in self.purchase_order_plans(now):
            if plan.number == number:
                return plan
        return None

    def _po_number(self, k: int, rng: random.Random) -> str:
        alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        # k times an odd multiplier not divisible by 3 is a bijection modulo 36**5: unique numbers.
        code = (k * 2654435761 + self.config.seed * 7919) % 36**5
        tail = ""
        for _ in range(5):
            code, r = divmod(code, 36)
            tail = alphabet[r] + tail
        return rng.choice("123456789") + rng.choice(alphabet[10:]) + rng.choice(alphabet) + tail

    def _generate_po(self, k: int) -> PurchaseOrderPlan:
        c = self.config
        rng = random.Random(f"vendor-{c.seed}-po-{k}")
        hours = lambda a, b: timedelta(hours=rng.uniform(a, b))  # noqa: E731
        created = _seconds(self.start + self.interval * (k + rng.random()))
        weight = [p for p in self.products if p.cost_unit]
        forced = weight[k] if k < len(weight) else None  # the first POs carry the weight-priced products
        vendor_code = forced.vendor_code if forced else rng.choice(c.vendor_codes)
        own = [p for p in self.products if p.vendor_code == vendor_code and p is not forced]
        n_items = min(rng.choice([1, 1, 2, 2, 3, 4]), len(own) + (1 if forced else 0))
        chosen = ([forced] if forced else []) + rng.sample(own, n_items - (1 if forced else 0))

        units = []  # (unit, unit_size, amount)
        for product in chosen:
            if rng.random() < 0.65:
                units.append((CASES, product.case_size, rng.randint(1, 20)))
            else:
                units.append((EACHES, 1, rng.choice([6, 10, 12, 20, 24, 30, 48, 50, 60, 100, 120, 150])))
        if k in self._unknown_unit_pos:
            product = chosen[-1]
            units[-1] = (UNKNOWN_UNIT, product.case_size * 10, rng.randint(1, 3))

        ack_delay = hours(3, 36)
        acknowledged = _seconds(created + ack_delay)
        after_change = [amount for _, _, amount in units]
        changed_at = None
        if rng.random() < 0.25:
            lowerable = [i for i, a in enumerate(after_change) if a > 1]
            if len(chosen) >= 2 and (rng.random() < 0.4 or not lowerable):
                after_change[rng.randrange(len(chosen))] = 0  # Amazon cancels the item
                changed_at = _seconds(created + hours(0.5, ack_delay.total_seconds() / 3600 - 0.5))
            elif lowerable:
                i = rng.choice(lowerable)
                after_change[i] = rng.randint(max(1, after_change[i] // 3), after_change[i] - 1)
                changed_at = _seconds(created + hours(0.5, ack_delay.total_seconds() / 3600 - 0.5))

        accepted = []
        for amount in after_change:
            r = rng.random()
            if amount == 0 or r >= 0.88:
                accepted.append(0)
            elif r < 0.7 or amount == 1:
                accepted.append(amount)
            else:
                accepted.append(rng.randint(1, amount - 1))

        fate = rng.random()
        fate = "open" if fate < 0.12 else "short" if fate < 0.22 else "complete"
        receipts: list[tuple[tuple[datetime, int], ...]] = []
        for (_, size, _), amount in zip(units, accepted, strict=True):
            if amount == 0:
                receipts.append(())
                continue
            total = amount
            if fate == "short":
                total = amount - max(1, round(amount * rng.uniform(0.05, 0.3)))
            n_parts = min(rng.choice([1, 1, 2, 2, 3]), max(total, 1))
            cuts = sorted(rng.sample(range(1, total), n_parts - 1)) if total > 1 and n_parts > 1 else []
            parts = [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]
            if fate == "open":
                parts = parts[:-1]  # the last delivery never arrives
            when = acknowledged + timedelta(days=rng.uniform(1.5, 6))
            cumulative, events = 0, []
            for part in parts:
                if part <= 0:
                    continue
                cumulative += part * size
                events.append((_seconds(when), cumulative))
                when += hours(4, 48)
            receipts.append(tuple(events))

        last_receipt = max((e[-1][0] for e in receipts if e), default=None)
        if not any(accepted):
            closed_at = _seconds(acknowledged + hours(1, 12))
        elif fate == "open":
            closed_at = None
        elif fate == "short":
            base = last_receipt or acknowledged + timedelta(days=5)
            closed_at = _seconds(base + hours(24, 72))
        else:
            assert last_receipt is not None
            closed_at = _seconds(last_receipt + hours(2, 20))

        window_start = (created + hours(48, 96)).replace(minute=0, second=0, microsecond=0)
        window = (window_start, window_start + timedelta(days=7))
        collect = rng.random() < 0.25  # Amazon collects: the PO gives a ship window instead
        ship_to = rng.choice(sorted(FULFILMENT_CENTRES))
        items = tuple(
            ItemPlan(
                sequence=str(i + 1),
                product=product,
                unit=unit,
                unit_size=size,
                original_amount=amount,
                amount_after_change=after_change[i],
                accepted_amount=accepted[i],
                receipts=receipts[i],
                back_order_allowed=rng.random() < 0.3,
            )
            for i, (product, (unit, size, amount)) in enumerate(zip(chosen, units, strict=True))
        )
        return PurchaseOrderPlan(
            index=k,
            number=self._po_number(k, rng),
            vendor_code=vendor_code,
            ship_to=ship_to,
            created=created,
            changed_at=changed_at,
            acknowledged_at=acknowledged,
            closed_at=closed_at,
            delivery_window=None if collect else window,
            ship_window=(window[0] - timedelta(days=1), window[1] - timedelta(days=1)) if collect else None,
            items=items,
        )

    # ---- daily figures ------------------------------------------------------------------------------------
    def _day_sales(self, product: VendorProduct, day: date) -> tuple[int, int, int]:
        """(ordered units, shipped units, customer returns) of one ASIN on one day."""
        i = self.products.index(product)
        rng = np.random.default_rng([self.config.seed, 17, i, day.toordinal()])
        mean = self._demand[product.asin][1] * (1.25 if day.weekday() >= 5 else 1.0)
        ordered = int(rng.poisson(mean))
        shipped = max(0, ordered - int(rng.integers(0, 3)))
        returns = int(rng.binomial(shipped, 0.03)) if shipped else 0
        return ordered, shipped, returns

    def _receipts_on(self, day: date) -> dict[str, int]:
        day_start = datetime.combine(day, time(), UTC)
        day_end = day_start + timedelta(days=1)
        received: dict[str, int] = {}
        for plan in self.purchase_order_plans(day_end, since=day_start - SETTLE):
            for item in plan.items:
                before = 0
                for when, cumulative in item.receipts:
                    if day_start <= when < day_end:
                        asin = item.product.asin
                        received[asin] = received.get(asin, 0) + cumulative - before
                    before = cumulative
        return received

    def _open_units_at(self, t: datetime) -> dict[str, int]:
        open_units: dict[str, int] = {}
        for plan in self.purchase_order_plans(t):
            if plan.acknowledged_at > t or (plan.closed_at is not None and plan.closed_at <= t):
                continue
            for item in plan.items:
                received, _ = item.received_at(t)
                due = item.accepted_amount * item.unit_size - received
                if due > 0:
                    open_units[item.product.asin] = open_units.get(item.product.asin, 0) + due
        return open_units

    def day_figures(self, day: date) -> dict[str, DayFigures]:
        """Every ASIN's figures for one whole day (at or after first_day), whenever that day is over."""
        if day < self.first_day:
            raise ValueError(f"{day} is before the vendor's first day {self.first_day}")
        with self._lock:
            if day in self._days:
                return self._days[day]
            previous = (
                self._stock_at_end(day - timedelta(days=1))
                if day > self.first_day
                else {asin: start for asin, (start, _) in self._demand.items()}
            )
            received = self._receipts_on(day)
            day_end = datetime.combine(day, time(), UTC) + timedelta(days=1)
            open_units = self._open_units_at(day_end - timedelta(seconds=1))
            out, stock = {}, {}
            for i, p in enumerate(self.products):
                ordered, shipped, returns = self._day_sales(p, day)
                got = received.get(p.asin, 0)
                sellable = previous[p.asin] + got + returns - ordered
                stock[p.asin] = sellable
                unsellable = int(
                    np.random.default_rng([self.config.seed, 19, i, day.toordinal()]).integers(0, 6)
                )
                cost = p.cost_per_each
                out[p.asin] = DayFigures(
                    asin=p.asin,
                    day=day,
                    available_at=self.day_available_at(day),
                    sellable_on_hand_units=sellable,
                    sellable_on_hand_cost=_money(cost * sellable),
                    unsellable_on_hand_units=unsellable,
                    unsellable_on_hand_cost=_money(cost * unsellable),
                    net_received_units=got,
                    net_received_cost=_money(cost * got),
                    open_purchase_order_units=open_units.get(p.asin, 0),
                    unfilled_customer_ordered_units=max(0, -sellable),
                    average_vendor_lead_time_days=p.lead_time_days,
                    ordered_units=ordered,
                    ordered_revenue=_money(p.price_per_each * ordered),
                    shipped_units=shipped,
                    shipped_revenue=_money(p.price_per_each * shipped),
                    shipped_cogs=_money(cost * shipped),
                    customer_returns=returns,
                )
            self._stock[day] = stock
            self._days[day] = out
            return out

    def _stock_at_end(self, day: date) -> dict[str, int]:
        with self._lock:
            if day not in self._stock:
                # Walk forward from the first missing day so the recursion stays shallow.
                d = self.first_day
                while d <= day:
                    if d not in self._stock:
                        self.day_figures(d)
                    d += timedelta(days=1)
            return self._stock[day]

    def complete_days(self, now: datetime) -> list[date]:
        """The whole days from first_day that have ended by `now`."""
        last = now.astimezone(UTC).date() - timedelta(days=1)  # a day is whole once the next one began
        days, d = [], self.first_day
        while d <= last:
            days.append(d)
            d += timedelta(days=1)
        return days

    def is_available(self, day: date, now: datetime) -> bool:
        """Whether reports at `now` have data for `day`."""
        return day >= self.first_day and self.day_available_at(day) <= now

    # ---- ground truth ------------------------------------------------------------------------------------
    def facts(self, now: datetime) -> VendorFacts:
        """Everything true at `now`: products, every PO placed by now as it stands, every whole day's figures."""
        days = []
        for day in self.complete_days(now):
            figures = self.day_figures(day)
            days.extend(figures[p.asin] for p in self.products)
        return VendorFacts(
            now=now,
            products=self.products,
            purchase_orders=tuple(plan.facts(now) for plan in self.purchase_order_plans(now)),
            days=tuple(days),
        )
