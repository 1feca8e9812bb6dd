"""The sandbox seller: a deterministic Amazon seller (catalog, listings, FBA stock, orders over time).

Everything is a function of the seed and the sandbox clock, so the same seller can also say what
Optiply should hold at any moment (`expected_products`, `expected_sell_orders`): the ground truth
that end-to-end tests compare the Optiply sandbox with. The rules behind the ground truth are the
integration's business rules, written out a second time on purpose, independently of the pipeline.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from amazon_optiply.marketplaces import MARKETPLACES, Marketplace, fba_pool

SLOT = timedelta(minutes=30)
JST = timedelta(hours=9)  # Japan's offset from UTC, no daylight saving
OPTIPLY_NAME_LIMIT = 255

# Order statuses as the flat-file orders reports spell them ("Cancelled", not the Orders API's "Canceled").
PENDING, UNSHIPPED, PARTIALLY_SHIPPED, SHIPPED, CANCELLED = (
    "Pending",
    "Unshipped",
    "Shipping",
    "Shipped",
    "Cancelled",
)
ELIGIBLE_ORDER_STATUSES = frozenset({UNSHIPPED, PARTIALLY_SHIPPED, SHIPPED})

_WORDS = {
    "brand": [
        "Müller",
        "Zwilling",
        "Émile Henry",
        "Größenwahn",
        "Señor Café",
        "O'Neill",
        "Nordic Home",
        "Bär & Co",
    ],
    "adj": ["Premium", "Öko", "Edelstahl", "robust", "Leichte", "Classic", "Pro", "Grün", "Crème", "Ultra"],
    "noun": [
        "Kaffeebecher",
        "Trinkflasche",
        "Schneidebrett",
        "Pfanne",
        "Teekanne",
        "Brotdose",
        "Messer",
        "Tasse",
    ],
    "extra": [
        "€-Sparpaket",
        "2er Pack",
        '"Best Seller" Edition',
        "12 × 30 cm",
        "für Küche ✓",
        "Ω-Serie",
        "™ Original",
    ],
}
_LONG_TAIL = (
    " – mit ergonomischem Griff, spülmaschinenfest, BPA-frei, lebensmittelecht, ideal für Büro, Schule,"
    " Camping und Reisen; Lieferumfang: 1 Stück, Anleitung auf Deutsch, Englisch, Französisch und Italienisch"
)
# A JP seller's titles: Japanese, with characters only Microsoft's cp932 (windows-31j) has, not Shift_JIS: NEC
# special characters (① ② ③ Ⅲ ㈱ №), IBM extension kanji (髙 﨑 德) and cp932's own mapping of ～.
_JP_WORDS = {
    "brand": ["髙橋キッチン", "﨑山製作所", "㈱匠工房", "德永陶器", "北欧ホーム", "Zwilling"],
    "adj": ["プレミアム", "ステンレス製", "軽量", "業務用", "Ⅲ型", "有田焼"],
    "noun": ["マグカップ", "水筒", "まな板", "フライパン", "急須", "弁当箱", "包丁", "湯呑み"],
    "extra": ["①②③ 3点セット", "№5 限定版", "【送料無料】", "30×20cm", "～ギフト包装～"],
}
CP932_ONLY = "①②③Ⅲ㈱№髙﨑德～"
_JP_LONG_TAIL = (
    "（食洗機対応・BPAフリー・電子レンジ可・オーブン可・直火可・IH対応・母の日・父の日・敬老の日・誕生日・"
    "結婚祝い・引っ越し祝い・新築祝いのギフトに最適、日本語の説明書付き、一年間のメーカー保証）"
)
_CITIES = {
    "DE": "Berlin",
    "FR": "Paris",
    "US": "Seattle",
    "GB": "London",
    "IT": "Milano",
    "ES": "Madrid",
    "JP": "東京",
}
_VAT = {"DE": 0.19, "FR": 0.20, "IT": 0.22, "ES": 0.21, "GB": 0.20, "NL": 0.21, "JP": 0.10}
# Fees drawn the same way in every marketplace, in the marketplace's own money.
_SHIPPING_FEES = {"JPY": [0.0, 0.0, 350.0, 500.0]}
_DEFAULT_SHIPPING_FEES = [0.0, 0.0, 3.99, 4.95]
_GIFT_WRAP_FEE = {"JPY": 300.0}


def money_decimals(currency: str) -> int:
    """Yen has no minor unit: Amazon JP's prices and amounts are whole yen."""
    return 0 if currency == "JPY" else 2


@dataclass(frozen=True)
class SellerConfig:
    seed: int = 7
    marketplaces: tuple[str, ...] = ("DE", "FR", "US")
    skus: int = 2000
    orders_per_day: float = 300.0
    # The moment the seller's world is anchored to; orders exist from `history_days` before it.
    origin: datetime = field(default_factory=lambda: _floor_slot(datetime.now(UTC)))
    history_days: int = 30
    stock_change_share: float = 0.01  # share of stock rows that change every 30 minutes
    price_change_share: float = 0.002  # share of listings whose price changes every 30 minutes
    seller_id: str = "A2SANDBOXSELLER"
    store_name: str = "Sandbox Küchenwelt"

    def __post_init__(self) -> None:
        unknown = [m for m in self.marketplaces if m not in MARKETPLACES]
        if unknown:
            raise ValueError(f"unknown marketplace code(s) {unknown}; known: {', '.join(MARKETPLACES)}")


def _floor_slot(t: datetime) -> datetime:
    return t.replace(minute=(t.minute // 30) * 30, second=0, microsecond=0)


def _ean13(body12: int) -> str:
    digits = f"{body12:012d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return digits + str((10 - total % 10) % 10)


def _asin(rng: random.Random) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return "B0" + "".join(rng.choice(alphabet) for _ in range(8))


def report_text(name: str, charset: str) -> str:
    """A text as it survives in a report of that charset: EU Cp1252 reports already carry '?' for the rest."""
    from amazon_optiply.marketplaces import python_codec

    return name.encode(python_codec(charset), errors="replace").decode(python_codec(charset))


@dataclass
class Order:
    order_id: str
    marketplace: str
    purchase_date: datetime
    fulfillment_channel: str
    # (time, status) in time order; the status at t is the last event at or before t.
    events: list[tuple[datetime, str]]
    lines: list[
        dict
    ]  # sku, asin, name, quantity, item_price, item_tax, shipping_price, ... (money as floats)

    def status_at(self, t: datetime) -> str | None:
        status = None
        for when, s in self.events:
            if when <= t:
                status = s
        return status

    def last_update_at(self, t: datetime) -> datetime | None:
        times = [when for when, _ in self.events if when <= t]
        return times[-1] if times else None

    @property
    def total_value(self) -> float:
        """What Optiply's totalValue should be: goods + shipping + gift wrap - promotions, taxes apart."""
        return round(
            sum(
                ln["item_price"]
                + ln["shipping_price"]
                + ln["gift_wrap_price"]
                - abs(ln["item_promotion_discount"])
                - abs(ln["ship_promotion_discount"])
                for ln in self.lines
            ),
            2,
        )


class SellerWorld:
    """The seller's Amazon data, evolving with the sandbox clock in 30-minute slots."""

    def __init__(self, config: SellerConfig) -> None:
        self.config = config
        self._lock = threading.RLock()
        self.catalog = self._generate_catalog()
        self.base_listings = {mp: self._generate_listings(mp, i) for i, mp in enumerate(config.marketplaces)}
        # Marketplaces of one FBA pool (Pan-European FBA) share one inventory: the same frame, the same units.
        self.pools: dict[str, list[str]] = {}
        for mp in config.marketplaces:
            self.pools.setdefault(fba_pool(mp), []).append(mp)
        pool_fba = {pool: self._generate_fba(members[0]) for pool, members in self.pools.items()}
        self.base_fba = {mp: pool_fba[fba_pool(mp)] for mp in config.marketplaces}
        self.listings = {mp: df.copy() for mp, df in self.base_listings.items()}
        current = {pool: fba.copy() for pool, fba in pool_fba.items()}
        self.fba = {mp: current[fba_pool(mp)] for mp in config.marketplaces}
        self._slot = -1  # the state above is the base state, before the first slot after origin
        self._orders: dict[tuple[str, int], Order] = {}

    # ---- generation -------------------------------------------------------------------------------------
    def _generate_catalog(self) -> pd.DataFrame:
        n = self.config.skus
        rng = random.Random(f"{self.config.seed}-catalog")
        rows = []
        asin = _asin(rng)
        for i in range(n):
            # About one SKU in twenty shares the ASIN of the SKU before it (an FBA and an MFN offer of one item).
            shares_asin = i > 0 and rng.random() < 0.05
            if not shares_asin:
                asin = _asin(rng)
            name = f"{rng.choice(_WORDS['brand'])} {rng.choice(_WORDS['adj'])} {rng.choice(_WORDS['noun'])}"
            if rng.random() < 0.3:
                name += f" {rng.choice(_WORDS['extra'])}"
            name += f" Nr. {i}"
            if rng.random() < 0.02:
                name += _LONG_TAIL * 2  # longer than Optiply's 255 characters
            kind = rng.random()
            eans: list[str] = []
            upc = ""
            if kind < 0.70:
                eans = [_ean13(400_000_000_000 + i * 7 + 3)]
            elif kind < 0.75:
                eans = [_ean13(400_000_000_000 + i * 7 + 3), _ean13(500_000_000_000 + i * 7 + 1)]
            elif kind < 0.85:
                upc = _ean13(40_000_000_000 + i)[1:]  # a 12-digit UPC-A
            if shares_asin:  # identifiers belong to the catalog item, so both offers carry the same ones
                eans, upc = rows[-1]["eans"], rows[-1]["upc"]
            rows.append(
                {
                    "sku": f"{rng.choice(['KW', 'kw', 'HX'])}-{i:06d}"
                    + ("-FBA" if rng.random() < 0.1 else ""),
                    "asin": asin,
                    "name": name,
                    "brand": name.split(" ")[0],
                    "eans": eans,
                    "upc": upc,
                    "base_price": round(rng.uniform(2, 400), 2),
                }
            )
        return pd.DataFrame(rows)

    def _generate_listings(self, mp: str, mp_index: int) -> pd.DataFrame:
        market = MARKETPLACES[mp]
        rng = np.random.default_rng([self.config.seed, mp_index, 1])
        n = len(self.catalog)
        # The first marketplace lists everything; the others a deterministic subset.
        listed = np.ones(n, dtype=bool) if mp_index == 0 else rng.random(n) < 0.7
        cat = self.catalog[listed].reset_index(drop=True)
        m = len(cat)
        factor = {"USD": 1.1, "GBP": 0.86, "JPY": 160.0, "SEK": 11.5, "PLN": 4.3}.get(market.currency, 1.0)
        price = np.round(cat["base_price"].to_numpy() * factor * rng.uniform(0.95, 1.05, m), 2)
        if market.currency == "JPY":
            price = np.round(price, 0)
        afn = rng.random(m) < 0.6
        status = np.where(rng.random(m) < 0.05, "Inactive", "Active")
        quantity = np.where(afn, -1, rng.integers(0, 200, m))  # -1: blank, as Amazon leaves it for FBA
        names = (
            pd.Series(self._japanese_names())[listed].reset_index(drop=True) if mp == "JP" else cat["name"]
        )
        days_listed = rng.integers(30, 3000, m)
        if mp == "JP":  # Amazon JP writes Japan time with slashes: 2024/03/01 10:00:00 JST
            open_dates = [
                (self.config.origin + JST - timedelta(days=int(d))).strftime("%Y/%m/%d %H:%M:%S JST")
                for d in days_listed
            ]
        else:
            open_dates = [
                (self.config.origin - timedelta(days=int(d))).strftime("%Y-%m-%d %H:%M:%S ")
                + ("PST" if market.region == "NA" else "MET")
                for d in days_listed
            ]
        return pd.DataFrame(
            {
                "sku": cat["sku"],
                "asin": cat["asin"],
                "name": names,
                "listing_id": [f"{mp_index}{i:09d}X" for i in range(m)],
                "price": price,
                "quantity": quantity,
                "fulfillment_channel": np.where(afn, f"AMAZON_{market.region}", "DEFAULT"),
                "status": status,
                "open_date": open_dates,
                "eans": cat["eans"],
                "upc": cat["upc"],
            }
        )

    def _japanese_names(self) -> list[str]:
        """The catalog's titles as the JP seller writes them, one per catalog row.

        Drawn from a generator of their own, so the other marketplaces' draws stay as they were.
        """
        rng = random.Random(f"{self.config.seed}-JP-names")
        names = []
        for i in range(len(self.catalog)):
            name = f"{rng.choice(_JP_WORDS['brand'])} {rng.choice(_JP_WORDS['adj'])}{rng.choice(_JP_WORDS['noun'])}"
            if rng.random() < 0.3:
                name += f" {rng.choice(_JP_WORDS['extra'])}"
            name += f" No.{i}"
            if rng.random() < 0.02:
                name += _JP_LONG_TAIL * 3  # longer than Optiply's 255 characters
            names.append(name)
        return names

    def _generate_fba(self, mp: str) -> pd.DataFrame:
        listings = self.base_listings[mp]
        afn = listings[listings["fulfillment_channel"] != "DEFAULT"].reset_index(drop=True)
        rng = np.random.default_rng([self.config.seed, list(self.config.marketplaces).index(mp), 2])
        m = len(afn)
        # Some SKUs come back as two rows (a second condition); the pipeline must sum them.
        split = rng.random(m) < 0.05
        frames = []
        for mask, condition in ((np.ones(m, dtype=bool), "NewItem"), (split, "UsedLikeNew")):
            sub = afn[mask].reset_index(drop=True)
            k = len(sub)
            frames.append(
                pd.DataFrame(
                    {
                        "sku": sub["sku"],
                        "fnsku": "",
                        "asin": sub["asin"],
                        "name": sub["name"],
                        "condition": condition,
                        # Some FBA SKUs sit at zero fulfillable: the seed's fallback to the listing quantity applies.
                        "fulfillable": np.where(rng.random(k) < 0.08, 0, rng.integers(0, 500, k)),
                        "inbound_working": rng.integers(0, 3, k) * (rng.random(k) < 0.2),
                        "inbound_shipped": rng.integers(0, 20, k) * (rng.random(k) < 0.1),
                        "inbound_receiving": np.zeros(k, dtype=int),
                        "reserved": rng.integers(0, 5, k),
                        "researching": np.zeros(k, dtype=int),
                        "unfulfillable": rng.integers(0, 3, k) * (rng.random(k) < 0.1),
                        "price": sub["price"],
                    }
                )
            )
        fba = pd.concat(frames, ignore_index=True)
        # A stable fnsku independent of Python's hash seed.
        fba["fnsku"] = [f"X00{i:07d}" for i in range(len(fba))]
        fba["last_updated"] = self.config.origin - timedelta(days=1)
        return fba

    # ---- time -----------------------------------------------------------------------------------------
    def slot_of(self, t: datetime) -> int:
        return math.floor((t - self.config.origin) / SLOT)

    def advance_to(self, t: datetime) -> None:
        """Apply the stock and price changes of every 30-minute slot up to `t` (time only moves forward)."""
        target = self.slot_of(t)
        with self._lock:
            while self._slot < target:
                self._slot += 1
                if self._slot >= 0:
                    self._apply_slot(self._slot)

    def _apply_slot(self, slot: int) -> None:
        for i, mp in enumerate(self.config.marketplaces):
            rng = np.random.default_rng([self.config.seed, i, 3, slot])
            fba = self.fba[mp]
            k = round(len(fba) * self.config.stock_change_share)
            if k and self.pools[fba_pool(mp)][0] == mp:  # a shared pool changes once per slot
                rows = rng.choice(len(fba), size=k, replace=False)
                fba.loc[rows, "fulfillable"] = rng.integers(0, 500, k)
                fba.loc[rows, "last_updated"] = self.config.origin + slot * SLOT
            listings = self.listings[mp]
            mfn = np.flatnonzero(listings["fulfillment_channel"].to_numpy() == "DEFAULT")
            k = round(len(mfn) * self.config.stock_change_share)
            if k:
                rows = rng.choice(mfn, size=k, replace=False)
                listings.loc[rows, "quantity"] = rng.integers(0, 200, k)
            k = round(len(listings) * self.config.price_change_share)
            if k:
                rows = rng.choice(len(listings), size=k, replace=False)
                decimals = money_decimals(MARKETPLACES[mp].currency)
                listings.loc[rows, "price"] = np.round(
                    listings.loc[rows, "price"].to_numpy() * 1.05, decimals
                )
        from amazon_optiply.sandbox.seller_api_streams import apply_slot

        apply_slot(self, slot)  # inbound shipments move their FBA rows' inbound and received units

    # ---- orders ---------------------------------------------------------------------------------------
    @property
    def _order_interval(self) -> timedelta:
        return timedelta(days=1) / self.config.orders_per_day

    @property
    def _orders_start(self) -> datetime:
        return self.config.origin - timedelta(days=self.config.history_days)

    def order(self, mp: str, k: int) -> Order:
        key = (mp, k)
        with self._lock:
            cached = self._orders.get(key)
        if cached is not None:
            return cached
        order = self._generate_order(mp, k)
        with self._lock:
            self._orders[key] = order
        return order

    def _generate_order(self, mp: str, k: int) -> Order:
        mp_index = list(self.config.marketplaces).index(mp)
        rng = random.Random(f"{self.config.seed}-{mp}-order-{k}")
        placed = self._orders_start + self._order_interval * (k + rng.random())
        placed = placed.replace(microsecond=0)
        events: list[tuple[datetime, str]] = [(placed, PENDING)]
        listings = self.base_listings[mp]
        active = listings[listings["status"] == "Active"]
        n_lines = 1 if rng.random() < 0.7 else rng.randint(2, 4)
        picked = active.iloc[rng.sample(range(len(active)), n_lines)]
        afn = bool(rng.random() < 0.6)
        if rng.random() < 0.08:
            events.append((placed + timedelta(minutes=rng.randint(10, 360)), CANCELLED))
        else:
            unshipped = placed + timedelta(minutes=rng.randint(5, 120))
            events.append((unshipped, UNSHIPPED))
            shipped = unshipped + timedelta(minutes=rng.randint(120, 36 * 60))
            if n_lines > 1 and rng.random() < 0.3:
                events.append((unshipped + (shipped - unshipped) / 2, PARTIALLY_SHIPPED))
            events.append((shipped, SHIPPED))
        vat = _VAT.get(mp)
        currency = MARKETPLACES[mp].currency
        decimals = money_decimals(currency)
        lines = []
        for _, listing in picked.iterrows():
            qty = 1 if rng.random() < 0.75 else rng.randint(2, 5)
            unit = float(listing["price"])
            item_price = round(unit * qty, decimals)
            shipping = round(rng.choice(_SHIPPING_FEES.get(currency, _DEFAULT_SHIPPING_FEES)), decimals)
            gift = _GIFT_WRAP_FEE.get(currency, 2.5) if rng.random() < 0.03 else 0.0
            promo = round(item_price * 0.1, decimals) if rng.random() < 0.1 else 0.0
            ship_promo = shipping if shipping and rng.random() < 0.2 else 0.0
            tax = (
                round(item_price * vat / (1 + vat), decimals) if vat else round(item_price * 0.0825, decimals)
            )
            lines.append(
                {
                    "sku": listing["sku"],
                    "asin": listing["asin"],
                    "name": listing["name"],
                    "quantity": qty,
                    "item_price": item_price,
                    "item_tax": tax,
                    "shipping_price": shipping,
                    "shipping_tax": round(shipping * (vat or 0.0825), decimals),
                    "gift_wrap_price": gift,
                    "gift_wrap_tax": 0.0,
                    "item_promotion_discount": promo,
                    "ship_promotion_discount": ship_promo,
                    "promotion_ids": "PROMO-10" if promo else "",
                }
            )
        order_id = f"{302 + mp_index:03d}-{k:07d}-{rng.randint(0, 9_999_999):07d}"
        return Order(order_id, mp, placed, "Amazon" if afn else "Merchant", events, lines)

    def _order_index_range(self, mp: str, first_purchase: datetime, last_purchase: datetime) -> range:
        lo = math.floor((first_purchase - self._orders_start) / self._order_interval) - 1
        hi = math.ceil((last_purchase - self._orders_start) / self._order_interval) + 1
        return range(max(lo, 0), max(hi, 0))

    # Orders settle within two days: no event comes later than this after purchase.
    ORDER_LIFETIME = timedelta(hours=40)

    def orders_updated_between(self, mp: str, start: datetime, end: datetime) -> list[Order]:
        """Orders whose last update as of `end` falls in [start, end]: what a BY_LAST_UPDATE report holds."""
        out = []
        for k in self._order_index_range(mp, start - self.ORDER_LIFETIME, end):
            order = self.order(mp, k)
            last = order.last_update_at(end)
            if last is not None and start <= last <= end:
                out.append(order)
        return out

    def orders_placed_between(self, mp: str, start: datetime, end: datetime) -> list[Order]:
        out = []
        for k in self._order_index_range(mp, start, end):
            order = self.order(mp, k)
            if start <= order.purchase_date <= end:
                out.append(order)
        return out

    # ---- ground truth ---------------------------------------------------------------------------------
    def expected_products(
        self,
        mp: str,
        remote_id_suffix: str | None = None,
        stock_source: str = "fba",
        counts_pooled_fba: bool = True,
        count_inbound: bool = False,
        count_awd: bool = True,
    ) -> pd.DataFrame:
        """The Optiply products one marketplace should produce now (full flavour).

        One product per active listing. remoteId is the seller SKU (plus `_<marketplaceId>` outside the
        main marketplace). name: the report's item-name truncated to 255; eanCode: the first EAN of the
        ASIN in that marketplace; stockLevel: FBA totalQuantity summed over the SKU's rows, less its inbound
        units unless `count_inbound`, falling back to the listing quantity when that is 0 (stock_source
        "fba"), or the listing quantity only ("listing"); in the US plus the SKU's AWD units (available,
        reserved and on their way to FBA) when `count_awd` and the source is "fba".
        A marketplace that does not carry its Pan-EU pool (`counts_pooled_fba` False) gets no FBA units.
        """
        market: Marketplace = MARKETPLACES[mp]
        with self._lock:
            listings = self.listings[mp].copy()
            fba = self.fba[mp].copy()
        fba["total"] = fba[
            [
                "fulfillable",
                "inbound_working",
                "inbound_shipped",
                "inbound_receiving",
                "reserved",
                "researching",
                "unfulfillable",
            ]
        ].sum(axis=1)
        if not count_inbound:
            fba["total"] -= fba[["inbound_working", "inbound_shipped", "inbound_receiving"]].sum(axis=1)
        fba_total = fba.groupby("sku")["total"].sum()
        active = listings[listings["status"] == "Active"].copy()
        quantity = active["quantity"].clip(lower=0)
        stock = active["sku"].map(fba_total).fillna(0).astype(int)
        if stock_source == "listing" or not counts_pooled_fba:
            stock = stock * 0
        active["stockLevel"] = np.where(stock > 0, stock, quantity)
        if count_awd and stock_source == "fba" and mp == "US":
            from amazon_optiply.sandbox.seller_api_streams import streams_of

            awd = {s.sku: s.available + s.reserved + s.replenishment for s in streams_of(self).awd.values()}
            active["stockLevel"] += active["sku"].map(awd).fillna(0).astype(int)
        active["name"] = active["name"].map(lambda s: report_text(s, market.charset)[:OPTIPLY_NAME_LIMIT])
        active["eanCode"] = active["eans"].map(lambda e: e[0] if e else None)
        suffix = "" if remote_id_suffix is None else f"_{remote_id_suffix}"
        return pd.DataFrame(
            {
                "remoteId": active["sku"] + suffix,
                "name": active["name"],
                "skuCode": active["sku"],
                "eanCode": active["eanCode"],
                "price": active["price"].round(2),
                "stockLevel": active["stockLevel"].astype(int),
            }
        ).reset_index(drop=True)

    def expected_sell_orders(self, mp: str, since: datetime, at: datetime) -> list[Order]:
        """Orders Optiply should hold: placed since `since`, and eligible (no longer Pending, not Cancelled) at `at`."""
        return [
            o for o in self.orders_placed_between(mp, since, at) if o.status_at(at) in ELIGIBLE_ORDER_STATUSES
        ]
