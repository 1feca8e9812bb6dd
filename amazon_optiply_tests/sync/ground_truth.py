"""What Optiply should hold, from the sandbox generator's ground truth, and the assertions comparing it."""

import pandas as pd

PRODUCT_FIELDS = ["remoteId", "name", "skuCode", "eanCode", "price", "stockLevel"]


def optiply_products(harness) -> pd.DataFrame:
    records = harness.sandbox.optiply.snapshot()["products"]
    frame = pd.DataFrame([{"id": i, **r} for i, r in records.items()])
    return frame


def assert_products_match_ground_truth(
    harness, expected: pd.DataFrame | None = None, held: pd.DataFrame | None = None, at_least: int = 200
) -> pd.DataFrame:
    """Optiply holds exactly the expected products (one per remoteId), with the expected attributes.

    `at_least`: the fewest products the seller must have for the comparison to prove anything.
    """
    held = optiply_products(harness) if held is None else held
    assert held["remoteId"].is_unique, "a product was created twice"
    expected = harness.expected_products() if expected is None else expected
    assert len(expected) > at_least  # active listings only
    merged = expected.merge(
        held, on="remoteId", how="outer", suffixes=("_expected", "_optiply"), indicator=True
    )
    assert (merged["_merge"] == "both").all(), merged.loc[merged["_merge"] != "both", ["remoteId", "_merge"]]
    for field in ["name", "skuCode", "stockLevel"]:
        diff = merged[merged[f"{field}_expected"] != merged[f"{field}_optiply"]]
        assert diff.empty, (field, diff[["remoteId", f"{field}_expected", f"{field}_optiply"]].head())
    ean_expected = [None if pd.isna(v) else v for v in merged["eanCode_expected"]]
    ean_held = [None if pd.isna(v) else v for v in merged["eanCode_optiply"]]
    assert ean_expected == ean_held
    assert any(ean_held) and not all(ean_held)  # the seller has products with and without an EAN
    assert ((merged["price_expected"] - merged["price_optiply"].astype(float)).abs() < 0.005).all()
    return held


def assert_orders_match_ground_truth(
    harness,
    products: pd.DataFrame,
    expected_orders: dict | None = None,
    held: dict | None = None,
    at_least: int = 100,
) -> None:
    """Optiply holds every eligible order once, with the expected lines, and nothing else.

    `held`: the sell orders to compare (id -> record), when not all of Optiply's; `at_least`: how many
    orders must be expected for the comparison to prove anything.
    """
    sku_by_product_id = dict(zip(products["id"], products["skuCode"], strict=True))
    held = harness.sandbox.optiply.snapshot()["sellOrders"] if held is None else held
    by_remote_id: dict[str, dict] = {}
    for record in held.values():
        assert record["remoteId"] not in by_remote_id, f"sell order {record['remoteId']} posted twice"
        by_remote_id[record["remoteId"]] = record
    expected_total = 0
    expected_orders = harness.expected_orders() if expected_orders is None else expected_orders
    for _code, orders in expected_orders.items():
        expected_total += len(orders)
        for order in orders:
            record = by_remote_id.get(order.order_id)
            assert record is not None, f"order {order.order_id} missing in Optiply"
            assert record["placed"] == order.purchase_date.strftime("%Y-%m-%dT%H:%M:%SZ")
            assert abs(float(record["totalValue"]) - order.total_value) < 0.005
            lines = sorted(
                (sku_by_product_id[ln["productId"]], ln["quantity"], round(float(ln["subtotalValue"]), 2))
                for ln in record["orderLines"]
            )
            assert lines == sorted((ln["sku"], ln["quantity"], ln["item_price"]) for ln in order.lines)
    assert len(by_remote_id) == expected_total, "Optiply holds sell orders that should not be there"
    assert expected_total > at_least
