"""The adaptive write rate against the sandbox's Optiply rate limit, over real HTTP, and exactly-once under
concurrency: a delivery killed with writes in flight is settled by the next run, nothing twice, nothing lost."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from amazon_optiply.clients.optiply import AdaptiveWriteRate, OptiplyClient, _Sent
from amazon_optiply.delivery import deliver_records, run_writes
from amazon_optiply.sandbox.faults import FaultRates, Faults
from amazon_optiply.sandbox.http import SandboxHTTPServer
from amazon_optiply.sandbox.optiply import TOKEN_PATH, OptiplyBackend, build_optiply_server
from amazon_optiply.state import SyncState

USERNAME, PASSWORD, CLIENT_ID, CLIENT_SECRET = "rate@example.com", "pw-rate", "client-rate", "secret-rate"
ACCOUNT_ID, COUPLING_ID = 3, 42
MARKETPLACE = "ATVPDKIKX0DER"
WRITER = Path(__file__).with_name("kill_writer.py")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[OptiplyBackend, SandboxHTTPServer]]:
    backend = OptiplyBackend(USERNAME, PASSWORD, CLIENT_ID, CLIENT_SECRET, account_id=ACCOUNT_ID)
    server = build_optiply_server(backend, Faults(FaultRates(), seed=1))
    server.start_in_thread()
    yield backend, server
    server.shutdown()
    server.server_close()


@pytest.fixture
def backend(sandbox: tuple[OptiplyBackend, SandboxHTTPServer]) -> Iterator[OptiplyBackend]:
    backend = sandbox[0]
    backend.reset()
    yield backend
    backend.write_rate_limit = None
    backend.latency_seconds = 0.0
    backend.rate_limit_retry_after_every = 1
    backend.on_write = None
    backend.write_burst = 1.0


def limit(
    backend: OptiplyBackend, per_second: float, *, retry_after_every: int = 1, burst: float = 1
) -> None:
    backend.write_rate_limit = per_second
    backend.write_burst = burst
    backend.rate_limit_retry_after_every = retry_after_every
    backend._bucket_tokens, backend._bucket_at = backend.write_burst, time.monotonic()
    backend.rate_limited = 0


@pytest.fixture
def make_client(sandbox: tuple[OptiplyBackend, SandboxHTTPServer]) -> Iterator[Callable[..., OptiplyClient]]:
    clients: list[OptiplyClient] = []

    def make(**overrides: Any) -> OptiplyClient:
        client = OptiplyClient(
            **{
                "api_url": f"{sandbox[1].base_url}/v1",
                "token_url": f"{sandbox[1].base_url}{TOKEN_PATH}",
                "username": USERNAME,
                "password": PASSWORD,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "account_id": ACCOUNT_ID,
                "coupling_id": COUPLING_ID,
                "backoff_base": 0.05,
                "max_attempts": 8,
                "timeout": 10,
                **overrides,
            }
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def product(i: int) -> dict[str, Any]:
    return {"name": f"Product {i}", "stockLevel": i, "price": 1.25, "remoteId": f"B0{i:08d}"}


def remote_ids(backend: OptiplyBackend) -> Counter[str]:
    return Counter(str(p["remoteId"]) for _, p in backend.snapshot()["products"].items())


# -- the rate itself, without HTTP ----------------------------------------------------------------------------


def test_rate_rises_on_good_answers_halves_once_on_trouble_and_recovers_fast() -> None:
    rate = AdaptiveWriteRate(start=5, ceiling=100)
    for _ in range(10):
        rate.good(_Sent(time.monotonic(), rate.rate))
    assert rate.rate == 15  # slow start: one write/s more per good answer
    in_flight = [
        _Sent(time.monotonic(), rate.rate) for _ in range(3)
    ]  # sent before the trouble, at the old rate
    rate.bad(in_flight[0], None)
    assert rate.rate == pytest.approx(7.5) and rate.decreases == 1
    rate.bad(in_flight[1], None)  # an answer to a write sent before the decrease does not cut again
    rate.bad(in_flight[2], 0.0)
    assert rate.rate == pytest.approx(7.5) and rate.decreases == 1
    for _ in range(6):
        rate.good(_Sent(time.monotonic(), rate.rate))
    assert rate.rate == pytest.approx(13.5)  # straight back to 90% of where trouble met it
    rate.good(_Sent(time.monotonic(), rate.rate))
    assert 13.5 < rate.rate < 13.6  # then probing slowly (1 write/s per second)


def test_rate_backs_off_when_latency_rises() -> None:
    rate = AdaptiveWriteRate(start=10, ceiling=100)
    for _ in range(20):
        rate.good(_Sent(time.monotonic() - 0.01, rate.rate))
    before = rate.rate
    for _ in range(30):
        rate.good(_Sent(time.monotonic() - 0.5, rate.rate))
        if rate.decreases:
            break
    assert rate.decreases == 1 and rate.rate <= before / 2 + 1


def test_retry_after_holds_every_thread() -> None:
    rate = AdaptiveWriteRate(start=1000, ceiling=1000)
    rate.bad(rate.acquire(), 0.3)
    started = time.monotonic()
    rate.acquire()
    assert time.monotonic() - started >= 0.29 and rate.pauses == 1


# -- against the sandbox's rate limit ------------------------------------------------------------------------


def test_throughput_adapts_to_optiplys_limit_without_writing_twice(
    backend: OptiplyBackend, make_client: Callable[..., OptiplyClient]
) -> None:
    allowed = 40.0
    # A quarter second's burst; half the 429s carry Retry-After, half none.
    limit(backend, allowed, retry_after_every=2, burst=allowed / 4)
    backend.latency_seconds = 0.02
    client = make_client(min_write_interval=0.05, max_writes_per_second=200, max_concurrent_writes=8)
    n = 250
    ids = run_writes(client, [lambda i=i: client.create("products", product(i)) for i in range(n)])
    assert len(set(ids)) == n
    assert set(remote_ids(backend).values()) == {1} and len(remote_ids(backend)) == n
    assert backend.rate_limited > 0 and client.write_rate is not None and client.write_rate.decreases > 0
    created = sorted(e["time"] for e in backend.writes() if e["status"] == 201)
    # From the first 429 on (the start rate of 20/s ramps up before that), writes went through near the limit.
    first_429 = min(e["time"] for e in backend.writes() if e["status"] == 429)
    after = [t for t in created if t >= first_429]
    throughput = (len(after) - 1) / (after[-1] - after[0])
    assert throughput >= 0.8 * allowed, throughput


def test_retry_after_is_honoured(backend: OptiplyBackend, make_client: Callable[..., OptiplyClient]) -> None:
    limit(backend, 2.0)  # one write per 0.5 s; Retry-After on every 429
    client = make_client(min_write_interval=0.01, max_concurrent_writes=1)
    for i in range(3):
        client.create("products", product(i))
    log = [e for e in backend.writes() if e["status"] in (201, 429)]
    throttled = [(a, b) for a, b in itertools.pairwise(log) if a["status"] == 429]
    assert throttled, "the limit never answered 429"
    for refused, retry in throttled:
        assert retry["time"] - refused["time"] >= 0.4  # waited out Retry-After (about 0.5 s), no hammering
    assert len([e for e in log if e["status"] == 429]) <= 3
    assert len(remote_ids(backend)) == 3


def test_429_without_retry_after_still_backs_off(
    backend: OptiplyBackend, make_client: Callable[..., OptiplyClient]
) -> None:
    limit(backend, 20.0, retry_after_every=0)
    client = make_client(min_write_interval=0.01, max_concurrent_writes=4)
    run_writes(client, [lambda i=i: client.create("products", product(i)) for i in range(30)])
    assert len(remote_ids(backend)) == 30 and set(remote_ids(backend).values()) == {1}
    assert client.write_rate is not None and client.write_rate.decreases >= 1
    assert client.write_rate.rate < 100


# -- exactly once when a delivery dies with writes in flight ------------------------------------------------


def test_a_delivery_killed_with_writes_in_flight_is_settled_next_run(
    backend: OptiplyBackend,
    sandbox: tuple[OptiplyBackend, SandboxHTTPServer],
    make_client: Callable[..., OptiplyClient],
    tmp_path: Path,
) -> None:
    n, kill_after = 120, 40
    backend.latency_seconds = 0.05  # so the writer's 8 threads each hold a write in flight
    database = f"sqlite:///{tmp_path / 'state.sqlite'}"
    SyncState(database)  # tables first, so the writer does not race us creating them
    writer = subprocess.Popen(
        [sys.executable, str(WRITER), sandbox[1].base_url, database, str(n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    applied = 0

    def kill_after_k(entry: dict[str, Any]) -> None:
        nonlocal applied
        applied += 1
        if applied == kill_after:
            # Applied in Optiply, never answered: the writer dies between Optiply's commit and its record.
            os.kill(writer.pid, signal.SIGKILL)

    backend.on_write = kill_after_k
    _, stderr = writer.communicate(timeout=60)
    backend.on_write = None
    assert writer.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    time.sleep(backend.latency_seconds * 2)  # let the writes the sandbox was still handling land
    state = SyncState(database)
    before = state.records("products", MARKETPLACE)
    intended = set(before.loc[before["state"] == "intended", "remote_id"])
    assert len(intended) >= 2, "the kill should leave several writes in flight"
    held_at_kill = set(remote_ids(backend))
    assert 0 < len(held_at_kill) < n

    client = make_client(
        min_write_interval=0.01, max_concurrent_writes=8, token_store=state.token_store("optiply")
    )
    report = deliver_records(client, state, "products", MARKETPLACE, [product(i) for i in range(n)])
    held = remote_ids(backend)
    assert len(held) == n and set(held.values()) == {1}, "lost or duplicated"
    after = state.records("products", MARKETPLACE)
    assert set(after["state"]) == {"done"} and len(after) == n
    by_remote = {str(p["remoteId"]): rid for rid, p in backend.snapshot()["products"].items()}
    assert dict(zip(after["remote_id"], after["optiply_id"].astype(int), strict=True)) == by_remote
    # The intents Optiply had applied were found by remoteId, not sent again; the others were posted anew.
    assert report.recovered == len(intended & held_at_kill)
