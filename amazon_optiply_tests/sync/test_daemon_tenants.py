"""The operator's path: the Dagster daemon running, a tenant added to the registry, its first sync starting
on its own; a paused tenant getting no run. The daemon, the run launcher and the runs are real processes."""

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from amazon_optiply.sandbox.server import OPTIPLY_ACCOUNT_ID, OPTIPLY_COUPLING_ID, Sandbox
from amazon_optiply_tests.sync.ground_truth import (
    assert_orders_match_ground_truth,
    assert_products_match_ground_truth,
)
from amazon_optiply_tests.sync.harness import SyncHarness, sandbox_config

ROOT = Path(__file__).resolve().parents[2]
DAEMON = str(Path(sys.executable).with_name("dagster-daemon"))

pytestmark = pytest.mark.slow  # the daemon and a run process of their own


def entry(name: str, sandbox: Sandbox, paused: bool = False) -> dict:
    orders_start = pd.Timestamp(sandbox.config.seller.origin - timedelta(days=2))
    return {
        "name": name,
        "marketplaces": list(sandbox.config.seller.marketplaces),
        "optiply_account_id": OPTIPLY_ACCOUNT_ID,
        "optiply_coupling_id": OPTIPLY_COUPLING_ID,
        "paused": paused,
        "settings": {"orders_start": orders_start.isoformat()},
    }


def wait_for(condition, seconds: float, what: str, log: Path):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.5)
    raise AssertionError(f"{what} within {seconds:.0f} s; daemon log:\n{log.read_text()[-4000:]}")


def test_a_tenant_added_while_the_daemon_runs_gets_its_first_sync_and_a_paused_one_none(
    fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    sandbox = Sandbox(sandbox_config(marketplaces=("DE",), skus=120)).start()
    home = fast_tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    registry = fast_tmp_path / "tenants.yaml"
    registry.write_text(yaml.safe_dump({"tenants": []}))
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    for name, value in {
        "DAGSTER_HOME": str(home),
        "TENANTS_FILE": str(registry),
        "TENANT_REGISTRY_INTERVAL_SECONDS": "2",
        "ASSET_STORAGE_PATH": str(fast_tmp_path / "assets"),
        "OPTIPLY_MIN_WRITE_INTERVAL_SECONDS": "0",
    }.items():
        monkeypatch.setenv(name, value)
    log = fast_tmp_path / "daemon.log"
    daemon = subprocess.Popen(
        [DAEMON, "run", "-w", "workspace.yaml"],
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the runs it launches are its children: stopped with it
    )
    try:
        with dg.DagsterInstance.get() as instance:
            # The daemon is up and has ticked with no tenant: no partition, no run.
            wait_for(
                lambda: "tenant_registry" in log.read_text(), 90, "the registry sensor did not tick", log
            )
            assert instance.get_dynamic_partitions("tenant_marketplaces") == []
            # An integration engineer adds one tenant, and a second one paused, without restarting anything.
            registry.write_text(
                yaml.safe_dump({"tenants": [entry("acme", sandbox), entry("globex", sandbox, paused=True)]})
            )
            run = wait_for(
                lambda: next((r for r in instance.get_runs() if r.is_finished), None),
                240,
                "no first sync finished",
                log,
            )
            assert run.status == dg.DagsterRunStatus.SUCCESS, run.run_id
            assert (run.tags["tenant"], run.tags["dagster/partition"]) == ("acme", "acme/DE")
            assert run.tags["dagster/sensor_name"] == "tenant_registry"
            assert set(instance.get_dynamic_partitions("tenant_marketplaces")) == {"acme/DE", "globex/DE"}
            # The paused tenant has its partition (its history would stay visible) but no run.
            assert [r.tags["tenant"] for r in instance.get_runs()] == ["acme"]
            orders_start = pd.Timestamp(sandbox.config.seller.origin - timedelta(days=2))
            harness = SyncHarness(sandbox, instance, orders_start, fast_tmp_path, ("DE",), "DE")
            products = assert_products_match_ground_truth(harness, at_least=80)
            assert_orders_match_ground_truth(harness, products)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
        sandbox.stop()
