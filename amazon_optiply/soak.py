"""`python -m amazon_optiply.soak`: many 30-minute cycles against a hostile sandbox, with the sync killed
mid-delivery, then Optiply's final state compared with the sandbox seller's ground truth.

Each cycle advances the sandbox clock 30 minutes and runs `python -m amazon_optiply.sync` as its own
process, as the schedule would. On kill cycles that process gets SIGKILL as soon as Optiply has received
some of its writes: a crash in the middle of delivery. Afterwards, cycles keep running (faults still on,
clock still) until one succeeds for every marketplace, and the result is one line:

    cycles=30 kills=2 faults=412 orders_lost=0 orders_duplicated=0 orders_unexpected=0 products_wrong=0

The exit status is non-zero when any of the last four is not 0, or no cycle ever succeeded.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pandas as pd

from amazon_optiply.marketplaces import MARKETPLACES, fba_pool, fba_pool_home
from amazon_optiply.sandbox.amazon import AmazonSettings
from amazon_optiply.sandbox.faults import parse_faults
from amazon_optiply.sandbox.seller import SellerConfig
from amazon_optiply.sandbox.server import Sandbox, SandboxConfig

PRODUCT_FIELDS = ["name", "skuCode", "eanCode", "price", "stockLevel"]


def _sync_command() -> list[str]:
    return [sys.executable, "-m", "amazon_optiply.sync"]


def run_cycle(
    env: dict[str, str], sandbox: Sandbox, kill_after_writes: int | None, log_path: Path, log
) -> str:
    """One sync process (its output in `log_path`); returns "ok", "failed" or "killed"."""
    writes_before = len(sandbox.optiply.writes())
    with log_path.open("w") as out:
        process = subprocess.Popen(_sync_command(), env=env, stdout=out, stderr=out, start_new_session=True)
        while process.poll() is None:
            if (
                kill_after_writes is not None
                and len(sandbox.optiply.writes()) - writes_before >= kill_after_writes
            ):
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                log(f"  killed after {len(sandbox.optiply.writes()) - writes_before} writes")
                return "killed"
            time.sleep(0.02)
    # One summary line per partition: `<tenant>/<marketplace>: ...`.
    summary = [line for line in log_path.read_text().splitlines() if line.split(":")[0].count("/") == 1]
    for line in summary:
        log(f"  {line}")
    return "ok" if process.returncode == 0 else "failed"


def _or_none(value):
    return None if value is None or pd.isna(value) else value


def compare_with_ground_truth(
    sandbox: Sandbox, marketplaces: list[str], main: str, orders_start
) -> dict[str, int]:
    """Optiply's state against what the seller's data says it should be."""
    world, snapshot = sandbox.world, sandbox.optiply.snapshot()
    homes = fba_pool_home(marketplaces, main)
    expected = pd.concat(
        [
            world.expected_products(
                code,
                None if code == main else MARKETPLACES[code].marketplace_id,
                counts_pooled_fba=homes[fba_pool(code)] == code,
            )
            for code in marketplaces
        ],
        ignore_index=True,
    )
    held = pd.DataFrame(list(snapshot["products"].values()))
    counts = held["remoteId"].value_counts() if len(held) else pd.Series(dtype=int)
    wrong = [{"remoteId": r, "problem": f"{n} copies"} for r, n in counts.items() if n > 1]
    held_by_id = held.drop_duplicates("remoteId").set_index("remoteId") if len(held) else pd.DataFrame()
    for row in expected.to_dict("records"):
        if row["remoteId"] not in held_by_id.index:
            wrong.append({"remoteId": row["remoteId"], "problem": "missing"})
            continue
        got = held_by_id.loc[row["remoteId"]]
        differs = [
            f"{field}: expected {row[field]!r}, Optiply {got.get(field)!r}"
            for field, same in (
                ("name", got["name"] == row["name"]),
                ("skuCode", got["skuCode"] == row["skuCode"]),
                ("eanCode", _or_none(got.get("eanCode")) == _or_none(row["eanCode"])),
                ("price", abs(float(got["price"]) - row["price"]) < 0.005),
                ("stockLevel", int(got["stockLevel"]) == int(row["stockLevel"])),
            )
            if not same
        ]
        if differs:
            wrong.append({"remoteId": row["remoteId"], "problem": "; ".join(differs)})
    wrong += [
        {"remoteId": r, "problem": "not expected"} for r in set(held_by_id.index) - set(expected["remoteId"])
    ]
    products_wrong = pd.DataFrame(wrong, columns=["remoteId", "problem"])

    now = sandbox.clock.now()
    expected_orders = {
        o.order_id for c in marketplaces for o in world.expected_sell_orders(c, orders_start, now)
    }
    posted = Counter(r["remoteId"] for r in snapshot["sellOrders"].values())
    return {
        "orders_expected": len(expected_orders),
        "orders_lost": len(expected_orders - set(posted)),
        "orders_duplicated": sum(n - 1 for n in posted.values()),
        "orders_unexpected": len(set(posted) - expected_orders),
        "products_expected": len(expected),
        "products_wrong": len(products_wrong),
        "products_wrong_rows": products_wrong,
    }


def soak(
    cycles: int, kills: int, marketplaces: list[str], skus: int, faults: str, seed: int, workdir: Path, log
) -> dict[str, int]:
    config = SandboxConfig(
        seller=SellerConfig(marketplaces=tuple(marketplaces), skus=skus, orders_per_day=200, seed=seed),
        amazon=AmazonSettings(report_queue_seconds=0.05, report_processing_seconds=0.3, rate_scale=20),
        faults=parse_faults(faults),
        frozen_clock=True,
    )
    sandbox = Sandbox(config).start()
    orders_start = config.seller.origin - timedelta(days=1)
    (workdir / "dagster").mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **sandbox.env(),
        "AMAZON_MARKETPLACES": ",".join(marketplaces),
        "ORDERS_START": orders_start.isoformat(),
        "OPTIPLY_MIN_WRITE_INTERVAL_SECONDS": "0",
        "SYNC_STATE_DATABASE_URL": f"sqlite:///{workdir / 'state.sqlite'}",
        "ASSET_STORAGE_PATH": str(workdir / "assets"),
        "DAGSTER_HOME": str(workdir / "dagster"),
        "AMAZON_REPORT_DEADLINE_SECONDS": "120",
    }
    # Kill cycles spread over the run, never the last one.
    kill_cycles = {round((i + 1) * cycles / (kills + 1)) for i in range(kills)} if kills else set()
    outcomes: Counter[str] = Counter()
    try:
        for cycle in range(1, cycles + 1):
            sandbox.advance(timedelta(minutes=30))
            # Kill once a few writes went out: products are written first, orders after them.
            kill_after = 3 + cycle % 7 if cycle in kill_cycles else None
            outcome = run_cycle(env, sandbox, kill_after, workdir / f"cycle-{cycle:03d}.log", log)
            if cycle in kill_cycles and outcome != "killed":
                kill_cycles.add(cycle + 1)  # the process ended before writing: kill the next one
            outcomes[outcome] += 1
            log(f"cycle {cycle}: {outcome} (faults so far {sandbox.faults.total_injected})")
        settled = False
        for attempt in range(1, 9):  # faults stay on: the platform must settle through them
            outcome = run_cycle(env, sandbox, None, workdir / f"settle-{attempt}.log", log)
            log(f"settle {attempt}: {outcome}")
            if outcome == "ok":
                settled = True
                break
        result = compare_with_ground_truth(sandbox, marketplaces, marketplaces[0], orders_start)
        wrong = result.pop("products_wrong_rows")
        wrong.to_csv(workdir / "products_wrong.csv", index=False)
        for row in wrong.head(10).itertuples():
            log(f"  product {row.remoteId}: {row.problem}")
        return {
            "cycles": cycles,
            "kills": outcomes["killed"],
            "failed_cycles": outcomes["failed"],
            "faults": sandbox.faults.total_injected,
            **result,
            "settled": int(settled),
        }
    finally:
        sandbox.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amazon_optiply.soak", description=__doc__)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument(
        "--kills", type=int, default=2, help="cycles whose sync process is killed mid-delivery"
    )
    parser.add_argument("--marketplaces", default="DE,US")
    parser.add_argument("--skus", type=int, default=300)
    parser.add_argument("--faults", default="hostile", help="a sandbox fault profile, e.g. hostile or flaky")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None, help="kept for inspection; default a temp dir")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        workdir = args.workdir or Path(tmp)
        r = soak(
            args.cycles,
            args.kills,
            args.marketplaces.split(","),
            args.skus,
            args.faults,
            args.seed,
            workdir,
            log,
        )
    print(
        f"cycles={r['cycles']} kills={r['kills']} failed_cycles={r['failed_cycles']} faults={r['faults']} "
        f"orders={r['orders_expected']} products={r['products_expected']} "
        f"orders_lost={r['orders_lost']} orders_duplicated={r['orders_duplicated']} "
        f"orders_unexpected={r['orders_unexpected']} products_wrong={r['products_wrong']}",
        flush=True,
    )
    bad = r["orders_lost"] or r["orders_duplicated"] or r["orders_unexpected"] or r["products_wrong"]
    if not r["settled"]:
        print("no cycle succeeded for every marketplace after the soak", flush=True)
    return 1 if bad or not r["settled"] or r["kills"] < args.kills else 0


if __name__ == "__main__":
    sys.exit(main())
