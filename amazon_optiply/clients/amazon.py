"""SP-API access through python-amazon-sp-api, with the library's traps handled in one place.

The library assumes https hosts (its Host header is `endpoint[8:]`), caches LWA tokens per refresh token
only, returns an empty answer instead of raising on a 429/503 without a JSON body, and retries nothing.
This module gives it an endpoint and LWA URL from settings, a per-operation request budget, retries for
what is transient only, and a document download that checks what it received. It knows nothing of Dagster.
"""

from __future__ import annotations

import gzip
import logging
import random
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx
from sp_api.auth import AccessTokenClient
from sp_api.auth.exceptions import AuthorizationError
from sp_api.base import ApiResponse
from sp_api.base.exceptions import (
    SellingApiException,
    SellingApiForbiddenException,
    SellingApiRequestThrottledException,
    SellingApiServerException,
    SellingApiTemporarilyUnavailableException,
)

from amazon_optiply.clients.tls import tls_context
from amazon_optiply.marketplaces import MARKETPLACES, python_codec

log = logging.getLogger(__name__)

REGION_ENDPOINTS = {
    "NA": "https://sellingpartnerapi-na.amazon.com",
    "EU": "https://sellingpartnerapi-eu.amazon.com",
    "FE": "https://sellingpartnerapi-fe.amazon.com",
}
AWS_REGIONS = {"NA": "us-east-1", "EU": "eu-west-1", "FE": "us-west-2"}
LWA_TOKEN_URL = "https://api.amazon.com/auth/o2/token"
DEFAULT_CREDENTIAL_VARIABLES = "SP_API_REFRESH_TOKEN, LWA_APP_ID and LWA_CLIENT_SECRET"

# Amazon's documented rate (requests/second) and burst per operation; the live x-amzn-RateLimit-Limit wins.
DOCUMENTED_RATES: dict[str, tuple[float, int]] = {
    "getMarketplaceParticipations": (0.016, 15),
    "createReport": (0.0167, 15),
    "getReports": (0.0222, 10),
    "getReport": (2.0, 15),
    "cancelReport": (0.0222, 10),
    "getReportDocument": (0.0167, 15),
    "getInventorySummaries": (2.0, 2),
    "searchCatalogItems": (2.0, 2),
    "getCatalogItem": (2.0, 2),
    "getPurchaseOrders": (10.0, 10),
    "getPurchaseOrdersStatus": (10.0, 10),
    # The API streams (streams/api_client.py).
    "getOrderItems": (0.5, 30),
    "listFinancialEvents": (0.5, 30),
    "listInventory": (2.0, 2),  # AWD
    "getShipments": (2.0, 30),  # FBA Inbound v0
    "getShipmentItemsByShipmentId": (2.0, 30),
    "getAccount": (0.016, 15),
}


class AmazonError(RuntimeError):
    """A permanent SP-API failure: retrying will not help; the message says what to fix."""


class AmazonUnavailableError(RuntimeError):
    """Amazon kept answering with transient failures until the retry bound."""


class ReportDocumentError(RuntimeError):
    """A report document could not be downloaded or decoded (expired URL, corrupt gzip, bad charset)."""


@dataclass(frozen=True)
class SpApiCredentials:
    refresh_token: str = field(repr=False)
    lwa_app_id: str
    lwa_client_secret: str = field(repr=False)

    def as_library_dict(self) -> dict[str, str]:
        return {
            "refresh_token": self.refresh_token,
            "lwa_app_id": self.lwa_app_id,
            "lwa_client_secret": self.lwa_client_secret,
        }


@dataclass(frozen=True)
class Endpoint:
    """What python-amazon-sp-api reads from its `marketplace=` argument."""

    endpoint: str
    marketplace_id: str
    region: str


def _lwa_client_class(token_url: str) -> type[AccessTokenClient]:
    parts = urlsplit(token_url)

    class ConfiguredAccessTokenClient(AccessTokenClient):
        scheme = f"{parts.scheme}://"
        host = parts.netloc
        path = parts.path or "/auth/o2/token"

        def _get_cache_key(self, token_flavor: str = "") -> str:
            # The library keys its process-wide token cache by refresh token alone; add the LWA URL and app
            # so two endpoints (or two sandboxes) never share a token.
            return super()._get_cache_key(f"{token_url}|{self.cred.client_id}|{token_flavor}")

    return ConfiguredAccessTokenClient


_API = TypeVar("_API")


def build_api(
    api_class: type[_API],
    country_code: str,
    credentials: SpApiCredentials,
    endpoint_override: str | None = None,
    token_url: str | None = None,
    version: str | None = None,
    timeout: float = 60,
) -> _API:
    """An instance of a python-amazon-sp-api API class pointed at the marketplace's region or an override."""
    market = MARKETPLACES[country_code]
    endpoint = (endpoint_override or REGION_ENDPOINTS[market.region]).rstrip("/")
    host = urlsplit(endpoint).netloc

    class ConfiguredApi(api_class):  # type: ignore[misc, valid-type]
        @property
        def headers(self) -> dict[str, str]:
            headers = super().headers
            headers["host"] = host  # the library slices "https://" off; wrong for any other scheme
            return headers

    ConfiguredApi.__name__ = api_class.__name__
    kwargs: dict[str, Any] = {
        "credentials": credentials.as_library_dict(),
        "auth_token_client_class": _lwa_client_class(token_url or LWA_TOKEN_URL),
        "timeout": timeout,
        "verify": tls_context(),
    }
    if version:
        kwargs["version"] = version
    return ConfiguredApi(Endpoint(endpoint, market.marketplace_id, AWS_REGIONS[market.region]), **kwargs)


class BudgetStore(Protocol):
    """Where an operation's token bucket lives: this process, or a database all of a tenant's runs share."""

    def reserve(self, operation: str, rate: float, burst: int) -> float:
        """Take a token (going into debt when none is left); returns the seconds to wait before sending."""
        ...

    def drain(self, operation: str) -> None:
        """Empty the bucket: after a 429 Amazon's is empty too."""
        ...

    def learn_rate(self, operation: str, rate: float) -> None:
        """Remember the live rate Amazon announced, for every later reservation (other runs' too)."""
        ...


class LocalBudgetStore:
    """Token buckets in this process only (a client used alone, tests)."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # operation -> (tokens, updated)
        self._rates: dict[str, float] = {}
        self._lock = threading.Lock()

    def learn_rate(self, operation: str, rate: float) -> None:
        with self._lock:
            self._rates[operation] = rate

    def reserve(self, operation: str, rate: float, burst: int) -> float:
        with self._lock:
            rate = self._rates.get(operation, rate)
            now = time.monotonic()
            tokens, updated = self._buckets.get(operation, (float(burst), now))
            tokens = min(burst, tokens + (now - updated) * rate) - 1
            self._buckets[operation] = (tokens, now)
        return 0.0 if tokens >= 0 else -tokens / rate

    def drain(self, operation: str) -> None:
        with self._lock:
            tokens, _ = self._buckets.get(operation, (0.0, 0.0))
            self._buckets[operation] = (min(tokens, 0.0), time.monotonic())


class RequestBudget:
    """A client-side token bucket per operation, so a run spends Amazon's rate instead of collecting 429s.

    A token taken when none is left is a reservation: the caller waits until it would have refilled, so
    processes sharing one store queue fairly instead of polling.
    """

    def __init__(self, operation: str, rate: float, burst: int, store: BudgetStore) -> None:
        self.operation, self.rate, self.burst, self.store = operation, rate, burst, store

    def acquire(self) -> float:
        """Wait for a token; returns the seconds waited."""
        delay = self.store.reserve(self.operation, self.rate, self.burst)
        if delay >= 5:  # a wait an operator should be able to explain
            log.warning(
                "waiting %.0f s for SP-API budget of %s (%.4g requests/s)", delay, self.operation, self.rate
            )
        if delay > 0:
            time.sleep(delay)
        return delay

    def adopt_rate(self, rate: float) -> None:
        if rate != self.rate:
            self.rate = rate
            self.store.learn_rate(self.operation, rate)

    def drain(self) -> None:
        """After a 429 the server's bucket is empty; ours should be too."""
        self.store.drain(self.operation)


@dataclass
class CallStats:
    calls: dict[str, int] = field(default_factory=dict)
    throttled: dict[str, int] = field(default_factory=dict)
    retried: dict[str, int] = field(default_factory=dict)
    waited_seconds: float = 0.0

    def count(self, bucket: dict[str, int], operation: str) -> None:
        bucket[operation] = bucket.get(operation, 0) + 1


_TRANSIENT = (
    SellingApiRequestThrottledException,
    SellingApiServerException,
    SellingApiTemporarilyUnavailableException,
    httpx.TransportError,
)

T = TypeVar("T")


class SpApiCaller:
    """Runs SP-API calls within the budget, retrying only what is transient, with backoff and jitter."""

    def __init__(
        self,
        max_attempts: int = 8,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        budget_store: BudgetStore | None = None,
        credentials_named: str = DEFAULT_CREDENTIAL_VARIABLES,
    ) -> None:
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.budget_store = budget_store or LocalBudgetStore()
        # Named in the error when Login with Amazon refuses them: the variables, never the values.
        self.credentials_named = credentials_named
        self.budgets: dict[str, RequestBudget] = {}
        self.stats = CallStats()
        self._rng = random.Random()

    def budget(self, operation: str) -> RequestBudget:
        if operation not in self.budgets:
            rate, burst = DOCUMENTED_RATES[operation]
            self.budgets[operation] = RequestBudget(operation, rate, burst, self.budget_store)
        return self.budgets[operation]

    def call(self, operation: str, fn: Callable[[], ApiResponse], expect: str | None = None) -> ApiResponse:
        """Call `fn`; `expect` names a key the answer must hold (an empty answer means a bodiless 429/503)."""
        budget = self.budget(operation)
        last_error: BaseException | None = None
        for attempt in range(1, self.max_attempts + 1):
            self.stats.waited_seconds += budget.acquire()
            self.stats.count(self.stats.calls, operation)
            try:
                response = fn()
            except SellingApiForbiddenException as exc:
                if _is_token_problem(exc) and attempt == 1:
                    _clear_lwa_cache()  # a token revoked or from another endpoint: get a fresh one once
                    last_error = exc
                    continue
                raise AmazonError(
                    f"{operation}: access denied by Amazon (403, not retried): {_describe(exc)}. Check that the "
                    f"selling partner authorised this app ({self.credentials_named}) with the role this operation needs, "
                    "for a marketplace the seller sells in (AMAZON_MARKETPLACES)"
                ) from None
            except AuthorizationError as exc:
                if exc.status_code >= 500:
                    last_error = exc
                    self._sleep(operation, attempt)
                    continue
                raise AmazonError(
                    f"{operation}: Login with Amazon refused the credentials ({exc.status_code}); check "
                    f"{self.credentials_named}"
                ) from None
            except _TRANSIENT as exc:
                last_error = exc
                if isinstance(exc, SellingApiRequestThrottledException):
                    self.stats.count(self.stats.throttled, operation)
                    # A 429 may carry the live rate: wait by it, not by the documented (maybe stale) one.
                    self._adopt_rate(budget, exc.headers)
                    budget.drain()
                self._sleep(operation, attempt)
                continue
            except SellingApiException as exc:
                raise AmazonError(
                    f"{operation} refused by Amazon ({getattr(exc, 'code', '?')} {type(exc).__name__}, not "
                    f"retried): {_describe(exc)}"
                ) from None
            self._adopt_rate(budget, response.headers)
            if expect is not None and not _has_key(response, expect):
                # python-amazon-sp-api turns a 429 or 503 without a JSON body into an empty answer.
                last_error = AmazonUnavailableError(
                    f"{operation} returned an empty answer (throttled or unavailable)"
                )
                # It may as well be a 503 as a 429, and it carries no rate: back off (exponentially, with
                # jitter, bounded) rather than wait a whole token at the documented, possibly much slower, rate.
                self.stats.count(self.stats.throttled, operation)
                self._sleep(operation, attempt)
                continue
            return response
        raise AmazonUnavailableError(
            f"{operation} still failing after {self.max_attempts} attempts: {_describe(last_error)}"
        )

    def _sleep(self, operation: str, attempt: int) -> None:
        self.stats.count(self.stats.retried, operation)
        delay = self._rng.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))
        self.stats.waited_seconds += delay
        time.sleep(delay)

    @staticmethod
    def _adopt_rate(budget: RequestBudget, headers) -> None:
        """Follow x-amzn-RateLimit-Limit (requests per second) when the answer carries it."""
        try:
            value = (headers or {}).get("x-amzn-RateLimit-Limit")
            rate = float(value) if value else None
        except (AttributeError, TypeError, ValueError):
            rate = None
        if rate and rate > 0:
            budget.adopt_rate(rate)


def _has_key(response: ApiResponse, key: str) -> bool:
    payload = response.payload
    return isinstance(payload, (dict, list)) and (isinstance(payload, list) or key in payload)


def _is_token_problem(exc: SellingApiException) -> bool:
    text = " ".join(str(e.get("details", "")) + str(e.get("message", "")) for e in (exc.error or []))
    return "access token" in text.lower()


def _clear_lwa_cache() -> None:
    from sp_api.auth import access_token_client

    access_token_client.cache.clear()


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, SellingApiException):
        errors = exc.error or []
        return "; ".join(
            f"{e.get('code')}: {e.get('message')} {e.get('details') or ''}".strip() for e in errors
        )
    return f"{type(exc).__name__}: {exc}" if exc else "unknown"


@dataclass(frozen=True)
class DownloadedDocument:
    text: str
    charset: str
    compressed_bytes: int


def download_report_document(url: str, compression: str | None, timeout: float = 120) -> DownloadedDocument:
    """Fetch a presigned report document (no Amazon credentials sent), gunzip it, decode by its charset."""
    try:
        response = httpx.get(url, timeout=timeout, verify=tls_context())
    except httpx.TransportError as exc:
        raise ReportDocumentError(f"report document download failed: {type(exc).__name__}") from None
    if response.status_code != 200:
        reason = "the presigned URL has expired" if response.status_code == 403 else response.text[:200]
        raise ReportDocumentError(f"report document download answered {response.status_code}: {reason}")
    raw = response.content
    if compression:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ReportDocumentError(
                f"report document is not valid gzip ({exc}); it may be truncated"
            ) from None
    charset = _charset(response.headers.get("content-type", ""))
    text = raw.decode(python_codec(charset), errors="replace")
    return DownloadedDocument(text, charset, len(response.content))


def _charset(content_type: str) -> str:
    for part in content_type.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            return value.strip('"')
    return "iso-8859-1"  # Amazon's documented default when no charset is given


def utc_iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
