"""The 30-minute sync: one run per tenant and marketplace, each materializing the graph for its partition.

One job per flavour: the secondary flavour writes no products, so its job leaves out the listings, stock
and catalog chain behind them and fetches nothing it does not need; each tenant's runs use its flavour's
job. The `tenant_registry` sensor turns the registry into partitions and starts a new one's first sync. In the
full flavour the sell-order steps do not depend on the product steps, so a failed listings report fails
the run without stopping orders (see run_order.py for how they still come after the products).
"""

import os
from collections.abc import Iterator

import dagster as dg
import httpx

from amazon_optiply.partitions import TENANT_MARKETPLACES
from amazon_optiply.tenants import Tenant, TenantRegistry

PRODUCT_SIDE = dg.AssetSelection.assets(
    "listings_report",
    "fba_inventory",
    "catalog_identifiers",
    "warehouse_stock",
    "enriched_catalog",
    "optiply_product_payloads",
    "optiply_products",
)


# The job each flavour's runs use.
SYNC_JOBS = {"full": "sync_marketplace", "secondary": "sync_marketplace_orders_only"}


def sync_job(flavour: str) -> dg.JobDefinition:
    everything = dg.AssetSelection.all()
    return dg.define_asset_job(
        SYNC_JOBS[flavour],
        selection=everything - PRODUCT_SIDE if flavour == "secondary" else everything,
        description=f"Amazon -> Optiply for one tenant's marketplace ({flavour} flavour): reports, stock, "
        "catalog, payloads, delivery.",
    )


def run_requests(tenants: list[Tenant], run_key: str, flavour: str | None = None) -> Iterator[dg.RunRequest]:
    """A run per marketplace of each tenant (of one flavour's job, when given), tagged with both.

    The tags let the run queue keep one run per partition and name the tenant in the UI and in alerts.
    """
    for tenant in tenants:
        if tenant.paused or (flavour is not None and tenant.flavour != flavour):
            continue
        for key, marketplace in zip(tenant.partition_keys(), tenant.marketplaces, strict=True):
            yield dg.RunRequest(
                run_key=f"{key}-{run_key}",
                partition_key=key,
                job_name=SYNC_JOBS[tenant.flavour],
                tags={"tenant": tenant.name, "marketplace": marketplace},
            )


def every_30_minutes(flavour: str, job: dg.JobDefinition) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"every_30_minutes_{flavour}",
        job=job,
        cron_schedule="*/30 * * * *",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def every_30_minutes(context: dg.ScheduleEvaluationContext):
        """One run per marketplace of every tenant of this flavour that is not paused."""
        stamp = context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
        yield from run_requests(list(TenantRegistry.load().tenants.values()), stamp, flavour)

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
        existing = context.instance.get_dynamic_partitions(TENANT_MARKETPLACES)
        added, removed = registry.partition_changes(existing)
        requests = []
        if added:
            requests.append(dg.AddDynamicPartitionsRequest(TENANT_MARKETPLACES, added))
        if removed:
            requests.append(dg.DeleteDynamicPartitionsRequest(TENANT_MARKETPLACES, removed))
        first_syncs = [
            r
            for r in run_requests(list(registry.tenants.values()), "first-sync")
            if r.partition_key in existing
        ]
        return dg.SensorResult(run_requests=first_syncs, dynamic_partitions_requests=requests)

    return tenant_registry


def sync_automation() -> dg.Definitions:
    jobs = {flavour: sync_job(flavour) for flavour in SYNC_JOBS}
    return dg.Definitions(
        jobs=list(jobs.values()),
        schedules=[every_30_minutes(flavour, job) for flavour, job in jobs.items()],
        sensors=[tenant_registry(list(jobs.values())), tenant_run_failures],
    )


def failure_alert(run: dg.DagsterRun, error: str) -> str:
    """The line an operator reads: which tenant, which marketplace, which run, and why."""
    tenant, marketplace = run.tags.get("tenant", "?"), run.tags.get("marketplace", "?")
    return f"tenant {tenant}, marketplace {marketplace}: run {run.run_id} failed: {error}"


@dg.run_failure_sensor(name="tenant_run_failures", default_status=dg.DefaultSensorStatus.RUNNING)
def tenant_run_failures(context: dg.RunFailureSensorContext):
    """Every failed sync run, named by its tenant and marketplace; posted to ALERT_WEBHOOK_URL when set."""
    message = failure_alert(context.dagster_run, context.failure_event.message or "")
    context.log.error(message)
    if url := os.environ.get("ALERT_WEBHOOK_URL"):
        httpx.post(url, json={"text": message}, timeout=10).raise_for_status()
