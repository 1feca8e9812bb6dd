"""A marketplace's first sync starts as soon as the platform is up, not at the next half hour."""

import dagster as dg

from amazon_optiply.defs.optiply.schedules import sync_job
from amazon_optiply.partitions import marketplace_partitions


@dg.sensor(job=sync_job, default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30)
def first_sync(context: dg.SensorEvaluationContext):
    """Request one run per marketplace, once per instance (the run key makes later ticks skip it)."""
    for marketplace in marketplace_partitions.get_partition_keys():
        yield dg.RunRequest(
            run_key=f"first-sync-{marketplace}", partition_key=marketplace, tags={"marketplace": marketplace}
        )
