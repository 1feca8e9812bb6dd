"""`python -m amazon_optiply.soak`: many 30-minute cycles against a hostile sandbox, with the sync killed
mid-delivery, then Optiply's final state compared with the sandbox seller's ground truth.

Each cycle advances the sandbox clock 30 minutes and forks a child process that runs what
`python -m amazon_optiply.sync` runs (`sync_all` on a Dagster instance) in-process: the soak imports
Dagster and the platform once, each child starts with them and with nothing else of the cycles before.
On kill cycles the child dies by SIGKILL (no cleanup, no finally) at one of four points in turn
(KILL_POINTS): as Optiply applies a sell order, before its answer; a few writes into delivery, seen by
polling; inside a write's retry (a 429, a 5xx, an answer lost); inside the orders cursor's commit, its
UPDATE sent. Faults come from both sides (the `hostile` profile: Amazon's, and Optiply's 429s, 5xx, lost
and slow answers). Afterwards, cycles keep running (faults still on, clock still) until one succeeds for
every marketplace, and the result is one line:

    cycles=30 kills=2 faults=412 orders_lost=0 orders_duplicated=0 orders_unexpected=0 products_wrong=0

The exit status is non-zero when any of the last four is not 0, or no cycle ever succeeded.

A cycle's marketplaces sync at once, a child process each (as the run queue starts a tenant's runs), on
an in-memory Dagster instance; waits are shrunk with the sandbox (see RATE_SCALE), so a cycle takes
seconds. `--worlds seller,secondary,vendor` (what `make soak` runs) gives the full flavour most cycles,
then a tenth each to the secondary flavour (sell orders onto the products a shop system made, judged by
compare_secondary_with_ground_truth) and to the vendor world below, and sums the counters on the last line.

With `--vendor` the sandbox gets a Vendor Central world and the registry (a TENANTS_FILE the soak writes)
one vendor tenant (`--vendor-flavour full` or `sell_orders_only`); each cycle advances the clock
`--vendor-step-hours` (6 by default: purchase orders are acknowledged, received and closed over days),
kills aim at each vendor entity's delivery in turn (receipt lines, products, buy orders, sell orders; the
first round as Optiply applies the write, before the sync hears back), the tenant settles through the
faults (a cycle whose report a fault CANCELLED does not count as settled: it keeps older figures), and
the end state is compared with the vendor world's ground truth (sandbox/vendor_truth.py): buy orders,
their lines, receipt lines (per line they add up to Amazon's cumulative received count, each remoteId once)
and sell orders count as orders; suppliers, products and supplier products as products. Order records
whose fields differ from the truth are counted as `orders_wrong` (also a failure), on the same line.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import resource
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from unittest import mock

import pandas as pd
import yaml

from amazon_optiply.marketplaces import MARKETPLACES, fba_pool, fba_pool_home
from amazon_optiply.sandbox import vendor_truth
from amazon_optiply.sandbox.amazon import AmazonSettings
from amazon_optiply.sandbox.faults import parse_faults
from amazon_optiply.sandbox.seller import SellerConfig
from amazon_optiply.sandbox.server import OPTIPLY_ACCOUNT_ID, OPTIPLY_COUPLING_ID, Sandbox, SandboxConfig
from amazon_optiply.sandbox.vendor import VendorConfig, VendorFacts
from amazon_optiply.tenants import DEFAULT_TENANT, partition_key

PRODUCT_FIELDS = ["name", "skuCode", "eanCode", "price", "stockLevel"]
SUMMARY_LINE = re.compile(r"^[a-z0-9][a-z0-9_-]*/[A-Z]{2}: ")  # the sync's line per partition


# Where a kill cycle's sync dies. "poll": once Optiply has received some of its writes, seen from the soak
# (a little after that write); "answer": from within the sandbox as Optiply applies a write, before its
# answer (Optiply has the record, the sync never learns its id); "retry": the sync kills itself as a write
# it sent has failed transiently and is about to be retried (a 429, a 5xx, an answer lost or too slow);
# "cursor": the sync kills itself inside the orders cursor's commit, its UPDATE sent, the transaction open.
KILL_POINTS = ("answer", "poll", "retry", "cursor")


_definitions = None  # the platform's Definitions, built once in the soak's process (see _preload)


def _preload(env: dict[str, str]) -> None:
    """Import what a sync needs and build its Definitions once, in the soak's process, under the children's
    environment: each cycle's forked child starts with them (building them took a tenth of a cycle)."""
    global _definitions
    for module in ("dagster", "amazon_optiply.definitions", "amazon_optiply.sync"):
        importlib.import_module(module)
    from amazon_optiply.definitions import defs

    with mock.patch.dict(os.environ, env, clear=True):
        _definitions = defs()
        _definitions.get_repository_def()  # resolves every job now, not in each child


def _arm_self_kill(point: str) -> None:
    """In the child: SIGKILL itself at `point` ("retry" or "cursor"). A real death: no finally, no flush."""
    import sqlalchemy as sa

    from amazon_optiply.clients.optiply import OptiplyClient
    from amazon_optiply.state import SyncState

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "retry":
        attempt = OptiplyClient._attempt

        def attempt_then_die(self, method, *args, **kwargs):
            result = attempt(self, method, *args, **kwargs)
            if method in ("POST", "PATCH", "DELETE") and result.transient:
                die()  # the write is in doubt (maybe applied) and its retry not yet sent
            return result

        OptiplyClient._attempt = attempt_then_die
    elif point == "cursor":
        committing = threading.local()
        commit = SyncState.commit_orders_cursor

        def commit_marked(self, *args, **kwargs):
            committing.on = True
            try:
                return commit(self, *args, **kwargs)
            finally:
                committing.on = False

        def after_execute(conn, clauseelement, *args) -> None:
            if getattr(committing, "on", False) and isinstance(clauseelement, sa.sql.dml.Update):
                die()  # the cursor's UPDATE is sent, its transaction not committed

        SyncState.commit_orders_cursor = commit_marked
        sa.event.listen(sa.engine.Engine, "after_execute", after_execute)


# The sandbox's Amazon runs at RATE_SCALE times Amazon's rates (a cycle takes seconds, not 30 minutes, and
# must not wait for createReport's one a minute) and makes a report in REPORT_SECONDS; the SP-API caller's
# backoff after a transient failure (0.5 s doubling to 30 s) is BACKOFF_SCALE times shorter in the soak's
# children, and its report polling as fast as reports are made, or a hostile cycle spends most of its time
# asleep. Only the waits shrink: every retry, poll and throttle (the faults' 429s) still happens.
RATE_SCALE = 1000
BACKOFF_SCALE = 100
REPORT_SECONDS = 0.05


def _compress_amazon_waits() -> None:
    from amazon_optiply.clients.amazon import SpApiCaller
    from amazon_optiply.clients.selling_partner import SellingPartner

    init = SpApiCaller.__init__
    base = init.__defaults__  # positional defaults: max_attempts, backoff_base, backoff_cap, ...
    if base is not None:
        names = init.__code__.co_varnames[1 : init.__code__.co_argcount]
        values = dict(zip(names[-len(base) :], base, strict=True))
        values["backoff_base"] /= BACKOFF_SCALE
        values["backoff_cap"] /= BACKOFF_SCALE
        init.__defaults__ = tuple(values[n] for n in names[-len(base) :])
    # Reports are DONE within REPORT_SECONDS (slow ones ten times that): polled as often, not once a second.
    partner_init = SellingPartner.__init__

    def polling_faster(self, *args, **kwargs):
        partner_init(self, *args, **kwargs)
        self.max_poll_interval_seconds = min(self.max_poll_interval_seconds, REPORT_SECONDS)

    SellingPartner.__init__ = polling_faster


# The Dagster instance of the soak's children: no telemetry, and no compute log capture (by default each
# step's output is mirrored to files by helper processes started per run: seconds per cycle, nothing a
# kill or a fault touches).
SOAK_DAGSTER_YAML = """\
telemetry:
  enabled: false
compute_logs:
  module: dagster._core.storage.noop_compute_log_manager
  class: NoOpComputeLogManager
"""


def _dagster_home(workdir: Path) -> Path:
    home = workdir / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(SOAK_DAGSTER_YAML)
    return home


def _child(env: dict[str, str], log_path: Path, self_kill: str | None, partition: str | None) -> None:
    """A forked cycle's sync of one partition (every partition when None), as `python -m amazon_optiply.sync`
    would run it, on an in-memory Dagster instance: the soak checks Optiply and the state database, not
    Dagster's run history, and writing that history to disk cost a third of a cycle."""
    code = 2
    try:
        os.setsid()
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 (the child never returns)
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        os.environ.clear()
        os.environ.update(env)
        import logging

        logging.basicConfig(stream=sys.stderr, level=logging.WARNING, force=True)
        import dagster as dg

        from amazon_optiply.sync import sync_all

        if self_kill:
            _arm_self_kill(self_kill)
        _compress_amazon_waits()
        instance, only = dg.DagsterInstance.ephemeral(), None if partition is None else {partition}
        if env.get("SOAK_PROFILE"):  # --profile: where a cycle's time goes, per partition
            import cProfile

            profile = cProfile.Profile()
            results = profile.runcall(sync_all, instance, only, _definitions)
            profile.dump_stats(log_path.with_suffix(".prof"))
        else:
            results = sync_all(instance, only, _definitions)
        for r in results:
            print(r.line(), flush=True)
        code = 0 if all(r.success for r in results) else 1
    except BaseException:  # whatever happens, the child must not return into the soak
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _is_write_to(entry: dict, entity: str | None) -> bool:
    """Whether a logged Optiply request is a write (to `entity` only, when given)."""
    if entry["method"] not in ("POST", "PATCH", "DELETE"):
        return False
    path = entry["path"]
    if entity is None:
        return path.startswith("/v1/")
    return path == f"/v1/{entity}" or path.startswith(f"/v1/{entity}/")


def _writes(sandbox: Sandbox, entity: str | None = None) -> int:
    """How many writes Optiply has received (to `entity` only, when given), answered or not."""
    received = sandbox.optiply.writes_received
    return received[entity] if entity else sum(received.values())


def run_cycle(
    env: dict[str, str],
    sandbox: Sandbox,
    kill_after_writes: int | None,
    log_path: Path,
    log,
    kill_entity: str | None = None,
    before_answer: bool = False,
    self_kill: str | None = None,
    partitions: tuple[str | None, ...] = (None,),
) -> str:
    """One sync: a forked child process per partition, all at once as the run queue starts them (output in
    `log_path`, a file per partition); returns "ok", "failed" or "killed".

    With `kill_after_writes` every child is killed (SIGKILL, its whole process group: the machine dies) once
    Optiply has received that many of the cycle's writes (to `kill_entity` only, when given): mid-delivery.
    Seen by polling, the kill lands a little after that write; `before_answer` kills from within the sandbox
    as it applies the write, before answering: Optiply has the record, the sync never learns its id. With
    `self_kill` ("retry" or "cursor") a child kills itself at that point instead (see KILL_POINTS).
    """
    writes_before, entity_before = _writes(sandbox), _writes(sandbox, kill_entity)
    killed = threading.Event()
    sys.stdout.flush()
    sys.stderr.flush()
    logs: dict[int, Path] = {}
    for partition in partitions:
        path = (
            log_path
            if partition is None
            else log_path.with_name(f"{log_path.stem}-{partition.replace('/', '-')}.log")
        )
        pid = os.fork()
        if pid == 0:
            _child(env, path, self_kill, partition)
        logs[pid] = path

    def kill_all() -> None:
        for child in running:
            _kill_group(child)
        killed.set()

    running = set(logs)
    if kill_after_writes is not None and before_answer:
        seen = [0]

        def on_write(entry: dict) -> None:
            if not killed.is_set() and _is_write_to(entry, kill_entity):
                seen[0] += 1
                if seen[0] >= kill_after_writes:
                    kill_all()

        sandbox.optiply.on_write = on_write
    statuses: dict[int, int] = {}
    try:
        while running:
            for child in list(running):
                done, status = os.waitpid(child, os.WNOHANG)
                if done:
                    running.discard(child)
                    statuses[child] = status
            if (
                running
                and kill_after_writes is not None
                and not before_answer
                and not killed.is_set()
                and _writes(sandbox, kill_entity) - entity_before >= kill_after_writes
            ):
                kill_all()
            time.sleep(0.005)
    finally:
        sandbox.optiply.on_write = None
    signalled = any(os.WIFSIGNALED(s) and os.WTERMSIG(s) == signal.SIGKILL for s in statuses.values())
    if killed.is_set() or signalled:
        target = f" ({kill_entity} {_writes(sandbox, kill_entity) - entity_before})" if kill_entity else ""
        when = ", the last one before its answer" if before_answer else ""
        when = (
            f", by itself {'inside a retry' if self_kill == 'retry' else 'committing the orders cursor'}"
            if self_kill
            else when
        )
        log(f"  killed after {_writes(sandbox) - writes_before} writes{target}{when}")
        return "killed"
    # One summary line per partition: `<tenant>/<marketplace>: ...`.
    for path in logs.values():
        for line in path.read_text().splitlines():
            if SUMMARY_LINE.match(line):
                log(f"  {line}")
    ok = all(os.WIFEXITED(s) and os.WEXITSTATUS(s) == 0 for s in statuses.values())
    return "ok" if ok else "failed"


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:  # already gone; or not yet its own group: the process itself
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _or_none(value):
    return None if value is None or pd.isna(value) else value


def _sell_order_counts(expected: Collection[str], snapshot: dict) -> dict[str, int]:
    """The seller worlds' order counters: the truth's sell orders against the ones Optiply holds."""
    posted = Counter(r["remoteId"] for r in snapshot["sellOrders"].values())
    return {
        "orders_expected": len(expected),
        "orders_lost": len(set(expected) - posted.keys()),
        "orders_duplicated": sum(n - 1 for n in posted.values()),
        "orders_unexpected": len(posted.keys() - set(expected)),
    }


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
    return {
        **_sell_order_counts(expected_orders, snapshot),
        "products_expected": len(expected),
        "products_wrong": len(products_wrong),
        "products_wrong_rows": products_wrong,
    }


def compare_secondary_with_ground_truth(
    sandbox: Sandbox, marketplaces: list[str], orders_start, shop: dict[str, int], shop_products: dict
) -> dict:
    """The secondary flavour's end state: each sell order once, its lines on the shop's product of their SKU
    with Amazon's quantities and its total Amazon's (else `orders_wrong`), and the shop's products untouched:
    one changed, gone or added is `products_wrong`."""
    snapshot = sandbox.optiply.snapshot()
    expected = {
        o.order_id: o
        for code in marketplaces
        for o in sandbox.world.expected_sell_orders(code, orders_start, sandbox.clock.now())
    }
    orders_wrong = 0
    for record in snapshot["sellOrders"].values():
        order = expected.get(record["remoteId"])
        if order is None:
            continue
        sent = sorted((line["productId"], line["quantity"]) for line in record["orderLines"])
        want = sorted((shop.get(line["sku"]), line["quantity"]) for line in order.lines)
        orders_wrong += sent != want or abs(float(record["totalValue"]) - order.total_value) >= 0.005
    products = snapshot["products"]
    wrong = [
        {"remoteId": str(i), "problem": "changed"}
        for i in products.keys() & shop_products.keys()
        if products[i] != shop_products[i]
    ]
    wrong += [{"remoteId": str(i), "problem": "gone"} for i in shop_products.keys() - products.keys()]
    wrong += [
        {"remoteId": str(i), "problem": "written by the sync"} for i in products.keys() - shop_products.keys()
    ]
    return {
        **_sell_order_counts(expected.keys(), snapshot),
        "orders_wrong": orders_wrong,
        "products_expected": len(shop_products),
        "products_wrong": len(wrong),
        "products_wrong_rows": pd.DataFrame(wrong, columns=["remoteId", "problem"]),
    }


def _cpu_seconds(since: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float]:
    """(the cycles' children, the soak's own process: its sandbox) CPU seconds, less `since`."""
    children, own = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    return (
        children.ru_utime + children.ru_stime - since[0],
        own.ru_utime + own.ru_stime - since[1],
    )


def run_cycles(
    sandbox: Sandbox,
    env: dict[str, str],
    cycles: int,
    kills: int,
    step: timedelta,
    workdir: Path,
    log,
    kill_point,
    settled=lambda cycle_faults: True,
    partitions: tuple[str | None, ...] = (None,),
) -> tuple[Counter[str], bool]:
    """`cycles` cycles, each advancing the clock `step` and running one sync process, `kills` of them killed
    mid-delivery; then cycles on the same clock (faults still on) until one is "ok" and `settled` accepts
    the faults injected during it. `kill_point(cycle, kills_so_far, deferred)` says when to kill: (writes,
    entity or None for any, whether before the answer[, self kill]), see run_cycle. Returns the outcomes and whether it settled."""
    # Kill cycles spread over the run, never the last one.
    kill_cycles = {round((i + 1) * cycles / (kills + 1)) for i in range(kills)} if kills else set()
    outcomes: Counter[str] = Counter()
    deferred = 0
    for cycle in range(1, cycles + 1):
        sandbox.advance(step)
        after, entity, before_answer, self_kill = (
            (*kill_point(cycle, outcomes["killed"], deferred), None)[:4]
            if cycle in kill_cycles
            else (None, None, False, None)
        )
        began, cpu_before = time.perf_counter(), _cpu_seconds()
        outcome = run_cycle(
            env,
            sandbox,
            after,
            workdir / f"cycle-{cycle:04d}.log",
            log,
            entity,
            before_answer,
            self_kill,
            partitions,
        )
        took, (sync_cpu, sandbox_cpu) = time.perf_counter() - began, _cpu_seconds(cpu_before)
        if cycle in kill_cycles:
            if outcome != "killed":
                kill_cycles.add(cycle + 1)  # the process ended before writing that much: kill the next one
                deferred += 1
            else:
                deferred = 0
        outcomes[outcome] += 1
        log(
            f"cycle {cycle}: {outcome} in {took:.1f} s, CPU {sync_cpu:.1f} s sync + {sandbox_cpu:.1f} s sandbox "
            f"(faults so far {sandbox.faults.total_injected})"
        )
    for attempt in range(1, 9):  # faults stay on: the platform must settle through them
        before = dict(sandbox.faults.injected)
        outcome = run_cycle(env, sandbox, None, workdir / f"settle-{attempt}.log", log, partitions=partitions)
        injected = {k: n - before[k] for k, n in sandbox.faults.injected.items() if n > before[k]}
        log(f"settle {attempt}: {outcome}")
        if outcome == "ok":
            if settled(injected):
                return outcomes, True
            log(f"  not settled: faults during it {injected}")
    return outcomes, False


def soak(
    cycles: int,
    kills: int,
    marketplaces: list[str],
    skus: int,
    faults: str,
    seed: int,
    workdir: Path,
    log,
    flavour: str = "full",
) -> dict[str, int]:
    config = SandboxConfig(
        seller=SellerConfig(marketplaces=tuple(marketplaces), skus=skus, orders_per_day=200, seed=seed),
        amazon=AmazonSettings(
            report_queue_seconds=0.01, report_processing_seconds=REPORT_SECONDS, rate_scale=RATE_SCALE
        ),
        faults=parse_faults(faults),
        frozen_clock=True,
    )
    sandbox = Sandbox(config).start()
    orders_start = config.seller.origin - timedelta(days=1)
    _dagster_home(workdir)
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
    shop: dict[str, int] = {}
    if flavour == "secondary":  # sell orders only, onto the products the seller's shop system made by SKU
        skus_sold = sorted(set(sandbox.world.catalog["sku"]))
        ids = sandbox.optiply.preload_products(
            [{"name": f"Shop {sku}", "skuCode": sku, "stockLevel": 7} for sku in skus_sold]
        )
        shop = dict(zip(skus_sold, ids, strict=True))
        env |= {"OPTIPLY_FLAVOUR": "secondary", "OPTIPLY_MATCH_KEY": "skuCode"}
    shop_products = sandbox.optiply.snapshot()["products"]
    _preload(env)

    def seller_kill_point(cycle: int, kills_so_far: int, deferred: int) -> tuple:
        """The kill points in turn (KILL_POINTS); one not met in its cycle (no retry of a write, no
        cursor to commit) moves to the next cycle, and after four such moves becomes a kill by polling."""
        point = KILL_POINTS[kills_so_far % len(KILL_POINTS)] if deferred < 4 else "poll"
        if point == "answer":  # sell orders: the record Optiply has and the sync never heard of
            return 1 + cycle % 3, "sellOrders", True
        if point == "poll":  # products are written first, orders after them
            return 3 + cycle % 7, None, False
        return None, None, False, point

    try:
        outcomes, settled = run_cycles(
            sandbox,
            env,
            cycles,
            kills,
            timedelta(minutes=30),
            workdir,
            log,
            kill_point=seller_kill_point,
            partitions=tuple(partition_key(DEFAULT_TENANT, code) for code in marketplaces),
        )
        if flavour == "secondary":
            result = compare_secondary_with_ground_truth(
                sandbox, marketplaces, orders_start, shop, shop_products
            )
        else:
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


# ---- the vendor variant ----------------------------------------------------------------------------------

VENDOR_TENANT = "vendorsoak"
# What the kills of a vendor soak aim at, in turn: (entity, how many of its writes in the cycle before the
# kill). Receipt lines first: a receipt counted twice is the costliest mistake. The first round of kills
# lands as Optiply applies the write, before its answer (the record exists, the sync never learns its id);
# the next round a little after, by polling; and so on. A kill whose entity is not written in its cycle
# moves to the next cycle; after four such moves (a day at 6-hour cycles) it takes any write.
VENDOR_KILL_TARGETS = {
    "full": (("receiptLines", 1), ("products", 2), ("buyOrders", 1), ("sellOrders", 4)),
    "sell_orders_only": (("sellOrders", 1), ("sellOrders", 2)),
}


@dataclass
class Tally:
    """The soak's counters and the problems behind them, a row per record found wrong."""

    counts: Counter[str] = field(default_factory=Counter)
    rows: list[dict] = field(default_factory=list)

    def add(self, counter: str, entity: str, remote_id: str, problem: str, n: int = 1) -> None:
        self.counts[counter] += n
        self.rows.append({"counter": counter, "entity": entity, "remoteId": remote_id, "problem": problem})


def _by_remote_id(records: dict[int, dict]) -> dict[str, list[dict]]:
    """remoteId -> every copy Optiply holds (with its id), lowest id first."""
    out: dict[str, list[dict]] = defaultdict(list)
    for record_id in sorted(records):
        out[str(records[record_id].get("remoteId"))].append({"id": record_id, **records[record_id]})
    return out


def _same(got, want) -> bool:
    if isinstance(want, float) and isinstance(got, int | float):
        return abs(got - want) < 0.005
    return got == want


def _differences(got: dict, want: dict) -> list[str]:
    return [
        f"{k}: expected {v!r}, Optiply {got.get(k)!r}" for k, v in want.items() if not _same(got.get(k), v)
    ]


def _check_products(
    tally: Tally, entity: str, held: dict[str, list[dict]], expected: dict[str, dict]
) -> None:
    """Product-like records (suppliers, products, supplierProducts): each wrong one counts once."""
    for remote_id in sorted(held.keys() | expected.keys()):
        copies = held.get(remote_id, [])
        if not copies:
            problems = ["missing"]
        elif remote_id not in expected:
            problems = ["not expected"]
        else:
            problems = [f"{len(copies)} copies"] if len(copies) > 1 else []
            problems += _differences(copies[0], expected[remote_id])
        if problems:
            tally.add("products_wrong", entity, remote_id, "; ".join(problems))


def _check_orders(tally: Tally, entity: str, held: dict[str, list[dict]], expected: dict[str, dict]) -> None:
    """Order records (buy orders, their lines, sell orders): lost, duplicated, unexpected or wrong."""
    for remote_id in sorted(held.keys() | expected.keys()):
        copies = held.get(remote_id, [])
        if not copies:
            tally.add("orders_lost", entity, remote_id, "missing")
        elif remote_id not in expected:
            tally.add(
                "orders_unexpected", entity, remote_id, f"not expected ({len(copies)} held)", len(copies)
            )
        else:
            if len(copies) > 1:
                tally.add("orders_duplicated", entity, remote_id, f"{len(copies)} copies", len(copies) - 1)
            differs = _differences(copies[0], expected[remote_id])
            if differs:
                tally.add("orders_wrong", entity, remote_id, "; ".join(differs))


def _first_id(held: dict[str, list[dict]], remote_id: str) -> int | None:
    copies = held.get(remote_id)
    return copies[0]["id"] if copies else None


def _check_receipts(tally: Tally, snapshot: dict, held_lines: dict[str, list[dict]], orders: dict) -> int:
    """Per buy order line, its receipt lines add up to what Amazon received (never more), each remoteId
    (`<line>-<cumulative>`) once, the newest one on Amazon's last receive date. Returns the lines expected
    to have receipts."""
    receipts = _by_remote_id(snapshot["receiptLines"])
    for remote_id, copies in receipts.items():
        if len(copies) > 1:
            tally.add(
                "orders_duplicated", "receiptLines", remote_id, f"{len(copies)} copies", len(copies) - 1
            )
    line_of = {copy["id"]: remote_id for remote_id, copies in held_lines.items() for copy in copies}
    expected_lines = {line_id: line for order in orders.values() for line_id, line in order["lines"].items()}
    on_line: dict[str, list[dict]] = defaultdict(list)
    for remote_id, copies in receipts.items():
        for receipt in copies:
            line_id = line_of.get(receipt.get("buyOrderLineId"))
            match = re.fullmatch(r"(.+)-(\d+)", remote_id)
            if line_id not in expected_lines or match is None or match.group(1) != line_id:
                problem = f"on line {line_id or receipt.get('buyOrderLineId')}, not a receipt of it"
                tally.add("orders_unexpected", "receiptLines", remote_id, problem)
                continue
            if int(match.group(2)) > expected_lines[line_id]["received"]:
                problem = (
                    f"names {match.group(2)} received, Amazon received {expected_lines[line_id]['received']}"
                )
                tally.add("orders_unexpected", "receiptLines", remote_id, problem)
                continue
            on_line[line_id].append(receipt)
    with_receipts = 0
    for line_id, line in expected_lines.items():
        if not line["received"] and not on_line.get(line_id):
            continue
        with_receipts += 1
        got = on_line.get(line_id, [])
        total = sum(int(r["quantity"]) for r in got)
        doubled = len({r["remoteId"] for r in got}) < len(got)
        if total < line["received"]:
            problem = f"receipts add up to {total}, Amazon received {line['received']}"
            tally.add("orders_lost", "receiptLines", line_id, problem)
        elif total > line["received"] and not doubled:  # a doubled remoteId is counted above
            problem = f"receipts add up to {total}, Amazon received {line['received']}"
            tally.add("orders_duplicated", "receiptLines", line_id, problem)
        elif line["received"]:
            newest = [r for r in got if r["remoteId"] == f"{line_id}-{line['received']}"]
            when = vendor_truth.optiply_time(line["last_receive_date"])
            if not newest:
                tally.add("orders_wrong", "receiptLines", line_id, f"no receipt {line_id}-{line['received']}")
            elif newest[0].get("occurred") != when:
                problem = f"newest occurred {newest[0].get('occurred')!r}, Amazon received on {when}"
                tally.add("orders_wrong", "receiptLines", line_id, problem)
    return with_receipts


def compare_vendor_with_ground_truth(
    facts: VendorFacts,
    snapshot: dict[str, dict[int, dict]],
    flavour: str,
    orders_start: datetime,
    parent: list[dict] | None = None,
) -> dict:
    """Optiply's state (a sandbox snapshot) against what the vendor world says it should hold.

    Orders: buy orders, buy order lines, receipt lines (per line) and sell orders; products: suppliers,
    products and supplier products (in sell_orders_only: the parent's products, untouched, and nothing else).
    """
    tally = Tally()
    held = {entity: _by_remote_id(records) for entity, records in snapshot.items()}
    if flavour == "full":
        suppliers = vendor_truth.expected_suppliers(facts)
        products = vendor_truth.expected_products(facts)
        _check_products(tally, "suppliers", held["suppliers"], suppliers)
        _check_products(tally, "products", held["products"], products)
        supplier_products = {
            remote_id: {
                "supplierId": _first_id(held["suppliers"], sp["supplier"]),
                "productId": _first_id(held["products"], sp["product"]),
                "price": sp["price"],
                "deliveryTime": sp["deliveryTime"],
            }
            for remote_id, sp in vendor_truth.expected_supplier_products(facts).items()
        }
        _check_products(tally, "supplierProducts", held["supplierProducts"], supplier_products)
        product_of_asin = {p.asin: _first_id(held["products"], p.ean) for p in facts.products}

        orders = vendor_truth.expected_buy_orders(facts)
        buy_orders = {
            number: {
                "supplierId": _first_id(held["suppliers"], order["supplier"]),
                **{k: order[k] for k in ("placed", "expectedDeliveryDate", "totalValue", "completed")},
            }
            for number, order in orders.items()
        }
        _check_orders(tally, "buyOrders", held["buyOrders"], buy_orders)
        lines = {
            line_id: {
                "buyOrderId": _first_id(held["buyOrders"], number),
                "productId": product_of_asin[line["asin"]],
                "quantity": line["quantity"],
                "subtotalValue": line["subtotalValue"],
            }
            for number, order in orders.items()
            for line_id, line in order["lines"].items()
        }
        _check_orders(tally, "buyOrderLines", held["buyOrderLines"], lines)
        receipt_lines = _check_receipts(tally, snapshot, held["buyOrderLines"], orders)

        demand = vendor_truth.expected_demand(facts, orders_start)
        sell_orders = {
            key: {
                "totalValue": order["totalValue"],
                "orderLines": [
                    {"productId": product_of_asin[key.split("-", 1)[0]], "quantity": order["quantity"]}
                ],
            }
            for key, order in demand.items()
        }
        demand_lines = _sell_order_lines(held["sellOrders"], ("productId", "quantity"))
        _check_orders(tally, "sellOrders", demand_lines, sell_orders)
        orders_expected = len(buy_orders) + len(lines) + receipt_lines + len(sell_orders)
        products_expected = len(suppliers) + len(products) + len(supplier_products)
    else:
        parent = parent or []
        expected_products = {p["remoteId"]: {k: v for k, v in p.items() if k != "remoteId"} for p in parent}
        _check_products(tally, "products", held["products"], expected_products)
        for entity in ("suppliers", "supplierProducts"):
            _check_products(tally, entity, held[entity], {})
        for entity in ("buyOrders", "buyOrderLines", "receiptLines"):
            _check_orders(tally, entity, held[entity], {})
        id_of_ean = {p["eanCode"]: _first_id(held["products"], p["remoteId"]) for p in parent}
        expected = vendor_truth.expected_po_sell_orders(facts, orders_start, set(id_of_ean))
        sell_orders = {
            number: {
                "placed": order["placed"],
                "totalValue": order["totalValue"],
                "orderLines": sorted(
                    (
                        {
                            "productId": id_of_ean[ean],
                            "quantity": line["quantity"],
                            "subtotalValue": line["subtotalValue"],
                        }
                        for ean, line in order["lines"].items()
                    ),
                    key=lambda line: line["productId"],
                ),
            }
            for number, order in expected.items()
        }
        po_lines = _sell_order_lines(held["sellOrders"], ("productId", "quantity", "subtotalValue"))
        _check_orders(tally, "sellOrders", po_lines, sell_orders)
        orders_expected, products_expected = len(sell_orders), len(expected_products)
    return {
        "orders_expected": orders_expected,
        "products_expected": products_expected,
        **{
            k: tally.counts[k]
            for k in ("orders_lost", "orders_duplicated", "orders_unexpected", "orders_wrong")
        },
        "products_wrong": tally.counts["products_wrong"],
        "wrong_rows": pd.DataFrame(tally.rows, columns=["counter", "entity", "remoteId", "problem"]),
    }


def _sell_order_lines(held: dict[str, list[dict]], fields: tuple[str, ...]) -> dict[str, list[dict]]:
    """Sell orders with their lines cut to the fields the truth gives, ordered by product."""
    out = {}
    for remote_id, copies in held.items():
        out[remote_id] = []
        for order in copies:
            order_lines = [{k: line.get(k) for k in fields} for line in order.get("orderLines") or []]
            order_lines.sort(key=lambda line: line["productId"] or 0)
            out[remote_id].append({**order, "orderLines": order_lines})
    return out


def vendor_soak(
    cycles: int,
    kills: int,
    flavour: str,
    step: timedelta,
    faults: str,
    seed: int,
    workdir: Path,
    log,
) -> dict[str, int]:
    seller = SellerConfig(marketplaces=("DE",), skus=20, orders_per_day=5, seed=seed)
    config = SandboxConfig(
        seller=seller,  # the sandbox always has a seller; no tenant of this soak syncs it
        vendor=VendorConfig(seed=seed, origin=seller.origin),
        amazon=AmazonSettings(
            report_queue_seconds=0.01, report_processing_seconds=REPORT_SECONDS, rate_scale=RATE_SCALE
        ),
        faults=parse_faults(faults),
        frozen_clock=True,
    )
    sandbox = Sandbox(config).start()
    orders_start = seller.origin - timedelta(days=5)
    parent = None
    if flavour == "sell_orders_only":  # the products the vendor's own shop system made in Optiply
        parent = sandbox.vendor.parent_products()
        sandbox.optiply.preload_products(parent)
    _dagster_home(workdir)
    registry = workdir / "tenants.yaml"
    entry = {
        "name": VENDOR_TENANT,
        "integration": "vendor",
        "marketplaces": [config.vendor.marketplace],
        "optiply_account_id": OPTIPLY_ACCOUNT_ID,
        "optiply_coupling_id": OPTIPLY_COUPLING_ID,
        "settings": {"flavour": flavour, "orders_start": orders_start.isoformat()},
        "state_database_url": f"sqlite:///{workdir / 'state.sqlite'}",
    }
    registry.write_text(yaml.safe_dump({"tenants": [entry]}, sort_keys=False))
    env = {
        **os.environ,
        **sandbox.env(),
        "TENANTS_FILE": str(registry),
        "OPTIPLY_MIN_WRITE_INTERVAL_SECONDS": "0",
        "ASSET_STORAGE_PATH": str(workdir / "assets"),
        "DAGSTER_HOME": str(workdir / "dagster"),
        "AMAZON_REPORT_DEADLINE_SECONDS": "120",
    }
    targets = VENDOR_KILL_TARGETS[flavour]
    _preload(env)

    def kill_point(cycle: int, kills_so_far: int, deferred: int) -> tuple[int, str | None, bool]:
        before_answer = (kills_so_far // len(targets)) % 2 == 0
        if deferred >= 4:
            return 1, None, before_answer
        entity, writes = targets[kills_so_far % len(targets)]
        return writes, entity, before_answer

    try:
        outcomes, settled = run_cycles(
            sandbox,
            env,
            cycles,
            kills,
            step,
            workdir,
            log,
            kill_point,
            # A report a fault CANCELLED reads as "no data yet": the cycle keeps older figures (the day
            # before's stock, demand days read next cycle), so it does not show the settled state.
            settled=lambda injected: not injected.get("report_cancelled"),
        )
        facts = sandbox.vendor.facts(sandbox.clock.now())
        result = compare_vendor_with_ground_truth(
            facts, sandbox.optiply.snapshot(), flavour, orders_start, parent
        )
        wrong = result.pop("wrong_rows")
        wrong.to_csv(workdir / "vendor_wrong.csv", index=False)
        for row in wrong.head(20).itertuples():
            log(f"  {row.counter} {row.entity} {row.remoteId}: {row.problem}")
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


WORLDS = ("seller", "secondary", "vendor")
COUNTS = ("cycles", "kills", "failed_cycles", "faults", "orders_expected", "products_expected")
PROBLEMS = ("orders_wrong", "orders_lost", "orders_duplicated", "orders_unexpected", "products_wrong")


def share_cycles(cycles: int, kills: int, worlds: list[str]) -> list[tuple[str, int, int]]:
    """(world, cycles, kills) for each world: every world after the first gets a tenth of the cycles and of
    the kills, the first world the rest."""
    shares = [(world, cycles // 10, kills // 10) for world in worlds[1:]]
    first = (worlds[0], cycles - sum(c for _, c, _ in shares), kills - sum(k for _, _, k in shares))
    return [first, *[share for share in shares if share[1] > 0]]


def result_line(r: dict) -> str:
    return (
        f"cycles={r['cycles']} kills={r['kills']} failed_cycles={r['failed_cycles']} faults={r['faults']} "
        f"orders={r['orders_expected']} products={r['products_expected']} orders_wrong={r['orders_wrong']} "
        f"orders_lost={r['orders_lost']} orders_duplicated={r['orders_duplicated']} "
        f"orders_unexpected={r['orders_unexpected']} products_wrong={r['products_wrong']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amazon_optiply.soak", description=__doc__)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument(
        "--kills", type=int, default=2, help="cycles whose sync process is killed mid-delivery"
    )
    parser.add_argument(
        "--worlds",
        default="seller",
        help="comma-separated, of seller (the full flavour), secondary (sell orders onto the products a shop "
        "system made) and vendor; after the first, each gets a tenth of the cycles and kills, one after another",
    )
    parser.add_argument("--marketplaces", default="DE,US")
    parser.add_argument("--skus", type=int, default=300)
    parser.add_argument("--faults", default="hostile", help="a sandbox fault profile, e.g. hostile or flaky")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--vendor", action="store_true", help="the same as --worlds vendor")
    parser.add_argument("--vendor-flavour", choices=sorted(VENDOR_KILL_TARGETS), default="full")
    parser.add_argument(
        "--vendor-step-hours",
        type=float,
        default=6,
        help="how far each vendor cycle advances the clock (purchase orders move over hours and days)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="kept for inspection; default a temp dir")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile each cycle's syncs: a .prof beside each cycle's log"
    )
    args = parser.parse_args(argv)
    worlds = ["vendor"] if args.vendor else [w.strip() for w in args.worlds.split(",") if w.strip()]
    if not worlds or set(worlds) - set(WORLDS):
        parser.error(f"--worlds takes some of {', '.join(WORLDS)}, not {args.worlds!r}")
    if args.profile:
        os.environ["SOAK_PROFILE"] = "1"  # the children's environment is the soak's, plus the sandbox's

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    def run_world(world: str, cycles: int, kills: int, workdir: Path) -> dict:
        if world == "vendor":
            return vendor_soak(
                cycles,
                kills,
                args.vendor_flavour,
                timedelta(hours=args.vendor_step_hours),
                args.faults,
                args.seed,
                workdir,
                log,
            )
        flavour = "secondary" if world == "secondary" else "full"
        marketplaces = args.marketplaces.split(",")
        return soak(cycles, kills, marketplaces, args.skus, args.faults, args.seed, workdir, log, flavour)

    # In memory when the machine has a tmpfs: the state database's and asset files' syncs to disk are no
    # part of what the soak tests.
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    total = Counter({"settled": 1})
    with tempfile.TemporaryDirectory(prefix="soak-", dir=shm) as tmp:
        plan = share_cycles(args.cycles, args.kills, worlds)
        for world, cycles, kills in plan:
            workdir = (args.workdir or Path(tmp)) / world if len(plan) > 1 else args.workdir or Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            log(f"== {world}: {cycles} cycles, {kills} kills")
            r = {"orders_wrong": 0, **run_world(world, cycles, kills, workdir)}
            if len(plan) > 1:
                print(f"{world}: {result_line(r)}", flush=True)
            total.update({k: r[k] for k in COUNTS + PROBLEMS})
            total["settled"] = min(total["settled"], r["settled"])
            if not r["settled"]:
                print(f"{world}: no cycle succeeded for every partition after the soak", flush=True)
    print(result_line(total), flush=True)
    bad = any(total[k] for k in PROBLEMS)
    return 1 if bad or not total["settled"] or total["kills"] < args.kills else 0


if __name__ == "__main__":
    sys.exit(main())
