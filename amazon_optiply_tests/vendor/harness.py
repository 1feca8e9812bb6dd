"""A vendor tenant on a fresh sandbox (its Vendor Central world and its own Optiply account), and its ground truth.

The expected Optiply records are computed from the vendor world's facts (sandbox/vendor.py), never from the
wire, by amazon_optiply/sandbox/vendor_truth.py (the README's vendor rules written out again, independently
of amazon_optiply/vendor), which the soak's `--vendor` variant uses too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml

from amazon_optiply.sandbox import vendor_truth
from amazon_optiply.sandbox.server import OPTIPLY_COUPLING_ID, Sandbox
from amazon_optiply.sandbox.vendor import VendorConfig, VendorFacts
from amazon_optiply_tests.sync.harness import sandbox_config

TENANT = "vendorco"


@dataclass
class VendorHarness:
    sandbox: Sandbox
    instance: dg.DagsterInstance
    flavour: str
    orders_start: datetime

    def run(self):
        """One cycle, whatever its outcome (a run expected to fail); `sync` is one that must succeed."""
        from amazon_optiply.definitions import defs
        from amazon_optiply.sync import sync_marketplace
        from amazon_optiply.tenants import TenantRegistry

        return sync_marketplace(defs(), TenantRegistry.load().tenant(TENANT), "DE", self.instance)

    def sync(self):
        result = self.run()
        assert result.success, result.line()
        return result

    def facts(self) -> VendorFacts:
        return self.sandbox.vendor.facts(self.sandbox.clock.now())

    def optiply(self, entity: str) -> dict[int, dict]:
        return self.sandbox.optiply.snapshot()[entity]

    def writes(self) -> int:
        return len(self.sandbox.optiply.writes())

    def advance(self, delta: timedelta) -> None:
        self.sandbox.advance(delta)

    # ---- ground truth (amazon_optiply/sandbox/vendor_truth.py) -------------------------------------------

    def expected_suppliers(self) -> dict[str, dict]:
        return vendor_truth.expected_suppliers(self.facts())

    def expected_products(self) -> dict[str, dict]:
        return vendor_truth.expected_products(self.facts())

    def expected_supplier_products(self) -> dict[str, dict]:
        return vendor_truth.expected_supplier_products(self.facts())

    def expected_buy_orders(self) -> dict[str, dict]:
        return vendor_truth.expected_buy_orders(self.facts())

    def expected_demand(self) -> dict[str, dict]:
        return vendor_truth.expected_demand(self.facts(), self.orders_start)

    def expected_po_sell_orders(self, parent_eans: set[str]) -> dict[str, dict]:
        return vendor_truth.expected_po_sell_orders(self.facts(), self.orders_start, parent_eans)


def vendor_sandbox(flavour_origin_days: int = 0, **vendor: object) -> Sandbox:
    config = sandbox_config(skus=20, orders_per_day=5)
    origin = config.seller.origin
    return Sandbox(replace(config, vendor=VendorConfig(origin=origin, **vendor))).start()


@contextmanager
def vendor_harness(
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    flavour: str = "full",
    settings: dict[str, object] | None = None,
    **vendor: object,
) -> Iterator[VendorHarness]:
    """A vendor tenant (`vendorco/DE`) in a registry of its own, pointed at a fresh vendor sandbox.

    `settings` are merged into the tenant's settings (e.g. `purchase_order_lookback_days`; an `orders_start`
    there is the harness's too); `vendor` goes to the sandbox's VendorConfig.
    """
    sandbox = vendor_sandbox(**vendor)
    try:
        orders_start = sandbox.clock.now() - timedelta(days=5)
        for name, value in sandbox.env().items():
            monkeypatch.setenv(name, value)
        entry = {
            "name": TENANT,
            "integration": "vendor",
            "marketplaces": ["DE"],
            "optiply_account_id": 1,
            "optiply_coupling_id": OPTIPLY_COUPLING_ID,
            "settings": {"flavour": flavour, "orders_start": orders_start.isoformat(), **(settings or {})},
        }
        orders_start = datetime.fromisoformat(str(entry["settings"]["orders_start"]))
        registry = workdir / "tenants.yaml"
        registry.write_text(yaml.safe_dump({"tenants": [entry]}))
        monkeypatch.setenv("TENANTS_FILE", str(registry))
        monkeypatch.setenv("DAGSTER_HOME", str(workdir))
        monkeypatch.setenv("ASSET_STORAGE_PATH", str(workdir / "assets"))
        monkeypatch.setenv("OPTIPLY_MIN_WRITE_INTERVAL_SECONDS", "0")
        with dg.DagsterInstance.ephemeral() as instance:
            yield VendorHarness(sandbox, instance, flavour, orders_start)
    finally:
        sandbox.stop()
