"""Section 3: cycle time at Amazon's documented rates for 10k, 100k and 1M SKUs, from measured call counts.

Per operation and cycle, calls = a + b x SKUs, fitted through the two sellers the `api` section ran
(its main size and half of it), so an operation scales with SKUs exactly as far as the data makes it.
Time an operation needs at its documented rate and burst (sp-api.md): max(0, calls - burst) / rate.
Operations are added up (one marketplace, no overlap between operations: an upper bound; the dominant
operation alone is the lower bound). getReport polls pace themselves within 2/s while Amazon processes the
report, so they cost report processing time, which Amazon does not document and is left out. Optiply
writes are timed at 5 a second (0.2 s each: Optiply documents no limit and asks for about 5 a second; the
client starts there and adapts, see section 7 for other rates); Optiply reads are counted, not timed.
"""

from __future__ import annotations

import math

from amazon_optiply.defs.seller.streams.api import ORDER_ITEMS_RUN_SECONDS
from amazon_optiply.sandbox.amazon import RATE_LIMITS

SKU_COUNTS = (10_000, 100_000, 1_000_000)
CYCLES = ("first_sync", "steady_state")
TARGET_SECONDS = 30 * 60
OPTIPLY_WRITE_INTERVAL = 0.2
NOT_RATE_BOUND = ("getReport",)


def linear_fit(n1: int, c1: float, n2: int, c2: float) -> tuple[float, float]:
    """(a, b) with calls = a + b x skus through both points; slope and intercept never negative."""
    b = max((c1 - c2) / (n1 - n2), 0.0) if n1 != n2 else 0.0
    return max(c1 - b * n1, 0.0), b


def seconds_at_rate(operation: str, calls: int) -> float:
    rate, burst = RATE_LIMITS[operation]
    return max(0.0, calls - burst) / rate


def project_cycle(main_seller: dict, fit_seller: dict, cycle: str, skus: int) -> dict:
    n1, n2 = main_seller["skus"], fit_seller["skus"]
    main, fit = main_seller[cycle], fit_seller[cycle]
    ops = sorted(set(main["sp_api_calls"]) | set(fit["sp_api_calls"]))
    calls, seconds = {}, {}
    for op in ops:
        a, b = linear_fit(n1, main["sp_api_calls"].get(op, 0), n2, fit["sp_api_calls"].get(op, 0))
        calls[op] = math.ceil(a + b * skus)
        if op not in NOT_RATE_BOUND and op in RATE_LIMITS:
            seconds[op] = round(seconds_at_rate(op, calls[op]), 1)
        if op == "getOrderItems":
            # order_items stops after ORDER_ITEMS_RUN_SECONDS of calls a run; the rest waits for later runs.
            seconds[op] = min(seconds.get(op, 0.0), ORDER_ITEMS_RUN_SECONDS)
    a, b = linear_fit(n1, main["optiply_writes"], n2, fit["optiply_writes"])
    calls["optiply_writes"] = math.ceil(a + b * skus)
    seconds["optiply_writes"] = round(calls["optiply_writes"] * OPTIPLY_WRITE_INTERVAL, 1)
    a, b = linear_fit(n1, main["optiply_reads"], n2, fit["optiply_reads"])
    calls["optiply_reads"] = math.ceil(a + b * skus)
    dominant = max(seconds, key=seconds.get)
    total = round(sum(seconds.values()), 1)
    return {
        "calls": calls,
        "seconds": seconds,
        "total_seconds": total,
        "dominant": dominant,
        "dominant_seconds": seconds[dominant],
    }


def run(api: dict) -> dict:
    main, fit = api["main"], api["fit"]
    out: dict = {"how": __doc__.split("\n\n", 1)[1].strip(), "measured_at_skus": [main["skus"], fit["skus"]]}
    for cycle in CYCLES:
        out[cycle] = {str(n): project_cycle(main, fit, cycle, n) for n in SKU_COUNTS}
    # Identifiers older than CATALOG_REFRESH_DAYS are asked for again: every ASIN of the first sync at once.
    out["catalog_refresh_cycle"] = {
        str(n): round(
            seconds_at_rate("searchCatalogItems", out["first_sync"][str(n)]["calls"]["searchCatalogItems"]), 1
        )
        for n in SKU_COUNTS
    }
    steady = out["steady_state"][str(SKU_COUNTS[-1])]
    out["targets"] = [
        {
            "name": "projection: steady-state cycle at 1M SKUs",
            "target": f"<= {TARGET_SECONDS} s",
            "value": steady["total_seconds"],
            "met": steady["total_seconds"] <= TARGET_SECONDS,
            "missed_by": f"+{steady['total_seconds'] - TARGET_SECONDS:.0f} s (dominant: {steady['dominant']})",
        }
    ]
    return out
