"""Dagster resources: Amazon (through python-amazon-sp-api), Optiply, the sync state, and the integration's settings.

Secrets arrive through `dg.EnvVar`, so run config and the UI show the variable's name, never its value.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
from pydantic import PrivateAttr, field_validator
from sp_api.api import Inventories, Reports, Sellers
from sp_api.api.catalog_items.catalog_items_2022_04_01 import CatalogItemsV20220401

from amazon_optiply.clients.amazon import (
    ReportDocumentError,
    SpApiCaller,
    SpApiCredentials,
    build_api,
    download_report_document,
    utc_iso,
)
from amazon_optiply.clients.optiply import OptiplyClient
from amazon_optiply.marketplaces import (
    MARKETPLACES,
    fba_pool,
    fba_pool_home,
    marketplace_from_seller_central_url,
)
from amazon_optiply.partitions import SettingError, marketplace_codes
from amazon_optiply.state import SyncState
from amazon_optiply.transforms.optiply import FLAVOURS, MATCH_KEYS

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


def require_https_unless_loopback(setting: str, url: str) -> None:
    """Credentials travel to these URLs: plain http is only acceptable to this machine (the sandbox)."""
    if not url or url.startswith("https://"):
        return
    host = urlsplit(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SettingError(
            f"{setting} must be an https URL (plain http is allowed only on loopback), got {url!r}"
        )


def _parse_amazon_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _whole_seconds(t: datetime) -> datetime:
    """A time as Amazon echoes it back: UTC, whole seconds."""
    return t.astimezone(UTC).replace(microsecond=0)


def _amazon_now(headers) -> datetime:
    """Amazon's time from an answer's Date header; ours when it has none."""
    try:
        return parsedate_to_datetime((headers or {}).get("date") or "").astimezone(UTC)
    except (TypeError, ValueError):
        return datetime.now(UTC)


def _refuse_inside_cooldown(
    state: SyncState | None, country: str, report_type: str, amazon_now: datetime
) -> None:
    """Amazon ends a report requested again inside its type's cooldown FATAL: fail now, saying until when."""
    cooldown = report_cooldown(report_type)
    fatal = state.report_fatal(report_type, country) if state is not None and cooldown else None
    if fatal is None:
        return
    at, reason = fatal
    if amazon_now < at + cooldown:
        raise ReportFailed(
            f"{report_type} for {country} ended FATAL at {utc_iso(at)} ({reason}); Amazon refuses it again "
            f"until {utc_iso(at + cooldown)} (its {cooldown} cooldown), so it was not requested again"
        )


class AmazonResource(dg.ConfigurableResource):
    """The seller's SP-API access. Region endpoints follow the marketplace unless `endpoint` overrides them."""

    refresh_token: str
    lwa_app_id: str
    lwa_client_secret: str
    endpoint: str = ""  # SP_API_ENDPOINT: a sandbox or proxy instead of Amazon's regional host
    lwa_token_url: str = ""  # LWA_TOKEN_URL
    report_deadline_seconds: float = 1800
    max_poll_interval_seconds: float = 1.0

    _caller: SpApiCaller = PrivateAttr()

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        require_https_unless_loopback("SP_API_ENDPOINT", self.endpoint)
        require_https_unless_loopback("LWA_TOKEN_URL", self.lwa_token_url)
        self._caller = SpApiCaller()

    @property
    def caller(self) -> SpApiCaller:
        return self._caller

    def _api(self, api_class, country: str):
        credentials = SpApiCredentials(self.refresh_token, self.lwa_app_id, self.lwa_client_secret)
        return build_api(api_class, country, credentials, self.endpoint or None, self.lwa_token_url or None)

    def participating_countries(self, country: str) -> set[str]:
        api = self._api(Sellers, country)
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
        country: str,
        report_type: str,
        log,
        start: datetime | None = None,
        end: datetime | None = None,
        state: SyncState | None = None,
    ) -> FetchedReport:
        """A final report of this type, marketplace and window, with its document.

        A queued, running or recently DONE report of the same type, marketplace and window is reused
        (one getReports call); otherwise one is created, unless it ended FATAL within its type's cooldown
        (remembered in `state`). The report is polled adaptively until final or the deadline. CANCELLED
        comes back with no text (Amazon: no data for the window); FATAL raises ReportFailed with Amazon's
        error document.
        """
        api = self._api(Reports, country)
        marketplace_id = MARKETPLACES[country].marketplace_id
        found, amazon_now = self._reusable_report(api, report_type, marketplace_id, start, end)
        if found is not None:
            report_id = found["reportId"]
            log.info(
                f"reusing {report_type} report {report_id} for {country} "
                f"({found['processingStatus']}, created {found.get('createdTime')})"
            )
        else:
            _refuse_inside_cooldown(state, country, report_type, amazon_now)
            body: dict = {"reportType": report_type, "marketplaceIds": [marketplace_id]}
            if start is not None:
                body["dataStartTime"] = utc_iso(start)
            if end is not None:
                body["dataEndTime"] = utc_iso(end)
            report_id = self.caller.call(
                "createReport", lambda: api.create_report(**body), expect="reportId"
            ).payload["reportId"]
        report, waited, polls = self._wait_until_final(api, report_id, report_type, country, log, found)
        status = report["processingStatus"]
        data_start = _parse_amazon_time(report.get("dataStartTime"))
        data_end = _parse_amazon_time(report.get("dataEndTime"))
        reused = found is not None
        if status == "CANCELLED":
            if state is not None:
                state.clear_report_fatal(report_type, country)
            return FetchedReport(
                report_id, report_type, status, data_start, data_end, None, None, waited, polls, reused
            )
        document = self._download(api, report["reportDocumentId"], f"{report_type} report {report_id}", log)
        if status == "FATAL":
            reason = " ".join(document.text.split())[:500] or "no error document text"
            at = _parse_amazon_time(report.get("createdTime")) or amazon_now
            message = f"{report_type} report {report_id} for {country} ended FATAL at {utc_iso(at)}: {reason}"
            if state is not None:
                state.record_report_fatal(report_type, country, report_id, at, reason)
            cooldown = report_cooldown(report_type)
            if cooldown:
                message += f"; Amazon refuses it again until {utc_iso(at + cooldown)}"
            raise ReportFailed(message)
        if state is not None:
            state.clear_report_fatal(report_type, country)
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
        self, api, report_type: str, marketplace_id: str, start: datetime | None, end: datetime | None
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
                createdSince=utc_iso(datetime.now(UTC) - REPORT_REUSE_LOOKBACK),
                pageSize=100,
            ),
            expect="reports",
        )
        amazon_now = _amazon_now(answer.headers)
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
            if report["processingStatus"] == "DONE" and amazon_now - created > REPORT_REUSE_FRESHNESS:
                continue
            candidates.append((created, report))
        if not candidates:
            return None, amazon_now
        return max(candidates, key=lambda c: c[0])[1], amazon_now

    def _wait_until_final(
        self, api, report_id: str, report_type: str, country: str, log, known: dict | None
    ) -> tuple[dict, float, int]:
        """Poll getReport until the report is final: fast at first, then less often, never past the deadline."""
        began = time.monotonic()
        interval, polls = 0.2, 0
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
                    f"{report_type} report {report_id} for {country} is still {status} after {waited:.0f} s, "
                    f"past the deadline of {self.report_deadline_seconds:.0f} s "
                    "(AMAZON_REPORT_DEADLINE_SECONDS); the next run reuses it rather than asking again"
                )
            if polls % 20 == 0:
                log.info(f"{report_type} report {report_id} for {country}: {status} after {waited:.0f} s")
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
        self, country: str, changed_since: datetime | None = None
    ) -> Iterator[tuple[list[dict], datetime]]:
        """FBA inventory summaries of the marketplace, with details, a page at a time (following nextToken).

        With `changed_since`, only the summaries Amazon changed since then (startDateTime): a steady-state
        cycle then costs pages for the changed rows, not for the whole inventory. Each page comes with
        Amazon's time of the answer (its Date header), from which the next cycle's window starts.
        """
        api = self._api(Inventories, country)
        marketplace_id = MARKETPLACES[country].marketplace_id
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
            yield answer.payload["inventorySummaries"], _amazon_now(answer.headers)
            next_token = (answer.pagination or {}).get("nextToken")
            if not next_token:
                return

    def catalog_items(self, country: str, asins: list[str]) -> Iterator[list[dict]]:
        """Catalog items with identifiers and summaries, 20 ASINs a call (pageSize 20, so one page each)."""
        api = self._api(CatalogItemsV20220401, country)
        marketplace_id = MARKETPLACES[country].marketplace_id
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


class OptiplyResource(dg.ConfigurableResource):
    api_url: str
    token_url: str
    username: str
    password: str
    client_id: str
    client_secret: str
    account_id: int
    coupling_id: int
    min_write_interval_seconds: float = 0.2

    def client(self, state: SyncState) -> OptiplyClient:
        require_https_unless_loopback("OPTIPLY_API_URL", self.api_url)
        require_https_unless_loopback("OPTIPLY_TOKEN_URL", self.token_url)
        return OptiplyClient(
            self.api_url,
            self.token_url,
            self.username,
            self.password,
            self.client_id,
            self.client_secret,
            self.account_id,
            self.coupling_id,
            token_store=state.token_store("optiply"),
            min_write_interval=self.min_write_interval_seconds,
        )


def default_state_url(tenant: str = "default") -> str:
    """A tenant's own SQLite file under DAGSTER_HOME; the environment-defined tenant keeps the original name."""
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    name = "sync_state.sqlite" if tenant == "default" else f"sync_state-{tenant}.sqlite"
    return f"sqlite:///{home.resolve() / name}"


class SyncStateResource(dg.ConfigurableResource):
    """Where the sync's memory lives: SQLite under DAGSTER_HOME by default, any SQLAlchemy URL in production."""

    database_url: str = ""

    def open(self) -> SyncState:
        return SyncState(self.database_url or default_state_url())


class IntegrationSettings(dg.ConfigurableResource):
    """What an integration consultant sets per customer (see the README's settings table)."""

    marketplaces: str  # AMAZON_MARKETPLACES, e.g. "DE,FR"
    flavour: str = "full"  # full: products and sell orders; secondary: sell orders only
    match_key: str = "eanCode"  # the seed's optiply_key: how Amazon items find existing Optiply products
    seller_central_url: str = ""  # the seed's uri: its `.amazon.<country>/` names the main marketplace
    main_marketplace: str = ""  # overrides the URL; default: the URL's marketplace, else the first one
    stock_source: str = "fba"  # fba (FBA totalQuantity, falling back to the listing quantity) or listing
    orders_start: str = ""  # ISO date: orders placed earlier are never sent; default: first run - lookback
    orders_lookback_days: int = 7
    orders_overlap_minutes: int = 60
    held_order_retention_days: float = 14  # an order matching no product is retried this long, then given up
    catalog_refresh_days: int = 30
    fba_full_refresh_hours: float = 24  # between full inventory reads; cycles in between ask what changed
    # Above this share of unusable listing rows, enriched_catalog's blocking check stops product delivery.
    max_bad_row_share: float = 0.05

    @field_validator("stock_source")
    @classmethod
    def _stock_source(cls, value: str) -> str:
        if value not in ("fba", "listing"):
            raise ValueError(f"AMAZON_STOCK_SOURCE must be 'fba' or 'listing', not {value!r}")
        return value

    @field_validator("max_bad_row_share")
    @classmethod
    def _max_bad_row_share(cls, value: float) -> float:
        if not 0 <= value <= 1:
            raise ValueError(f"MAX_BAD_ROW_SHARE must be between 0 and 1, not {value!r}")
        return value

    @field_validator("flavour")
    @classmethod
    def _flavour(cls, value: str) -> str:
        if value not in FLAVOURS:
            raise ValueError(f"OPTIPLY_FLAVOUR must be 'full' or 'secondary', not {value!r}")
        return value

    @field_validator("match_key")
    @classmethod
    def _match_key(cls, value: str) -> str:
        if value not in MATCH_KEYS:
            raise ValueError(f"OPTIPLY_MATCH_KEY must be 'eanCode' or 'skuCode', not {value!r}")
        return value

    @property
    def marketplace_codes(self) -> list[str]:
        return marketplace_codes(self.marketplaces)

    @property
    def main(self) -> str:
        if self.main_marketplace:
            return self.main_marketplace.strip().upper()
        if self.seller_central_url:
            return marketplace_from_seller_central_url(self.seller_central_url)
        return self.marketplace_codes[0]

    @property
    def writes_products(self) -> bool:
        return self.flavour == "full"

    def counts_pooled_fba(self, country: str) -> bool:
        """Whether this marketplace's products carry its FBA pool's stock (one per pool, see fba_pool_home)."""
        return fba_pool_home(self.marketplace_codes, self.main)[fba_pool(country)] == country

    def orders_start_for_first_run(self, now: datetime) -> datetime:
        if self.orders_start:
            start = datetime.fromisoformat(self.orders_start.replace("Z", "+00:00"))
            return start if start.tzinfo else start.replace(tzinfo=UTC)
        return now - timedelta(days=self.orders_lookback_days)
