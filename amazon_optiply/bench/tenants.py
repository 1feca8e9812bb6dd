"""Section 6: many tenants, one run process per tenant-marketplace, as the daemon's DefaultRunLauncher starts them.

Each tenant is one sandbox of its own (its own small seller and Optiply account), all served from the bench's
process; the registry (TENANTS_FILE) names each tenant's endpoints. Every partition `<tenant>/<marketplace>` is
synced by a fresh `python -m amazon_optiply.bench.tenants <partition>` process (imports, definitions and the
instance from a DAGSTER_HOME with the project's dagster.yaml, then `sync_marketplace`, one Dagster run), at
most `parallel` at once. A first cycle syncs everything; the sandboxes advance 30 minutes; the second,
steady-state cycle is the one measured: its wall time gives runs per minute, and each process's own rusage
(os.wait4) its CPU seconds and peak RSS. The sandboxes' CPU is the bench process's and is not in a run's.
"""

from __future__ import annotations

import time

STARTED = time.time()

import json  # noqa: E402 - the timestamp above is when the process got this far
import math  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from datetime import timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

PROJECTED_PARTITIONS = 1_000
WINDOW_SECONDS = 30 * 60
REPO = Path(__file__).resolve().parents[2]
BREAKDOWN = (
    "process_start",
    "imports",
    "definitions_and_instance",
    "run_creation",
    "executor_around_steps",
    "step_work",
    "events_and_exit",
)
POD_START_LIKE = ("process_start", "imports", "definitions_and_instance")


def child(key: str) -> dict:
    """One run process: what the launcher's `dagster api execute_run` does, timed at each stage."""
    imports_began = time.time()
    import dagster as dg

    from amazon_optiply.bench.e2e import _step_seconds
    from amazon_optiply.definitions import defs
    from amazon_optiply.sync import sync_marketplace
    from amazon_optiply.tenants import TenantRegistry, split_partition_key

    imported = time.time()
    run_events_of = {
        dg.DagsterEventType.RUN_START: "start",
        dg.DagsterEventType.RUN_SUCCESS: "end",
        dg.DagsterEventType.RUN_FAILURE: "end",
    }
    definitions = defs()
    instance = dg.DagsterInstance.get()
    loaded = time.time()
    name, marketplace = split_partition_key(key)
    result = sync_marketplace(definitions, TenantRegistry.load().tenant(name), marketplace, instance)
    run = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": key}), limit=1)[0]
    run_events = {}
    for record in instance.all_logs(run.run_id):
        event = record.dagster_event
        if event is not None and event.event_type in run_events_of:
            run_events[run_events_of[event.event_type]] = record.timestamp
    steps = _step_seconds(instance, run.run_id)
    instance.dispose()
    return {
        "started": STARTED,
        "imports_began": imports_began,
        "imported": imported,
        "loaded": loaded,
        "run_start": run_events["start"],
        "run_end": run_events["end"],
        "step_seconds": sum(steps.values()),
        "steps": len(steps),
        "success": result.success,
        "line": result.line(),
    }


def launch(key: str, env: dict[str, str], workdir: Path) -> dict:
    """Start one run process, wait for it alone (os.wait4: its own CPU and peak RSS) and split its wall time."""
    out = workdir / f"{key.replace('/', '_')}.json"
    launched = time.time()
    with out.open("w") as stdout, (workdir / "stderr.log").open("a") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "amazon_optiply.bench.tenants", key], stdout=stdout, stderr=stderr, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    ended = time.time()
    measured = {
        "partition": key,
        "exit_code": proc.returncode,
        "wall_seconds": ended - launched,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # KiB on Linux
    }
    lines = out.read_text().strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {**measured, "success": False, "line": f"{key}: run process exited {proc.returncode}"}
    m = json.loads(lines[-1])
    measured["seconds"] = {
        "process_start": m["started"] - launched,
        "imports": m["imported"] - m["started"],
        "definitions_and_instance": m["loaded"] - m["imported"],
        "run_creation": m["run_start"] - m["loaded"],
        "executor_around_steps": m["run_end"] - m["run_start"] - m["step_seconds"],
        "step_work": m["step_seconds"],
        "events_and_exit": ended - m["run_end"],
    }
    return {**measured, "success": m["success"], "line": m["line"], "steps": m["steps"]}


def cycle(keys: list[str], parallel: int, env: dict[str, str], workdir: Path) -> dict:
    began = time.time()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        runs = list(pool.map(lambda k: launch(k, env, workdir), keys))
    return {"wall_seconds": time.time() - began, "runs": runs}


def project(
    cpu_per_run: float, pod_start_like: float, runs_per_minute: float, cores: int
) -> dict[str, float | int]:
    """Cores for PROJECTED_PARTITIONS runs per WINDOW_SECONDS, from what one steady-state run costs."""
    needed_per_minute = PROJECTED_PARTITIONS / (WINDOW_SECONDS / 60)
    return {
        # CPU-bound: every core busy all the time; run processes' CPU only.
        "cores_by_cpu": math.ceil(PROJECTED_PARTITIONS * cpu_per_run / WINDOW_SECONDS),
        # As measured here: this machine's throughput with `parallel` run processes, scaled linearly.
        "cores_by_throughput": math.ceil(needed_per_minute / runs_per_minute * cores),
        # Kubernetes, one pod per run: a pod's start costs about the process start, imports and definitions
        # again (image cached on the node; scheduling and container start not measured).
        "k8s_cpu_seconds_per_run": round(cpu_per_run + pod_start_like, 2),
        "k8s_cores": math.ceil(PROJECTED_PARTITIONS * (cpu_per_run + pod_start_like) / WINDOW_SECONDS),
        "needed_runs_per_minute": round(needed_per_minute, 1),
    }


def _registry_entry(name: str, marketplaces: tuple[str, ...], sandbox, coupling_id: int) -> dict:
    from amazon_optiply.sandbox.server import OPTIPLY_ACCOUNT_ID

    return {
        "name": name,
        "marketplaces": list(marketplaces),
        "optiply_account_id": OPTIPLY_ACCOUNT_ID,
        "optiply_coupling_id": coupling_id,
        "settings": {"orders_start": (sandbox.config.seller.origin - timedelta(days=2)).isoformat()},
        "endpoints": {
            "sp_api_endpoint": sandbox.sp_api_url,
            "lwa_token_url": f"{sandbox.sp_api_url}/auth/o2/token",
            "optiply_api_url": f"{sandbox.optiply_url}/v1",
            "optiply_token_url": f"{sandbox.optiply_url}/api/auth/oauth/token",
        },
    }


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def run(scale) -> dict:
    import dagster as dg
    import yaml

    from amazon_optiply.sandbox.amazon import AmazonSettings
    from amazon_optiply.sandbox.seller import SellerConfig
    from amazon_optiply.sandbox.server import Sandbox, SandboxConfig

    marketplaces = scale.tenants_marketplaces
    names = [f"tenant{i:03d}" for i in range(scale.tenants)]
    home = Path(tempfile.mkdtemp(prefix="bench-tenants-"))
    sandboxes: list[Sandbox] = []
    try:
        began = time.time()
        for i, _ in enumerate(names):
            seller = SellerConfig(
                seed=100 + i,
                marketplaces=marketplaces,
                skus=scale.tenants_skus,
                orders_per_day=scale.tenants_orders_per_day,
            )
            amazon = AmazonSettings(report_queue_seconds=0.05, report_processing_seconds=0.2, rate_scale=50)
            sandboxes.append(Sandbox(SandboxConfig(seller=seller, amazon=amazon)).start())
        sandbox_setup = time.time() - began
        entries = [
            _registry_entry(n, marketplaces, s, 1000 + i)
            for i, (n, s) in enumerate(zip(names, sandboxes, strict=True))
        ]
        (home / "tenants.yaml").write_text(yaml.safe_dump({"tenants": entries}, sort_keys=False))
        shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
        # Create the instance's SQLite storage once, as `dagster dev` or the daemon would before any run:
        # run processes starting together on a new home would each stamp its schema, and break it.
        dg.DagsterInstance.from_config(str(home)).dispose()
        # Every sandbox accepts the same default credentials: one set of secret variables serves all tenants.
        env = {**os.environ, **sandboxes[0].env()}
        for name in ("SP_API_ENDPOINT", "LWA_TOKEN_URL", "OPTIPLY_API_URL", "OPTIPLY_TOKEN_URL"):
            env.pop(name)  # each tenant names its own sandbox
        env.update(
            {
                "DAGSTER_HOME": str(home),
                "TENANTS_FILE": str(home / "tenants.yaml"),
                "ASSET_STORAGE_PATH": str(home / "assets"),
                "OPTIPLY_MIN_WRITE_INTERVAL_SECONDS": "0",
            }
        )
        keys = [f"{n}/{m}" for n in names for m in marketplaces]
        first = cycle(keys, scale.tenants_parallel, env, home)
        for sandbox in sandboxes:
            sandbox.advance(timedelta(minutes=30))
        own_before = resource.getrusage(resource.RUSAGE_SELF)
        steady = cycle(keys, scale.tenants_parallel, env, home)
        own_after = resource.getrusage(resource.RUSAGE_SELF)
        stderr_tail = (home / "stderr.log").read_text()[-3000:]
    finally:
        for sandbox in sandboxes:
            sandbox.stop()
        shutil.rmtree(home, ignore_errors=True)

    measured = [r for r in steady["runs"] if "seconds" in r]
    breakdown = {k: _median([r["seconds"][k] for r in measured]) for k in BREAKDOWN} if measured else {}
    cpu = [r["cpu_seconds"] for r in steady["runs"]]
    rss = [r["peak_rss_mb"] for r in steady["runs"]]
    runs_per_minute = round(len(keys) / steady["wall_seconds"] * 60, 2)
    cpu_per_run = _median(cpu)
    pod_start_like = round(sum(breakdown.get(k, 0.0) for k in POD_START_LIKE), 2)
    cores = os.cpu_count() or 1
    projection = project(cpu_per_run, pod_start_like, runs_per_minute, cores)
    success = all(r["success"] for r in first["runs"] + steady["runs"])
    return {
        "how": __doc__.split("\n\n", 1)[1].strip(),
        "tenants": scale.tenants,
        "marketplaces": list(marketplaces),
        "skus": scale.tenants_skus,
        "orders_per_day": scale.tenants_orders_per_day,
        "parallel": scale.tenants_parallel,
        "cores": cores,
        "sandboxes": len(sandboxes),
        "sandbox_setup_seconds_excluded": round(sandbox_setup, 1),
        "success": success,
        "stderr_tail": "" if success else stderr_tail,
        "cycles": {
            name: {
                "runs": len(c["runs"]),
                "succeeded": sum(r["success"] for r in c["runs"]),
                "wall_seconds": round(c["wall_seconds"], 1),
                "failures": [r["line"] for r in c["runs"] if not r["success"]],
            }
            for name, c in (("first_sync", first), ("steady_state", steady))
        },
        "steady_runs_per_minute": runs_per_minute,
        "steady_run_wall_seconds_median": _median([r["wall_seconds"] for r in steady["runs"]]),
        "steady_breakdown_seconds_median": breakdown,
        "steady_cpu_seconds_per_run": {"median": cpu_per_run, "max": round(max(cpu), 2)},
        "steady_peak_rss_mb_per_run": {"median": round(statistics.median(rss)), "max": round(max(rss))},
        "sandbox_cpu_seconds_steady": round(
            own_after.ru_utime + own_after.ru_stime - own_before.ru_utime - own_before.ru_stime, 1
        ),
        "pod_start_like_seconds": pod_start_like,
        "projection": projection,
        "targets": [
            {
                "name": f"tenants: {PROJECTED_PARTITIONS:,} tenant-marketplaces per 30 min on this machine",
                "target": f"<= {cores} cores",
                "value": projection["cores_by_throughput"],
                "met": projection["cores_by_throughput"] <= cores,
                "missed_by": f"+{projection['cores_by_throughput'] - cores} cores",
            }
        ],
    }


if __name__ == "__main__":
    print(json.dumps(child(sys.argv[1])))
