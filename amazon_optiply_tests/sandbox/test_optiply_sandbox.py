"""Pins the emulated Optiply API over real HTTP: token rules, JSON:API round trips, validation and faults."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from amazon_optiply.sandbox.faults import FaultRates, Faults
from amazon_optiply.sandbox.http import SandboxHTTPServer
from amazon_optiply.sandbox.optiply import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    JSONAPI_CONTENT_TYPE,
    OTHER_COUPLING_ID,
    TOKEN_PATH,
    OptiplyBackend,
    build_optiply_server,
)


class CurrentFaults:
    """Lets the module's one server draw from each test's own seeded Faults."""

    def __init__(self) -> None:
        self.current = Faults(FaultRates(), seed=1)

    def draw(self, kind: str) -> bool:
        return self.current.draw(kind)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[OptiplyBackend, CurrentFaults, SandboxHTTPServer]]:
    # One server per module: shutdown() waits out serve_forever's 0.5 s poll, too slow to pay per test.
    backend = OptiplyBackend(account_id=7)
    current_faults = CurrentFaults()
    server = build_optiply_server(backend, current_faults)  # type: ignore[arg-type]
    server.start_in_thread()
    yield backend, current_faults, server
    server.shutdown()
    server.server_close()


@pytest.fixture
def backend(sandbox: tuple[OptiplyBackend, CurrentFaults, SandboxHTTPServer]) -> OptiplyBackend:
    backend = sandbox[0]
    backend.reset()
    backend.token_ttl_seconds = 3600
    backend.throttle_retry_after = None
    return backend


@pytest.fixture
def faults(sandbox: tuple[OptiplyBackend, CurrentFaults, SandboxHTTPServer]) -> Faults:
    sandbox[1].current = Faults(FaultRates(), seed=1)
    return sandbox[1].current


@pytest.fixture
def http(
    sandbox: tuple[OptiplyBackend, CurrentFaults, SandboxHTTPServer], backend: OptiplyBackend, faults: Faults
) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox[2].base_url, timeout=5) as client:
        yield client


def password_grant(
    http: httpx.Client, secret: str = DEFAULT_CLIENT_SECRET, password: str = DEFAULT_PASSWORD
) -> httpx.Response:
    return http.post(
        TOKEN_PATH,
        params={"grant_type": "password"},
        auth=(DEFAULT_CLIENT_ID, secret),
        data={"username": DEFAULT_USERNAME, "password": password},
    )


@pytest.fixture
def api(http: httpx.Client) -> httpx.Client:
    """The same connection, authorised with a bearer token."""
    token = password_grant(http).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    return http


def post(api: httpx.Client, entity: str, attributes: dict[str, Any], **params: Any) -> httpx.Response:
    return api.post(
        f"/v1/{entity}",
        params={"accountId": 7, "couplingId": 42, **params},
        json={"data": {"type": entity, "attributes": attributes}},
        headers={"Content-Type": JSONAPI_CONTENT_TYPE},
    )


def product(**overrides: Any) -> dict[str, Any]:
    return {"name": "Mug", "stockLevel": 3, "price": 12.5, "remoteId": "B0MUG", **overrides}


def error_pointers(response: httpx.Response) -> dict[str, str]:
    return {
        e["source"]["pointer"]: e["detail"] for e in response.json()["errors"] if "pointer" in e["source"]
    }


# -- tokens -------------------------------------------------------------------------------------------------


def test_password_grant_returns_a_bearer_token_that_opens_v1(http: httpx.Client) -> None:
    answer = password_grant(http)
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"] != body["refresh_token"]
    listed = http.get("/v1/products", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert listed.status_code == 200
    assert listed.json() == {"data": []}


def test_wrong_client_secret_is_invalid_client(http: httpx.Client) -> None:
    answer = password_grant(http, secret="nope")
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"


def test_wrong_password_is_invalid_grant(http: httpx.Client) -> None:
    answer = password_grant(http, password="nope")
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_new_password_grant_is_refused_while_the_token_is_valid(
    http: httpx.Client, backend: OptiplyBackend
) -> None:
    assert password_grant(http).status_code == 200
    refused = password_grant(http)
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "invalid_request",
        "error_description": "Rate limit exceeded: access_token not expired",
    }
    backend.expire_tokens()
    assert password_grant(http).status_code == 200
    assert backend.password_grants == 2


def test_refresh_grant_issues_a_new_token_and_revokes_the_old_one(
    http: httpx.Client, backend: OptiplyBackend
) -> None:
    first = password_grant(http).json()
    refreshed = http.post(
        TOKEN_PATH,
        params={"grant_type": "refresh_token"},
        auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
        data={"refresh_token": first["refresh_token"]},
    )
    assert refreshed.status_code == 200
    second = refreshed.json()
    assert second["access_token"] != first["access_token"]
    old = http.get("/v1/products", headers={"Authorization": f"Bearer {first['access_token']}"})
    assert old.status_code == 401
    assert old.json()["errors"][0]["status"] == "401"
    new = http.get("/v1/products", headers={"Authorization": f"Bearer {second['access_token']}"})
    assert new.status_code == 200
    assert backend.refresh_grants == 1

    unknown = http.post(
        TOKEN_PATH,
        params={"grant_type": "refresh_token"},
        auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
        data={"refresh_token": "made-up"},
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid_grant"


def test_expired_or_missing_bearer_token_is_a_jsonapi_401(api: httpx.Client, backend: OptiplyBackend) -> None:
    backend.expire_tokens()
    expired = api.get("/v1/products")
    assert expired.status_code == 401
    assert expired.json()["errors"][0]["detail"] == "Access token expired"
    missing = api.get("/v1/products", headers={"Authorization": ""})
    assert missing.status_code == 401


# -- JSON:API round trip ------------------------------------------------------------------------------------


def test_product_round_trip_post_get_patch_delete(api: httpx.Client, backend: OptiplyBackend) -> None:
    created = post(api, "products", product(status="disabled", skuCode="MUG-1"))
    assert created.status_code == 201
    data = created.json()["data"]
    product_id = int(data["id"])
    assert data["type"] == "products"
    assert data["attributes"]["status"] == "DISABLED"
    assert data["attributes"]["skuCode"] == "MUG-1"
    assert created.headers["content-type"] == JSONAPI_CONTENT_TYPE

    fetched = api.get(f"/v1/products/{product_id}").json()["data"]
    assert fetched["remoteIdMap"] == {"42": "B0MUG"}
    assert len(fetched["uuid"]) == 36
    assert fetched["attributes"]["price"] == 12.5
    assert fetched["attributes"]["stockLevel"] == 3

    patched = api.patch(
        f"/v1/products/{product_id}",
        json={"data": {"type": "products", "id": str(product_id), "attributes": {"stockLevel": 9}}},
    )
    assert patched.status_code == 200
    assert patched.json()["data"]["attributes"]["stockLevel"] == 9
    assert backend.products[product_id]["stockLevel"] == 9
    assert backend.products[product_id]["name"] == "Mug"

    assert api.delete(f"/v1/products/{product_id}").status_code == 204
    assert api.get(f"/v1/products/{product_id}").status_code == 404
    assert product_id not in backend.products
    assert [(w["method"], w["status"], w["id"]) for w in backend.writes()] == [
        ("POST", 201, product_id),
        ("PATCH", 200, product_id),
        ("DELETE", 204, product_id),
    ]
    assert backend.writes()[0]["attributes"]["skuCode"] == "MUG-1"


def test_list_pages_filters_and_sorts(api: httpx.Client, backend: OptiplyBackend) -> None:
    ids = backend.preload_products(
        [
            {"name": f"Item {i}", "stockLevel": i, "status": "DISABLED" if i % 3 == 0 else "ENABLED"}
            for i in range(30)
        ]
    )
    default_page = api.get("/v1/products").json()["data"]
    assert [int(r["id"]) for r in default_page] == ids[:25]

    second_page = api.get("/v1/products", params={"page[limit]": 10, "page[offset]": 10}).json()["data"]
    assert [int(r["id"]) for r in second_page] == ids[10:20]

    descending = api.get("/v1/products", params={"sort": "-id", "page[limit]": 3}).json()["data"]
    assert [int(r["id"]) for r in descending] == ids[-3:][::-1]

    disabled = api.get("/v1/products", params={"filter[status]": "DISABLED", "page[limit]": 100}).json()[
        "data"
    ]
    assert [r["attributes"]["stockLevel"] for r in disabled] == list(range(0, 30, 3))

    ranged = api.get(
        "/v1/products", params={"filter[stockLevel][GE]": "5", "filter[stockLevel][LT]": "8"}
    ).json()["data"]
    assert [r["attributes"]["stockLevel"] for r in ranged] == [5, 6, 7]

    liked = api.get("/v1/products", params={"filter[name][LIKE]": "item 2%"}).json()["data"]
    assert sorted(r["attributes"]["name"] for r in liked) == ["Item 2"] + [f"Item {i}" for i in range(20, 30)]

    not_enabled = api.get("/v1/products", params={"filter[status][NEQ]": "ENABLED", "page[limit]": 100})
    assert len(not_enabled.json()["data"]) == 10


def test_preloaded_products_belong_to_another_coupling(api: httpx.Client, backend: OptiplyBackend) -> None:
    [product_id] = backend.preload_products([product(remoteId="B0OTHER")])
    record = api.get(f"/v1/products/{product_id}").json()["data"]
    assert record["remoteIdMap"] == {str(OTHER_COUPLING_ID): "B0OTHER"}
    found = api.get("/v1/products", params={"filter[remoteId]": "B0OTHER"}).json()["data"]
    assert [int(r["id"]) for r in found] == [product_id]


def test_page_limit_above_100_is_refused(api: httpx.Client) -> None:
    answer = api.get("/v1/products", params={"page[limit]": 101})
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["source"] == {"parameter": "page[limit]"}


def test_sell_order_with_nested_lines_and_a_later_line(api: httpx.Client, backend: OptiplyBackend) -> None:
    mug, cup = backend.preload_products([product(), product(name="Cup", remoteId="B0CUP")])
    created = post(
        api,
        "sellOrders",
        {
            "placed": "2026-11-20T10:15:00Z",
            "totalValue": 37.5,
            "remoteId": "402-1234567-1234567",
            "orderLines": [{"productId": mug, "quantity": 2, "subtotalValue": 25.0}],
        },
    )
    assert created.status_code == 201, created.text
    order_id = int(created.json()["data"]["id"])
    line = post(
        api,
        "sellOrderLines",
        {"sellOrderId": order_id, "productId": cup, "quantity": 1, "subtotalValue": 12.5},
    )
    assert line.status_code == 201, line.text

    lines = api.get(f"/v1/sellOrders/{order_id}").json()["data"]["attributes"]["orderLines"]
    assert [(x["productId"], x["quantity"], x["subtotalValue"]) for x in lines] == [
        (mug, 2, 25.0),
        (cup, 1, 12.5),
    ]
    assert {x["sellOrderId"] for x in backend.sell_order_lines.values()} == {order_id}
    assert len(backend.sell_order_lines) == 2


# -- validation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "pointer", "detail_fragment"),
    [
        ({"stockLevel": 1}, "/data/attributes/name", "required"),
        ({"name": 5, "stockLevel": 1}, "/data/attributes/name", "must be a string"),
        ({"name": "x" * 256, "stockLevel": 1}, "/data/attributes/name", "at most 255"),
        ({"name": "Mug"}, "/data/attributes/stockLevel", "required"),
        ({"name": "Mug", "stockLevel": 1.5}, "/data/attributes/stockLevel", "must be an integer"),
        ({"name": "Mug", "stockLevel": "3"}, "/data/attributes/stockLevel", "must be an integer"),
        ({"name": "Mug", "stockLevel": True}, "/data/attributes/stockLevel", "must be an integer"),
        ({"name": "Mug", "stockLevel": 1, "price": 1.234}, "/data/attributes/price", "at most 2 decimals"),
        ({"name": "Mug", "stockLevel": 1, "price": -1}, "/data/attributes/price", "between 0 and 9999999.99"),
        ({"name": "Mug", "stockLevel": 1, "price": 10_000_000}, "/data/attributes/price", "between 0"),
        ({"name": "Mug", "stockLevel": 1, "price": "9.99"}, "/data/attributes/price", "must be a number"),
        (
            {"name": "Mug", "stockLevel": 1, "status": "ACTIVE"},
            "/data/attributes/status",
            "ENABLED or DISABLED",
        ),
        ({"name": "Mug", "stockLevel": 1, "skuCode": 12}, "/data/attributes/skuCode", "string or null"),
        ({"name": "Mug", "stockLevel": 1, "eanCode": 12}, "/data/attributes/eanCode", "string or null"),
        ({"name": "Mug", "stockLevel": 1, "remoteId": 12}, "/data/attributes/remoteId", "string or null"),
        (
            {"name": "Mug", "stockLevel": 1, "articleCode": 1},
            "/data/attributes/articleCode",
            "string or null",
        ),
        ({"name": "Mug", "stockLevel": 1, "colour": "red"}, "/data/attributes/colour", "unknown attribute"),
    ],
)
def test_invalid_product_is_refused_with_a_pointer(
    api: httpx.Client, backend: OptiplyBackend, attributes: dict[str, Any], pointer: str, detail_fragment: str
) -> None:
    answer = post(api, "products", attributes)
    assert answer.status_code == 400
    assert detail_fragment in error_pointers(answer)[pointer]
    assert backend.products == {}


def test_price_with_two_decimals_and_nulled_codes_are_accepted(api: httpx.Client) -> None:
    answer = post(api, "products", product(price=9999999.99, skuCode=None, status="enabled"))
    assert answer.status_code == 201
    attributes = answer.json()["data"]["attributes"]
    assert (attributes["price"], attributes["skuCode"], attributes["status"]) == (9999999.99, None, "ENABLED")


@pytest.mark.parametrize(
    ("attributes", "pointer", "detail_fragment"),
    [
        ({"totalValue": 1}, "/data/attributes/placed", "required"),
        ({"placed": "2026-11-20 10:15:00"}, "/data/attributes/placed", "%Y-%m-%dT%H:%M:%SZ"),
        ({"placed": "2026-11-20T10:15:00+00:00"}, "/data/attributes/placed", "%Y-%m-%dT%H:%M:%SZ"),
        ({"placed": "2026-11-20T10:15:00Z", "totalValue": "12"}, "/data/attributes/totalValue", "number"),
        ({"placed": "2026-11-20T10:15:00Z", "remoteId": 12}, "/data/attributes/remoteId", "string"),
        (
            {
                "placed": "2026-11-20T10:15:00Z",
                "orderLines": [{"productId": 1, "quantity": 1, "subtotalValue": 1}],
            },
            "/data/attributes/orderLines/0/productId",
            "does not exist",
        ),
        (
            {"placed": "2026-11-20T10:15:00Z", "orderLines": [{"productId": "MUG", "quantity": 0}]},
            "/data/attributes/orderLines/0/quantity",
            "at least 1",
        ),
        (
            {"placed": "2026-11-20T10:15:00Z", "orderLines": [{"productId": "MUG", "quantity": 1.5}]},
            "/data/attributes/orderLines/0/subtotalValue",
            "required",
        ),
    ],
)
def test_invalid_sell_order_is_refused_with_a_pointer(
    api: httpx.Client, backend: OptiplyBackend, attributes: dict[str, Any], pointer: str, detail_fragment: str
) -> None:
    answer = post(api, "sellOrders", attributes)
    assert answer.status_code == 400
    assert detail_fragment in error_pointers(answer)[pointer]
    assert backend.sell_orders == {}


def test_patch_validates_only_the_attributes_it_sends(api: httpx.Client, backend: OptiplyBackend) -> None:
    [product_id] = backend.preload_products([product()])
    ok = api.patch(
        f"/v1/products/{product_id}", json={"data": {"type": "products", "attributes": {"price": 3}}}
    )
    assert ok.status_code == 200
    bad = api.patch(
        f"/v1/products/{product_id}", json={"data": {"type": "products", "attributes": {"stockLevel": 2.5}}}
    )
    assert bad.status_code == 400
    assert list(error_pointers(bad)) == ["/data/attributes/stockLevel"]
    nulled = api.patch(
        f"/v1/products/{product_id}", json={"data": {"type": "products", "attributes": {"name": None}}}
    )
    assert nulled.status_code == 400
    assert backend.products[product_id]["price"] == 3.0
    assert backend.products[product_id]["stockLevel"] == 3


def test_malformed_json_wrong_type_and_unknown_targets(api: httpx.Client, backend: OptiplyBackend) -> None:
    malformed = api.post(
        "/v1/products",
        params={"accountId": 7},
        content=b'{"data": {',
        headers={"Content-Type": JSONAPI_CONTENT_TYPE},
    )
    assert malformed.status_code == 400
    assert malformed.json()["errors"][0]["code"] == "malformed_json"

    wrong_type = api.post(
        "/v1/products",
        params={"accountId": 7},
        json={"data": {"type": "sellOrders", "attributes": product()}},
    )
    assert wrong_type.status_code == 409
    assert wrong_type.json()["errors"][0]["source"] == {"pointer": "/data/type"}

    unknown_entity = api.get("/v1/widgets")
    assert unknown_entity.status_code == 404
    assert unknown_entity.json()["errors"][0]["status"] == "404"
    assert api.get("/v1/products/123").status_code == 404
    assert backend.products == {}


def test_post_for_another_account_is_forbidden(api: httpx.Client, backend: OptiplyBackend) -> None:
    answer = post(api, "products", product(), accountId=8)
    assert answer.status_code == 403
    assert backend.products == {}


# -- faults -------------------------------------------------------------------------------------------------


def test_throttle_and_server_error_faults_do_not_apply_writes(
    api: httpx.Client, backend: OptiplyBackend, faults: Faults
) -> None:
    faults.set_rates(FaultRates(optiply_throttle=1.0))
    throttled = post(api, "products", product())
    assert throttled.status_code == 429
    assert throttled.json()["errors"][0]["status"] == "429"
    faults.set_rates(FaultRates(optiply_server_error=1.0))
    failed = post(api, "products", product())
    assert failed.status_code in (502, 503)
    assert "errors" in failed.json()
    assert backend.products == {}
    assert [w["fault"] for w in backend.writes()] == ["optiply_throttle", "optiply_server_error"]


def test_lost_answer_applies_the_write_then_resets_the_connection(
    api: httpx.Client, backend: OptiplyBackend, faults: Faults
) -> None:
    faults.set_rates(FaultRates(optiply_lost_answer=1.0))
    with pytest.raises(httpx.TransportError):
        post(api, "products", product())
    [(product_id, stored)] = backend.find("products", remoteId="B0MUG")
    assert stored["name"] == "Mug"
    [write] = backend.writes()
    assert (write["fault"], write["answered"], write["status"], write["id"]) == (
        "optiply_lost_answer",
        False,
        201,
        product_id,
    )
    assert faults.injected["optiply_lost_answer"] == 1
