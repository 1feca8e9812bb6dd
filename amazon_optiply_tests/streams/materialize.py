"""Materializing stream assets against the sandbox, in process, and reading what they stored and reported."""

from pathlib import Path

import dagster as dg
import pandas as pd

from amazon_optiply.partitions import TENANT_MARKETPLACES
from amazon_optiply.tenants import DEFAULT_TENANT, partition_key


def materialize(harness, asset: str, marketplace: str, backfill_from: str = "") -> dg.ExecuteInProcessResult:
    """One run of one stream asset for the default tenant's marketplace, with the platform's resources."""
    from amazon_optiply.definitions import defs, resources

    key = partition_key(DEFAULT_TENANT, marketplace)
    if not harness.instance.has_dynamic_partition(TENANT_MARKETPLACES, key):
        harness.instance.add_dynamic_partitions(TENANT_MARKETPLACES, [key])
    run_config = {"ops": {asset: {"config": {"backfill_from": backfill_from}}}} if backfill_from else None
    result = dg.materialize(
        [defs().get_assets_def(asset)],
        partition_key=key,
        resources=resources(),
        instance=harness.instance,
        run_config=run_config,
        tags={"tenant": DEFAULT_TENANT, "marketplace": marketplace},
        raise_on_error=False,
    )
    assert result.success, [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return result


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.event_specific_data.materialization.asset_key.to_user_string() == asset
    ]
    return {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}


def check_passed(result: dg.ExecuteInProcessResult, asset: str, check: str = "schema") -> bool:
    (evaluation,) = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.event_specific_data.asset_key.to_user_string() == asset
        and e.event_specific_data.check_name == check
    ]
    return evaluation.passed


def stored(harness, asset: str, marketplace: str) -> pd.DataFrame:
    """The asset's value as the IO manager stored it (Parquet), as a downstream reader sees it."""
    return pd.read_parquet(
        Path(harness.workdir) / "assets" / "parquet" / asset / DEFAULT_TENANT / f"{marketplace}.parquet"
    )


def reports_of(harness, report_type: str) -> list:
    return [r for r in harness.sandbox.amazon.reports.values() if r.report_type == report_type]
