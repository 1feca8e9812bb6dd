"""An Optiply account the old Amazon integration fed: the sandbox can start from one, as a take-over does.

The old integration (the seed's ETL) keyed a product by the listing's ASIN: `remoteId` is the ASIN in the
main marketplace and `<ASIN>_<marketplaceId>` in the others, one product per ASIN however many SKUs carry
it (the last listing of the ASIN in the report wins, so its SKU is the product's skuCode). It read report
text as ISO-8859-1 and ran until it was switched off, so the values it left are stale. It posted every
order it saw (Pending ones included, Cancelled ones not) with remoteId = AmazonOrderId and lines pointing
at the ASIN's product. Records are filed under the coupling the new platform takes over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from amazon_optiply.marketplaces import MARKETPLACES, python_codec
from amazon_optiply.sandbox.optiply import PLACED_FORMAT, OptiplyBackend
from amazon_optiply.sandbox.seller import CANCELLED, SellerWorld, report_text


@dataclass(frozen=True)
class OldIntegrationAccount:
    """What the old integration left in Optiply, for tests to compare with."""

    # (marketplace, old remoteId) -> Optiply id
    products: dict[tuple[str, str], int]
    # old remoteId -> the SKU whose values it carries (its skuCode)
    skus: dict[str, str]
    # AmazonOrderId -> Optiply id
    sell_orders: dict[str, int]


def old_remote_id(asin: str, marketplace: str, main: str) -> str:
    return asin if marketplace == main else f"{asin}_{MARKETPLACES[marketplace].marketplace_id}"


def _as_old_integration_read_it(name: str, marketplace: str) -> str:
    """The item name as the old ETL decoded the report: ISO-8859-1 whatever the charset (€, ü garbled)."""
    charset = python_codec(MARKETPLACES[marketplace].charset)
    return report_text(name, MARKETPLACES[marketplace].charset).encode(charset).decode("latin-1")[:255]


def seed_old_integration(
    world: SellerWorld,
    optiply: OptiplyBackend,
    coupling_id: int,
    main: str,
    orders_since: datetime,
    stopped_at: datetime,
) -> OldIntegrationAccount:
    """Fill `optiply` as the old integration left it when it stopped at `stopped_at` (the world's time now).

    Products: one per ASIN of the active listings of every marketplace, with stale price, stock and name.
    Sell orders: every order of every marketplace placed from `orders_since` to `stopped_at` and not
    Cancelled at `stopped_at`.
    """
    products: dict[tuple[str, str], int] = {}
    skus: dict[str, str] = {}
    for mp in world.config.marketplaces:
        current = world.expected_products(mp).set_index("skuCode")
        listings = world.listings[mp]
        active = listings[listings["status"] == "Active"]
        picked = active.drop_duplicates("asin", keep="last")
        rows = []
        for listing in picked.itertuples():
            now = current.loc[listing.sku]
            rows.append(
                {
                    "remoteId": old_remote_id(listing.asin, mp, main),
                    "name": _as_old_integration_read_it(listing.name, mp),
                    "skuCode": listing.sku,
                    "eanCode": now["eanCode"] if isinstance(now["eanCode"], str) else None,
                    "price": round(float(now["price"]) * 0.9, 2),
                    "stockLevel": int(now["stockLevel"]) + 3,
                }
            )
        ids = optiply.preload_products(rows, coupling_id=coupling_id)
        for row, optiply_id in zip(rows, ids, strict=True):
            products[(mp, row["remoteId"])] = optiply_id
            skus[row["remoteId"]] = row["skuCode"]

    orders = []
    for mp in world.config.marketplaces:
        for order in world.orders_placed_between(mp, orders_since, stopped_at):
            status = order.status_at(stopped_at)
            if status is None or status == CANCELLED:
                continue
            lines = [
                {
                    "productId": products[(mp, old_remote_id(line["asin"], mp, main))],
                    "quantity": line["quantity"],
                    "subtotalValue": line["item_price"],
                }
                for line in order.lines
            ]
            orders.append(
                {
                    "remoteId": order.order_id,
                    "placed": order.purchase_date.strftime(PLACED_FORMAT),
                    "totalValue": order.total_value,
                    "orderLines": lines,
                }
            )
    order_ids = optiply.preload_sell_orders(orders, coupling_id=coupling_id)
    return OldIntegrationAccount(
        products, skus, {o["remoteId"]: i for o, i in zip(orders, order_ids, strict=True)}
    )
