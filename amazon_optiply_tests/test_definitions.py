"""The asset graph, its partitions, the schedule and the sensor, as an operator sees them in the UI."""

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg

from amazon_optiply.definitions import defs
from amazon_optiply.defs.optiply.schedules import PRODUCT_SIDE, sync_job

EXPECTED_ASSETS = {
    "listings_report": set(),
    "fba_inventory": set(),
    "catalog_identifiers": {"listings_report"},
    "orders_report": set(),
    "order_identifiers": {"orders_report"},
    "warehouse_stock": {"listings_report", "fba_inventory"},
    "enriched_catalog": {"listings_report", "catalog_identifiers", "warehouse_stock"},
    "optiply_existing_products": set(),
    "optiply_product_payloads": {"enriched_catalog", "optiply_existing_products"},
    "optiply_products": {"optiply_product_payloads"},
    "optiply_existing_sell_orders": {"orders_report"},
    # Not downstream of any product step: a failed listings report must not stop the orders.
    "optiply_sell_order_payloads": {
        "orders_report",
        "order_identifiers",
        "optiply_existing_products",
        "optiply_existing_sell_orders",
    },
    "optiply_sell_orders": {"optiply_sell_order_payloads", "optiply_existing_sell_orders"},
}


def test_asset_graph_is_the_documented_lineage():
    graph = defs().resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == set(EXPECTED_ASSETS)
    for name, parents in EXPECTED_ASSETS.items():
        node = graph.get(dg.AssetKey(name))
        assert {p.to_user_string() for p in node.parent_keys} == parents, name
        assert node.partitions_def.get_partition_keys() == ["DE", "US", "JP", "AU"], name
        assert node.description, f"{name} has no description"
        assert node.owners == ["team:integrations"], name


ORDER_PATH = {
    "orders_report",
    "order_identifiers",
    "optiply_existing_sell_orders",
    "optiply_sell_order_payloads",
    "optiply_sell_orders",
}


def test_orders_do_not_wait_on_products_but_run_after_them():
    """Dagster skips what is downstream of a failed step: the order path has no product step upstream, and a
    lower priority so the in-process executor runs it after the product steps it does not depend on."""
    graph = defs().resolve_asset_graph()
    product_side = {k.to_user_string() for k in PRODUCT_SIDE.resolve(graph)}
    assert product_side.isdisjoint(ORDER_PATH) and "listings_report" in product_side
    upstream = dg.AssetSelection.assets(*ORDER_PATH).upstream().resolve(graph)
    assert {k.to_user_string() for k in upstream}.isdisjoint(product_side)

    def priority(name: str) -> int:
        return int(defs().get_assets_def(name).op.tags.get("dagster/priority", 0))

    assert max(priority(n) for n in ORDER_PATH) < min(priority(n) for n in product_side)


def test_the_secondary_flavour_reads_no_listings_and_writes_no_products():
    graph = defs().resolve_asset_graph()
    selected = {k.to_user_string() for k in sync_job("secondary").selection.resolve(graph)}
    assert selected == set(EXPECTED_ASSETS) - {k.to_user_string() for k in PRODUCT_SIDE.resolve(graph)}
    assert "listings_report" not in selected and "optiply_sell_orders" in selected


def test_every_dataframe_asset_has_a_schema_check_and_delivery_is_guarded_by_blocking_ones():
    checks = {
        (c.asset_key.to_user_string(), c.name): c for c in defs().resolve_asset_graph().asset_check_keys
    }
    for name in EXPECTED_ASSETS:
        if name not in ("optiply_products", "optiply_sell_orders"):
            assert (name, "schema") in checks, name
    graph = defs().resolve_asset_graph()
    blocking = {
        (k.asset_key.to_user_string(), k.name)
        for k in graph.asset_check_keys
        if graph.get_check_spec(k).blocking
    }
    assert ("optiply_product_payloads", "schema") in blocking
    assert ("optiply_sell_order_payloads", "schema") in blocking


def test_schedule_requests_one_run_per_marketplace_every_30_minutes():
    definitions = defs()
    schedule = definitions.resolve_schedule_def("every_30_minutes")
    assert schedule.cron_schedule == "*/30 * * * *"
    context = dg.build_schedule_context(
        repository_def=definitions.get_repository_def(),
        scheduled_execution_time=datetime(2026, 11, 27, 10, 30),
    )
    requests = list(schedule.evaluate_tick(context).run_requests)
    assert sorted(r.partition_key for r in requests) == ["AU", "DE", "JP", "US"]
    assert {r.tags["marketplace"] for r in requests} == {"AU", "DE", "JP", "US"}


def test_deliveries_are_late_after_60_minutes():
    """A marketplace whose delivery stalls turns visible: both delivery assets carry a freshness policy."""
    graph = defs().resolve_asset_graph()
    late_after_an_hour = dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=60))
    for name in ("optiply_products", "optiply_sell_orders"):
        assert graph.get(dg.AssetKey(name)).freshness_policy == late_after_an_hour, name


def test_secrets_are_env_vars_not_values():
    resources = defs().resources
    assert isinstance(resources["amazon"].refresh_token, dg.EnvVar)
    assert isinstance(resources["optiply"].password, dg.EnvVar)
    assert isinstance(resources["optiply"].client_secret, dg.EnvVar)


def test_dg_check_defs_passes():
    root = Path(__file__).resolve().parents[1]
    dg_cli = Path(sys.executable).with_name("dg")
    result = subprocess.run(
        [str(dg_cli), "check", "defs"], cwd=root, capture_output=True, text=True, env=os.environ, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_unknown_marketplace_code_is_a_clear_error():
    code = "import amazon_optiply.partitions"
    env = {**os.environ, "AMAZON_MARKETPLACES": "DE,XX"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode != 0
    assert "AMAZON_MARKETPLACES holds unknown marketplace code(s) ['XX']" in result.stderr
