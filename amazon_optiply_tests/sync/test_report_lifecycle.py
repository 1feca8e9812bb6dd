"""Report lifecycle and fault handling, end to end: the real client over HTTP against the sandbox.

Syncs here run the DE marketplace only (the main one), to keep the file fast; Optiply's state is compared
with the sandbox seller's ground truth for DE.
"""

import logging
import threading
import time
from dataclasses import replace
from datetime import timedelta

import dagster as dg
import pandas as pd
import pytest
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from sp_api.auth import access_token_client

from amazon_optiply.clients.amazon import AmazonError, SpApiCaller, SpApiCredentials
from amazon_optiply.clients.selling_partner import ReportFailed, SellingPartner
from amazon_optiply.sandbox.faults import FAULT_KINDS, FaultRates
from amazon_optiply.state import SyncState
from amazon_optiply.sync import sync_marketplace
from amazon_optiply.tenants import DEFAULT_TENANT, TenantRegistry
from amazon_optiply_tests.sync.ground_truth import assert_orders_match_ground_truth, optiply_products
from amazon_optiply_tests.sync.test_bad_input import set_field, tamper_listings

LISTINGS = "GET_MERCHANT_LISTINGS_ALL_DATA"
ORDERS = "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL"
FBA_MYI = "GET_FBA_MYI_UNSUPPRESSED_INVENTORY_DATA"
LOG = logging.getLogger(__name__)


# ---- helpers -------------------------------------------------------------------------------------------


def sync_de(harness):
    from amazon_optiply.definitions import defs

    return sync_marketplace(defs(), TenantRegistry.load().tenant(DEFAULT_TENANT), "DE", harness.instance)


def expected_de_products(harness) -> pd.DataFrame:
    return harness.sandbox.world.expected_products("DE", None, "fba")


def expected_de_orders(harness) -> dict:
    now = harness.sandbox.clock.now()
    return {"DE": harness.sandbox.world.expected_sell_orders("DE", harness.orders_start.to_pydatetime(), now)}


def _compare(expected: pd.DataFrame, held: pd.DataFrame) -> pd.DataFrame:
    """Rows of `held` whose attributes differ from the expected ones (or that are not expected at all)."""
    merged = held.merge(expected, on="remoteId", how="left", suffixes=("", "_expected"), indicator=True)
    wrong = merged["_merge"] != "both"
    for field in ("name", "skuCode", "stockLevel"):
        wrong |= merged[field] != merged[f"{field}_expected"]
    wrong |= merged["eanCode"].fillna("") != merged["eanCode_expected"].fillna("")
    wrong |= (merged["price"].astype(float) - merged["price_expected"].astype(float)).abs() >= 0.005
    return merged[wrong]


def assert_no_wrong_data(harness) -> None:
    """Whatever Optiply holds is right: no duplicate, no product or order with values other than Amazon's."""
    held = optiply_products(harness)
    if len(held):
        assert held["remoteId"].is_unique, "a product was created twice"
        wrong = _compare(expected_de_products(harness), held)
        assert wrong.empty, wrong[["remoteId", "stockLevel", "stockLevel_expected"]].head()
    orders = harness.sandbox.optiply.snapshot()["sellOrders"].values()
    remote_ids = [o["remoteId"] for o in orders]
    assert len(remote_ids) == len(set(remote_ids)), "a sell order was posted twice"
    expected = {o.order_id: o for o in expected_de_orders(harness)["DE"]}
    for order in orders:
        assert order["remoteId"] in expected, f"sell order {order['remoteId']} should not be in Optiply"
        assert abs(float(order["totalValue"]) - expected[order["remoteId"]].total_value) < 0.005


def assert_matches_ground_truth(harness) -> pd.DataFrame:
    held = optiply_products(harness)
    expected = expected_de_products(harness)
    assert held["remoteId"].is_unique, "a product was created twice"
    assert sorted(held["remoteId"]) == sorted(expected["remoteId"])
    assert _compare(expected, held).empty
    assert_orders_match_ground_truth(harness, held, expected_de_orders(harness))
    return held


def product_values(harness) -> pd.DataFrame:
    return optiply_products(harness).set_index("remoteId")[["name", "price", "stockLevel"]].sort_index()


def reports_of(harness, report_type: str) -> list:
    return [r for r in harness.sandbox.amazon.reports.values() if r.report_type == report_type]


def latest_metadata(harness, asset: str) -> dict:
    event = harness.instance.get_latest_materialization_event(dg.AssetKey(asset))
    assert event is not None
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def state(harness) -> SyncState:
    import os

    return SyncState(os.environ["SYNC_STATE_DATABASE_URL"])


def selling_partner(harness, **settings) -> SellingPartner:
    """The client alone, no Dagster: what the assets' `amazon.partner` is."""
    env = harness.sandbox.env()
    credentials = SpApiCredentials(
        settings.pop("refresh_token", env["SP_API_REFRESH_TOKEN"]),
        env["LWA_APP_ID"],
        env["LWA_CLIENT_SECRET"],
    )
    return SellingPartner(
        credentials,
        SpApiCaller(),
        endpoint=env["SP_API_ENDPOINT"],
        lwa_token_url=env["LWA_TOKEN_URL"],
        **settings,
    )


# ---- report statuses through the assets -----------------------------------------------------------------


def test_done_report_is_read_and_reused_at_the_same_moment(harness):
    result = sync_de(harness)
    assert result.success, result.error
    assert_matches_ground_truth(harness)
    first = latest_metadata(harness, "listings_report")
    assert first["report_status"] == "DONE" and first["report_reused"] is False
    assert len(reports_of(harness, LISTINGS)) == 1

    result = sync_de(harness)  # same moment: the listings report just made is still fresh
    assert result.success, result.error
    again = latest_metadata(harness, "listings_report")
    assert again["report_reused"] is True and again["report_id"] == first["report_id"]
    assert len(reports_of(harness, LISTINGS)) == 1, "a second listings report was created"
    assert_matches_ground_truth(harness)

    harness.sandbox.advance(timedelta(minutes=30))  # no longer fresh: a new report, with the new data
    result = sync_de(harness)
    assert result.success, result.error
    assert latest_metadata(harness, "listings_report")["report_reused"] is False
    assert len(reports_of(harness, LISTINGS)) == 2
    assert_matches_ground_truth(harness)


@pytest.mark.parametrize("outcome", ["CANCELLED", "FATAL"])
def test_failed_listings_report_fails_the_run_and_optiply_keeps_the_last_values(harness, outcome):
    assert sync_de(harness).success
    before = product_values(harness)
    orders_before = len(harness.sandbox.optiply.snapshot()["sellOrders"])
    harness.sandbox.advance(timedelta(minutes=30))
    reason = "the seller's listings could not be compiled (forced by the test)"
    harness.sandbox.amazon.forced_outcomes[LISTINGS] = (outcome, reason)

    result = sync_de(harness)

    assert not result.success
    assert result.error.startswith("listings_report: ") and f"{LISTINGS} report" in result.error
    assert outcome in result.error
    if outcome == "FATAL":
        assert reason in result.error, "the error document's reason must reach the failure message"
        assert state(harness).report_fatal(LISTINGS, "DE")[1].endswith(reason)
    # Optiply still holds the first cycle's values: not zeros, not the values Amazon would have reported now.
    after = product_values(harness)
    pd.testing.assert_frame_equal(after, before)
    assert (after["stockLevel"] > 0).any()
    now_expected = expected_de_products(harness).set_index("remoteId").loc[after.index]
    assert (now_expected["stockLevel"] != after["stockLevel"]).any(), (
        "nothing changed: the test proves nothing"
    )
    # Orders are not downstream of the listings: the new ones went out, on the products Optiply holds.
    assert len(harness.sandbox.optiply.snapshot()["sellOrders"]) > orders_before
    assert_orders_match_ground_truth(harness, optiply_products(harness), expected_de_orders(harness))

    # Listings have no cooldown: the next run (same moment) asks again and catches up.
    del harness.sandbox.amazon.forced_outcomes[LISTINGS]
    result = sync_de(harness)
    assert result.success, result.error
    assert_matches_ground_truth(harness)
    assert state(harness).report_fatal(LISTINGS, "DE") is None


def listings_check_failed_in(harness, run_id: str) -> bool:
    """listings_report's schema check was planned in this run and never evaluated: the UI shows it failed."""
    key = dg.AssetCheckKey(dg.AssetKey("listings_report"), "schema")
    record = harness.instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    run = harness.instance.get_run_by_id(record.run_id)
    return (
        record.run_id == run_id
        and record.status == AssetCheckExecutionRecordStatus.PLANNED
        and run.status == dg.DagsterRunStatus.FAILURE
    )


@pytest.mark.slow  # a long end-to-end test: four cycles
def test_orders_keep_flowing_while_the_listings_report_fails(harness):
    # One listing is unusable in the first cycle (a bad price): its product never reaches Optiply, and the
    # orders it was sold in wait for it.
    first_orders = expected_de_orders(harness)["DE"]
    waiting_sku = first_orders[0].lines[0]["sku"]
    tamper_listings(harness, "DE", {waiting_sku}, set_field("price", "N/A"))
    assert sync_de(harness).success
    del harness.sandbox.amazon.tamper_documents[LISTINGS]
    products_before = product_values(harness)
    harness.sandbox.amazon.forced_outcomes[LISTINGS] = ("FATAL", "listings could not be compiled (test)")

    delivered_per_cycle = []
    for _ in range(3):
        harness.sandbox.advance(timedelta(minutes=30))
        result = sync_de(harness)

        # The failure shows: a failed run, the listings step named, its check failed.
        assert not result.success
        assert result.error.startswith("listings_report: ") and "FATAL" in result.error, result.error
        run = harness.instance.get_runs(filters=dg.RunsFilter(tags={"marketplace": "DE"}), limit=1)[0]
        assert listings_check_failed_in(harness, run.run_id)
        # Products keep their last values; every order whose products Optiply holds is delivered, once.
        pd.testing.assert_frame_equal(product_values(harness), products_before)
        eligible = expected_de_orders(harness)["DE"]
        waiting = [o for o in eligible if any(ln["sku"] == waiting_sku for ln in o.lines)]
        deliverable = [o for o in eligible if o not in waiting]
        held = optiply_products(harness)
        assert_orders_match_ground_truth(harness, held, {"DE": deliverable}, at_least=50)
        check = harness.check_metadata("DE", "optiply_sell_order_payloads", "orders_held")
        assert check["orders_held"] == len(waiting) > 0 and waiting_sku in check["held"]
        delivered_per_cycle.append(result.summary["orders_delivered"])
    assert sum(delivered_per_cycle) >= 2, f"too few new orders to prove anything: {delivered_per_cycle}"
    moved = expected_de_products(harness).set_index("remoteId").loc[products_before.index]
    assert (moved["stockLevel"] != products_before["stockLevel"]).any(), "nothing changed: proves nothing"

    # Amazon delivers again: products catch up, and the waiting orders go out on their new product.
    del harness.sandbox.amazon.forced_outcomes[LISTINGS]
    result = sync_de(harness)
    assert result.success, result.error
    assert_matches_ground_truth(harness)


def test_cancelled_orders_report_means_no_orders_and_the_cursor_moves_on_without_losing_any(harness):
    assert sync_de(harness).success
    cursor_before, _ = state(harness).order_cursor("DE")
    orders_before = set(o["remoteId"] for o in harness.sandbox.optiply.snapshot()["sellOrders"].values())
    now = harness.sandbox.advance(timedelta(minutes=30))
    new_orders = {o.order_id for o in expected_de_orders(harness)["DE"]} - orders_before
    assert new_orders, "no new orders in 30 minutes: the test would prove nothing"
    harness.sandbox.amazon.forced_outcomes[ORDERS] = ("CANCELLED", "")

    result = sync_de(harness)

    assert result.success, result.error
    assert latest_metadata(harness, "orders_report")["report_status"] == "CANCELLED"
    held = set(o["remoteId"] for o in harness.sandbox.optiply.snapshot()["sellOrders"].values())
    assert held == orders_before, "a CANCELLED orders report must deliver no orders"
    cursor, _ = state(harness).order_cursor("DE")
    assert cursor == now > cursor_before

    # The overlap before the cursor covers the cancelled window: its orders arrive with the next report.
    del harness.sandbox.amazon.forced_outcomes[ORDERS]
    harness.sandbox.advance(timedelta(minutes=30))
    result = sync_de(harness)
    assert result.success, result.error
    assert_matches_ground_truth(harness)


def test_cancelled_first_orders_window_is_asked_again_rather_than_trusted(harness):
    harness.sandbox.amazon.forced_outcomes[ORDERS] = ("CANCELLED", "")
    assert sync_de(harness).success
    assert state(harness).order_cursor("DE")[0] is None, "a two-day window cancelled must not move the cursor"
    del harness.sandbox.amazon.forced_outcomes[ORDERS]
    assert sync_de(harness).success
    assert_matches_ground_truth(harness)


def test_report_past_the_deadline_fails_the_run_with_a_clear_message(harness, monkeypatch):
    harness.sandbox.amazon.settings.report_processing_seconds = 30
    monkeypatch.setenv("AMAZON_REPORT_DEADLINE_SECONDS", "1")

    result = sync_de(harness)

    assert not result.success
    assert "past the deadline of 1 s (AMAZON_REPORT_DEADLINE_SECONDS)" in result.error
    assert "still IN_PROGRESS" in result.error or "still IN_QUEUE" in result.error
    assert optiply_products(harness).empty


# ---- report lifecycle through the resource ---------------------------------------------------------------


def test_report_in_progress_is_reused_by_a_second_fetch(harness):
    harness.sandbox.amazon.settings.report_processing_seconds = 2.0
    amazon = selling_partner(harness)
    fetched = {}
    first = threading.Thread(target=lambda: fetched.update(a=amazon.fetch_report("DE", LISTINGS, LOG)))
    first.start()
    deadline = time.monotonic() + 10
    while not reports_of(harness, LISTINGS) and time.monotonic() < deadline:
        time.sleep(0.02)
    second = selling_partner(harness).fetch_report("DE", LISTINGS, LOG)
    first.join()

    assert len(reports_of(harness, LISTINGS)) == 1, "the second fetch created a report of its own"
    assert harness.sandbox.amazon.calls["createReport"] == 1
    assert second.reused and not fetched["a"].reused
    assert second.report_id == fetched["a"].report_id and second.status == "DONE"
    assert second.text == fetched["a"].text
    assert len(second.text.splitlines()) == len(harness.sandbox.world.listings["DE"]) + 1


def test_reuse_needs_the_same_window_marketplace_and_type(harness):
    amazon = selling_partner(harness)
    now = harness.sandbox.clock.now()
    a = amazon.fetch_report("DE", ORDERS, LOG, start=now - timedelta(hours=3))
    b = amazon.fetch_report("DE", ORDERS, LOG, start=now - timedelta(hours=3))
    c = amazon.fetch_report("DE", ORDERS, LOG, start=now - timedelta(hours=2))
    d = amazon.fetch_report("US", ORDERS, LOG, start=now - timedelta(hours=3))
    assert b.reused and b.report_id == a.report_id
    assert not c.reused and not d.reused
    assert len({a.report_id, c.report_id, d.report_id}) == 3
    harness.sandbox.advance(timedelta(minutes=11))  # a DONE report older than 10 minutes is not reused
    e = amazon.fetch_report("DE", ORDERS, LOG, start=now - timedelta(hours=3))
    assert not e.reused
    assert harness.sandbox.amazon.calls["createReport"] == 4
    assert harness.sandbox.amazon.calls["getReports"] == 5


def test_slow_report_is_waited_for_within_the_deadline(harness):
    harness.sandbox.set_faults(FaultRates(slow_report=1.0))
    report = selling_partner(harness, report_deadline_seconds=60).fetch_report("DE", LISTINGS, LOG)
    assert report.status == "DONE"
    assert report.polls > 3
    assert len(report.text.splitlines()) == len(harness.sandbox.world.listings["DE"]) + 1


def test_fatal_inside_the_cooldown_is_not_requested_again(harness):
    amazon, sync_state = selling_partner(harness), state(harness)
    harness.sandbox.amazon.forced_outcomes[FBA_MYI] = ("FATAL", "inventory is being recalculated")
    with pytest.raises(ReportFailed) as first:
        amazon.fetch_report("DE", FBA_MYI, LOG, state=sync_state)
    assert "ended FATAL" in str(first.value) and "inventory is being recalculated" in str(first.value)
    del harness.sandbox.amazon.forced_outcomes[FBA_MYI]
    creates = harness.sandbox.amazon.calls["createReport"]

    harness.sandbox.advance(timedelta(minutes=20))
    with pytest.raises(ReportFailed) as second:
        selling_partner(harness).fetch_report("DE", FBA_MYI, LOG, state=sync_state)
    assert harness.sandbox.amazon.calls["createReport"] == creates, "requested again inside the cooldown"
    fatal_at, _ = sync_state.report_fatal(FBA_MYI, "DE")
    until = (fatal_at + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"FATAL at {fatal_at.strftime('%Y-%m-%dT%H:%M:%SZ')} (" in str(second.value)
    assert f"Amazon refuses it again until {until}" in str(second.value)
    assert "inventory is being recalculated" in str(second.value)

    harness.sandbox.advance(timedelta(minutes=11))  # past the cooldown: asked again, and Amazon delivers
    report = selling_partner(harness).fetch_report("DE", FBA_MYI, LOG, state=sync_state)
    assert report.status == "DONE" and not report.reused
    assert harness.sandbox.amazon.calls["createReport"] == creates + 1
    assert sync_state.report_fatal(FBA_MYI, "DE") is None


# ---- permanent errors fail at once ----------------------------------------------------------------------


def test_bad_refresh_token_fails_at_once_saying_which_setting_to_fix(harness):
    access_token_client.cache.clear()
    amazon = selling_partner(harness, refresh_token="Atzr|revoked")
    with pytest.raises(AmazonError) as info:
        amazon.fetch_report("DE", LISTINGS, LOG)
    assert "SP_API_REFRESH_TOKEN" in str(info.value) and "(400)" in str(info.value)
    assert harness.sandbox.amazon.calls["lwaToken"] == 1, "a 400 from LWA was retried"
    assert harness.sandbox.amazon.calls["getReports"] == 0


def test_forbidden_marketplace_fails_at_once_saying_what_to_check(harness):
    amazon = selling_partner(harness)
    with pytest.raises(AmazonError) as info:
        amazon.fetch_report("FR", LISTINGS, LOG)  # the sandbox seller sells in DE and US only
    message = str(info.value)
    assert "403" in message and "does not participate in marketplace A13V1IB3VIYZZH" in message
    assert "AMAZON_MARKETPLACES" in message
    assert harness.sandbox.amazon.calls["createReport"] == 1, "a 403 was retried"


# ---- one fault kind at a time ---------------------------------------------------------------------------

FAULT_RATES = {
    "throttle": 0.3,
    "throttle_no_body": 0.2,
    "server_error": 0.2,
    "html_503": 0.2,
    "connection_reset": 0.2,
    "slow_report": 1.0,
    "report_fatal": 0.4,
    "report_cancelled": 0.4,
    "corrupt_document": 0.5,
    "expired_document_url": 0.5,
    "lwa_outage": 0.5,
    "optiply_throttle": 0.2,
    "optiply_server_error": 0.2,
    "optiply_lost_answer": 0.2,
    "optiply_slow_answer": 0.2,
}
# Kinds that may fail a run (loudly); the others must be absorbed by retries within the run.
RUN_FAILING_KINDS = {
    "report_fatal": "ended FATAL",
    "report_cancelled": "was CANCELLED by Amazon",
}
MAX_CYCLES = 6


def test_every_fault_kind_has_a_rate_here():
    assert set(FAULT_RATES) == set(FAULT_KINDS)


@pytest.mark.slow  # up to six cycles each, with the fault's retries and back-off
@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_sync_survives_a_single_fault_kind(harness, kind):
    access_token_client.cache.clear()  # so LWA is asked (and lwa_outage can strike) in this test
    harness.sandbox.set_faults(replace(FaultRates(), **{kind: FAULT_RATES[kind]}))
    errors = []
    for _ in range(MAX_CYCLES):
        result = sync_de(harness)
        assert_no_wrong_data(harness)
        # A CANCELLED orders report in a successful run means "asked again next cycle", not all delivered.
        if result.success and latest_metadata(harness, "orders_report")["report_status"] == "DONE":
            break
        if not result.success:
            errors.append(result.error)
    else:
        pytest.fail(f"no successful cycle in {MAX_CYCLES} with {kind}: {errors}")

    assert harness.sandbox.faults.injected[kind] > 0, f"{kind} never struck: the test proves nothing"
    if kind in RUN_FAILING_KINDS:
        for error in errors:
            assert RUN_FAILING_KINDS[kind] in error, error
    else:
        assert errors == [], f"{kind} should be absorbed by retries: {errors}"
    assert_matches_ground_truth(harness)
