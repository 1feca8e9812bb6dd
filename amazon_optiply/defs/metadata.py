"""What every asset shows in the UI: row count, column schema, a preview, and its pandera check result."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pandera.errors
import pandera.pandas as pa

PREVIEW_ROWS = 10


def frame_metadata(frame: pd.DataFrame, **extra: object) -> dict[str, object]:
    preview = frame.head(PREVIEW_ROWS).map(lambda v: str(v) if len(str(v)) <= 60 else str(v)[:57] + "...")
    return {
        "dagster/row_count": len(frame),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(str(name), str(dtype)) for name, dtype in frame.dtypes.items()]
        ),
        "preview": dg.MetadataValue.md(preview.to_markdown(index=False) if len(frame) else "_no rows_"),
        **extra,
    }


def markdown_rows(frame: pd.DataFrame, limit: int = 50) -> dg.MetadataValue:
    """The first rows of a frame as a markdown table for the UI, or "_none_"."""
    return dg.MetadataValue.md(
        frame.head(limit).astype(str).to_markdown(index=False) if len(frame) else "_none_"
    )


def schema_check(
    frame: pd.DataFrame, model: type[pa.DataFrameModel], asset_key: dg.AssetKey | str | None = None
) -> dg.AssetCheckResult:
    """Validate with the asset's pandera model; a failure lists the failing checks and rows."""
    try:
        # inplace: the models coerce nothing, so the frame is left as it is; pandera would copy it otherwise.
        model.validate(frame, lazy=True, inplace=True)
    except pandera.errors.SchemaErrors as err:
        cases = err.failure_cases
        summary = cases.groupby(["column", "check"], dropna=False).size().reset_index(name="failures")
        return dg.AssetCheckResult(
            passed=False,
            check_name="schema",
            asset_key=asset_key,
            metadata={
                "model": model.__name__,
                "failures": len(cases),
                "failing_checks": markdown_rows(summary),
                "failing_rows": markdown_rows(cases, limit=20),
            },
        )
    return dg.AssetCheckResult(
        passed=True,
        check_name="schema",
        asset_key=asset_key,
        metadata={"model": model.__name__, "rows": len(frame)},
    )


def schema_check_spec(asset: str, blocking: bool = False) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        "schema", asset=asset, blocking=blocking, description="The asset's rows pass its pandera model"
    )
