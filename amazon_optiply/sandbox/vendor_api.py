"""Vendor Orders v1 (Retail Procurement Orders) as Amazon serves it, over the sandbox vendor (vendor.py).

getPurchaseOrders, getPurchaseOrder and getPurchaseOrdersStatus with Amazon's shapes (vendorOrders.json) and
its awkwardness: 7-day date ranges, a 6-month lookback, `nextToken` paging, sortOrder ignored (always newest
first, amzn/selling-partner-api-docs#2483), unknown parameters such as the MarketplaceIds python-amazon-sp-api
adds ignored, errors as Amazon's terse `InvalidInput` / "Invalid Input". Nothing placed after the clock's now
is ever visible. Registered in AmazonApp through `_op`, so auth, rate limits and faults apply.

GUESSES (Amazon documents none of these):
- A PO counts as changed (changedAfter/changedBefore) at its purchaseOrderChangedDate or its
  purchaseOrderStateChangedDate, as both stand at now (so a new PO counts as changed when placed).
- lastUpdatedDate (updatedAfter/updatedBefore) is the latest of placed, changed, acknowledged, any receipt
  and closed, up to now.
- Date bounds are inclusive at both ends: a PO placed exactly on a boundary is in both adjacent windows.
- A missing ...Before means now; a missing ...After means ...Before minus 7 days; no date pair at all
  means created in the last 7 days (for statuses: unless purchaseOrderNumber is given).
- "6 months" is six calendar months before now.
- isPOChanged=false does not filter (it is the documented default).
- receivingStatus.receivedQuantity is always in Eaches (unitSize 1), whatever unit the item was ordered in.
- The status API writes timestamps with milliseconds (as Amazon's examples do), the orders API without.
- Error details carry the reason; Amazon's own leave them empty.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from datetime import UTC, datetime, timedelta

from amazon_optiply.sandbox.amazon import AmazonApp, _ApiError, amazon_error
from amazon_optiply.sandbox.http import Request, Response
from amazon_optiply.sandbox.vendor import (
    CLOSED_STATUS,
    FULFILMENT_CENTRES,
    OPEN_STATUS,
    ItemPlan,
    PurchaseOrderPlan,
    VendorWorld,
    six_months_before,
)

ORDERS_PATH = "/vendor/orders/v1"
MAX_RANGE = timedelta(days=7)
PO_NUMBER = re.compile(r"^[0-9A-Za-z]{8}$")
PO_STATES = ("New", "Acknowledged", "Closed")
CONFIRMATION_STATUSES = ("ACCEPTED", "PARTIALLY_ACCEPTED", "REJECTED", "UNCONFIRMED")
RECEIVE_STATUSES = ("NOT_RECEIVED", "PARTIALLY_RECEIVED", "RECEIVED")
BILL_TO = {
    "partyId": "AMAZON_EU",
    "address": {
        "name": "Amazon EU S.à r.l.",
        "addressLine1": "38 avenue John F. Kennedy",
        "city": "Luxembourg",
        "postalCode": "L-1855",
        "countryCode": "LU",
    },
    "taxInfo": {"taxRegistrationType": "VAT", "taxRegistrationNumber": "LU20260743"},
}


def register_vendor_routes(app: AmazonApp) -> None:
    api = VendorOrdersApi(app)
    r = app.router
    r.add("GET", f"{ORDERS_PATH}/purchaseOrders", app._op("getPurchaseOrders", api.get_purchase_orders))
    r.add(
        "GET",
        f"{ORDERS_PATH}/purchaseOrders/{{purchaseOrderNumber}}",
        app._op("getPurchaseOrder", api.get_purchase_order),
    )
    r.add(
        "GET",
        f"{ORDERS_PATH}/purchaseOrdersStatus",
        app._op("getPurchaseOrdersStatus", api.get_purchase_orders_status),
    )


# ---- wire formats ---------------------------------------------------------------------------------------


def _z(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _z_ms(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _window_text(window: tuple[datetime, datetime]) -> str:
    return f"{_z(window[0])}--{_z(window[1])}"


def _quantity(amount: int, unit: str, size: int) -> dict:
    return {"amount": amount, "unitOfMeasure": unit, "unitSize": size}


def _money(amount, item: ItemPlan) -> dict:
    out = {"currencyCode": item.product.currency, "amount": f"{amount:.2f}"}
    if item.product.cost_unit:
        out["unitOfMeasure"] = item.product.cost_unit
    return out


def order_json(po: PurchaseOrderPlan, now: datetime, details: bool = True) -> dict:
    """An Order as getPurchaseOrders / getPurchaseOrder answer it at `now`."""
    out: dict = {"purchaseOrderNumber": po.number, "purchaseOrderState": po.state_at(now)}
    if not details:
        return out
    town, postcode = FULFILMENT_CENTRES[po.ship_to]
    od: dict = {"purchaseOrderDate": _z(po.created)}
    changed = po.changed_visible(now)
    if changed is not None:
        od["purchaseOrderChangedDate"] = _z(changed)
    od["purchaseOrderStateChangedDate"] = _z(po.state_changed_at(now))
    od["purchaseOrderType"] = "RegularOrder"
    od["paymentMethod"] = "Invoice"
    od["buyingParty"] = {"partyId": po.ship_to}
    od["sellingParty"] = {"partyId": po.vendor_code}
    od["shipToParty"] = {
        "partyId": po.ship_to,
        "address": {
            "name": f"Amazon {po.ship_to}",
            "addressLine1": "Amazonstraße 1",
            "city": town,
            "postalCode": postcode,
            "countryCode": "DE",
        },
    }
    od["billToParty"] = BILL_TO
    if po.delivery_window:
        od["deliveryWindow"] = _window_text(po.delivery_window)
    if po.ship_window:
        od["shipWindow"] = _window_text(po.ship_window)
    od["items"] = [
        {
            "itemSequenceNumber": item.sequence,
            "amazonProductIdentifier": item.product.asin,
            "vendorProductIdentifier": item.product.vendor_product_id,
            "orderedQuantity": _quantity(item.amount_at(po, now), item.unit, item.unit_size),
            "isBackOrderAllowed": item.back_order_allowed,
            "netCost": _money(item.product.net_cost, item),
            "listPrice": _money(item.product.list_price, item),
        }
        for item in po.items
    ]
    out["orderDetails"] = od
    return out


def status_json(po: PurchaseOrderPlan, now: datetime) -> dict:
    """An OrderStatus as getPurchaseOrdersStatus answers it at `now`."""
    items = []
    changed = po.changed_visible(now)
    acknowledged = po.acknowledged_at <= now
    for item in po.items:
        unit, size = item.unit, item.unit_size
        amount = item.amount_at(po, now)
        details = [
            {"updatedDate": _z_ms(po.created), "orderedQuantity": _quantity(item.original_amount, unit, size)}
        ]
        if changed is not None and amount != item.original_amount:
            cancelled = _quantity(item.original_amount - amount, unit, size)
            details.insert(0, {"updatedDate": _z_ms(changed), "cancelledQuantity": cancelled})
        accepted = _quantity(item.accepted_at(po, now), unit, size)
        rejected = _quantity(item.rejected_at(po, now), unit, size)
        ack: dict = {
            "confirmationStatus": item.confirmation_at(po, now),
            "acceptedQuantity": accepted,
            "rejectedQuantity": rejected,
        }
        if acknowledged:
            ack["acknowledgementStatusDetails"] = [
                {
                    "acknowledgementDate": _z_ms(po.acknowledged_at),
                    "acceptedQuantity": accepted,
                    "rejectedQuantity": rejected,
                }
            ]
        received, last = item.received_at(now)
        receiving: dict = {
            "receiveStatus": item.receive_status_at(po, now),
            "receivedQuantity": _quantity(received, "Eaches", 1),
        }
        if last is not None:
            receiving["lastReceiveDate"] = _z_ms(last)
        items.append(
            {
                "itemSequenceNumber": item.sequence,
                "buyerProductIdentifier": item.product.asin,
                "vendorProductIdentifier": item.product.vendor_product_id,
                "netCost": _money(item.product.net_cost, item),
                "listPrice": _money(item.product.list_price, item),
                "orderedQuantity": {
                    "orderedQuantity": _quantity(amount, unit, size),
                    "orderedQuantityDetails": details,
                },
                "acknowledgementStatus": ack,
                "receivingStatus": receiving,
            }
        )
    return {
        "purchaseOrderNumber": po.number,
        "purchaseOrderStatus": CLOSED_STATUS if po.state_at(now) == "Closed" else OPEN_STATUS,
        "purchaseOrderDate": _z_ms(po.created),
        "lastUpdatedDate": _z_ms(po.last_updated_at(now)),
        "sellingParty": {"partyId": po.vendor_code},
        "shipToParty": {"partyId": po.ship_to},
        "itemStatus": items,
    }


# ---- the API --------------------------------------------------------------------------------------------


def _invalid(details: str) -> _ApiError:
    return _ApiError(400, "InvalidInput", "Invalid Input", details)


def _time(request: Request, name: str) -> datetime | None:
    raw = request.param(name)
    if raw is None or raw == "":
        return None
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid(f"{name} must be an ISO-8601 date-time, not {raw!r}.") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _enum(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.param(name)
    if value is None or value == "":
        return None
    if value not in allowed:
        raise _invalid(f"{name} must be one of {', '.join(allowed)}, not {value!r}.")
    return value


def _flag(request: Request, name: str) -> bool | None:
    value = request.param(name)
    if value is None or value == "":
        return None
    if value.lower() not in ("true", "false"):
        raise _invalid(f"{name} must be true or false, not {value!r}.")
    return value.lower() == "true"


def _limit(request: Request) -> int:
    raw = request.param("limit")
    if raw is None or raw == "":
        return 100
    try:
        limit = int(raw)
    except ValueError:
        raise _invalid(f"limit must be an integer, not {raw!r}.") from None
    if not 1 <= limit <= 100:
        raise _invalid("limit must be between 1 and 100.")
    return limit


def _range(request: Request, after: str, before: str, now: datetime) -> tuple[datetime, datetime] | None:
    """An After/Before pair, resolved and checked against Amazon's 7-day and 6-month rules."""
    start, end = _time(request, after), _time(request, before)
    if start is None and end is None:
        return None
    end = end or now
    start = start or end - MAX_RANGE
    if start > end:
        raise _invalid(f"{after} must not be later than {before}.")
    if end - start > MAX_RANGE:
        raise _invalid(f"The date range from {after} to {before} must not exceed 7 days.")
    if start < six_months_before(now):
        raise _invalid(f"{after} must be within the past 6 months.")
    return start, end


class VendorOrdersApi:
    def __init__(self, app: AmazonApp) -> None:
        self.app = app
        self.backend = app.backend

    @property
    def world(self) -> VendorWorld | None:
        return self.backend.vendor

    def _refuse_without_vendor(self) -> Response | None:
        if self.world is None:  # a seller's app has no vendor role (models#2686)
            return amazon_error(403, "Unauthorized", "Access to requested resource is denied.", "")
        return None

    # ---- paging: opaque tokens that carry the resolved query and a keyset cursor ----------------------------
    def _resume(self, request: Request, kind: str) -> dict | None:
        token = request.param("nextToken")
        if not token:
            return None
        b = self.backend
        with b.lock:
            entry = b.next_tokens.get(token)
        if entry is None or entry[0].get("kind") != kind:
            raise _invalid("The nextToken is not valid.")
        query, issued = entry
        if time.monotonic() - issued > b.settings.next_token_ttl_seconds:
            raise _invalid("The nextToken has expired. Start again without a nextToken.")
        return query

    def _page(self, query: dict, matches: list[PurchaseOrderPlan]) -> tuple[list[PurchaseOrderPlan], dict]:
        """Newest first whatever sortOrder says (Amazon ignores it), after the cursor, `limit` at most."""
        matches.sort(key=lambda p: (p.created, p.number), reverse=True)
        cursor = query.get("cursor")
        if cursor is not None:
            key = (datetime.fromisoformat(cursor[0]), cursor[1])
            matches = [p for p in matches if (p.created, p.number) < key]
        page = matches[: query["limit"]]
        pagination: dict = {}
        if len(matches) > query["limit"]:
            token = base64.b64encode(secrets.token_bytes(27)).decode()
            last = page[-1]
            with self.backend.lock:
                self.backend.next_tokens[token] = (
                    {**query, "cursor": (last.created.isoformat(), last.number)},
                    time.monotonic(),
                )
            pagination["nextToken"] = token
        return page, pagination

    @staticmethod
    def _within(t: datetime | None, window: tuple[datetime, datetime] | None) -> bool:
        return window is None or (t is not None and window[0] <= t <= window[1])

    @staticmethod
    def _window_json(window: tuple[datetime, datetime] | None) -> tuple[str, str] | None:
        return None if window is None else (window[0].isoformat(), window[1].isoformat())

    @staticmethod
    def _window_of(value: tuple[str, str] | None) -> tuple[datetime, datetime] | None:
        return None if value is None else (datetime.fromisoformat(value[0]), datetime.fromisoformat(value[1]))

    # ---- getPurchaseOrders -------------------------------------------------------------------------------
    def get_purchase_orders(self, request: Request) -> Response:
        refused = self._refuse_without_vendor()
        if refused:
            return refused
        world = self.world
        assert world is not None
        now = self.backend.clock.now()
        query = self._resume(request, "orders")
        if query is None:
            _enum(request, "sortOrder", ("ASC", "DESC"))  # checked, then ignored as Amazon does
            created = _range(request, "createdAfter", "createdBefore", now)
            changed = _range(request, "changedAfter", "changedBefore", now)
            if created is None and changed is None:
                created = (now - MAX_RANGE, now)
            query = {
                "kind": "orders",
                "limit": _limit(request),
                "created": self._window_json(created),
                "changed": self._window_json(changed),
                "details": _flag(request, "includeDetails") is not False,
                "changed_only": _flag(request, "isPOChanged") is True,
                "cancelled_item": _enum(request, "poItemState", ("Cancelled",)) is not None,
                "state": _enum(request, "purchaseOrderState", PO_STATES),
                "vendor_code": request.param("orderingVendorCode") or None,
            }
        created_w = self._window_of(query["created"])
        changed_w = self._window_of(query["changed"])
        matches = []
        for po in world.purchase_order_plans(now):
            if not self._within(po.created, created_w):
                continue
            if changed_w is not None and not (
                self._within(po.changed_visible(now), changed_w)
                or self._within(po.state_changed_at(now), changed_w)
            ):
                continue
            if query["changed_only"] and po.changed_visible(now) is None:
                continue
            if query["cancelled_item"] and not any(i.amount_at(po, now) == 0 for i in po.items):
                continue
            if query["state"] and po.state_at(now) != query["state"]:
                continue
            if query["vendor_code"] and po.vendor_code != query["vendor_code"]:
                continue
            matches.append(po)
        page, pagination = self._page(query, matches)
        payload: dict = {}
        if pagination:
            payload["pagination"] = pagination
        payload["orders"] = [order_json(po, now, query["details"]) for po in page]
        return Response.json(200, {"payload": payload})

    # ---- getPurchaseOrder --------------------------------------------------------------------------------
    def get_purchase_order(self, request: Request) -> Response:
        refused = self._refuse_without_vendor()
        if refused:
            return refused
        world = self.world
        assert world is not None
        number = request.path_params["purchaseOrderNumber"]
        if not PO_NUMBER.match(number):
            raise _invalid("purchaseOrderNumber must be an 8-character alphanumeric code.")
        now = self.backend.clock.now()
        po = world.purchase_order_by_number(number, now)
        if po is None:
            raise _ApiError(404, "NotFound", "The requested purchase order was not found.", number)
        return Response.json(200, {"payload": order_json(po, now)})

    # ---- getPurchaseOrdersStatus ---------------------------------------------------------------------------
    def get_purchase_orders_status(self, request: Request) -> Response:
        refused = self._refuse_without_vendor()
        if refused:
            return refused
        world = self.world
        assert world is not None
        now = self.backend.clock.now()
        query = self._resume(request, "statuses")
        if query is None:
            _enum(request, "sortOrder", ("ASC", "DESC"))
            created = _range(request, "createdAfter", "createdBefore", now)
            updated = _range(request, "updatedAfter", "updatedBefore", now)
            number = request.param("purchaseOrderNumber") or None
            if created is None and updated is None and number is None:
                created = (now - MAX_RANGE, now)
            query = {
                "kind": "statuses",
                "limit": _limit(request),
                "created": self._window_json(created),
                "updated": self._window_json(updated),
                "number": number,
                "status": _enum(request, "purchaseOrderStatus", (OPEN_STATUS, CLOSED_STATUS)),
                "confirmation": _enum(request, "itemConfirmationStatus", CONFIRMATION_STATUSES),
                "receive": _enum(request, "itemReceiveStatus", RECEIVE_STATUSES),
                "vendor_code": request.param("orderingVendorCode") or None,
                "ship_to": request.param("shipToPartyId") or None,
            }
        created_w = self._window_of(query["created"])
        updated_w = self._window_of(query["updated"])
        matches = []
        for po in world.purchase_order_plans(now):
            if not self._within(po.created, created_w):
                continue
            if not self._within(po.last_updated_at(now), updated_w):
                continue
            if query["number"] and po.number != query["number"]:
                continue
            closed = po.state_at(now) == "Closed"
            if query["status"] and query["status"] != (CLOSED_STATUS if closed else OPEN_STATUS):
                continue
            if query["confirmation"] and not any(
                i.confirmation_at(po, now) == query["confirmation"] for i in po.items
            ):
                continue
            if query["receive"] and not any(
                i.receive_status_at(po, now) == query["receive"] for i in po.items
            ):
                continue
            if query["vendor_code"] and po.vendor_code != query["vendor_code"]:
                continue
            if query["ship_to"] and po.ship_to != query["ship_to"]:
                continue
            matches.append(po)
        page, pagination = self._page(query, matches)
        payload: dict = {}
        if pagination:
            payload["pagination"] = pagination
        payload["ordersStatus"] = [status_json(po, now) for po in page]
        return Response.json(200, {"payload": payload})
