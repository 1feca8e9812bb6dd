"""The asset graph, its partitions, the schedule and the sensor, as an operator sees them in the UI."""

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from amazon_optiply.definitions import defs
from amazon_optiply.defs.automation import PRODUCT_SIDE, SYNC_JOBS, sync_job
from amazon_optiply.defs.seller.streams.reports import DAILY_REPORT_STREAMS, NEAR_REAL_TIME_REPORT_STREAMS
from amazon_optiply.partitions import (
    TENANT_MARKETPLACES,
    VENDOR_ACCOUNTS,
    SettingError,
    marketplace_partitions,
    vendor_partitions,
)
from amazon_optiply.tenants import TenantRegistry

EXPECTED_ASSETS = {
    "listings_report": set(),
    "fba_inventory": set(),
    "catalog_identifiers": {"listings_report"},
    "orders_report": set(),
    "order_identifiers": {"orders_report"},
    "warehouse_stock": {"listings_report", "fba_inventory", "afn_inventory_by_country"},
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

# The tap's other streams (defs/seller/streams/): raw assets beside the sync, per tenant and marketplace.
EXPECTED_STREAM_ASSETS = {
    "order_items": {"orders_report"},
    "order_financial_events": set(),
    "awd_inventory": set(),
    "fba_inbound_shipments": set(),
    "seller_account": set(),
    "marketplace_participations": set(),
    "afn_inventory_by_country": set(),
    "sales_and_traffic": set(),
    "fba_inventory_ledger": set(),
    "fba_inventory_ledger_detail": set(),
    "fba_customer_shipment_sales": set(),
}

# The vendor integration: its own partitions (vendor accounts) and groups. Deliveries that point at
# other records' Optiply ids come after the deliveries of those records.
EXPECTED_VENDOR_ASSETS = {
    "vendor_purchase_orders": set(),
    "vendor_purchase_order_status": set(),
    "vendor_inventory_report": set(),
    "vendor_sales_report": set(),
    "vendor_catalog": {"vendor_purchase_orders", "vendor_inventory_report"},
    "vendor_existing_products": set(),
    "vendor_supplier_payloads": {"vendor_purchase_orders"},
    "vendor_suppliers": {"vendor_supplier_payloads"},
    "vendor_product_payloads": {"vendor_inventory_report", "vendor_purchase_orders", "vendor_catalog"},
    "vendor_products": {"vendor_product_payloads"},
    "vendor_supplier_product_payloads": {
        "vendor_purchase_orders",
        "vendor_product_payloads",
        "vendor_inventory_report",
    },
    "vendor_supplier_products": {"vendor_supplier_product_payloads", "vendor_suppliers", "vendor_products"},
    "vendor_buy_order_payloads": {
        "vendor_purchase_orders",
        "vendor_purchase_order_status",
        "vendor_product_payloads",
    },
    "vendor_buy_orders": {"vendor_buy_order_payloads", "vendor_suppliers", "vendor_products"},
    "vendor_receipt_line_payloads": {"vendor_buy_order_payloads", "vendor_buy_orders"},
    "vendor_receipt_lines": {"vendor_receipt_line_payloads"},
    "vendor_sell_order_payloads": {"vendor_purchase_orders", "vendor_existing_products"},
    "vendor_sell_orders": {"vendor_sell_order_payloads"},
    "vendor_demand_payloads": {"vendor_sales_report", "vendor_product_payloads", "vendor_products"},
    "vendor_demand": {"vendor_demand_payloads"},
}

VENDOR_DELIVERIES = {
    "vendor_suppliers",
    "vendor_products",
    "vendor_supplier_products",
    "vendor_buy_orders",
    "vendor_receipt_lines",
    "vendor_sell_orders",
    "vendor_demand",
}


def test_asset_graph_is_the_documented_lineage():
    graph = defs().resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == set(EXPECTED_ASSETS) | set(EXPECTED_STREAM_ASSETS) | set(EXPECTED_VENDOR_ASSETS)
    for expected, partitions in (
        (EXPECTED_ASSETS, marketplace_partitions),
        (EXPECTED_STREAM_ASSETS, marketplace_partitions),
        (EXPECTED_VENDOR_ASSETS, vendor_partitions),
    ):
        for name, parents in expected.items():
            node = graph.get(dg.AssetKey(name))
            assert {p.to_user_string() for p in node.parent_keys} == parents, name
            assert node.partitions_def == partitions, name
            assert node.description, f"{name} has no description"
            assert node.owners == ["team:integrations"], name


def test_each_vendor_flavour_job_reads_and_writes_only_its_entities():
    graph = defs().resolve_asset_graph()

    def selected(flavour: str) -> set[str]:
        return {k.to_user_string() for k in sync_job("vendor", flavour).selection.resolve(graph)}

    assert selected("sell_orders_only") == {
        "vendor_purchase_orders",
        "vendor_existing_products",
        "vendor_sell_order_payloads",
        "vendor_sell_orders",
    }
    assert selected("full") == set(EXPECTED_VENDOR_ASSETS) - {
        "vendor_existing_products",
        "vendor_sell_order_payloads",
        "vendor_sell_orders",
    }
    # No seller job touches a vendor asset, and back.
    assert selected("full").isdisjoint(
        {k.to_user_string() for k in sync_job("seller", "full").selection.resolve(graph)}
    )


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


def test_the_full_sync_makes_afn_by_country_for_the_stock_and_no_daily_stream():
    graph = defs().resolve_asset_graph()
    selected = {k.to_user_string() for k in sync_job("seller", "full").selection.resolve(graph)}
    near_real_time = {"order_items", "awd_inventory", "fba_inbound_shipments", *NEAR_REAL_TIME_REPORT_STREAMS}
    assert selected == set(EXPECTED_ASSETS) | near_real_time
    assert selected.isdisjoint(DAILY_REPORT_STREAMS)


def test_the_secondary_flavour_reads_no_listings_and_writes_no_products():
    graph = defs().resolve_asset_graph()
    selected = {k.to_user_string() for k in sync_job("seller", "secondary").selection.resolve(graph)}
    seller_only = set(EXPECTED_ASSETS) - {k.to_user_string() for k in PRODUCT_SIDE.resolve(graph)}
    assert selected == seller_only | {"order_items"}  # the orders' items come with the orders
    assert "listings_report" not in selected and "optiply_sell_orders" in selected


def test_daily_streams_run_in_their_own_job_never_in_the_30_minute_sync():
    graph = defs().resolve_asset_graph()
    daily = {
        k.to_user_string()
        for k in defs().resolve_job_def("seller_daily_streams").asset_layer.selected_asset_keys
    }
    assert {"order_financial_events", "seller_account", "marketplace_participations"} <= daily
    for flavour in ("full", "secondary"):
        synced = {k.to_user_string() for k in sync_job("seller", flavour).selection.resolve(graph)}
        assert synced.isdisjoint(daily), flavour
    assert defs().resolve_schedule_def("daily_streams").cron_schedule == "15 3 * * *"


def test_every_dataframe_asset_has_a_schema_check_and_delivery_is_guarded_by_blocking_ones():
    checks = {
        (c.asset_key.to_user_string(), c.name): c for c in defs().resolve_asset_graph().asset_check_keys
    }
    deliveries = {"optiply_products", "optiply_sell_orders", *VENDOR_DELIVERIES}
    for name in set(EXPECTED_ASSETS) | set(EXPECTED_STREAM_ASSETS) | set(EXPECTED_VENDOR_ASSETS):
        if name not in deliveries:
            assert (name, "schema") in checks, name
    graph = defs().resolve_asset_graph()
    blocking = {
        (k.asset_key.to_user_string(), k.name)
        for k in graph.asset_check_keys
        if graph.get_check_spec(k).blocking
    }
    assert ("optiply_product_payloads", "schema") in blocking
    assert ("optiply_sell_order_payloads", "schema") in blocking
    for name in EXPECTED_VENDOR_ASSETS:
        if name.endswith("_payloads"):
            assert (name, "schema") in blocking, name


REGISTRY = """
tenants:
  - name: acme
    marketplaces: [DE, FR]
    optiply_account_id: 1
    optiply_coupling_id: 10
    secrets: {sp_api_refresh_token: ACME_SP_API_REFRESH_TOKEN}
  - name: globex
    marketplaces: [US]
    optiply_account_id: 2
    optiply_coupling_id: 20
    settings: {flavour: secondary}
  - name: initech
    marketplaces: [JP]
    optiply_account_id: 3
    optiply_coupling_id: 30
    paused: true
  - name: hooli
    integration: vendor
    marketplaces: [DE]
    optiply_account_id: 4
    optiply_coupling_id: 40
    settings: {flavour: sell_orders_only}
"""


@pytest.fixture
def registry_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "tenants.yaml"
    path.write_text(REGISTRY)
    monkeypatch.setenv("TENANTS_FILE", str(path))
    return path


def test_schedules_request_a_run_per_marketplace_of_each_active_tenant_every_30_minutes(registry_file):
    definitions = defs()
    requested = {}
    with dg.instance_for_test() as instance:
        for tenant in TenantRegistry.load().tenants.values():
            instance.add_dynamic_partitions(tenant.partitions_name, tenant.partition_keys())
        context = dg.build_schedule_context(
            instance=instance,
            repository_def=definitions.get_repository_def(),
            scheduled_execution_time=datetime(2026, 11, 27, 10, 30),
        )
        for (integration, flavour), job in SYNC_JOBS.items():
            prefix = "" if integration == "seller" else "vendor_"
            schedule = definitions.resolve_schedule_def(f"every_30_minutes_{prefix}{flavour}")
            assert schedule.cron_schedule == "*/30 * * * *"
            assert schedule.job_name == job
            for r in schedule.evaluate_tick(context).run_requests:
                requested[r.partition_key] = (flavour, r.tags["tenant"], r.tags["marketplace"])
    # The paused tenant gets no run; each tenant runs its flavour's job.
    assert requested == {
        "acme/DE": ("full", "acme", "DE"),
        "acme/FR": ("full", "acme", "FR"),
        "globex/US": ("secondary", "globex", "US"),
        "hooli/DE": ("sell_orders_only", "hooli", "DE"),
    }


def test_registry_sensor_keeps_partitions_equal_to_the_tenants_and_starts_first_syncs(registry_file):
    definitions = defs()
    sensor = definitions.resolve_sensor_def("tenant_registry")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(TENANT_MARKETPLACES, ["gone/DE", "acme/DE"])
        context = dg.build_sensor_context(
            instance=instance,
            instance_ref=instance.get_ref(),
            repository_def=definitions.get_repository_def(),
        )
        result = sensor.evaluate_tick(context)
    added = [r for r in result.dynamic_partitions_requests if isinstance(r, dg.AddDynamicPartitionsRequest)]
    deleted = [
        r for r in result.dynamic_partitions_requests if isinstance(r, dg.DeleteDynamicPartitionsRequest)
    ]
    # Each integration's partitions get its own tenants' keys: a vendor's never show on seller assets.
    assert [(r.partitions_def_name, list(r.partition_keys)) for r in added] == [
        (TENANT_MARKETPLACES, ["acme/FR", "globex/US", "initech/JP"]),
        (VENDOR_ACCOUNTS, ["hooli/DE"]),
    ]
    assert [list(r.partition_keys) for r in deleted] == [["gone/DE"]]
    # A partition's first sync is requested once it exists: for new ones, from the next tick on.
    assert {r.partition_key: r.job_name for r in result.run_requests} == {
        "acme/DE": SYNC_JOBS["seller", "full"]
    }
    with dg.instance_for_test() as instance:
        for tenant in TenantRegistry.load().tenants.values():
            instance.add_dynamic_partitions(tenant.partitions_name, tenant.partition_keys())
        context = dg.build_sensor_context(
            instance=instance,
            instance_ref=instance.get_ref(),
            repository_def=definitions.get_repository_def(),
        )
        result = sensor.evaluate_tick(context)
    # Every partition of a tenant not paused gets its first sync, each run on its tenant's flavour's job.
    first_syncs = {r.partition_key: r.job_name for r in result.run_requests}
    assert first_syncs == {
        "acme/DE": SYNC_JOBS["seller", "full"],
        "acme/FR": SYNC_JOBS["seller", "full"],
        "globex/US": SYNC_JOBS["seller", "secondary"],
        "hooli/DE": SYNC_JOBS["vendor", "sell_orders_only"],
    }
    assert all(r.run_key.endswith("first-sync") for r in result.run_requests)


def test_deliveries_are_late_after_60_minutes():
    """A marketplace whose delivery stalls turns visible: both delivery assets carry a freshness policy."""
    graph = defs().resolve_asset_graph()
    late_after_an_hour = dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=60))
    for name in ("optiply_products", "optiply_sell_orders"):
        assert graph.get(dg.AssetKey(name)).freshness_policy == late_after_an_hour, name


def test_the_registry_names_secrets_and_a_run_reads_them_from_the_environment(registry_file, monkeypatch):
    registry = TenantRegistry.load()
    assert "ACME_SP_API_REFRESH_TOKEN" in registry_file.read_text()  # a name, never a value
    monkeypatch.setenv("ACME_SP_API_REFRESH_TOKEN", "Atzr|acme")
    assert registry.tenant("acme").secret("sp_api_refresh_token") == "Atzr|acme"
    monkeypatch.delenv("LWA_APP_ID", raising=False)
    with pytest.raises(
        SettingError, match=r"tenant acme: the environment variable LWA_APP_ID \(its lwa_app_id\) is not set"
    ):
        registry.tenant("acme").secret("lwa_app_id")


def test_dg_check_defs_passes():
    root = Path(__file__).resolve().parents[1]
    dg_cli = Path(sys.executable).with_name("dg")
    result = subprocess.run(
        [str(dg_cli), "check", "defs"], cwd=root, capture_output=True, text=True, env=os.environ, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_unknown_marketplace_code_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TENANTS_FILE", raising=False)
    for name, value in {
        "AMAZON_MARKETPLACES": "DE,XX",
        "OPTIPLY_ACCOUNT_ID": "1",
        "OPTIPLY_COUPLING_ID": "2",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingError, match=r"AMAZON_MARKETPLACES: .*unknown: \['XX'\]"):
        TenantRegistry.load()


def test_a_registry_entry_with_an_unknown_setting_names_the_tenant_and_the_setting(registry_file):
    registry_file.write_text(REGISTRY.replace("{flavour: secondary}", "{flavor: secondary}"))
    with pytest.raises(SettingError, match=r"(?s)tenant globex: .*unknown setting.*flavor"):
        TenantRegistry.load()
