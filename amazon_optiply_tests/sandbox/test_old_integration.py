"""The sandbox can start from an Optiply account the old Amazon integration fed (products by ASIN, orders)."""

from datetime import timedelta

from amazon_optiply.marketplaces import MARKETPLACES
from amazon_optiply.sandbox.seller import CANCELLED, SellerConfig
from amazon_optiply.sandbox.server import OPTIPLY_COUPLING_ID, Sandbox, SandboxConfig


def test_sandbox_can_start_from_the_account_the_old_integration_fed():
    config = SandboxConfig(
        seller=SellerConfig(marketplaces=("DE", "FR"), skus=60, orders_per_day=48, seed=3),
        frozen_clock=True,
        old_integration=True,
    )
    sandbox = Sandbox(config)  # the servers are not needed to look at the seeded account
    snapshot = sandbox.optiply.snapshot()

    expected = {
        (code, asin if code == "DE" else f"{asin}_{MARKETPLACES[code].marketplace_id}")
        for code in ("DE", "FR")
        for asin in sandbox.world.listings[code].query("status == 'Active'")["asin"]
    }
    assert set(sandbox.old_integration.products) == expected
    for (_, remote_id), product_id in sandbox.old_integration.products.items():
        assert snapshot["products"][product_id]["remoteIdMap"] == {str(OPTIPLY_COUPLING_ID): remote_id}
    now = sandbox.clock.now()
    placed = [
        o
        for code in ("DE", "FR")
        for o in sandbox.world.orders_placed_between(code, now - timedelta(days=7), now)
        if o.status_at(now) not in (None, CANCELLED)
    ]
    assert sorted(r["remoteId"] for r in snapshot["sellOrders"].values()) == sorted(
        o.order_id for o in placed
    )
    assert len(placed) > 100
