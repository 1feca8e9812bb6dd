"""The project's Optiply API client: cached OAuth tokens, JSON:API paging, retries and exactly-once creates.

It knows nothing of Dagster; resources build it from configuration and assets call it.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import json
import logging
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import httpx

from amazon_optiply.clients.tls import tls_context

logger = logging.getLogger(__name__)

JSONAPI_CONTENT_TYPE = "application/vnd.api+json"
MAX_PAGE_SIZE = 100


class OptiplyError(Exception):
    """Base of every error this client raises; messages never carry credentials or tokens."""


class OptiplyAuthError(OptiplyError):
    """Optiply would not give us a usable token (bad credentials, or a valid token we no longer hold)."""


class OptiplyUnavailableError(OptiplyError):
    """Optiply kept answering 429/5xx or dropping connections until the retry budget ran out."""


class OptiplyValidationError(OptiplyError):
    """Optiply refused a request for good (a 4xx other than 401/429); sending it again won't help."""

    def __init__(self, message: str, *, entity: str, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.entity = entity
        self.status = status
        self.errors = errors

    @property
    def pointers(self) -> list[str]:
        return [p for p in (_error_location(e) for e in self.errors) if p]


class OptiplyNotFoundError(OptiplyValidationError):
    """The record (or entity), or a record an attribute refers to, does not exist: a 404."""


class OptiplyConflictError(OptiplyValidationError):
    """A 409: the record would duplicate one Optiply holds (a second supplierProduct for the same supplier
    and product), or a delete Optiply refuses while other records still refer to the record."""


class TokenStore(Protocol):
    """Where tokens outlive the client: Optiply refuses a new password grant while an old token is valid."""

    def load(self) -> dict[str, Any] | None: ...

    def save(self, token: dict[str, Any]) -> None: ...


class InMemoryTokenStore:
    """Keeps the token for this process only; fine for tests and one-shot scripts."""

    def __init__(self) -> None:
        self._token: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def load(self) -> dict[str, Any] | None:
        with self._lock:
            return dict(self._token) if self._token else None

    def save(self, token: dict[str, Any]) -> None:
        with self._lock:
            self._token = dict(token)

    def __repr__(self) -> str:
        return "InMemoryTokenStore()"


class FileTokenStore:
    """Keeps the token in a JSON file (mode 0600) so the next run or process reuses it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Any] | None:
        try:
            token = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return token if isinstance(token, dict) else None

    def save(self, token: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Write-then-rename so a crash mid-write never leaves a half token that would force a password grant.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(token, handle)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self.path)!r})"


class _Secret:
    """A credential that prints as *** in reprs, f-strings and tracebacks' locals."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__


class _RefreshRejected(Exception):
    pass


@dataclass
class _Attempt:
    """How one HTTP attempt ended when it did not succeed outright."""

    response: httpx.Response | None
    transient: bool = False
    # True when the request may have reached Optiply and been applied although we saw no answer.
    maybe_applied: bool = False
    problem: str = ""
    retry_after: float | None = None


# Failures raised before a request byte left this machine: a retry cannot duplicate anything.
_NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class _Sent:
    at: float  # monotonic time the write left
    rate: float  # the rate in force when it took its slot
    epoch: int = 0  # how many decreases had happened when it took its slot


class AdaptiveWriteRate:
    """The writes/s a client's threads share, adapted to Optiply's answers (AIMD with fast recovery).

    Each write takes the next slot of the current rate (`acquire`). Good answers raise the rate: by one
    write/s per answer (doubling about every second) until the first trouble, and again until back at
    `recovery` times the rate that met trouble last; above that by `increase` writes/s per second, probing
    slowly for more. Trouble (a 429, a 5xx, a dropped connection, or latency above twice its usual level)
    multiplies the rate by `decrease` at once; answers to writes sent before that decrease do not cut it
    again (they took their slots at the old rate). A Retry-After holds every thread's next slot until it passes.
    """

    def __init__(
        self,
        start: float,
        ceiling: float,
        *,
        floor: float = 0.2,
        increase: float = 1.0,
        decrease: float = 0.5,
        recovery: float = 0.9,
        max_pause: float = 60.0,
    ) -> None:
        self.ceiling = max(ceiling, floor)
        self.floor = floor
        self.increase = increase
        self.decrease = decrease
        self.recovery = recovery
        self.max_pause = max_pause
        self.rate = min(max(start, floor), self.ceiling)
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._last_trouble_rate: float | None = None
        self._latency: float | None = None  # moving average of write latency
        self._latency_floor: float | None = None  # its usual level
        self.decreases = 0
        self.pauses = 0

    def acquire(self) -> _Sent:
        """Wait for this write's slot; returns what `good`/`bad` need to judge its answer."""
        while True:
            with self._lock:
                now = time.monotonic()
                slot = max(now, self._next_slot)
                self._next_slot = slot + 1.0 / self.rate
                rate, epoch = self.rate, self.decreases
            if slot > now:
                time.sleep(slot - now)
            with self._lock:
                # A decrease while we waited: the slot was the old rate's; queue again at the new one.
                if epoch == self.decreases:
                    return _Sent(time.monotonic(), rate, epoch)

    def good(self, sent: _Sent) -> None:
        latency = time.monotonic() - sent.at
        with self._lock:
            self._latency = latency if self._latency is None else 0.9 * self._latency + 0.1 * latency
            if self._latency_floor is None or self._latency < self._latency_floor:
                self._latency_floor = self._latency
            else:  # let the usual level follow a lasting change slowly
                self._latency_floor += (self._latency - self._latency_floor) * 0.002
            if self._latency > 2 * self._latency_floor + 0.05 and sent.epoch == self.decreases:
                self._decrease(sent)
                self._latency = self._latency_floor
                return
            trouble = self._last_trouble_rate
            if trouble is None or self.rate < self.recovery * trouble:
                target = self.ceiling if trouble is None else min(self.ceiling, self.recovery * trouble)
                self.rate = min(target, self.rate + 1.0)
            else:
                self.rate = min(self.ceiling, self.rate + self.increase / self.rate)

    def bad(self, sent: _Sent, retry_after: float | None) -> None:
        with self._lock:
            if sent.epoch == self.decreases:
                self._decrease(sent)
            if retry_after is not None and retry_after > 0:
                self.pauses += 1
                self._paused_until = max(
                    self._paused_until, time.monotonic() + min(retry_after, self.max_pause)
                )
                self._next_slot = max(self._next_slot, self._paused_until)

    def _decrease(self, sent: _Sent) -> None:
        self._last_trouble_rate = sent.rate
        self.rate = max(self.floor, min(self.rate, sent.rate) * self.decrease)
        self._next_slot = max(self._paused_until, time.monotonic() + 1.0 / self.rate)
        self.decreases += 1


class OptiplyClient:
    """Talks to one Optiply account's JSON:API as one coupling (the integration's link to a shop system).

        Records come back flattened: `{"id": int, **attributes, "remoteIdMap": {...}, "uuid": ...}`.

        Retries: 429, 5xx, connection errors and timeouts are retried up to `max_attempts` times with
        exponential backoff and full jitter (at least Retry-After when Optiply sends it), then
        `OptiplyUnavailableError`. Other 4xx raise `OptiplyValidationError` at once; a 401 refreshes the token
        once and retries.

    Write rate: writes (POST/PATCH/DELETE) share one adaptive rate across the client's threads (see
    `AdaptiveWriteRate`): it starts at one write per `min_write_interval` seconds (default 0.2 s, 5/s; 0 turns
    pacing off), rises while Optiply answers well, up to `max_writes_per_second`, halves at once on a 429, a
    5xx, a dropped connection or rising latency, and a Retry-After holds every thread's next write until then.
    `max_concurrent_writes` is how many writes the deliveries keep in flight (see amazon_optiply.delivery).

        Exactly-once creates: see `create`.
    """

    def __init__(
        self,
        api_url: str,
        token_url: str,
        username: str,
        password: str,
        client_id: str,
        client_secret: str,
        account_id: int,
        coupling_id: int,
        *,
        token_store: TokenStore | None = None,
        max_attempts: int = 6,
        backoff_base: float = 0.2,
        backoff_max: float = 30.0,
        max_retry_after: float = 60.0,
        timeout: float = 30.0,
        min_write_interval: float = 0.2,
        max_writes_per_second: float = 20.0,
        max_concurrent_writes: int = 4,
        token_refresh_margin: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.api_url = api_url.rstrip("/")
        self.token_url = token_url
        self.username = username
        self._password = _Secret(password)
        self.client_id = client_id
        self._client_secret = _Secret(client_secret)
        self.account_id = account_id
        self.coupling_id = coupling_id
        self.token_store: TokenStore = token_store if token_store is not None else InMemoryTokenStore()
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.min_write_interval = min_write_interval
        self.max_concurrent_writes = max(1, int(max_concurrent_writes))
        self.write_rate: AdaptiveWriteRate | None = (
            AdaptiveWriteRate(
                start=1.0 / min_write_interval, ceiling=max(max_writes_per_second, 1.0 / min_write_interval)
            )
            if min_write_interval > 0
            else None
        )
        self.token_refresh_margin = token_refresh_margin
        self._http = httpx.Client(timeout=timeout, transport=transport, verify=tls_context())
        self._token: dict[str, Any] | None = None
        self._token_lock = threading.RLock()
        self._rng = random.Random()
        # Stored tokens carry a fingerprint so a store shared by mistake never hands us another login's token.
        self._token_key = hashlib.sha256(f"{token_url}\0{client_id}\0{username}".encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return (
            f"OptiplyClient(api_url={self.api_url!r}, username={self.username!r}, "
            f"account_id={self.account_id}, coupling_id={self.coupling_id})"
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OptiplyClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- public API -------------------------------------------------------------------------------------

    def iter_records(
        self,
        entity: str,
        filters: dict[str, str] | None = None,
        page_size: int = MAX_PAGE_SIZE,
        sort: str = "id",
    ) -> Iterator[dict[str, Any]]:
        """Every record of `entity` matching `filters`, paging until a short page.

        `filters` keys are attribute names (`{"status": "ENABLED"}` -> `filter[status]=ENABLED`), optionally
        with an operator (`{"stockLevel[GT]": "0"}` -> `filter[stockLevel][GT]=0`); values are sent as text.
        Sorting by id keeps offsets stable while other writers append records.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
        params: dict[str, Any] = {"page[limit]": page_size, "sort": sort, **_filter_params(filters or {})}
        seen: set[int] = set()
        offset = 0
        while True:
            response = self._send("GET", entity, entity=entity, params={**params, "page[offset]": offset})
            page = self._json(response, entity).get("data") or []
            for resource in page:
                record = _flatten(resource)
                # A record inserted before our offset shifts the next page by one; never yield it twice.
                if record["id"] not in seen:
                    seen.add(record["id"])
                    yield record
            if len(page) < page_size:
                return
            offset += page_size

    def get(self, entity: str, record_id: int) -> dict[str, Any]:
        """One record; OptiplyNotFoundError when it does not exist."""
        response = self._send("GET", f"{entity}/{int(record_id)}", entity=entity)
        return _flatten(self._json(response, entity)["data"])

    def find_by_remote_id(
        self, entity: str, remote_id: str, *, own_coupling_only: bool = False
    ) -> dict[str, Any] | None:
        """The record with this remoteId, preferring one our coupling created (lowest id first).

        With `own_coupling_only`, a record another shop system filed under the same remoteId is ignored,
        as long as Optiply reports `remoteIdMap` at all.
        """
        candidates = list(self.iter_records(entity, {"remoteId": remote_id}))
        own = [r for r in candidates if (r.get("remoteIdMap") or {}).get(str(self.coupling_id)) == remote_id]
        if own:
            return own[0]
        if own_coupling_only and any("remoteIdMap" in r for r in candidates):
            return None
        return candidates[0] if candidates else None

    def create(self, entity: str, attributes: dict[str, Any]) -> int:
        """POST a new record and return its Optiply id, without ever creating it twice when it has a remoteId.

        Any entity: `attributes` are sent as they are, nested order lines included (`orderLines` of a sell
        order as plain attribute objects; of a buy order as resource objects, see `nested_lines`). The lines
        are created with the order, so they share its exactly-once protection.

        A POST whose answer is lost (a connection error after the request was sent, or a 5xx) may still
        have been applied, and Optiply has no upsert. So before each retry that follows such an attempt, and
        once more before giving up, the client looks the record up by `remoteId` (a record of our coupling)
        and returns that id instead of posting again. Records without a `remoteId` get no such protection:
        a lost answer can duplicate them.
        """
        remote_id = attributes.get("remoteId")
        recover: Callable[[], int | None] | None = None
        if remote_id is not None:

            def recover() -> int | None:
                found = self.find_by_remote_id(entity, str(remote_id), own_coupling_only=True)
                if found is not None:
                    logger.info(
                        "Optiply had applied a create whose answer was lost: %s %s", entity, found["id"]
                    )
                return found["id"] if found is not None else None

        result = self._request(
            "POST",
            entity,
            entity=entity,
            params={"accountId": self.account_id, "couplingId": self.coupling_id},
            body={"data": {"type": entity, "attributes": attributes}},
            recover=recover,
        )
        if isinstance(result, int):
            return result
        return int(self._json(result, entity)["data"]["id"])

    def update(self, entity: str, record_id: int, attributes: dict[str, Any]) -> None:
        """PATCH only the given attributes; a PATCH is idempotent so every transient failure is retried."""
        self._send(
            "PATCH",
            f"{entity}/{int(record_id)}",
            entity=entity,
            body={"data": {"type": entity, "id": str(int(record_id)), "attributes": attributes}},
        )

    def delete(self, entity: str, record_id: int, *, missing_ok: bool = False) -> None:
        try:
            self._send("DELETE", f"{entity}/{int(record_id)}", entity=entity)
        except OptiplyNotFoundError:
            if not missing_ok:
                raise

    # -- HTTP with retries ------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        entity: str,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> httpx.Response:
        result = self._request(method, path, entity=entity, params=params, body=body)
        assert isinstance(result, httpx.Response)  # only a recover callback can turn the answer into an id
        return result

    def _request(
        self,
        method: str,
        path: str,
        *,
        entity: str,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        recover: Callable[[], int | None] | None = None,
    ) -> httpx.Response | int:
        content = _encode_body(body, entity) if body is not None else None
        url = f"{self.api_url}/{path}"
        maybe_applied = False
        last: _Attempt | None = None
        for attempt_number in range(1, self.max_attempts + 1):
            if maybe_applied and recover is not None:
                recovered = recover()
                if recovered is not None:
                    return recovered
            last = self._attempt(method, url, entity, params, content)
            if not last.transient:
                assert last.response is not None
                return last.response
            maybe_applied = maybe_applied or last.maybe_applied
            if attempt_number == self.max_attempts:
                break
            delay = self._backoff(attempt_number, last.retry_after)
            logger.warning(
                "Optiply %s %s failed (%s); retry %d of %d in %.2fs",
                method,
                path,
                last.problem,
                attempt_number,
                self.max_attempts - 1,
                delay,
            )
            time.sleep(delay)
        if maybe_applied and recover is not None:
            recovered = recover()
            if recovered is not None:
                return recovered
        problem = last.problem if last else "no attempt made"
        raise OptiplyUnavailableError(
            self._scrub(
                f"Optiply {method} {path} still failing after {self.max_attempts} attempts: {problem}"
            )
        )

    def _attempt(
        self, method: str, url: str, entity: str, params: dict[str, Any] | None, content: bytes | None
    ) -> _Attempt:
        """One request, plus the single token refresh a 401 earns; raises on permanent errors."""
        for refreshed in (False, True):
            access_token = self._access_token()
            headers = {"Authorization": f"Bearer {access_token}", "Accept": JSONAPI_CONTENT_TYPE}
            if content is not None:
                headers["Content-Type"] = JSONAPI_CONTENT_TYPE
            rate = self.write_rate if method != "GET" else None
            sent = rate.acquire() if rate is not None else None
            try:
                response = self._http.request(method, url, params=params, content=content, headers=headers)
            except httpx.TransportError as exc:
                if rate is not None and sent is not None:
                    rate.bad(sent, None)
                return _Attempt(
                    None,
                    transient=True,
                    maybe_applied=not isinstance(exc, _NOT_SENT_ERRORS),
                    problem=self._scrub(f"{type(exc).__name__}: {exc}"),
                )
            status = response.status_code
            if status == 401:
                if refreshed:
                    raise OptiplyAuthError(
                        self._scrub(f"Optiply answered 401 to {method} {entity} even with a fresh token: ")
                        + self._scrub(_error_summary(response))
                    )
                self._renew_after_unauthorized(access_token)
                continue
            if rate is not None and sent is not None:
                if status == 429 or status >= 500:
                    rate.bad(sent, _retry_after_seconds(response.headers.get("Retry-After")))
                else:
                    rate.good(sent)
            if status == 429 or status >= 500:
                return _Attempt(
                    response,
                    transient=True,
                    maybe_applied=status >= 500,
                    problem=f"HTTP {status}",
                    retry_after=_retry_after_seconds(response.headers.get("Retry-After")),
                )
            if status >= 400:
                raise self._permanent_error(method, entity, response)
            return _Attempt(response)
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt_number: int, retry_after: float | None) -> float:
        jittered = self._rng.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (attempt_number - 1)))
        if retry_after is not None:
            return max(min(retry_after, self.max_retry_after), jittered)
        return jittered

    def _permanent_error(self, method: str, entity: str, response: httpx.Response) -> OptiplyValidationError:
        errors = _jsonapi_errors(response)
        parts = []
        for error in errors:
            location = _error_location(error)
            detail = error.get("detail") or error.get("title") or "invalid"
            parts.append(f"{location}: {detail}" if location else str(detail))
        summary = "; ".join(parts) or _error_summary(response)
        message = self._scrub(f"Optiply rejected {method} {entity} with {response.status_code}: {summary}")
        cls = {404: OptiplyNotFoundError, 409: OptiplyConflictError}.get(
            response.status_code, OptiplyValidationError
        )
        return cls(message, entity=entity, status=response.status_code, errors=errors)

    def _json(self, response: httpx.Response, entity: str) -> dict[str, Any]:
        try:
            document = response.json()
        except ValueError:
            raise OptiplyError(
                f"Optiply answered {response.status_code} for {entity} with a body that is not JSON"
            ) from None
        if not isinstance(document, dict):
            raise OptiplyError(
                f"Optiply answered {entity} with a JSON {type(document).__name__}, not an object"
            )
        return document

    # -- tokens -----------------------------------------------------------------------------------------

    def _access_token(self) -> str:
        with self._token_lock:
            if self._token is None:
                self._token = self._load_stored_token()
            token = self._token
            if token is not None and time.time() < token["refresh_at"]:
                return token["access_token"]
            self._token = self._refresh_or_login(token)
            return self._token["access_token"]

    def _renew_after_unauthorized(self, rejected_access_token: str) -> None:
        with self._token_lock:
            if self._token is not None and self._token["access_token"] != rejected_access_token:
                return  # another thread already renewed it
            # Another process sharing the store may have refreshed (which revokes our access token).
            stored = self._load_stored_token()
            if (
                stored is not None
                and stored["access_token"] != rejected_access_token
                and time.time() < stored["expires_at"]
            ):
                self._token = stored
                return
            current = self._token or stored
            if current is not None:
                current = {**current, "refresh_at": 0.0, "expires_at": 0.0}
            self._token = self._refresh_or_login(current)

    def _refresh_or_login(self, token: dict[str, Any] | None) -> dict[str, Any]:
        if token is not None and token.get("refresh_token"):
            try:
                return self._grant("refresh_token", {"refresh_token": token["refresh_token"]})
            except _RefreshRejected:
                logger.info("Optiply refused the stored refresh token; asking for a new password grant")
            except OptiplyUnavailableError:
                if time.time() < token["expires_at"]:
                    return token  # the old token still works for a while; refresh again next call
                raise
        return self._grant("password", {"username": self.username, "password": self._password.value})

    def _grant(self, grant_type: str, form: dict[str, str]) -> dict[str, Any]:
        last_problem = ""
        for attempt_number in range(1, self.max_attempts + 1):
            retry_after = None
            try:
                response = self._http.post(
                    self.token_url,
                    params={"grant_type": grant_type},
                    data=form,
                    auth=(self.client_id, self._client_secret.value),
                    headers={"Accept": "application/json"},
                )
            except httpx.TransportError as exc:
                last_problem = self._scrub(f"{type(exc).__name__}: {exc}")
            else:
                status = response.status_code
                if status == 200:
                    return self._store_token(response, previous_refresh=form.get("refresh_token"))
                if status != 429 and status < 500:
                    raise self._grant_error(grant_type, response)
                last_problem = f"HTTP {status}"
                retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            if attempt_number < self.max_attempts:
                delay = self._backoff(attempt_number, retry_after)
                logger.warning("Optiply token endpoint failed (%s); retrying in %.2fs", last_problem, delay)
                time.sleep(delay)
        raise OptiplyUnavailableError(
            f"Optiply token endpoint still failing after {self.max_attempts} attempts: {last_problem}"
        )

    def _grant_error(self, grant_type: str, response: httpx.Response) -> Exception:
        try:
            body = response.json()
        except ValueError:
            body = {}
        error = body.get("error", "") if isinstance(body, dict) else ""
        description = str(body.get("error_description", "")) if isinstance(body, dict) else ""
        if grant_type == "refresh_token" and error == "invalid_grant":
            return _RefreshRejected()
        if "not expired" in description:
            return OptiplyAuthError(
                "Optiply refuses a new password-grant token while the one it issued earlier to this client "
                "is still valid, and this client holds no usable cached token (the token store lost it, or "
                "another process logged in with the same credentials and keeps its token elsewhere). Restore "
                "or share the token store, or wait until the earlier token expires (up to its expires_in, "
                "normally an hour)."
            )
        if response.status_code == 401 or error == "invalid_client":
            return OptiplyAuthError(
                f"Optiply rejected the client id/secret for client {self.client_id!r} (invalid_client)"
            )
        if error == "invalid_grant":
            return OptiplyAuthError(f"Optiply rejected the username/password for user {self.username!r}")
        return OptiplyAuthError(
            self._scrub(f"Optiply token endpoint answered {response.status_code} {error}: {description}")
        )

    def _store_token(self, response: httpx.Response, previous_refresh: str | None) -> dict[str, Any]:
        try:
            body = response.json()
            access_token = str(body["access_token"])
            expires_in = float(body.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError):
            raise OptiplyAuthError("Optiply's token endpoint answered 200 without an access_token") from None
        now = time.time()
        token = {
            "key": self._token_key,
            "access_token": access_token,
            "refresh_token": body.get("refresh_token") or previous_refresh,
            "expires_at": now + expires_in,
            # Refresh a margin before expiry, but never in the first half of a short-lived token's life.
            "refresh_at": now + max(expires_in - self.token_refresh_margin, expires_in / 2),
        }
        self.token_store.save(token)
        return token

    def _load_stored_token(self) -> dict[str, Any] | None:
        try:
            token = self.token_store.load()
        except Exception:  # a broken store must not stop the sync; we fall back to a fresh grant
            logger.warning("Could not read the Optiply token store; requesting a new token", exc_info=False)
            return None
        required = ("access_token", "expires_at", "refresh_at")
        if not token or token.get("key") != self._token_key or any(k not in token for k in required):
            return None
        return token

    def _scrub(self, text: str) -> str:
        """Mask every credential and token we hold, in case a server or library echoes one back."""
        values = [self._password.value, self._client_secret.value]
        token = self._token
        if token:
            values += [token.get("access_token") or "", token.get("refresh_token") or ""]
        for value in values:
            if value and len(value) >= 4:
                text = text.replace(value, "***")
        return text


# -- helpers --------------------------------------------------------------------------------------------


def nested_lines(line_entity: str, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order lines as resource objects for a POST's `orderLines`, the shape buy orders take:
    `[{"type": "buyOrderLines", "attributes": {...}}]`. (Sell orders take the attribute objects themselves.)"""
    return [{"type": line_entity, "attributes": dict(line)} for line in lines]


def _filter_params(filters: dict[str, str]) -> dict[str, str]:
    params = {}
    for key, value in filters.items():
        if key.startswith("filter["):
            params[key] = str(value)
            continue
        field, _, operator = key.partition("[")
        params[f"filter[{field}]" + (f"[{operator}" if operator else "")] = str(value)
    return params


def _flatten(resource: dict[str, Any]) -> dict[str, Any]:
    attributes = resource.get("attributes") or {}
    record: dict[str, Any] = {"id": int(resource["id"]), **attributes}
    for extra in ("remoteIdMap", "uuid"):
        if extra in resource:
            record[extra] = resource[extra]
    return record


def _json_default(value: Any) -> Any:
    # numpy/pandas scalars expose item(); Decimal keeps its value as a float.
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _encode_body(body: dict[str, Any], entity: str) -> bytes:
    try:
        return json.dumps(body, default=_json_default, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        # NaN is what a missing pandas value turns into; Optiply would answer 400 with a vaguer message.
        raise OptiplyValidationError(
            f"{entity} attributes cannot be sent as JSON ({exc}); replace NaN/Infinity with None",
            entity=entity,
            status=0,
            errors=[],
        ) from None


def _jsonapi_errors(response: httpx.Response) -> list[dict[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _error_location(error: dict[str, Any]) -> str | None:
    source = error.get("source")
    if not isinstance(source, dict):
        return None
    return source.get("pointer") or source.get("parameter")


def _error_summary(response: httpx.Response) -> str:
    errors = _jsonapi_errors(response)
    if errors:
        return "; ".join(str(e.get("detail") or e.get("title") or e) for e in errors)
    return f"HTTP {response.status_code} {response.text[:200]}"


def _retry_after_seconds(header: str | None) -> float | None:
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
