"""Warehouse layer per marketplace: stock per SKU and the enriched catalog Optiply products are built from."""

import dagster as dg
import pandas as pd

from amazon_optiply import schemas
from amazon_optiply.defs.metadata import frame_metadata, markdown_rows, schema_check, schema_check_spec
from amazon_optiply.marketplaces import fba_pool, fba_pool_home
from amazon_optiply.partitions import marketplace_partitions
from amazon_optiply.resources import IntegrationSettings
from amazon_optiply.transforms import catalog

GROUP = "warehouse"


@dg.asset(
    partitions_def=marketplace_partitions,
    group_name=GROUP,
    kinds={"pandas"},
    owners=["team:integrations"],
    check_specs=[schema_check_spec("warehouse_stock", blocking=True)],
)
def warehouse_stock(
    context: dg.AssetExecutionContext,
    listings_report: pd.DataFrame,
    fba_inventory: pd.DataFrame,
    settings: IntegrationSettings,
):
    """Stock per SKU: FBA rows summed, or the listing quantity (the seed's fallback when FBA stock is 0).

    A Pan-European FBA pool is counted in one marketplace only (the main one when it is in the pool).
    """
    country = context.partition_key
    counts_pool = settings.counts_pooled_fba(country)
    frame = catalog.warehouse_stock(listings_report, fba_inventory, settings.stock_source, counts_pool)
    by_source = frame["stock_source"].value_counts().to_dict()
    pool_home = fba_pool_home(settings.marketplace_codes, settings.main)[fba_pool(country)]
    yield dg.Output(
        frame,
        metadata=frame_metadata(
            frame,
            skus_by_stock_source=by_source,
            stock_source=settings.stock_source,
            fba_pool_counted_in=pool_home,
        ),
    )
    yield schema_check(frame, schemas.WarehouseStock)


@dg.asset(
    partitions_def=marketplace_partitions,
    group_name=GROUP,
    kinds={"pandas"},
    owners=["team:integrations"],
    check_specs=[
        schema_check_spec("enriched_catalog", blocking=True),
        dg.AssetCheckSpec(
            "listings_deliverable", asset="enriched_catalog", description="Rows set aside, with why"
        ),
    ],
)
def enriched_catalog(
    context: dg.AssetExecutionContext,
    listings_report: pd.DataFrame,
    catalog_identifiers: pd.DataFrame,
    warehouse_stock: pd.DataFrame,
):
    """One row per listing: name, SKU, EAN, price, stock, ASIN and marketplace, with a `problem` where unusable."""
    frame = catalog.enriched_catalog(
        listings_report, catalog_identifiers, warehouse_stock, context.partition_key
    )
    problems = frame[frame["problem"].notna()]
    yield dg.Output(
        frame,
        metadata=frame_metadata(
            frame,
            active_listings=int((frame["listing_status"] == "Active").sum()),
            without_ean=int(frame["ean_code"].isna().sum()),
            names_truncated=int(frame["name_truncated"].sum()),
            rows_set_aside=len(problems),
        ),
    )
    yield dg.AssetCheckResult(
        check_name="listings_deliverable",
        passed=problems.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "rows_set_aside": len(problems),
            "set_aside": markdown_rows(problems[["sku", "asin", "problem"]]),
        },
    )
    yield schema_check(frame, schemas.EnrichedCatalog)
