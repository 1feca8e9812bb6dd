"""A sandbox seller (DE and US unless a test brings its own), a frozen clock, and the platform's environment pointed at it."""

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


@contextmanager
def running_harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seller: SellerConfig):
    """A harness for this seller; every marketplace of it must be a partition (the test session's default)."""
    config = SandboxConfig(
        seller=seller,
        amazon=AmazonSettings(report_queue_seconds=0.05, report_processing_seconds=0.2, rate_scale=50),
        frozen_clock=True,
    )
    sandbox = Sandbox(config).start()
    orders_start = pd.Timestamp(config.seller.origin - timedelta(days=2))
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ORDERS_START", orders_start.isoformat())
    monkeypatch.setenv("OPTIPLY_MIN_WRITE_INTERVAL_SECONDS", "0")
    monkeypatch.setenv("SYNC_STATE_DATABASE_URL", f"sqlite:///{tmp_path / 'state.sqlite'}")
    monkeypatch.setenv("ASSET_STORAGE_PATH", str(tmp_path / "assets"))
    (tmp_path / "dagster").mkdir()
    try:
        with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
            yield SyncHarness(sandbox, instance, orders_start, seller.marketplaces, seller.marketplaces[0])
    finally:
        sandbox.stop()


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    seller = SellerConfig(marketplaces=MARKETPLACE_CODES, skus=150, orders_per_day=60, seed=11)
    with running_harness(tmp_path, monkeypatch, seller) as harness:
        yield harness


@pytest.fixture
def sandbox_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The harness's sandbox seller and environment without a Dagster instance, for tests that bring their own.

    Yields (sandbox, orders_start). SYNC_STATE_DATABASE_URL points at SQLite under tmp_path until the test
    sets it.
    """
    config = SandboxConfig(
        seller=SellerConfig(marketplaces=MARKETPLACE_CODES, skus=150, orders_per_day=60, seed=11),
        amazon=AmazonSettings(report_queue_seconds=0.05, report_processing_seconds=0.2, rate_scale=50),
        frozen_clock=True,
    )
    sandbox = Sandbox(config).start()
    try:
        orders_start = pd.Timestamp(config.seller.origin - timedelta(days=2))
        for name, value in sandbox.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("ORDERS_START", orders_start.isoformat())
        monkeypatch.setenv("OPTIPLY_MIN_WRITE_INTERVAL_SECONDS", "0")
        monkeypatch.setenv("SYNC_STATE_DATABASE_URL", f"sqlite:///{tmp_path / 'state.sqlite'}")
        monkeypatch.setenv("ASSET_STORAGE_PATH", str(tmp_path / "assets"))
        yield sandbox, orders_start
    finally:
        sandbox.stop()
