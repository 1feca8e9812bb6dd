"""Amazon's Vendor Orders API (v1): purchase orders and their status, in windows Amazon accepts.

Amazon refuses a date range over 7 days and looks back 6 months at most; its answers page with `nextToken`
(not the `NextToken` python-amazon-sp-api's own pager assumes). No Dagster here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from sp_api.api import VendorOrders

from amazon_optiply.clients.amazon import utc_iso
from amazon_optiply.clients.selling_partner import SellingPartner, amazon_time

MAX_WINDOW = timedelta(days=7)
# Amazon keeps purchase orders for 6 months; a little less, so a window's start is never refused.
MAX_LOOKBACK = timedelta(days=180)
PAGE_SIZE = 100


def windows(start: datetime, end: datetime, size: timedelta = MAX_WINDOW) -> list[tuple[datetime, datetime]]:
    """[start, end) cut into consecutive windows no longer than `size` (Amazon's 7-day limit)."""
    out = []
    while start < end:
        out.append((start, min(start + size, end)))
        start = out[-1][1]
    return out


def amazon_now(partner: SellingPartner, marketplace: str) -> datetime:
    """Amazon's time (an answer's Date header): windows and published days are Amazon's, not this machine's.

    A getPurchaseOrders call without dates (Amazon: the last 7 days) for one order: cheap at 10 per second.
    """
    api = partner.api(VendorOrders, marketplace)
    answer = partner.caller.call(
        "getPurchaseOrders", lambda: api.get_purchase_orders(limit=1), expect="orders"
    )
    return amazon_time(answer.headers)


def _pages(partner: SellingPartner, operation: str, method: str, key: str, marketplace: str, params: dict):
    api = partner.api(VendorOrders, marketplace)
    next_token = None
    while True:
        query = {**params, "limit": PAGE_SIZE, **({"nextToken": next_token} if next_token else {})}
        answer = partner.caller.call(operation, lambda q=query: getattr(api, method)(**q), expect=key)
        yield answer.payload.get(key) or []
        next_token = (answer.payload.get("pagination") or {}).get("nextToken")
        if not next_token:
            return


def purchase_orders(
    partner: SellingPartner, marketplace: str, created_after: datetime, created_before: datetime
) -> Iterator[list[dict]]:
    """Every purchase order created in [after, before), a page at a time, one 7-day window after another.

    One call covers every vendor code of the region: the API has no marketplace filter.
    """
    for start, end in windows(created_after, created_before):
        yield from _pages(
            partner,
            "getPurchaseOrders",
            "get_purchase_orders",
            "orders",
            marketplace,
            {"createdAfter": utc_iso(start), "createdBefore": utc_iso(end), "includeDetails": "true"},
        )


def purchase_order_statuses(
    partner: SellingPartner, marketplace: str, created_after: datetime, created_before: datetime
) -> Iterator[list[dict]]:
    """The status (acknowledged, received quantities, OPEN/CLOSED) of every purchase order created in the range."""
    for start, end in windows(created_after, created_before):
        yield from _pages(
            partner,
            "getPurchaseOrdersStatus",
            "get_purchase_orders_status",
            "ordersStatus",
            marketplace,
            {"createdAfter": utc_iso(start), "createdBefore": utc_iso(end)},
        )
