"""The path a person takes by hand: `dg launch` in its own process, on a DAGSTER_HOME with the project's
dagster.yaml, against the sandbox. Every other sync test runs in process."""

import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from amazon_optiply.tenants import DEFAULT_TENANT
from amazon_optiply_tests.sync.ground_truth import (
    assert_orders_match_ground_truth,
    assert_products_match_ground_truth,
)
from amazon_optiply_tests.sync.harness import MAIN, SyncHarness

ROOT = Path(__file__).resolve().parents[2]
DG = str(Path(sys.executable).with_name("dg"))

pytestmark = pytest.mark.slow  # a Dagster process of its own


def test_dg_launch_of_one_marketplace_delivers_its_products_and_orders(
    sandbox_env, fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    sandbox, orders_start = sandbox_env
    home = fast_tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    # Without a daemon, the tenant's partitions are registered by hand first (the sensor does it otherwise).
    registered = subprocess.run(
        [sys.executable, "-m", "amazon_optiply.tenants", "partitions"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert registered.returncode == 0, registered.stderr[-3000:]
    assert f"added ['{DEFAULT_TENANT}/{MAIN}', '{DEFAULT_TENANT}/US']" in registered.stdout
    launched = subprocess.run(
        [DG, "launch", "--job", "sync_marketplace", "--partition", f"{DEFAULT_TENANT}/{MAIN}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["dagster/partition"] == f"{DEFAULT_TENANT}/{MAIN}"
        harness = SyncHarness(sandbox, instance, orders_start, fast_tmp_path)
        expected = sandbox.world.expected_products(MAIN)
        products = assert_products_match_ground_truth(harness, expected, at_least=100)
        now = sandbox.clock.now()
        orders = {MAIN: sandbox.world.expected_sell_orders(MAIN, orders_start.to_pydatetime(), now)}
        assert_orders_match_ground_truth(harness, products, orders)
