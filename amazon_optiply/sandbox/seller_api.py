"""The seller's API streams as Amazon serves them, over the sandbox seller (seller_api_streams.py).

Orders v0 getOrderItems, Finances v0 listFinancialEvents, AWD 2024-05-09 listInventory, FBA Inbound v0
getShipments and getShipmentItemsByShipmentId, and Sellers getAccount, with Amazon's shapes and their
differences: Orders, Finances, Inbound and Sellers wrap their answer in `payload`, AWD does not; Orders money
is `{CurrencyCode, Amount: "10.00"}` (a string), Finances money `{CurrencyCode, CurrencyAmount: 10.00}` (a
JSON number, written exactly). Registered in AmazonApp through `_op`, so auth, rate limits and faults apply.
Every paged answer's token expires after `next_token_ttl_seconds` (Amazon: "Token is not valid, token
duration is 3 minutes" for finances).

GUESSES (Amazon documents none of these):
- Pages: getOrderItems 2 items, getShipments 5 shipments (small, so the sandbox seller pages); AWD
  answers its second page empty, with a nextToken, when more follow ("this operation can return empty
  pages").
- listFinancialEvents has no marketplace parameter: Amazon answers the region of the host it is called on.
  One sandbox host serves every region, so the MarketplaceId python-amazon-sp-api adds to every call stands
  for the host's region; without one, every region.
- PostedAfter is required unless NextToken is given; a next page takes the token alone, or with the same
  arguments as the call that produced it (anything else is refused).
- getShipments with DATE_RANGE also filters by ShipmentStatusList when one is given.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from amazon_optiply.marketplaces import MARKETPLACES, MARKETPLACES_BY_ID
from amazon_optiply.sandbox import seller_api_streams as streams
from amazon_optiply.sandbox.amazon import AmazonApp, AmazonBackend, _ApiError, _int_param, _parse_time
from amazon_optiply.sandbox.http import Request, Response

ORDER_ITEMS_PAGE_SIZE = 2
SHIPMENTS_PAGE_SIZE = 5
FINANCES_MAX_SPAN = timedelta(days=180)
FINANCES_MIN_AGE = timedelta(minutes=2)
FINANCE_LISTS = ("ShipmentEventList", "RefundEventList", "ServiceFeeEventList", "AdjustmentEventList")
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
SHIP_FROM = {
    "EU": {
        "Name": "Sandbox Küchenwelt",
        "AddressLine1": "Lagerstraße 5",
        "City": "Leipzig",
        "StateOrProvinceCode": "SN",
        "CountryCode": "DE",
        "PostalCode": "04109",
    },
    "NA": {
        "Name": "Sandbox Kitchen World",
        "AddressLine1": "501 Fairview Ave N",
        "City": "Seattle",
        "StateOrProvinceCode": "WA",
        "CountryCode": "US",
        "PostalCode": "98109",
    },
}


@dataclass
class SellerApiHooks:
    """What tests may do to these operations: expire the next tokens presented, refuse AWD (403)."""

    expire_next_tokens: int = 0
    refuse_awd: bool = False


def seller_api_hooks(backend: AmazonBackend) -> SellerApiHooks:
    with backend.lock:
        return backend.__dict__.setdefault("seller_api_hooks", SellerApiHooks())


def register_seller_api_routes(app: AmazonApp) -> None:
    api = SellerApi(app.backend)
    r = app.router
    r.add("GET", "/orders/v0/orders/{order_id}/orderItems", app._op("getOrderItems", api.order_items))
    r.add("GET", "/finances/v0/financialEvents", app._op("listFinancialEvents", api.financial_events))
    r.add("GET", "/awd/2024-05-09/inventory", app._op("listInventory", api.awd_inventory))
    r.add("GET", "/fba/inbound/v0/shipments", app._op("getShipments", api.shipments))
    r.add(
        "GET",
        "/fba/inbound/v0/shipments/{shipment_id}/items",
        app._op("getShipmentItemsByShipmentId", api.shipment_items),
    )
    r.add("GET", "/sellers/v1/account", app._op("getAccount", api.account))


# ---- wire formats ---------------------------------------------------------------------------------------


def _z(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_DECIMAL = re.compile(r'"\\u0000decimal:(-?\d+(?:\.\d+)?)"')


def json_with_exact_numbers(payload: object, status: int = 200) -> Response:
    """JSON with Decimal values written as the exact numbers they are (10.50, never 10.5 or 10.499999)."""

    def encode(value: object) -> str:
        if isinstance(value, Decimal):
            return f"\u0000decimal:{value:f}"
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")

    text = _DECIMAL.sub(r"\1", json.dumps(payload, default=encode))
    return Response(status, text.encode("utf-8"), {"Content-Type": "application/json"})


def _amount(value: Decimal, currency: str) -> dict:
    return {"CurrencyCode": currency, "Amount": f"{value:f}"}


def order_item_json(item: dict) -> dict:
    """An OrderItem as getOrderItems writes it (no BuyerInfo: Amazon sends it only with a restricted token)."""
    out: dict = {
        "ASIN": item["asin"],
        "OrderItemId": item["order_item_id"],
        "SellerSKU": item["sku"],
        "Title": item["title"],
        "QuantityOrdered": item["quantity_ordered"],
        "QuantityShipped": item["quantity_shipped"],
        "ProductInfo": {"NumberOfItems": "1"},
    }
    money = item["money"]
    if money:  # Pending (and cancelled) orders come without pricing, taxes, gift status or promotions
        for key in (
            "ItemPrice",
            "ItemTax",
            "ShippingPrice",
            "ShippingTax",
            "ShippingDiscount",
            "PromotionDiscount",
        ):
            out[key] = _amount(money[key], item["currency"])
        out["ShippingDiscountTax"] = _amount(Decimal("0.00"), item["currency"])
        out["PromotionDiscountTax"] = _amount(Decimal("0.00"), item["currency"])
        out["PromotionIds"] = item["promotion_ids"]
        out["IsGift"] = "true" if item["is_gift"] else "false"
    out.update(
        {
            "ConditionId": "New",
            "ConditionSubtypeId": "New",
            "IsTransparency": False,
            "SerialNumberRequired": False,
            "BuyerRequestedCancel": {"IsBuyerRequestedCancel": "false", "BuyerCancelReason": ""},
        }
    )
    return out


def shipment_json(shipment: streams.InboundShipment, now: datetime) -> dict:
    region = MARKETPLACES[shipment.marketplace].region
    return {
        "ShipmentId": shipment.shipment_id,
        "ShipmentName": shipment.name,
        "ShipFromAddress": SHIP_FROM.get(region, SHIP_FROM["NA"]),
        "DestinationFulfillmentCenterId": shipment.centre,
        "ShipmentStatus": shipment.status_at(now),
        "LabelPrepType": "SELLER_LABEL",
        "AreCasesRequired": shipment.cases_required,
        "BoxContentsSource": "INTERACTIVE",
    }


def shipment_item_json(shipment: streams.InboundShipment, item: streams.ShipmentItem, now: datetime) -> dict:
    return {
        "ShipmentId": shipment.shipment_id,
        "SellerSKU": item.sku,
        "FulfillmentNetworkSKU": item.fnsku,
        "QuantityShipped": item.quantity,
        "QuantityReceived": shipment.received(item, now),
        "QuantityInCase": item.in_case,
        "PrepDetailsList": [{"PrepInstruction": "Labeling", "PrepOwner": "SELLER"}],
    }


def awd_json(stock: streams.AwdStock, details: bool) -> dict:
    out: dict = {
        "sku": stock.sku,
        "totalOnhandQuantity": stock.onhand,
        "totalInboundQuantity": stock.inbound,
    }
    if details:
        out["inventoryDetails"] = {
            "availableDistributableQuantity": stock.available,
            "reservedDistributableQuantity": stock.reserved,
            "replenishmentQuantity": stock.replenishment,
        }
        out["expirationDetails"] = [
            {"expiration": when.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "onhandQuantity": n}
            for when, n in stock.lots
        ]
    return out


# ---- the API --------------------------------------------------------------------------------------------


def _invalid(message: str) -> _ApiError:
    return _ApiError(400, "InvalidInput", message)


class SellerApi:
    def __init__(self, backend: AmazonBackend) -> None:
        self.backend = backend

    @property
    def world(self):
        return self.backend.world

    def _now(self) -> datetime:
        now = self.backend.clock.now()
        self.world.advance_to(now)
        return now

    def _issue(self, query: dict) -> str:
        token = base64.urlsafe_b64encode(secrets.token_bytes(36)).decode()
        with self.backend.lock:
            self.backend.next_tokens[token] = (query, time.monotonic())
        return token

    def _redeem(self, token: str, operation: str, expired_message: str) -> dict:
        b = self.backend
        hooks = seller_api_hooks(b)
        with b.lock:
            entry = b.next_tokens.get(token)
            forced = entry is not None and hooks.expire_next_tokens > 0
            if forced:
                hooks.expire_next_tokens -= 1
        if entry is None or entry[0].get("operation") != operation:
            raise _invalid("Invalid NextToken.")
        query, issued = entry
        if forced or time.monotonic() - issued > b.settings.next_token_ttl_seconds:
            raise _invalid(expired_message)
        return query

    def _ttl_text(self) -> str:
        seconds = self.backend.settings.next_token_ttl_seconds
        return f"{seconds / 60:g} minutes" if seconds >= 60 else f"{seconds:g} seconds"

    # ---- Orders v0 --------------------------------------------------------------------------------------
    def order_items(self, request: Request) -> Response:
        order_id = request.path_params["order_id"]
        now = self._now()
        token = request.param("NextToken")
        offset = 0
        if token:
            query = self._redeem(token, "getOrderItems", "Invalid NextToken: it has expired.")
            if query["order_id"] != order_id:
                raise _invalid("The NextToken was issued for another order.")
            offset = query["offset"]
        order = streams.order_by_id(self.world, order_id, now)
        if order is None:
            raise _ApiError(404, "NotFound", f"Invalid AmazonOrderId: {order_id}")
        items = streams.order_items(order, now)
        page = items[offset : offset + ORDER_ITEMS_PAGE_SIZE]
        payload: dict = {"AmazonOrderId": order_id, "OrderItems": [order_item_json(i) for i in page]}
        if offset + ORDER_ITEMS_PAGE_SIZE < len(items):
            payload["NextToken"] = self._issue(
                {"operation": "getOrderItems", "order_id": order_id, "offset": offset + ORDER_ITEMS_PAGE_SIZE}
            )
        return Response.json(200, {"payload": payload})

    # ---- Finances v0 ------------------------------------------------------------------------------------
    def financial_events(self, request: Request) -> Response:
        now = self._now()
        token = request.param("NextToken")
        if token:
            query = self._redeem(
                token, "listFinancialEvents", f"Token is not valid, token duration is {self._ttl_text()}."
            )
            given = {
                name: request.param(name) for name in ("PostedAfter", "PostedBefore", "MaxResultsPerPage")
            }
            if any(given.values()) and given != query["arguments"]:
                raise _invalid("Call with the same arguments as the call that produced the NextToken.")
        else:
            size = _int_param(request, "MaxResultsPerPage", 100)
            if not 1 <= size <= 100:
                raise _invalid("MaxResultsPerPage must be between 1 and 100.")
            if not request.param("PostedAfter"):
                raise _invalid("PostedAfter is required when NextToken is not given.")
            after = _parse_time(request.param("PostedAfter"), "PostedAfter")
            before = (
                _parse_time(request.param("PostedBefore"), "PostedBefore")
                if request.param("PostedBefore")
                else now - FINANCES_MIN_AGE
            )
            if after > now - FINANCES_MIN_AGE:
                raise _invalid("PostedAfter must be more than two minutes before the time of the request.")
            if before > now - FINANCES_MIN_AGE:
                raise _invalid("PostedBefore must be more than two minutes before the time of the request.")
            if before <= after:
                raise _invalid("PostedBefore must be later than PostedAfter.")
            mid = request.param("MarketplaceId")
            region = MARKETPLACES_BY_ID[mid].region if mid in MARKETPLACES_BY_ID else None
            query = {
                "operation": "listFinancialEvents",
                "arguments": {
                    name: request.param(name) for name in ("PostedAfter", "PostedBefore", "MaxResultsPerPage")
                },
                "after": after.isoformat(),
                "before": before.isoformat(),
                "region": region,
                "size": size,
                "offset": 0,
            }
        after, before = datetime.fromisoformat(query["after"]), datetime.fromisoformat(query["before"])
        if before - after > FINANCES_MAX_SPAN:
            events = []  # Amazon: "more than 180 days apart, the response is empty"
        else:
            events = streams.finances_of(self.world).visible(query["region"], after, before, now)
        offset, size = query["offset"], query["size"]
        page = events[offset : offset + size]
        lists: dict = {name: [] for name in FINANCE_LISTS}
        for event in page:
            lists[event.list_name].append(event.body)
        payload: dict = {"FinancialEvents": lists}
        if offset + size < len(events):
            payload["NextToken"] = self._issue({**query, "offset": offset + size})
        return json_with_exact_numbers({"payload": payload})

    # ---- AWD 2024-05-09 (not wrapped in `payload`) ------------------------------------------------------
    def awd_inventory(self, request: Request) -> Response:
        if seller_api_hooks(self.backend).refuse_awd:
            raise _ApiError(403, "Unauthorized", "Access to requested resource is denied.")
        self._now()
        args = {
            "sku": request.param("sku") or "",
            "sortOrder": request.param("sortOrder") or "ASCENDING",
            "details": request.param("details") or "HIDE",
            "maxResults": _int_param(request, "maxResults", 25),
        }
        if args["sortOrder"] not in ("ASCENDING", "DESCENDING"):
            raise _invalid(f"sortOrder must be ASCENDING or DESCENDING, not {args['sortOrder']!r}.")
        if args["details"] not in ("SHOW", "HIDE"):
            raise _invalid(f"details must be SHOW or HIDE, not {args['details']!r}.")
        if not 1 <= args["maxResults"] <= 200:
            raise _invalid("maxResults must be between 1 and 200.")
        token = request.param("nextToken")
        page_no, offset = 0, 0
        if token:
            query = self._redeem(token, "listInventory", "The nextToken has expired.")
            if query["args"] != args:
                raise _invalid("Call with the same arguments as the call that produced the nextToken.")
            page_no, offset = query["page"], query["offset"]
        stock = sorted(
            streams.streams_of(self.world).awd.values(),
            key=lambda s: s.sku,
            reverse=args["sortOrder"] == "DESCENDING",
        )
        if args["sku"]:
            stock = [s for s in stock if s.sku == args["sku"]]
        size = 0 if page_no == 1 else args["maxResults"]  # the second page is an empty one
        page = stock[offset : offset + size]
        out: dict = {"inventory": [awd_json(s, args["details"] == "SHOW") for s in page]}
        if offset + size < len(stock):
            out["nextToken"] = self._issue(
                {"operation": "listInventory", "args": args, "page": page_no + 1, "offset": offset + size}
            )
        return Response.json(200, out)

    # ---- FBA Inbound v0 ---------------------------------------------------------------------------------
    def _marketplace(self, request: Request) -> str:
        mid = request.param("MarketplaceId")
        if not mid:
            raise _invalid("MarketplaceId is required.")
        if mid not in MARKETPLACES_BY_ID:
            raise _invalid(f"Invalid MarketplaceId: {mid}")
        code = MARKETPLACES_BY_ID[mid].country_code
        if code not in self.world.config.marketplaces:
            raise _ApiError(403, "Unauthorized", f"The seller does not participate in marketplace {mid}.")
        return code

    def shipments(self, request: Request) -> Response:
        now = self._now()
        mp = self._marketplace(request)
        query_type = request.param("QueryType")
        if query_type not in ("SHIPMENT", "DATE_RANGE", "NEXT_TOKEN"):
            raise _invalid("QueryType must be SHIPMENT, DATE_RANGE or NEXT_TOKEN.")
        if query_type == "NEXT_TOKEN":
            if not request.param("NextToken"):
                raise _invalid("NextToken is required when QueryType is NEXT_TOKEN.")
            query = self._redeem(request.param("NextToken"), "getShipments", "The NextToken has expired.")
            if query["mp"] != mp:
                raise _invalid("The NextToken was issued for another marketplace.")
        else:
            statuses = request.param_list("ShipmentStatusList")
            unknown = sorted(set(statuses) - set(SHIPMENT_STATUSES))
            if unknown:
                raise _invalid(f"Invalid ShipmentStatusList values: {', '.join(unknown)}")
            ids = request.param_list("ShipmentIdList")
            after = before = None
            if query_type == "SHIPMENT" and not (statuses or ids):
                raise _invalid("ShipmentStatusList or ShipmentIdList is required when QueryType is SHIPMENT.")
            if query_type == "DATE_RANGE":
                if not (request.param("LastUpdatedAfter") and request.param("LastUpdatedBefore")):
                    raise _invalid(
                        "LastUpdatedAfter and LastUpdatedBefore are required when QueryType is DATE_RANGE."
                    )
                after = _parse_time(request.param("LastUpdatedAfter"), "LastUpdatedAfter")
                before = _parse_time(request.param("LastUpdatedBefore"), "LastUpdatedBefore")
                if before < after:
                    raise _invalid("LastUpdatedBefore must not be before LastUpdatedAfter.")
            query = {
                "operation": "getShipments",
                "mp": mp,
                "statuses": statuses,
                "ids": ids,
                "after": after.isoformat() if after else None,
                "before": before.isoformat() if before else None,
                "offset": 0,
            }
        matching = []
        for shipment in streams.streams_of(self.world).shipments(mp, now):
            updated = shipment.last_updated_at(now)
            if query["statuses"] and shipment.status_at(now) not in query["statuses"]:
                continue
            if query["ids"] and shipment.shipment_id not in query["ids"]:
                continue
            if query["after"] and not (
                datetime.fromisoformat(query["after"]) <= updated <= datetime.fromisoformat(query["before"])
            ):
                continue
            matching.append(shipment)
        matching.sort(key=lambda s: (s.last_updated_at(now), s.shipment_id))
        offset = query["offset"]
        page = matching[offset : offset + SHIPMENTS_PAGE_SIZE]
        payload: dict = {"ShipmentData": [shipment_json(s, now) for s in page]}
        if offset + SHIPMENTS_PAGE_SIZE < len(matching):
            payload["NextToken"] = self._issue({**query, "offset": offset + SHIPMENTS_PAGE_SIZE})
        return Response.json(200, {"payload": payload})

    def shipment_items(self, request: Request) -> Response:
        now = self._now()
        shipment_id = request.path_params["shipment_id"]
        for mp in self.world.config.marketplaces:
            for shipment in streams.streams_of(self.world).shipments(mp, now):
                if shipment.shipment_id == shipment_id:
                    items = [shipment_item_json(shipment, i, now) for i in shipment.items]
                    return Response.json(200, {"payload": {"ItemData": items}})
        raise _invalid(f"Shipment {shipment_id} was not found.")

    # ---- Sellers ----------------------------------------------------------------------------------------
    def account(self, request: Request) -> Response:
        return Response.json(200, {"payload": streams.account(self.world)})
