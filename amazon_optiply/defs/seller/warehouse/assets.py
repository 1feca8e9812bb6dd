"""Warehouse layer per marketplace: stock per SKU and the enriched catalog Optiply products are built from."""

import dagster as dg
import pandas as pd

from amazon_optiply import schemas
from amazon_optiply.clients.amazon import AmazonError, AmazonUnavailableError
from amazon_optiply.defs.metadata import frame_metadata, markdown_rows, schema_check, schema_check_spec
from amazon_optiply.marketplaces import fba_pool, fba_pool_home
from amazon_optiply.partitions import marketplace_of, marketplace_partitions
from amazon_optiply.resources import AmazonResource, IntegrationSettings
from amazon_optiply.streams import api as streams_api
from amazon_optiply.streams.api_client import ExpiredToken, awd_inventory
from amazon_optiply.streams.reports import BY_COUNTRY, POOL_IN_MAIN_MARKETPLACE, stock_by_country
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
    afn_inventory_by_country: pd.DataFrame,
    settings: IntegrationSettings,
    amazon: AmazonResource,
):
    """Stock per SKU: FBA rows summed, or the listing quantity (the seed's fallback when FBA stock is 0).

    A Pan-European FBA pool is counted once: by country (AMAZON_PAN_EU_STOCK=by_country, the default) when
    AFN inventory by country answers, each marketplace with the units in its own country; otherwise whole in
    one marketplace (the main one when it is in the pool). `stock_rule` in the metadata says which.
    FBA units on their way in (working, shipped, receiving) are shown beside the stock and counted in it
    only with AMAZON_COUNT_INBOUND. US products add the seller's AWD units with AMAZON_COUNT_AWD; a failed
    AWD read adds none (never lowers stock) and the metadata says so.
    """
    marketplace = marketplace_of(context.partition_key)
    counts_pool = settings.counts_pooled_fba(marketplace)
    fba = fba_inventory if settings.count_inbound else catalog.fba_on_hand(fba_inventory)
    frame = catalog.warehouse_stock(listings_report, fba, settings.stock_source, counts_pool)
    frame, rule = _pan_eu_rule(context, frame, afn_inventory_by_country, settings, marketplace, counts_pool)
    frame = catalog.with_inbound_units(frame, fba_inventory, counts_pool)
    awd_units, awd_note = _awd_units(context, marketplace, amazon, settings)
    frame = catalog.with_awd_units(frame, awd_units)
    by_source = frame["stock_source"].value_counts().to_dict()
    pool_home = fba_pool_home(settings.marketplace_codes, settings.main)[fba_pool(marketplace)]
    inbound = int(frame[list(catalog.INBOUND_COLUMNS)].to_numpy().sum())
    yield dg.Output(
        frame,
        metadata=frame_metadata(
            frame,
            skus_by_stock_source=by_source,
            stock_source=settings.stock_source,
            fba_pool_counted_in=pool_home,
            inbound_units=inbound,
            inbound=f"{inbound} units on their way into FBA, "
            + ("counted in stock_level" if settings.count_inbound else "beside stock_level, not counted"),
            awd=awd_note,
            awd_units_counted=int(frame["awd_quantity"].sum()),
            **rule,
        ),
    )
    yield schema_check(frame, schemas.WarehouseStock)


AWD_MARKETPLACE = "US"


def _awd_units(
    context: dg.AssetExecutionContext, marketplace: str, amazon: AmazonResource, settings: IntegrationSettings
) -> tuple[pd.DataFrame | None, str]:
    """The AWD units to add per SKU (None: none), and what the metadata says about them.

    AWD stores for the US marketplace only. A failed read is never "no AWD stock": it adds nothing, so
    stock is what it would be without AWD, never lower, and the run goes on.
    """
    if not settings.count_awd:
        return None, "not counted (AMAZON_COUNT_AWD is false)"
    if marketplace != AWD_MARKETPLACE:
        return None, f"not counted: AWD stores for the {AWD_MARKETPLACE} marketplace only"
    if settings.stock_source != "fba":
        return None, "not counted: AMAZON_STOCK_SOURCE is listing (the listing quantity only)"
    try:
        summaries = awd_inventory(amazon.partner)
    except (AmazonError, AmazonUnavailableError, ExpiredToken) as exc:
        context.log.warning(f"AWD inventory could not be read; stock is counted without AWD units: {exc}")
        return None, f"read failed, not counted (stock as without AWD): {exc}"
    units = streams_api.awd_units(streams_api.awd_inventory_frame(summaries))
    return units, f"counted: {int(units['awd_quantity'].sum())} units of {len(units)} AWD SKUs"


def _pan_eu_rule(
    context: dg.AssetExecutionContext,
    stock: pd.DataFrame,
    afn_rows: pd.DataFrame,
    settings: IntegrationSettings,
    marketplace: str,
    counts_pool: bool,
) -> tuple[pd.DataFrame, dict]:
    """Today's stock with the Pan-EU pool placed by country when the setting and AFN by country allow it."""
    if settings.pan_eu_stock != "by_country":
        reason = "AMAZON_PAN_EU_STOCK is pool_in_main"
    elif settings.stock_source != "fba":
        reason = "AMAZON_STOCK_SOURCE is listing: no FBA unit is counted"
    elif afn_rows.empty:
        reason = _afn_unavailable_reason(context)
    else:
        stock = stock_by_country(
            stock, afn_rows, marketplace, counts_pool, settings.synced_pool_marketplaces(marketplace)
        )
        counts = stock["fba_rule"].value_counts().to_dict()
        return stock, {
            "stock_rule": BY_COUNTRY,
            "skus_by_country": int(counts.get(BY_COUNTRY, 0)),
            # SKUs AFN by country has no row for keep today's rule.
            "skus_pool_rule": int(counts.get(POOL_IN_MAIN_MARKETPLACE, 0)),
        }
    stock = stock.assign(fba_rule=pd.Series(POOL_IN_MAIN_MARKETPLACE, index=stock.index, dtype="string"))
    return stock, {"stock_rule": POOL_IN_MAIN_MARKETPLACE, "stock_rule_reason": reason}


def _afn_unavailable_reason(context: dg.AssetExecutionContext) -> str:
    """Why afn_inventory_by_country has no rows in this run, from its materialization's metadata."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("afn_inventory_by_country"), asset_partitions=[context.partition_key]
        ),
        limit=1,
    ).records
    metadata = records[0].asset_materialization.metadata if records else {}
    if "reason" in metadata:
        return f"afn_inventory_by_country unavailable: {metadata['reason'].value}"
    return "afn_inventory_by_country has no rows"


# Rows listed in the quarantine's metadata; the counts are always exact.
QUARANTINE_LISTED = 1000


def _listings_malformed(context: dg.AssetExecutionContext) -> tuple[int, dg.MetadataValue]:
    """The rows listings_report set aside as malformed (wrong field count), from its latest materialization.

    Those rows never reach the parsed frame, so their count and preview are read from its metadata.
    """
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("listings_report"), asset_partitions=[context.partition_key]
        ),
        limit=1,
    ).records
    metadata = records[0].asset_materialization.metadata if records else {}
    count = metadata.get("malformed_rows")
    preview = metadata.get("malformed_preview")
    return (
        int(count.value) if count is not None else 0,
        preview if preview is not None else dg.MetadataValue.md("_none_"),
    )


@dg.asset(
    partitions_def=marketplace_partitions,
    group_name=GROUP,
    kinds={"pandas"},
    owners=["team:integrations"],
    check_specs=[
        schema_check_spec("enriched_catalog", blocking=True),
        dg.AssetCheckSpec(
            "listings_deliverable",
            asset="enriched_catalog",
            blocking=True,
            description="The quarantine: listing rows set aside, with why; blocks delivery above MAX_BAD_ROW_SHARE",
        ),
    ],
)
def enriched_catalog(
    context: dg.AssetExecutionContext,
    listings_report: pd.DataFrame,
    catalog_identifiers: pd.DataFrame,
    warehouse_stock: pd.DataFrame,
    settings: IntegrationSettings,
):
    """One row per listing: name, SKU, EAN, price, stock, ASIN and marketplace, with a `problem` where unusable.

    Rows with a problem are never delivered. When too many rows are bad (or the report has none), the
    report itself is suspect: the blocking `listings_deliverable` check fails with ERROR and no product is
    written in this run, so Optiply keeps its last values.
    """
    frame = catalog.enriched_catalog(
        listings_report, catalog_identifiers, warehouse_stock, marketplace_of(context.partition_key)
    )
    problems = frame[frame["problem"].notna()]
    malformed_rows, malformed_preview = _listings_malformed(context)
    share = catalog.bad_row_share(len(problems), malformed_rows, len(frame))
    empty = len(frame) + malformed_rows == 0
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
    blocked = empty or share > settings.max_bad_row_share
    if empty:
        verdict = "the listings report has no rows: not read as an empty catalogue, nothing delivered"
    elif blocked:
        verdict = (
            f"{share:.1%} of listing rows are bad, above {settings.max_bad_row_share:.1%}: nothing delivered"
        )
    elif len(problems) or malformed_rows:
        verdict = "bad rows set aside; the other rows are delivered"
    else:
        verdict = "every row deliverable"
    yield dg.AssetCheckResult(
        check_name="listings_deliverable",
        passed=not blocked and problems.empty and malformed_rows == 0,
        severity=dg.AssetCheckSeverity.ERROR if blocked else dg.AssetCheckSeverity.WARN,
        description=verdict,
        metadata={
            "marketplace": context.partition_key,
            "verdict": verdict,
            "listing_rows": len(frame) + malformed_rows,
            "rows_set_aside": len(problems),
            "malformed_rows": malformed_rows,
            "bad_row_share": round(share, 4),
            "max_bad_row_share": settings.max_bad_row_share,
            "names_truncated": int(frame["name_truncated"].sum()),
            "set_aside": markdown_rows(
                problems[["sku", "asin", "listing_status", "problem"]], limit=QUARANTINE_LISTED
            ),
            "malformed": malformed_preview,
        },
    )
    yield schema_check(frame, schemas.EnrichedCatalog)
