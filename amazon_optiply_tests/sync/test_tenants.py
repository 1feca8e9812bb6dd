"""Several tenants in one deployment: each its own Amazon seller (region, marketplaces, flavour, secrets) and
Optiply account, from one registry file. Each account is compared with its own seller's ground truth."""

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from amazon_optiply.defs.automation import failure_alert, tenant_run_failures
from amazon_optiply.sandbox.server import OPTIPLY_ACCOUNT_ID, OPTIPLY_COUPLING_ID, Sandbox
from amazon_optiply.sync import sync_all
from amazon_optiply_tests.sync.ground_truth import (
    assert_orders_match_ground_truth,
    assert_products_match_ground_truth,
)
from amazon_optiply_tests.sync.harness import SyncHarness, sandbox_config
from amazon_optiply_tests.sync.test_flavours import assert_secondary_orders, preload_shop_products

WRONG_REFRESH_TOKEN = "Atzr|a-token-amazon-never-issued"


@dataclass
class Seller:
    tenant: str
    marketplaces: tuple[str, ...]
    seed: int
    settings: dict
    bad_credentials: bool = False


SELLERS = [
    Seller("acme", ("DE", "GB"), 21, {}),  # Europe, full flavour
    Seller("globex", ("US", "CA"), 22, {"flavour": "secondary", "match_key": "skuCode"}),  # North America
    Seller("initech", ("JP",), 23, {"stock_source": "listing"}),  # Far East, Japanese reports
    Seller("umbrella", ("DE",), 24, {}, bad_credentials=True),
]


def registry_entry(seller: Seller, sandbox: Sandbox, orders_start: pd.Timestamp) -> dict:
    """The tenant as an integration engineer writes it: settings, endpoints, and the *names* of its secrets."""
    prefix = seller.tenant.upper()
    return {
        "name": seller.tenant,
        "marketplaces": list(seller.marketplaces),
        "optiply_account_id": OPTIPLY_ACCOUNT_ID,
        "optiply_coupling_id": OPTIPLY_COUPLING_ID,
        "settings": {"orders_start": orders_start.isoformat(), **seller.settings},
        "secrets": {"sp_api_refresh_token": f"{prefix}_SP_API_REFRESH_TOKEN"},
        "endpoints": {
            "sp_api_endpoint": sandbox.sp_api_url,
            "lwa_token_url": f"{sandbox.sp_api_url}/auth/o2/token",
            "optiply_api_url": f"{sandbox.optiply_url}/v1",
            "optiply_token_url": f"{sandbox.optiply_url}/api/auth/oauth/token",
        },
    }


@pytest.fixture
def tenants(fast_tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """One sandbox per tenant (its own seller and Optiply account), each accepting only its own refresh token."""
    sandboxes: dict[str, Sandbox] = {}
    entries = []
    try:
        for seller in SELLERS:
            config = sandbox_config(marketplaces=seller.marketplaces, seed=seller.seed)
            token = f"Atzr|{seller.tenant}-refresh-token"
            config = replace(config, amazon=replace(config.amazon, refresh_token=token))
            sandbox = sandboxes[seller.tenant] = Sandbox(config).start()
            orders_start = pd.Timestamp(config.seller.origin - timedelta(days=2))
            entries.append(registry_entry(seller, sandbox, orders_start))
            variable = f"{seller.tenant.upper()}_SP_API_REFRESH_TOKEN"
            monkeypatch.setenv(variable, WRONG_REFRESH_TOKEN if seller.bad_credentials else token)
        defaults = next(
            iter(sandboxes.values())
        ).env()  # the secrets every sandbox shares (LWA app, Optiply login)
        for name in ("LWA_APP_ID", "LWA_CLIENT_SECRET", "OPTIPLY_USERNAME", "OPTIPLY_PASSWORD"):
            monkeypatch.setenv(name, defaults[name])
        for name in ("OPTIPLY_CLIENT_ID", "OPTIPLY_CLIENT_SECRET"):
            monkeypatch.setenv(name, defaults[name])
        registry = fast_tmp_path / "tenants.yaml"
        registry.write_text(yaml.safe_dump({"tenants": entries}, sort_keys=False))
        monkeypatch.setenv("TENANTS_FILE", str(registry))
        monkeypatch.setenv("DAGSTER_HOME", str(fast_tmp_path))  # each tenant's state file lands here
        monkeypatch.setenv("ASSET_STORAGE_PATH", str(fast_tmp_path / "assets"))
        monkeypatch.setenv("OPTIPLY_MIN_WRITE_INTERVAL_SECONDS", "0")
        for name in ("SP_API_ENDPOINT", "LWA_TOKEN_URL", "OPTIPLY_API_URL", "OPTIPLY_TOKEN_URL"):
            monkeypatch.delenv(name, raising=False)  # every tenant names its own
        yield sandboxes, registry
    finally:
        for sandbox in sandboxes.values():
            sandbox.stop()


@contextmanager
def alert_webhook() -> Iterator[tuple[str, list]]:
    """A local endpoint standing in for a chat webhook; yields its URL and what it received."""
    received: list = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def harness_of(seller: Seller, sandbox: Sandbox, instance, workdir: Path) -> SyncHarness:
    orders_start = pd.Timestamp(sandbox.config.seller.origin - timedelta(days=2))
    return SyncHarness(sandbox, instance, orders_start, workdir, seller.marketplaces, seller.marketplaces[0])


@pytest.mark.slow  # a long end-to-end test: four sandboxes
def test_three_tenants_each_get_their_own_sellers_data_and_a_fourth_with_bad_credentials_fails_alone(
    tenants, fast_tmp_path: Path
):
    sandboxes, _ = tenants
    by_tenant = {s.tenant: s for s in SELLERS}
    globex = sandboxes["globex"]
    catalog = globex.world.catalog
    shop_ids = preload_shop_products(
        harness_of(by_tenant["globex"], globex, None, fast_tmp_path),
        [{"key": sku, "name": f"Shop {sku}", "codes": {"skuCode": sku}} for sku in catalog["sku"]],
    )

    with dg.DagsterInstance.ephemeral() as instance:
        results = sync_all(instance)
        outcome = {(r.tenant, r.marketplace): r for r in results}
        assert set(outcome) == {(s.tenant, m) for s in SELLERS for m in s.marketplaces}
        failed = {key for key, r in outcome.items() if not r.success}
        assert failed == {("umbrella", "DE")}, [r.line() for r in results if not r.success]
        assert "umbrella/DE: FAILED" in outcome["umbrella", "DE"].line()
        # The error names the variable the operator must fix, in this tenant's entry, not a global one.
        assert "UMBRELLA_SP_API_REFRESH_TOKEN" in outcome["umbrella", "DE"].error

        acme = harness_of(by_tenant["acme"], sandboxes["acme"], instance, fast_tmp_path)
        assert_orders_match_ground_truth(acme, assert_products_match_ground_truth(acme))

        initech = harness_of(by_tenant["initech"], sandboxes["initech"], instance, fast_tmp_path)
        expected = initech.expected_products(stock_source="listing")
        products = assert_products_match_ground_truth(initech, expected, at_least=100)
        assert_orders_match_ground_truth(initech, products)

        globex_harness = harness_of(by_tenant["globex"], globex, instance, fast_tmp_path)
        assert_secondary_orders(globex_harness, lambda line: shop_ids.get(line["sku"]))
        assert [w for w in globex.optiply.writes() if "/products" in w["path"]] == []

        # The tenant Amazon refused wrote nothing anywhere; its runs and the others' are told apart by tag.
        assert sandboxes["umbrella"].optiply.writes() == []
        tagged = {(run.tags["tenant"], run.tags["marketplace"]): run.status for run in instance.get_runs()}
        assert tagged[("umbrella", "DE")] == dg.DagsterRunStatus.FAILURE
        assert tagged[("acme", "DE")] == dg.DagsterRunStatus.SUCCESS
        # The operator's alert names the tenant, the marketplace and why.
        (failed_run,) = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        failure = instance.get_records_for_run(failed_run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        event = failure.records[0].event_log_entry.dagster_event
        alert = failure_alert(failed_run, event.message)
        assert alert.startswith(f"tenant umbrella, marketplace DE: run {failed_run.run_id} failed: ")
        context = dg.build_run_status_sensor_context(
            sensor_name="tenant_run_failures",
            dagster_event=event,
            dagster_instance=instance,
            dagster_run=failed_run,
        ).for_run_failure()
        with alert_webhook() as (url, received):
            os.environ["ALERT_WEBHOOK_URL"] = url
            try:
                tenant_run_failures(context)
            finally:
                del os.environ["ALERT_WEBHOOK_URL"]
        assert received == [{"text": alert}]

    # Each tenant keeps its own state database.
    assert sorted(p.name for p in fast_tmp_path.glob("sync_state-*.sqlite")) == [
        f"sync_state-{s.tenant}.sqlite" for s in sorted(SELLERS, key=lambda s: s.tenant)
    ]
