"""The emulated Amazon side: LWA tokens, Sellers, Reports 2021-06-30, FBA Inventory v1, Catalog Items 2022-04-01.

Paths, shapes, error bodies and rate limits follow Amazon's API models, so python-amazon-sp-api runs
against it unchanged. The backend holds all state (reports, documents, tokens, call counts) for tests.
"""

from __future__ import annotations

import base64
import gzip
import json
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs

from amazon_optiply.marketplaces import MARKETPLACES, MARKETPLACES_BY_ID
from amazon_optiply.sandbox.clock import SandboxClock
from amazon_optiply.sandbox.faults import Faults
from amazon_optiply.sandbox.http import Request, Response, Router, SandboxHTTPServer
from amazon_optiply.sandbox.report_documents import (
    FBA_MYI_UNSUPPRESSED,
    SUPPORTED_REPORT_TYPES,
    encode_document,
    render_report,
)
from amazon_optiply.sandbox.seller import SellerWorld
from amazon_optiply.sandbox.vendor import VendorWorld

DEFAULT_REFRESH_TOKEN = "Atzr|sandbox-refresh-token"
DEFAULT_LWA_APP_ID = "amzn1.application-oa2-client.sandbox"
DEFAULT_LWA_CLIENT_SECRET = "sandbox-lwa-client-secret"

# Documented rate (requests per second) and burst per operation.
RATE_LIMITS: dict[str, tuple[float, int]] = {
    "getMarketplaceParticipations": (0.016, 15),
    "createReport": (0.0167, 15),
    "getReports": (0.0222, 10),
    "getReport": (2.0, 15),
    "cancelReport": (0.0222, 10),
    "getReportDocument": (0.0167, 15),
    "getInventorySummaries": (2.0, 2),
    "searchCatalogItems": (2.0, 2),
    "getCatalogItem": (2.0, 2),
    # Vendor Orders v1 (vendor_api.py)
    "getPurchaseOrders": (10.0, 10),
    "getPurchaseOrder": (10.0, 10),
    "getPurchaseOrdersStatus": (10.0, 10),
    # The seller's API streams (seller_api.py)
    "getOrderItems": (0.5, 30),
    "listFinancialEvents": (0.5, 30),
    "listInventory": (2.0, 2),
    "getShipments": (2.0, 30),
    "getShipmentItemsByShipmentId": (2.0, 30),
    "getAccount": (0.016, 15),
}

# FBA reports asked for again within this time go FATAL, as Amazon's near-real-time FBA reports do.
COOLDOWN_REPORT_TYPES = {FBA_MYI_UNSUPPRESSED, "GET_AFN_INVENTORY_DATA_BY_COUNTRY"}
REPORTS_PATH = "/reports/2021-06-30"
REPORT_STATUSES = ("CANCELLED", "DONE", "FATAL", "IN_PROGRESS", "IN_QUEUE")
INVENTORY_PAGE_SIZE = 50


@dataclass
class AmazonSettings:
    refresh_token: str = DEFAULT_REFRESH_TOKEN
    client_id: str = DEFAULT_LWA_APP_ID
    client_secret: str = DEFAULT_LWA_CLIENT_SECRET
    access_token_ttl_seconds: float = 3600
    report_queue_seconds: float = 0.3
    report_processing_seconds: float = 1.0
    fba_report_cooldown: timedelta = timedelta(minutes=30)
    document_url_ttl_seconds: float = 300
    next_token_ttl_seconds: float = 30
    # Multiplies every documented rate (bursts stay): 1.0 is Amazon; tests and demos may go faster.
    rate_scale: float = 1.0


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass
class Report:
    report_id: str
    report_type: str
    marketplace_ids: list[str]
    data_start: datetime
    data_end: datetime
    created: datetime
    created_mono: float
    queue_seconds: float
    processing_seconds: float
    outcome: str  # what the report will end as: DONE (or CANCELLED when empty), FATAL, CANCELLED
    fatal_reason: str = ""
    status: str = "IN_QUEUE"
    document_id: str | None = None
    rows: int | None = None
    done_mono: float | None = None  # when the sandbox marked it final (for latency measurements)
    processing_end: datetime | None = None
    options: Any = None  # reportOptions as the request sent them (vendor reports)

    def as_json(self) -> dict:
        out = {
            "reportId": self.report_id,
            "reportType": self.report_type,
            "marketplaceIds": self.marketplace_ids,
            "dataStartTime": _iso(self.data_start),
            "dataEndTime": _iso(self.data_end),
            "createdTime": _iso(self.created),
            "processingStatus": self.status,
        }
        if self.status != "IN_QUEUE":
            out["processingStartTime"] = _iso(self.created)
        if self.processing_end is not None:
            out["processingEndTime"] = _iso(self.processing_end)
        if self.document_id and self.status in ("DONE", "FATAL"):
            out["reportDocumentId"] = self.document_id
        return out


@dataclass
class Document:
    body: bytes  # gzip
    charset: str
    report_id: str


@dataclass
class AmazonBackend:
    world: SellerWorld
    clock: SandboxClock
    faults: Faults
    settings: AmazonSettings = field(default_factory=AmazonSettings)
    vendor: VendorWorld | None = None  # a Vendor Central account next to the seller (vendor_api.py)

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.reports: dict[str, Report] = {}
        self.documents: dict[str, Document] = {}
        self.download_urls: dict[str, tuple[str, float]] = {}
        self.access_tokens: dict[str, float] = {}
        self.next_tokens: dict[str, tuple[dict, float]] = {}
        self.buckets: dict[str, TokenBucket] = {}
        self.last_requested: dict[tuple[str, str], datetime] = {}
        self.calls: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self.base_url = ""
        # Test hook: report type -> fn(text, country) applied to a rendered document before it is stored.
        # A str is encoded in the marketplace's charset as usual; bytes are served as they are (so a test
        # can plant bytes the charset cannot decode). Only DONE reports with data pass through it.
        self.tamper_documents: dict[str, Callable[[str, str], str | bytes]] = {}
        # Test hook: report type -> (outcome, reason): every new report of that type ends FATAL (with the
        # reason in its error document) or CANCELLED, whatever its data, until the entry is removed.
        # A key (report type, date) forces only the reports of that type whose window holds that UTC day
        # (as Amazon cancels a vendor report with a day it has no data for), before the type's own entry.
        self.forced_outcomes: dict[str | tuple[str, date], tuple[str, str]] = {}
        self._report_seq = 50_000_000_000 + (self.world.config.seed % 1000) * 1_000_000

    # ---- helpers -------------------------------------------------------------------------------------
    def bucket(self, operation: str) -> TokenBucket:
        if operation not in self.buckets:
            rate, burst = RATE_LIMITS[operation]
            self.buckets[operation] = TokenBucket(rate * self.settings.rate_scale, burst)
        return self.buckets[operation]

    def rate_header(self, operation: str) -> str:
        return f"{RATE_LIMITS[operation][0] * self.settings.rate_scale:g}"

    def refresh(self, report: Report) -> Report:
        """Move a report along IN_QUEUE -> IN_PROGRESS -> final, by real elapsed time."""
        with self.lock:
            if report.status in ("DONE", "FATAL", "CANCELLED"):
                return report
            elapsed = time.monotonic() - report.created_mono
            if elapsed < report.queue_seconds:
                return report
            if elapsed < report.queue_seconds + report.processing_seconds:
                report.status = "IN_PROGRESS"
                return report
            self._finish(report)
            return report

    def _finish(self, report: Report) -> None:
        mp = MARKETPLACES_BY_ID[report.marketplace_ids[0]].country_code
        report.done_mono = report.created_mono + report.queue_seconds + report.processing_seconds
        report.processing_end = self.clock.now()
        from amazon_optiply.sandbox import vendor_reports

        if report.report_type in vendor_reports.VENDOR_REPORT_TYPES:
            vendor_reports.finish_vendor_report(self, report)
            return
        if report.outcome == "FATAL":
            report.status = "FATAL"
            report.document_id = self._store_document(
                report,
                encode_document(f"Report processing failed: {report.fatal_reason}\n", "UTF-8"),
                "UTF-8",
            )
            return
        if report.outcome == "CANCELLED":
            report.status = "CANCELLED"
            return
        now = self.clock.now()
        self.world.advance_to(now)
        from amazon_optiply.sandbox import seller_streams

        if report.report_type in seller_streams.STREAM_REPORT_TYPES:
            seller_streams.finish_stream_report(self, report, now)
            return
        text, rows = render_report(
            self.world, report.report_type, mp, report.data_start, report.data_end, now
        )
        report.rows = rows
        if rows == 0:
            report.status = "CANCELLED"  # Amazon cancels a report whose window holds no data
            return
        charset = MARKETPLACES[mp].charset
        tamper = self.tamper_documents.get(report.report_type)
        content = tamper(text, mp) if tamper else text
        body = encode_document(content, charset) if isinstance(content, str) else gzip.compress(content)
        report.document_id = self._store_document(report, body, charset)
        report.status = "DONE"

    def _store_document(self, report: Report, body: bytes, charset: str) -> str:
        doc_id = f"amzn1.spdoc.1.4.eu.{uuid.uuid4()}.T{secrets.token_hex(6).upper()}"
        self.documents[doc_id] = Document(body, charset, report.report_id)
        return doc_id

    def create_report(
        self, report_type: str, marketplace_ids: list[str], start: datetime, end: datetime
    ) -> Report:
        with self.lock:
            self._report_seq += 1
            now = self.clock.now()
            queue, processing = self.settings.report_queue_seconds, self.settings.report_processing_seconds
            if self.faults.draw("slow_report"):
                queue, processing = queue * 10, processing * 10
            outcome, reason = "DONE", ""
            key = (report_type, marketplace_ids[0])
            previous = self.last_requested.get(key)
            if report_type in COOLDOWN_REPORT_TYPES:
                if previous is not None and now - previous < self.settings.fba_report_cooldown:
                    outcome = "FATAL"
                    reason = (
                        f"{report_type} was requested at {_iso(previous)}, within its "
                        f"{self.settings.fba_report_cooldown} cooldown"
                    )
                else:
                    self.last_requested[key] = now
            forced = next(
                (
                    value
                    for key, value in self.forced_outcomes.items()
                    if isinstance(key, tuple)
                    and key[0] == report_type
                    and start.astimezone(UTC).date() <= key[1] <= end.astimezone(UTC).date()
                ),
                self.forced_outcomes.get(report_type),
            )
            if outcome == "DONE" and forced is not None:
                outcome, reason = forced
            elif outcome == "DONE" and self.faults.draw("report_fatal"):
                outcome, reason = "FATAL", "internal error while generating the report (injected fault)"
            elif outcome == "DONE" and self.faults.draw("report_cancelled"):
                outcome = "CANCELLED"
            report = Report(
                report_id=str(self._report_seq),
                report_type=report_type,
                marketplace_ids=marketplace_ids,
                data_start=start,
                data_end=end,
                created=now,
                created_mono=time.monotonic(),
                queue_seconds=queue,
                processing_seconds=processing,
                outcome=outcome,
                fatal_reason=reason,
            )
            self.reports[report.report_id] = report
            return report


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _parse_time(value: str, name: str) -> datetime:
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError) as exc:  # AttributeError: not a string at all (JSON number, list)
        raise _ApiError(
            400, "InvalidInput", f"Invalid {name}: {value!r} is not an ISO 8601 date-time"
        ) from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _int_param(request: Request, name: str, default: int) -> int:
    value = request.param(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise _ApiError(400, "InvalidInput", f"{name} must be an integer, not {value!r}.") from None


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def amazon_error(
    status: int, code: str, message: str, details: str = "", headers: dict | None = None
) -> Response:
    merged = {"x-amzn-RequestId": str(uuid.uuid4())}
    merged.update(headers or {})
    return Response.json(status, {"errors": [{"code": code, "message": message, "details": details}]}, merged)


class AmazonApp:
    """Routes SP-API requests to the backend, applying auth, rate limits and faults as Amazon would."""

    def __init__(self, backend: AmazonBackend) -> None:
        self.backend = backend
        self.router = Router()
        r = self.router
        r.add("POST", "/auth/o2/token", self.lwa_token)
        r.add(
            "GET",
            "/sellers/v1/marketplaceParticipations",
            self._op("getMarketplaceParticipations", self.participations),
        )
        r.add("POST", f"{REPORTS_PATH}/reports", self._op("createReport", self.create_report))
        r.add("GET", f"{REPORTS_PATH}/reports", self._op("getReports", self.get_reports))
        r.add("GET", f"{REPORTS_PATH}/reports/{{report_id}}", self._op("getReport", self.get_report))
        r.add("DELETE", f"{REPORTS_PATH}/reports/{{report_id}}", self._op("cancelReport", self.cancel_report))
        r.add(
            "GET",
            f"{REPORTS_PATH}/documents/{{document_id}}",
            self._op("getReportDocument", self.get_document),
        )
        r.add(
            "GET", "/fba/inventory/v1/summaries", self._op("getInventorySummaries", self.inventory_summaries)
        )
        r.add("GET", "/catalog/2022-04-01/items", self._op("searchCatalogItems", self.search_catalog))
        r.add("GET", "/catalog/2022-04-01/items/{asin}", self._op("getCatalogItem", self.get_catalog_item))
        r.add("GET", "/_documents/{token}", self.download)
        from amazon_optiply.sandbox.vendor_api import register_vendor_routes

        register_vendor_routes(self)
        from amazon_optiply.sandbox.seller_api import register_seller_api_routes

        register_seller_api_routes(self)

    def dispatch(self, request: Request) -> Response:
        handler, params, path_exists = self.router.match(request.method, request.path)
        if handler is None:
            if path_exists:
                return amazon_error(
                    405, "MethodNotAllowed", f"{request.method} is not allowed on {request.path}"
                )
            return amazon_error(404, "NotFound", f"Resource {request.path} is not found.")
        request.path_params = params
        try:
            return handler(request)
        except _ApiError as e:
            return amazon_error(e.status, e.code, e.message, e.details)

    # ---- cross-cutting: auth, throttling, faults ----------------------------------------------------------
    def _op(self, operation: str, handler):
        def wrapped(request: Request) -> Response:
            b = self.backend
            rate = {"x-amzn-RateLimit-Limit": b.rate_header(operation)}
            token = request.header("x-amz-access-token")
            with b.lock:
                expiry = b.access_tokens.get(token or "")
            if not token or expiry is None:
                return amazon_error(
                    403,
                    "Unauthorized",
                    "Access to requested resource is denied.",
                    "The access token you provided is revoked, malformed or invalid.",
                )
            if expiry < time.monotonic():
                return amazon_error(
                    403,
                    "Unauthorized",
                    "Access to requested resource is denied.",
                    "The access token you provided has expired.",
                )
            with b.lock:
                b.calls[operation] += 1
                allowed = b.bucket(operation).take()
            if not allowed or b.faults.draw("throttle"):
                with b.lock:
                    b.throttled[operation] += 1
                return amazon_error(
                    429, "QuotaExceeded", "You exceeded your quota for the requested resource.", headers=rate
                )
            if b.faults.draw("throttle_no_body"):
                return Response(429, b"", {"x-amzn-RequestId": str(uuid.uuid4())})
            if b.faults.draw("connection_reset"):
                return Response(0, reset_connection=True)
            if b.faults.draw("server_error"):
                return amazon_error(
                    500,
                    "InternalFailure",
                    "We encountered an internal error. Please try again.",
                    headers=rate,
                )
            if b.faults.draw("html_503"):
                return Response(
                    503,
                    b"<html><body><h1>503 Service Unavailable</h1></body></html>",
                    {"Content-Type": "text/html"},
                )
            response = handler(request)
            response.headers.setdefault("x-amzn-RateLimit-Limit", rate["x-amzn-RateLimit-Limit"])
            # Amazon's Date is Amazon's time; here that is the seller's clock, which tests freeze and advance.
            response.headers.setdefault("Date", format_datetime(b.clock.now(), usegmt=True))
            response.headers.setdefault("x-amzn-RequestId", str(uuid.uuid4()))
            return response

        return wrapped

    def lwa_token(self, request: Request) -> Response:
        b = self.backend
        with b.lock:
            b.calls["lwaToken"] += 1
        if b.faults.draw("lwa_outage"):
            return Response.json(500, {"error": "ServerError", "error_description": "Internal server error"})
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        grant = form.get("grant_type")
        if grant not in ("refresh_token", "client_credentials", "authorization_code"):
            return Response.json(
                400,
                {"error": "unsupported_grant_type", "error_description": f"Unsupported grant type: {grant}"},
            )
        if (
            form.get("client_id") != b.settings.client_id
            or form.get("client_secret") != b.settings.client_secret
        ):
            return Response.json(
                401, {"error": "invalid_client", "error_description": "Client authentication failed"}
            )
        if grant != "refresh_token" or form.get("refresh_token") != b.settings.refresh_token:
            return Response.json(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "The request has an invalid grant parameter : refresh_token",
                },
            )
        token = "Atza|" + secrets.token_urlsafe(32)
        with b.lock:
            b.access_tokens[token] = time.monotonic() + b.settings.access_token_ttl_seconds
        return Response.json(
            200,
            {
                "access_token": token,
                "refresh_token": b.settings.refresh_token,
                "token_type": "bearer",
                "expires_in": int(b.settings.access_token_ttl_seconds),
            },
        )

    # ---- Sellers -------------------------------------------------------------------------------------
    def participations(self, request: Request) -> Response:
        config = self.backend.world.config
        payload = []
        for code in config.marketplaces:
            m = MARKETPLACES[code]
            payload.append(
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
                    "storeName": config.store_name,
                }
            )
        return Response.json(200, {"payload": payload})

    # ---- Reports -------------------------------------------------------------------------------------
    def _seller_marketplace_ids(self) -> set[str]:
        return {MARKETPLACES[c].marketplace_id for c in self.backend.world.config.marketplaces}

    def create_report(self, request: Request) -> Response:
        try:
            body = request.json() or {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _ApiError(
                400, "InvalidInput", "Could not parse the request body as JSON.", str(exc)
            ) from exc
        if not isinstance(body, dict):
            raise _ApiError(400, "InvalidInput", "The request body must be a JSON object.")
        report_type = body.get("reportType")
        if not report_type:
            raise _ApiError(400, "InvalidInput", "reportType is required.")
        from amazon_optiply.sandbox import vendor_reports

        if report_type in vendor_reports.VENDOR_REPORT_TYPES:
            return vendor_reports.create_vendor_report(self, body)
        from amazon_optiply.sandbox import seller_streams

        if report_type in seller_streams.STREAM_REPORT_TYPES:
            return seller_streams.create_stream_report(self, body)
        if report_type not in SUPPORTED_REPORT_TYPES:
            raise _ApiError(400, "InvalidInput", f"Invalid Report Type {report_type}")
        marketplace_ids = body.get("marketplaceIds") or body.get("MarketplaceIds")
        if not marketplace_ids or not isinstance(marketplace_ids, list):
            raise _ApiError(400, "InvalidInput", "marketplaceIds is required and must be a non-empty array.")
        for mid in marketplace_ids:
            if not isinstance(mid, str) or mid not in MARKETPLACES_BY_ID:
                raise _ApiError(400, "InvalidInput", f"Invalid marketplaceId: {mid}")
            if mid not in self._seller_marketplace_ids():
                raise _ApiError(403, "Unauthorized", f"The seller does not participate in marketplace {mid}.")
        now = self.backend.clock.now()
        end = _parse_time(body["dataEndTime"], "dataEndTime") if body.get("dataEndTime") else now
        end = min(end, now)
        start = (
            _parse_time(body["dataStartTime"], "dataStartTime")
            if body.get("dataStartTime")
            else end - timedelta(days=30)
        )
        if start > end:
            raise _ApiError(400, "InvalidInput", "dataStartTime must be before dataEndTime.")
        report = self.backend.create_report(report_type, marketplace_ids[:1], start, end)
        return Response.json(202, {"reportId": report.report_id})

    def get_reports(self, request: Request) -> Response:
        b = self.backend
        token = request.param("nextToken")
        if token:
            if set(request.query) - {"nextToken"}:
                raise _ApiError(400, "InvalidInput", "nextToken must be the only parameter when it is given.")
            with b.lock:
                entry = b.next_tokens.pop(token, None)
            if entry is None:
                raise _ApiError(400, "InvalidInput", "The nextToken is invalid or has expired.")
            filters, offset = entry[0], entry[0]["offset"]
        else:
            types = request.param_list("reportTypes")
            if not types:
                raise _ApiError(400, "InvalidInput", "reportTypes is required when nextToken is not given.")
            statuses = request.param_list("processingStatuses")
            marketplaces = request.param_list("marketplaceIds")
            if len(types) > 10 or len(marketplaces) > 10:
                raise _ApiError(400, "InvalidInput", "reportTypes and marketplaceIds accept 1 to 10 values.")
            unknown = set(statuses) - set(REPORT_STATUSES)
            if unknown:
                raise _ApiError(
                    400, "InvalidInput", f"Invalid processingStatuses: {', '.join(sorted(unknown))}"
                )
            page_size = _int_param(request, "pageSize", 10)
            if not 1 <= page_size <= 100:
                raise _ApiError(400, "InvalidInput", "pageSize must be between 1 and 100.")
            now = b.clock.now()
            filters = {
                "types": types,
                "statuses": statuses,
                "marketplaces": marketplaces,
                "since": _parse_time(request.param("createdSince"), "createdSince")
                if request.param("createdSince")
                else now - timedelta(days=90),
                "until": _parse_time(request.param("createdUntil"), "createdUntil")
                if request.param("createdUntil")
                else now,
                "page_size": page_size,
            }
            offset = 0
        with b.lock:
            matching = []
            for report in sorted(b.reports.values(), key=lambda r: r.created_mono, reverse=True):
                b.refresh(report)
                if report.report_type not in filters["types"]:
                    continue
                if filters["statuses"] and report.status not in filters["statuses"]:
                    continue
                if filters["marketplaces"] and not set(report.marketplace_ids) & set(filters["marketplaces"]):
                    continue
                if not filters["since"] <= report.created <= filters["until"]:
                    continue
                matching.append(report)
            page = matching[offset : offset + filters["page_size"]]
            out: dict = {"reports": [r.as_json() for r in page]}
            if offset + filters["page_size"] < len(matching):
                next_token = secrets.token_urlsafe(24)
                b.next_tokens[next_token] = (
                    {**filters, "offset": offset + filters["page_size"]},
                    time.monotonic(),
                )
                out["nextToken"] = next_token
        return Response.json(200, out)

    def _report(self, request: Request) -> Report:
        report = self.backend.reports.get(request.path_params["report_id"])
        if report is None:
            raise _ApiError(404, "NotFound", f"Report {request.path_params['report_id']} not found.")
        return self.backend.refresh(report)

    def get_report(self, request: Request) -> Response:
        return Response.json(200, self._report(request).as_json())

    def cancel_report(self, request: Request) -> Response:
        report = self._report(request)
        with self.backend.lock:
            if report.status != "IN_QUEUE":
                raise _ApiError(
                    400,
                    "InvalidInput",
                    f"Report {report.report_id} is {report.status} and cannot be cancelled.",
                )
            report.status = "CANCELLED"
            report.outcome = "CANCELLED"
            report.processing_end = self.backend.clock.now()
        return Response(200, b"", {"Content-Type": "application/json"})

    def get_document(self, request: Request) -> Response:
        b = self.backend
        doc_id = request.path_params["document_id"]
        if doc_id not in b.documents:
            raise _ApiError(404, "NotFound", f"Report document {doc_id} not found.")
        token = secrets.token_urlsafe(24)
        with b.lock:
            b.download_urls[token] = (doc_id, time.monotonic() + b.settings.document_url_ttl_seconds)
        url = f"{b.base_url}/_documents/{token}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=300&X-Amz-Signature={secrets.token_hex(32)}"
        return Response.json(200, {"reportDocumentId": doc_id, "url": url, "compressionAlgorithm": "GZIP"})

    def download(self, request: Request) -> Response:
        """The presigned document URL: no auth header needed, plain gzip bytes, charset in Content-Type."""
        b = self.backend
        with b.lock:
            entry = b.download_urls.get(request.path_params["token"])
        if entry is None or entry[1] < time.monotonic() or b.faults.draw("expired_document_url"):
            return Response(
                403,
                b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
                b"<Message>Request has expired</Message></Error>",
                {"Content-Type": "application/xml"},
            )
        document = b.documents[entry[0]]
        body = document.body
        if b.faults.draw("corrupt_document"):
            body = body[: max(len(body) // 2, 10)]  # a truncated transfer
        # Never Content-Encoding: gzip; the bytes are the gzip file itself, as S3 serves them.
        return Response(200, body, {"Content-Type": f"text/plain;charset={document.charset}"})

    # ---- FBA inventory -------------------------------------------------------------------------------
    def inventory_summaries(self, request: Request) -> Response:
        b = self.backend
        token = request.param("nextToken")
        if token:
            with b.lock:
                entry = b.next_tokens.get(token)
            if entry is None:
                raise _ApiError(400, "InvalidInput", "Invalid nextToken.")
            query, issued = entry
            if time.monotonic() - issued > b.settings.next_token_ttl_seconds:
                raise _ApiError(
                    400, "InvalidInput", "The nextToken has expired. Start again without a nextToken."
                )
        else:
            if request.param("granularityType") != "Marketplace":
                raise _ApiError(400, "InvalidInput", "granularityType must be Marketplace.")
            mids = request.param_list("marketplaceIds")
            granularity_id = request.param("granularityId")
            if len(mids) != 1 or granularity_id not in mids:
                raise _ApiError(
                    400,
                    "InvalidInput",
                    "marketplaceIds must hold exactly one marketplace, equal to granularityId.",
                )
            if granularity_id not in self._seller_marketplace_ids():
                raise _ApiError(400, "InvalidInput", f"Invalid granularityId {granularity_id}.")
            skus = request.param_list("sellerSkus", "sellerSku")
            if len(skus) > 50:
                raise _ApiError(400, "InvalidInput", "sellerSkus accepts at most 50 SKUs.")
            start = request.param("startDateTime")
            query = {
                "mp": MARKETPLACES_BY_ID[granularity_id].country_code,
                "details": (request.param("details") or "false").lower() == "true",
                "start": _parse_time(start, "startDateTime").isoformat() if start else None,
                "skus": skus,
                "offset": 0,
            }
        b.world.advance_to(b.clock.now())
        with b.world._lock:
            fba = b.world.fba[query["mp"]]
            if query["start"]:
                fba = fba[fba["last_updated"] >= datetime.fromisoformat(query["start"])]
            if query["skus"]:
                fba = fba[fba["sku"].isin(query["skus"])]
            page = fba.iloc[query["offset"] : query["offset"] + INVENTORY_PAGE_SIZE]
            total = len(fba)
            summaries = [_summary(r, query["details"]) for r in page.itertuples(index=False)]
        out: dict = {
            "payload": {
                "granularity": {
                    "granularityType": "Marketplace",
                    "granularityId": MARKETPLACES[query["mp"]].marketplace_id,
                },
                "inventorySummaries": summaries,
            }
        }
        if query["offset"] + INVENTORY_PAGE_SIZE < total:
            next_token = base64.urlsafe_b64encode(secrets.token_bytes(24)).decode()
            with b.lock:
                b.next_tokens[next_token] = (
                    {**query, "offset": query["offset"] + INVENTORY_PAGE_SIZE},
                    time.monotonic(),
                )
            out["pagination"] = {"nextToken": next_token}
        return Response.json(200, out)

    # ---- Catalog -------------------------------------------------------------------------------------
    def _catalog_marketplace(self, request: Request) -> str:
        mids = request.param_list("marketplaceIds")
        if not mids:
            raise _ApiError(400, "InvalidInput", "marketplaceIds is required.")
        if len(mids) > 1:
            raise _ApiError(
                400, "InvalidInput", "marketplaceIds accepts at most 1 marketplace for this request."
            )
        if mids[0] not in MARKETPLACES_BY_ID:
            raise _ApiError(400, "InvalidInput", f"Invalid marketplaceId: {mids[0]}")
        return MARKETPLACES_BY_ID[mids[0]].country_code

    def search_catalog(self, request: Request) -> Response:
        b = self.backend
        token = request.param("pageToken")
        mp = self._catalog_marketplace(request)
        identifiers = request.param_list("identifiers")
        id_type = request.param("identifiersType")
        included = request.param_list("includedData") or ["summaries"]
        if not identifiers:
            raise _ApiError(
                400, "InvalidInput", "This sandbox supports identifier searches only: give identifiers."
            )
        if len(identifiers) > 20:
            raise _ApiError(400, "InvalidInput", "identifiers accepts at most 20 values.")
        if id_type not in ("ASIN", "EAN", "GTIN", "ISBN", "JAN", "MINSAN", "SKU", "UPC"):
            raise _ApiError(400, "InvalidInput", f"Invalid identifiersType: {id_type}")
        if id_type == "SKU" and not request.param("sellerId"):
            raise _ApiError(400, "InvalidInput", "sellerId is required when identifiersType is SKU.")
        page_size = _int_param(request, "pageSize", 10)
        if not 1 <= page_size <= 20:
            raise _ApiError(400, "InvalidInput", "pageSize must be between 1 and 20.")
        try:
            offset = int(base64.urlsafe_b64decode(token).decode()) if token else 0
        except ValueError:  # also binascii.Error and UnicodeDecodeError
            raise _ApiError(400, "InvalidInput", f"Invalid pageToken: {token!r}") from None
        items = _catalog_items(b.world, mp, identifiers, id_type)
        if b.vendor is not None:
            items += b.vendor.catalog_items(mp, identifiers, id_type)
        page = items[offset : offset + page_size]
        out: dict = {
            "numberOfResults": len(items),
            "pagination": {},
            "refinements": {"brands": [], "classifications": []},
            "items": [_item_json(item, mp, included) for item in page],
        }
        if offset + page_size < len(items):
            out["pagination"]["nextToken"] = base64.urlsafe_b64encode(
                str(offset + page_size).encode()
            ).decode()
        return Response.json(200, out)

    def get_catalog_item(self, request: Request) -> Response:
        mp = self._catalog_marketplace(request)
        b = self.backend
        items = _catalog_items(b.world, mp, [request.path_params["asin"]], "ASIN")
        if b.vendor is not None:
            items += b.vendor.catalog_items(mp, [request.path_params["asin"]], "ASIN")
        if not items:
            raise _ApiError(
                404, "NotFound", f"Requested item '{request.path_params['asin']}' not found in marketplace."
            )
        return Response.json(
            200, _item_json(items[0], mp, request.param_list("includedData") or ["summaries"])
        )


def _summary(r, details: bool) -> dict:
    total = (
        r.fulfillable
        + r.inbound_working
        + r.inbound_shipped
        + r.inbound_receiving
        + r.reserved
        + r.researching
        + r.unfulfillable
    )
    out = {
        "asin": r.asin,
        "fnSku": r.fnsku,
        "sellerSku": r.sku,
        "condition": r.condition,
        "lastUpdatedTime": _iso(r.last_updated),
        "productName": r.name,
        "totalQuantity": int(total),
    }
    if details:
        out["inventoryDetails"] = {
            "fulfillableQuantity": int(r.fulfillable),
            "inboundWorkingQuantity": int(r.inbound_working),
            "inboundShippedQuantity": int(r.inbound_shipped),
            "inboundReceivingQuantity": int(r.inbound_receiving),
            "reservedQuantity": {
                "totalReservedQuantity": int(r.reserved),
                "pendingCustomerOrderQuantity": int(r.reserved),
                "pendingTransshipmentQuantity": 0,
                "fbaInventoryProcessingQuantity": 0,
            },
            "researchingQuantity": {
                "totalResearchingQuantity": int(r.researching),
                "researchingQuantityBreakdown": [],
            },
            "unfulfillableQuantity": {
                "totalUnfulfillableQuantity": int(r.unfulfillable),
                "customerDamagedQuantity": int(r.unfulfillable),
                "warehouseDamagedQuantity": 0,
                "distributorDamagedQuantity": 0,
                "carrierDamagedQuantity": 0,
                "defectiveQuantity": 0,
                "expiredQuantity": 0,
            },
        }
    return out


def _catalog_items(world: SellerWorld, mp: str, identifiers: list[str], id_type: str) -> list[dict]:
    if mp not in world.listings:  # a marketplace the seller does not sell in (the vendor's, say)
        return []
    listings = world.listings[mp]
    wanted = set(identifiers)
    if id_type == "ASIN":
        rows = listings[listings["asin"].isin(wanted)]
    elif id_type == "SKU":
        rows = listings[listings["sku"].isin(wanted)]
    elif id_type in ("EAN", "GTIN"):
        rows = listings[listings["eans"].map(lambda e: bool(wanted & set(e)))]
    elif id_type == "UPC":
        rows = listings[listings["upc"].isin(wanted)]
    else:
        rows = listings.iloc[0:0]
    items, seen = [], set()
    for r in rows.itertuples(index=False):
        if r.asin in seen:
            continue
        seen.add(r.asin)
        items.append(
            {"asin": r.asin, "name": r.name, "eans": r.eans, "upc": r.upc, "brand": r.name.split(" ")[0]}
        )
    return items


def _item_json(item: dict, mp: str, included: list[str]) -> dict:
    market = MARKETPLACES[mp]
    out: dict = {"asin": item["asin"]}
    if "identifiers" in included:
        ids = [{"identifierType": "EAN", "identifier": e} for e in item["eans"]]
        if item["upc"]:
            ids.append({"identifierType": "UPC", "identifier": item["upc"]})
        out["identifiers"] = [{"marketplaceId": market.marketplace_id, "identifiers": ids}]
    if "summaries" in included:
        out["summaries"] = [
            {
                "marketplaceId": market.marketplace_id,
                "brand": item["brand"],
                "itemName": item["name"],
                "itemClassification": "BASE_PRODUCT",
                "websiteDisplayGroup": "kitchen_display_on_website",
            }
        ]
    return out


def build_amazon_server(backend: AmazonBackend, host: str = "127.0.0.1", port: int = 0) -> SandboxHTTPServer:
    app = AmazonApp(backend)
    server = SandboxHTTPServer(
        host, port, app.dispatch, lambda status, code, msg: amazon_error(status, code, msg)
    )
    backend.base_url = server.base_url
    return server
