"""The API streams' SP-API calls: order items, financial events, AWD inventory, inbound shipments, the account.

Each follows its operation's paging to the end (the tap read the first page of order items only) through
`SellingPartner.caller`, so every call spends the tenant's budget at Amazon's documented rate and is retried
only when transient. A page token Amazon lets expire (finances: "Token is not valid, token duration is 3
minutes") restarts the read it belongs to, a bounded number of times. No Dagster here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from sp_api.api import (
    AmazonWarehousingAndDistributionV20240509,
    FinancesV0,
    FulfillmentInboundV0,
    OrdersV0,
    Sellers,
)

from amazon_optiply.clients.amazon import AmazonError, utc_iso
from amazon_optiply.clients.selling_partner import SellingPartner, amazon_time
from amazon_optiply.marketplaces import MARKETPLACES

FINANCES_PAGE_SIZE = 100  # Amazon's maximum
# Amazon answers nothing for PostedAfter/PostedBefore more than 180 days apart; shorter windows also keep
# what an expired token costs to read again small.
FINANCES_MAX_WINDOW = timedelta(days=7)
AWD_PAGE_SIZE = 200  # Amazon's maximum
# Every status getShipments knows: a shipment cancelled or deleted matters too (its units are no longer
# on their way).
SHIPMENT_STATUSES = (
    "WORKING",
    "READY_TO_SHIP",
    "SHIPPED",
    "RECEIVING",
    "CANCELLED",
    "DELETED",
    "CLOSED",
    "ERROR",
    "IN_TRANSIT",
    "DELIVERED",
    "CHECKED_IN",
)
TOKEN_RESTARTS = 3

T = TypeVar("T")


class ExpiredToken(RuntimeError):
    """Amazon refused a page token as expired more often than a read restarts."""


def _expired_token(exc: AmazonError) -> bool:
    text = str(exc).lower()
    return "token" in text and ("expired" in text or "not valid" in text)


def restarting(read: Callable[[], T], what: str) -> T:
    """Run a whole paged read again when Amazon calls one of its page tokens expired."""
    for attempt in range(1, TOKEN_RESTARTS + 2):
        try:
            return read()
        except AmazonError as exc:
            if not _expired_token(exc):
                raise
            if attempt > TOKEN_RESTARTS:
                raise ExpiredToken(
                    f"{what}: Amazon let a page token expire {attempt} times in a row: {exc}"
                ) from None
    raise AssertionError("unreachable")


def windows(start: datetime, end: datetime, size: timedelta) -> list[tuple[datetime, datetime]]:
    """[start, end) cut into consecutive windows no longer than `size`."""
    out = []
    while start < end:
        out.append((start, min(start + size, end)))
        start = out[-1][1]
    return out


# ---- Orders v0: getOrderItems --------------------------------------------------------------------------------


def order_items(partner: SellingPartner, marketplace: str, order_id: str) -> list[dict]:
    """Every item of one order, following NextToken to the last page."""

    def read() -> list[dict]:
        api = partner.api(OrdersV0, marketplace)
        items: list[dict] = []
        token = None
        while True:
            params = {"NextToken": token} if token else {}
            answer = partner.caller.call(
                "getOrderItems", lambda p=params: api.get_order_items(order_id, **p), expect="OrderItems"
            )
            items += answer.payload.get("OrderItems") or []
            token = answer.payload.get("NextToken")
            if not token:
                return items

    return restarting(read, f"getOrderItems for order {order_id}")


# ---- Finances v0: listFinancialEvents ------------------------------------------------------------------------


class _ExactFinances(FinancesV0):
    """Finances money is a JSON number (Amazon's BigDecimal): parse it as Decimal, never through a float."""

    def _check_response(self, res, *args, **kwargs):
        res.json = lambda **_: json.loads(res.content or b"{}", parse_float=Decimal)
        return super()._check_response(res, *args, **kwargs)


def finances_clock(partner: SellingPartner, marketplace: str, probe_at: datetime) -> datetime:
    """Amazon's time, from the Date of a one-result listFinancialEvents call over one second at `probe_at`.

    The window's end is Amazon's "now" less its lag, not this machine's: one call at 0.5 per second.
    """
    api = partner.api(_ExactFinances, marketplace)
    params = {
        "PostedAfter": utc_iso(probe_at),
        "PostedBefore": utc_iso(probe_at + timedelta(seconds=1)),
        "MaxResultsPerPage": 1,
    }
    answer = partner.caller.call(
        "listFinancialEvents", lambda: api.list_financial_events(**params), expect="FinancialEvents"
    )
    return amazon_time(answer.headers)


def financial_events(
    partner: SellingPartner, marketplace: str, posted_after: datetime, posted_before: datetime
) -> Iterator[tuple[tuple[datetime, datetime], list[dict]]]:
    """Each window of at most FINANCES_MAX_WINDOW with its pages' FinancialEvents, every page followed.

    A window is read whole before it is yielded: a token that expires half-way restarts its window, so a
    page is never counted twice.
    """
    api = partner.api(_ExactFinances, marketplace)
    for start, end in windows(posted_after, posted_before, FINANCES_MAX_WINDOW):

        def read(start=start, end=end) -> list[dict]:
            pages: list[dict] = []
            first: dict = {
                "PostedAfter": utc_iso(start),
                "PostedBefore": utc_iso(end),
                "MaxResultsPerPage": FINANCES_PAGE_SIZE,
            }
            params = first
            while True:
                answer = partner.caller.call(
                    "listFinancialEvents",
                    lambda p=params: api.list_financial_events(**p),
                    expect="FinancialEvents",
                )
                pages.append(answer.payload.get("FinancialEvents") or {})
                token = answer.payload.get("NextToken")
                if not token:
                    return pages
                params = {**first, "NextToken": token}  # Amazon: the same arguments, with the token

        yield (start, end), restarting(read, f"listFinancialEvents {utc_iso(start)}..{utc_iso(end)}")


# ---- AWD 2024-05-09: listInventory ---------------------------------------------------------------------------


def awd_inventory(partner: SellingPartner) -> list[dict]:
    """Every AWD inventory summary with details (AWD is the US marketplace's: its host is NA).

    The answer is not wrapped in `payload`; a page may be empty and still carry a nextToken.
    """

    def read() -> list[dict]:
        api = partner.api(AmazonWarehousingAndDistributionV20240509, "US")
        summaries: list[dict] = []
        token = None
        while True:
            # The same arguments with every token, as Amazon asks.
            params: dict = {"details": "SHOW", "maxResults": AWD_PAGE_SIZE}
            if token:
                params["nextToken"] = token
            answer = partner.caller.call(
                "listInventory", lambda p=params: api.list_inventory(**p), expect="inventory"
            )
            summaries += answer.payload.get("inventory") or []
            token = answer.next_token
            if not token:
                return summaries

    return restarting(read, "AWD listInventory")


# ---- FBA Inbound v0: getShipments, getShipmentItemsByShipmentId ----------------------------------------------


def inbound_clock(partner: SellingPartner, marketplace: str, probe_at: datetime) -> datetime:
    """Amazon's time, from the Date of a getShipments call over one second at `probe_at` (2 per second)."""
    api = partner.api(FulfillmentInboundV0, marketplace)
    params = _shipment_query(marketplace, probe_at, probe_at + timedelta(seconds=1))
    answer = partner.caller.call("getShipments", lambda: api.get_shipments(**params), expect="ShipmentData")
    return amazon_time(answer.headers)


def _shipment_query(marketplace: str, after: datetime, before: datetime) -> dict:
    return {
        "QueryType": "DATE_RANGE",
        "LastUpdatedAfter": utc_iso(after),
        "LastUpdatedBefore": utc_iso(before),
        "ShipmentStatusList": ",".join(SHIPMENT_STATUSES),
        "MarketplaceId": MARKETPLACES[marketplace].marketplace_id,
    }


def inbound_shipments(
    partner: SellingPartner, marketplace: str, updated_after: datetime, updated_before: datetime
) -> list[dict]:
    """The inbound shipments last updated in [after, before] (Amazon's bounds are inclusive), every page."""

    def read() -> list[dict]:
        api = partner.api(FulfillmentInboundV0, marketplace)
        shipments: list[dict] = []
        params = _shipment_query(marketplace, updated_after, updated_before)
        while True:
            answer = partner.caller.call(
                "getShipments", lambda p=params: api.get_shipments(**p), expect="ShipmentData"
            )
            shipments += answer.payload.get("ShipmentData") or []
            token = answer.payload.get("NextToken")
            if not token:
                return shipments
            params = {
                "QueryType": "NEXT_TOKEN",
                "NextToken": token,
                "MarketplaceId": MARKETPLACES[marketplace].marketplace_id,
            }

    return restarting(read, f"getShipments for {marketplace}")


def inbound_shipment_items(partner: SellingPartner, marketplace: str, shipment_id: str) -> list[dict]:
    """The items of one inbound shipment (the operation has no paging)."""
    api = partner.api(FulfillmentInboundV0, marketplace)
    answer = partner.caller.call(
        "getShipmentItemsByShipmentId",
        lambda: api.shipment_items_by_shipment(shipment_id),
        expect="ItemData",
    )
    return answer.payload.get("ItemData") or []


# ---- Sellers --------------------------------------------------------------------------------------------------


def seller_account(partner: SellingPartner, marketplace: str) -> dict:
    """getAccount: the selling account, whichever marketplace asks (one call at 0.016 per second)."""
    api = partner.api(Sellers, marketplace)
    return partner.caller.call("getAccount", lambda: api.get_account(), expect="businessType").payload


def marketplace_participations(partner: SellingPartner, marketplace: str) -> list[dict]:
    """getMarketplaceParticipations: every marketplace of the account and whether the seller takes part."""
    api = partner.api(Sellers, marketplace)
    answer = partner.caller.call(
        "getMarketplaceParticipations", lambda: api.get_marketplace_participation(), expect="payload"
    )
    return answer.payload if isinstance(answer.payload, list) else answer.payload.get("payload", [])
