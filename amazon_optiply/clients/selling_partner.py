"""One selling partner's SP-API access (a seller or a vendor): reports, inventory, catalog, participations.

Everything the platform asks Amazon goes through `SellingPartner`: the report lifecycle (reuse of a queued
or fresh report, adaptive polling, FATAL with its error document and Amazon's cooldown, CANCELLED as "no
data"), paging and the budget of `SpApiCaller`. It knows nothing of Dagster; the Dagster resource only
builds one per run, and tests drive it alone.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Protocol

from sp_api.api import Inventories, Reports, Sellers
from sp_api.api.catalog_items.catalog_items_2022_04_01 import CatalogItemsV20220401
from sp_api.base import ApiResponse

from amazon_optiply.clients.amazon import (
    ReportDocumentError,
    SpApiCaller,
    SpApiCredentials,
    build_api,
    download_report_document,
    utc_iso,
)
from amazon_optiply.marketplaces import MARKETPLACES
from amazon_optiply.transforms.catalog import SummariesPageBody, inventory_summaries_page

FINAL_REPORT_STATUSES = ("DONE", "CANCELLED", "FATAL")
REUSABLE_REPORT_STATUSES = ("IN_QUEUE", "IN_PROGRESS", "DONE")
# A DONE report at most this old (by Amazon's clock) is read again instead of asking for a new one.
REPORT_REUSE_FRESHNESS = timedelta(minutes=10)
# How far back getReports looks for a queued or running report to reuse.
REPORT_REUSE_LOOKBACK = timedelta(hours=1)
# How long Amazon refuses a report type again after it ended FATAL in a marketplace (sp-api.md: FBA
# near-real-time reports ~30 minutes, daily FBA reports ~4 hours). Other types (listings, orders): none.
REPORT_COOLDOWNS: dict[str, timedelta] = {
    "GET_FBA_MYI_UNSUPPRESSED_INVENTORY_DATA": timedelta(minutes=30),
    "GET_FBA_MYI_ALL_INVENTORY_DATA": timedelta(minutes=30),
    "GET_AFN_INVENTORY_DATA": timedelta(minutes=30),
    "GET_AFN_INVENTORY_DATA_BY_COUNTRY": timedelta(minutes=30),
    "GET_RESERVED_INVENTORY_DATA": timedelta(minutes=30),
    "GET_FBA_FULFILLMENT_CURRENT_INVENTORY_DATA": timedelta(hours=4),
    "GET_FBA_INVENTORY_PLANNING_DATA": timedelta(hours=4),
    # A near-real-time FBA sales report. The ledger views' class is not documented: no cooldown assumed.
    "GET_FBA_FULFILLMENT_CUSTOMER_SHIPMENT_SALES_DATA": timedelta(minutes=30),
}
DOCUMENT_ATTEMPTS = 4


def report_cooldown(report_type: str) -> timedelta:
    return REPORT_COOLDOWNS.get(report_type, timedelta(0))


class ReportFailed(RuntimeError):
    """Amazon ended a report FATAL or it did not finish by the deadline."""


@dataclass(frozen=True)
class FetchedReport:
    report_id: str
    report_type: str
    status: str  # DONE or CANCELLED (no data for the window)
    data_start: datetime | None
    data_end: datetime | None
    text: str | None
    charset: str | None
    seconds_waited: float
    polls: int
    reused: bool = False  # an existing report of the same type, marketplace and window was read


class FatalMemory(Protocol):
    """Where the last FATAL per report type and marketplace is remembered (the state database)."""

    def report_fatal(self, report_type: str, marketplace: str) -> tuple[datetime, str] | None: ...

    def record_report_fatal(
        self, report_type: str, marketplace: str, report_id: str, at: datetime, reason: str
    ) -> None: ...

    def clear_report_fatal(self, report_type: str, marketplace: str) -> None: ...


def _parse_amazon_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _whole_seconds(t: datetime) -> datetime:
    """A time as Amazon echoes it back: UTC, whole seconds."""
    return t.astimezone(UTC).replace(microsecond=0)


def amazon_time(headers) -> datetime:
    """Amazon's time from an answer's Date header; ours when it has none."""
    try:
        return parsedate_to_datetime((headers or {}).get("date") or "").astimezone(UTC)
    except (TypeError, ValueError):
        return datetime.now(UTC)


def _refuse_inside_cooldown(
    state: FatalMemory | None, marketplace: str, report_type: str, amazon_now: datetime
) -> None:
    """Amazon ends a report requested again inside its type's cooldown FATAL: fail now, saying until when."""
    cooldown = report_cooldown(report_type)
    fatal = state.report_fatal(report_type, marketplace) if state is not None and cooldown else None
    if fatal is None:
        return
    at, reason = fatal
    if amazon_now < at + cooldown:
        raise ReportFailed(
            f"{report_type} for {marketplace} ended FATAL at {utc_iso(at)} ({reason}); Amazon refuses it again "
            f"until {utc_iso(at + cooldown)} (its {cooldown} cooldown), so it was not requested again"
        )


@functools.lru_cache(maxsize=64)
def _shared_api(api_class, marketplace: str, credentials: SpApiCredentials, endpoint, token_url):
    """Made once a process, not once a step: each API object builds HTTP clients with their own TLS context
    (about 20 ms of CPU each). The library keeps per-request values on the object, so one is never used by
    two threads at once; a run's SP-API calls are made one after another."""
    return build_api(api_class, marketplace, credentials, endpoint, token_url)


class _ArrowInventories(Inventories):
    """getInventorySummaries pages kept as the answer's bytes, for the frame to read with pyarrow a few pages
    at a time (catalog.read_summaries_pages): never a Python dict per summary. An error answer or an empty
    one goes the library's way (its exceptions, an empty answer), so SpApiCaller sees what it always did. A
    2xx answer with summaries and errors both fails when the frame reads it (catalog.AnswerWithErrors)."""

    def _check_response(self, res, *args, **kwargs):
        page = inventory_summaries_page(res.content) if 200 <= res.status_code < 300 else None
        if page is None:
            return super()._check_response(res, *args, **kwargs)
        return ApiResponse(
            payload={"inventorySummaries": page.body},
            pagination={"nextToken": page.next_token} if page.next_token else None,
            headers=res.headers,
        )


class SellingPartner:
    """SP-API calls for one selling partner's authorisation; region hosts follow the marketplace unless
    `endpoint` overrides them (a sandbox or a proxy)."""

    def __init__(
        self,
        credentials: SpApiCredentials,
        caller: SpApiCaller,
        endpoint: str = "",
        lwa_token_url: str = "",
        report_deadline_seconds: float = 1800,
        max_poll_interval_seconds: float = 1.0,
    ) -> None:
        self.credentials = credentials
        self.caller = caller
        self.endpoint = endpoint
        self.lwa_token_url = lwa_token_url
        self.report_deadline_seconds = report_deadline_seconds
        self.max_poll_interval_seconds = max_poll_interval_seconds

    def api(self, api_class, marketplace: str):
        """A python-amazon-sp-api API object for this marketplace's region (or the endpoint override)."""
        return _shared_api(
            api_class, marketplace, self.credentials, self.endpoint or None, self.lwa_token_url or None
        )

    def participating_marketplaces(self, marketplace: str) -> set[str]:
        api = self.api(Sellers, marketplace)
        answer = self.caller.call(
            "getMarketplaceParticipations", lambda: api.get_marketplace_participation(), expect="payload"
        )
        payload = answer.payload if isinstance(answer.payload, list) else answer.payload.get("payload", [])
        return {
            p["marketplace"]["countryCode"]
            for p in payload
            if p.get("participation", {}).get("isParticipating", False)
        }

    def fetch_report(
        self,
        marketplace: str,
        report_type: str,
        log,
        start: datetime | None = None,
        end: datetime | None = None,
        state: FatalMemory | None = None,
        options: dict[str, str] | None = None,
        reuse_done_within: timedelta = REPORT_REUSE_FRESHNESS,
    ) -> FetchedReport:
        """A final report of this type, marketplace and window, with its document.

        `options` are the report's reportOptions (vendor reports require them), sent as a JSON object.
        getReports does not say which options a report was made with, so a report with options is never
        reused: a second one of the same window costs one createReport, a reused one of another view
        would be wrong data.

        A queued, running or recently DONE report (at most `reuse_done_within` old) of the same type,
        marketplace and window is reused (one getReports call); otherwise one is created, unless it ended FATAL within its type's cooldown
        (remembered in `state`). The report is polled adaptively until final or the deadline. CANCELLED
        comes back with no text (Amazon: no data for the window); FATAL raises ReportFailed with Amazon's
        error document.
        """
        api = self.api(Reports, marketplace)
        marketplace_id = MARKETPLACES[marketplace].marketplace_id
        found, amazon_now = self._reusable_report(
            api, report_type, marketplace_id, start, end, reuse_done_within
        )
        if options:
            found = None
        if found is not None:
            report_id = found["reportId"]
            log.info(
                f"reusing {report_type} report {report_id} for {marketplace} "
                f"({found['processingStatus']}, created {found.get('createdTime')})"
            )
        else:
            _refuse_inside_cooldown(state, marketplace, report_type, amazon_now)
            body: dict = {"reportType": report_type, "marketplaceIds": [marketplace_id]}
            if start is not None:
                body["dataStartTime"] = utc_iso(start)
            if end is not None:
                body["dataEndTime"] = utc_iso(end)
            if options:
                body["reportOptions"] = dict(options)
            report_id = self.caller.call(
                "createReport", lambda: api.create_report(**body), expect="reportId"
            ).payload["reportId"]
        report, waited, polls = self._wait_until_final(api, report_id, report_type, marketplace, log, found)
        status = report["processingStatus"]
        data_start = _parse_amazon_time(report.get("dataStartTime"))
        data_end = _parse_amazon_time(report.get("dataEndTime"))
        reused = found is not None
        if status == "CANCELLED":
            if state is not None:
                state.clear_report_fatal(report_type, marketplace)
            return FetchedReport(
                report_id, report_type, status, data_start, data_end, None, None, waited, polls, reused
            )
        document = self._download(api, report["reportDocumentId"], f"{report_type} report {report_id}", log)
        if status == "FATAL":
            reason = " ".join(document.text.split())[:500] or "no error document text"
            at = _parse_amazon_time(report.get("createdTime")) or amazon_now
            message = (
                f"{report_type} report {report_id} for {marketplace} ended FATAL at {utc_iso(at)}: {reason}"
            )
            if state is not None:
                state.record_report_fatal(report_type, marketplace, report_id, at, reason)
            cooldown = report_cooldown(report_type)
            if cooldown:
                message += f"; Amazon refuses it again until {utc_iso(at + cooldown)}"
            raise ReportFailed(message)
        if state is not None:
            state.clear_report_fatal(report_type, marketplace)
        return FetchedReport(
            report_id,
            report_type,
            status,
            data_start,
            data_end,
            document.text,
            document.charset,
            waited,
            polls,
            reused,
        )

    def _reusable_report(
        self,
        api,
        report_type: str,
        marketplace_id: str,
        start: datetime | None,
        end: datetime | None,
        fresh_for: timedelta = REPORT_REUSE_FRESHNESS,
    ) -> tuple[dict | None, datetime]:
        """The newest queued, running or fresh DONE report of this type, marketplace and window; and Amazon's now.

        Freshness is judged by Amazon's clock (the answer's Date header), as createdTime is Amazon's.
        """
        answer = self.caller.call(
            "getReports",
            lambda: api.get_reports(
                reportTypes=[report_type],
                marketplaceIds=[marketplace_id],
                processingStatuses=list(REUSABLE_REPORT_STATUSES),
                createdSince=utc_iso(datetime.now(UTC) - max(REPORT_REUSE_LOOKBACK, fresh_for)),
                pageSize=100,
            ),
            expect="reports",
        )
        amazon_now = amazon_time(answer.headers)
        candidates = []
        for report in answer.payload["reports"]:
            created = _parse_amazon_time(report.get("createdTime"))
            if (
                created is None
                or report.get("reportType") != report_type
                or report.get("marketplaceIds") != [marketplace_id]
                or report.get("processingStatus") not in REUSABLE_REPORT_STATUSES
            ):
                continue
            if start is not None and _parse_amazon_time(report.get("dataStartTime")) != _whole_seconds(start):
                continue
            if end is not None and _parse_amazon_time(report.get("dataEndTime")) != _whole_seconds(end):
                continue
            if report["processingStatus"] == "DONE" and amazon_now - created > fresh_for:
                continue
            candidates.append((created, report))
        if not candidates:
            return None, amazon_now
        return max(candidates, key=lambda c: c[0])[1], amazon_now

    def _wait_until_final(
        self, api, report_id: str, report_type: str, marketplace: str, log, known: dict | None
    ) -> tuple[dict, float, int]:
        """Poll getReport until the report is final: fast at first, then less often, never past the deadline."""
        began = time.monotonic()
        interval, polls = min(0.2, self.max_poll_interval_seconds), 0
        report = known
        while True:
            if report is None or report["processingStatus"] not in FINAL_REPORT_STATUSES:
                report = self.caller.call(
                    "getReport", lambda: api.get_report(report_id), expect="processingStatus"
                ).payload
                polls += 1
            status = report["processingStatus"]
            waited = time.monotonic() - began
            if status in FINAL_REPORT_STATUSES:
                return report, waited, polls
            if waited > self.report_deadline_seconds:
                raise ReportFailed(
                    f"{report_type} report {report_id} for {marketplace} is still {status} after {waited:.0f} s, "
                    f"past the deadline of {self.report_deadline_seconds:.0f} s "
                    "(AMAZON_REPORT_DEADLINE_SECONDS); the next run reuses it rather than asking again"
                )
            if polls % 20 == 0:
                log.info(f"{report_type} report {report_id} for {marketplace}: {status} after {waited:.0f} s")
            time.sleep(min(interval, max(self.report_deadline_seconds - waited, 0) + 0.05))
            # At most one poll a second: DONE is seen within a second, and the two SP-API steps the
            # `amazon_sp_api` pool lets run at once stay within getReport's 2 per second.
            interval = min(interval * 1.5, self.max_poll_interval_seconds)

    def _download(self, api, document_id: str, what: str, log):
        """Get a fresh presigned URL and download; an expired URL or a truncated transfer is tried again."""
        for attempt in range(1, DOCUMENT_ATTEMPTS + 1):
            answer = self.caller.call(
                "getReportDocument", lambda: api.get_report_document(document_id), expect="url"
            )
            try:
                return download_report_document(
                    answer.payload["url"], answer.payload.get("compressionAlgorithm")
                )
            except ReportDocumentError as exc:
                if attempt == DOCUMENT_ATTEMPTS:
                    raise ReportDocumentError(
                        f"{what}: document {document_id} still unusable after {attempt} downloads: {exc}"
                    ) from None
                log.warning(f"{what}: document download {attempt} failed ({exc}); trying a fresh URL")

    def inventory_summaries(
        self, marketplace: str, changed_since: datetime | None = None
    ) -> Iterator[tuple[SummariesPageBody | list[dict], datetime]]:
        """FBA inventory summaries of the marketplace, with details, a page at a time (following nextToken):
        the answer's body for catalog.fba_inventory_frame_from_pages to read.

        With `changed_since`, only the summaries Amazon changed since then (startDateTime): a steady-state
        cycle then costs pages for the changed rows, not for the whole inventory. Each page comes with
        Amazon's time of the answer (its Date header), from which the next cycle's window starts.
        """
        api = self.api(_ArrowInventories, marketplace)
        marketplace_id = MARKETPLACES[marketplace].marketplace_id
        next_token = None
        while True:
            params = {"details": True, "marketplaceIds": [marketplace_id], "granularityId": marketplace_id}
            if changed_since is not None:
                params["startDateTime"] = utc_iso(changed_since)
            if next_token:
                params["nextToken"] = next_token
            answer = self.caller.call(
                "getInventorySummaries",
                lambda p=params: api.get_inventory_summary_marketplace(**p),
                expect="inventorySummaries",
            )
            yield answer.payload["inventorySummaries"], amazon_time(answer.headers)
            next_token = (answer.pagination or {}).get("nextToken")
            if not next_token:
                return

    def catalog_items(self, marketplace: str, asins: list[str]) -> Iterator[list[dict]]:
        """Catalog items with identifiers and summaries, 20 ASINs a call (pageSize 20, so one page each)."""
        api = self.api(CatalogItemsV20220401, marketplace)
        marketplace_id = MARKETPLACES[marketplace].marketplace_id
        for i in range(0, len(asins), 20):
            batch = asins[i : i + 20]
            page_token = None
            while True:
                params = {
                    "identifiers": batch,
                    "identifiersType": "ASIN",
                    "includedData": ["identifiers", "summaries"],
                    "marketplaceIds": [marketplace_id],
                    "pageSize": 20,
                }
                if page_token:
                    params["pageToken"] = page_token
                answer = self.caller.call(
                    "searchCatalogItems", lambda p=params: api.search_catalog_items(**p), expect="items"
                )
                yield answer.payload["items"]
                page_token = (answer.payload.get("pagination") or {}).get("nextToken")
                if not page_token:
                    break
