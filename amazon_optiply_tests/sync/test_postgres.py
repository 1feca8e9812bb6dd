"""The production profile: deploy/dagster.yaml on a real PostgreSQL server, with the sync state there too.

The server is Debian's package (`make postgres-deps`), started on loopback in a temporary directory for
this test and stopped afterwards.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from amazon_optiply.delivery import PRODUCTS, SELL_ORDERS
from amazon_optiply.partitions import TENANT_MARKETPLACES
from amazon_optiply.state import SyncState
from amazon_optiply_tests.sync.ground_truth import (
    assert_orders_match_ground_truth,
    assert_products_match_ground_truth,
)
from amazon_optiply_tests.sync.harness import MARKETPLACE_CODES, SyncHarness

# One PostgreSQL server for the module: its tests run on one worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("postgres")]

REPO = Path(__file__).resolve().parents[2]
DEPLOY_INSTANCE = REPO / "deploy" / "dagster.yaml"
PG_ENV = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        engine = sa.create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
        engine.dispose()
        return self.url(name)


def _postgres_bindir() -> Path:
    """Where initdb and pg_ctl are: Debian keeps them under /usr/lib/postgresql/<version>/bin, off PATH."""
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(out.stdout.strip())
    if shutil.which("pg_ctl"):
        candidates.append(os.path.dirname(os.path.realpath(shutil.which("pg_ctl"))))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for candidate in candidates:
        if candidate and all((Path(candidate) / tool).is_file() for tool in ("initdb", "pg_ctl")):
            return Path(candidate)
    pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) not found: run `make postgres-deps`")


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1, a free port, in a temporary directory; stopped at the end.

    PostgreSQL refuses to run as root: as root, initdb and pg_ctl run as the `postgres` user, in a
    directory it owns (tmp_path's parents are private to root). The server's time zone is not UTC, so a
    naive timestamp read as local time would show.
    """
    bindir = _postgres_bindir()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="amazon-optiply-pg-"))
    data, log = root / "data", root / "server.log"
    server = PostgresServer("127.0.0.1", _free_port(), "optiply_test", secrets.token_hex(16))
    (root / "password").write_text(server.password)
    if as_postgres:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(root / "password", "postgres", "postgres")

    def run(*args: str) -> None:
        result = subprocess.run([*as_postgres, *args], cwd=root, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            server_log = log.read_text() if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}{server_log}")

    started = False
    try:
        run(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            server.user,
            f"--pwfile={root / 'password'}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
        )
        options = f"-c listen_addresses=127.0.0.1 -p {server.port} -k {root} -c fsync=off -c timezone=Europe/Amsterdam"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        started = True
        yield server
    finally:
        if started:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_deploy_profile_names_postgres_storage_and_the_marketplace_limit():
    deploy = yaml.safe_load(DEPLOY_INSTANCE.read_text())
    local = yaml.safe_load((REPO / "dagster.yaml").read_text())
    postgres_db = deploy["storage"]["postgres"]["postgres_db"]
    # Every connection value, the password included, is read from the environment.
    assert {field: value["env"] for field, value in postgres_db.items()} == {
        "hostname": "DAGSTER_PG_HOST",
        "port": "DAGSTER_PG_PORT",
        "username": "DAGSTER_PG_USER",
        "password": "DAGSTER_PG_PASSWORD",
        "db_name": "DAGSTER_PG_DB",
    }
    assert deploy["run_coordinator"]["class"] == "QueuedRunCoordinator"
    limits = deploy["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
    assert {"key": "tenant", "value": {"applyLimitPerUniqueValue": True}, "limit": 2} in limits
    # Production keeps the limits the local instance has.
    assert deploy["concurrency"] == local["concurrency"]
    assert deploy["telemetry"] == {"enabled": False}


def test_full_sync_with_instance_and_state_on_postgres(
    postgres: PostgresServer,
    sandbox_env,
    fast_tmp_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    sandbox, orders_start = sandbox_env
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_INSTANCE, home / "dagster.yaml")  # the production file itself, not a test variant
    state_url = postgres.create_database("sync_state")
    instance_url = postgres.create_database("dagster")
    values = (postgres.host, str(postgres.port), postgres.user, postgres.password, "dagster")
    for name, value in zip(PG_ENV, values, strict=True):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("SYNC_STATE_DATABASE_URL", state_url)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__module__.startswith("dagster_postgres")
        assert type(instance.event_log_storage).__module__.startswith("dagster_postgres")
        harness = SyncHarness(sandbox, instance, orders_start, fast_tmp_path)
        summaries = harness.sync()
        products = assert_products_match_ground_truth(harness)
        assert_orders_match_ground_truth(harness, products)
        run_ids = {run.run_id for run in instance.get_runs()}
        # The deliveries took their slots from the `optiply_writes` pool, kept in PostgreSQL, and gave them back.
        pool = instance.event_log_storage.get_concurrency_info("optiply_writes")
        assert (pool.slot_count, pool.using_default_limit, pool.active_slot_count) == (2, True, 0)
        # The partitions (tenant/marketplace) are kept in PostgreSQL too.
        assert set(instance.get_dynamic_partitions(TENANT_MARKETPLACES)) == {
            f"default/{code}" for code in MARKETPLACE_CODES
        }

    # The runs and their events are in PostgreSQL, one run per marketplace.
    dagster_db = sa.create_engine(instance_url)
    with dagster_db.connect() as conn:
        assert set(conn.execute(sa.text("SELECT run_id FROM runs")).scalars()) == run_ids
        marketplaces = conn.execute(
            sa.text("SELECT value FROM run_tags WHERE key = 'marketplace' ORDER BY value")
        ).scalars()
        assert tuple(marketplaces) == tuple(sorted(MARKETPLACE_CODES))
        materializations = conn.execute(
            sa.text("SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
        ).scalar_one()
        # The full sync's assets per marketplace; AFN by country is materialized (empty) outside Europe too.
        assert materializations == 17 * len(MARKETPLACE_CODES)
    dagster_db.dispose()

    # The sync state is there too: one delivered row per product created and per order delivered.
    state_db = sa.create_engine(state_url)
    with state_db.connect() as conn:
        rows = dict(
            conn.execute(
                sa.text("SELECT entity, count(*) FROM optiply_records WHERE state = 'done' GROUP BY entity")
            ).all()
        )
        not_done = conn.execute(
            sa.text("SELECT count(*) FROM optiply_records WHERE state = 'intended'")
        ).scalar_one()
        cursors = conn.execute(sa.text('SELECT count(*) FROM order_cursors WHERE "cursor" IS NOT NULL'))
        assert cursors.scalar_one() == len(MARKETPLACE_CODES)
    state_db.dispose()
    assert rows[PRODUCTS] == len(products) == sum(s["products_created"] for s in summaries.values())
    assert rows[SELL_ORDERS] == sum(s["orders_delivered"] for s in summaries.values())
    assert not_done == 0


def test_copy_state_moves_a_sqlite_state_into_postgres(postgres: PostgresServer, tmp_path: Path):
    """deploy/copy_state.py, as docs/deploy.md runs it: everything arrives, times stay UTC, and only once."""
    source_url = f"sqlite:///{tmp_path / 'sync_state.sqlite'}"
    target_url = postgres.create_database("copied_state")
    at = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    source = SyncState(source_url)
    source.store_identifiers(
        "DE",
        pd.DataFrame(
            [{"asin": "B0TEST0001", "ean_codes": "4006381333931", "upc_codes": "", "item_name": "Stift"}]
        ),
        at,
    )
    source.note_orders_window("DE", at, at - timedelta(days=7))
    source.commit_orders_cursor("DE")
    source.record_done(PRODUCTS, "SKU-1", "DE", 101, '{"name": "Stift"}')
    source.record_intent(SELL_ORDERS, "302-1", "DE")
    source.record_held(SELL_ORDERS, {"302-2": "no product for SKU-9"}, "DE", at)
    source.record_report_fatal("GET_AFN_INVENTORY_DATA", "DE", "R1", at, "FATAL")
    source.token_store("optiply").save({"access_token": "t", "expires_at": 1})
    source.engine.dispose()

    command = [sys.executable, str(REPO / "deploy" / "copy_state.py"), source_url, target_url]
    copied = subprocess.run(command, capture_output=True, text=True, check=False)
    assert copied.returncode == 0, copied.stderr
    assert "optiply_records: 3 rows" in copied.stdout

    source, target = SyncState(source_url), SyncState(target_url)
    assert target.order_cursor("DE") == source.order_cursor("DE") == (at, at - timedelta(days=7))
    assert target.report_fatal("GET_AFN_INVENTORY_DATA", "DE") == (at, "FATAL")
    assert target.token_store("optiply").load() == {"access_token": "t", "expires_at": 1}
    pd.testing.assert_frame_equal(target.cached_identifiers("DE"), source.cached_identifiers("DE"))
    for entity in (PRODUCTS, SELL_ORDERS):
        columns = ["remote_id", "marketplace", "optiply_id", "state", "attributes_json"]
        pd.testing.assert_frame_equal(
            target.records(entity).sort_values("remote_id")[columns].reset_index(drop=True),
            source.records(entity).sort_values("remote_id")[columns].reset_index(drop=True),
            check_dtype=False,
        )
    assert target.held_since(SELL_ORDERS, "DE").to_dict() == {"302-2": pd.Timestamp(at)}
    source.engine.dispose()
    target.engine.dispose()

    again = subprocess.run(command, capture_output=True, text=True, check=False)
    assert again.returncode != 0
    assert "already holds state" in again.stderr
