"""The tests' sandbox seller (DE and US, a frozen clock), the platform pointed at it, and a harness to sync and inspect."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from amazon_optiply.marketplaces import MARKETPLACES
from amazon_optiply.sandbox.amazon import AmazonSettings
from amazon_optiply.sandbox.seller import SellerConfig
from amazon_optiply.sandbox.server import Sandbox, SandboxConfig

MARKETPLACE_CODES = ("DE", "US")
MAIN = "DE"


@dataclass
class SyncHarness:
    sandbox: Sandbox
    instance: dg.DagsterInstance
    orders_start: pd.Timestamp
    workdir: Path  # the sync state (state.sqlite) and the asset files
    marketplaces: tuple[str, ...] = MARKETPLACE_CODES
    main: str = MAIN  # the first marketplace: the platform's default main one

    def sync(self):
        from amazon_optiply.sync import sync_all

        results = sync_all(self.instance)
        failed = [r.line() for r in results if not r.success]
        assert not failed, failed
        return {r.marketplace: r.summary for r in results}

    def _latest_event_data(self, marketplace: str, event_type: str, matches) -> object:
        """The data of the newest event of this type in a marketplace's runs that `matches` accepts."""
        for run in self.instance.get_runs(filters=dg.RunsFilter(tags={"marketplace": marketplace})):
            for record in reversed(self.instance.all_logs(run.run_id)):
                event = record.dagster_event
                if event is not None and event.event_type_value == event_type and matches(event):
                    return event.event_specific_data
        return None

    def check_evaluation(self, marketplace: str, asset: str, check: str):
        """The latest evaluation of a check in a marketplace's runs."""
        evaluation = self._latest_event_data(
            marketplace,
            "ASSET_CHECK_EVALUATION",
            lambda e: (
                e.event_specific_data.asset_key.to_user_string() == asset
                and e.event_specific_data.check_name == check
            ),
        )
        if evaluation is None:
            raise AssertionError(f"no evaluation of {asset}:{check} for {marketplace}")
        return evaluation

    def check_metadata(self, marketplace: str, asset: str, check: str) -> dict:
        """The metadata of the latest evaluation of a check in a marketplace's runs."""
        evaluation = self.check_evaluation(marketplace, asset, check)
        return {k: v.value for k, v in evaluation.metadata.items()} | {"passed": evaluation.passed}

    def materialization_metadata(self, marketplace: str, asset: str) -> dict:
        """The metadata of an asset's latest materialization in a marketplace's runs."""
        data = self._latest_event_data(
            marketplace,
            "ASSET_MATERIALIZATION",
            lambda e: e.event_specific_data.materialization.asset_key.to_user_string() == asset,
        )
        if data is None:
            raise AssertionError(f"no materialization of {asset} for {marketplace}")
        return {k: v.value for k, v in data.materialization.metadata.items()}

    def expected_products(self, stock_source: str = "fba") -> pd.DataFrame:
        frames = []
        for code in self.marketplaces:
            suffix = None if code == self.main else MARKETPLACES[code].marketplace_id
            frames.append(self.sandbox.world.expected_products(code, suffix, stock_source))
        return pd.concat(frames, ignore_index=True)

    def expected_orders(self):
        now = self.sandbox.clock.now()
        return {
            code: self.sandbox.world.expected_sell_orders(code, self.orders_start.to_pydatetime(), now)
            for code in self.marketplaces
        }


def sandbox_config(seller: SellerConfig | None = None, **seller_settings: object) -> SandboxConfig:
    """The tests' sandbox: a small seller (DE and US unless told), fast reports, Amazon's rates × 50, a frozen clock."""
    settings = {
        "marketplaces": MARKETPLACE_CODES,
        "skus": 150,
        "orders_per_day": 60,
        "seed": 11,
    } | seller_settings
    return SandboxConfig(
        seller=seller or SellerConfig(**settings),
        amazon=AmazonSettings(report_queue_seconds=0.01, report_processing_seconds=0.05, rate_scale=50),
        frozen_clock=True,
    )


def point_at_sandbox(sandbox: Sandbox, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> pd.Timestamp:
    """Point the platform's environment at the sandbox, with its state and assets in `workdir`.

    Returns ORDERS_START: two days before the seller's origin, so the first sync has orders to deliver.
    """
    orders_start = pd.Timestamp(sandbox.config.seller.origin - timedelta(days=2))
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ORDERS_START", orders_start.isoformat())
    monkeypatch.setenv("OPTIPLY_MIN_WRITE_INTERVAL_SECONDS", "0")
    monkeypatch.setenv("SYNC_STATE_DATABASE_URL", f"sqlite:///{workdir / 'state.sqlite'}")
    monkeypatch.setenv("ASSET_STORAGE_PATH", str(workdir / "assets"))
    return orders_start


@contextmanager
def running_harness(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, seller: SellerConfig | None = None
) -> Iterator[SyncHarness]:
    """A fresh sandbox for this seller (a new Optiply account), the platform pointed at it, an in-memory instance.

    The runs execute in process, so the instance needs no daemon and no DAGSTER_HOME: an ephemeral one keeps
    runs and events in memory, half a sync's time against SQLite files. Every marketplace of the seller must
    be a partition (the test session's default).
    """
    sandbox = Sandbox(sandbox_config(seller)).start()
    try:
        orders_start = point_at_sandbox(sandbox, workdir, monkeypatch)
        marketplaces = sandbox.config.seller.marketplaces
        with dg.DagsterInstance.ephemeral() as instance:
            yield SyncHarness(sandbox, instance, orders_start, workdir, marketplaces, marketplaces[0])
    finally:
        sandbox.stop()
