"""A vendor tenant on a fresh sandbox (its Vendor Central world and its own Optiply account), and its ground truth.

The expected Optiply records are computed from the vendor world's facts (sandbox/vendor.py), never from the
wire, with the README's vendor rules written out again here, independently of amazon_optiply/vendor.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import dagster as dg
import pytest
import yaml

from amazon_optiply.sandbox.server import OPTIPLY_COUPLING_ID, Sandbox
from amazon_optiply.sandbox.vendor import VendorConfig, VendorFacts
from amazon_optiply_tests.sync.harness import sandbox_config

TENANT = "vendorco"


def cents(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def optiply_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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

    # ---- ground truth (full flavour) ----------------------------------------------------------------------

    def expected_products(self) -> dict[str, dict]:
        """remoteId (EAN) -> name, skuCode (ASIN), eanCode, stockLevel (latest published day's sellable, ≥ 0)."""
        facts = self.facts()
        now = facts.now
        latest: dict[str, object] = {}
        for day in facts.days:
            if day.available_at <= now and (day.asin not in latest or day.day > latest[day.asin].day):
                latest[day.asin] = day
        return {
            p.ean: {
                "name": p.title,
                "skuCode": p.asin,
                "eanCode": p.ean,
                "stockLevel": max(latest[p.asin].sellable_on_hand_units, 0) if p.asin in latest else 0,
            }
            for p in facts.products
        }

    def expected_buy_orders(self) -> dict[str, dict]:
        """Acknowledged POs without an unusable item and with something accepted: lines of accepted eaches."""
        out = {}
        for po in self.facts().purchase_orders:
            if po.acknowledged is None or po.has_unknown_unit or po.weight_priced:
                continue
            lines = {
                f"{po.number}-{i.sequence}": {
                    "asin": i.asin,
                    "quantity": i.accepted_eaches,
                    "subtotalValue": cents(i.net_cost * i.accepted_eaches),
                    "received": i.received_eaches,
                    "last_receive_date": i.last_receive_date,
                }
                for i in po.items
                if i.accepted_eaches > 0
            }
            if not lines:
                continue
            out[po.number] = {
                "supplier": po.vendor_code,
                "placed": optiply_time(po.placed),
                "expectedDeliveryDate": optiply_time(po.window_end),
                "completed": optiply_time(po.closed) if po.closed else None,
                "totalValue": cents(sum((i.net_cost * i.accepted_eaches for i in po.items), Decimal(0))),
                "lines": lines,
            }
        return out

    def expected_demand(self) -> dict[str, dict]:
        """remoteId <ASIN>-<day> -> quantity (ordered units), totalValue (ordered revenue), published days only."""
        facts = self.facts()
        return {
            f"{d.asin}-{d.day.isoformat()}": {
                "quantity": d.ordered_units,
                "totalValue": cents(d.ordered_revenue),
            }
            for d in facts.days
            if d.available_at <= facts.now and d.ordered_units > 0 and d.day >= self.orders_start.date()
        }

    # ---- ground truth (sell_orders_only) ------------------------------------------------------------------

    def expected_po_sell_orders(self, parent_eans: set[str]) -> dict[str, dict]:
        """POs placed since the orders start, acknowledged or closed, every product in the parent: sell orders."""
        out = {}
        for po in self.facts().purchase_orders:
            if po.placed < self.orders_start or po.state == "New" or po.has_unknown_unit or po.weight_priced:
                continue
            ordered = [i for i in po.items if i.ordered_eaches > 0]
            if not ordered or any(i.ean not in parent_eans for i in ordered):
                continue
            lines: dict[str, dict] = {}
            for i in ordered:
                line = lines.setdefault(i.ean, {"quantity": 0, "value": Decimal(0)})
                line["quantity"] += i.ordered_eaches
                line["value"] += i.net_cost * i.ordered_eaches
            out[po.number] = {
                "placed": optiply_time(po.placed),
                "lines": {
                    ean: {"quantity": v["quantity"], "subtotalValue": cents(v["value"])}
                    for ean, v in lines.items()
                },
                "totalValue": cents(sum((v["value"] for v in lines.values()), Decimal(0))),
            }
        return out


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
