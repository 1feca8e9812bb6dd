"""The bench at its tiny scale: it runs, its results have their structure, and what cannot depend on timing holds.

Timings are never asserted; counts, bounds and the arithmetic between them are.
"""

import json
import math

import pytest

from amazon_optiply.bench import SCALES, SECTIONS
from amazon_optiply.bench.__main__ import run
from amazon_optiply.bench.api import CYCLES, STREAM_OPERATIONS, lower_bound
from amazon_optiply.bench.latency import tap_latency
from amazon_optiply.bench.projection import SKU_COUNTS, seconds_at_rate
from amazon_optiply.bench.report import table
from amazon_optiply.bench.tenants import (
    BREAKDOWN,
    POD_START_LIKE,
    PROJECTED_PARTITIONS,
    WINDOW_SECONDS,
    project,
)
from amazon_optiply.defs.seller.streams.api import ORDER_ITEMS_RUN_SECONDS

# One tiny bench run for the module: its tests run on one worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bench")]

TARGET_KEYS = {"name", "target", "value", "met", "missed_by"}


@pytest.fixture(scope="module")
def results():
    return run("tiny", list(SECTIONS))


def test_every_section_ran_and_serializes(results):
    assert set(SECTIONS) <= set(results)
    json.dumps(results)
    for section in SECTIONS:
        for target in results[section]["targets"]:
            assert set(target) == TARGET_KEYS
            assert (target["missed_by"] is None) == target["met"]
    printed = table(results)
    for number in range(1, 8):
        assert f"\n{number}. " in printed
    assert "reproduce: .venv/bin/python -m amazon_optiply.bench --scale tiny" in printed


def test_api_counts_against_the_lower_bound(results):
    for seller in (results["api"]["main"], results["api"]["fit"]):
        for cycle in CYCLES:
            c = seller[cycle]
            # The near-real-time streams' calls (order items, inbound shipments, AWD) are counted apart.
            calls = {op: n for op, n in c["sp_api_calls"].items() if op not in STREAM_OPERATIONS}
            assert c["stream_calls"] == {
                op: n for op, n in c["sp_api_calls"].items() if op in STREAM_OPERATIONS
            }
            polls = calls.get("getReport", 0)
            assert c["calls_beyond_polls"] == sum(calls.values()) - polls
            assert c["getReport_polls"] == polls
            assert c["calls_beyond_polls"] >= c["lower_bound"]["total"]
            assert c["ratio"] == round(c["calls_beyond_polls"] / c["lower_bound"]["total"], 3)
            assert c["polls_per_report"] == round(polls / c["reports_polled"], 2)
            assert c["lower_bound"]["total"] == sum(v for k, v in c["lower_bound"].items() if k != "total")
            # Optiply is written exactly what changed in the seller's data.
            assert c["optiply_writes"] == c["data"]["entities_changed"], (cycle, c["optiply_writes_by_kind"])
        assert seller["no_change"]["optiply_writes"] == 0
        assert seller["steady_state"]["data"]["new_asins"] == SCALES["tiny"].new_asins
        assert seller["first_sync"]["lower_bound"]["searchCatalogItems"] == math.ceil(
            seller["first_sync"]["data"]["new_asins"] / 20
        )


def test_lower_bound_arithmetic():
    bound = lower_bound(
        {"GET_MERCHANT_LISTINGS_ALL_DATA": 5, "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL": 0},
        41,
        0,
    )
    assert bound == {
        "createReport": 2,
        "getReportDocument": 1,  # an empty orders window has no document
        "searchCatalogItems": 3,
        "getInventorySummaries": 1,  # one page to learn that nothing changed
        "total": 7,
    }


def test_latency_samples_and_the_tap_baseline(results):
    latency = results["latency"]
    samples = latency["samples"]
    assert len(samples) == SCALES["tiny"].latency_samples
    assert min(s["processing_seconds"] for s in samples) == 5.0
    assert max(s["processing_seconds"] for s in samples) == 600.0
    for s in samples:
        assert s["polls"] >= 1
        assert s["tap_latency_seconds"] == tap_latency(s["processing_seconds"])
        assert 0 <= s["tap_latency_seconds"] < 30
    assert tap_latency(600) == 0 and tap_latency(5) == 25


def test_projection_follows_the_counts(results):
    projection = results["projection"]
    for cycle in ("first_sync", "steady_state"):
        previous = None
        for n in SKU_COUNTS:
            p = projection[cycle][str(n)]
            assert p["total_seconds"] == pytest.approx(sum(p["seconds"].values()), abs=0.5)
            assert p["dominant_seconds"] == max(p["seconds"].values())
            assert p["seconds"]["optiply_writes"] == pytest.approx(
                p["calls"]["optiply_writes"] * 0.2, abs=0.1
            )
            for op, seconds in p["seconds"].items():
                if op != "optiply_writes":
                    expected = seconds_at_rate(op, p["calls"][op])
                    if op == "getOrderItems":  # order_items stops after its per-run budget
                        expected = min(expected, ORDER_ITEMS_RUN_SECONDS)
                    assert seconds == pytest.approx(expected, abs=0.1)
            if previous is not None:
                assert all(p["calls"][op] >= previous["calls"][op] for op in p["calls"])
            previous = p


def test_transform_and_end_to_end(results):
    transform = results["transform"]
    rows = SCALES["tiny"].transform_rows
    assert transform["documents"]["listings_rows"] == transform["documents"]["fba_rows"] == rows
    assert all(transform["validated"].values()), transform["validated"]
    assert 0 < transform["payload_rows"] <= rows
    assert transform["ratio_to_floor"] == pytest.approx(
        transform["wall_seconds"] / transform["floor_seconds"], rel=0.05
    )

    e2e = results["e2e"]
    assert e2e["success"], e2e["results"]
    assert len(e2e["results"]) == 3 and e2e["steps"] > 0
    assert e2e["dagster_overhead_seconds"] == pytest.approx(
        sum(e2e["overhead_breakdown_seconds"].values()), abs=0.05
    )
    assert e2e["wall_seconds"] == pytest.approx(
        e2e["work_seconds"] + e2e["dagster_overhead_seconds"], abs=0.05
    )


def test_tenants_one_successful_run_per_tenant_marketplace_each_cycle(results):
    t = results["tenants"]
    tiny = SCALES["tiny"]
    runs = tiny.tenants * len(tiny.tenants_marketplaces)
    assert t["success"], t["cycles"]
    assert t["sandboxes"] == tiny.tenants
    for cycle in ("first_sync", "steady_state"):
        c = t["cycles"][cycle]
        assert c["runs"] == c["succeeded"] == runs and c["failures"] == []
    b = t["steady_breakdown_seconds_median"]
    assert list(b) == list(BREAKDOWN)
    assert t["pod_start_like_seconds"] == pytest.approx(sum(b[k] for k in POD_START_LIKE), abs=0.01)
    assert t["steady_runs_per_minute"] == pytest.approx(
        runs / t["cycles"]["steady_state"]["wall_seconds"] * 60, rel=0.01
    )
    assert t["steady_cpu_seconds_per_run"]["median"] <= t["steady_cpu_seconds_per_run"]["max"]
    assert 0 < t["steady_peak_rss_mb_per_run"]["median"] <= t["steady_peak_rss_mb_per_run"]["max"]
    assert t["projection"] == project(
        t["steady_cpu_seconds_per_run"]["median"],
        t["pod_start_like_seconds"],
        t["steady_runs_per_minute"],
        t["cores"],
    )


def test_tenant_projection_arithmetic():
    # 3 CPU-seconds a run, 2 s of pod start, 10 runs a minute measured on 2 cores.
    p = project(3.0, 2.0, 10.0, 2)
    assert PROJECTED_PARTITIONS == 1_000 and WINDOW_SECONDS == 1_800
    assert p["needed_runs_per_minute"] == pytest.approx(33.3)
    assert p["cores_by_cpu"] == 2  # 3,000 CPU-seconds in 1,800 s
    assert p["cores_by_throughput"] == 7  # 33.3 / 10 machines of 2 cores
    assert p["k8s_cpu_seconds_per_run"] == 5.0
    assert p["k8s_cores"] == 3  # 5,000 CPU-seconds in 1,800 s


def test_writes_reach_the_sandbox_limit_without_duplicates(results):
    w = results["writes"]
    assert w["duplicates"] == 0 and w["lost"] == 0
    assert w["rate_limited_429"] >= 0 and w["writes"] > 0
    projected = w["projection_1m"]
    steady = results["projection"]["steady_state"]["1000000"]
    assert projected["optiply_writes"] == steady["calls"]["optiply_writes"]
    # At 5 writes/s and the full share, the cycle is the projection section's own (writes at 0.2 s each).
    share = min(1.0, w["share_of_limit"])
    assert projected["cycle_seconds"]["5"] == pytest.approx(
        steady["total_seconds"]
        - steady["seconds"]["optiply_writes"]
        + steady["calls"]["optiply_writes"] / (5 * share),
        abs=0.2,
    )
    assert (
        projected["cycle_seconds"]["5"]
        >= projected["cycle_seconds"]["10"]
        >= projected["cycle_seconds"]["20"]
    )
