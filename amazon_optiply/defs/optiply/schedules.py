"""The 30-minute sync: one run per marketplace, each materializing the whole graph for its partition."""

import dagster as dg

from amazon_optiply.partitions import marketplace_partitions

sync_job = dg.define_asset_job(
    "sync_marketplace",
    selection=dg.AssetSelection.all(),
    partitions_def=marketplace_partitions,
    description="Amazon -> Optiply for one marketplace: reports, stock, catalog, payloads, delivery.",
)


@dg.schedule(job=sync_job, cron_schedule="*/30 * * * *", default_status=dg.DefaultScheduleStatus.RUNNING)
def every_30_minutes(context: dg.ScheduleEvaluationContext):
    """One run per marketplace; the `marketplace` tag lets the run queue keep one run per marketplace at a time."""
    stamp = context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
    for marketplace in marketplace_partitions.get_partition_keys():
        yield dg.RunRequest(
            run_key=f"{marketplace}-{stamp}",
            partition_key=marketplace,
            tags={"marketplace": marketplace},
        )
