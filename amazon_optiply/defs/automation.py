"""The 30-minute syncs of both integrations: one run per tenant and marketplace, each materializing its graph.

One job per integration and flavour; each tenant's runs use its own (`job_name`). The seller's secondary
flavour writes no products, so its job leaves out the listings, stock and catalog chain behind them and
fetches nothing it does not need; the vendor's sell_orders_only job reads purchase orders and writes sell
orders only. The `tenant_registry` sensor turns the registry into both integrations' partitions and starts
a new one's first sync. In the seller's full flavour the sell-order steps do not depend on the product
steps, so a failed listings report fails the run without stopping orders (see run_order.py for how they
still come after the products).
"""

import json
import os
from collections.abc import Iterator

import dagster as dg
import httpx

from amazon_optiply.defs.seller.streams.reports import NEAR_REAL_TIME_REPORT_STREAMS
from amazon_optiply.defs.vendor.selection import VENDOR_FULL, VENDOR_SELL_ORDERS_SIDE
from amazon_optiply.partitions import PARTITIONS_OF
from amazon_optiply.tenants import Tenant, TenantRegistry, partition_key

SELLER_GROUPS = ("amazon_raw", "warehouse", "optiply")
PRODUCT_SIDE = dg.AssetSelection.assets(
    "listings_report",
    "fba_inventory",
    "catalog_identifiers",
    "warehouse_stock",
    "enriched_catalog",
    "optiply_product_payloads",
    "optiply_products",
)


# The job each (integration, flavour) runs.
SYNC_JOBS = {
    ("seller", "full"): "sync_marketplace",
    ("seller", "secondary"): "sync_marketplace_orders_only",
    ("vendor", "full"): "vendor_sync",
    ("vendor", "sell_orders_only"): "vendor_sync_sell_orders_only",
}


def job_name(tenant: Tenant) -> str:
    return SYNC_JOBS[(tenant.integration, tenant.flavour)]


def _selection(integration: str, flavour: str) -> dg.AssetSelection:
    if integration == "vendor":
        return VENDOR_SELL_ORDERS_SIDE if flavour == "sell_orders_only" else VENDOR_FULL
    if flavour == "secondary":
        return dg.AssetSelection.groups(*SELLER_GROUPS) - PRODUCT_SIDE
    # warehouse_stock reads AFN inventory by country (the Pan-EU rule), so the full sync makes it too.
    return dg.AssetSelection.groups(*SELLER_GROUPS) | dg.AssetSelection.assets(*NEAR_REAL_TIME_REPORT_STREAMS)


def sync_job(integration: str, flavour: str) -> dg.JobDefinition:
    what = (
        "reports, stock, catalog" if integration == "seller" else "purchase orders, vendor reports, catalog"
    )
    return dg.define_asset_job(
        SYNC_JOBS[(integration, flavour)],
        selection=_selection(integration, flavour),
        description=f"Amazon {integration} -> Optiply for one tenant's marketplace ({flavour} flavour): {what}, "
        "payloads, delivery.",
    )


def run_requests(tenants: list[Tenant], run_key: str, job: str | None = None) -> Iterator[dg.RunRequest]:
    """A run per marketplace of each tenant not paused (of one job's tenants, when given), tagged with both.

    The tags let the run queue keep one run per partition and name the tenant in the UI and in alerts.
    """
    for tenant in tenants:
        if tenant.paused or (job is not None and job_name(tenant) != job):
            continue
        for key, marketplace in zip(tenant.partition_keys(), tenant.marketplaces, strict=True):
            yield dg.RunRequest(
                run_key=f"{key}-{run_key}",
                partition_key=key,
                job_name=job_name(tenant),
                tags={"tenant": tenant.name, "marketplace": marketplace},
            )


def every_30_minutes(integration: str, flavour: str, job: dg.JobDefinition) -> dg.ScheduleDefinition:
    prefix = "" if integration == "seller" else f"{integration}_"

    @dg.schedule(
        name=f"every_30_minutes_{prefix}{flavour}",
        job=job,
        cron_schedule="*/30 * * * *",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def every_30_minutes(context: dg.ScheduleEvaluationContext):
        """One run per marketplace of every tenant of this job that is not paused."""
        stamp = context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
        yield from run_requests(list(TenantRegistry.load().tenants.values()), stamp, job.name)

    return every_30_minutes


def tenant_registry(jobs: list[dg.JobDefinition]) -> dg.SensorDefinition:
    @dg.sensor(
        jobs=jobs,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=int(os.environ.get("TENANT_REGISTRY_INTERVAL_SECONDS", "30")),
    )
    def tenant_registry(context: dg.SensorEvaluationContext):
        """Keeps the partitions equal to the registry's tenants and marketplaces; starts each new one's first sync.

        A removed tenant's partitions go; a paused tenant keeps them (its history stays) and gets no runs.
        The first sync runs once per partition (the run key makes later ticks skip it), from the tick after
        the one that added the partition: a run can only be requested for a partition that exists.
        """
        registry = TenantRegistry.load()
        requests, existing = [], set()
        for integration, partitions in PARTITIONS_OF.items():
            keys = context.instance.get_dynamic_partitions(partitions)
            existing |= {(partitions, k) for k in keys}
            added, removed = registry.partition_changes(keys, integration)
            if added:
                requests.append(dg.AddDynamicPartitionsRequest(partitions, added))
            if removed:
                requests.append(dg.DeleteDynamicPartitionsRequest(partitions, removed))
        tenants = list(registry.tenants.values())
        by_key = {k: t.partitions_name for t in tenants for k in t.partition_keys()}
        first_syncs = [
            r
            for r in run_requests(tenants, "first-sync")
            if (by_key[r.partition_key], r.partition_key) in existing
        ]
        return dg.SensorResult(run_requests=first_syncs, dynamic_partitions_requests=requests)

    return tenant_registry


def sync_automation() -> dg.Definitions:
    jobs = {key: sync_job(*key) for key in SYNC_JOBS}
    return dg.Definitions(
        jobs=list(jobs.values()),
        schedules=[every_30_minutes(*key, job) for key, job in jobs.items()],
        sensors=[tenant_registry(list(jobs.values())), tenant_run_failures, late_tenants],
    )


def post_alert(message: str) -> None:
    if url := os.environ.get("ALERT_WEBHOOK_URL"):
        httpx.post(url, json={"text": message}, timeout=10).raise_for_status()


def failure_alert(run: dg.DagsterRun, error: str) -> str:
    """The line an operator reads: which tenant, which marketplace, which run, and why."""
    tenant, marketplace = run.tags.get("tenant", "?"), run.tags.get("marketplace", "?")
    return f"tenant {tenant}, marketplace {marketplace}: run {run.run_id} failed: {error}"


@dg.run_failure_sensor(name="tenant_run_failures", default_status=dg.DefaultSensorStatus.RUNNING)
def tenant_run_failures(context: dg.RunFailureSensorContext):
    """Every failed sync run, named by its tenant and marketplace; posted to ALERT_WEBHOOK_URL when set."""
    message = failure_alert(context.dagster_run, context.failure_event.message or "")
    context.log.error(message)
    post_alert(message)


@dg.sensor(name="late_tenants", minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING)
def late_tenants(context: dg.SensorEvaluationContext):
    """Alerts once when a tenant-marketplace has had no successful sync for an hour (operator_view.py).

    Failures alert through tenant_run_failures; this catches what never fails: runs stuck in the queue, a
    paused schedule, a partition the daemon never reaches. The cursor holds the partitions already reported.
    """
    from amazon_optiply.operator_view import LATE_AFTER, tenant_statuses

    reported = set(json.loads(context.cursor)) if context.cursor else set()
    statuses = tenant_statuses(context.instance, list(TenantRegistry.load().tenants.values()))
    late = {partition_key(s.tenant, s.marketplace): s for s in statuses if s.verdict == "late"}
    for key in sorted(set(late) - reported):
        when = late[key].last_success.strftime("%Y-%m-%d %H:%M UTC")
        post_alert(
            f"tenant {late[key].tenant}, marketplace {late[key].marketplace}: no successful sync for "
            f"more than {LATE_AFTER} (last {when})"
        )
    context.update_cursor(json.dumps(sorted(late)))
    return dg.SkipReason(f"{len(late)} late: {', '.join(sorted(late)) or 'none'}")
