"""The report-based streams, pure: their windows, their documents parsed into typed rows, and the Pan-European
stock rule that uses AFN inventory by country.

Pure pandas: text and DataFrames in, DataFrames out, no I/O. Money stays `Decimal` as Amazon wrote it,
quantities are integers, dates are dates and times UTC timestamps. A row whose value cannot be read as its
type is set aside with the reason (the `bad_rows` frame: its position among the parsed rows, and why), never
read as 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

import numpy as np
import pandas as pd

from amazon_optiply.transforms.reports import ReportFormatError, parse_flat_file

AFN_BY_COUNTRY = "GET_AFN_INVENTORY_DATA_BY_COUNTRY"
SALES_AND_TRAFFIC = "GET_SALES_AND_TRAFFIC_REPORT"
LEDGER_SUMMARY = "GET_LEDGER_SUMMARY_VIEW_DATA"
LEDGER_DETAIL = "GET_LEDGER_DETAIL_VIEW_DATA"
CUSTOMER_SHIPMENT_SALES = "GET_FBA_FULFILLMENT_CUSTOMER_SHIPMENT_SALES_DATA"

# Amazon's European marketplaces: only their sellers get AFN inventory by country ("Only available to FBA
# sellers in Europe"); elsewhere the report ends FATAL, so it is not asked for.
AFN_BY_COUNTRY_MARKETPLACES = frozenset({"GB", "DE", "FR", "IT", "ES", "NL", "SE", "PL", "BE", "IE"})
# The report's country codes that are not the marketplace's: it writes the United Kingdom as UK.
AFN_COUNTRY_ALIASES = {"GB": ("GB", "UK")}

# Amazon's limits and lags (sp-api-more-streams.md).
SALES_AND_TRAFFIC_HISTORY = timedelta(days=730)  # a start further back ends CANCELLED
SALES_AND_TRAFFIC_REVISED_FOR = timedelta(hours=72)  # a day's figures change until 72 h after it ends
LEDGER_HISTORY_MONTHS = 18
CUSTOMER_SHIPMENTS_HISTORY_MONTHS = 18
CUSTOMER_SHIPMENTS_LAG = timedelta(hours=3)  # shipments show in the report 1 to 3 hours after they ship
CUSTOMER_SHIPMENTS_MAX_WINDOW = timedelta(days=30)
# Our choice, not Amazon's limit: a month of ledger per report keeps documents small.
LEDGER_MAX_WINDOW_DAYS = 31
# How far back a stream reads on its first run; older history is a backfill (the assets' run config).
SALES_AND_TRAFFIC_FIRST_DAYS = 7
LEDGER_FIRST_DAYS = 30
CUSTOMER_SHIPMENTS_FIRST_DAYS = 30


# Times are stored as UTC timestamps in microseconds (pandas' and Parquet's unit here).
TIMESTAMP = "datetime64[us, UTC]"


class StreamConfigError(ValueError):
    """A run config value (a backfill date) cannot be used."""


# ---- windows ------------------------------------------------------------------------------------------------


def day_start(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def whole_day(day: date) -> tuple[datetime, datetime]:
    """A calendar day as Amazon wants it: T00:00:00Z to T23:59:59Z. A window off midnight is widened by
    Amazon to whole days and its figures summed over them."""
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1) - timedelta(seconds=1)


def months_before(day: date, months: int) -> date:
    """The same day `months` months earlier (the month's last day when that month is shorter)."""
    year, month0 = divmod(day.year * 12 + day.month - 1 - months, 12)
    for d in (day.day, 30, 29, 28):
        try:
            return date(year, month0 + 1, d)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def backfill_start(backfill_from: str, earliest: date) -> date | None:
    """The first day a backfill reads: the date asked for, but never before what Amazon still holds."""
    if not backfill_from.strip():
        return None
    try:
        asked = date.fromisoformat(backfill_from.strip()[:10])
    except ValueError:
        raise StreamConfigError(
            f"backfill_from must be an ISO date such as 2025-01-31, not {backfill_from!r}"
        ) from None
    return max(asked, earliest)


@dataclass(frozen=True)
class DayPlan:
    """The calendar days a daily stream reads in one run, and where its cursor moves afterwards."""

    days: list[date]
    next_cursor: datetime  # midnight of the first day the next run starts from
    backfill: bool

    @property
    def window(self) -> str:
        return f"{self.days[0]}..{self.days[-1]}" if self.days else "none (up to date)"


def _first_day(cursor: datetime | None, backfill: date | None, default: date) -> date:
    """A backfill reads from its date, or from the cursor when that is earlier (so no day is skipped)."""
    start = cursor.date() if cursor is not None else default
    return min(backfill, start) if backfill is not None else start


def sales_and_traffic_plan(now: datetime, cursor: datetime | None, backfill_from: str = "") -> DayPlan:
    """One report per day from the cursor (the first day not yet final) to yesterday.

    Amazon revises a day's figures until 72 hours after it ends: the cursor only passes days that old, so
    the trailing 3 days are read again every run and the last read of a day is its final figures.
    """
    today = day_start(now).date()
    yesterday = today - timedelta(days=1)
    first_not_final = day_start(now - SALES_AND_TRAFFIC_REVISED_FOR).date()
    earliest = (day_start(now - SALES_AND_TRAFFIC_HISTORY) + timedelta(days=1)).date()
    backfill = backfill_start(backfill_from, earliest)
    first = _first_day(cursor, backfill, yesterday - timedelta(days=SALES_AND_TRAFFIC_FIRST_DAYS - 1))
    days = [first + timedelta(days=i) for i in range((yesterday - first).days + 1)]
    next_cursor = datetime.combine(max(first_not_final, first), time(0), tzinfo=UTC)
    return DayPlan(days, next_cursor, backfill is not None)


def ledger_plan(now: datetime, cursor: datetime | None, backfill_from: str = "") -> tuple[DayPlan, list]:
    """Whole days from the cursor to yesterday (a window with today in it comes back empty), in windows of
    at most LEDGER_MAX_WINDOW_DAYS; Amazon keeps 18 months."""
    today = day_start(now).date()
    yesterday = today - timedelta(days=1)
    earliest = months_before(today, LEDGER_HISTORY_MONTHS) + timedelta(days=1)
    backfill = backfill_start(backfill_from, earliest)
    first = _first_day(cursor, backfill, yesterday - timedelta(days=LEDGER_FIRST_DAYS - 1))
    days = [first + timedelta(days=i) for i in range((yesterday - first).days + 1)]
    windows = [
        (days[i], days[min(i + LEDGER_MAX_WINDOW_DAYS, len(days)) - 1])
        for i in range(0, len(days), LEDGER_MAX_WINDOW_DAYS)
    ]
    next_cursor = datetime.combine(max(today, first), time(0), tzinfo=UTC)
    return DayPlan(days, next_cursor, backfill is not None), windows


@dataclass(frozen=True)
class TimePlan:
    """The windows a timestamped stream reads in one run, and its cursor afterwards (the last end read)."""

    windows: list[tuple[datetime, datetime]]
    next_cursor: datetime
    backfill: bool

    @property
    def window(self) -> str:
        if not self.windows:
            return "none (up to date)"
        return f"{self.windows[0][0].isoformat()}..{self.windows[-1][1].isoformat()}"


def customer_shipments_plan(now: datetime, cursor: datetime | None, backfill_from: str = "") -> TimePlan:
    """From just after the cursor to now minus the report's lag (shipments show 1 to 3 hours after they
    ship, so a later end would miss some for good), in windows of at most 30 days. Both bounds are
    inclusive at Amazon, so a window starts one second after the one before."""
    end = (now - CUSTOMER_SHIPMENTS_LAG).astimezone(UTC).replace(microsecond=0)
    earliest = months_before(now.date(), CUSTOMER_SHIPMENTS_HISTORY_MONTHS) + timedelta(days=1)
    backfill = backfill_start(backfill_from, earliest)
    if cursor is not None:
        start = cursor + timedelta(seconds=1)
    else:
        start = end - timedelta(days=CUSTOMER_SHIPMENTS_FIRST_DAYS) + timedelta(seconds=1)
    if backfill is not None:
        start = min(start, datetime.combine(backfill, time(0), tzinfo=UTC))
    windows = []
    while start <= end:
        window_end = min(start + CUSTOMER_SHIPMENTS_MAX_WINDOW - timedelta(seconds=1), end)
        windows.append((start, window_end))
        start = window_end + timedelta(seconds=1)
    next_cursor = windows[-1][1] if windows else (cursor or end)
    return TimePlan(windows, next_cursor, backfill is not None)


# ---- typed columns ------------------------------------------------------------------------------------------


def _set_aside(
    frame: pd.DataFrame, bad: pd.Series, reason: pd.Series, bad_rows: list[pd.DataFrame]
) -> pd.DataFrame:
    if bad.any():
        bad_rows.append(pd.DataFrame({"row": frame.index[bad], "reason": reason[bad]}))
    return frame[~bad]


def _integers(values: pd.Series, signed: bool = False) -> pd.Series:
    """Amazon's integers as Int64; anything else (blank, 1.5, N/A) is NA, to be set aside by the caller."""
    stripped = values.astype("string").str.strip()
    pattern = r"^-?\d+$" if signed else r"^\d+$"
    ok = stripped.str.fullmatch(pattern).fillna(False)
    return pd.to_numeric(stripped.where(ok), errors="coerce").astype("Int64")


def _decimals(values: pd.Series) -> pd.Series:
    """Amazon's amounts as Decimal, exactly as written; unreadable ones are None."""

    def one(v: object) -> Decimal | None:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return None
        try:
            d = Decimal(str(v).strip())
        except InvalidOperation:
            return None
        return d if d.is_finite() else None

    return pd.Series([one(v) for v in values], index=values.index, dtype=object)


def _typed(
    frame: pd.DataFrame,
    integers: tuple[str, ...] = (),
    signed: tuple[str, ...] = (),
    decimals: tuple[str, ...] = (),
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    bad_rows: list[pd.DataFrame] = []
    out = frame.copy()
    for column in (*integers, *signed):
        out[column] = _integers(frame[column], signed=column in signed)
        bad = out[column].isna()
        reason = f"{column} is not a{' signed' if column in signed else ' whole'} number: " + frame[
            column
        ].astype("string").fillna("").map(repr)
        out = _set_aside(out, bad, reason.reindex(out.index), bad_rows)
        frame = frame.loc[out.index]
    for column in decimals:
        out[column] = _decimals(frame[column])
        bad = out[column].isna()
        reason = f"{column} is not a decimal: " + frame[column].astype("string").fillna("").map(repr)
        out = _set_aside(out, bad, reason.reindex(out.index), bad_rows)
        frame = frame.loc[out.index]
    for column in integers + signed:
        out[column] = out[column].astype("int64")
    return out, bad_rows


def bad_rows_frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"row": [], "reason": []})


def _snake(names: dict[str, str], frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns=names)[list(names.values())]


def _strings(frame: pd.DataFrame, columns: tuple[str, ...] | list[str]) -> pd.DataFrame:
    return frame.astype({c: "string" for c in columns})


# ---- AFN inventory by country -------------------------------------------------------------------------------

AFN_NAMES = {
    "seller-sku": "seller_sku",
    "fulfillment-channel-sku": "fulfillment_channel_sku",
    "asin": "asin",
    "condition-type": "condition_type",
    "country": "country",
    "quantity-for-local-fulfillment": "quantity_for_local_fulfillment",
}


def afn_inventory_by_country(text: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per SKU and country, the country as Amazon writes it (UK for the United Kingdom); and the
    rows set aside (a wrong field count, a quantity that is not a whole number)."""
    raw, malformed = parse_flat_file(text, AFN_BY_COUNTRY, tuple(AFN_NAMES))
    frame, bad = _typed(raw, integers=("quantity-for-local-fulfillment",))
    frame = _strings(
        _snake(AFN_NAMES, frame), [c for c in AFN_NAMES.values() if c != "quantity_for_local_fulfillment"]
    )
    return frame.reset_index(drop=True), _with_malformed(bad, malformed)


def empty_afn_inventory_by_country() -> pd.DataFrame:
    return afn_inventory_by_country("")[0]


def _with_malformed(bad: list[pd.DataFrame], malformed: pd.DataFrame) -> pd.DataFrame:
    parts = list(bad)
    if len(malformed):
        parts.append(pd.DataFrame({"row": malformed["line"], "reason": malformed["reason"]}))
    return bad_rows_frame(parts)


# ---- sales and traffic --------------------------------------------------------------------------------------

SALES_AND_TRAFFIC_COLUMNS = {
    "date": "object",
    "parent_asin": "string",
    "child_asin": "string",
    "sku": "string",
    "units_ordered": "Int64",
    "units_ordered_b2b": "Int64",
    "ordered_product_sales": "object",
    "ordered_product_sales_b2b": "object",
    "currency": "string",
    "total_order_items": "Int64",
    "total_order_items_b2b": "Int64",
    "browser_sessions": "Int64",
    "mobile_app_sessions": "Int64",
    "sessions": "Int64",
    "browser_page_views": "Int64",
    "mobile_app_page_views": "Int64",
    "page_views": "Int64",
    "session_percentage": "Float64",
    "page_views_percentage": "Float64",
    "buy_box_percentage": "Float64",
    "unit_session_percentage": "Float64",
    "report_id": "string",
}


def sales_and_traffic_by_sku(text: str, day: date, report_id: str) -> pd.DataFrame:
    """salesAndTrafficByAsin of a one-day report (asinGranularity SKU) as rows of that day.

    byAsin carries no date: its figures are the whole report window's. The window Amazon actually used
    (reportSpecification) must be the one day asked for, or the figures would be several days' under one.
    A field Amazon leaves out (the B2B ones are optional) is NA, not 0.
    """
    document = json.loads(text, parse_float=Decimal) if text.strip() else {}
    spec = document.get("reportSpecification") or {}
    covered = (spec.get("dataStartTime"), spec.get("dataEndTime"))
    if document and covered != (day.isoformat(), day.isoformat()):
        raise ReportFormatError(
            f"{SALES_AND_TRAFFIC} report {report_id} covers {covered[0]} to {covered[1]}, not the one day "
            f"{day} asked for: its per-SKU figures would sum several days"
        )
    rows = []
    for item in document.get("salesAndTrafficByAsin") or []:
        sales = item.get("salesByAsin") or {}
        traffic = item.get("trafficByAsin") or {}
        amount = sales.get("orderedProductSales") or {}
        amount_b2b = sales.get("orderedProductSalesB2B") or {}
        rows.append(
            {
                "date": day,
                "parent_asin": item.get("parentAsin"),
                "child_asin": item.get("childAsin"),
                "sku": item.get("sku"),
                "units_ordered": sales.get("unitsOrdered"),
                "units_ordered_b2b": sales.get("unitsOrderedB2B"),
                "ordered_product_sales": _money(amount.get("amount")),
                "ordered_product_sales_b2b": _money(amount_b2b.get("amount")),
                "currency": amount.get("currencyCode"),
                "total_order_items": sales.get("totalOrderItems"),
                "total_order_items_b2b": sales.get("totalOrderItemsB2B"),
                "browser_sessions": traffic.get("browserSessions"),
                "mobile_app_sessions": traffic.get("mobileAppSessions"),
                "sessions": traffic.get("sessions"),
                "browser_page_views": traffic.get("browserPageViews"),
                "mobile_app_page_views": traffic.get("mobileAppPageViews"),
                "page_views": traffic.get("pageViews"),
                "session_percentage": _float(traffic.get("sessionPercentage")),
                "page_views_percentage": _float(traffic.get("pageViewsPercentage")),
                "buy_box_percentage": _float(traffic.get("buyBoxPercentage")),
                "unit_session_percentage": _float(traffic.get("unitSessionPercentage")),
                "report_id": report_id,
            }
        )
    return pd.DataFrame(rows, columns=list(SALES_AND_TRAFFIC_COLUMNS)).astype(SALES_AND_TRAFFIC_COLUMNS)


def _money(value: object) -> Decimal | None:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))  # JSON integers come as int


def _float(value: object) -> float | None:
    return None if value is None else float(value)


# ---- FBA inventory ledger -----------------------------------------------------------------------------------

LEDGER_SUMMARY_NAMES = {
    "Date": "date",
    "FNSKU": "fnsku",
    "ASIN": "asin",
    "MSKU": "msku",
    "Title": "title",
    "Disposition": "disposition",
    "Starting Warehouse Balance": "starting_warehouse_balance",
    "In Transit Between Warehouses": "in_transit_between_warehouses",
    "Receipts": "receipts",
    "Customer Shipments": "customer_shipments",
    "Customer Returns": "customer_returns",
    "Vendor Returns": "vendor_returns",
    "Warehouse Transfer In/Out": "warehouse_transfer_in_out",
    "Found": "found",
    "Lost": "lost",
    "Damaged": "damaged",
    "Disposed": "disposed",
    "Other Events": "other_events",
    "Ending Warehouse Balance": "ending_warehouse_balance",
    "Unknown Events": "unknown_events",
    "Location": "location",
}
LEDGER_SUMMARY_COUNTS = tuple(list(LEDGER_SUMMARY_NAMES)[6:20])
LEDGER_DETAIL_NAMES = {
    "Date": "date",
    "FNSKU": "fnsku",
    "ASIN": "asin",
    "MSKU": "msku",
    "Title": "title",
    "Event Type": "event_type",
    "Reference ID": "reference_id",
    "Quantity": "quantity",
    "Fulfillment Center": "fulfillment_center",
    "Disposition": "disposition",
    "Reason": "reason",
    "Country": "country",
    "Reconciled Quantity": "reconciled_quantity",
    "Unreconciled Quantity": "unreconciled_quantity",
    "Date and Time": "date_and_time",
}


def us_dates(values: pd.Series) -> pd.Series:
    """Amazon's US-style MM/DD/YYYY as dates; anything else (the MONTHLY MM/YYYY) is None."""
    parsed = pd.to_datetime(values.astype("string").str.strip(), format="%m/%d/%Y", errors="coerce")
    return pd.Series([d.date() if not pd.isna(d) else None for d in parsed], index=values.index, dtype=object)


def _dates(frame: pd.DataFrame, column: str, out: pd.DataFrame, bad_rows: list[pd.DataFrame]) -> pd.DataFrame:
    out = out.copy()
    out[column] = us_dates(frame.loc[out.index, column])
    bad = out[column].isna()
    reason = f"{column} is not a MM/DD/YYYY date: " + frame.loc[out.index, column].astype("string").fillna(
        ""
    ).map(repr)
    return _set_aside(out, bad, reason, bad_rows)


def _times(
    frame: pd.DataFrame, column: str, out: pd.DataFrame, bad_rows: list[pd.DataFrame], time_format: str
) -> pd.DataFrame:
    """`column` as UTC timestamps; a row whose value is no time in `time_format` is set aside."""
    stamps = pd.to_datetime(
        frame.loc[out.index, column].astype("string").str.strip(),
        format=time_format,
        errors="coerce",
        utc=True,
    )
    out[column] = stamps.astype(TIMESTAMP)
    return _set_aside(
        out, stamps.isna(), f"{column} is not a time: " + frame.loc[out.index, column].map(repr), bad_rows
    )


def extra_columns(frame: pd.DataFrame, known: dict[str, str]) -> list[str]:
    """Columns Amazon sent beyond the documented ones (the ledger's `Store`, say): tolerated, not kept."""
    return [c for c in frame.columns if c not in known]


def ledger_summary(text: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The summary view's rows (DAILY, by country), dates normalised from MM/DD/YYYY; rows set aside; and the
    undocumented columns Amazon added. A MONTHLY document (Date MM/YYYY: the options were not applied) is
    refused rather than read as days."""
    raw, malformed = parse_flat_file(text, LEDGER_SUMMARY, tuple(LEDGER_SUMMARY_NAMES))
    if len(raw) and raw["Date"].astype("string").str.fullmatch(r"\d\d/\d{4}").all():
        raise ReportFormatError(
            f"{LEDGER_SUMMARY} came back MONTHLY (Date {raw['Date'].iloc[0]}): aggregatedByTimePeriod DAILY was not applied"
        )
    frame, bad = _typed(raw, signed=LEDGER_SUMMARY_COUNTS)
    frame = _dates(raw, "Date", frame, bad)
    frame = _snake(LEDGER_SUMMARY_NAMES, frame)
    frame = _strings(frame, ["fnsku", "asin", "msku", "title", "disposition", "location"])
    return (
        frame.reset_index(drop=True),
        _with_malformed(bad, malformed),
        extra_columns(raw, LEDGER_SUMMARY_NAMES),
    )


def ledger_detail(text: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The detail view's events (every event type), quantities signed, dates normalised, `Date and Time`
    as UTC; rows set aside; and the undocumented columns Amazon added."""
    raw, malformed = parse_flat_file(text, LEDGER_DETAIL, tuple(LEDGER_DETAIL_NAMES))
    frame, bad = _typed(raw, signed=("Quantity", "Reconciled Quantity", "Unreconciled Quantity"))
    frame = _dates(raw, "Date", frame, bad)
    frame = _times(raw, "Date and Time", frame, bad, "%Y-%m-%dT%H:%M:%S%z")
    frame = _snake(LEDGER_DETAIL_NAMES, frame)
    frame = _strings(
        frame,
        [
            "fnsku",
            "asin",
            "msku",
            "title",
            "event_type",
            "reference_id",
            "fulfillment_center",
            "disposition",
            "reason",
            "country",
        ],
    )
    return (
        frame.reset_index(drop=True),
        _with_malformed(bad, malformed),
        extra_columns(raw, LEDGER_DETAIL_NAMES),
    )


# ---- FBA customer shipment sales ----------------------------------------------------------------------------

# The report's 14 columns without ship-city, ship-state and ship-postal-code: where a buyer lives is personal
# data Optiply never needs, so those three columns are dropped on reading and never stored.
CUSTOMER_SHIPMENT_NAMES = {
    "shipment-date": "shipment_date",
    "sku": "sku",
    "fnsku": "fnsku",
    "asin": "asin",
    "fulfillment-center-id": "fulfillment_center_id",
    "quantity": "quantity",
    "amazon-order-id": "amazon_order_id",
    "currency": "currency",
    "item-price-per-unit": "item_price_per_unit",
    "shipping-price": "shipping_price",
    "gift-wrap-price": "gift_wrap_price",
}
BUYER_LOCATION_COLUMNS = ("ship-city", "ship-state", "ship-postal-code")
CUSTOMER_SHIPMENT_KEY = ["amazon_order_id", "sku", "shipment_date", "fulfillment_center_id"]


def customer_shipment_sales(text: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Shipped FBA units per order, SKU and fulfilment center, prices as Decimal, the buyer's location left
    out; rows set aside. Amazon gives no row id: the key is (order, SKU, shipment time, fulfilment center)."""
    raw, malformed = parse_flat_file(text, CUSTOMER_SHIPMENT_SALES, tuple(CUSTOMER_SHIPMENT_NAMES))
    raw = raw.drop(columns=[c for c in BUYER_LOCATION_COLUMNS if c in raw.columns])
    frame, bad = _typed(
        raw, integers=("quantity",), decimals=("item-price-per-unit", "shipping-price", "gift-wrap-price")
    )
    frame = _times(raw, "shipment-date", frame, bad, "ISO8601")
    frame = _snake(CUSTOMER_SHIPMENT_NAMES, frame)
    frame = _strings(frame, ["sku", "fnsku", "asin", "fulfillment_center_id", "amazon_order_id", "currency"])
    frame = frame.drop_duplicates(CUSTOMER_SHIPMENT_KEY)
    return frame.reset_index(drop=True), _with_malformed(bad, malformed)


# ---- the Pan-European stock rule ----------------------------------------------------------------------------

PAN_EU_STOCK_RULES = ("by_country", "pool_in_main")
BY_COUNTRY = "by_country"
POOL_IN_MAIN_MARKETPLACE = "pool_in_main_marketplace"


def afn_countries(marketplace: str) -> tuple[str, ...]:
    """The country codes AFN inventory by country writes for a marketplace's country (UK for GB)."""
    return AFN_COUNTRY_ALIASES.get(marketplace, (marketplace,))


def stock_by_country(
    stock: pd.DataFrame,
    afn_rows: pd.DataFrame,
    marketplace: str,
    carries_pool: bool,
    synced_pool_marketplaces: list[str],
) -> pd.DataFrame:
    """Today's stock per SKU (`catalog.warehouse_stock`) with a Pan-EU pool's FBA units placed by country.

    A SKU the report has rows for, in any country, carries the units available for local fulfilment in
    this marketplace's country; a country without a row for it holds none of it (0 there, not today's rule:
    the report has placed its units elsewhere). A SKU the report has no row for at all keeps today's rule
    (the pool in its home marketplace), so stock never drops to 0 because a SKU is missing from the report.
    The pool's home marketplace (`carries_pool`, where today's rule counts the whole pool) also carries
    what the pool holds beyond the local units of the synced marketplaces: units reserved, inbound,
    unfulfillable, or in countries where no synced marketplace sells (Poland, the Czech Republic). So the
    marketplaces together still carry the pool once, never more, never less. FBA units of 0 fall back to
    the listing quantity, as in today's rule. Adds `fba_rule` per SKU: by_country or pool_in_main_marketplace.
    """
    out = stock.copy()
    out["fba_rule"] = POOL_IN_MAIN_MARKETPLACE
    if afn_rows.empty:
        out["fba_rule"] = out["fba_rule"].astype("string")
        return out
    quantity = afn_rows["quantity_for_local_fulfillment"].astype("int64")
    here = afn_rows["country"].isin(afn_countries(marketplace))
    others = [c for m in synced_pool_marketplaces if m != marketplace for c in afn_countries(m)]
    synced_elsewhere = afn_rows["country"].isin(others)
    per_sku = (
        pd.DataFrame(
            {
                "sku": afn_rows["seller_sku"],
                "local": quantity.where(here, 0),
                "elsewhere": quantity.where(synced_elsewhere, 0),
            }
        )
        .groupby("sku")[["local", "elsewhere"]]
        .sum()
    )
    covered = out["sku"].isin(per_sku.index)
    aligned = per_sku.reindex(out["sku"].astype(object)).fillna(0).astype("int64")
    local = pd.Series(aligned["local"].to_numpy(), index=out.index, dtype="int64")
    carried = local
    if carries_pool:
        elsewhere = pd.Series(aligned["elsewhere"].to_numpy(), index=out.index, dtype="int64")
        carried = local + (out["fba_quantity"].astype("int64") - local - elsewhere).clip(lower=0)
    out["fba_quantity"] = out["fba_quantity"].where(~covered, carried).astype("int64")
    use_fba = out["fba_quantity"] > 0
    level = out["fba_quantity"].astype("Int64").where(use_fba, out["listing_quantity"])
    out["stock_level"] = out["stock_level"].where(~covered, level).astype("Int64")
    source = pd.Series(np.where(use_fba, "fba", "listing"), index=out.index)
    out["stock_source"] = out["stock_source"].where(~covered, source).astype("string")
    out.loc[covered, "fba_rule"] = BY_COUNTRY
    out["fba_rule"] = out["fba_rule"].astype("string")
    return out
