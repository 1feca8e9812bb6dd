"""The whole sandbox in one object: both servers, the seller, the clock and the faults, for tests and the CLI."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from amazon_optiply.sandbox import optiply
from amazon_optiply.sandbox.amazon import (
    DEFAULT_LWA_APP_ID,
    DEFAULT_LWA_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
    AmazonBackend,
    AmazonSettings,
    build_amazon_server,
)
from amazon_optiply.sandbox.clock import SandboxClock
from amazon_optiply.sandbox.faults import FaultRates, Faults
from amazon_optiply.sandbox.old_integration import OldIntegrationAccount, seed_old_integration
from amazon_optiply.sandbox.seller import SellerConfig, SellerWorld
from amazon_optiply.sandbox.vendor import VendorConfig, VendorWorld

OPTIPLY_ACCOUNT_ID = 1
OPTIPLY_COUPLING_ID = 42


@dataclass
class SandboxConfig:
    seller: SellerConfig = field(default_factory=SellerConfig)
    amazon: AmazonSettings = field(default_factory=AmazonSettings)
    faults: FaultRates = field(default_factory=FaultRates)
    host: str = "127.0.0.1"
    sp_api_port: int = 0
    optiply_port: int = 0
    frozen_clock: bool = False
    optiply_token_ttl_seconds: float = 3600
    # Start from an Optiply account the old Amazon integration fed until now (see old_integration.py).
    old_integration: bool = False
    # How far back that integration's sell orders reach (the platform's default ORDERS_LOOKBACK_DAYS is 7).
    old_integration_order_days: int = 7
    # A Vendor Central account served next to the seller (Vendor Orders, vendor reports, its catalog).
    vendor: VendorConfig | None = None


def credentials_from_env(settings: AmazonSettings) -> AmazonSettings:
    """Accept the credentials the platform will send, when they are in the environment at start."""
    return replace(
        settings,
        refresh_token=os.environ.get("SP_API_REFRESH_TOKEN", DEFAULT_REFRESH_TOKEN),
        client_id=os.environ.get("LWA_APP_ID", DEFAULT_LWA_APP_ID),
        client_secret=os.environ.get("LWA_CLIENT_SECRET", DEFAULT_LWA_CLIENT_SECRET),
    )


class Sandbox:
    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.clock = SandboxClock(start=self.config.seller.origin, frozen=self.config.frozen_clock)
        self.world = SellerWorld(self.config.seller)
        self.faults = Faults(self.config.faults, self.config.seller.seed)
        self.vendor = VendorWorld(self.config.vendor) if self.config.vendor else None
        self.amazon = AmazonBackend(self.world, self.clock, self.faults, self.config.amazon, self.vendor)
        self.optiply_credentials = {
            "username": os.environ.get("OPTIPLY_USERNAME", optiply.DEFAULT_USERNAME),
            "password": os.environ.get("OPTIPLY_PASSWORD", optiply.DEFAULT_PASSWORD),
            "client_id": os.environ.get("OPTIPLY_CLIENT_ID", optiply.DEFAULT_CLIENT_ID),
            "client_secret": os.environ.get("OPTIPLY_CLIENT_SECRET", optiply.DEFAULT_CLIENT_SECRET),
        }
        self.optiply = optiply.OptiplyBackend(
            **self.optiply_credentials,
            token_ttl_seconds=self.config.optiply_token_ttl_seconds,
            account_id=OPTIPLY_ACCOUNT_ID,
        )
        self.old_integration: OldIntegrationAccount | None = None
        if self.config.old_integration:
            now = self.clock.now()
            self.old_integration = seed_old_integration(
                self.world,
                self.optiply,
                OPTIPLY_COUPLING_ID,
                # The platform's default main marketplace: the first of AMAZON_MARKETPLACES (see env()).
                main=self.config.seller.marketplaces[0],
                orders_since=now - timedelta(days=self.config.old_integration_order_days),
                stopped_at=now,
            )
        self._servers = []

    def start(self) -> Sandbox:
        amazon_server = build_amazon_server(self.amazon, self.config.host, self.config.sp_api_port)
        optiply_server = optiply.build_optiply_server(
            self.optiply, self.faults, self.config.host, self.config.optiply_port
        )
        self._servers = [amazon_server, optiply_server]
        for server in self._servers:
            server.start_in_thread()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def sp_api_url(self) -> str:
        return self._servers[0].base_url

    @property
    def optiply_url(self) -> str:
        return self._servers[1].base_url

    def advance(self, delta: timedelta = timedelta(minutes=30)) -> datetime:
        now = self.clock.advance(delta)
        self.world.advance_to(now)
        if self.vendor is not None:
            self.vendor.advance_to(now)
        return now

    def set_faults(self, rates: FaultRates) -> None:
        self.faults.set_rates(rates)

    def env(self) -> dict[str, str]:
        """The environment the platform needs to talk to this sandbox."""
        a = self.amazon.settings
        o = self.optiply_credentials
        return {
            "SP_API_ENDPOINT": self.sp_api_url,
            "LWA_TOKEN_URL": f"{self.sp_api_url}/auth/o2/token",
            "SP_API_REFRESH_TOKEN": a.refresh_token,
            "LWA_APP_ID": a.client_id,
            "LWA_CLIENT_SECRET": a.client_secret,
            "OPTIPLY_API_URL": f"{self.optiply_url}/v1",
            "OPTIPLY_TOKEN_URL": f"{self.optiply_url}/api/auth/oauth/token",
            "OPTIPLY_USERNAME": o["username"],
            "OPTIPLY_PASSWORD": o["password"],
            "OPTIPLY_CLIENT_ID": o["client_id"],
            "OPTIPLY_CLIENT_SECRET": o["client_secret"],
            "OPTIPLY_ACCOUNT_ID": str(OPTIPLY_ACCOUNT_ID),
            "OPTIPLY_COUPLING_ID": str(OPTIPLY_COUPLING_ID),
            "AMAZON_MARKETPLACES": ",".join(self.config.seller.marketplaces),
        }
