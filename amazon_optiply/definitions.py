"""The Dagster definitions: everything under defs/, bound to resources read from the environment."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from amazon_optiply.defs.optiply.schedules import sync_automation
from amazon_optiply.parquet_io import ParquetIOManager
from amazon_optiply.resources import AmazonResource, IntegrationSettings, OptiplyResource, SyncStateResource


def resources() -> dict[str, object]:
    """Secrets come from the environment through EnvVar; optional, non-secret settings have defaults."""
    env = os.environ.get
    return {
        "amazon": AmazonResource(
            refresh_token=dg.EnvVar("SP_API_REFRESH_TOKEN"),
            lwa_app_id=dg.EnvVar("LWA_APP_ID"),
            lwa_client_secret=dg.EnvVar("LWA_CLIENT_SECRET"),
            endpoint=env("SP_API_ENDPOINT", ""),
            lwa_token_url=env("LWA_TOKEN_URL", ""),
            report_deadline_seconds=float(env("AMAZON_REPORT_DEADLINE_SECONDS", "1800")),
        ),
        "optiply": OptiplyResource(
            api_url=dg.EnvVar("OPTIPLY_API_URL"),
            token_url=dg.EnvVar("OPTIPLY_TOKEN_URL"),
            username=dg.EnvVar("OPTIPLY_USERNAME"),
            password=dg.EnvVar("OPTIPLY_PASSWORD"),
            client_id=dg.EnvVar("OPTIPLY_CLIENT_ID"),
            client_secret=dg.EnvVar("OPTIPLY_CLIENT_SECRET"),
            account_id=dg.EnvVar.int("OPTIPLY_ACCOUNT_ID"),
            coupling_id=dg.EnvVar.int("OPTIPLY_COUPLING_ID"),
            min_write_interval_seconds=float(env("OPTIPLY_MIN_WRITE_INTERVAL_SECONDS", "0.2")),
        ),
        "sync_state": SyncStateResource(database_url=env("SYNC_STATE_DATABASE_URL", "")),
        "settings": IntegrationSettings(
            marketplaces=dg.EnvVar("AMAZON_MARKETPLACES"),
            flavour=env("OPTIPLY_FLAVOUR", "full"),
            match_key=env("OPTIPLY_MATCH_KEY", "eanCode"),
            seller_central_url=env("AMAZON_SELLER_CENTRAL_URL", ""),
            main_marketplace=env("AMAZON_MAIN_MARKETPLACE", ""),
            stock_source=env("AMAZON_STOCK_SOURCE", "fba"),
            orders_start=env("ORDERS_START", ""),
            orders_lookback_days=int(env("ORDERS_LOOKBACK_DAYS", "7")),
            orders_overlap_minutes=int(env("ORDERS_OVERLAP_MINUTES", "60")),
            held_order_retention_days=float(env("HELD_ORDER_RETENTION_DAYS", "14")),
            catalog_refresh_days=int(env("CATALOG_REFRESH_DAYS", "30")),
            fba_full_refresh_hours=float(env("FBA_FULL_REFRESH_HOURS", "24")),
            max_bad_row_share=float(env("MAX_BAD_ROW_SHARE", "0.05")),
        ),
        "io_manager": ParquetIOManager(base_path=env("ASSET_STORAGE_PATH", "")),
    }


@dg.definitions
def defs() -> dg.Definitions:
    loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    # One process per run: starting a process per step costs more than the steps themselves.
    return dg.Definitions.merge(
        loaded,
        sync_automation(os.environ.get("OPTIPLY_FLAVOUR", "full")),
        dg.Definitions(resources=resources(), executor=dg.in_process_executor),
    )
