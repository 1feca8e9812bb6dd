"""The orders cursor moves only past orders that were delivered or deliberately skipped."""

from datetime import UTC, datetime, timedelta

import pandas as pd

from amazon_optiply.state import SyncState
from amazon_optiply.transforms.optiply import OwnProducts, sell_order_lines

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _row(order_id: str, sku: str, status: str, updated: datetime) -> dict:
    return {
        "amazon-order-id": order_id,
        "purchase-date": (updated - timedelta(hours=1)).isoformat(),
        "last-updated-date": updated.isoformat(),
        "order-status": status,
        "sku": sku,
        "asin": "B000000001",
        "quantity": "2",
        "item-price": "19.98",
        "shipping-price": "4.95",
        "gift-wrap-price": "",
        "item-promotion-discount": "-2.00",
        "ship-promotion-discount": "",
    }


def test_order_with_unknown_sku_is_held_and_keeps_the_cursor_before_it(tmp_path):
    orders = pd.DataFrame(
        [
            _row("302-0000001-0000001", "KNOWN", "Shipped", T0 + timedelta(minutes=10)),
            _row("302-0000002-0000002", "NOT-IN-OPTIPLY", "Unshipped", T0 + timedelta(minutes=20)),
            _row("302-0000003-0000003", "KNOWN", "Cancelled", T0 + timedelta(minutes=30)),
        ]
    ).astype("string")
    lines = sell_order_lines(
        orders,
        OwnProducts(pd.Series({"KNOWN": 7}), "A1PA6795UKMFR9", True),
        pd.Timestamp(T0 - timedelta(days=1)),
        set(),
    )
    by_order = lines.set_index("remoteId")
    assert by_order.loc["302-0000001-0000001", "disposition"] == "deliver"
    assert by_order.loc["302-0000001-0000001", "totalValue"] == 22.93  # 19.98 + 4.95 - |-2.00|
    assert by_order.loc["302-0000002-0000002", "disposition"] == "unmatched"
    assert by_order.loc["302-0000003-0000003", "disposition"] == "cancelled"

    state = SyncState(f"sqlite:///{tmp_path / 'state.sqlite'}")
    state.note_orders_window("DE", T0 + timedelta(hours=1), T0 - timedelta(days=1))
    held_since = T0 + timedelta(minutes=20)
    assert state.commit_orders_cursor("DE", held_since) == held_since
    assert state.commit_orders_cursor("DE") == T0 + timedelta(hours=1)
