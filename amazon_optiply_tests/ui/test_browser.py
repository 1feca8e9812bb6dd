"""The Dagster UI in a browser, on a materialized instance: what a person sees after `make run`.

The sandbox (DE and US, a small seller, a frozen clock) is synced in full into a DAGSTER_HOME on disk, then
`dagster-webserver` serves that instance and Playwright drives Debian's chromium (`make browser-deps`) through
the lineage, an asset's partitions and checks, the delivery metadata of DE and the schedule. One DE listing
carries a bad price, so the UI has a quarantined row and two held orders to show. Each test saves its
screenshot under docs/img/ (the README shows them) once its assertions have passed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import httpx
import pandas as pd
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from amazon_optiply.sandbox.report_documents import LISTINGS_ALL
from amazon_optiply.sandbox.server import Sandbox
from amazon_optiply_tests.sync.harness import MARKETPLACE_CODES, sandbox_config

# One webserver and browser for the module: its tests run on one worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "img"
WEBSERVER = str(Path(sys.executable).with_name("dagster-webserver"))
REPOSITORY = "__repository__@amazon_optiply.definitions"  # the code location workspace.yaml loads


@dataclass
class Served:
    url: str
    summaries: dict[str, dict[str, int]]
    quarantined_sku: str  # DE: its listing row carries a bad price, so its product and its orders wait
    held_order: str


def _quarantine(sandbox: Sandbox, country: str, sku: str, price: str) -> None:
    """The sandbox serves `country`'s listings document with `sku`'s price written as `price`."""

    def tamper(text: str, mp: str) -> str:
        if mp != country:
            return text
        lines = text.split("\r\n")
        header = lines[0].split("\t")
        for i, line in enumerate(lines[1:], start=1):
            fields = line.split("\t")
            if len(fields) == len(header) and fields[header.index("seller-sku")] == sku:
                fields[header.index("price")] = price
                lines[i] = "\t".join(fields)
        return "\r\n".join(lines)

    sandbox.amazon.tamper_documents[LISTINGS_ALL] = tamper


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served_instance(home: Path) -> Iterator[Served]:
    config = sandbox_config()
    sandbox = Sandbox(config).start()
    orders_start = config.seller.origin - timedelta(days=2)
    # One DE listing with a comma price: quarantined (a WARN on listings_deliverable), and the first DE order,
    # which sells it, held (a WARN on orders_held): what a person looks for in the UI when something is off.
    first_order = sandbox.world.expected_sell_orders("DE", orders_start, sandbox.clock.now())[0]
    sku = first_order.lines[0]["sku"]
    _quarantine(sandbox, "DE", sku, "12,99")
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    # The "Join the Dagster community" dialog shows once per instance; here it is taken as dismissed.
    (dagster_home / ".nux").mkdir()
    (dagster_home / ".nux" / "nux.yaml").write_text("seen: 1\n")
    env = {
        **sandbox.env(),
        "DAGSTER_HOME": str(dagster_home),
        "AMAZON_MARKETPLACES": ",".join(MARKETPLACE_CODES),
        "ORDERS_START": pd.Timestamp(orders_start).isoformat(),
        "OPTIPLY_MIN_WRITE_INTERVAL_SECONDS": "0",
        "SYNC_STATE_DATABASE_URL": f"sqlite:///{home / 'state.sqlite'}",
        "ASSET_STORAGE_PATH": str(home / "assets"),
    }
    webserver = None
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in env.items():
                mp.setenv(name, value)
            from amazon_optiply.sync import sync_all

            with dg.DagsterInstance.get() as instance:
                results = sync_all(instance)
        failed = [r.line() for r in results if not r.success]
        assert not failed, failed

        port = _free_port()
        log = (home / "webserver.log").open("wb")
        webserver = subprocess.Popen(
            [WEBSERVER, "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its code server is a child: stopped with it, by our process group
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            if webserver.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    "dagster-webserver did not start:\n" + (home / "webserver.log").read_text()
                )
            time.sleep(0.3)
        yield Served(url, {r.marketplace: r.summary for r in results}, sku, first_order.order_id)
    finally:
        if webserver is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(webserver.pid, signal.SIGTERM)
            try:
                webserver.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(webserver.pid, signal.SIGKILL)
                webserver.wait()
        sandbox.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_instance(tmp_path_factory.mktemp("ui")) as s:
        yield s


@pytest.fixture(scope="module")
def browser(served: Served):  # after the sync: Playwright's event loop stays out of the in-process runs
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: `make browser-deps` installs it"
    with sync_playwright() as p:
        # Running as root (CI containers) needs --no-sandbox.
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, served: Served) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1600, "height": 1000}, base_url=served.url)
    context.set_default_timeout(20_000)
    expect.set_options(timeout=20_000)  # the UI is a React app fed by GraphQL: wait for what it renders
    yield context.new_page()
    context.close()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png")


def metadata_row(page: Page, key: str):
    return page.locator("tr").filter(has=page.get_by_text(key, exact=True)).first


ASSETS = (
    "listings_report",
    "orders_report",
    "fba_inventory",
    "catalog_identifiers",
    "order_identifiers",
    "warehouse_stock",
    "enriched_catalog",
    "optiply_existing_products",
    "optiply_product_payloads",
    "optiply_products",
    "optiply_existing_sell_orders",
    "optiply_sell_order_payloads",
    "optiply_sell_orders",
)


def test_lineage_shows_every_asset_checked_and_filled(page: Page):
    # The groups start collapsed; `expanded` is what "Expand all groups" puts in the URL. The graph is fitted
    # to the window, and only at this size (two paths, thirteen assets) are the nodes drawn in full.
    page.set_viewport_size({"width": 3000, "height": 2600})
    groups = ",".join(f"global@global:{g}" for g in ("amazon_raw", "warehouse", "optiply"))
    page.goto(f"/asset-groups/?expanded={quote(groups)}")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    for name in ASSETS:
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    # Both marketplaces of every asset are materialized.
    expect(page.get_by_text("100% filled", exact=True)).to_have_count(len(ASSETS))
    expect(page.get_by_text("2 partitions", exact=True)).to_have_count(len(ASSETS))
    screenshot(page, "asset-graph")


def test_partitions_of_the_delivery_are_all_materialized(page: Page):
    page.goto("/assets/optiply_sell_orders?view=partitions")
    for status in ("Materialized (2)", "Failed (0)", "Missing (0)"):
        expect(page.get_by_text(status)).to_be_visible()
    # One partition per tenant and marketplace: the environment's one tenant is `default`.
    for key in ("default/DE", "default/US"):
        expect(page.get_by_text(key, exact=True).first).to_be_visible()
    screenshot(page, "asset-partitions")


def test_checks_show_which_failed(page: Page, served: Served):
    page.goto("/assets/optiply_sell_order_payloads?view=checks&checkDetail=orders_held")
    expect(page.get_by_text("Checks (2)")).to_be_visible()
    for check in ("orders_held", "schema"):
        expect(page.get_by_text(check, exact=True).first).to_be_visible()
    expect(page.get_by_text("Orders not sent, and why")).to_be_visible()
    page.get_by_text("Execution history", exact=True).click()
    # One evaluation per marketplace run: DE holds the orders of its quarantined listing, US holds none.
    expect(page.get_by_text("Failed", exact=True)).to_have_count(1)
    expect(page.get_by_text("Passed", exact=True)).to_have_count(1)
    screenshot(page, "asset-checks")


def test_delivery_of_de_shows_when_and_how_many_orders(page: Page, served: Served):
    page.set_viewport_size({"width": 1600, "height": 1500})
    page.goto(f"/assets/optiply_sell_orders?view=partitions&partition={quote('default/DE', safe='')}")
    expect(page.get_by_text("Latest materialization")).to_be_visible()
    summary = served.summaries["DE"]
    assert summary["orders_delivered"] > 0 and summary["orders_held"] == 2, summary
    for key in ("orders_delivered", "orders_held", "orders_skipped"):
        expect(metadata_row(page, key)).to_contain_text(str(summary[key]))
    metadata_row(page, "orders_held").scroll_into_view_if_needed()
    screenshot(page, "delivery-metadata")


def test_schedule_runs_every_30_minutes(page: Page):
    page.goto(f"/locations/{REPOSITORY}/schedules/every_30_minutes_full")
    expect(page.get_by_text("every_30_minutes_full").first).to_be_visible()
    expect(page.get_by_text("*/30 * * * *", exact=False)).to_be_visible()
    expect(page.get_by_text("sync_marketplace").first).to_be_visible()
    screenshot(page, "schedule")
