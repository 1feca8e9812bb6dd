"""Section 5: a `make sync`-like first sync of 3 marketplaces, Dagster overhead against step work.

A fresh Python process (as `make sync` is) starts the sandbox in-process (DE, FR, US; reports DONE after
0.25 s, SP-API rates x50, Optiply writes unspaced), points the platform at it with a DAGSTER_HOME holding
the project's dagster.yaml, and runs `sync_all`. Work is the sum of step durations (STEP_START to
STEP_SUCCESS/FAILURE in each run's events); Dagster overhead is the rest of the platform's wall time:
process start and imports, loading definitions and the instance, and the executor around the steps.
Setting up the sandbox (generating the seller) is timed apart and is not the platform's.
"""

from __future__ import annotations

import time

STARTED = time.time()

import json  # noqa: E402 - the timestamp above is when the process got this far
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

MARKETPLACES = ("DE", "FR", "US")
REPO = Path(__file__).resolve().parents[2]


def _step_seconds(instance, run_id: str) -> dict[str, float]:
    started, seconds = {}, {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = record.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in started:
            seconds[event.step_key] = record.timestamp - started[event.step_key]
    return seconds


def child(skus: int, orders_per_day: float) -> dict:
    imports_began = time.time()
    import dagster as dg

    from amazon_optiply.sandbox.amazon import AmazonSettings
    from amazon_optiply.sandbox.seller import SellerConfig
    from amazon_optiply.sandbox.server import Sandbox, SandboxConfig

    imported = time.time()
    config = SandboxConfig(
        seller=SellerConfig(marketplaces=MARKETPLACES, skus=skus, orders_per_day=orders_per_day),
        amazon=AmazonSettings(report_queue_seconds=0.05, report_processing_seconds=0.2, rate_scale=50),
    )
    sandbox = Sandbox(config).start()
    sandbox_ready = time.time()
    home = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    try:
        shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
        os.environ.update(sandbox.env())
        os.environ.update({"DAGSTER_HOME": str(home), "OPTIPLY_MIN_WRITE_INTERVAL_SECONDS": "0"})
        from amazon_optiply.definitions import defs
        from amazon_optiply.sync import sync_marketplace
        from amazon_optiply.tenants import DEFAULT_TENANT, TenantRegistry

        definitions = defs()
        instance = dg.DagsterInstance.get()
        loaded = time.time()
        tenant = TenantRegistry.load().tenant(DEFAULT_TENANT)
        results = [sync_marketplace(definitions, tenant, m, instance) for m in MARKETPLACES]
        synced = time.time()
        steps: dict[str, float] = {}
        for run in instance.get_runs():
            for key, seconds in _step_seconds(instance, run.run_id).items():
                steps[f"{run.tags.get('marketplace')}/{key}"] = seconds
        instance.dispose()
    finally:
        sandbox.stop()
        shutil.rmtree(home, ignore_errors=True)
    return {
        "started": STARTED,
        "imports_seconds": imported - imports_began + (imports_began - STARTED),
        "sandbox_setup_seconds": sandbox_ready - imported,
        "definitions_seconds": loaded - sandbox_ready,
        "sync_seconds": synced - loaded,
        "finished": time.time(),
        "step_seconds": steps,
        "results": [r.line() for r in results],
        "success": all(r.success for r in results),
    }


def run(scale) -> dict:
    launched = time.time()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "amazon_optiply.bench.e2e",
            str(scale.e2e_skus),
            str(scale.e2e_orders_per_day),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "AMAZON_MARKETPLACES": ",".join(MARKETPLACES)},
        check=False,
    )
    ended = time.time()
    if proc.returncode != 0:
        raise RuntimeError(f"e2e subprocess failed:\n{proc.stderr[-3000:]}")
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    work = sum(m["step_seconds"].values())
    process_start = m["started"] - launched
    wall = (ended - launched) - m["sandbox_setup_seconds"]
    executor = m["sync_seconds"] - work
    teardown = (
        ended
        - m["finished"]
        + (m["finished"] - m["started"])
        - (m["imports_seconds"] + m["sandbox_setup_seconds"] + m["definitions_seconds"] + m["sync_seconds"])
    )
    overhead = process_start + m["imports_seconds"] + m["definitions_seconds"] + executor + teardown
    slowest = sorted(m["step_seconds"].items(), key=lambda kv: -kv[1])[:5]
    return {
        "how": __doc__.split("\n\n", 1)[1].strip(),
        "marketplaces": list(MARKETPLACES),
        "skus": scale.e2e_skus,
        "orders_per_day": scale.e2e_orders_per_day,
        "success": m["success"],
        "results": m["results"],
        "wall_seconds": round(wall, 2),
        "sandbox_setup_seconds_excluded": round(m["sandbox_setup_seconds"], 2),
        "work_seconds": round(work, 2),
        "dagster_overhead_seconds": round(overhead, 2),
        "dagster_overhead_share": round(overhead / wall, 3) if wall else None,
        "overhead_breakdown_seconds": {
            "process_start": round(process_start, 2),
            "imports": round(m["imports_seconds"], 2),
            "definitions_and_instance": round(m["definitions_seconds"], 2),
            "executor_around_steps": round(executor, 2),
            "reading_events_and_exit": round(teardown, 2),
        },
        "steps": len(m["step_seconds"]),
        "slowest_steps_seconds": {k: round(v, 2) for k, v in slowest},
        "targets": [],
    }


if __name__ == "__main__":
    print(json.dumps(child(int(sys.argv[1]), float(sys.argv[2]))))
