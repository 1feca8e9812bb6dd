"""Materializing API stream assets against the test's sandbox, and reading what they did."""

import dagster as dg
import pandas as pd

from amazon_optiply.definitions import resources

# Words a column of personal data would carry.
PERSONAL = ("buyer_name", "buyer_email", "email", "address", "phone", "contact", "recipient")


def materialize(h, assets, marketplace: str) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        assets,
        partition_key=f"default/{marketplace}",
        instance=h.instance,
        resources=resources(),
        tags={"tenant": "default", "marketplace": marketplace},
    )
    assert result.success
    for check in result.get_asset_check_evaluations():
        assert check.passed, (check.asset_key, check.check_name, check.metadata)
    return result


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if mat.asset_key.to_user_string() == asset:
            return {k: v.value for k, v in mat.metadata.items()}
    raise AssertionError(f"{asset} was not materialized")


def answered(h, operation: str) -> int:
    """Calls the sandbox answered (a 429 at burst, retried by the client, is not one)."""
    return h.sandbox.amazon.calls[operation] - h.sandbox.amazon.throttled[operation]


def calls(h, before: dict, operation: str) -> int:
    return answered(h, operation) - before.get(operation, 0)


def answered_so_far(h) -> dict:
    return {op: answered(h, op) for op in h.sandbox.amazon.calls}


def no_personal_columns(frame: pd.DataFrame) -> None:
    assert not [c for c in frame.columns if any(word in c for word in PERSONAL)], list(frame.columns)
