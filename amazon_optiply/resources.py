"""Dagster resources: configuration resolved for the run's tenant, building the clients (clients/).

Secrets are read from the variables the tenant's entry names, inside the run only: run config, tags and the
UI never hold them.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
from pydantic import PrivateAttr, field_validator

from amazon_optiply.clients.amazon import (
    DEFAULT_CREDENTIAL_VARIABLES,
    BudgetStore,
    SpApiCaller,
    SpApiCredentials,
)
from amazon_optiply.clients.optiply import OptiplyClient
from amazon_optiply.clients.selling_partner import SellingPartner
from amazon_optiply.marketplaces import fba_pool, fba_pool_home, marketplace_from_seller_central_url
from amazon_optiply.partitions import SettingError, marketplace_codes
from amazon_optiply.state import SyncState, open_state
from amazon_optiply.transforms.optiply import FLAVOURS, MATCH_KEYS


def require_https_unless_loopback(setting: str, url: str) -> None:
    """Credentials travel to these URLs: plain http is only acceptable to this machine (the sandbox)."""
    if not url or url.startswith("https://"):
        return
    host = urlsplit(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SettingError(
            f"{setting} must be an https URL (plain http is allowed only on loopback), got {url!r}"
        )


SETTING_VARIABLES = {"count_inbound": "AMAZON_COUNT_INBOUND", "count_awd": "AMAZON_COUNT_AWD"}
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def parse_flag(value: object, variable: str) -> bool:
    """A yes/no setting from the environment ("true", "0", ...) or a registry's YAML (true, 1, ...)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"{variable} must be true or false, not {value!r}")


class AmazonResource(dg.ConfigurableResource):
    """The run's SP-API access: configuration only; `partner` does the calls (clients/selling_partner.py)."""

    refresh_token: str
    lwa_app_id: str
    lwa_client_secret: str
    endpoint: str = ""  # SP_API_ENDPOINT: a sandbox or proxy instead of Amazon's regional host
    lwa_token_url: str = ""  # LWA_TOKEN_URL
    report_deadline_seconds: float = 1800
    max_poll_interval_seconds: float = 1.0
    # The variables the credentials came from, named in errors (never the values).
    credentials_named: str = DEFAULT_CREDENTIAL_VARIABLES

    _partner: SellingPartner = PrivateAttr()

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.setup(budget_store=None)

    def setup(self, budget_store: BudgetStore | None) -> None:
        """Build the client; `budget_store` shares the tenant's SP-API budget across its run processes."""
        require_https_unless_loopback("SP_API_ENDPOINT", self.endpoint)
        require_https_unless_loopback("LWA_TOKEN_URL", self.lwa_token_url)
        self._partner = SellingPartner(
            SpApiCredentials(self.refresh_token, self.lwa_app_id, self.lwa_client_secret),
            SpApiCaller(budget_store=budget_store, credentials_named=self.credentials_named),
            endpoint=self.endpoint,
            lwa_token_url=self.lwa_token_url,
            report_deadline_seconds=self.report_deadline_seconds,
            max_poll_interval_seconds=self.max_poll_interval_seconds,
        )

    @property
    def partner(self) -> SellingPartner:
        return self._partner

    @property
    def caller(self) -> SpApiCaller:
        return self._partner.caller


class OptiplyResource(dg.ConfigurableResource):
    api_url: str
    token_url: str
    username: str
    password: str
    client_id: str
    client_secret: str
    account_id: int
    coupling_id: int
    min_write_interval_seconds: float = 0.2  # the starting write rate (1/this per second); 0: no pacing
    max_writes_per_second: float = 20.0  # the adaptive write rate's ceiling
    max_concurrent_writes: int = 4

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
            max_writes_per_second=self.max_writes_per_second,
            max_concurrent_writes=self.max_concurrent_writes,
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
        return open_state(self.database_url or default_state_url())


class IntegrationSettings(dg.ConfigurableResource):
    """What an integration consultant sets per customer (see the README's settings table)."""

    marketplaces: str  # AMAZON_MARKETPLACES, e.g. "DE,FR"
    flavour: str = "full"  # full: products and sell orders; secondary: sell orders only
    match_key: str = "eanCode"  # the seed's optiply_key: how Amazon items find existing Optiply products
    seller_central_url: str = ""  # the seed's uri: its `.amazon.<country>/` names the main marketplace
    main_marketplace: str = ""  # overrides the URL; default: the URL's marketplace, else the first one
    stock_source: str = "fba"  # fba (FBA totalQuantity, falling back to the listing quantity) or listing
    # by_country: a Pan-EU pool's units by country from AFN inventory by country (today's rule when that
    # report is unavailable); pool_in_main: the whole pool in one marketplace always.
    pan_eu_stock: str = "by_country"
    orders_start: str = ""  # ISO date: orders placed earlier are never sent; default: first run - lookback
    orders_lookback_days: int = 7
    orders_overlap_minutes: int = 60
    held_order_retention_days: float = 14  # an order matching no product is retried this long, then given up
    catalog_refresh_days: int = 30
    fba_full_refresh_hours: float = 24  # between full inventory reads; cycles in between ask what changed
    # Above this share of unusable listing rows, enriched_catalog's blocking check stops product delivery.
    max_bad_row_share: float = 0.05
    # Units on their way into FBA count as stock (AMAZON_COUNT_INBOUND). Off by default: Optiply already counts
    # the purchase orders the seller records, and these units are those orders on their way.
    count_inbound: bool = False
    # US products count the seller's AWD units (on hand, and on their way from AWD to FBA) (AMAZON_COUNT_AWD).
    count_awd: bool = True

    @field_validator("count_inbound", "count_awd", mode="before")
    @classmethod
    def _flags(cls, value: object, info) -> bool:
        return parse_flag(value, SETTING_VARIABLES[info.field_name])

    @field_validator("stock_source")
    @classmethod
    def _stock_source(cls, value: str) -> str:
        if value not in ("fba", "listing"):
            raise ValueError(f"AMAZON_STOCK_SOURCE must be 'fba' or 'listing', not {value!r}")
        return value

    @field_validator("pan_eu_stock")
    @classmethod
    def _pan_eu_stock(cls, value: str) -> str:
        if value not in ("by_country", "pool_in_main"):
            raise ValueError(f"AMAZON_PAN_EU_STOCK must be 'by_country' or 'pool_in_main', not {value!r}")
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

    def synced_pool_marketplaces(self, country: str) -> list[str]:
        """The synced marketplaces that draw from the same FBA pool as this one (itself included)."""
        return [code for code in self.marketplace_codes if fba_pool(code) == fba_pool(country)]

    def orders_start_for_first_run(self, now: datetime) -> datetime:
        if self.orders_start:
            start = datetime.fromisoformat(self.orders_start.replace("Z", "+00:00"))
            return start if start.tzinfo else start.replace(tzinfo=UTC)
        return now - timedelta(days=self.orders_lookback_days)


class VendorSettings(dg.ConfigurableResource):
    """A vendor tenant's settings (see the README's vendor section)."""

    flavour: str = "full"  # full, or sell_orders_only (the seed's sync_sell_orders_only sub-tenant)
    orders_start: str = (
        ""  # ISO date: sell orders placed earlier are never sent; default first run - lookback
    )
    orders_lookback_days: int = 7
    # How far back purchase orders are read each cycle (at most 180: Amazon keeps 6 months); an order older
    # than this that is still open gets no further receipts.
    purchase_order_lookback_days: int = 60
    distributor_view: str = "MANUFACTURING"  # ordered units exist only in the MANUFACTURING view
    selling_program: str = "RETAIL"
    catalog_refresh_days: int = 30

    @field_validator("purchase_order_lookback_days")
    @classmethod
    def _lookback(cls, value: int) -> int:
        if not 1 <= value <= 180:
            raise ValueError(
                f"VENDOR_PURCHASE_ORDER_LOOKBACK_DAYS must be 1-180 (Amazon keeps 6 months), not {value}"
            )
        return value

    @field_validator("distributor_view")
    @classmethod
    def _view(cls, value: str) -> str:
        if value not in ("MANUFACTURING", "SOURCING"):
            raise ValueError(f"VENDOR_DISTRIBUTOR_VIEW must be MANUFACTURING or SOURCING, not {value!r}")
        return value

    @property
    def writes_purchasing(self) -> bool:
        return self.flavour == "full"

    def orders_start_for_first_run(self, now: datetime) -> datetime:
        if self.orders_start:
            start = datetime.fromisoformat(self.orders_start.replace("Z", "+00:00"))
            return start if start.tzinfo else start.replace(tzinfo=UTC)
        return now - timedelta(days=self.orders_lookback_days)
