"""Drives OptiplyClient against the Optiply sandbox: paging, tokens, retries and exactly-once creates."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from amazon_optiply.clients.optiply import (
    FileTokenStore,
    InMemoryTokenStore,
    OptiplyAuthError,
    OptiplyClient,
    OptiplyConflictError,
    OptiplyNotFoundError,
    OptiplyUnavailableError,
    OptiplyValidationError,
    nested_lines,
)
from amazon_optiply.sandbox.faults import FaultRates, Faults
from amazon_optiply.sandbox.http import SandboxHTTPServer
from amazon_optiply.sandbox.optiply import TOKEN_PATH, OptiplyBackend, build_optiply_server

# Distinctive credentials so a leak into any message is unmistakable.
USERNAME = "buyer@example.com"
PASSWORD = "pw-Zq8!unique-password"
CLIENT_ID = "client-xyz"
CLIENT_SECRET = "secret-K9v-unique-client-secret"
ACCOUNT_ID = 3
COUPLING_ID = 42


class CurrentFaults:
    """Lets the module's one server draw from each test's own seeded Faults."""

    def __init__(self) -> None:
        self.current = Faults(FaultRates(), seed=1)

    def draw(self, kind: str) -> bool:
        return self.current.draw(kind)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[OptiplyBackend, CurrentFaults, SandboxHTTPServer]]:
    # One server per module: shutdown() waits out serve_forever's 0.5 s poll, too slow to pay per test.
    backend = OptiplyBackend(USERNAME, PASSWORD, CLIENT_ID, CLIENT_SECRET, account_id=ACCOUNT_ID)
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
def server(
    sandbox: tuple[OptiplyBackend, CurrentFaults, SandboxHTTPServer], backend: OptiplyBackend, faults: Faults
) -> SandboxHTTPServer:
    return sandbox[2]


@pytest.fixture
def make_client(server: SandboxHTTPServer) -> Iterator[Callable[..., OptiplyClient]]:
    clients: list[OptiplyClient] = []

    def make(**overrides: Any) -> OptiplyClient:
        options: dict[str, Any] = {
            "api_url": f"{server.base_url}/v1",
            "token_url": f"{server.base_url}{TOKEN_PATH}",
            "username": USERNAME,
            "password": PASSWORD,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "account_id": ACCOUNT_ID,
            "coupling_id": COUPLING_ID,
            "backoff_base": 0.001,
            "min_write_interval": 0,
            "timeout": 5,
            **overrides,
        }
        client = OptiplyClient(**options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def product(i: int, **overrides: Any) -> dict[str, Any]:
    return {"name": f"Product {i}", "stockLevel": i, "price": 1.25, "remoteId": f"B0{i:08d}", **overrides}


def secrets_of(backend: OptiplyBackend) -> list[str]:
    return [PASSWORD, CLIENT_SECRET, *backend.issued_tokens()]


def test_iter_records_pages_through_250_products(
    make_client: Callable[..., OptiplyClient], backend: OptiplyBackend
) -> None:
    ids = backend.preload_products([product(i) for i in range(250)])
    client = make_client()
    records = list(client.iter_records("products"))
    assert [r["id"] for r in records] == ids
    assert records[249]["name"] == "Product 249"
    assert records[0]["remoteIdMap"] == {"999": "B000000000"}
    pages = [r["query"]["page[offset]"] for r in backend.requests if r["path"] == "/v1/products"]
    assert pages == ["0", "100", "200"]


def test_iter_records_sends_filters_with_operators(
    make_client: Callable[..., OptiplyClient], backend: OptiplyBackend
) -> None:
    backend.preload_products([product(i, status="DISABLED" if i < 5 else "ENABLED") for i in range(12)])
    client = make_client()
    enabled = list(client.iter_records("products", {"status": "ENABLED", "stockLevel[LT]": "8"}, page_size=2))
    assert [r["stockLevel"] for r in enabled] == [5, 6, 7]


def test_find_by_remote_id_prefers_our_coupling(
    make_client: Callable[..., OptiplyClient], backend: OptiplyBackend
) -> None:
    backend.preload_products([product(1), product(2)])
    client = make_client()
    other = client.find_by_remote_id("products", "B000000002")
    assert other is not None and other["name"] == "Product 2"
    assert client.find_by_remote_id("products", "B000000002", own_coupling_only=True) is None
    own_id = client.create("products", product(2, name="Ours"))
    assert client.find_by_remote_id("products", "B000000002")["id"] == own_id
    assert client.find_by_remote_id("products", "nope") is None


def test_create_get_and_update_round_trip(
    make_client: Callable[..., OptiplyClient], backend: OptiplyBackend
) -> None:
    client = make_client()
    product_id = client.create("products", product(7))
    client.update("products", product_id, {"stockLevel": 70, "status": "disabled"})
    record = client.get("products", product_id)
    assert (record["id"], record["stockLevel"], record["status"]) == (product_id, 70, "DISABLED")
    assert record["remoteIdMap"] == {str(COUPLING_ID): "B000000007"}
    assert backend.writes()[0]["query"] == {"accountId": str(ACCOUNT_ID), "couplingId": str(COUPLING_ID)}
    with pytest.raises(OptiplyNotFoundError):
        client.get("products", 1)


def test_retries_through_throttling_and_server_errors(
    make_client: Callable[..., OptiplyClient], backend: OptiplyBackend, faults: Faults
) -> None:
    faults.set_rates(FaultRates(optiply_throttle=0.3, optiply_server_error=0.2))
    client = make_client(max_attempts=10)
    ids = [
        client.create("products", {k: v for k, v in product(i).items() if k != "remoteId"}) for i in range(30)
    ]
    assert len(set(ids)) == 30
    assert sorted(backend.products) == sorted(ids)
    assert faults.injected["optiply_throttle"] > 0
    assert faults.injected["optiply_server_error"] > 0
    assert len(list(client.iter_records("products"))) == 30


def test_gives_up_after_max_attempts(
    make_client: Callable[..., OptiplyClient], backend: OptiplyBackend, faults: Faults
) -> None:
    client = make_client(max_attempts=3)
    faults.set_rates(FaultRates(optiply_server_error=1.0))
    with pytest.raises(OptiplyUnavailableError, match="after 3 attempts") as raised:
        client.create("products", product(1, remoteId=None))
    assert len(backend.writes()) == 3
    assert backend.products == {}
    assert len(secrets_of(backend)) == 4  # credentials plus the access and refresh token in play
    for secret in secrets_of(backend):
        assert secret not in str(raised.value)


def test_retry_after_header_is_honoured(
    make_client: Callable[..., OptiplyClient], backend: OptiplyBackend, faults: Faults
) -> None:
    backend.throttle_retry_after = 1
    client = make_client(max_attempts=2, max_retry_after=0.3)
    faults.set_rates(FaultRates(optiply_throttle=1.0))
    started = time.monotonic()
    with pytest.raises(OptiplyUnavailableError):
        client.get("products", 1)
    # Retry-After 1 s capped by max_retry_after: the single retry waited ~0.3 s, far above the 1 ms backoff.
    assert 0.3 <= time.monotonic() - started < 1.0


def test_lost_answers_create_no_duplicates(
    make_client: Callable[..., OptiplyClient], backend: OptiplyBackend, faults: Faults
) -> None:
    faults.set_rates(FaultRates(optiply_lost_answer=0.3))
    client = make_client(max_attempts=8)
    ids = [client.create("products", product(i)) for i in range(50)]
    assert faults.injected["optiply_lost_answer"] >= 5
    snapshot = backend.snapshot()["products"]
    assert len(snapshot) == 50
    assert sorted(p["remoteId"] for p in snapshot.values()) == [f"B0{i:08d}" for i in range(50)]
    assert sorted(ids) == sorted(snapshot)
    for i, product_id in enumerate(ids):
        assert snapshot[product_id]["remoteId"] == f"B0{i:08d}"


def test_lost_answer_on_a_sell_order_with_lines_is_not_posted_twice(
    make_client: Callable[..., OptiplyClient], backend: OptiplyBackend, faults: Faults
) -> None:
    [mug] = backend.preload_products([product(1)])
    client = make_client()
    faults.set_rates(FaultRates(optiply_lost_answer=1.0))
    order = {
        "placed": "2026-11-20T10:15:00Z",
        "totalValue": 25.0,
        "remoteId": "402-1111111-2222222",
        "orderLines": [{"productId": mug, "quantity": 2, "subtotalValue": 25.0}],
    }
    order_id = client.create("sellOrders", order)
    assert list(backend.sell_orders) == [order_id]
    assert len(backend.sell_order_lines) == 1
    assert [w["fault"] for w in backend.writes()] == ["optiply_lost_answer"]


def test_create_whose_every_answer_is_lost_still_returns_the_applied_id(
    make_client: Callable[..., OptiplyClient], backend: OptiplyBackend, faults: Faults
) -> None:
    faults.set_rates(FaultRates(optiply_lost_answer=1.0))
    client = make_client(max_attempts=1)
    product_id = client.create("products", product(5))
    assert list(backend.products) == [product_id]
    assert backend.products[product_id]["remoteId"] == "B000000005"


def test_validation_error_names_entity_attribute_and_detail(
    make_client: Callable[..., OptiplyClient], backend: OptiplyBackend
) -> None:
    client = make_client()
    with pytest.raises(OptiplyValidationError) as raised:
        client.create("products", product(1, stockLevel=1.5))
    message = str(raised.value)
    assert "products" in message
    assert "/data/attributes/stockLevel" in message
    assert "must be an integer" in message
    assert raised.value.pointers == ["/data/attributes/stockLevel"]
    assert raised.value.status == 400
    # A permanent error is not retried.
    assert len(backend.writes()) == 1


def test_nan_is_refused_before_sending(
    make_client: Callable[..., OptiplyClient], backend: OptiplyBackend
) -> None:
    client = make_client()
    with pytest.raises(OptiplyValidationError, match="NaN"):
        client.create("products", product(1, price=float("nan")))
    assert backend.writes() == []


def test_token_store_lets_a_second_client_reuse_the_token(
    make_client: Callable[..., OptiplyClient], backend: OptiplyBackend
) -> None:
    store = InMemoryTokenStore()
    make_client(token_store=store).create("products", product(1))
    assert backend.password_grants == 1
    saved = store.load()
    assert saved is not None and saved["access_token"] in backend.issued_tokens()

    second = make_client(token_store=store)
    assert [r["name"] for r in second.iter_records("products")] == ["Product 1"]
    assert backend.password_grants == 1

    # Without the stored token Optiply refuses a new login while the first token is valid.
    with pytest.raises(OptiplyAuthError, match="still valid") as raised:
        list(make_client().iter_records("products"))
    for secret in secrets_of(backend):
        assert secret not in str(raised.value)


def test_file_token_store_survives_a_restart(
    make_client: Callable[..., OptiplyClient], backend: OptiplyBackend, tmp_path: Path
) -> None:
    path = tmp_path / "state" / "optiply-token.json"
    make_client(token_store=FileTokenStore(path)).create("products", product(1))
    assert path.stat().st_mode & 0o777 == 0o600
    restarted = make_client(token_store=FileTokenStore(path))
    assert [r["remoteId"] for r in restarted.iter_records("products")] == ["B000000001"]
    assert backend.password_grants == 1
    assert PASSWORD not in path.read_text() and CLIENT_SECRET not in path.read_text()


def test_expired_token_is_refreshed_not_regranted(
    make_client: Callable[..., OptiplyClient], backend: OptiplyBackend
) -> None:
    client = make_client()
    client.create("products", product(1))
    backend.expire_tokens()  # the server expires it although the client still thinks it valid: a 401
    assert client.get("products", next(iter(backend.products)))["name"] == "Product 1"
    assert (backend.password_grants, backend.refresh_grants) == (1, 1)


def test_short_lived_token_is_refreshed_before_expiry(
    make_client: Callable[..., OptiplyClient], backend: OptiplyBackend
) -> None:
    backend.token_ttl_seconds = 1  # the client refreshes after half of a short token's life
    client = make_client()
    backend.preload_products([product(1)])
    for _ in range(3):
        assert len(list(client.iter_records("products"))) == 1
        time.sleep(0.6)
    assert backend.password_grants == 1
    assert backend.refresh_grants == 2
    assert [r["status"] for r in backend.requests if r["path"] == "/v1/products"] == [200, 200, 200]


def test_bad_credentials_raise_auth_errors_without_secrets(
    make_client: Callable[..., OptiplyClient], backend: OptiplyBackend
) -> None:
    wrong_secret = make_client(client_secret="wrong-secret-value")
    with pytest.raises(OptiplyAuthError, match="client id/secret") as raised_client:
        wrong_secret.get("products", 1)
    wrong_password = make_client(password="wrong-password-value")
    with pytest.raises(OptiplyAuthError, match="username/password") as raised_password:
        wrong_password.get("products", 1)
    for raised in (raised_client, raised_password):
        text = str(raised.value) + repr(raised.value)
        for secret in [*secrets_of(backend), "wrong-secret-value", "wrong-password-value"]:
            assert secret not in text
    assert PASSWORD not in repr(make_client()) and CLIENT_SECRET not in repr(make_client())


def test_write_pacing_spaces_writes(
    make_client: Callable[..., OptiplyClient], backend: OptiplyBackend
) -> None:
    client = make_client(min_write_interval=0.05)
    # When the client sends each write, by its own clock: the server's arrival times also carry
    # however long the request took to get there, which on a loaded machine varies more than the spacing.
    sent: list[float] = []
    client._http.event_hooks["request"].append(
        lambda request: "/v1/products" in request.url.path and sent.append(time.monotonic())
    )
    for i in range(4):
        client.create("products", product(i, remoteId=None))
    assert len(backend.writes()) == 4
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert len(gaps) == 3
    # The first gap is the starting spacing; good answers then raise the rate a little (AdaptiveWriteRate).
    assert gaps[0] >= 0.045 and min(gaps) >= 0.04


# -- purchasing entities ------------------------------------------------------------------------------------


def buy_order(supplier_id: int, *product_ids: int, remote_id: str = "PO-1") -> dict[str, Any]:
    lines = [
        {"productId": pid, "quantity": 4, "subtotalValue": Decimal("20.00"), "remoteId": f"{remote_id}-{n}"}
        for n, pid in enumerate(product_ids, 1)
    ]
    return {
        "remoteId": remote_id,
        "supplierId": supplier_id,
        "placed": "2026-11-20T10:15:00Z",
        "totalValue": Decimal("20.00") * len(lines),
        "orderLines": nested_lines("buyOrderLines", lines),
    }


def test_purchasing_entities_round_trip_through_the_client(
    make_client: Callable[..., OptiplyClient], backend: OptiplyBackend
) -> None:
    mug, cup = backend.preload_products([product(1), product(2)])
    client = make_client()
    supplier_id = client.create("suppliers", {"name": "Acme", "remoteId": "SUP-1", "deliveryTime": 7})
    supplier_product_id = client.create(
        "supplierProducts",
        {
            "name": "Mug",
            "remoteId": "SP-1",
            "productId": mug,
            "supplierId": supplier_id,
            "price": Decimal("4.1"),
        },
    )
    order_id = client.create("buyOrders", buy_order(supplier_id, mug, cup))
    nested = list(client.iter_records("buyOrderLines", {"buyOrderId": str(order_id)}))
    assert [(r["productId"], r["subtotalValue"], r["remoteId"]) for r in nested] == [
        (mug, 20.0, "PO-1-1"),
        (cup, 20.0, "PO-1-2"),
    ]
    line_id = client.create(
        "buyOrderLines",
        {"buyOrderId": order_id, "productId": cup, "quantity": 1, "subtotalValue": 5, "remoteId": "PO-1-3"},
    )
    receipt_id = client.create(
        "receiptLines",
        {
            "buyOrderLineId": nested[0]["id"],
            "occurred": "2026-11-27T08:00:00Z",
            "quantity": 4,
            "remoteId": "R-1",
        },
    )
    order = client.get("buyOrders", order_id)
    assert order["expectedDeliveryDate"] == "2026-11-27T10:15:00Z"
    assert [line["id"] for line in order["orderLines"]] == [nested[0]["id"], nested[1]["id"], line_id]

    written = {
        "suppliers": (supplier_id, "SUP-1", {"emails": ["buyer@acme.example"]}),
        "supplierProducts": (supplier_product_id, "SP-1", {"lotSize": 6, "preferred": True}),
        "buyOrders": (order_id, "PO-1", {"completed": "2026-11-28T00:00:00Z"}),
        "buyOrderLines": (line_id, "PO-1-3", {"quantity": 2}),
        "receiptLines": (receipt_id, "R-1", {"quantity": 3}),
    }
    for entity, (record_id, remote_id, change) in written.items():
        client.update(entity, record_id, change)
        record = client.get(entity, record_id)
        assert {k: record[k] for k in change} == change, entity
        assert client.find_by_remote_id(entity, remote_id, own_coupling_only=True)["id"] == record_id
        assert record["remoteIdMap"] == {str(COUPLING_ID): remote_id}

    client.delete("buyOrders", order_id)
    for entity, record_id in (("buyOrderLines", line_id), ("receiptLines", receipt_id)):
        with pytest.raises(OptiplyNotFoundError):
            client.get(entity, record_id)
    client.delete("buyOrderLines", line_id, missing_ok=True)
    client.delete("products", mug)
    assert client.find_by_remote_id("supplierProducts", "SP-1") is None


def test_lost_answers_on_purchasing_creates_are_recovered_not_posted_twice(
    make_client: Callable[..., OptiplyClient], backend: OptiplyBackend, faults: Faults
) -> None:
    mug, cup = backend.preload_products([product(1), product(2)])
    client = make_client(max_attempts=3)
    faults.set_rates(FaultRates(optiply_lost_answer=1.0))
    supplier_id = client.create("suppliers", {"name": "Acme", "remoteId": "SUP-1"})
    # A second POST of this one would be refused with a 409: only the look-up by remoteId gets its id.
    supplier_product_id = client.create(
        "supplierProducts", {"name": "Mug", "remoteId": "SP-1", "productId": mug, "supplierId": supplier_id}
    )
    order_id = client.create("buyOrders", buy_order(supplier_id, mug, cup))
    line_id = client.create(
        "buyOrderLines",
        {"buyOrderId": order_id, "productId": mug, "quantity": 1, "subtotalValue": 5, "remoteId": "PO-1-3"},
    )
    receipt_id = client.create(
        "receiptLines",
        {"buyOrderLineId": line_id, "occurred": "2026-11-27T08:00:00Z", "quantity": 1, "remoteId": "R-1"},
    )
    assert list(backend.suppliers) == [supplier_id]
    assert list(backend.supplier_products) == [supplier_product_id]
    assert list(backend.buy_orders) == [order_id]
    assert len(backend.buy_order_lines) == 3 and line_id in backend.buy_order_lines
    assert list(backend.receipt_lines) == [receipt_id]
    assert [w["fault"] for w in backend.writes()] == ["optiply_lost_answer"] * 5


def test_conflicts_and_missing_references_raise_typed_errors_without_retrying(
    make_client: Callable[..., OptiplyClient], backend: OptiplyBackend
) -> None:
    [mug] = backend.preload_products([product(1)])
    [supplier_id] = backend.preload("suppliers", [{"name": "Acme", "remoteId": "SUP-1"}])
    client = make_client()
    supplier_product = {"name": "Mug", "remoteId": "SP-1", "productId": mug, "supplierId": supplier_id}
    client.create("supplierProducts", supplier_product)
    with pytest.raises(OptiplyConflictError) as duplicate:
        client.create("supplierProducts", {**supplier_product, "remoteId": "SP-2"})
    assert (duplicate.value.status, duplicate.value.pointers) == (409, ["/data/attributes/productId"])

    with pytest.raises(OptiplyNotFoundError) as missing:
        client.create("buyOrders", buy_order(supplier_id + 1, mug))
    assert missing.value.pointers == ["/data/attributes/supplierId"]
    client.create("buyOrders", buy_order(supplier_id, mug))
    with pytest.raises(OptiplyConflictError, match="delete those first"):
        client.delete("suppliers", supplier_id, missing_ok=True)
    assert [w["status"] for w in backend.writes()] == [201, 409, 404, 201, 409]
