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
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
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
ENTITIES = (
    "products",
    "sellOrders",
    "sellOrderLines",
    "suppliers",
    "supplierProducts",
    "buyOrders",
    "buyOrderLines",
    "receiptLines",
)
PLACED_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MAX_PRICE = Decimal("9999999.99")
FILTER_OPERATORS = ("EQ", "NEQ", "LIKE", "LT", "LE", "GT", "GE")

# Distinct id ranges per entity make a product id passed where an order id belongs fail loudly. The
# purchasing entities start a million apart, above the first three, so none of those ranges shrinks.
_ID_START = {
    "products": 100_001,
    "sellOrders": 500_001,
    "sellOrderLines": 900_001,
    "suppliers": 2_000_001,
    "supplierProducts": 3_000_001,
    "buyOrders": 4_000_001,
    "buyOrderLines": 5_000_001,
    "receiptLines": 6_000_001,
}
# Singular names for error details.
_LABELS = {
    "products": "product",
    "sellOrders": "sell order",
    "sellOrderLines": "sell order line",
    "suppliers": "supplier",
    "supplierProducts": "supplier product",
    "buyOrders": "buy order",
    "buyOrderLines": "buy order line",
    "receiptLines": "receipt line",
}
# Where OptiplyBackend keeps each entity's records.
_TABLE_ATTRIBUTES = {
    "products": "products",
    "sellOrders": "sell_orders",
    "sellOrderLines": "sell_order_lines",
    "suppliers": "suppliers",
    "supplierProducts": "supplier_products",
    "buyOrders": "buy_orders",
    "buyOrderLines": "buy_order_lines",
    "receiptLines": "receipt_lines",
}
_ATTRIBUTES_POINTER = "/data/attributes"
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

    def add(self, pointer: str, detail: str, code: str = "invalid_attribute", status: int = 400) -> None:
        self.items.append(_error_object(status, code, detail, pointer=pointer))

    def raise_any(self) -> None:
        """Raise the collected errors: 404 when every one is a missing referenced record, else 400."""
        if self.items:
            status = 404 if all(e["status"] == "404" for e in self.items) else 400
            raise ApiError(status, self.items)


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


def _integer(nullable: bool, minimum: int | None = None, maximum: int | None = None) -> Validator:
    def validate(value: Any, pointer: str, errors: _Errors) -> Any:
        if value is None and nullable:
            return None
        # 1.0 is refused too: a float stock level means the caller's pandas column went float somewhere.
        if not isinstance(value, int) or isinstance(value, bool):
            errors.add(pointer, f"must be an integer, got {_short(value)}")
        elif not _INT32_MIN <= value <= _INT32_MAX:
            errors.add(pointer, f"must fit a 32-bit integer, got {value}")
        elif minimum is not None and maximum is not None and not minimum <= value <= maximum:
            errors.add(pointer, f"must be between {minimum} and {maximum}, got {value}")
        elif minimum is not None and value < minimum:
            errors.add(pointer, f"must be at least {minimum}, got {value}")
        elif maximum is not None and value > maximum:
            errors.add(pointer, f"must be at most {maximum}, got {value}")
        else:
            return value
        return _MISSING

    return validate


# An Optiply id in an attribute (productId, supplierId, ...): whether the record exists is checked apart.
_reference = _integer(nullable=False, minimum=1)
# Days of delivery time or replenishment period: null or 1-365 (Optiply API changelog 2026-01, per the vault).
_days = _integer(nullable=True, minimum=1, maximum=365)


def _number(value: Any, pointer: str, errors: _Errors) -> Any:
    if value is None:
        return None
    if not _is_number(value):
        errors.add(pointer, f"must be a number, got {_short(value)}")
        return _MISSING
    return float(value)


def _non_negative(value: Any, pointer: str, errors: _Errors) -> Any:
    result = _number(value, pointer, errors)
    if isinstance(result, float) and result < 0:
        errors.add(pointer, f"must not be negative, got {value}")
        return _MISSING
    return result


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


def _remote_id(value: Any, pointer: str, errors: _Errors) -> Any:
    """The purchasing entities' remoteId: a string that is not blank, or null where it is optional."""
    if value is None:
        return None
    if not isinstance(value, str):
        errors.add(pointer, f"must be a string or null, got {_short(value)}")
    elif not value.strip():
        errors.add(pointer, "must not be blank")
    else:
        return value
    return _MISSING


def _choice(*allowed: str) -> Validator:
    def validate(value: Any, pointer: str, errors: _Errors) -> Any:
        if value is None or value in allowed:
            return value
        errors.add(pointer, f"must be one of {', '.join(allowed)} or null, got {_short(value)}")
        return _MISSING

    return validate


_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _emails(value: Any, pointer: str, errors: _Errors) -> Any:
    if value is None:
        return None
    if not isinstance(value, list):
        errors.add(pointer, f"must be a list of e-mail addresses or null, got {_short(value)}")
        return _MISSING
    bad = [i for i, item in enumerate(value) if not isinstance(item, str) or not _EMAIL_RE.fullmatch(item)]
    for index in bad:
        errors.add(f"{pointer}/{index}", f"must be an e-mail address, got {_short(value[index])}")
    return _MISSING if bad else list(value)


def _global_location_number(value: Any, pointer: str, errors: _Errors) -> Any:
    # A GS1 GLN is 13 digits; the check digit is not verified.
    if value is None or (isinstance(value, str) and re.fullmatch(r"\d{13}", value)):
        return value
    errors.add(pointer, f"must be a 13-digit global location number (a string), got {_short(value)}")
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

# The purchasing entities. Sources: reference/sp-api-vendor.md "2. Optiply side" (Optiply's ETL models and
# target-optiply-v2); required = required there. Where those only coerce (ints, 1-365, >= 1), we refuse.
_SYNCED_TO = _Field(_timestamp(nullable=True))

SUPPLIER_FIELDS: dict[str, _Field] = {
    "name": _Field(_name, required=True),
    "remoteId": _Field(_remote_id, required=True),
    "emails": _Field(_emails),
    "ignored": _Field(_boolean, default=False),
    "deliveryTime": _Field(_days),
    "userReplenishmentPeriod": _Field(_days),
    "fixedCosts": _Field(_price),
    "minimumOrderValue": _Field(_price),
    "type": _Field(_choice("vendor", "producer")),
    "globalLocationNumber": _Field(_global_location_number),
    "remoteDataSyncedToDate": _SYNCED_TO,
    # target-optiply-v2 sends these too; their meaning is undocumented, so only their types are checked.
    "reactingToLostSales": _Field(_boolean, default=False),
    "lostSalesReaction": _Field(_integer(nullable=True)),
    "lostSalesMovReaction": _Field(_integer(nullable=True)),
    "backorders": _Field(_boolean, default=False),
    "backorderThreshold": _Field(_integer(nullable=True, minimum=0)),
    "backordersReaction": _Field(_integer(nullable=True)),
    "maxLoadCapacity": _Field(_integer(nullable=True, minimum=0)),
    "containerVolume": _Field(_integer(nullable=True, minimum=0)),
}

SUPPLIER_PRODUCT_FIELDS: dict[str, _Field] = {
    "name": _Field(_name, required=True),
    "remoteId": _Field(_remote_id, required=True),
    "productId": _Field(_reference, required=True),
    "supplierId": _Field(_reference, required=True),
    "price": _Field(_price),
    "skuCode": _Field(_string),
    "articleCode": _Field(_string),
    "eanCode": _Field(_string),
    "status": _Field(_status, default="ENABLED"),
    # Optional but never null: a client that has no value leaves the attribute out (Optiply's ETL drops Nones).
    "lotSize": _Field(_integer(nullable=False, minimum=1), default=1),
    "minimumPurchaseQuantity": _Field(_integer(nullable=False, minimum=1), default=1),
    "deliveryTime": _Field(_days),
    "preferred": _Field(_boolean, default=False),
    "weight": _Field(_non_negative),
    "volume": _Field(_non_negative),
    "freeStock": _Field(_integer(nullable=True, minimum=0)),
    "availability": _Field(_boolean),
    "availabilityDate": _Field(_timestamp(nullable=True)),
    "remoteDataSyncedToDate": _SYNCED_TO,
}

BUY_ORDER_FIELDS: dict[str, _Field] = {
    "remoteId": _Field(_remote_id, required=True),
    "supplierId": _Field(_reference, required=True),
    "placed": _Field(_timestamp(nullable=False), required=True),
    "totalValue": _Field(_price, required=True),
    "completed": _Field(_timestamp(nullable=True)),
    # Left out (or null): placed + the supplier's deliveryTime, as Optiply computes it (vault, unverified).
    "expectedDeliveryDate": _Field(_timestamp(nullable=True)),
    "assembly": _Field(_boolean, default=False),
    "remoteDataSyncedToDate": _SYNCED_TO,
}

BUY_ORDER_LINE_FIELDS: dict[str, _Field] = {
    "buyOrderId": _Field(_reference, required=True),
    "productId": _Field(_reference, required=True),
    "quantity": _Field(_integer(nullable=False, minimum=1), required=True),
    "subtotalValue": _Field(_price, required=True),
    "remoteId": _Field(_remote_id),
    "expectedDeliveryDate": _Field(_timestamp(nullable=True)),
    "remoteDataSyncedToDate": _SYNCED_TO,
}

RECEIPT_LINE_FIELDS: dict[str, _Field] = {
    "buyOrderLineId": _Field(_reference, required=True),
    "occurred": _Field(_timestamp(nullable=False), required=True),
    "quantity": _Field(_integer(nullable=False, minimum=1), required=True),
    "remoteId": _Field(_remote_id),
    "remoteDataSyncedToDate": _SYNCED_TO,
}

# What each entity accepts in `attributes`; anything else is refused so a misspelt attribute shows up.
FIELDS: dict[str, dict[str, _Field]] = {
    "products": PRODUCT_FIELDS,
    "sellOrders": SELL_ORDER_FIELDS,
    "sellOrderLines": SELL_ORDER_LINE_FIELDS,
    "suppliers": SUPPLIER_FIELDS,
    "supplierProducts": SUPPLIER_PRODUCT_FIELDS,
    "buyOrders": BUY_ORDER_FIELDS,
    "buyOrderLines": BUY_ORDER_LINE_FIELDS,
    "receiptLines": RECEIPT_LINE_FIELDS,
}

# Attributes holding another record's Optiply id: attribute -> the entity that record must belong to.
REFERENCES: dict[str, dict[str, str]] = {
    "sellOrderLines": {"sellOrderId": "sellOrders", "productId": "products"},
    "supplierProducts": {"supplierId": "suppliers", "productId": "products"},
    "buyOrders": {"supplierId": "suppliers"},
    "buyOrderLines": {"buyOrderId": "buyOrders", "productId": "products"},
    "receiptLines": {"buyOrderLineId": "buyOrderLines"},
}
# A reference to a record that does not exist answers 404 with a pointer to the attribute (400 when other
# errors come with it). Optiply's own ETL accepts a 404 to POST receiptLines: that is how Optiply answers a
# receipt for a buy order line that is gone. Sell order lines keep the 400 this sandbox always answered.
_MISSING_REFERENCE_STATUS = {"sellOrderLines": 400}

# What deleting a record does to the records that reference it, per (referencing entity, attribute):
# "cascade" deletes them too, "refuse" answers 409 while any exist; pairs not listed are left alone (a sell
# order line keeps a deleted product's id, as this sandbox always allowed).
# - buyOrders -> buyOrderLines -> receiptLines cascade (the vault's Optiply API page).
# - supplierProducts cascade with their product or supplier, as Optiply would: a supplier product means
#   nothing without both, and Optiply's ETL (which deletes products, then suppliers, then supplierProducts)
#   accepts a 404 to PATCH supplierProducts, the answer it gets for one that went with its product.
# - A supplier with buy orders, or a product on a buy order line, cannot be deleted (GUESS): the orders are
#   purchase history, and dropping it silently or leaving a dangling id would both be worse.
_ON_DELETE: dict[tuple[str, str], str] = {
    ("sellOrderLines", "sellOrderId"): "cascade",
    ("buyOrderLines", "buyOrderId"): "cascade",
    ("receiptLines", "buyOrderLineId"): "cascade",
    ("supplierProducts", "supplierId"): "cascade",
    ("supplierProducts", "productId"): "cascade",
    ("buyOrders", "supplierId"): "refuse",
    ("buyOrderLines", "productId"): "refuse",
}

# Attribute combinations no two records of an entity may share: a second one answers 409.
_UNIQUE: dict[str, tuple[str, ...]] = {"supplierProducts": ("supplierId", "productId")}


@dataclass(frozen=True)
class _Nested:
    """An order whose POST may carry its lines in `orderLines`; each becomes a record of `line_entity`."""

    line_entity: str
    parent_key: str
    # What a nested line may carry; the order's `orderLines` echoes them with each line's id.
    fields: tuple[str, ...]
    # True: each line is a resource object {"type": line_entity, "attributes": {...}} (target-optiply-v2's
    # buy orders); False: the attributes themselves (sell orders, as this project posts them).
    resource_objects: bool


_NESTED: dict[str, _Nested] = {
    "sellOrders": _Nested("sellOrderLines", "sellOrderId", ("productId", "quantity", "subtotalValue"), False),
    "buyOrders": _Nested(
        "buyOrderLines",
        "buyOrderId",
        ("productId", "quantity", "subtotalValue", "expectedDeliveryDate", "remoteId"),
        True,
    ),
}
_ORDER_OF_LINE = {nested.line_entity: order for order, nested in _NESTED.items()}


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

    `products`, `sell_orders`, `sell_order_lines`, `suppliers`, `supplier_products`, `buy_orders`,
    `buy_order_lines` and `receipt_lines` map id -> stored attributes (orders carry their `orderLines`
    list); `table(entity)` finds them by entity name. Read them under `backend.lock` or through
    `snapshot()`/`find()` while a server runs.
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
        write_rate_limit: float | None = None,
        write_burst: float = 1.0,
        rate_limit_retry_after_every: int = 1,
        latency_seconds: float = 0.0,
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
        # Called with each write's log entry (see writes()) once it is handled, before it is answered: the
        # soak kills the sync there, so the write is applied but the sync never learns it.
        self.on_write: Callable[[dict[str, Any]], None] | None = None
        # How late an `optiply_slow_answer` fault answers (the client's timeout is 30 s: this is latency).
        self.slow_answer_seconds = 0.5
        self.lock = threading.RLock()
        # Optiply's write rate limit (off by default): a token bucket of `write_burst` writes refilled at
        # `write_rate_limit` writes/s; a write finding it empty gets a 429. Every
        # `rate_limit_retry_after_every`-th such 429 carries Retry-After (seconds until the next token, as a
        # decimal), the others none, as real APIs do; 0 never sends it.
        self.write_rate_limit = write_rate_limit
        self.write_burst = max(1.0, write_burst)
        self.rate_limit_retry_after_every = rate_limit_retry_after_every
        # Seconds every /v1 request takes before it is handled (off by default), so concurrency matters.
        self.latency_seconds = latency_seconds
        self._bucket_lock = threading.Lock()
        self._bucket_tokens = self.write_burst
        self._bucket_at = time.monotonic()
        self.rate_limited = 0  # 429s the write rate limit answered
        self._clear_state()

    def take_write_token(self) -> float | None:
        """None when the write may proceed, else the seconds until the rate limit lets the next one in."""
        if not self.write_rate_limit:
            return None
        with self._bucket_lock:
            now = time.monotonic()
            tokens = min(
                self.write_burst, self._bucket_tokens + (now - self._bucket_at) * self.write_rate_limit
            )
            self._bucket_at = now
            if tokens >= 1.0:
                self._bucket_tokens = tokens - 1.0
                return None
            self._bucket_tokens = tokens
            self.rate_limited += 1
            return (1.0 - tokens) / self.write_rate_limit

    def _clear_state(self) -> None:
        self.products: dict[int, dict[str, Any]] = {}
        self.sell_orders: dict[int, dict[str, Any]] = {}
        self.sell_order_lines: dict[int, dict[str, Any]] = {}
        self.suppliers: dict[int, dict[str, Any]] = {}
        self.supplier_products: dict[int, dict[str, Any]] = {}
        self.buy_orders: dict[int, dict[str, Any]] = {}
        self.buy_order_lines: dict[int, dict[str, Any]] = {}
        self.receipt_lines: dict[int, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        # Writes received per entity (`/v1/<entity>...`), answered or not: kept as they come, so a soak
        # polling them every few milliseconds does not walk a request log that grows all run long.
        self.writes_received: Counter[str] = Counter()
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
        table: dict[int, dict[str, Any]] = getattr(self, _TABLE_ATTRIBUTES[entity])
        return table

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
            self.writes_received.clear()

    def _log(self, entry: dict[str, Any], is_write: bool) -> None:
        with self.lock:
            self.requests.append(entry)
            if is_write:
                self.writes_received[entry["path"][len("/v1/") :].split("/", 1)[0]] += 1

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

    def preload(
        self, entity: str, records: Iterable[dict[str, Any]], coupling_id: int | None = OTHER_COUPLING_ID
    ) -> list[int]:
        """Create records as another system (coupling) would have posted them; returns their ids.

        Each is checked like a POST: attributes, references, uniqueness and nested `orderLines`; a bad one
        raises ValueError (the ones before it stay).
        """
        if entity not in ENTITIES:
            raise ValueError(f"unknown entity {entity!r}; one of {ENTITIES}")
        ids = []
        with self.lock:
            for attributes in records:
                try:
                    ids.append(self._create(entity, dict(_decimalize(attributes)), coupling_id))
                except ApiError as exc:
                    raise ValueError(
                        f"invalid preloaded {_LABELS[entity]} {attributes!r}: {exc.errors}"
                    ) from None
        return ids

    def preload_products(
        self, products: Iterable[dict[str, Any]], coupling_id: int | None = OTHER_COUPLING_ID
    ) -> list[int]:
        """Create products as another shop system (coupling) would have; returns their ids."""
        return self.preload("products", products, coupling_id)

    def preload_sell_orders(self, orders: Iterable[dict[str, Any]], coupling_id: int | None) -> list[int]:
        """Create sell orders (nested `orderLines` included) as another integration posted them; returns ids."""
        return self.preload("sellOrders", orders, coupling_id)

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
        with self.lock:
            rid = self._create(entity, attributes, int(coupling) if coupling else None)
            return _jsonapi(201, {"data": self._resource(entity, rid)})

    def update_record(self, entity: str, record_id: str, request: Request) -> Response:
        _check_content_type(request)
        with self.lock:
            rid = self._existing_id(entity, record_id)
        attributes = _document_attributes(entity, request, url_id=rid)
        errors = _Errors()
        nested = _NESTED.get(entity)
        if nested is not None and "orderLines" in attributes:
            attributes.pop("orderLines")
            errors.add(
                f"{_ATTRIBUTES_POINTER}/orderLines",
                f"orderLines cannot be changed on an existing {_LABELS[entity]}; use {nested.line_entity}",
                code="read_only",
            )
        clean = _validate_attributes(
            FIELDS[entity], attributes, creating=False, errors=errors, pointer=_ATTRIBUTES_POINTER
        )
        with self.lock:
            rid = self._existing_id(entity, record_id)
            self._check_references(entity, clean, errors, _ATTRIBUTES_POINTER)
            errors.raise_any()
            record = self.table(entity)[rid]
            self._check_unique(entity, {**record, **clean}, rid)
            order_entity = _ORDER_OF_LINE.get(entity)
            previous_order = record.get(_NESTED[order_entity].parent_key) if order_entity else None
            if "remoteId" in clean and clean["remoteId"] != record.get("remoteId"):
                self._update_remote_id_map(entity, rid, clean["remoteId"], request.param("couplingId"))
            record.update(clean)
            if order_entity is not None:
                self._refresh_order_lines(order_entity, previous_order)
                self._refresh_order_lines(order_entity, record[_NESTED[order_entity].parent_key])
            return _jsonapi(200, {"data": self._resource(entity, rid)})

    def delete_record(self, entity: str, record_id: str) -> Response:
        with self.lock:
            rid = self._existing_id(entity, record_id)
            doomed = self._cascade(entity, rid)
            self._refuse_if_referenced(entity, rid, doomed)
            orders_to_refresh = set()
            for doomed_entity, doomed_id in doomed:
                record = self.table(doomed_entity).pop(doomed_id)
                self._meta[doomed_entity].pop(doomed_id)
                order_entity = _ORDER_OF_LINE.get(doomed_entity)
                if order_entity is not None:
                    orders_to_refresh.add((order_entity, record[_NESTED[order_entity].parent_key]))
            for order_entity, order_id in orders_to_refresh:
                self._refresh_order_lines(order_entity, order_id)
        return Response(204)

    # -- internals (called with the lock held) ----------------------------------------------------------

    def _create(self, entity: str, attributes: dict[str, Any], coupling_id: int | None) -> int:
        """Validate `attributes` as a POST body's and store the record (and its nested lines); its id."""
        errors = _Errors()
        nested = _NESTED.get(entity)
        lines_raw = attributes.pop("orderLines", None) if nested is not None else None
        clean = _validate_attributes(
            FIELDS[entity], attributes, creating=True, errors=errors, pointer=_ATTRIBUTES_POINTER
        )
        lines = self._validate_nested_lines(nested, lines_raw, errors) if nested is not None else []
        self._check_references(entity, clean, errors, _ATTRIBUTES_POINTER)
        errors.raise_any()
        self._check_unique(entity, clean, None)
        if entity == "buyOrders" and clean["expectedDeliveryDate"] is None:
            clean["expectedDeliveryDate"] = self._expected_delivery(clean)
        rid = self._insert(entity, clean, coupling_id)
        if nested is not None:
            line_defaults = {key: spec.default for key, spec in FIELDS[nested.line_entity].items()}
            for line in lines:
                self._insert(
                    nested.line_entity, {**line_defaults, **line, nested.parent_key: rid}, coupling_id
                )
            self._refresh_order_lines(entity, rid)
        order_entity = _ORDER_OF_LINE.get(entity)
        if order_entity is not None:
            self._refresh_order_lines(order_entity, clean[_NESTED[order_entity].parent_key])
        return rid

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

    def _validate_nested_lines(self, nested: _Nested, lines: Any, errors: _Errors) -> list[dict[str, Any]]:
        pointer = f"{_ATTRIBUTES_POINTER}/orderLines"
        if lines is None:
            return []
        if not isinstance(lines, list):
            errors.add(pointer, f"must be a list of order lines, got {_short(lines)}")
            return []
        fields = {key: FIELDS[nested.line_entity][key] for key in nested.fields}
        clean_lines = []
        for index, line in enumerate(lines):
            line_pointer = f"{pointer}/{index}"
            if not isinstance(line, dict):
                errors.add(line_pointer, f"must be an object, got {_short(line)}")
                continue
            attributes_pointer, attributes = line_pointer, line
            if nested.resource_objects:
                attributes_pointer, attributes = f"{line_pointer}/attributes", line.get("attributes")
                if not self._nested_resource_ok(nested, line, line_pointer, errors):
                    continue
            clean = _validate_attributes(
                fields, attributes, creating=True, errors=errors, pointer=attributes_pointer
            )
            self._check_references(nested.line_entity, clean, errors, attributes_pointer)
            clean_lines.append(clean)
        return clean_lines

    @staticmethod
    def _nested_resource_ok(nested: _Nested, line: dict[str, Any], pointer: str, errors: _Errors) -> bool:
        """Whether a nested line is a resource object of the line entity with an attributes object."""
        shape = f"{{'type': '{nested.line_entity}', 'attributes': {{...}}}}"
        if "type" not in line and "attributes" not in line:
            errors.add(
                pointer, f"must be a resource object {shape}, got {_short(line)}", code="invalid_document"
            )
            return False
        ok = True
        for key in line:
            if key not in ("type", "attributes"):
                errors.add(
                    f"{pointer}/{key}", f"unknown member {key!r}; a line is {shape}", code="unknown_member"
                )
                ok = False
        if line.get("type") != nested.line_entity:
            errors.add(
                f"{pointer}/type",
                f"must be {nested.line_entity!r}, got {_short(line.get('type'))}",
                code="invalid_type",
            )
            ok = False
        if not isinstance(line.get("attributes"), dict):
            errors.add(f"{pointer}/attributes", "must be an object", code="invalid_document")
            ok = False
        return ok

    def _check_references(
        self, entity: str, attributes: dict[str, Any], errors: _Errors, pointer: str
    ) -> None:
        status = _MISSING_REFERENCE_STATUS.get(entity, 404)
        for attribute, target in REFERENCES.get(entity, {}).items():
            value = attributes.get(attribute)
            if value is not None and value not in self.table(target):
                errors.add(
                    f"{pointer}/{attribute}",
                    f"{_LABELS[target]} {value} does not exist",
                    code="unknown_reference",
                    status=status,
                )

    def _check_unique(self, entity: str, record: dict[str, Any], rid: int | None) -> None:
        keys = _UNIQUE.get(entity)
        if keys is None:
            return
        wanted = tuple(record.get(key) for key in keys)
        for other_id, other in self.table(entity).items():
            if other_id != rid and tuple(other.get(key) for key in keys) == wanted:
                pairs = " and ".join(f"{key} {value}" for key, value in zip(keys, wanted, strict=True))
                raise ApiError.single(
                    409,
                    "duplicate",
                    f"a {_LABELS[entity]} with {pairs} exists already: id {other_id}",
                    pointer=f"{_ATTRIBUTES_POINTER}/{keys[-1]}",
                )

    def _cascade(self, entity: str, rid: int) -> list[tuple[str, int]]:
        """The record and every record deleting it deletes too, parents before children."""
        doomed = [(entity, rid)]
        seen = set(doomed)
        for parent_entity, parent_id in doomed:  # grows while iterating: a breadth-first walk
            for (child_entity, attribute), rule in _ON_DELETE.items():
                if rule != "cascade" or REFERENCES[child_entity][attribute] != parent_entity:
                    continue
                for child_id, child in sorted(self.table(child_entity).items()):
                    if child.get(attribute) == parent_id and (child_entity, child_id) not in seen:
                        seen.add((child_entity, child_id))
                        doomed.append((child_entity, child_id))
        return doomed

    def _refuse_if_referenced(self, entity: str, rid: int, doomed: list[tuple[str, int]]) -> None:
        doomed_set = set(doomed)
        for (child_entity, attribute), rule in _ON_DELETE.items():
            if rule != "refuse":
                continue
            target = REFERENCES[child_entity][attribute]
            targets = {doomed_id for doomed_entity, doomed_id in doomed if doomed_entity == target}
            blockers = sorted(
                child_id
                for child_id, child in self.table(child_entity).items()
                if child.get(attribute) in targets and (child_entity, child_id) not in doomed_set
            )
            if blockers:
                shown = ", ".join(map(str, blockers[:5])) + (", ..." if len(blockers) > 5 else "")
                raise ApiError.single(
                    409,
                    "in_use",
                    f"{_LABELS[entity]} {rid} cannot be deleted: {len(blockers)} {child_entity} reference "
                    f"it through {attribute} ({shown}); delete those first",
                )

    def _expected_delivery(self, order: dict[str, Any]) -> str | None:
        supplier = self.suppliers.get(order["supplierId"])
        days = supplier.get("deliveryTime") if supplier else None
        if days is None:
            return None
        placed = datetime.strptime(order["placed"], PLACED_FORMAT)
        return (placed + timedelta(days=days)).strftime(PLACED_FORMAT)

    def _refresh_order_lines(self, order_entity: str, order_id: int | None) -> None:
        nested = _NESTED[order_entity]
        order = self.table(order_entity).get(order_id) if order_id is not None else None
        if order is None:
            return
        order["orderLines"] = [
            {"id": line_id, **{key: line.get(key) for key in nested.fields}}
            for line_id, line in sorted(self.table(nested.line_entity).items())
            if line[nested.parent_key] == order_id
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
        if backend.latency_seconds > 0:
            time.sleep(backend.latency_seconds)
        if request.method in ("POST", "PATCH", "DELETE"):
            wait = backend.take_write_token()
            if wait is not None:
                entry["fault"] = "optiply_rate_limit"
                every = backend.rate_limit_retry_after_every
                headers = (
                    {"Retry-After": f"{wait:.3f}"} if every and backend.rate_limited % every == 0 else None
                )
                return jsonapi_error_response(429, "too_many_requests", "Rate limit exceeded", headers)
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
        if faults.draw("optiply_slow_answer"):  # applied, answered late (a write: after on_write)
            entry["fault"] = "optiply_slow_answer"
            entry["slow"] = True
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
            backend._log(entry, is_write)
            raise
        if entry["answered"]:
            entry["status"] = response.status
            if is_write and request.method == "DELETE":
                entry["id"] = int(request.path_params["id"]) if response.status == 204 else None
            elif is_write:
                entry["id"] = _response_id(response)
        backend._log(entry, is_write)
        if is_write and backend.on_write is not None:
            backend.on_write(entry)
        if entry.get("slow"):
            time.sleep(backend.slow_answer_seconds)
        return response

    return SandboxHTTPServer(host, port, dispatch, jsonapi_error_response)
