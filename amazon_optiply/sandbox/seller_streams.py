"""The seller's other report streams in the sandbox: AFN inventory by country, sales and traffic, the FBA
inventory ledger (summary and detail) and FBA customer shipment sales, with their ground truth.

Every figure is a function of the seller world (its orders, its FBA pool) and the moment of reading, so
tests compare what the platform stored with the functions here (`afn_units_by_country`,
`sales_and_traffic_truth`, `ledger_summary_truth`, `ledger_events_truth`, `customer_shipments_truth`,
`expected_products_by_country`), never with the wire. The wire is rendered from the same truth.

Amazon's traps emulated here (sp-api-more-streams.md):
- AFN inventory by country answers only for European marketplaces (FATAL otherwise), rows carry their
  country, the United Kingdom is written `UK`, not `GB`; a second request within 30 minutes ends FATAL.
- Sales and traffic: byAsin has no date and sums the whole window; a window off midnight is widened to
  whole days (so a 24-hour window from noon covers two days); a day's figures are revised for 72 hours
  after it ends (cancellations come off, sessions and page views arrive late), then final; a start more
  than 730 days back ends CANCELLED.
- Ledger: the summary view DAILY is empty (header only) unless dataStartTime and dataEndTime are in the
  body, a window that includes today is empty, a window not on whole days is empty; aggregatedByTimePeriod
  defaults to MONTHLY (Date `MM/YYYY`); dates are US style `MM/DD/YYYY`; 18 months of history.
- Customer shipment sales: a shipment appears 1 to 3 hours after it shipped.

Sandbox limits and GUESSES: the ledger's balances are a deterministic level per day, with Other Events
reconciling them with the day's events; aggregateByLocation FC and aggregatedByTimePeriod WEEKLY are
refused with 400; Pan-European units sit in the seller's pool marketplaces and, for some SKUs, in Poland
(the CEE programme), and their split is a function of the SKU and its fulfillable units.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pandas as pd

from amazon_optiply.marketplaces import MARKETPLACES, MARKETPLACES_BY_ID, fba_pool
from amazon_optiply.sandbox.report_documents import encode_document
from amazon_optiply.sandbox.seller import CANCELLED, PARTIALLY_SHIPPED, SHIPPED, SellerWorld, money_decimals

if TYPE_CHECKING:
    from amazon_optiply.sandbox.amazon import AmazonApp, AmazonBackend, Report
    from amazon_optiply.sandbox.http import Response

AFN_BY_COUNTRY = "GET_AFN_INVENTORY_DATA_BY_COUNTRY"
SALES_AND_TRAFFIC = "GET_SALES_AND_TRAFFIC_REPORT"
LEDGER_SUMMARY = "GET_LEDGER_SUMMARY_VIEW_DATA"
LEDGER_DETAIL = "GET_LEDGER_DETAIL_VIEW_DATA"
CUSTOMER_SHIPMENT_SALES = "GET_FBA_FULFILLMENT_CUSTOMER_SHIPMENT_SALES_DATA"
STREAM_REPORT_TYPES = (
    AFN_BY_COUNTRY,
    SALES_AND_TRAFFIC,
    LEDGER_SUMMARY,
    LEDGER_DETAIL,
    CUSTOMER_SHIPMENT_SALES,
)

# The marketplaces whose sellers get AFN inventory by country: Amazon's European ones.
AFN_BY_COUNTRY_MARKETPLACES = frozenset({"GB", "DE", "FR", "IT", "ES", "NL", "SE", "PL", "BE", "IE"})
# How the report writes a marketplace's country: the United Kingdom is UK there, GB everywhere else.
AFN_COUNTRY_CODE = {"GB": "UK"}
# Pan-European units of some SKUs sit in Poland (Amazon's CEE programme), where the seller need not sell.
EXTRA_POOL_COUNTRY = {"EU": "PL"}
S_AND_T_HISTORY = timedelta(days=730)
S_AND_T_REVISED_FOR = timedelta(hours=72)
LEDGER_HISTORY_MONTHS = 18
SHIPMENT_LAG_MINUTES = (60, 180)

AFN_COLUMNS = [
    "seller-sku",
    "fulfillment-channel-sku",
    "asin",
    "condition-type",
    "country",
    "quantity-for-local-fulfillment",
]
LEDGER_SUMMARY_COLUMNS = [
    "Date",
    "FNSKU",
    "ASIN",
    "MSKU",
    "Title",
    "Disposition",
    "Starting Warehouse Balance",
    "In Transit Between Warehouses",
    "Receipts",
    "Customer Shipments",
    "Customer Returns",
    "Vendor Returns",
    "Warehouse Transfer In/Out",
    "Found",
    "Lost",
    "Damaged",
    "Disposed",
    "Other Events",
    "Ending Warehouse Balance",
    "Unknown Events",
    "Location",
]
LEDGER_DETAIL_COLUMNS = [
    "Date",
    "FNSKU",
    "ASIN",
    "MSKU",
    "Title",
    "Event Type",
    "Reference ID",
    "Quantity",
    "Fulfillment Center",
    "Disposition",
    "Reason",
    "Country",
    "Reconciled Quantity",
    "Unreconciled Quantity",
    "Date and Time",
]
CUSTOMER_SHIPMENT_COLUMNS = [
    "shipment-date",
    "sku",
    "fnsku",
    "asin",
    "fulfillment-center-id",
    "quantity",
    "amazon-order-id",
    "currency",
    "item-price-per-unit",
    "shipping-price",
    "gift-wrap-price",
    "ship-city",
    "ship-state",
    "ship-postal-code",
]
# The summary's event columns, in the frame's names; Other Events reconciles them with the balances.
LEDGER_EVENT_FIELDS = ("receipts", "customer_shipments", "customer_returns", "found", "lost", "damaged")
_FULFILMENT_CENTERS = {
    "DE": ("LEJ1", "DTM2", "FRA7"),
    "FR": ("ORY1", "LIL1", "MRS1"),
    "PL": ("POZ1", "WRO2"),
    "US": ("PHX3", "SEA8", "BFI4"),
    "GB": ("LTN1", "BHX4"),
}
_BUYER_PLACES = {
    "DE": ("Hamburg", "Hamburg", "20095"),
    "FR": ("Lyon", "Rhône", "69001"),
    "US": ("Portland", "OR", "97201"),
    "GB": ("Leeds", "West Yorkshire", "LS1 4AP"),
}


def _h(*parts: object) -> int:
    """A stable hash of the parts (Python's own hash changes per process)."""
    return int.from_bytes(hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest(), "big")


def _money(x: float, currency: str) -> Decimal:
    return Decimal(f"{x:.{money_decimals(currency)}f}")


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def months_back(day: date, months: int) -> date:
    """The same day `months` months earlier (the month's last day when it is shorter)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    for d in (day.day, 30, 29, 28):
        try:
            return date(year, month, d)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _pool_members(world: SellerWorld, mp: str) -> list[str]:
    return world.pools[fba_pool(mp)]


def _pool_countries(world: SellerWorld, mp: str) -> list[str]:
    """Where the units of a marketplace's FBA pool sit: its marketplaces' countries (and Poland for the EU pool)."""
    members = world.pools[fba_pool(mp)]
    extra = EXTRA_POOL_COUNTRY.get(fba_pool(mp))
    return [*members, *([extra] if extra and extra not in members else [])]


# ---- AFN inventory by country ---------------------------------------------------------------------------


def afn_units_by_country(world: SellerWorld) -> pd.DataFrame:
    """The seller's fulfillable FBA units per row and country, now: what AFN inventory by country reports.

    Each pool row's fulfillable units are split over the pool's countries: some SKUs all in one country,
    others shared, some with units in Poland too; a GB pool's units are all in GB. Countries are marketplace
    codes here (GB, not the report's UK). Rows with no unit in a country are absent.
    """
    seed = world.config.seed
    rows = []
    with world._lock:
        pools = {pool: world.fba[members[0]].copy() for pool, members in world.pools.items()}
    for pool, fba in pools.items():
        countries = _pool_countries(world, world.pools[pool][0])
        if not set(world.pools[pool]) & AFN_BY_COUNTRY_MARKETPLACES:
            continue
        for r in fba.itertuples(index=False):
            units = _split(int(r.fulfillable), countries, _h(seed, "afn", r.sku, r.condition))
            for country, quantity in units.items():
                if quantity > 0:
                    rows.append((r.sku, r.fnsku, r.asin, r.condition, country, quantity))
    return pd.DataFrame(rows, columns=["sku", "fnsku", "asin", "condition", "country", "quantity"])


def _split(units: int, countries: list[str], h: int) -> dict[str, int]:
    """Units over countries, deterministically: a quarter of SKUs in the first country only, a tenth in the
    second only, the rest shared by share drawn from the hash; the extra country gets some of one in five."""
    if len(countries) == 1:
        return {countries[0]: units}
    members, extra = countries, None
    if countries[-1] in EXTRA_POOL_COUNTRY.values() and len(countries) > 2:
        members, extra = countries[:-1], countries[-1]
    out = dict.fromkeys(countries, 0)
    rest = units
    if extra is not None and h % 5 == 0:
        out[extra] = units * (10 + h % 30) // 100
        rest -= out[extra]
    kind = (h >> 8) % 20
    if kind < 5 or len(members) == 1:
        out[members[0]] += rest
    elif kind < 7:
        out[members[1]] += rest
    else:
        first = rest * (20 + (h >> 16) % 61) // 100
        out[members[0]] += first
        out[members[1]] += rest - first
    return out


def render_afn_by_country(world: SellerWorld) -> tuple[str, int]:
    units = afn_units_by_country(world)
    rows = [
        [r.sku, r.fnsku, r.asin, r.condition, AFN_COUNTRY_CODE.get(r.country, r.country), str(r.quantity)]
        for r in units.itertuples(index=False)
    ]
    return _tsv(AFN_COLUMNS, rows), len(rows)


def expected_products_by_country(
    world: SellerWorld,
    mp: str,
    remote_id_suffix: str | None,
    home: str,
    synced: list[str],
    count_inbound: bool = False,
) -> pd.DataFrame:
    """The products of one marketplace under the `by_country` Pan-EU rule, with AFN by country answering.

    A product's FBA units are those available for local fulfilment in its marketplace's country; the pool's
    home marketplace also carries what the pool holds beyond the local units of the synced marketplaces
    (reserved, inbound, unfulfillable units and those in countries no synced marketplace sells in), so the
    pool is counted once in all. A SKU absent from the report keeps today's rule; FBA units of 0 fall back
    to the listing quantity as always.
    """
    today = world.expected_products(
        mp, remote_id_suffix, counts_pooled_fba=mp == home, count_inbound=count_inbound
    )
    listing_only = world.expected_products(
        mp, remote_id_suffix, counts_pooled_fba=False, count_inbound=count_inbound
    )
    # Inbound units are in the pool's total only when AMAZON_COUNT_INBOUND counts them (off by default).
    inbound = ["inbound_working", "inbound_shipped", "inbound_receiving"] if count_inbound else []
    units = afn_units_by_country(world)
    pool = fba_pool(mp)
    members = [m for m in synced if fba_pool(m) == pool]
    local = units[units["country"] == mp].groupby("sku")["quantity"].sum()
    members_local = units[units["country"].isin(members)].groupby("sku")["quantity"].sum()
    with world._lock:
        fba = world.fba[mp].copy()
    total = (
        fba.assign(
            total=fba[["fulfillable", *inbound, "reserved", "researching", "unfulfillable"]].sum(axis=1)
        )
        .groupby("sku")["total"]
        .sum()
    )
    out = today.copy()
    in_report = set(units["sku"])
    for i, sku in enumerate(out["skuCode"]):
        if sku not in in_report:
            continue  # not in the report: today's rule
        carried = int(local.get(sku, 0))
        if mp == home:
            carried += max(int(total.get(sku, 0)) - int(members_local.get(sku, 0)), 0)
        out.loc[i, "stockLevel"] = carried if carried > 0 else int(listing_only.loc[i, "stockLevel"])
    return out


# ---- FBA shipments (customer shipment sales, the ledger's Customer Shipments) -----------------------------


def fba_shipments(world: SellerWorld, mp: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Every FBA order line of a marketplace shipped in [start, end], with where it shipped from and when
    it shows in Amazon's reports (`visible_at`, 1 to 3 hours later). Lines of a partly shipped order ship at
    the partial shipment (the first line) and at the final one (the rest)."""
    seed = world.config.seed
    currency = MARKETPLACES[mp].currency
    with world._lock:
        fba = world.fba[mp]
        fnsku = fba[fba["condition"] == "NewItem"].set_index("sku")["fnsku"].to_dict()
    countries = _pool_countries(world, mp)
    rows = []
    for order in world.orders_placed_between(mp, start - world.ORDER_LIFETIME, end):
        if order.fulfillment_channel != "Amazon":
            continue
        times = {status: when for when, status in order.events}
        if SHIPPED not in times or CANCELLED in times:
            continue
        for i, line in enumerate(order.lines):
            if line["sku"] not in fnsku:
                continue  # not an FBA SKU: Amazon ships none of it
            shipped = times[PARTIALLY_SHIPPED] if i == 0 and PARTIALLY_SHIPPED in times else times[SHIPPED]
            if not start <= shipped <= end:
                continue
            h = _h(seed, "ship", order.order_id, i)
            country = countries[h % len(countries)]
            centers = _FULFILMENT_CENTERS.get(country, (f"{country}01",))
            lag = SHIPMENT_LAG_MINUTES[0] + (h >> 8) % (SHIPMENT_LAG_MINUTES[1] - SHIPMENT_LAG_MINUTES[0] + 1)
            quantity = int(line["quantity"])
            price = _money(line["item_price"], currency)
            rows.append(
                {
                    "shipment_date": shipped,
                    "sku": line["sku"],
                    "fnsku": fnsku[line["sku"]],
                    "asin": line["asin"],
                    "fulfillment_center_id": centers[(h >> 16) % len(centers)],
                    "country": country,
                    "quantity": quantity,
                    "amazon_order_id": order.order_id,
                    "currency": currency,
                    "item_price_per_unit": (price / quantity).quantize(
                        Decimal(1).scaleb(-money_decimals(currency))
                    ),
                    "shipping_price": _money(line["shipping_price"], currency),
                    "gift_wrap_price": _money(line["gift_wrap_price"], currency),
                    "visible_at": shipped + timedelta(minutes=lag),
                }
            )
    columns = [
        "shipment_date",
        "sku",
        "fnsku",
        "asin",
        "fulfillment_center_id",
        "country",
        "quantity",
        "amazon_order_id",
        "currency",
        "item_price_per_unit",
        "shipping_price",
        "gift_wrap_price",
        "visible_at",
    ]
    return pd.DataFrame(rows, columns=columns)


def customer_shipments_truth(world: SellerWorld, mp: str, start: datetime, end: datetime, as_of: datetime):
    """GET_FBA_FULFILLMENT_CUSTOMER_SHIPMENT_SALES_DATA's rows for the window, read at `as_of`."""
    shipped = fba_shipments(world, mp, start, end)
    visible = shipped[shipped["visible_at"] <= as_of]
    return visible.drop(columns=["visible_at", "country"]).reset_index(drop=True)


def render_customer_shipments(world: SellerWorld, mp: str, start: datetime, end: datetime, as_of: datetime):
    rows = []
    city, state, postal = _BUYER_PLACES.get(mp, ("Springfield", "", "00000"))
    for r in customer_shipments_truth(world, mp, start, end, as_of).itertuples(index=False):
        rows.append(
            [
                r.shipment_date.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
                r.sku,
                r.fnsku,
                r.asin,
                r.fulfillment_center_id,
                str(r.quantity),
                r.amazon_order_id,
                r.currency,
                str(r.item_price_per_unit),
                str(r.shipping_price),
                str(r.gift_wrap_price),
                city,
                state,
                postal,
            ]
        )
    return _tsv(CUSTOMER_SHIPMENT_COLUMNS, rows), len(rows)


# ---- sales and traffic ------------------------------------------------------------------------------------


def sales_and_traffic_truth(world: SellerWorld, mp: str, day: date, as_of: datetime) -> pd.DataFrame:
    """Sales and traffic per SKU of one day, as Amazon reports it at `as_of`.

    Ordered units, sales and order items: the lines of the orders placed that day not cancelled by `as_of`.
    Sessions and page views: a level per SKU and day, of which only part has arrived until 72 hours after the
    day. From then on the figures are final. SKUs without a sale get a row when they had sessions.
    """
    seed = world.config.seed
    currency = MARKETPLACES[mp].currency
    start = _midnight(day)
    end = start + timedelta(days=1) - timedelta(seconds=1)
    age = as_of - (start + timedelta(days=1))
    share = 1.0 if age >= S_AND_T_REVISED_FOR else 0.5 + 0.5 * max(age, timedelta(0)) / S_AND_T_REVISED_FOR
    sales: dict[str, dict] = {}
    for order in world.orders_placed_between(mp, start, end):
        if order.status_at(as_of) == CANCELLED:
            continue
        for line in order.lines:
            s = sales.setdefault(line["sku"], {"asin": line["asin"], "units": 0, "sales": 0.0, "items": 0})
            s["units"] += int(line["quantity"])
            s["sales"] += line["item_price"]
            s["items"] += 1
    with world._lock:
        listings = world.listings[mp][["sku", "asin", "status"]].copy()
    rows = []
    for r in listings.itertuples(index=False):
        h = _h(seed, "traffic", mp, r.sku, day)
        sold = sales.get(r.sku)
        if sold is None and (r.status != "Active" or h % 4):
            continue
        units = sold["units"] if sold else 0
        items = sold["items"] if sold else 0
        final_sessions = max(items, 1) * (3 + h % 9) + (h >> 8) % 7
        sessions = max(int(final_sessions * share), items)
        page_views = sessions + int(((h >> 16) % 12) * share)
        browser_sessions = sessions * (50 + (h >> 24) % 30) // 100
        browser_page_views = page_views * (45 + (h >> 32) % 30) // 100
        rows.append(
            {
                "date": day,
                "parent_asin": r.asin,
                "child_asin": r.asin,
                "sku": r.sku,
                "units_ordered": units,
                "units_ordered_b2b": 0,
                "ordered_product_sales": _money(sold["sales"], currency) if sold else _money(0, currency),
                "ordered_product_sales_b2b": _money(0, currency),
                "currency": currency,
                "total_order_items": items,
                "total_order_items_b2b": 0,
                "browser_sessions": browser_sessions,
                "mobile_app_sessions": sessions - browser_sessions,
                "sessions": sessions,
                "browser_page_views": browser_page_views,
                "mobile_app_page_views": page_views - browser_page_views,
                "page_views": page_views,
                "buy_box_percentage": float(80 + (h >> 40) % 21),
                "unit_session_percentage": round(100 * units / sessions, 2),
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    total_sessions, total_views = frame["sessions"].sum(), frame["page_views"].sum()
    frame["session_percentage"] = (100 * frame["sessions"] / total_sessions).round(2)
    frame["page_views_percentage"] = (100 * frame["page_views"] / total_views).round(2)
    return frame


def _amount(value: Decimal, currency: str) -> dict:
    return {"amount": float(value), "currencyCode": currency}


def render_sales_and_traffic(
    world: SellerWorld, mp: str, start: datetime, end: datetime, options: dict, as_of: datetime
) -> str:
    """The report as Amazon writes it: byDate per day, byAsin summed over the whole window, which Amazon
    widens to whole days (so an off-midnight window covers one day more than asked)."""
    currency = MARKETPLACES[mp].currency
    first, last = start.date(), end.date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    frames = [f for f in (sales_and_traffic_truth(world, mp, d, as_of) for d in days) if not f.empty]
    by_date = []
    for d in days:
        f = next((x for x in frames if x["date"].iloc[0] == d), None)
        units = int(f["units_ordered"].sum()) if f is not None else 0
        sales = sum(f["ordered_product_sales"], Decimal(0)) if f is not None else Decimal(0)
        items = int(f["total_order_items"].sum()) if f is not None else 0
        sessions = int(f["sessions"].sum()) if f is not None else 0
        views = int(f["page_views"].sum()) if f is not None else 0
        by_date.append(
            {
                "date": d.isoformat(),
                "salesByDate": {
                    "orderedProductSales": _amount(sales, currency),
                    "unitsOrdered": units,
                    "totalOrderItems": items,
                    "averageSalesPerOrderItem": _amount(
                        (sales / items).quantize(Decimal("0.01")) if items else Decimal(0), currency
                    ),
                    "averageUnitsPerOrderItem": round(units / items, 2) if items else 0.0,
                    "averageSellingPrice": _amount(
                        (sales / units).quantize(Decimal("0.01")) if units else Decimal(0), currency
                    ),
                    "unitsRefunded": 0,
                    "refundRate": 0.0,
                    "claimsGranted": 0,
                    "claimsAmount": _amount(Decimal(0), currency),
                    "shippedProductSales": _amount(Decimal(0), currency),
                    "unitsShipped": 0,
                    "ordersShipped": 0,
                },
                "trafficByDate": {
                    "browserPageViews": int(f["browser_page_views"].sum()) if f is not None else 0,
                    "mobileAppPageViews": int(f["mobile_app_page_views"].sum()) if f is not None else 0,
                    "pageViews": views,
                    "browserSessions": int(f["browser_sessions"].sum()) if f is not None else 0,
                    "mobileAppSessions": int(f["mobile_app_sessions"].sum()) if f is not None else 0,
                    "sessions": sessions,
                    "buyBoxPercentage": 90.0,
                    "orderItemSessionPercentage": round(100 * items / sessions, 2) if sessions else 0.0,
                    "unitSessionPercentage": round(100 * units / sessions, 2) if sessions else 0.0,
                    "averageOfferCount": 1,
                    "averageParentItems": len(f) if f is not None else 0,
                    "feedbackReceived": 0,
                    "negativeFeedbackReceived": 0,
                    "receivedNegativeFeedbackRate": 0.0,
                },
            }
        )
    by_asin = []
    if frames:
        window = pd.concat(frames, ignore_index=True)
        summed = window.groupby(["parent_asin", "child_asin", "sku"], sort=True).agg(
            units=("units_ordered", "sum"),
            sales=("ordered_product_sales", lambda s: sum(s, Decimal(0))),
            items=("total_order_items", "sum"),
            browser_sessions=("browser_sessions", "sum"),
            mobile_sessions=("mobile_app_sessions", "sum"),
            sessions=("sessions", "sum"),
            browser_views=("browser_page_views", "sum"),
            mobile_views=("mobile_app_page_views", "sum"),
            views=("page_views", "sum"),
            buy_box=("buy_box_percentage", "mean"),
        )
        total_sessions, total_views = summed["sessions"].sum(), summed["views"].sum()
        granularity = options.get("asinGranularity", "PARENT")
        for (parent, child, sku), r in summed.iterrows():
            item = {"parentAsin": parent}
            if granularity in ("CHILD", "SKU"):
                item["childAsin"] = child
            if granularity == "SKU":
                item["sku"] = sku
            item["salesByAsin"] = {
                "unitsOrdered": int(r["units"]),
                "unitsOrderedB2B": 0,
                "orderedProductSales": _amount(r["sales"], currency),
                "orderedProductSalesB2B": _amount(Decimal(0), currency),
                "totalOrderItems": int(r["items"]),
                "totalOrderItemsB2B": 0,
            }
            item["trafficByAsin"] = {
                "browserSessions": int(r["browser_sessions"]),
                "mobileAppSessions": int(r["mobile_sessions"]),
                "sessions": int(r["sessions"]),
                "browserSessionPercentage": round(100 * r["browser_sessions"] / total_sessions, 2),
                "mobileAppSessionPercentage": round(100 * r["mobile_sessions"] / total_sessions, 2),
                "sessionPercentage": round(100 * r["sessions"] / total_sessions, 2),
                "browserPageViews": int(r["browser_views"]),
                "mobileAppPageViews": int(r["mobile_views"]),
                "pageViews": int(r["views"]),
                "browserPageViewsPercentage": round(100 * r["browser_views"] / total_views, 2),
                "mobileAppPageViewsPercentage": round(100 * r["mobile_views"] / total_views, 2),
                "pageViewsPercentage": round(100 * r["views"] / total_views, 2),
                "buyBoxPercentage": round(float(r["buy_box"]), 2),
                "unitSessionPercentage": round(100 * r["units"] / r["sessions"], 2) if r["sessions"] else 0.0,
            }
            by_asin.append(item)
    document = {
        "reportSpecification": {
            "reportType": SALES_AND_TRAFFIC,
            "reportOptions": {
                "dateGranularity": options.get("dateGranularity", "DAY"),
                "asinGranularity": options.get("asinGranularity", "PARENT"),
            },
            "dataStartTime": first.isoformat(),
            "dataEndTime": last.isoformat(),
            "marketplaceIds": [MARKETPLACES[mp].marketplace_id],
        },
        "salesAndTrafficByDate": by_date,
        "salesAndTrafficByAsin": by_asin,
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


# ---- the FBA inventory ledger -----------------------------------------------------------------------------


def _ledger_rows(world: SellerWorld, mp: str) -> list[tuple[str, str, str, str, str, str]]:
    """(sku, fnsku, asin, title, condition, country) of the pool's FBA rows in every country of the pool."""
    charset = MARKETPLACES[mp].charset
    from amazon_optiply.sandbox.seller import report_text

    with world._lock:
        fba = world.fba[mp][["sku", "fnsku", "asin", "name", "condition"]].copy()
    countries = _pool_countries(world, mp)
    return [
        (r.sku, r.fnsku, r.asin, report_text(r.name, charset), r.condition, c)
        for r in fba.itertuples(index=False)
        for c in countries
    ]


def _ledger_days(first: date, last: date, as_of: datetime) -> list[date]:
    oldest = months_back(as_of.date(), LEDGER_HISTORY_MONTHS)
    return [
        first + timedelta(days=i)
        for i in range((last - first).days + 1)
        if first + timedelta(days=i) >= oldest
    ]


def ledger_events_truth(
    world: SellerWorld, mp: str, first: date, last: date, as_of: datetime
) -> pd.DataFrame:
    """Every ledger event of the pool's FBA rows on the days [first, last]: each shipped line of the pool's
    marketplaces (Shipments, negative), and receipts, customer returns and adjustments drawn per SKU, country
    and day. Quantities are signed, as Amazon writes them."""
    seed = world.config.seed
    days = _ledger_days(first, last, as_of)
    rows = _ledger_rows(world, mp) if days else []
    titles = {(sku, cond): (fnsku, asin, title) for sku, fnsku, asin, title, cond, _ in rows}
    events = []
    start, end = _midnight(first), _midnight(last) + timedelta(days=1) - timedelta(seconds=1)
    for member in _pool_members(world, mp) if days else []:
        for s in fba_shipments(world, member, start, end).itertuples(index=False):
            if s.shipment_date.date() not in days:
                continue
            fnsku, asin, title = titles[(s.sku, "NewItem")]
            events.append(
                (s.shipment_date, fnsku, asin, s.sku, title, "Shipments", s.amazon_order_id, -s.quantity,
                 s.fulfillment_center_id, "SELLABLE", "", s.country)
            )  # fmt: skip
    for sku, fnsku, asin, title, cond, country in rows:
        centers = _FULFILMENT_CENTERS.get(country, (f"{country}01",))
        for day in days:
            h = _h(seed, "ledger", sku, cond, country, day)
            at = _midnight(day) + timedelta(minutes=h % 1440)
            center = centers[(h >> 12) % len(centers)]
            if h % 23 == 0:
                events.append(
                    (at, fnsku, asin, sku, title, "Receipts", f"FBA15{h % 16**6:06X}", 20 + (h >> 20) % 101,
                     center, "SELLABLE", "", country)
                )  # fmt: skip
            if (h >> 28) % 41 == 0:
                events.append(
                    (at, fnsku, asin, sku, title, "CustomerReturns", f"R{h % 10**7:07d}", 1, center,
                     "SELLABLE", "", country)
                )  # fmt: skip
            if (h >> 36) % 53 == 0:
                reason, sign = (("F", 1), ("M", -1), ("E", -1))[(h >> 44) % 3]
                events.append(
                    (at, fnsku, asin, sku, title, "Adjustments", f"{h % 10**11:011d}", sign * (1 + (h >> 50) % 3),
                     center, "SELLABLE", reason, country)
                )  # fmt: skip
    frame = pd.DataFrame(events, columns=_EVENT_COLUMNS)
    frame["date"] = frame["date_and_time"].map(lambda t: t.date())
    frame["reconciled_quantity"] = 0
    frame["unreconciled_quantity"] = 0
    return frame.sort_values(["date_and_time", "msku", "event_type", "reference_id"], ignore_index=True)


_EVENT_COLUMNS = [
    "date_and_time",
    "fnsku",
    "asin",
    "msku",
    "title",
    "event_type",
    "reference_id",
    "quantity",
    "fulfillment_center",
    "disposition",
    "reason",
    "country",
]


def ledger_summary_truth(
    world: SellerWorld, mp: str, first: date, last: date, as_of: datetime
) -> pd.DataFrame:
    """The summary view, DAILY by country: per day, FBA row and country, the events of the day summed by
    kind between the day's starting and ending balance (a level per row and day); Other Events is what
    reconciles them."""
    seed = world.config.seed
    days = _ledger_days(first, last, as_of)
    events = ledger_events_truth(world, mp, first, last, as_of)
    kind = {
        ("Receipts", ""): "receipts",
        ("Shipments", ""): "customer_shipments",
        ("CustomerReturns", ""): "customer_returns",
        ("Adjustments", "F"): "found",
        ("Adjustments", "M"): "lost",
        ("Adjustments", "E"): "damaged",
    }
    sums: dict[tuple, dict[str, int]] = {}
    for e in events.itertuples(index=False):
        key = (e.date, e.msku, e.fnsku, e.country)
        field = kind[(e.event_type, e.reason)]
        sums.setdefault(key, dict.fromkeys(LEDGER_EVENT_FIELDS, 0))[field] += int(e.quantity)
    out = []
    for sku, fnsku, asin, title, cond, country in _ledger_rows(world, mp):
        for day in days:
            level = {
                d: 40 + _h(seed, "balance", sku, cond, country, d) % 400
                for d in (day - timedelta(days=1), day)
            }
            moved = sums.get((day, sku, fnsku, country), dict.fromkeys(LEDGER_EVENT_FIELDS, 0))
            starting, ending = level[day - timedelta(days=1)], level[day]
            out.append(
                {
                    "date": day,
                    "fnsku": fnsku,
                    "asin": asin,
                    "msku": sku,
                    "title": title,
                    "disposition": "SELLABLE",
                    "starting_warehouse_balance": starting,
                    "in_transit_between_warehouses": 0,
                    **moved,
                    "vendor_returns": 0,
                    "warehouse_transfer_in_out": 0,
                    "disposed": 0,
                    "other_events": ending - starting - sum(moved.values()),
                    "ending_warehouse_balance": ending,
                    "unknown_events": 0,
                    "location": country,
                }
            )
    return pd.DataFrame(out)


def _us_date(d: date) -> str:
    return d.strftime("%m/%d/%Y")


def render_ledger_summary(
    world: SellerWorld, mp: str, first: date, last: date, as_of: datetime, monthly: bool
):
    frame = ledger_summary_truth(world, mp, first, last, as_of)
    if frame.empty:
        return _tsv(LEDGER_SUMMARY_COLUMNS, []), 0
    if monthly:  # Amazon's default period: one row per month, Date MM/YYYY
        frame["month"] = frame["date"].map(lambda d: d.strftime("%m/%Y"))
        keys = ["month", "fnsku", "asin", "msku", "title", "disposition", "location"]
        grouped = frame.sort_values("date").groupby(keys, sort=False)
        frame = grouped.agg(
            {
                "starting_warehouse_balance": "first",
                "ending_warehouse_balance": "last",
                **{c: "sum" for c in (*LEDGER_EVENT_FIELDS, "other_events")},
                **{
                    c: "sum"
                    for c in (
                        "in_transit_between_warehouses",
                        "vendor_returns",
                        "warehouse_transfer_in_out",
                        "disposed",
                        "unknown_events",
                    )
                },
            }
        ).reset_index()
        frame["date_text"] = frame["month"]
    else:
        frame["date_text"] = frame["date"].map(_us_date)
    rows = [
        [
            r.date_text,
            r.fnsku,
            r.asin,
            r.msku,
            r.title,
            r.disposition,
            *(
                str(getattr(r, c))
                for c in (
                    "starting_warehouse_balance",
                    "in_transit_between_warehouses",
                    "receipts",
                    "customer_shipments",
                    "customer_returns",
                    "vendor_returns",
                    "warehouse_transfer_in_out",
                    "found",
                    "lost",
                    "damaged",
                    "disposed",
                    "other_events",
                    "ending_warehouse_balance",
                    "unknown_events",
                )
            ),
            r.location,
        ]
        for r in frame.itertuples(index=False)
    ]
    return _tsv(LEDGER_SUMMARY_COLUMNS, rows), len(rows)


def render_ledger_detail(
    world: SellerWorld, mp: str, first: date, last: date, as_of: datetime, event_type: str
):
    frame = ledger_events_truth(world, mp, first, last, as_of)
    if event_type:
        frame = frame[frame["event_type"] == event_type]
    rows = [
        [
            _us_date(r.date),
            r.fnsku,
            r.asin,
            r.msku,
            r.title,
            r.event_type,
            r.reference_id,
            str(r.quantity),
            r.fulfillment_center,
            r.disposition,
            r.reason,
            r.country,
            str(r.reconciled_quantity),
            str(r.unreconciled_quantity),
            r.date_and_time.strftime("%Y-%m-%dT%H:%M:%S+0000"),
        ]
        for r in frame.itertuples(index=False)
    ]
    return _tsv(LEDGER_DETAIL_COLUMNS, rows), len(rows)


# ---- the Reports API hooks --------------------------------------------------------------------------------


@dataclass
class StreamRequest:
    """What createReport was asked for, beyond the Report's own fields: the options and whether the dates
    were in the body (the DAILY ledger needs them there)."""

    options: dict
    dates_in_body: bool


def _tsv(columns: list[str], rows: list[list[str]]) -> str:
    return "\r\n".join(["\t".join(columns), *("\t".join(row) for row in rows)]) + "\r\n"


def create_stream_report(app: AmazonApp, body: dict) -> Response:
    """createReport for one of this module's report types (the body is already a JSON object)."""
    from amazon_optiply.sandbox.amazon import _ApiError, _parse_time
    from amazon_optiply.sandbox.http import Response

    backend = app.backend
    report_type = body["reportType"]
    marketplace_ids = body.get("marketplaceIds") or body.get("MarketplaceIds")
    if not marketplace_ids or not isinstance(marketplace_ids, list):
        raise _ApiError(400, "InvalidInput", "marketplaceIds is required and must be a non-empty array.")
    for mid in marketplace_ids:
        if not isinstance(mid, str) or mid not in MARKETPLACES_BY_ID:
            raise _ApiError(400, "InvalidInput", f"Invalid marketplaceId: {mid}")
        if mid not in app._seller_marketplace_ids():
            raise _ApiError(403, "Unauthorized", f"The seller does not participate in marketplace {mid}.")
    options = body.get("reportOptions") or {}
    if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
        raise _ApiError(
            400, "InvalidInput", "reportOptions must be an object of option names to string values."
        )
    _check_options(report_type, options, _ApiError)
    now = backend.clock.now()
    dates_in_body = bool(body.get("dataStartTime")) and bool(body.get("dataEndTime"))
    end = _parse_time(body["dataEndTime"], "dataEndTime") if body.get("dataEndTime") else now
    start = (
        _parse_time(body["dataStartTime"], "dataStartTime")
        if body.get("dataStartTime")
        else end - timedelta(days=30)
    )
    if start > end:
        raise _ApiError(400, "InvalidInput", "dataStartTime must be before dataEndTime.")
    mp = MARKETPLACES_BY_ID[marketplace_ids[0]].country_code
    report = backend.create_report(
        report_type, marketplace_ids[:1], start.astimezone(UTC), end.astimezone(UTC)
    )
    with backend.lock:
        report.options = StreamRequest(options, dates_in_body)
        if (
            report.outcome == "DONE"
            and report_type == AFN_BY_COUNTRY
            and mp not in AFN_BY_COUNTRY_MARKETPLACES
        ):
            report.outcome = "FATAL"
            report.fatal_reason = (
                f"{AFN_BY_COUNTRY} is available only to FBA sellers in Europe, not in marketplace {mp}"
            )
        if report.outcome == "DONE" and report_type == SALES_AND_TRAFFIC and start < now - S_AND_T_HISTORY:
            report.outcome = "CANCELLED"  # Amazon keeps two years of sales and traffic
    return Response.json(202, {"reportId": report.report_id})


def _check_options(report_type: str, options: dict, error) -> None:
    allowed = {
        SALES_AND_TRAFFIC: {"dateGranularity": ("DAY", "WEEK", "MONTH"), "asinGranularity": ("PARENT", "CHILD", "SKU")},
        LEDGER_SUMMARY: {"aggregateByLocation": ("COUNTRY", "FC"), "aggregatedByTimePeriod": ("DAILY", "WEEKLY", "MONTHLY")},
        LEDGER_DETAIL: {"eventType": ("Adjustments", "CustomerReturns", "Receipts", "Shipments", "VendorReturns", "WhseTransfers")},
    }.get(report_type, {})  # fmt: skip
    for name, value in options.items():
        if name not in allowed:
            raise error(400, "InvalidInput", f"reportOptions.{name} is not an option of {report_type}.")
        if value not in allowed[name]:
            raise error(
                400,
                "InvalidInput",
                f"reportOptions.{name} must be one of {', '.join(allowed[name])}, not {value!r}.",
            )
    if report_type == SALES_AND_TRAFFIC and options.get("dateGranularity", "DAY") != "DAY":
        raise error(400, "InvalidInput", "This sandbox serves dateGranularity DAY only.")
    if report_type == LEDGER_SUMMARY:
        if options.get("aggregateByLocation", "COUNTRY") != "COUNTRY":
            raise error(400, "InvalidInput", "This sandbox serves aggregateByLocation COUNTRY only.")
        if options.get("aggregatedByTimePeriod") == "WEEKLY":
            raise error(
                400, "InvalidInput", "This sandbox serves aggregatedByTimePeriod DAILY and MONTHLY only."
            )


def _whole_days(start: datetime, end: datetime) -> bool:
    return start.time() == time(0) and (end.hour, end.minute, end.second) == (23, 59, 59)


def finish_stream_report(backend: AmazonBackend, report: Report, now: datetime) -> None:
    """Render a DONE report of this module's types (FATAL and CANCELLED are already handled)."""
    world = backend.world
    mp = MARKETPLACES_BY_ID[report.marketplace_ids[0]].country_code
    request: StreamRequest = report.options or StreamRequest({}, True)
    charset = MARKETPLACES[mp].charset
    empty_allowed = False
    if report.report_type == AFN_BY_COUNTRY:
        text, rows = render_afn_by_country(world)
    elif report.report_type == CUSTOMER_SHIPMENT_SALES:
        text, rows = render_customer_shipments(world, mp, report.data_start, report.data_end, now)
    elif report.report_type == SALES_AND_TRAFFIC:
        text = render_sales_and_traffic(world, mp, report.data_start, report.data_end, request.options, now)
        rows, charset, empty_allowed = 1, "UTF-8", True  # a day without sales is DONE with empty lists
    else:
        first, last = report.data_start.date(), report.data_end.date()
        # The ledger's traps: header only for a window with today in it, or not on whole days.
        trapped = last >= now.date() or not _whole_days(report.data_start, report.data_end)
        if report.report_type == LEDGER_SUMMARY:
            period = request.options.get("aggregatedByTimePeriod", "MONTHLY")
            # DAILY needs the dates in the body (amzn/selling-partner-api-docs#2989).
            trapped = trapped or (period == "DAILY" and not request.dates_in_body)
            text, rows = render_ledger_summary(world, mp, first, last, now, period == "MONTHLY")
        else:
            text, rows = render_ledger_detail(
                world, mp, first, last, now, request.options.get("eventType", "")
            )
        if trapped:
            header = LEDGER_SUMMARY_COLUMNS if report.report_type == LEDGER_SUMMARY else LEDGER_DETAIL_COLUMNS
            text, rows, empty_allowed = _tsv(header, []), 0, True
    report.rows = rows
    if rows == 0 and not empty_allowed:
        report.status = "CANCELLED"  # Amazon cancels a report whose window holds no data
        return
    tamper = backend.tamper_documents.get(report.report_type)
    content = tamper(text, mp) if tamper else text
    body = encode_document(content, charset) if isinstance(content, str) else gzip.compress(content)
    report.document_id = backend._store_document(report, body, charset)
    report.status = "DONE"
