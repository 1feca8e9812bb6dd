"""The 30-minute sync: one run per marketplace, each materializing the graph for its partition.

Built per flavour (read when the definitions load): the secondary flavour writes no products, so its job
leaves out the listings, stock and catalog chain behind them and fetches nothing it does not need. In the
full flavour the sell-order steps do not depend on the product steps, so a failed listings report fails
the run without stopping orders (see run_order.py for how they still come after the products).
"""

from collections.abc import Callable, Iterator

import dagster as dg

from amazon_optiply.partitions import marketplace_partitions

PRODUCT_SIDE = dg.AssetSelection.assets(
    "listings_report",
    "fba_inventory",
    "catalog_identifiers",
    "warehouse_stock",
    "enriched_catalog",
    "optiply_product_payloads",
    "optiply_products",
)


def sync_job(flavour: str) -> dg.JobDefinition:
    everything = dg.AssetSelection.all()
    return dg.define_asset_job(
        "sync_marketplace",
        selection=everything - PRODUCT_SIDE if flavour == "secondary" else everything,
        description=f"Amazon -> Optiply for one marketplace ({flavour} flavour): reports, stock, catalog, "
        "payloads, delivery.",
    )


def one_run_per_marketplace(run_key: Callable[[str], str]) -> Iterator[dg.RunRequest]:
    """A run request per marketplace; the `marketplace` tag lets the run queue keep one run per marketplace."""
    for marketplace in marketplace_partitions.get_partition_keys():
        yield dg.RunRequest(
            run_key=run_key(marketplace),
            partition_key=marketplace,
            tags={"marketplace": marketplace},
        )


def every_30_minutes(job: dg.JobDefinition) -> dg.ScheduleDefinition:
    @dg.schedule(job=job, cron_schedule="*/30 * * * *", default_status=dg.DefaultScheduleStatus.RUNNING)
    def every_30_minutes(context: dg.ScheduleEvaluationContext):
        """One run per marketplace; the `marketplace` tag lets the run queue keep one run per marketplace at a time."""
        stamp = context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
        yield from one_run_per_marketplace(lambda marketplace: f"{marketplace}-{stamp}")

    return every_30_minutes


def first_sync(job: dg.JobDefinition) -> dg.SensorDefinition:
    @dg.sensor(job=job, default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30)
    def first_sync(context: dg.SensorEvaluationContext):
        """A marketplace's first sync starts as soon as the platform is up, not at the next half hour.

        One run per marketplace, once per instance (the run key makes later ticks skip it).
        """
        yield from one_run_per_marketplace(lambda marketplace: f"first-sync-{marketplace}")

    return first_sync


def sync_automation(flavour: str) -> dg.Definitions:
    job = sync_job(flavour)
    return dg.Definitions(jobs=[job], schedules=[every_30_minutes(job)], sensors=[first_sync(job)])
