"""Which tenants are late or failing, at a glance: one line per tenant-marketplace from Dagster's run history.

`python -m amazon_optiply.tenants status` prints it; the `late_tenants` sensor alerts on the late ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg

from amazon_optiply.tenants import Tenant, partition_key

# Two missed 30-minute syncs: one late run is normal (a slow report), two is something to look at.
LATE_AFTER = timedelta(minutes=60)
HISTORY = 10  # runs looked at per partition


@dataclass(frozen=True)
class PartitionStatus:
    tenant: str
    marketplace: str
    verdict: str  # ok, late, failing, never_synced, paused
    last_success: datetime | None
    last_run_status: str | None
    failures_since_success: int

    def line(self, now: datetime) -> str:
        age = (
            f"{(now - self.last_success).total_seconds() / 60:.0f} min ago" if self.last_success else "never"
        )
        return (
            f"{partition_key(self.tenant, self.marketplace)}\t{self.verdict.upper()}\tlast success {age}\t"
            f"last run {self.last_run_status or 'none'}\tfailures since {self.failures_since_success}"
        )


def _finished_at(record: dg.RunRecord) -> datetime | None:
    stamp = record.end_time or record.start_time
    return datetime.fromtimestamp(stamp, UTC) if stamp else None


def partition_status(
    instance: dg.DagsterInstance, tenant: Tenant, marketplace: str, now: datetime
) -> PartitionStatus:
    key = partition_key(tenant.name, marketplace)
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags={"dagster/partition": key}), limit=HISTORY, order_by="create_timestamp"
    )  # newest first
    last_success, failures = None, 0
    for record in records:
        if record.dagster_run.status == dg.DagsterRunStatus.SUCCESS:
            last_success = _finished_at(record)
            break
        if record.dagster_run.status == dg.DagsterRunStatus.FAILURE:
            failures += 1
    last_status = records[0].dagster_run.status.value if records else None
    if tenant.paused:
        verdict = "paused"
    elif failures and last_status == dg.DagsterRunStatus.FAILURE.value:
        verdict = "failing"
    elif last_success is None:
        verdict = "never_synced"
    elif now - last_success > LATE_AFTER:
        verdict = "late"
    else:
        verdict = "ok"
    return PartitionStatus(tenant.name, marketplace, verdict, last_success, last_status, failures)


def tenant_statuses(
    instance: dg.DagsterInstance, tenants: list[Tenant], now: datetime | None = None
) -> list[PartitionStatus]:
    """Every tenant-marketplace, the ones needing attention first (failing, late, never synced)."""
    now = now or datetime.now(UTC)
    rows = [partition_status(instance, t, m, now) for t in tenants for m in t.marketplaces]
    order = {"failing": 0, "late": 1, "never_synced": 2, "ok": 3, "paused": 4}
    return sorted(rows, key=lambda r: (order[r.verdict], r.tenant, r.marketplace))
