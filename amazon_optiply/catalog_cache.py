"""EAN, UPC and item name per ASIN from Amazon's catalog, kept in the state database across runs.

Shared by both integrations: identifiers rarely change, so only ASINs never seen or older than the refresh
period are asked for (searchCatalogItems, 20 a call).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from amazon_optiply.clients.selling_partner import SellingPartner
from amazon_optiply.marketplaces import MARKETPLACES
from amazon_optiply.state import SyncState
from amazon_optiply.transforms.catalog import catalog_identifiers_frame


def catalog_identifiers_cached(
    marketplace: str,
    asins: pd.Series,
    partner: SellingPartner,
    state: SyncState,
    refresh_days: int,
) -> tuple[pd.DataFrame, int]:
    """EAN and UPC codes of these ASINs (searchCatalogItems, 20 a call), and how many were asked for.

    Identifiers rarely change, so they are kept across runs: only ASINs never seen or older than the
    refresh period are asked for.
    """
    wanted = sorted(set(asins.str.strip()) - {""})
    cached = state.cached_identifiers(marketplace)
    fresh_after = pd.Timestamp(datetime.now(UTC) - timedelta(days=refresh_days))
    fresh = set(cached.loc[cached["fetched_at"] >= fresh_after, "asin"])
    to_fetch = [a for a in wanted if a not in fresh]
    marketplace_id = MARKETPLACES[marketplace].marketplace_id
    found: set[str] = set()
    for items in partner.catalog_items(marketplace, to_fetch):
        batch = catalog_identifiers_frame(items, marketplace_id)
        state.store_identifiers(marketplace, batch, datetime.now(UTC))
        found.update(batch["asin"])
    # ASINs Amazon's catalog does not know are remembered as having no identifiers, so they are not re-asked.
    already_cached = set(cached["asin"])
    unknown = [a for a in to_fetch if a not in found and a not in already_cached]
    state.store_identifiers(
        marketplace,
        pd.DataFrame({"asin": unknown, "ean_codes": "", "upc_codes": "", "item_name": ""}),
        datetime.now(UTC),
    )
    cached = state.cached_identifiers(marketplace)
    frame = (
        cached[cached["asin"].isin(wanted)][["asin", "ean_codes", "upc_codes", "item_name"]]
        .astype("string")
        .sort_values("asin")
        .reset_index(drop=True)
    )
    return frame, len(to_fetch)
