"""Vendor analytics reports through the sandbox's Reports API lifecycle: GET_VENDOR_INVENTORY_REPORT and
GET_VENDOR_SALES_REPORT, JSON documents exactly as Amazon's schemas (schemas/reports/vendor*Report.json).

Amazon's rules emulated here:
- reportOptions is an object with reportPeriod, distributorView (MANUFACTURING|SOURCING) and sellingProgram
  (RETAIL|BUSINESS|FRESH for sales, RETAIL|FRESH for inventory).
- reportOptions sent as a list is accepted and the report ends FATAL with Amazon's error document
  (python-amazon-sp-api#624).
- A day's data is published the next day at 12:00 UTC: a report with a day not yet published (or before
  the vendor's history) has no data and ends CANCELLED.
- orderedUnits / orderedRevenue only for the MANUFACTURING view.
- A vendor account's reports have exactly one marketplace: the vendor's.
- Documents are pretty-printed JSON the way Amazon's Jackson writes them (`"key" : value`).

Sandbox limits and GUESSES:
- Only reportPeriod DAY is served; WEEK, MONTH, QUARTER and YEAR are refused with 400 (Amazon serves them).
- A missing reportOptions, or a missing option in it, is a 400 InvalidInput naming it (Amazon may instead
  accept the request and end it FATAL with the same error document as a list).
- dataStartTime and dataEndTime are required and must be whole UTC days: start 00:00:00Z, end 23:59:59Z
  (Amazon says the time component is ignored; the sandbox refuses other times with 400 so callers get it right).
- A DAY window longer than 15 days ends FATAL (Amazon's documented maximum; #508 saw FATAL).
- BUSINESS and FRESH have no data in the sandbox: those reports end CANCELLED.
- Every product is in every day's rows, zero sales included; optional rate fields (vendorConfirmationRate,
  sellThroughRate, procurableProductOutOfStockRate, …) are left out.
- distributorView changes nothing in the inventory figures.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from amazon_optiply.marketplaces import MARKETPLACES_BY_ID
from amazon_optiply.sandbox.amazon import AmazonApp, AmazonBackend, Report, _ApiError, _parse_time
from amazon_optiply.sandbox.http import Response
from amazon_optiply.sandbox.report_documents import encode_document
from amazon_optiply.sandbox.vendor import DayFigures, VendorWorld

VENDOR_INVENTORY = "GET_VENDOR_INVENTORY_REPORT"
VENDOR_SALES = "GET_VENDOR_SALES_REPORT"
VENDOR_REPORT_TYPES = (VENDOR_INVENTORY, VENDOR_SALES)

OPTION_NAMES = ("reportPeriod", "distributorView", "sellingProgram")
REPORT_PERIODS = ("DAY", "WEEK", "MONTH", "QUARTER", "YEAR")
DISTRIBUTOR_VIEWS = ("MANUFACTURING", "SOURCING")
SELLING_PROGRAMS = {VENDOR_SALES: ("RETAIL", "BUSINESS", "FRESH"), VENDOR_INVENTORY: ("RETAIL", "FRESH")}
MAX_DAY_PERIOD_DAYS = 15

# Amazon's error document when the options are not an object (python-amazon-sp-api#624), word for word.
MISSING_OPTIONS_DETAILS = (
    "This report type requires the reportPeriod, distributorView, sellingProgram reportOption to be "
    "specified. Please review the document for this report type on GitHub, provide a value for this "
    "reportOption in your request, and try again."
)


def _invalid(message: str) -> _ApiError:
    return _ApiError(400, "InvalidInput", message)


def amazon_json(document: dict) -> str:
    """JSON as Amazon's report documents are written: two-space indent, `"key" : value`."""
    return json.dumps(document, indent=2, separators=(",", " : "), ensure_ascii=False)


def create_vendor_report(app: AmazonApp, body: dict) -> Response:
    """createReport for a vendor report type (the body is already a JSON object)."""
    backend = app.backend
    world = backend.vendor
    report_type = body["reportType"]
    if world is None:
        raise _invalid(f"Invalid Report Type {report_type}")
    vendor_mid = world.marketplace.marketplace_id
    marketplace_ids = body.get("marketplaceIds") or body.get("MarketplaceIds")
    if not isinstance(marketplace_ids, list) or marketplace_ids != [vendor_mid]:
        raise _invalid(
            f"marketplaceIds must be [{vendor_mid!r}]: a vendor account's reports have exactly its one marketplace."
        )

    options = body.get("reportOptions")
    fatal = ""
    if options is None:
        raise _invalid(
            f"reportOptions is required for {report_type}: give reportPeriod, distributorView and sellingProgram."
        )
    if isinstance(options, list):
        fatal = MISSING_OPTIONS_DETAILS  # accepted, and FATAL later: python-amazon-sp-api#624
    elif not isinstance(options, dict):
        raise _invalid("reportOptions must be an object of option names to string values.")
    else:
        missing = [name for name in OPTION_NAMES if not options.get(name)]
        if missing:
            raise _invalid(f"reportOptions.{missing[0]} is required for {report_type}.")
        _check_option(options, "reportPeriod", REPORT_PERIODS)
        _check_option(options, "distributorView", DISTRIBUTOR_VIEWS)
        _check_option(options, "sellingProgram", SELLING_PROGRAMS[report_type])
        if options["reportPeriod"] != "DAY":
            raise _invalid(f"This sandbox serves reportPeriod DAY only, not {options['reportPeriod']}.")

    for name in ("dataStartTime", "dataEndTime"):
        if not body.get(name):
            raise _invalid(f"{name} is required for {report_type}.")
    start = _parse_time(body["dataStartTime"], "dataStartTime").astimezone(UTC)
    end = _parse_time(body["dataEndTime"], "dataEndTime").astimezone(UTC)
    if start.time() != time(0, 0, 0):
        raise _invalid(
            "dataStartTime must be the start of a day: 00:00:00Z (reportPeriod DAY covers whole days)."
        )
    if (end.hour, end.minute, end.second) != (23, 59, 59):
        raise _invalid(
            "dataEndTime must be the end of a day: 23:59:59Z (reportPeriod DAY covers whole days)."
        )
    if start > end:
        raise _invalid("dataStartTime must be before dataEndTime.")
    days = (end.date() - start.date()).days + 1
    if not fatal and days > MAX_DAY_PERIOD_DAYS:
        fatal = (
            f"The reporting period for reportPeriod DAY is at most {MAX_DAY_PERIOD_DAYS} days; "
            f"dataStartTime to dataEndTime spans {days} days."
        )

    report = backend.create_report(report_type, [vendor_mid], start, end)
    with backend.lock:
        report.options = options
        if fatal:
            report.outcome, report.fatal_reason = "FATAL", fatal
    return Response.json(202, {"reportId": report.report_id})


def _check_option(options: dict, name: str, allowed: tuple[str, ...]) -> None:
    if options[name] not in allowed:
        raise _invalid(f"reportOptions.{name} must be one of {', '.join(allowed)}, not {options[name]!r}.")


def finish_vendor_report(backend: AmazonBackend, report: Report) -> None:
    """Bring a vendor report to its final state (called by AmazonBackend._finish)."""
    if report.outcome == "FATAL":
        report.status = "FATAL"
        text = amazon_json({"errorDetails": report.fatal_reason})
        report.document_id = backend._store_document(report, encode_document(text, "UTF-8"), "UTF-8")
        return
    if report.outcome == "CANCELLED":
        report.status = "CANCELLED"
        return
    world = backend.vendor
    assert world is not None
    document = render_vendor_report(world, report, backend.clock.now())
    if document is None:
        report.rows = 0
        report.status = "CANCELLED"  # no data for the window (yet): Amazon cancels
        return
    by_asin = document["inventoryByAsin" if report.report_type == VENDOR_INVENTORY else "salesByAsin"]
    report.rows = len(by_asin)
    text = amazon_json(document)
    tamper = backend.tamper_documents.get(report.report_type)
    content = tamper(text, world.config.marketplace) if tamper else text
    body = encode_document(content, "UTF-8") if isinstance(content, str) else gzip.compress(content)
    report.document_id = backend._store_document(report, body, "UTF-8")
    report.status = "DONE"


def _days(start: datetime, end: datetime) -> list[date]:
    return [start.date() + timedelta(days=i) for i in range((end.date() - start.date()).days + 1)]


def _amount(value: Decimal, currency: str) -> dict:
    return {"amount": float(value), "currencyCode": currency}


def render_vendor_report(world: VendorWorld, report: Report, now: datetime) -> dict | None:
    """The report's document at `now`, or None when it has no data (a day not yet published, not RETAIL)."""
    options = report.options
    assert isinstance(options, dict)
    days = _days(report.data_start, report.data_end)
    if options["sellingProgram"] != "RETAIL" or not all(world.is_available(d, now) for d in days):
        return None
    published = (now - timedelta(hours=12)).date()  # the latest publication day at or before now
    spec = {
        "reportType": report.report_type,
        "reportOptions": options,
        "lastUpdatedDate": published.isoformat(),
        "dataStartTime": days[0].isoformat(),
        "dataEndTime": days[-1].isoformat(),
        "marketplaceIds": report.marketplace_ids,
    }
    currency = MARKETPLACES_BY_ID[report.marketplace_ids[0]].currency
    manufacturing = options["distributorView"] == "MANUFACTURING"
    aggregate, by_asin = [], []
    for day in days:
        figures = [world.day_figures(day)[p.asin] for p in world.products]
        if report.report_type == VENDOR_INVENTORY:
            aggregate.append(_inventory_row(figures, currency, asin=None))
            by_asin.extend(_inventory_row([f], currency, asin=f.asin) for f in figures)
        else:
            aggregate.append(_sales_row(figures, currency, manufacturing, asin=None))
            by_asin.extend(_sales_row([f], currency, manufacturing, asin=f.asin) for f in figures)
    if report.report_type == VENDOR_INVENTORY:
        return {"reportSpecification": spec, "inventoryAggregate": aggregate, "inventoryByAsin": by_asin}
    return {"reportSpecification": spec, "salesAggregate": aggregate, "salesByAsin": by_asin}


def _head(figures: list[DayFigures], asin: str | None) -> dict:
    out = {"startDate": figures[0].day.isoformat(), "endDate": figures[0].day.isoformat()}
    if asin is not None:
        out["asin"] = asin
    return out


def _inventory_row(figures: list[DayFigures], currency: str, asin: str | None) -> dict:
    def total(name: str):
        return sum((getattr(f, name) for f in figures), start=type(getattr(figures[0], name))(0))

    lead = sum(f.average_vendor_lead_time_days for f in figures) / len(figures)
    return {
        **_head(figures, asin),
        "netReceivedInventoryCost": _amount(total("net_received_cost"), currency),
        "netReceivedInventoryUnits": total("net_received_units"),
        "openPurchaseOrderUnits": total("open_purchase_order_units"),
        "averageVendorLeadTimeDays": round(lead, 1),
        "unfilledCustomerOrderedUnits": total("unfilled_customer_ordered_units"),
        "sellableOnHandInventoryCost": _amount(total("sellable_on_hand_cost"), currency),
        "sellableOnHandInventoryUnits": total("sellable_on_hand_units"),
        "unsellableOnHandInventoryCost": _amount(total("unsellable_on_hand_cost"), currency),
        "unsellableOnHandInventoryUnits": total("unsellable_on_hand_units"),
        "aged90PlusDaysSellableInventoryCost": _amount(Decimal(0), currency),
        "aged90PlusDaysSellableInventoryUnits": 0,
        "unhealthyInventoryCost": _amount(Decimal(0), currency),
        "unhealthyInventoryUnits": 0,
    }


def _sales_row(figures: list[DayFigures], currency: str, manufacturing: bool, asin: str | None) -> dict:
    out = {**_head(figures, asin), "customerReturns": sum(f.customer_returns for f in figures)}
    if manufacturing:
        out["orderedRevenue"] = _amount(sum((f.ordered_revenue for f in figures), Decimal(0)), currency)
        out["orderedUnits"] = sum(f.ordered_units for f in figures)
    out["shippedCogs"] = _amount(sum((f.shipped_cogs for f in figures), Decimal(0)), currency)
    out["shippedRevenue"] = _amount(sum((f.shipped_revenue for f in figures), Decimal(0)), currency)
    out["shippedUnits"] = sum(f.shipped_units for f in figures)
    return out
