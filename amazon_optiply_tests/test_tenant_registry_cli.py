"""`python -m amazon_optiply.tenants`: an integration engineer adds, pauses and removes tenants, and exports
or deletes one customer's data, without touching code or restarting anything."""

from pathlib import Path

import pandas as pd
import pytest
import yaml

from amazon_optiply import tenants
from amazon_optiply.resources import default_state_url
from amazon_optiply.state import SyncState


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "tenants.yaml"
    monkeypatch.setenv("TENANTS_FILE", str(path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    return path


def entries(path: Path) -> dict[str, dict]:
    return {t["name"]: t for t in yaml.safe_load(path.read_text())["tenants"]}


def test_add_pause_resume_and_remove_change_only_the_registry(registry: Path, capsys):
    add = ["add", "acme", "--marketplaces", "de,fr", "--account-id", "7", "--coupling-id", "70"]
    secret = ["--secret", "sp_api_refresh_token=ACME_SP_API_REFRESH_TOKEN", "--setting", "flavour=secondary"]
    assert tenants.main([*add, *secret]) == 0
    assert (
        tenants.main(["add", "globex", "--marketplaces", "US", "--account-id", "8", "--coupling-id", "80"])
        == 0
    )
    acme = entries(registry)["acme"]
    assert acme["marketplaces"] == ["DE", "FR"]
    assert acme["secrets"] == {"sp_api_refresh_token": "ACME_SP_API_REFRESH_TOKEN"}  # a name, not a value
    assert tenants.TenantRegistry.load().active_partition_keys() == ["acme/DE", "acme/FR", "globex/US"]

    assert tenants.main(["pause", "acme"]) == 0
    assert tenants.TenantRegistry.load().active_partition_keys() == ["globex/US"]
    assert tenants.TenantRegistry.load().partition_keys() == ["acme/DE", "acme/FR", "globex/US"]
    assert tenants.main(["resume", "acme"]) == 0
    assert tenants.main(["remove", "globex"]) == 0
    assert list(entries(registry)) == ["acme"]
    capsys.readouterr()
    assert tenants.main(["list"]) == 0
    assert capsys.readouterr().out.splitlines() == ["acme\tseller\tDE,FR\tsecondary\tactive"]


def test_bad_entries_are_refused_naming_what_is_wrong(registry: Path, capsys):
    assert (
        tenants.main(["add", "Acme Corp", "--marketplaces", "DE", "--account-id", "1", "--coupling-id", "2"])
        == 2
    )
    assert "tenant name 'Acme Corp'" in capsys.readouterr().err
    assert (
        tenants.main(["add", "acme", "--marketplaces", "DE,XX", "--account-id", "1", "--coupling-id", "2"])
        == 2
    )
    assert "unknown: ['XX']" in capsys.readouterr().err
    assert tenants.main(["pause", "nobody"]) == 2
    assert "no tenant 'nobody'" in capsys.readouterr().err
    assert not registry.exists()


def test_export_and_delete_touch_one_tenants_state_only(registry: Path, tmp_path: Path):
    for name in ("acme", "globex"):
        assert (
            tenants.main(["add", name, "--marketplaces", "DE", "--account-id", "1", "--coupling-id", "2"])
            == 0
        )
        state = SyncState(default_state_url(name))
        state.record_intent("products", f"{name}-sku", "DE")
        state.engine.dispose()

    assert tenants.main(["export", "acme", "--to", str(tmp_path / "export")]) == 0
    exported = pd.read_csv(tmp_path / "export" / "optiply_records.csv")
    assert list(exported["remote_id"]) == ["acme-sku"]
    assert yaml.safe_load((tmp_path / "export" / "tenant.yaml").read_text())["name"] == "acme"

    assert tenants.main(["delete", "acme"]) == 0
    assert not (tmp_path / "sync_state-acme.sqlite").exists()
    assert list(entries(registry)) == ["globex"]
    globex = SyncState(default_state_url("globex"))
    assert list(globex.records("products")["remote_id"]) == ["globex-sku"]


def test_make_runs_registry_is_the_environments_seller_and_the_sandbox_vendor(tmp_path, monkeypatch):
    from amazon_optiply.tenants_sandbox import sandbox_registry

    for name, value in {
        "AMAZON_MARKETPLACES": "DE,FR",
        "OPTIPLY_ACCOUNT_ID": "1",
        "OPTIPLY_COUPLING_ID": "42",
        "OPTIPLY_FLAVOUR": "secondary",
        "VENDOR_SP_API": "http://127.0.0.1:8703",
        "VENDOR_OPTIPLY": "http://127.0.0.1:8704/v1",
    }.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "tenants.yaml"
    path.write_text(yaml.safe_dump(sandbox_registry()))
    registry = tenants.TenantRegistry.load(path)
    default, vendor = registry.tenant("default"), registry.tenant("vendor-sandbox")
    assert (default.integration, default.marketplaces, default.flavour) == (
        "seller",
        ["DE", "FR"],
        "secondary",
    )
    assert (vendor.integration, vendor.marketplaces, vendor.partitions_name) == (
        "vendor",
        ["DE"],
        "vendor_accounts",
    )
    assert vendor.endpoint("optiply_token_url") == "http://127.0.0.1:8704/api/auth/oauth/token"
