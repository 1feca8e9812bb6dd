"""The 30-minute sync: one run per tenant and marketplace, each materializing the graph for its partition.

One job per flavour: the secondary flavour writes no products, so its job leaves out the listings, stock
and catalog chain behind them and fetches nothing it does not need; each tenant's runs use its flavour's
job. The `tenant_registry` sensor turns the registry into partitions and starts a new one's first sync. In the
full flavour the sell-order steps do not depend on the product steps, so a failed listings report fails
the run without stopping orders (see run_order.py for how they still come after the products).
"""

import json
import os
from collections.abc import Iterator

import dagster as dg
import httpx

from amazon_optiply.partitions import TENANT_MARKETPLACES
from amazon_optiply.tenants import Tenant, TenantRegistry, partition_key

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
