"""Section 1: SP-API calls per cycle next to the lower bound the data allows; Optiply writes next to changes.

One marketplace (DE) of a sandbox seller, three cycles: the first sync, a steady-state cycle 30 minutes
later (1% of stock changed, `new_orders` new orders, `new_asins` new listings with ASINs never seen) and
a cycle at the same moment (nothing changed). The sandbox's rates are scaled up and its reports finish
in a quarter second: call counts do not depend on either, only getReport polls do (see `latency`).

Lower bound per cycle, from the data: per report one createReport and one getReportDocument (none when
the window holds no rows); ceil(new ASINs / 20) searchCatalogItems; ceil(changed FBA rows / 50)
getInventorySummaries pages, at least one (a cycle must ask to learn that nothing changed).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from unittest import mock

import dagster as dg
import pandas as pd

from amazon_optiply.sandbox.amazon import INVENTORY_PAGE_SIZE, AmazonSettings
from amazon_optiply.sandbox.report_documents import LISTINGS_ALL, ORDERS_BY_LAST_UPDATE
from amazon_optiply.sandbox.seller import SLOT, SellerConfig
from amazon_optiply.sandbox.server import Sandbox, SandboxConfig

MARKETPLACE = "DE"
CATALOG_BATCH = 20
REPORT_TYPES = (LISTINGS_ALL, ORDERS_BY_LAST_UPDATE)
POLL_OPERATION = "getReport"
# The tap's near-real-time streams in the sync (order items, inbound shipments, AWD): not needed for the
# products and orders, so counted apart from the ratio (their calls per order or shipment are their own).
STREAM_OPERATIONS = ("getOrderItems", "getShipments", "getShipmentItemsByShipmentId", "listInventory")
AFN_BY_COUNTRY = "GET_AFN_INVENTORY_DATA_BY_COUNTRY"
LWA_OPERATION = "lwaToken"  # the sandbox counts token grants too; they are not SP-API operations
CYCLES = ("first_sync", "steady_state", "no_change")


@contextmanager
def platform_env(sandbox: Sandbox, workdir: Path, **extra: str):
    """The platform's environment pointed at the sandbox, with its own state and a test Dagster instance."""
    env = {
        **sandbox.env(),
        "OPTIPLY_MIN_WRITE_INTERVAL_SECONDS": "0",
        "SYNC_STATE_DATABASE_URL": f"sqlite:///{workdir / 'state.sqlite'}",
        "ASSET_STORAGE_PATH": str(workdir / "assets"),
        **extra,
    }
    (workdir / "dagster").mkdir(parents=True, exist_ok=True)
    with (
        mock.patch.dict(os.environ, env),
        dg.instance_for_test(temp_dir=str(workdir / "dagster")) as instance,
    ):
        yield instance


def lower_bound(report_rows: dict[str, int], new_asins: int, changed_fba_rows: int) -> dict[str, int]:
    # The AFN-by-country report (European marketplaces, Pan-EU stock) is one more report when it was read.
    types = (*REPORT_TYPES, AFN_BY_COUNTRY) if AFN_BY_COUNTRY in report_rows else REPORT_TYPES
    bound = {
        "createReport": len(types),
        "getReportDocument": sum(1 for t in types if report_rows.get(t, 1) > 0),
        "searchCatalogItems": math.ceil(new_asins / CATALOG_BATCH),
        "getInventorySummaries": max(1, math.ceil(changed_fba_rows / INVENTORY_PAGE_SIZE)),
    }
    return {**bound, "total": sum(bound.values())}


def efficiency(calls: dict[str, int], bound: dict[str, int], reports_polled: int) -> dict:
    """The ratio (calls beyond getReport polls / lower bound) and the polls per report, kept apart."""
    streams = {op: n for op, n in calls.items() if op in STREAM_OPERATIONS}
    calls = {op: n for op, n in calls.items() if op not in STREAM_OPERATIONS}
    polls = calls.get(POLL_OPERATION, 0)
    beyond = sum(calls.values()) - polls
    return {
        "stream_calls": streams,
        "calls_total": sum(calls.values()),
        "calls_beyond_polls": beyond,
        "ratio": round(beyond / bound["total"], 3) if bound["total"] else None,
        "getReport_polls": polls,
        "reports_polled": reports_polled,
        "polls_per_report": round(polls / reports_polled, 2) if reports_polled else 0.0,
    }


def _add_new_listings(sandbox: Sandbox, count: int, cycle: int) -> set[str]:
    """`count` new active merchant listings whose ASINs the platform has never seen."""
    world = sandbox.world
    with world._lock:
        listings = world.listings[MARKETPLACE]
        template = listings[(listings["status"] == "Active") & (listings["fulfillment_channel"] == "DEFAULT")]
        new = template.head(count).copy()
        k = range(len(new))
        new["sku"] = [f"BENCH-{cycle}-{i:04d}" for i in k]
        new["asin"] = [f"B0BN{cycle:02d}{i:04d}" for i in k]
        new["listing_id"] = [f"9{cycle:02d}{i:07d}N" for i in k]
        new["eans"] = [[f"99{cycle:02d}{i:09d}"] for i in k]  # 13 digits, unique to these listings
        new["upc"] = ""
        world.listings[MARKETPLACE] = pd.concat([listings, new], ignore_index=True)
    return set(new["asin"])


def _ground_truth(sandbox: Sandbox, orders_start) -> tuple[pd.DataFrame, set[str]]:
    world = sandbox.world
    products = world.expected_products(MARKETPLACE).set_index("remoteId")
    now = sandbox.clock.now()
    orders = {o.order_id for o in world.expected_sell_orders(MARKETPLACE, orders_start, now)}
    return products, orders


def _changed_products(before: pd.DataFrame, after: pd.DataFrame) -> int:
    if before.empty:
        return len(after)
    new = after.index.difference(before.index)
    common = after.index.intersection(before.index)
    b, a = before.loc[common].fillna(""), after.loc[common].fillna("")
    return len(new) + int((b != a).any(axis=1).sum())


def _run_cycle(sandbox: Sandbox, instance: dg.DagsterInstance) -> dict:
    from amazon_optiply.sync import sync_all

    amazon, optiply = sandbox.amazon, sandbox.optiply
    calls_before, throttled_before = Counter(amazon.calls), Counter(amazon.throttled)
    reports_before = set(amazon.reports)
    optiply.reset_request_log()
    results = sync_all(instance)
    failed = [r.line() for r in results if not r.success]
    if failed:
        raise RuntimeError(f"sync failed: {failed}")
    calls = Counter(amazon.calls) - calls_before
    lwa = calls.pop(LWA_OPERATION, 0)
    new_reports = [r for rid, r in amazon.reports.items() if rid not in reports_before]
    with optiply.lock:
        requests = list(optiply.requests)
    writes = optiply.writes()
    return {
        "sp_api_calls": dict(sorted(calls.items())),
        "lwa_token_calls": lwa,
        "sp_api_throttled": dict(Counter(amazon.throttled) - throttled_before),
        "reports_created": len(new_reports),
        "report_rows": {r.report_type: r.rows or 0 for r in new_reports},
        "optiply_writes": len(writes),
        "optiply_writes_by_kind": dict(
            Counter(f"{w['method']} {w['path'].split('/')[2]}" for w in writes).most_common()
        ),
        "optiply_reads": sum(1 for e in requests if e["method"] == "GET" and e["path"].startswith("/v1/")),
        "summary": {r.marketplace: r.summary for r in results},
    }


def run_scenario(skus: int, new_orders: int, new_asins: int) -> dict:
    """First sync, steady-state cycle and no-change cycle of one seller; counts and bounds per cycle."""
    config = SandboxConfig(
        seller=SellerConfig(
            marketplaces=(MARKETPLACE,),
            skus=skus,
            orders_per_day=new_orders * (timedelta(days=1) / SLOT),
            price_change_share=0.0,
            stock_change_share=0.01,
            seed=17,
        ),
        amazon=AmazonSettings(report_queue_seconds=0.05, report_processing_seconds=0.2, rate_scale=100),
        frozen_clock=True,
    )
    out: dict = {"skus": skus, "new_orders_per_cycle": new_orders, "new_asins_per_cycle": new_asins}
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp, Sandbox(config) as sandbox:
        orders_start = config.seller.origin - timedelta(hours=2)
        with platform_env(sandbox, Path(tmp), ORDERS_START=orders_start.isoformat()) as instance:
            world = sandbox.world
            world.advance_to(sandbox.clock.now())
            out["fba_rows"] = len(world.fba[MARKETPLACE])
            out["listings"] = len(world.listings[MARKETPLACE])
            seen_asins: set[str] = set()
            products_before, orders_before = pd.DataFrame(columns=["name"]), set()
            for cycle in CYCLES:
                if cycle == "steady_state":
                    fba_before = world.fba[MARKETPLACE][["fulfillable", "last_updated"]].copy()
                    sandbox.advance(SLOT)
                    _add_new_listings(sandbox, new_asins, cycle=1)
                    fba_after = world.fba[MARKETPLACE][["fulfillable", "last_updated"]]
                    changed_fba = int((fba_before != fba_after).any(axis=1).sum())
                elif cycle == "first_sync":
                    changed_fba = len(world.fba[MARKETPLACE])
                else:
                    changed_fba = 0
                asins = set(world.listings[MARKETPLACE]["asin"])
                new = len(asins - seen_asins)
                seen_asins |= asins
                measured = _run_cycle(sandbox, instance)
                products, orders = _ground_truth(sandbox, orders_start)
                changed = _changed_products(products_before, products) + len(orders - orders_before)
                products_before, orders_before = products, orders
                bound = lower_bound(measured["report_rows"], new, changed_fba)
                reports_polled = max(measured["reports_created"], 1)
                out[cycle] = {
                    **measured,
                    "data": {"new_asins": new, "changed_fba_rows": changed_fba, "entities_changed": changed},
                    "lower_bound": bound,
                    **efficiency(measured["sp_api_calls"], bound, reports_polled),
                    "optiply_excess_writes": measured["optiply_writes"] - changed,
                }
    return out


def run(scale) -> dict:
    main = run_scenario(scale.api_skus, scale.new_orders, scale.new_asins)
    fit = run_scenario(scale.api_fit_skus, scale.new_orders, scale.new_asins)
    return {
        "marketplace": MARKETPLACE,
        "how": (
            "sync_all against an in-process sandbox (frozen clock, rates x100, reports DONE after 0.25 s); "
            "calls from the sandbox's per-operation counters, writes from its Optiply request log, "
            "changes from the sandbox seller's ground truth"
        ),
        "main": main,
        "fit": fit,
        "targets": targets(main),
    }


def targets(main: dict) -> list[dict]:
    out = []
    for cycle in CYCLES:
        c = main[cycle]
        out.append(
            {
                "name": f"api: Optiply writes == entities changed ({cycle})",
                "target": c["data"]["entities_changed"],
                "value": c["optiply_writes"],
                "met": c["optiply_writes"] == c["data"]["entities_changed"],
                "missed_by": f"{c['optiply_excess_writes']:+d} writes",
            }
        )
    return out
