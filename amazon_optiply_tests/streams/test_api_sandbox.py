"""The sandbox's API streams on the wire, read with plain HTTP: Amazon's envelopes (AWD's is not `payload`),
money as a string in Orders and as an exact number in Finances, rates, refusals and expiring tokens."""

import json
from datetime import timedelta

import httpx
import pytest

from amazon_optiply.sandbox.seller_api import seller_api_hooks
from amazon_optiply.sandbox.server import Sandbox
from amazon_optiply_tests.sync.harness import sandbox_config


@pytest.fixture(scope="module")
def wire():
    sandbox = Sandbox(sandbox_config()).start()
    env = sandbox.env()
    token = httpx.post(
        env["LWA_TOKEN_URL"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": env["SP_API_REFRESH_TOKEN"],
            "client_id": env["LWA_APP_ID"],
            "client_secret": env["LWA_CLIENT_SECRET"],
        },
    ).json()["access_token"]
    with httpx.Client(base_url=sandbox.sp_api_url, headers={"x-amz-access-token": token}) as client:
        yield sandbox, client
    sandbox.stop()


def z(t) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_envelopes_money_and_rates_are_amazons(wire):
    sandbox, client = wire
    now = sandbox.clock.now()
    placed = sandbox.world.orders_placed_between("DE", now - timedelta(days=3), now)
    order = next(o for o in placed if len(o.lines) > 2 and o.status_at(now) == "Shipped")
    items = client.get(f"/orders/v0/orders/{order.order_id}/orderItems")
    assert set(items.json()) == {"payload"} and items.headers["x-amzn-RateLimit-Limit"] == "25"
    first = items.json()["payload"]["OrderItems"][0]
    assert "BuyerInfo" not in first and "NextToken" in items.json()["payload"]
    assert isinstance(first["ItemPrice"]["Amount"], str) and "." in first["ItemPrice"]["Amount"]

    events = client.get(
        "/finances/v0/financialEvents",
        params={"PostedAfter": z(now - timedelta(days=4)), "PostedBefore": z(now - timedelta(days=3))},
    )
    assert set(events.json()) == {"payload"}
    assert '"CurrencyAmount": 0.00' in events.text  # a number, written exactly: not "0.00", not 0.0
    charge = events.json()["payload"]["FinancialEvents"]["ShipmentEventList"][0]["ShipmentItemList"][0]
    assert isinstance(charge["ItemChargeList"][0]["ChargeAmount"]["CurrencyAmount"], float)

    awd = client.get("/awd/2024-05-09/inventory", params={"details": "SHOW", "maxResults": 3})
    assert set(awd.json()) == {"inventory", "nextToken"}  # not wrapped in payload
    assert set(awd.json()["inventory"][0]) == {
        "sku",
        "totalOnhandQuantity",
        "totalInboundQuantity",
        "inventoryDetails",
        "expirationDetails",
    }

    shipments = client.get(
        "/fba/inbound/v0/shipments",
        params={"QueryType": "SHIPMENT", "ShipmentStatusList": "WORKING", "MarketplaceId": "A1PA6795UKMFR9"},
    )
    assert set(shipments.json()) == {"payload"}
    assert {s["ShipmentStatus"] for s in shipments.json()["payload"]["ShipmentData"]} == {"WORKING"}

    account = client.get("/sellers/v1/account")
    assert set(account.json()) == {"payload"} and account.headers["x-amzn-RateLimit-Limit"] == "0.8"


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        (
            "/finances/v0/financialEvents",
            {"PostedAfter": "{hour_ago}", "PostedBefore": "{minute_ago}"},
            "more than two minutes before",
        ),
        (
            "/finances/v0/financialEvents",
            {"PostedAfter": "{hour_ago}", "MaxResultsPerPage": "101"},
            "between 1",
        ),
        ("/awd/2024-05-09/inventory", {"maxResults": "201"}, "between 1 and 200"),
        (
            "/fba/inbound/v0/shipments",
            {"QueryType": "DATE_RANGE", "MarketplaceId": "A1PA6795UKMFR9"},
            "LastUpdatedAfter and LastUpdatedBefore are required",
        ),
        ("/fba/inbound/v0/shipments", {"QueryType": "DATE_RANGE"}, "MarketplaceId is required"),
    ],
)
def test_what_amazon_refuses_is_refused_with_its_error_shape(wire, path, params, message):
    sandbox, client = wire
    now = sandbox.clock.now()
    times = {"{hour_ago}": z(now - timedelta(hours=1)), "{minute_ago}": z(now - timedelta(minutes=1))}
    answer = client.get(path, params={k: times.get(v, v) for k, v in params.items()})
    assert answer.status_code == 400
    error = answer.json()["errors"][0]
    assert error["code"] == "InvalidInput" and message in error["message"]


def test_an_expired_finances_token_is_refused_as_amazon_words_it(wire):
    sandbox, client = wire
    now = sandbox.clock.now()
    page = client.get(
        "/finances/v0/financialEvents",
        params={
            "PostedAfter": z(now - timedelta(days=6)),
            "PostedBefore": z(now - timedelta(days=3)),
            "MaxResultsPerPage": 5,
        },
    ).json()["payload"]
    seller_api_hooks(sandbox.amazon).expire_next_tokens = 1
    answer = client.get("/finances/v0/financialEvents", params={"NextToken": page["NextToken"]})
    assert answer.status_code == 400
    assert json.loads(answer.text)["errors"][0]["message"].startswith("Token is not valid, token duration is")
