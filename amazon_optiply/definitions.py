"""The Dagster definitions: everything under defs/, bound to resources resolved for each run's tenant.

Resources are built when a run starts, from its partition (`<tenant>/<marketplace>`): the tenant's entry in
the registry gives its settings and names the environment variables holding its secrets, so a secret is
read inside the run only and never enters run config, tags or the UI.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from amazon_optiply.defs.automation import sync_automation
from amazon_optiply.parquet_io import ParquetIOManager
from amazon_optiply.partitions import SettingError
from amazon_optiply.resources import (
    AmazonResource,
    IntegrationSettings,
    OptiplyResource,
    SyncStateResource,
    VendorSettings,
    default_state_url,
)
from amazon_optiply.tenants import Tenant, TenantRegistry, split_partition_key


@dg.resource(description="The run's tenant, from its partition <tenant>/<marketplace> and the registry")
def tenant_resource(init: dg.InitResourceContext) -> Tenant:
    key = init.run.tags.get("dagster/partition") if init.run else None
    if not key:
        raise SettingError("this run has no partition: choose one <tenant>/<marketplace>, e.g. default/DE")
    name, _ = split_partition_key(key)
    return TenantRegistry.load().tenant(name)


@dg.resource(required_resource_keys={"tenant"})
def settings_resource(init: dg.InitResourceContext) -> IntegrationSettings:
    t: Tenant = init.resources.tenant
    return IntegrationSettings(
        marketplaces=",".join(t.marketplaces),
        flavour=t.flavour,
        match_key=t.setting("match_key", "eanCode"),
        seller_central_url=t.setting("seller_central_url", ""),
        main_marketplace=t.setting("main_marketplace", ""),
        stock_source=t.setting("stock_source", "fba"),
        pan_eu_stock=t.setting("pan_eu_stock", "by_country"),
        orders_start=t.setting("orders_start", ""),
        orders_lookback_days=int(t.setting("orders_lookback_days", 7)),
        orders_overlap_minutes=int(t.setting("orders_overlap_minutes", 60)),
        held_order_retention_days=float(t.setting("held_order_retention_days", 14)),
        catalog_refresh_days=int(t.setting("catalog_refresh_days", 30)),
        fba_full_refresh_hours=float(t.setting("fba_full_refresh_hours", 24)),
        max_bad_row_share=float(t.setting("max_bad_row_share", 0.05)),
        count_inbound=t.setting("count_inbound", False),
        count_awd=t.setting("count_awd", True),
    )


@dg.resource(required_resource_keys={"tenant"})
def vendor_settings_resource(init: dg.InitResourceContext) -> VendorSettings:
    t: Tenant = init.resources.tenant
    return VendorSettings(
        flavour=t.flavour,
        orders_start=t.setting("orders_start", ""),
        orders_lookback_days=int(t.setting("orders_lookback_days", 7)),
        purchase_order_lookback_days=int(t.setting("purchase_order_lookback_days", 60)),
        distributor_view=str(t.setting("distributor_view", "MANUFACTURING")),
        selling_program=str(t.setting("selling_program", "RETAIL")),
        catalog_refresh_days=int(t.setting("catalog_refresh_days", 30)),
    )


@dg.resource(required_resource_keys={"tenant", "sync_state"})
def amazon_resource(init: dg.InitResourceContext) -> AmazonResource:
    t: Tenant = init.resources.tenant
    variables = [t.secret_variable(n) for n in ("sp_api_refresh_token", "lwa_app_id", "lwa_client_secret")]
    resource = AmazonResource(
        refresh_token=t.secret("sp_api_refresh_token"),
        lwa_app_id=t.secret("lwa_app_id"),
        lwa_client_secret=t.secret("lwa_client_secret"),
        endpoint=t.endpoint("sp_api_endpoint"),
        lwa_token_url=t.endpoint("lwa_token_url"),
        # Deployment-wide: how long a run waits for a report.
        report_deadline_seconds=float(os.environ.get("AMAZON_REPORT_DEADLINE_SECONDS", "1800")),
        credentials_named=f"tenant {t.name}'s {', '.join(variables[:-1])} and {variables[-1]}",
    )
    # Amazon's rate limits are per selling partner: all of this tenant's runs draw on one budget.
    resource.setup(budget_store=init.resources.sync_state.open().budget_store())
    return resource


@dg.resource(required_resource_keys={"tenant"})
def optiply_resource(init: dg.InitResourceContext) -> OptiplyResource:
    t: Tenant = init.resources.tenant
    return OptiplyResource(
        api_url=t.endpoint("optiply_api_url"),
        token_url=t.endpoint("optiply_token_url"),
        username=t.secret("optiply_username"),
        password=t.secret("optiply_password"),
        client_id=t.secret("optiply_client_id"),
        client_secret=t.secret("optiply_client_secret"),
        account_id=t.optiply_account_id,
        coupling_id=t.optiply_coupling_id,
        # Deployment-wide: Optiply's write budget is one for all tenants.
        min_write_interval_seconds=float(os.environ.get("OPTIPLY_MIN_WRITE_INTERVAL_SECONDS", "0.2")),
        max_writes_per_second=float(os.environ.get("OPTIPLY_MAX_WRITES_PER_SECOND", "20")),
        max_concurrent_writes=int(os.environ.get("OPTIPLY_MAX_CONCURRENT_WRITES", "4")),
    )


@dg.resource(required_resource_keys={"tenant"})
def sync_state_resource(init: dg.InitResourceContext) -> SyncStateResource:
    t: Tenant = init.resources.tenant
    return SyncStateResource(database_url=t.state_database_url or default_state_url(t.name))


def resources() -> dict[str, object]:
    return {
        "tenant": tenant_resource,
        "settings": settings_resource,
        "vendor_settings": vendor_settings_resource,
        "amazon": amazon_resource,
        "optiply": optiply_resource,
        "sync_state": sync_state_resource,
        "io_manager": ParquetIOManager(base_path=os.environ.get("ASSET_STORAGE_PATH", "")),
    }


@dg.definitions
def defs() -> dg.Definitions:
    loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    # One process per run: starting a process per step costs more than the steps themselves.
    return dg.Definitions.merge(
        loaded,
        sync_automation(),
        dg.Definitions(resources=resources(), executor=dg.in_process_executor),
    )
