"""End to end: the real client over HTTP against the sandbox; Optiply's final state against the ground truth."""

from datetime import timedelta

import pytest

from amazon_optiply_tests.sync.ground_truth import (
    assert_orders_match_ground_truth,
    assert_products_match_ground_truth,
)

SECRET_SETTINGS = ("SP_API_REFRESH_TOKEN", "LWA_CLIENT_SECRET", "OPTIPLY_PASSWORD", "OPTIPLY_CLIENT_SECRET")


def assert_no_secret_in_runs(harness) -> None:
    secrets = [harness.sandbox.env()[name] for name in SECRET_SETTINGS]
    runs = harness.instance.get_runs()
    assert runs
    for run in runs:
        texts = [str(run.run_config), *(str(record) for record in harness.instance.all_logs(run.run_id))]
        for text in texts:
            for secret in secrets:
                assert secret not in text, f"a secret leaked into run {run.run_id}"


def assert_every_asset_shows_rows_and_preview(harness) -> None:
    materialized = set()
    for run in harness.instance.get_runs():
        for record in harness.instance.all_logs(run.run_id):
            if record.dagster_event and record.dagster_event.event_type_value == "ASSET_MATERIALIZATION":
                mat = record.dagster_event.event_specific_data.materialization
                assert "dagster/row_count" in mat.metadata, mat.asset_key
                assert "preview" in mat.metadata, mat.asset_key
                materialized.add(mat.asset_key.to_user_string())
    # The near-real-time streams included: AFN by country (the Pan-EU stock rule reads it), order items,
    # AWD and inbound shipments.
    assert len(materialized) == 17


def test_first_sync_delivers_every_active_listing_and_eligible_order(harness):
    summaries = harness.sync()
    assert_no_secret_in_runs(harness)
    assert_every_asset_shows_rows_and_preview(harness)
    products = assert_products_match_ground_truth(harness)
    assert_orders_match_ground_truth(harness, products)
    assert summaries["DE"]["products_created"] == len(harness.sandbox.world.expected_products("DE"))
    assert summaries["DE"]["products_updated"] == 0


@pytest.mark.slow  # a long end-to-end test: three cycles
def test_next_cycles_write_only_what_changed(harness):
    harness.sync()
    before = harness.expected_products().set_index("remoteId")
    orders_before = {o.order_id for orders in harness.expected_orders().values() for o in orders}
    harness.sandbox.optiply.reset_request_log()

    harness.sandbox.advance(timedelta(minutes=30))
    harness.sync()
    after = harness.expected_products().set_index("remoteId")
    changed = {rid for rid in after.index if not before.loc[rid].fillna("").equals(after.loc[rid].fillna(""))}
    new_orders = {o.order_id for orders in harness.expected_orders().values() for o in orders} - orders_before
    writes = harness.sandbox.optiply.writes()
    patched = {w["attributes"].get("remoteId") or w["path"] for w in writes if w["method"] == "PATCH"}
    posted_orders = [
        w["attributes"]["remoteId"] for w in writes if w["method"] == "POST" and "sellOrders" in w["path"]
    ]
    posted_products = [w for w in writes if w["method"] == "POST" and "/products" in w["path"]]

    assert changed, "the sandbox changed nothing in 30 minutes; the test would prove nothing"
    assert new_orders, "no new orders in 30 minutes; the test would prove nothing"
    assert len(patched) == len(changed)
    assert sorted(posted_orders) == sorted(new_orders)
    assert posted_products == []
    # Stock came from the rows Amazon changed since the first read, merged into the kept snapshot.
    fba = harness.materialization_metadata("DE", "fba_inventory")
    assert fba["read"].startswith("changed since") and 0 < fba["rows_read"] < fba["dagster/row_count"] / 5
    products = assert_products_match_ground_truth(harness)
    assert_orders_match_ground_truth(harness, products)

    harness.sandbox.optiply.reset_request_log()
    summaries = harness.sync()  # same moment: nothing changed
    assert harness.sandbox.optiply.writes() == []
    assert all(s["products_updated"] == 0 and s["orders_delivered"] == 0 for s in summaries.values())


@pytest.mark.slow  # two cycles
def test_a_state_kept_as_json_by_an_earlier_version_patches_only_what_changed(harness):
    """Upgrading from the versions that kept each product's attributes as JSON (now a fingerprint): the first
    cycle after it compares the JSON, so it neither PATCHes every product nor misses a change."""
    import json
    import os

    from amazon_optiply.delivery import PRODUCTS
    from amazon_optiply.state import SyncState

    harness.sync()
    state = SyncState(os.environ["SYNC_STATE_DATABASE_URL"])
    held = harness.sandbox.optiply.snapshot()["products"]
    done = state.records(PRODUCTS)
    done = done[done["state"] == "done"]
    for remote_id, marketplace, optiply_id in zip(
        done["remote_id"], done["marketplace"], done["optiply_id"].astype(int), strict=True
    ):
        product = held[optiply_id]
        old = {k: product.get(k) for k in ("eanCode", "name", "price", "skuCode", "stockLevel")}
        state.record_done(PRODUCTS, remote_id, marketplace, optiply_id, json.dumps(old, ensure_ascii=False))
    assert state.records(PRODUCTS)["attributes_json"].str.startswith("{").all()
    before = harness.expected_products().set_index("remoteId")
    harness.sandbox.optiply.reset_request_log()

    harness.sandbox.advance(timedelta(minutes=30))
    harness.sync()
    after = harness.expected_products().set_index("remoteId")
    changed = {rid for rid in after.index if not before.loc[rid].fillna("").equals(after.loc[rid].fillna(""))}
    writes = harness.sandbox.optiply.writes()
    patched = {w["path"] for w in writes if w["method"] == "PATCH" and "/products" in w["path"]}
    assert changed, "the sandbox changed nothing in 30 minutes; the test would prove nothing"
    assert len(patched) == len(changed)
    assert [w for w in writes if w["method"] == "POST" and "/products" in w["path"]] == []
    assert_products_match_ground_truth(harness)
