"""Pins the emulated Optiply API over real HTTP: token rules, JSON:API round trips, validation and faults."""

from __future__ import annotations

import time
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
    FIELDS,
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


def test_slow_answer_applies_the_write_and_answers_late(
    api: httpx.Client, backend: OptiplyBackend, faults: Faults
) -> None:
    faults.set_rates(FaultRates(optiply_slow_answer=1.0))
    backend.slow_answer_seconds = 0.3
    seen_before_answer = []
    backend.on_write = lambda entry: seen_before_answer.append(
        len(backend.find("products", remoteId="B0MUG"))
    )
    began = time.monotonic()
    response = post(api, "products", product())
    assert response.status_code == 201 and time.monotonic() - began >= 0.3
    assert seen_before_answer == [1]  # applied, and on_write told, before the late answer
    [write] = backend.writes()
    assert (write["fault"], write["answered"], write["status"]) == ("optiply_slow_answer", True, 201)
    assert faults.injected["optiply_slow_answer"] == 1


# -- purchasing entities ------------------------------------------------------------------------------------

PURCHASING = ("suppliers", "supplierProducts", "buyOrders", "buyOrderLines", "receiptLines")


def supplier(**overrides: Any) -> dict[str, Any]:
    return {"name": "Acme", "remoteId": "SUP-1", **overrides}


def patch(api: httpx.Client, entity: str, record_id: int, attributes: dict[str, Any]) -> httpx.Response:
    return api.patch(
        f"/v1/{entity}/{record_id}",
        params={"accountId": 7, "couplingId": 42},
        json={"data": {"type": entity, "id": str(record_id), "attributes": attributes}},
    )


def buy_line(product_id: int, **overrides: Any) -> dict[str, Any]:
    return {
        "type": "buyOrderLines",
        "attributes": {"productId": product_id, "quantity": 4, "subtotalValue": 20.0, **overrides},
    }


@pytest.fixture
def purchasing(backend: OptiplyBackend) -> dict[str, Any]:
    """One record of each kind, made by another coupling, and a valid POST body per purchasing entity."""
    mug, cup = backend.preload_products([product(), product(name="Cup", remoteId="B0CUP")])
    [acme] = backend.preload("suppliers", [supplier(deliveryTime=10)])
    [order] = backend.preload(
        "buyOrders",
        [
            {
                "remoteId": "PO-0",
                "supplierId": acme,
                "placed": "2026-11-01T08:00:00Z",
                "totalValue": 20.0,
                "orderLines": [buy_line(mug)],
            }
        ],
    )
    [line] = backend.find("buyOrderLines", buyOrderId=order)
    bodies = {
        "suppliers": supplier(remoteId="SUP-2"),
        "supplierProducts": {
            "name": "Mug from Acme",
            "remoteId": "SP-1",
            "productId": mug,
            "supplierId": acme,
        },
        "buyOrders": {
            "remoteId": "PO-1",
            "supplierId": acme,
            "placed": "2026-11-20T10:15:00Z",
            "totalValue": 37.5,
        },
        "buyOrderLines": {"buyOrderId": order, "productId": cup, "quantity": 2, "subtotalValue": 17.5},
        "receiptLines": {"buyOrderLineId": line[0], "occurred": "2026-11-25T09:00:00Z", "quantity": 3},
    }
    return {"mug": mug, "cup": cup, "supplier": acme, "order": order, "line": line[0], "bodies": bodies}


REQUIRED = {
    "suppliers": ("name", "remoteId"),
    "supplierProducts": ("name", "remoteId", "productId", "supplierId"),
    "buyOrders": ("remoteId", "supplierId", "placed", "totalValue"),
    "buyOrderLines": ("quantity", "subtotalValue", "buyOrderId", "productId"),
    "receiptLines": ("occurred", "quantity", "buyOrderLineId"),
}


def test_required_attributes_are_the_ones_the_reference_marks() -> None:
    for entity, required in REQUIRED.items():
        assert {k for k, spec in FIELDS[entity].items() if spec.required} == set(required), entity


# The checks below loop in subtests over one fixture: a test each would pay a token and a fixture per case.


def test_a_missing_required_attribute_is_a_400_naming_it(
    api: httpx.Client, backend: OptiplyBackend, purchasing: dict[str, Any], subtests: pytest.Subtests
) -> None:
    counts = {entity: len(backend.table(entity)) for entity in PURCHASING}
    for entity, names in REQUIRED.items():
        for attribute in names:
            with subtests.test(entity=entity, attribute=attribute):
                body = {k: v for k, v in purchasing["bodies"][entity].items() if k != attribute}
                missing = post(api, entity, body)
                assert missing.status_code == 400, missing.text
                assert error_pointers(missing) == {f"/data/attributes/{attribute}": "is required"}
                nulled = post(api, entity, {**body, attribute: None})
                assert nulled.status_code == 400
                assert "must not be null" in error_pointers(nulled)[f"/data/attributes/{attribute}"]
    assert {entity: len(backend.table(entity)) for entity in PURCHASING} == counts
    for entity in PURCHASING:
        assert post(api, entity, purchasing["bodies"][entity]).status_code == 201, entity


INVALID = [
    ("suppliers", {"name": " "}, "name", "blank"),
    ("suppliers", {"remoteId": ""}, "remoteId", "blank"),
    ("suppliers", {"remoteId": 12}, "remoteId", "string"),
    ("suppliers", {"emails": "buyer@acme.example"}, "emails", "list of e-mail"),
    ("suppliers", {"emails": ["buyer@acme.example", "acme"]}, "emails/1", "e-mail address"),
    ("suppliers", {"ignored": "no"}, "ignored", "true or false"),
    ("suppliers", {"deliveryTime": 0}, "deliveryTime", "between 1 and 365"),
    ("suppliers", {"deliveryTime": 366}, "deliveryTime", "between 1 and 365"),
    ("suppliers", {"userReplenishmentPeriod": 7.0}, "userReplenishmentPeriod", "integer"),
    ("suppliers", {"fixedCosts": 1.234}, "fixedCosts", "2 decimals"),
    ("suppliers", {"minimumOrderValue": -1}, "minimumOrderValue", "between 0"),
    ("suppliers", {"type": "wholesaler"}, "type", "vendor, producer"),
    ("suppliers", {"globalLocationNumber": "871234567890"}, "globalLocationNumber", "13-digit"),
    ("suppliers", {"globalLocationNumber": 8712345678901}, "globalLocationNumber", "13-digit"),
    ("suppliers", {"remoteDataSyncedToDate": "2026-11-20"}, "remoteDataSyncedToDate", "%Y-%m-%dT"),
    ("suppliers", {"colour": "red"}, "colour", "unknown attribute"),
    ("supplierProducts", {"price": 1.234}, "price", "2 decimals"),
    ("supplierProducts", {"price": -0.01}, "price", "between 0"),
    ("supplierProducts", {"price": "9.99"}, "price", "number"),
    ("supplierProducts", {"productId": "100001"}, "productId", "integer"),
    ("supplierProducts", {"lotSize": 0}, "lotSize", "at least 1"),
    ("supplierProducts", {"minimumPurchaseQuantity": None}, "minimumPurchaseQuantity", "integer"),
    ("supplierProducts", {"deliveryTime": 400}, "deliveryTime", "between 1 and 365"),
    ("supplierProducts", {"preferred": 1}, "preferred", "true or false"),
    ("supplierProducts", {"status": "ACTIVE"}, "status", "ENABLED or DISABLED"),
    ("supplierProducts", {"weight": -1}, "weight", "negative"),
    ("supplierProducts", {"freeStock": 2.5}, "freeStock", "integer"),
    ("supplierProducts", {"eanCode": 8712345678901}, "eanCode", "string"),
    ("supplierProducts", {"availabilityDate": "soon"}, "availabilityDate", "%Y-%m-%dT"),
    ("buyOrders", {"placed": "2026-11-20 10:15:00"}, "placed", "%Y-%m-%dT%H:%M:%SZ"),
    ("buyOrders", {"placed": "2026-11-20T10:15:00+00:00"}, "placed", "%Y-%m-%dT%H:%M:%SZ"),
    ("buyOrders", {"totalValue": "37.50"}, "totalValue", "number"),
    ("buyOrders", {"totalValue": 37.555}, "totalValue", "2 decimals"),
    ("buyOrders", {"completed": "2026-13-01T00:00:00Z"}, "completed", "%Y-%m-%dT"),
    ("buyOrders", {"expectedDeliveryDate": 20261201}, "expectedDeliveryDate", "%Y-%m-%dT"),
    ("buyOrders", {"assembly": "false"}, "assembly", "true or false"),
    ("buyOrders", {"supplierId": 1.5}, "supplierId", "integer"),
    ("buyOrders", {"accountId": 7}, "accountId", "unknown attribute"),
    ("buyOrders", {"orderLines": {"productId": 1}}, "orderLines", "list of order lines"),
    ("buyOrderLines", {"quantity": 0}, "quantity", "at least 1"),
    ("buyOrderLines", {"quantity": 2.0}, "quantity", "integer"),
    ("buyOrderLines", {"subtotalValue": 17.501}, "subtotalValue", "2 decimals"),
    ("buyOrderLines", {"remoteId": " "}, "remoteId", "blank"),
    ("receiptLines", {"quantity": 0}, "quantity", "at least 1"),
    ("receiptLines", {"occurred": "2026-11-25"}, "occurred", "%Y-%m-%dT"),
    ("receiptLines", {"buyOrderLineId": "5000001"}, "buyOrderLineId", "integer"),
]


def test_an_invalid_purchasing_attribute_is_a_400_naming_it(
    api: httpx.Client, backend: OptiplyBackend, purchasing: dict[str, Any], subtests: pytest.Subtests
) -> None:
    counts = {entity: len(backend.table(entity)) for entity in PURCHASING}
    for entity, attributes, pointer, detail_fragment in INVALID:
        with subtests.test(entity=entity, attributes=attributes):
            answer = post(api, entity, {**purchasing["bodies"][entity], **attributes})
            assert answer.status_code == 400, answer.text
            assert detail_fragment in error_pointers(answer)[f"/data/attributes/{pointer}"]
    assert {entity: len(backend.table(entity)) for entity in PURCHASING} == counts


def test_supplier_round_trip_with_every_attribute(api: httpx.Client, backend: OptiplyBackend) -> None:
    full = supplier(
        emails=["buyer@acme.example", "orders@acme.example"],
        ignored=True,
        deliveryTime=365,
        userReplenishmentPeriod=None,
        fixedCosts=12.5,
        minimumOrderValue=250,
        type="producer",
        globalLocationNumber="8712345678906",
        remoteDataSyncedToDate="2026-11-20T10:15:00Z",
        backorders=True,
        maxLoadCapacity=33,
    )
    created = post(api, "suppliers", full)
    assert created.status_code == 201, created.text
    data = created.json()["data"]
    supplier_id = int(data["id"])
    assert data["remoteIdMap"] == {"42": "SUP-1"}
    assert {k: data["attributes"][k] for k in full} == {**full, "minimumOrderValue": 250.0}
    assert data["attributes"]["reactingToLostSales"] is False

    cleared = patch(api, "suppliers", supplier_id, {"deliveryTime": None, "emails": [], "type": None})
    assert cleared.status_code == 200, cleared.text
    assert backend.suppliers[supplier_id]["deliveryTime"] is None
    assert backend.suppliers[supplier_id]["emails"] == []
    assert patch(api, "suppliers", supplier_id, {"remoteId": None}).status_code == 400
    renamed = patch(api, "suppliers", supplier_id, {"remoteId": "SUP-9"})
    assert renamed.json()["data"]["remoteIdMap"] == {"42": "SUP-9"}
    assert api.delete(f"/v1/suppliers/{supplier_id}").status_code == 204
    assert api.get(f"/v1/suppliers/{supplier_id}").status_code == 404


def test_supplier_product_defaults_and_patch(
    api: httpx.Client, backend: OptiplyBackend, purchasing: dict[str, Any]
) -> None:
    body = {
        **purchasing["bodies"]["supplierProducts"],
        "price": 9.99,
        "status": "disabled",
        "eanCode": "8712345678901",
        "availability": True,
        "availabilityDate": "2026-12-01T00:00:00Z",
        "weight": 0.25,
    }
    created = post(api, "supplierProducts", body)
    assert created.status_code == 201, created.text
    attributes = created.json()["data"]["attributes"]
    assert (attributes["status"], attributes["lotSize"], attributes["minimumPurchaseQuantity"]) == (
        "DISABLED",
        1,
        1,
    )
    assert (attributes["preferred"], attributes["deliveryTime"], attributes["price"]) == (False, None, 9.99)
    supplier_product_id = int(created.json()["data"]["id"])
    assert patch(api, "supplierProducts", supplier_product_id, {"lotSize": 6}).status_code == 200
    assert backend.supplier_products[supplier_product_id]["lotSize"] == 6
    moved = patch(api, "supplierProducts", supplier_product_id, {"productId": purchasing["supplier"]})
    assert moved.status_code == 404
    assert error_pointers(moved) == {
        "/data/attributes/productId": f"product {purchasing['supplier']} does not exist"
    }
    assert backend.supplier_products[supplier_product_id]["productId"] == purchasing["mug"]


def test_a_reference_to_a_missing_record_is_a_404_naming_the_attribute(
    api: httpx.Client, backend: OptiplyBackend, purchasing: dict[str, Any], subtests: pytest.Subtests
) -> None:
    counts = {entity: len(backend.table(entity)) for entity in PURCHASING}
    # Another entity's id where this one's belongs: the id ranges keep them apart.
    for entity, attribute, wrong in [
        ("supplierProducts", "productId", "supplier"),
        ("supplierProducts", "supplierId", "mug"),
        ("buyOrders", "supplierId", "order"),
        ("buyOrderLines", "buyOrderId", "line"),
        ("buyOrderLines", "productId", "order"),
        ("receiptLines", "buyOrderLineId", "order"),
    ]:
        with subtests.test(entity=entity, attribute=attribute):
            body = {**purchasing["bodies"][entity], attribute: purchasing[wrong]}
            answer = post(api, entity, body)
            assert answer.status_code == 404, answer.text
            [error] = answer.json()["errors"]
            assert (error["status"], error["code"]) == ("404", "unknown_reference")
            assert error["source"] == {"pointer": f"/data/attributes/{attribute}"}
            assert str(purchasing[wrong]) in error["detail"]
            # With another problem in the same body, the answer is a 400 listing both.
            mixed = post(api, entity, {**body, "colour": "red"})
            assert mixed.status_code == 400
            assert set(error_pointers(mixed)) == {f"/data/attributes/{attribute}", "/data/attributes/colour"}
    assert {entity: len(backend.table(entity)) for entity in PURCHASING} == counts


def test_a_second_supplier_product_for_the_same_supplier_and_product_is_a_409(
    api: httpx.Client, backend: OptiplyBackend, purchasing: dict[str, Any]
) -> None:
    body = purchasing["bodies"]["supplierProducts"]
    first = post(api, "supplierProducts", body)
    assert first.status_code == 201
    again = post(api, "supplierProducts", {**body, "remoteId": "SP-2", "name": "Another name"})
    assert again.status_code == 409
    [error] = again.json()["errors"]
    assert (error["status"], error["code"]) == ("409", "duplicate")
    assert f"id {first.json()['data']['id']}" in error["detail"]
    assert error["source"] == {"pointer": "/data/attributes/productId"}

    other_product = post(
        api, "supplierProducts", {**body, "remoteId": "SP-3", "productId": purchasing["cup"]}
    )
    assert other_product.status_code == 201
    collide = patch(
        api, "supplierProducts", int(other_product.json()["data"]["id"]), {"productId": purchasing["mug"]}
    )
    assert collide.status_code == 409
    assert sorted(sp["remoteId"] for sp in backend.supplier_products.values()) == ["SP-1", "SP-3"]


def test_buy_order_with_nested_lines_creates_linked_line_records(
    api: httpx.Client, backend: OptiplyBackend, purchasing: dict[str, Any]
) -> None:
    mug, cup = purchasing["mug"], purchasing["cup"]
    created = post(
        api,
        "buyOrders",
        {
            **purchasing["bodies"]["buyOrders"],
            "assembly": True,
            "orderLines": [
                buy_line(mug, remoteId="PO-1-1"),
                buy_line(cup, quantity=6, subtotalValue=17.5, expectedDeliveryDate="2026-12-24T00:00:00Z"),
            ],
        },
    )
    assert created.status_code == 201, created.text
    order_id = int(created.json()["data"]["id"])
    attributes = created.json()["data"]["attributes"]
    # Left out: placed + the supplier's deliveryTime of 10 days.
    assert attributes["expectedDeliveryDate"] == "2026-11-30T10:15:00Z"
    summary = [(x["productId"], x["quantity"], x["subtotalValue"]) for x in attributes["orderLines"]]
    assert summary == [(mug, 4, 20.0), (cup, 6, 17.5)]

    listed = api.get("/v1/buyOrderLines", params={"filter[buyOrderId]": order_id}).json()["data"]
    assert [int(r["id"]) for r in listed] == [x["id"] for x in attributes["orderLines"]]
    assert listed[0]["remoteIdMap"] == {"42": "PO-1-1"}
    assert listed[1]["attributes"]["expectedDeliveryDate"] == "2026-12-24T00:00:00Z"
    assert {r["attributes"]["buyOrderId"] for r in listed} == {order_id}

    later = post(api, "buyOrderLines", {**purchasing["bodies"]["buyOrderLines"], "buyOrderId": order_id})
    assert later.status_code == 201, later.text
    assert patch(api, "buyOrderLines", int(listed[0]["id"]), {"quantity": 5}).status_code == 200
    lines = api.get(f"/v1/buyOrders/{order_id}").json()["data"]["attributes"]["orderLines"]
    assert [x["quantity"] for x in lines] == [5, 6, 2]

    read_only = patch(api, "buyOrders", order_id, {"orderLines": [buy_line(mug)]})
    assert read_only.status_code == 400
    assert "use buyOrderLines" in error_pointers(read_only)["/data/attributes/orderLines"]
    closed = patch(api, "buyOrders", order_id, {"completed": "2026-12-01T00:00:00Z"})
    assert closed.json()["data"]["attributes"]["completed"] == "2026-12-01T00:00:00Z"


NESTED_INVALID = [
    ({"productId": 1, "quantity": 1, "subtotalValue": 1}, "", "resource object", 400),
    ({"type": "sellOrderLines", "attributes": {}}, "/type", "'buyOrderLines'", 400),
    ({"type": "buyOrderLines", "id": "1", "attributes": {}}, "/id", "unknown member", 400),
    ({"type": "buyOrderLines"}, "/attributes", "must be an object", 400),
    (
        {"type": "buyOrderLines", "attributes": {"productId": 1, "quantity": 1}},
        "/attributes/subtotalValue",
        "required",
        400,
    ),
    (
        {"type": "buyOrderLines", "attributes": {"buyOrderId": 1}},
        "/attributes/buyOrderId",
        "unknown",
        400,
    ),
    (buy_line(12345), "/attributes/productId", "product 12345 does not exist", 404),
]


def test_invalid_nested_buy_order_lines_are_refused_with_a_pointer(
    api: httpx.Client, backend: OptiplyBackend, purchasing: dict[str, Any], subtests: pytest.Subtests
) -> None:
    for line, pointer, detail_fragment, status in NESTED_INVALID:
        with subtests.test(line=line):
            answer = post(api, "buyOrders", {**purchasing["bodies"]["buyOrders"], "orderLines": [line]})
            assert answer.status_code == status, answer.text
            assert detail_fragment in error_pointers(answer)[f"/data/attributes/orderLines/0{pointer}"]
    assert len(backend.buy_orders) == 1
    assert len(backend.buy_order_lines) == 1


def test_deleting_a_buy_order_cascades_to_its_lines_and_their_receipt_lines(
    api: httpx.Client, backend: OptiplyBackend, purchasing: dict[str, Any]
) -> None:
    order, line = purchasing["order"], purchasing["line"]
    second = post(api, "buyOrderLines", purchasing["bodies"]["buyOrderLines"])
    second_line = int(second.json()["data"]["id"])
    receipts = [
        int(
            post(
                api, "receiptLines", {**purchasing["bodies"]["receiptLines"], "buyOrderLineId": line_id}
            ).json()["data"]["id"]
        )
        for line_id in (line, line, second_line)
    ]
    # A line alone takes its receipts with it, and leaves the order's orderLines.
    assert api.delete(f"/v1/buyOrderLines/{second_line}").status_code == 204
    assert receipts[2] not in backend.receipt_lines
    assert [x["id"] for x in backend.buy_orders[order]["orderLines"]] == [line]

    assert api.delete(f"/v1/buyOrders/{order}").status_code == 204
    assert backend.buy_orders == {} and backend.buy_order_lines == {} and backend.receipt_lines == {}
    for entity, record_id in (("buyOrderLines", line), ("receiptLines", receipts[0])):
        assert api.get(f"/v1/{entity}/{record_id}").status_code == 404
    # A receipt for a line that is gone: the 404 Optiply's ETL expects.
    late = post(api, "receiptLines", purchasing["bodies"]["receiptLines"])
    assert late.status_code == 404
    assert list(error_pointers(late)) == ["/data/attributes/buyOrderLineId"]
    assert [(w["method"], w["status"]) for w in backend.writes()][-2:] == [("DELETE", 204), ("POST", 404)]


def test_products_and_suppliers_take_their_supplier_products_but_not_buy_orders(
    api: httpx.Client, backend: OptiplyBackend, purchasing: dict[str, Any]
) -> None:
    bodies, mug, acme = purchasing["bodies"], purchasing["mug"], purchasing["supplier"]
    assert post(api, "supplierProducts", bodies["supplierProducts"]).status_code == 201
    # The buy order from the fixture has a line for the mug and names the supplier: both are in use.
    for entity, record_id in (("products", mug), ("suppliers", acme)):
        refused = api.delete(f"/v1/{entity}/{record_id}")
        assert refused.status_code == 409
        assert refused.json()["errors"][0]["code"] == "in_use"
    assert len(backend.supplier_products) == 1 and mug in backend.products and acme in backend.suppliers

    assert api.delete(f"/v1/buyOrders/{purchasing['order']}").status_code == 204
    assert api.delete(f"/v1/products/{mug}").status_code == 204
    assert backend.supplier_products == {}
    cup_from_acme = {**bodies["supplierProducts"], "productId": purchasing["cup"]}
    assert post(api, "supplierProducts", cup_from_acme).status_code == 201
    assert api.delete(f"/v1/suppliers/{acme}").status_code == 204
    assert backend.supplier_products == {} and backend.suppliers == {}


def test_remote_id_filters_ids_and_account_on_every_purchasing_entity(
    api: httpx.Client, backend: OptiplyBackend, purchasing: dict[str, Any]
) -> None:
    bodies = {**purchasing["bodies"]}
    bodies["buyOrderLines"] = {**bodies["buyOrderLines"], "remoteId": "BOL-1"}
    bodies["receiptLines"] = {**bodies["receiptLines"], "remoteId": "RL-1"}
    ids = {}
    for entity in PURCHASING:
        assert post(api, entity, bodies[entity], accountId=8).status_code == 403
        created = post(api, entity, bodies[entity])
        assert created.status_code == 201, (entity, created.text)
        ids[entity] = int(created.json()["data"]["id"])
    for entity in PURCHASING:
        remote_id = bodies[entity]["remoteId"]
        found = api.get(f"/v1/{entity}", params={"filter[remoteId]": remote_id}).json()["data"]
        assert [(int(r["id"]), r["remoteIdMap"]) for r in found] == [(ids[entity], {"42": remote_id})]
        assert api.get(f"/v1/{entity}", params={"filter[remoteId]": "nope"}).json()["data"] == []
    # Each entity has an id range of its own, so an id never exists under two entities.
    for entity, record_id in ids.items():
        for other in PURCHASING:
            assert (api.get(f"/v1/{other}/{record_id}").status_code == 200) == (other == entity)


def test_preloads_are_validated_and_products_match_by_ean(
    api: httpx.Client, backend: OptiplyBackend, purchasing: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="supplier product"):
        backend.preload("supplierProducts", [{**purchasing["bodies"]["supplierProducts"], "supplierId": 1}])
    # The vendor's sell-orders-only mode finds products another system created by their eanCode.
    [ean_product] = backend.preload_products([product(remoteId="OTHER-1", eanCode="8806098286500")])
    found = api.get("/v1/products", params={"filter[eanCode]": "8806098286500"}).json()["data"]
    assert [(int(r["id"]), r["remoteIdMap"]) for r in found] == [
        (ean_product, {str(OTHER_COUPLING_ID): "OTHER-1"})
    ]
    assert backend.snapshot()["buyOrders"][purchasing["order"]]["orderLines"][0]["id"] == purchasing["line"]
