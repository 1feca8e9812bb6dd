"""Section 7: Optiply write throughput against the sandbox's Optiply rate limit, and the 1M-SKU cycle it buys.

The sandbox's Optiply gets a write rate limit (a token bucket of a quarter second's writes: a 429 when it
is empty, with Retry-After on every other one and none on the rest) and a latency per request. The client
starts at its default rate (one write per OPTIPLY_MIN_WRITE_INTERVAL_SECONDS, 5/s) and writes in flight,
with a ceiling five times the limit (so the limit is found, not configured), and creates products through `delivery.run_writes`, as the deliveries do.
Throughput is counted from the first 429 on (before it, the client is still ramping up from its start
rate; the whole run's figure is shown too); duplicates are remoteIds Optiply holds more than once.
The projection takes section 3's 1M-SKU steady-state cycle (its Amazon seconds and its Optiply write
count) and divides the writes by each Optiply rate times the share of it measured here.
"""

from __future__ import annotations

import time
from collections import Counter

from amazon_optiply.bench import Scale
from amazon_optiply.clients.optiply import OptiplyClient
from amazon_optiply.delivery import run_writes
from amazon_optiply.sandbox.faults import FaultRates, Faults
from amazon_optiply.sandbox.optiply import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    TOKEN_PATH,
    OptiplyBackend,
    build_optiply_server,
)

PROJECTED_RATES = (5, 10, 20)
TARGET_SHARE = 0.9
TARGET_SECONDS = 30 * 60
LATENCY_SECONDS = 0.05


def measure(limit: float, writes: int) -> dict:
    backend = OptiplyBackend(
        write_rate_limit=limit,
        write_burst=max(1.0, limit / 4),
        rate_limit_retry_after_every=2,
        latency_seconds=LATENCY_SECONDS,
    )
    server = build_optiply_server(backend, Faults(FaultRates(), seed=1))
    server.start_in_thread()
    client = OptiplyClient(
        f"{server.base_url}/v1",
        f"{server.base_url}{TOKEN_PATH}",
        DEFAULT_USERNAME,
        DEFAULT_PASSWORD,
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        DEFAULT_ACCOUNT_ID,
        42,
        max_writes_per_second=limit * 5,  # a ceiling well above the limit: the limit is found, not set
        max_attempts=10,
    )
    try:
        attributes = [
            {"name": f"Bench {i}", "stockLevel": i, "price": 1.0, "remoteId": f"W{i:09d}"}
            for i in range(writes)
        ]
        began = time.monotonic()
        run_writes(client, [lambda a=a: client.create("products", a) for a in attributes])
        elapsed = time.monotonic() - began
        log = backend.writes()
        held = Counter(str(p["remoteId"]) for p in backend.snapshot()["products"].values())
    finally:
        client.close()
        server.shutdown()
        server.server_close()
    created = sorted(e["time"] for e in log if e["status"] == 201)
    refused = [e["time"] for e in log if e["status"] == 429]
    window = [t for t in created if refused and t >= min(refused)]
    steady = (len(window) - 1) / (window[-1] - window[0]) if len(window) > 1 else writes / elapsed
    rate = client.write_rate
    return {
        "limit_per_second": limit,
        "latency_seconds": LATENCY_SECONDS,
        "writes": writes,
        "seconds": round(elapsed, 1),
        "throughput_per_second": round(writes / elapsed, 2),
        "steady_per_second": round(steady, 2),
        "share_of_limit": round(steady / limit, 3),
        "share_of_limit_whole_run": round(writes / elapsed / limit, 3),
        "rate_limited_429": len(refused),
        "retry_after_pauses": rate.pauses if rate else 0,
        "rate_decreases": rate.decreases if rate else 0,
        "max_concurrent_writes": client.max_concurrent_writes,
        "duplicates": sum(n - 1 for n in held.values()),
        "lost": writes - len(held),
    }


def project(projection: dict, share: float) -> dict:
    steady = projection["steady_state"]["1000000"]
    amazon = steady["total_seconds"] - steady["seconds"]["optiply_writes"]
    writes = steady["calls"]["optiply_writes"]
    optiply = {str(r): round(writes / (r * share), 1) for r in PROJECTED_RATES}
    return {
        "optiply_writes": writes,
        "amazon_seconds": round(amazon, 1),
        "amazon_dominant": max(
            (op for op in steady["seconds"] if op != "optiply_writes"),
            key=steady["seconds"].get,
            default=None,
        ),
        "optiply_seconds": optiply,
        "cycle_seconds": {r: round(amazon + seconds, 1) for r, seconds in optiply.items()},
    }


def run(scale: Scale, projection: dict | None) -> dict:
    # tiny: a short run that proves the section works; full: about a minute at 20 writes/s.
    limit, writes = (30.0, 60) if scale.name == "tiny" else (20.0, 1200)
    out: dict = {"how": __doc__.split("\n\n", 1)[1].strip(), **measure(limit, writes)}
    share = min(1.0, out["share_of_limit"])
    targets = [
        {
            "name": "writes: throughput against the sandbox's Optiply limit",
            "target": f">= {TARGET_SHARE:.0%} of {limit:.0f}/s, 0 duplicates, 0 lost",
            "value": f"{out['share_of_limit']:.0%}, {out['duplicates']} duplicates, {out['lost']} lost",
            "met": out["share_of_limit"] >= TARGET_SHARE and out["duplicates"] == 0 and out["lost"] == 0,
            "missed_by": f"{TARGET_SHARE - out['share_of_limit']:.0%} of the limit"
            if out["share_of_limit"] < TARGET_SHARE
            else f"{out['duplicates']} duplicates, {out['lost']} lost",
        }
    ]
    if projection is not None:
        out["projection_1m"] = project(projection, share)
        for r, seconds in out["projection_1m"]["cycle_seconds"].items():
            targets.append(
                {
                    "name": f"writes: steady-state cycle at 1M SKUs, Optiply at {r} writes/s",
                    "target": f"<= {TARGET_SECONDS} s",
                    "value": seconds,
                    "met": seconds <= TARGET_SECONDS,
                    "missed_by": f"+{seconds - TARGET_SECONDS:.0f} s",
                }
            )
    out["targets"] = targets
    return out
