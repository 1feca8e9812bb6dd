"""`python -m amazon_optiply.sync`: one headless sync of every marketplace, with a summary per marketplace.

With `--embedded-sandbox` it first starts the sandbox in-process and points the platform at it.
Exits non-zero when any marketplace fails.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Collection
from dataclasses import dataclass

import dagster as dg

from amazon_optiply.defs.automation import job_name
from amazon_optiply.tenants import Tenant, TenantRegistry, partition_key

SUMMARY_KEYS = {
    "optiply_products": ("products_created", "products_updated", "products_unchanged"),
    "optiply_sell_orders": ("orders_delivered", "orders_held", "orders_skipped"),
}


@dataclass
class MarketplaceResult:
    tenant: str
    marketplace: str
    success: bool
    summary: dict[str, int]
    error: str = ""

    def line(self) -> str:
        counts = " ".join(f"{k}={v}" for k, v in self.summary.items())
        where = partition_key(self.tenant, self.marketplace)
        if not self.success:
            # A failed product side still lets orders through: say what did go out.
            return f"{where}: FAILED {self.error}" + (f" ({counts})" if counts else "")
        return f"{where}: {counts}"


def sync_marketplace(
    defs: dg.Definitions, tenant: Tenant, marketplace: str, instance: dg.DagsterInstance
) -> MarketplaceResult:
    job = defs.resolve_job_def(job_name(tenant))
    key = partition_key(tenant.name, marketplace)
    if not instance.has_dynamic_partition(tenant.partitions_name, key):
        instance.add_dynamic_partitions(tenant.partitions_name, [key])
    result = job.execute_in_process(
        partition_key=key,
        instance=instance,
        raise_on_error=False,
        tags={"tenant": tenant.name, "marketplace": marketplace},
    )
    summary: dict[str, int] = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        for key in SUMMARY_KEYS.get(mat.asset_key.to_user_string(), ()):
            summary[key] = int(mat.metadata[key].value)
    error = ""
    if not result.success:
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        error = "; ".join(f"{e.step_key}: {_root_message(e.event_specific_data.error)}" for e in failures)
    return MarketplaceResult(tenant.name, marketplace, result.success, summary, error)


def _root_message(error) -> str:
    """The first line of the exception that started it: Dagster wraps an asset's error in its own."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return error.message.strip().splitlines()[0]


def sync_all(
    instance: dg.DagsterInstance | None = None,
    only: Collection[str] | None = None,
    definitions: dg.Definitions | None = None,
) -> list[MarketplaceResult]:
    """One run per marketplace of every tenant not paused (of the partition keys in `only`, when given), one
    after another; a new partition is registered first."""
    from amazon_optiply.definitions import defs

    definitions = definitions or defs()
    instance = instance or dg.DagsterInstance.get()
    registry = TenantRegistry.load()
    return [
        sync_marketplace(definitions, tenant, marketplace, instance)
        for tenant in registry.tenants.values()
        if not tenant.paused
        for marketplace in tenant.marketplaces
        if only is None or partition_key(tenant.name, marketplace) in only
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amazon_optiply.sync", description=__doc__)
    parser.add_argument("--embedded-sandbox", action="store_true", help="start the sandbox in-process first")
    parser.add_argument("--skus", type=int, default=2000, help="sandbox seller size")
    parser.add_argument(
        "--old-integration",
        action="store_true",
        help="the embedded sandbox starts from an Optiply account the old Amazon integration fed",
    )
    args = parser.parse_args(argv)
    sandbox = None
    if args.embedded_sandbox:
        from amazon_optiply.sandbox.seller import SellerConfig
        from amazon_optiply.sandbox.server import Sandbox, SandboxConfig

        marketplaces = tuple(os.environ.get("AMAZON_MARKETPLACES", "DE,FR,US").split(","))
        sandbox = Sandbox(
            SandboxConfig(
                seller=SellerConfig(marketplaces=marketplaces, skus=args.skus),
                old_integration=args.old_integration,
            )
        ).start()
        os.environ.update(sandbox.env())
        # The sandbox is local: no need to space writes as real Optiply wants.
        os.environ.setdefault("OPTIPLY_MIN_WRITE_INTERVAL_SECONDS", "0.01")
    try:
        results = sync_all()
    finally:
        if sandbox is not None:
            sandbox.stop()
    for r in results:
        print(r.line(), flush=True)
    return 0 if all(r.success for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
