"""An emulated Optiply API (OAuth password grant + JSON:API under /v1) whose state tests can inspect.

Like a moto backend: `OptiplyBackend` holds the account's records and a request log; `build_optiply_server`
serves it over real HTTP and injects the `optiply_*` faults drawn from `Faults`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import itertools
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from amazon_optiply.sandbox.clock import SandboxClock
from amazon_optiply.sandbox.faults import Faults
from amazon_optiply.sandbox.http import Request, Response, Router, SandboxHTTPServer

DEFAULT_USERNAME = "sandbox-user"
DEFAULT_PASSWORD = "sandbox-password"
DEFAULT_CLIENT_ID = "sandbox-client"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"
DEFAULT_ACCOUNT_ID = 1
# The coupling preload_products() files records under by default: "another shop system" than ours.
OTHER_COUPLING_ID = 999

TOKEN_PATH = "/api/auth/oauth/token"
JSONAPI_CONTENT_TYPE = "application/vnd.api+json"
# Optiply's default page size is undocumented; 25 is small enough that a client forgetting page[limit] pages.
DEFAULT_PAGE_LIMIT = 25
MAX_PAGE_LIMIT = 100
ENTITIES = ("products", "sellOrders", "sellOrderLines")
PLACED_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MAX_PRICE = Decimal("9999999.99")
FILTER_OPERATORS = ("EQ", "NEQ", "LIKE", "LT", "LE", "GT", "GE")

# Distinct id ranges per entity make a product id passed where an order id belongs fail loudly.
_ID_START = {"products": 100_001, "sellOrders": 500_001, "sellOrderLines": 900_001}
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


# ---------------------------------------------------------------------------------------------------------
# Errors and attribute validation
# ---------------------------------------------------------------------------------------------------------


class ApiError(Exception):
    """A JSON:API error answer; `errors` are JSON:API error objects."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{status}: {errors}")
        self.status = status
        self.errors = errors

    @classmethod
    def single(
        cls, status: int, code: str, detail: str, pointer: str | None = None, parameter: str | None = None
    ) -> ApiError:
        return cls(status, [_error_object(status, code, detail, pointer, parameter)])


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def _error_object(
    status: int, code: str, detail: str, pointer: str | None = None, parameter: str | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "status": str(status),
        "code": code,
        "title": _TITLES.get(status, "Error"),
        "detail": detail,
    }
    if pointer is not None:
        error["source"] = {"pointer": pointer}
    elif parameter is not None:
        error["source"] = {"parameter": parameter}
    return error


def jsonapi_error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """The `error_response` callback for SandboxHTTPServer: a JSON:API error document."""
    return _jsonapi(status, {"errors": [_error_object(status, code, message)]}, headers)


def _jsonapi(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    merged = {"Content-Type": JSONAPI_CONTENT_TYPE}
    merged.update(headers or {})
    return Response(status, json.dumps(payload).encode("utf-8"), merged)


def _short(value: Any) -> str:
    text = json.dumps(value, default=lambda v: float(v) if isinstance(v, Decimal) else str(v))
    return text if len(text) <= 60 else text[:57] + "..."


class _Errors:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, pointer: str, detail: str, code: str = "invalid_attribute") -> None:
        self.items.append(_error_object(400, code, detail, pointer=pointer))


_MISSING = object()
Validator = Callable[[Any, str, _Errors], Any]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, Decimal)) and not isinstance(value, bool)


def _string(value: Any, pointer: str, errors: _Errors) -> Any:
    if value is None or isinstance(value, str):
        return value
    errors.add(pointer, f"must be a string or null, got {_short(value)}")
    return _MISSING


def _name(value: Any, pointer: str, errors: _Errors) -> Any:
    if not isinstance(value, str):
        errors.add(pointer, f"must be a string, got {_short(value)}")
    elif not value.strip():
        errors.add(pointer, "must not be blank")
    elif len(value) > 255:
        errors.add(pointer, f"must be at most 255 characters, got {len(value)}")
    else:
        return value
    return _MISSING


def _integer(nullable: bool, minimum: int | None = None) -> Validator:
    def validate(value: Any, pointer: str, errors: _Errors) -> Any:
        if value is None and nullable:
            return None
        # 1.0 is refused too: a float stock level means the caller's pandas column went float somewhere.
        if not isinstance(value, int) or isinstance(value, bool):
            errors.add(pointer, f"must be an integer, got {_short(value)}")
        elif not _INT32_MIN <= value <= _INT32_MAX:
            errors.add(pointer, f"must fit a 32-bit integer, got {value}")
        elif minimum is not None and value < minimum:
            errors.add(pointer, f"must be at least {minimum}, got {value}")
        else:
            return value
        return _MISSING

    return validate


def _number(value: Any, pointer: str, errors: _Errors) -> Any:
    if value is None:
        return None
    if not _is_number(value):
        errors.add(pointer, f"must be a number, got {_short(value)}")
        return _MISSING
    return float(value)


def _price(value: Any, pointer: str, errors: _Errors) -> Any:
    if value is None:
        return None
    if not _is_number(value):
        errors.add(pointer, f"must be a number, got {_short(value)}")
        return _MISSING
    # The body is parsed with Decimal, so 19.990000000000002 from float arithmetic is seen as sent.
    exponent = Decimal(value).normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        errors.add(pointer, f"must have at most 2 decimals, got {value}")
    elif not Decimal(0) <= Decimal(value) <= MAX_PRICE:
        errors.add(pointer, f"must be between 0 and 9999999.99, got {value}")
    else:
        return float(value)
    return _MISSING


def _boolean(value: Any, pointer: str, errors: _Errors) -> Any:
    if isinstance(value, bool):
        return value
    errors.add(pointer, f"must be true or false, got {_short(value)}")
    return _MISSING


def _status(value: Any, pointer: str, errors: _Errors) -> Any:
    if isinstance(value, str) and value.upper() in ("ENABLED", "DISABLED"):
        return value.upper()
    errors.add(pointer, f"must be ENABLED or DISABLED, got {_short(value)}")
    return _MISSING


def _timestamp(nullable: bool) -> Validator:
    def validate(value: Any, pointer: str, errors: _Errors) -> Any:
        if value is None and nullable:
            return None
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", value):
            try:
                datetime.strptime(value, PLACED_FORMAT)
                return value
            except ValueError:
                pass
        errors.add(pointer, f"must be a UTC timestamp formatted %Y-%m-%dT%H:%M:%SZ, got {_short(value)}")
        return _MISSING

    return validate


@dataclass(frozen=True)
class _Field:
    validate: Validator
    required: bool = False
    default: Any = None


PRODUCT_FIELDS: dict[str, _Field] = {
    "name": _Field(_name, required=True),
    "stockLevel": _Field(_integer(nullable=False), required=True),
    "skuCode": _Field(_string),
    "eanCode": _Field(_string),
    "articleCode": _Field(_string),
    "remoteId": _Field(_string),
    "price": _Field(_price),
    "status": _Field(_status, default="ENABLED"),
    "unlimitedStock": _Field(_boolean, default=False),
    "notBeingBought": _Field(_boolean, default=False),
    "resumingPurchase": _Field(_boolean, default=False),
    "assembled": _Field(_boolean, default=False),
    "minimumStock": _Field(_integer(nullable=True)),
    "createdAtRemote": _Field(_timestamp(nullable=True)),
}

SELL_ORDER_FIELDS: dict[str, _Field] = {
    "placed": _Field(_timestamp(nullable=False), required=True),
    "totalValue": _Field(_number),
    "remoteId": _Field(_string),
    "completed": _Field(_timestamp(nullable=True)),
}

SELL_ORDER_LINE_FIELDS: dict[str, _Field] = {
    "sellOrderId": _Field(_integer(nullable=False), required=True),
    "productId": _Field(_integer(nullable=False), required=True),
    "quantity": _Field(_integer(nullable=False, minimum=1), required=True),
    "subtotalValue": _Field(_number, required=True),
}

# What each entity accepts in `attributes`; anything else is refused so a misspelt attribute shows up.
FIELDS: dict[str, dict[str, _Field]] = {
    "products": PRODUCT_FIELDS,
    "sellOrders": SELL_ORDER_FIELDS,
    "sellOrderLines": SELL_ORDER_LINE_FIELDS,
}
_NESTED_LINE_FIELDS = ("productId", "quantity", "subtotalValue")


def _validate_attributes(
    fields: dict[str, _Field], attributes: dict[str, Any], *, creating: bool, errors: _Errors, pointer: str
) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in attributes.items():
        spec = fields.get(key)
        if spec is None:
            errors.add(f"{pointer}/{key}", f"unknown attribute {key!r}", code="unknown_attribute")
            continue
        if value is None and spec.required:
            errors.add(f"{pointer}/{key}", "is required and must not be null", code="required")
            continue
        result = spec.validate(value, f"{pointer}/{key}", errors)
        if result is not _MISSING:
            clean[key] = result
    if creating:
        for key, spec in fields.items():
            if key in attributes:
                continue
            if spec.required:
                errors.add(f"{pointer}/{key}", "is required", code="required")
            else:
                clean[key] = spec.default
    return clean


# ---------------------------------------------------------------------------------------------------------
# Backend
# ---------------------------------------------------------------------------------------------------------


@dataclass
class _Token:
    access_token: str
    refresh_token: str
    client_id: str
    username: str
    expires_at: float


class OptiplyBackend:
    """The state of one Optiply account plus its OAuth tokens; every public method is thread-safe.

    `products`, `sell_orders` and `sell_order_lines` map id -> stored attributes (orders carry their
    `orderLines` list). Read them under `backend.lock` or through `snapshot()` while a server runs.
    """

    def __init__(
        self,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        *,
        token_ttl_seconds: int = 3600,
        account_id: int = DEFAULT_ACCOUNT_ID,
        clock: SandboxClock | None = None,
        throttle_retry_after: int | None = None,
    ) -> None:
        self.username = username
        self._password = password
        self.client_id = client_id
        self._client_secret = client_secret
        self.token_ttl_seconds = token_ttl_seconds
        self.account_id = account_id
        self.clock = clock
        # Seconds sent as Retry-After with a throttle fault; None sends no header, as Optiply mostly does.
        self.throttle_retry_after = throttle_retry_after
        self.lock = threading.RLock()
        self._clear_state()

    def _clear_state(self) -> None:
        self.products: dict[int, dict[str, Any]] = {}
        self.sell_orders: dict[int, dict[str, Any]] = {}
        self.sell_order_lines: dict[int, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.password_grants = 0
        self.refresh_grants = 0
        self._meta: dict[str, dict[int, dict[str, Any]]] = {entity: {} for entity in ENTITIES}
        self._ids = {entity: itertools.count(start) for entity, start in _ID_START.items()}
        self._tokens_by_access: dict[str, _Token] = {}
        self._tokens_by_refresh: dict[str, _Token] = {}
        self._current_token: dict[tuple[str, str], _Token] = {}
        self._server_error_count = 0

    def __repr__(self) -> str:
        return (
            f"OptiplyBackend(username={self.username!r}, client_id={self.client_id!r}, "
            f"account_id={self.account_id})"
        )

    # -- inspection helpers for tests -----------------------------------------------------------------

    def now(self) -> float:
        return self.clock.now().timestamp() if self.clock else time.time()

    def table(self, entity: str) -> dict[int, dict[str, Any]]:
        return {
            "products": self.products,
            "sellOrders": self.sell_orders,
            "sellOrderLines": self.sell_order_lines,
        }[entity]

    def snapshot(self) -> dict[str, dict[int, dict[str, Any]]]:
        """A deep copy of every record, flattened as GET serves it: attributes, `remoteIdMap`, `uuid`."""
        with self.lock:
            return {
                entity: {
                    record_id: {**copy.deepcopy(attrs), **copy.deepcopy(self._meta[entity][record_id])}
                    for record_id, attrs in self.table(entity).items()
                }
                for entity in ENTITIES
            }

    def find(self, entity: str, **attributes: Any) -> list[tuple[int, dict[str, Any]]]:
        """(id, attributes copy) of records whose attributes equal all the given ones, in id order."""
        with self.lock:
            return [
                (record_id, copy.deepcopy(attrs))
                for record_id, attrs in sorted(self.table(entity).items())
                if all(attrs.get(k) == v for k, v in attributes.items())
            ]

    def remote_id_map(self, entity: str, record_id: int) -> dict[str, str]:
        with self.lock:
            return dict(self._meta[entity][record_id]["remoteIdMap"])

    def writes(self) -> list[dict[str, Any]]:
        """Logged POST/PATCH/DELETE requests on /v1, including ones whose answer a fault lost."""
        with self.lock:
            return [
                copy.deepcopy(entry)
                for entry in self.requests
                if entry["method"] in ("POST", "PATCH", "DELETE") and entry["path"].startswith("/v1/")
            ]

    def reset(self) -> None:
        """Forget every record, token and logged request, as a fresh account (configuration is kept)."""
        with self.lock:
            self._clear_state()

    def reset_request_log(self) -> None:
        with self.lock:
            self.requests.clear()

    def issued_tokens(self) -> list[str]:
        """Every live access and refresh token, so tests can check none leaks into a message."""
        with self.lock:
            return [*self._tokens_by_access, *self._tokens_by_refresh]

    def expire_tokens(self) -> None:
        """Make every issued access token expired now, as if its hour had passed."""
        with self.lock:
            now = self.now()
            for token in self._tokens_by_access.values():
                token.expires_at = min(token.expires_at, now - 1)

    def preload_products(
        self, products: Iterable[dict[str, Any]], coupling_id: int | None = OTHER_COUPLING_ID
    ) -> list[int]:
        """Create products as another shop system (coupling) would have; returns their ids.

        Attributes are validated like a POST; a bad one raises ValueError.
        """
        ids = []
        with self.lock:
            for attributes in products:
                errors = _Errors()
                clean = _validate_attributes(
                    PRODUCT_FIELDS,
                    _decimalize(attributes),
                    creating=True,
                    errors=errors,
                    pointer="/data/attributes",
                )
                if errors.items:
                    raise ValueError(f"invalid preloaded product {attributes!r}: {errors.items}")
                ids.append(self._insert("products", clean, coupling_id))
        return ids

    def preload_sell_orders(self, orders: Iterable[dict[str, Any]], coupling_id: int | None) -> list[int]:
        """Create sell orders (nested `orderLines` included) as another integration posted them; returns ids.

        Validated like a POST, product references included; a bad one raises ValueError.
        """
        ids = []
        with self.lock:
            for attributes in orders:
                errors = _Errors()
                attributes = dict(_decimalize(attributes))
                lines = self._validate_nested_lines(attributes.pop("orderLines", []), errors)
                clean = _validate_attributes(
                    SELL_ORDER_FIELDS, attributes, creating=True, errors=errors, pointer="/data/attributes"
                )
                if errors.items:
                    raise ValueError(f"invalid preloaded sell order {attributes!r}: {errors.items}")
                order_id = self._insert("sellOrders", clean, coupling_id)
                for line in lines:
                    self._insert("sellOrderLines", {"sellOrderId": order_id, **line}, None)
                self._refresh_order_lines(order_id)
                ids.append(order_id)
        return ids

    # -- OAuth ----------------------------------------------------------------------------------------

    def issue_token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        grant_type = request.param("grant_type") or form.get("grant_type")
        client_id = _basic_auth_client(request.header("authorization"), self.client_id, self._client_secret)
        if client_id is None:
            return _oauth_error(401, "invalid_client", "Bad client credentials")
        with self.lock:
            now = self.now()
            if grant_type == "password":
                if form.get("username") != self.username or form.get("password") != self._password:
                    return _oauth_error(400, "invalid_grant", "Bad credentials")
                current = self._current_token.get((client_id, self.username))
                if current and current.access_token in self._tokens_by_access and current.expires_at > now:
                    return _oauth_error(
                        400, "invalid_request", "Rate limit exceeded: access_token not expired"
                    )
                if current:
                    self._tokens_by_refresh.pop(current.refresh_token, None)
                token = _Token(
                    access_token=secrets.token_urlsafe(24),
                    refresh_token=secrets.token_urlsafe(24),
                    client_id=client_id,
                    username=self.username,
                    expires_at=now + self.token_ttl_seconds,
                )
                self.password_grants += 1
            elif grant_type == "refresh_token":
                old = self._tokens_by_refresh.get(form.get("refresh_token", ""))
                if old is None or old.client_id != client_id:
                    return _oauth_error(400, "invalid_grant", "Invalid refresh token")
                self._tokens_by_access.pop(old.access_token, None)
                # The refresh token stays the same across refreshes (Spring's reuseRefreshTokens default).
                token = _Token(
                    access_token=secrets.token_urlsafe(24),
                    refresh_token=old.refresh_token,
                    client_id=client_id,
                    username=old.username,
                    expires_at=now + self.token_ttl_seconds,
                )
                self.refresh_grants += 1
            else:
                return _oauth_error(400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}")
            self._tokens_by_access[token.access_token] = token
            self._tokens_by_refresh[token.refresh_token] = token
            self._current_token[(client_id, token.username)] = token
            return Response.json(
                200,
                {
                    "access_token": token.access_token,
                    "refresh_token": token.refresh_token,
                    "token_type": "bearer",
                    "expires_in": self.token_ttl_seconds,
                    "scope": "read write",
                },
                {"Cache-Control": "no-store"},
            )

    def authenticate(self, authorization: str | None) -> str | None:
        """None when the bearer token is good, else why it is not."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return "Full authentication is required to access this resource"
        with self.lock:
            token = self._tokens_by_access.get(authorization[7:].strip())
            if token is None:
                return "Invalid access token"
            if token.expires_at <= self.now():
                return "Access token expired"
        return None

    # -- JSON:API handlers ----------------------------------------------------------------------------

    def list_records(self, entity: str, request: Request) -> Response:
        _check_entity(entity)
        limit = _int_param(request, "page[limit]", DEFAULT_PAGE_LIMIT, 1, MAX_PAGE_LIMIT)
        offset = _int_param(request, "page[offset]", 0, 0, None)
        for name in request.query:
            if name.startswith("page[") and name not in ("page[limit]", "page[offset]"):
                raise ApiError.single(
                    400, "invalid_parameter", f"unsupported paging parameter {name}", parameter=name
                )
        filters = _parse_filters(entity, request)
        sort_keys = _parse_sort(entity, request.param("sort"))
        with self.lock:
            rows = [
                (rid, attrs) for rid, attrs in self.table(entity).items() if _matches(rid, attrs, filters)
            ]
            for field, descending in reversed(sort_keys):
                rows.sort(
                    key=lambda row, f=field: _sort_key(row[0] if f == "id" else row[1].get(f)),
                    reverse=descending,
                )
            page = rows[offset : offset + limit]
            data = [self._resource(entity, rid) for rid, _ in page]
        return _jsonapi(200, {"data": data})

    def get_record(self, entity: str, record_id: str) -> Response:
        with self.lock:
            rid = self._existing_id(entity, record_id)
            return _jsonapi(200, {"data": self._resource(entity, rid)})

    def create_record(self, entity: str, request: Request) -> Response:
        _check_entity(entity)
        _check_content_type(request)
        account = request.param("accountId")
        if account is None:
            raise ApiError.single(400, "missing_parameter", "accountId is required", parameter="accountId")
        if account != str(self.account_id):
            raise ApiError.single(403, "forbidden", f"no access to account {account}", parameter="accountId")
        coupling = request.param("couplingId")
        if coupling is not None and not coupling.isdigit():
            raise ApiError.single(
                400, "invalid_parameter", "couplingId must be an integer", parameter="couplingId"
            )
        attributes = _document_attributes(entity, request)
        errors = _Errors()
        lines_raw = attributes.pop("orderLines", _MISSING) if entity == "sellOrders" else _MISSING
        clean = _validate_attributes(
            FIELDS[entity], attributes, creating=True, errors=errors, pointer="/data/attributes"
        )
        with self.lock:
            lines = self._validate_nested_lines(lines_raw, errors) if lines_raw is not _MISSING else []
            if entity == "sellOrderLines":
                self._check_references(clean, errors, "/data/attributes")
            if errors.items:
                raise ApiError(400, errors.items)
            rid = self._insert(entity, clean, int(coupling) if coupling else None)
            if entity == "sellOrders":
                for line in lines:
                    self._insert("sellOrderLines", {"sellOrderId": rid, **line}, None)
                self._refresh_order_lines(rid)
            elif entity == "sellOrderLines":
                self._refresh_order_lines(clean["sellOrderId"])
            return _jsonapi(201, {"data": self._resource(entity, rid)})

    def update_record(self, entity: str, record_id: str, request: Request) -> Response:
        _check_content_type(request)
        with self.lock:
            rid = self._existing_id(entity, record_id)
        attributes = _document_attributes(entity, request, url_id=rid)
        errors = _Errors()
        if entity == "sellOrders" and "orderLines" in attributes:
            attributes.pop("orderLines")
            errors.add(
                "/data/attributes/orderLines",
                "orderLines cannot be changed on an existing sell order; use sellOrderLines",
                code="read_only",
            )
        clean = _validate_attributes(
            FIELDS[entity], attributes, creating=False, errors=errors, pointer="/data/attributes"
        )
        with self.lock:
            rid = self._existing_id(entity, record_id)
            if entity == "sellOrderLines":
                self._check_references(clean, errors, "/data/attributes")
            if errors.items:
                raise ApiError(400, errors.items)
            record = self.table(entity)[rid]
            previous_order = record.get("sellOrderId")
            if "remoteId" in clean and clean["remoteId"] != record.get("remoteId"):
                self._update_remote_id_map(entity, rid, clean["remoteId"], request.param("couplingId"))
            record.update(clean)
            if entity == "sellOrderLines":
                self._refresh_order_lines(previous_order)
                self._refresh_order_lines(record["sellOrderId"])
            return _jsonapi(200, {"data": self._resource(entity, rid)})

    def delete_record(self, entity: str, record_id: str) -> Response:
        with self.lock:
            rid = self._existing_id(entity, record_id)
            record = self.table(entity).pop(rid)
            self._meta[entity].pop(rid)
            if entity == "sellOrders":
                for line_id in [
                    lid for lid, line in self.sell_order_lines.items() if line["sellOrderId"] == rid
                ]:
                    self.sell_order_lines.pop(line_id)
                    self._meta["sellOrderLines"].pop(line_id)
            elif entity == "sellOrderLines":
                self._refresh_order_lines(record["sellOrderId"])
        return Response(204)

    # -- internals (called with the lock held) ----------------------------------------------------------

    def _insert(self, entity: str, attributes: dict[str, Any], coupling_id: int | None) -> int:
        rid = next(self._ids[entity])
        self.table(entity)[rid] = attributes
        remote_id = attributes.get("remoteId")
        remote_map = (
            {str(coupling_id): remote_id} if coupling_id is not None and remote_id is not None else {}
        )
        self._meta[entity][rid] = {"uuid": str(uuid.uuid4()), "remoteIdMap": remote_map}
        return rid

    def _update_remote_id_map(
        self, entity: str, rid: int, remote_id: str | None, coupling: str | None
    ) -> None:
        remote_map = self._meta[entity][rid]["remoteIdMap"]
        if coupling is None and len(remote_map) == 1:
            coupling = next(iter(remote_map))
        if coupling is None:
            return
        if remote_id is None:
            remote_map.pop(coupling, None)
        else:
            remote_map[coupling] = remote_id

    def _resource(self, entity: str, rid: int) -> dict[str, Any]:
        meta = self._meta[entity][rid]
        return {
            "type": entity,
            "id": str(rid),
            "uuid": meta["uuid"],
            "remoteIdMap": dict(meta["remoteIdMap"]),
            "attributes": copy.deepcopy(self.table(entity)[rid]),
        }

    def _existing_id(self, entity: str, record_id: str) -> int:
        _check_entity(entity)
        if not record_id.isdigit() or int(record_id) not in self.table(entity):
            raise ApiError.single(404, "not_found", f"{entity} with id {record_id} not found")
        return int(record_id)

    def _validate_nested_lines(self, lines: Any, errors: _Errors) -> list[dict[str, Any]]:
        pointer = "/data/attributes/orderLines"
        if lines is None:
            return []
        if not isinstance(lines, list):
            errors.add(pointer, f"must be a list of order lines, got {_short(lines)}")
            return []
        clean_lines = []
        for index, line in enumerate(lines):
            line_pointer = f"{pointer}/{index}"
            if not isinstance(line, dict):
                errors.add(line_pointer, f"must be an object, got {_short(line)}")
                continue
            fields = {key: SELL_ORDER_LINE_FIELDS[key] for key in _NESTED_LINE_FIELDS}
            clean = _validate_attributes(fields, line, creating=True, errors=errors, pointer=line_pointer)
            self._check_references(clean, errors, line_pointer)
            clean_lines.append(clean)
        return clean_lines

    def _check_references(self, attributes: dict[str, Any], errors: _Errors, pointer: str) -> None:
        product_id = attributes.get("productId")
        if product_id is not None and product_id not in self.products:
            errors.add(
                f"{pointer}/productId", f"product {product_id} does not exist", code="unknown_reference"
            )
        order_id = attributes.get("sellOrderId")
        if order_id is not None and order_id not in self.sell_orders:
            errors.add(
                f"{pointer}/sellOrderId", f"sell order {order_id} does not exist", code="unknown_reference"
            )

    def _refresh_order_lines(self, order_id: int | None) -> None:
        order = self.sell_orders.get(order_id) if order_id is not None else None
        if order is None:
            return
        order["orderLines"] = [
            {
                "id": line_id,
                "productId": line["productId"],
                "quantity": line["quantity"],
                "subtotalValue": line["subtotalValue"],
            }
            for line_id, line in sorted(self.sell_order_lines.items())
            if line["sellOrderId"] == order_id
        ]

    def next_server_error_status(self) -> int:
        with self.lock:
            self._server_error_count += 1
            return 503 if self._server_error_count % 2 else 502


# ---------------------------------------------------------------------------------------------------------
# Request parsing helpers
# ---------------------------------------------------------------------------------------------------------


def _oauth_error(status: int, error: str, description: str) -> Response:
    return Response.json(status, {"error": error, "error_description": description})


def _basic_auth_client(header: str | None, client_id: str, client_secret: str) -> str | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    given_id, _, given_secret = decoded.partition(":")
    ok = secrets.compare_digest(given_id, client_id) and secrets.compare_digest(given_secret, client_secret)
    return given_id if ok else None


def _check_entity(entity: str) -> None:
    if entity not in ENTITIES:
        raise ApiError.single(404, "not_found", f"unknown resource type {entity!r}")


def _check_content_type(request: Request) -> None:
    media_type = (request.header("content-type") or "").split(";")[0].strip().lower()
    if media_type not in (JSONAPI_CONTENT_TYPE, "application/json"):
        raise ApiError.single(
            415, "unsupported_media_type", f"Content-Type must be {JSONAPI_CONTENT_TYPE}, got {media_type!r}"
        )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _decimalize(value: Any) -> Any:
    """Python values as the JSON parser would give them: floats as Decimal of their shortest repr."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _decimalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimalize(v) for v in value]
    return value


def _document_attributes(entity: str, request: Request, *, url_id: int | None = None) -> dict[str, Any]:
    try:
        document = json.loads(
            request.body.decode("utf-8"), parse_float=Decimal, parse_constant=_reject_constant
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError.single(400, "malformed_json", f"request body is not valid JSON: {exc}") from None
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict):
        raise ApiError.single(
            400, "invalid_document", "body must be an object with a 'data' object", pointer="/data"
        )
    resource_type = data.get("type")
    if resource_type is None:
        raise ApiError.single(400, "invalid_document", "data.type is required", pointer="/data/type")
    if resource_type != entity:
        raise ApiError.single(
            409,
            "type_conflict",
            f"data.type {resource_type!r} does not match endpoint {entity!r}",
            pointer="/data/type",
        )
    if "id" in data:
        if url_id is None:
            raise ApiError.single(
                403, "client_id_unsupported", "ids are assigned by Optiply", pointer="/data/id"
            )
        if str(data["id"]) != str(url_id):
            raise ApiError.single(
                409, "id_conflict", f"data.id {data['id']!r} does not match the URL", pointer="/data/id"
            )
    attributes = data.get("attributes", {} if url_id is not None else None)
    if not isinstance(attributes, dict):
        raise ApiError.single(
            400, "invalid_document", "data.attributes must be an object", pointer="/data/attributes"
        )
    return dict(attributes)


def _int_param(request: Request, name: str, default: int, minimum: int, maximum: int | None) -> int:
    raw = request.param(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError.single(
            400, "invalid_parameter", f"{name} must be an integer", parameter=name
        ) from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ApiError.single(
            400, "invalid_parameter", f"{name} must be {bound}, got {value}", parameter=name
        )
    return value


_FILTER_RE = re.compile(r"^filter\[(\w+)\](?:\[(\w+)\])?$")


@dataclass(frozen=True)
class _Filter:
    field: str
    operator: str
    value: str
    parameter: str


def _parse_filters(entity: str, request: Request) -> list[_Filter]:
    filters = []
    for name, values in request.query.items():
        if not name.startswith("filter"):
            continue
        m = _FILTER_RE.match(name)
        if not m:
            raise ApiError.single(400, "invalid_filter", f"malformed filter parameter {name}", parameter=name)
        field, operator = m.group(1), (m.group(2) or "EQ").upper()
        if field != "id" and field not in FIELDS[entity]:
            raise ApiError.single(
                400, "invalid_filter", f"cannot filter {entity} on {field!r}", parameter=name
            )
        if operator not in FILTER_OPERATORS:
            raise ApiError.single(
                400,
                "invalid_filter",
                f"unknown filter operator {operator}; use {FILTER_OPERATORS}",
                parameter=name,
            )
        filters.extend(_Filter(field, operator, value, name) for value in values)
    return filters


def _coerce_filter_value(f: _Filter, actual: Any) -> Any:
    if isinstance(actual, bool):
        if f.value.lower() not in ("true", "false"):
            raise ApiError.single(
                400, "invalid_filter", f"{f.parameter} must be true or false", parameter=f.parameter
            )
        return f.value.lower() == "true"
    if isinstance(actual, (int, float)):
        try:
            return float(f.value)
        except ValueError:
            raise ApiError.single(
                400, "invalid_filter", f"{f.parameter} must be a number", parameter=f.parameter
            ) from None
    return f.value


def _matches(record_id: int, attributes: dict[str, Any], filters: list[_Filter]) -> bool:
    for f in filters:
        actual = record_id if f.field == "id" else attributes.get(f.field)
        if f.operator == "LIKE":
            if actual is None:
                return False
            pattern = ".*".join(re.escape(part) for part in f.value.split("%"))
            if not re.fullmatch(pattern, str(actual), re.IGNORECASE | re.DOTALL):
                return False
            continue
        if actual is None:
            is_null = f.value.lower() == "null"
            if (f.operator == "EQ" and not is_null) or (f.operator == "NEQ" and is_null):
                return False
            if f.operator not in ("EQ", "NEQ"):
                return False
            continue
        wanted = _coerce_filter_value(f, actual)
        ok = {
            "EQ": actual == wanted,
            "NEQ": actual != wanted,
            "LT": actual < wanted,
            "LE": actual <= wanted,
            "GT": actual > wanted,
            "GE": actual >= wanted,
        }[f.operator]
        if not ok:
            return False
    return True


def _parse_sort(entity: str, raw: str | None) -> list[tuple[str, bool]]:
    if not raw:
        return [("id", False)]
    keys = []
    for part in raw.split(","):
        descending = part.startswith("-")
        field = part.lstrip("-+")
        if field != "id" and field not in FIELDS[entity]:
            raise ApiError.single(400, "invalid_sort", f"cannot sort {entity} on {field!r}", parameter="sort")
        keys.append((field, descending))
    return keys


def _sort_key(value: Any) -> tuple[int, Any]:
    # Nulls first, then values; mixed types never meet because an attribute has one type.
    return (0, 0) if value is None else (1, value)


# ---------------------------------------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------------------------------------


def _flat_query(query: dict[str, list[str]]) -> dict[str, Any]:
    return {k: v[0] if len(v) == 1 else list(v) for k, v in query.items()}


def _sent_attributes(request: Request) -> Any:
    try:
        document = json.loads(request.body.decode("utf-8"))
        return document["data"].get("attributes")
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        return None


def _response_id(response: Response) -> int | None:
    if response.status not in (200, 201) or not response.body:
        return None
    try:
        return int(json.loads(response.body)["data"]["id"])
    except (ValueError, KeyError, TypeError):
        return None


def build_optiply_server(
    backend: OptiplyBackend, faults: Faults, host: str = "127.0.0.1", port: int = 0
) -> SandboxHTTPServer:
    """Serve `backend` on host:port (0 picks a free port); `server.base_url` + "/v1" is the API base."""
    router = Router()
    router.add("POST", TOKEN_PATH, backend.issue_token)
    router.add("GET", "/v1/{entity}", lambda r: backend.list_records(r.path_params["entity"], r))
    router.add("POST", "/v1/{entity}", lambda r: backend.create_record(r.path_params["entity"], r))
    router.add(
        "GET", "/v1/{entity}/{id}", lambda r: backend.get_record(r.path_params["entity"], r.path_params["id"])
    )
    router.add(
        "PATCH",
        "/v1/{entity}/{id}",
        lambda r: backend.update_record(r.path_params["entity"], r.path_params["id"], r),
    )
    router.add(
        "DELETE",
        "/v1/{entity}/{id}",
        lambda r: backend.delete_record(r.path_params["entity"], r.path_params["id"]),
    )

    def handle(request: Request, entry: dict[str, Any]) -> Response:
        handler, params, path_exists = router.match(request.method, request.path)
        if handler is None:
            if path_exists:
                return jsonapi_error_response(
                    405, "method_not_allowed", f"{request.method} is not allowed here"
                )
            return jsonapi_error_response(404, "not_found", f"no resource at {request.path}")
        request.path_params = params
        if not request.path.startswith("/v1/"):
            return handler(request)
        problem = backend.authenticate(request.header("authorization"))
        if problem:
            return jsonapi_error_response(
                401, "unauthorized", problem, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        if faults.draw("optiply_throttle"):
            entry["fault"] = "optiply_throttle"
            retry_after = backend.throttle_retry_after
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
            return jsonapi_error_response(429, "too_many_requests", "Rate limit exceeded, slow down", headers)
        if faults.draw("optiply_server_error"):
            entry["fault"] = "optiply_server_error"
            status = backend.next_server_error_status()
            return jsonapi_error_response(
                status, "service_unavailable", "The service is temporarily unavailable"
            )
        lose_answer = request.method in ("POST", "PATCH") and faults.draw("optiply_lost_answer")
        try:
            response = handler(request)
        except ApiError as exc:
            response = _jsonapi(exc.status, {"errors": exc.errors})
        if lose_answer:
            entry["fault"] = "optiply_lost_answer"
            entry["answered"] = False
            entry["status"] = response.status
            entry["id"] = _response_id(response)
            return Response(status=0, reset_connection=True)
        return response

    def dispatch(request: Request) -> Response:
        entry: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "query": _flat_query(request.query),
            "status": None,
            "fault": None,
            "answered": True,
            "id": None,
            "time": backend.now(),
        }
        is_write = request.method in ("POST", "PATCH", "DELETE") and request.path.startswith("/v1/")
        if is_write:
            entry["attributes"] = _sent_attributes(request)
        try:
            response = handle(request, entry)
        except Exception:
            entry["status"] = 500
            with backend.lock:
                backend.requests.append(entry)
            raise
        if entry["answered"]:
            entry["status"] = response.status
            if is_write and request.method == "DELETE":
                entry["id"] = int(request.path_params["id"]) if response.status == 204 else None
            elif is_write:
                entry["id"] = _response_id(response)
        with backend.lock:
            backend.requests.append(entry)
        return response

    return SandboxHTTPServer(host, port, dispatch, jsonapi_error_response)
