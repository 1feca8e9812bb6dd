"""The operator's view: which tenant-marketplaces are failing, late, never synced or fine, from run history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from amazon_optiply.operator_view import tenant_statuses
from amazon_optiply.tenants import Tenant


@dg.op
def works() -> None:
    pass


@dg.op
def breaks() -> None:
    raise RuntimeError("Amazon said no")


@dg.job
def good_sync():
    works()


@dg.job
def bad_sync():
    breaks()


def tenant(name: str, marketplaces: list[str], paused: bool = False) -> Tenant:
    return Tenant(
        name=name, marketplaces=marketplaces, optiply_account_id=1, optiply_coupling_id=2, paused=paused
    )


def run(instance, job, key: str) -> None:
    job.execute_in_process(instance=instance, raise_on_error=False, tags={"dagster/partition": key})


def test_each_partition_gets_its_verdict_and_the_ones_needing_attention_come_first():
    tenants = [tenant("acme", ["DE", "FR"]), tenant("globex", ["US"]), tenant("initech", ["DE"], paused=True)]
    with dg.DagsterInstance.ephemeral() as instance:
        run(instance, good_sync, "acme/DE")
        run(instance, good_sync, "acme/FR")
        run(instance, bad_sync, "acme/FR")  # failing since its last success
        run(instance, good_sync, "initech/DE")
        now = datetime.now(UTC)
        rows = {f"{r.tenant}/{r.marketplace}": r for r in tenant_statuses(instance, tenants, now)}
        assert [f"{r.tenant}/{r.marketplace}" for r in tenant_statuses(instance, tenants, now)] == [
            "acme/FR",
            "globex/US",
            "acme/DE",
            "initech/DE",
        ]
        assert (rows["acme/FR"].verdict, rows["acme/FR"].failures_since_success) == ("failing", 1)
        assert rows["acme/FR"].last_success is not None
        assert rows["globex/US"].verdict == "never_synced"
        assert rows["acme/DE"].verdict == "ok"
        assert rows["initech/DE"].verdict == "paused"
        # Seventy minutes on, the partition that only succeeded is late; the failing one stays failing.
        later = {
            f"{r.tenant}/{r.marketplace}": r.verdict
            for r in tenant_statuses(instance, tenants, now + timedelta(minutes=70))
        }
        assert later == {
            "acme/FR": "failing",
            "globex/US": "never_synced",
            "acme/DE": "late",
            "initech/DE": "paused",
        }
        assert "ACME/DE" not in rows["acme/DE"].line(now) and "acme/DE\tOK" in rows["acme/DE"].line(now)


def test_late_tenants_sensor_alerts_once_per_late_partition(monkeypatch, tmp_path):
    from amazon_optiply.defs import automation as schedules

    registry = tmp_path / "tenants.yaml"
    registry.write_text(
        "tenants:\n  - {name: acme, marketplaces: [DE], optiply_account_id: 1, optiply_coupling_id: 2}\n"
    )
    monkeypatch.setenv("TENANTS_FILE", str(registry))
    posted: list[str] = []
    monkeypatch.setattr(schedules, "post_alert", posted.append)
    with dg.DagsterInstance.ephemeral() as instance:
        run(instance, good_sync, "acme/DE")
        context = dg.build_sensor_context(instance=instance)
        real = tenant_statuses
        shifted = lambda inst, ts, now=None: real(inst, ts, datetime.now(UTC) + timedelta(minutes=70))  # noqa: E731
        monkeypatch.setattr("amazon_optiply.operator_view.tenant_statuses", shifted)
        schedules.late_tenants(context)
        assert len(posted) == 1 and posted[0].startswith("tenant acme, marketplace DE: no successful sync")
        assert json.loads(context.cursor) == ["acme/DE"]
        schedules.late_tenants(dg.build_sensor_context(instance=instance, cursor=context.cursor))
        assert len(posted) == 1, "a partition still late was reported again"


@pytest.mark.parametrize("verdicts", [["ok"], ["failing"]])
def test_status_command_exit_code_says_whether_anything_needs_attention(monkeypatch, tmp_path, verdicts):
    from amazon_optiply import tenants as cli

    registry = tmp_path / "tenants.yaml"
    registry.write_text(
        "tenants:\n  - {name: acme, marketplaces: [DE], optiply_account_id: 1, optiply_coupling_id: 2}\n"
    )
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("TENANTS_FILE", str(registry))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        run(instance, good_sync if verdicts == ["ok"] else bad_sync, "acme/DE")
    assert cli.main(["status"]) == (0 if verdicts == ["ok"] else 1)
