"""Stock that counts what a purchaser counts: FBA inbound units beside the stock and in it only when set, AWD units
in the US products' stock as configured, and a failed AWD read that never lowers stock."""

from datetime import timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from amazon_optiply.defs.seller.amazon.assets import fba_inventory, listings_report
from amazon_optiply.defs.seller.streams.reports import afn_inventory_by_country
from amazon_optiply.defs.seller.warehouse.assets import warehouse_stock
from amazon_optiply.sandbox import seller_api_streams as truth
from amazon_optiply.sandbox.seller_api import seller_api_hooks
from amazon_optiply.state import SyncState
from amazon_optiply.transforms import catalog
from amazon_optiply.transforms.catalog import INBOUND_COLUMNS
from amazon_optiply_tests.streams.helpers import answered, materialize, metadata

STOCK = [listings_report, fba_inventory, afn_inventory_by_country, warehouse_stock]


def assert_stock_is(frame: pd.DataFrame, expected: pd.DataFrame) -> None:
    """stock_level per active listing equals the ground truth's stockLevel."""
    got = frame.set_index("sku")["stock_level"]
    want = expected.set_index("skuCode")["stockLevel"]
    pd.testing.assert_series_equal(
        got.loc[want.index].astype("int64"), want.astype("int64"), check_names=False, check_index_type=False
    )


def assert_inbound_is(h, frame: pd.DataFrame, marketplace: str) -> None:
    expected = truth.expected_inbound_units(h.sandbox.world, marketplace, h.sandbox.clock.now()).set_index(
        "sku"
    )
    got = frame.set_index("sku")[list(INBOUND_COLUMNS)]
    want = expected.reindex(got.index).fillna(0).astype("int64")
    pd.testing.assert_frame_equal(got, want, check_names=False, check_index_type=False)


def test_inbound_units_are_shown_beside_the_stock_and_counted_only_when_set(h, monkeypatch):
    world = h.sandbox.world
    first = materialize(h, STOCK, "DE")  # the world as of now: ground truth after Amazon has answered
    frame = first.output_for_node("warehouse_stock")
    without, including = world.expected_products("DE"), world.expected_products("DE", count_inbound=True)
    assert (without["stockLevel"] != including["stockLevel"]).any(), (
        "no inbound units: the test would prove nothing"
    )
    assert_stock_is(frame, without)
    assert_inbound_is(h, frame, "DE")
    assert "not counted" in metadata(first, "warehouse_stock")["inbound"]

    # Shipments move on and a new one is made: inbound units change, and Amazon's startDateTime does not see
    # it. The changed-only read still gives the right stock (on-hand units do move lastUpdatedTime).
    h.sandbox.advance(timedelta(hours=9))
    second = materialize(h, STOCK, "DE")
    assert metadata(second, "fba_inventory")["read"].startswith("changed since")
    assert "full read" in metadata(second, "fba_inventory")["inbound_units_as_of"]
    assert_stock_is(second.output_for_node("warehouse_stock"), world.expected_products("DE"))

    # Counted: every read is a full one, so the inbound units in the stock are today's.
    monkeypatch.setenv("AMAZON_COUNT_INBOUND", "true")
    third = materialize(h, STOCK, "DE")
    frame = third.output_for_node("warehouse_stock")
    assert metadata(third, "fba_inventory")["read"] == "full"
    assert_stock_is(frame, world.expected_products("DE", count_inbound=True))
    assert_inbound_is(h, frame, "DE")
    assert "counted in stock_level" in metadata(third, "warehouse_stock")["inbound"]


def test_awd_units_count_in_the_us_stock_as_configured_and_a_failed_read_adds_none(h, monkeypatch):
    world = h.sandbox.world
    counted = materialize(h, STOCK, "US")  # the world as of now: ground truth after Amazon has answered
    frame = counted.output_for_node("warehouse_stock")
    awd = {s.sku: s.available + s.reserved + s.replenishment for s in truth.streams_of(world).awd.values()}
    with_awd, without_awd = world.expected_products("US"), world.expected_products("US", count_awd=False)
    assert (with_awd["stockLevel"] > without_awd["stockLevel"]).any(), (
        "no AWD units: the test would prove nothing"
    )
    assert_stock_is(frame, with_awd)
    assert frame.set_index("sku")["awd_quantity"].to_dict() == {s: awd.get(s, 0) for s in frame["sku"]}
    assert metadata(counted, "warehouse_stock")["awd"].startswith("counted")
    reads = answered(h, "listInventory")
    assert reads >= 1

    materialize(h, STOCK, "DE")  # AWD stores for the US only: nothing asked elsewhere
    assert answered(h, "listInventory") == reads

    monkeypatch.setenv("AMAZON_COUNT_AWD", "false")
    off = materialize(h, STOCK, "US")
    assert_stock_is(off.output_for_node("warehouse_stock"), without_awd)
    assert answered(h, "listInventory") == reads
    monkeypatch.delenv("AMAZON_COUNT_AWD")

    # Amazon refuses the AWD read (no AWD role, say): the stock is as without AWD, never lower, and says why.
    seller_api_hooks(h.sandbox.amazon).refuse_awd = True
    failed = materialize(h, STOCK, "US")
    frame = failed.output_for_node("warehouse_stock")
    assert_stock_is(frame, without_awd)
    assert (frame["awd_quantity"] == 0).all()
    assert metadata(failed, "warehouse_stock")["awd"].startswith("read failed, not counted")


def test_a_state_database_from_before_inbound_units_gains_them_and_reads_fba_in_full_next(fast_tmp_path):
    url = f"sqlite:///{fast_tmp_path / 'old.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE fba_inventory (marketplace VARCHAR(8), seller_sku VARCHAR(255), fn_sku VARCHAR(64), "
                "condition VARCHAR(64), asin VARCHAR(20), total_quantity BIGINT NOT NULL, "
                "fulfillable_quantity BIGINT NOT NULL, PRIMARY KEY (marketplace, seller_sku, fn_sku, condition))"
            )
        )
        conn.execute(
            sa.text("INSERT INTO fba_inventory VALUES ('DE', 'KW-1', 'X001', 'NewItem', 'B0X', 7, 5)")
        )
        conn.execute(
            sa.text(
                "CREATE TABLE fba_reads (marketplace VARCHAR(8) PRIMARY KEY, read_until DATETIME NOT NULL, "
                "full_read_at DATETIME NOT NULL)"
            )
        )
        conn.execute(
            sa.text("INSERT INTO fba_reads VALUES ('DE', '2026-11-01 10:00:00', '2026-11-01 09:00:00')")
        )
    engine.dispose()

    state = SyncState(url)
    snapshot = state.fba_snapshot("DE")
    assert snapshot[list(INBOUND_COLUMNS)].iloc[0].tolist() == [0, 0, 0]
    assert snapshot["total_quantity"].iloc[0] == 7
    assert state.fba_reads("DE") == (None, None)  # the next read is a full one
    SyncState(url)  # a second open changes nothing
    assert len(state.fba_snapshot("DE")) == 1


def test_the_stock_rules_on_a_hand_made_inventory_and_on_an_empty_one():

    listings = pd.DataFrame(
        {
            "seller-sku": pd.Series(["a", "b"], dtype="string"),
            "quantity": pd.Series(["", "4"], dtype="string"),
        }
    )
    fba = pd.DataFrame(
        {
            "seller_sku": ["a", "a"],
            "fn_sku": ["X1", "X2"],
            "asin": ["B01", "B01"],
            "condition": ["NewItem", "UsedLikeNew"],
            "total_quantity": [10, 5],  # Amazon's total includes the inbound units
            "fulfillable_quantity": [4, 5],
            "inbound_working_quantity": [3, 0],
            "inbound_shipped_quantity": [2, 0],
            "inbound_receiving_quantity": [1, 0],
        }
    ).astype(catalog.FBA_COLUMNS)
    awd = pd.DataFrame({"sku": ["a", "c"], "awd_quantity": [7, 9]})

    def stock(counted: bool, awd_units) -> dict:
        frame = catalog.warehouse_stock(listings, fba if counted else catalog.fba_on_hand(fba))
        frame = catalog.with_awd_units(catalog.with_inbound_units(frame, fba), awd_units)
        return frame.set_index("sku")[["stock_level", "inbound_working_quantity", "awd_quantity"]].to_dict(
            "index"
        )

    assert stock(False, None) == {
        "a": {"stock_level": 9, "inbound_working_quantity": 3, "awd_quantity": 0},
        "b": {"stock_level": 4, "inbound_working_quantity": 0, "awd_quantity": 0},
    }
    assert stock(True, awd)["a"] == {"stock_level": 22, "inbound_working_quantity": 3, "awd_quantity": 7}

    empty = pd.DataFrame({n: pd.Series(dtype=d) for n, d in catalog.FBA_COLUMNS.items()})
    no_listings = listings.iloc[0:0]
    frame = catalog.warehouse_stock(no_listings, catalog.fba_on_hand(empty))
    frame = catalog.with_awd_units(catalog.with_inbound_units(frame, empty), awd)
    assert frame.empty and {"awd_quantity", *INBOUND_COLUMNS} <= set(frame.columns)


def test_stock_per_sku_follows_the_rule_on_listings_with_repeats_and_fba_rows_of_other_skus():
    """warehouse_stock against the rule written plainly (a listed SKU's highest parsable quantity, its FBA
    rows summed, FBA-only SKUs and rows without a SKU left out), on random inventories."""
    rng = np.random.default_rng(7)
    for _ in range(100):
        listed = rng.integers(0, 25, int(rng.integers(0, 30)))
        listings = pd.DataFrame(
            {
                "seller-sku": [f"KW-{i}" for i in listed],
                "quantity": rng.choice(["", "3", "0", "x", "-1", "2.5", "7", " 4 "], len(listed)),
            },
            dtype="string",
        )
        in_fba = rng.integers(0, 35, int(rng.integers(0, 30)))
        fba = pd.DataFrame(
            {
                "seller_sku": pd.array([None if i > 30 else f"KW-{i}" for i in in_fba], dtype="string"),
                "total_quantity": rng.integers(0, 4, len(in_fba)).astype("int64"),
            }
        )
        for source in ("fba", "listing"):
            for counts_pool in (True, False):
                got = catalog.warehouse_stock(listings, fba, source, counts_pool).set_index("sku")
                for sku, rows in listings.groupby("seller-sku"):
                    quantities = pd.to_numeric(rows["quantity"].str.strip().replace("", "0"), errors="coerce")
                    whole = quantities[(quantities >= 0) & (quantities == quantities.round())]
                    listing = whole.max() if len(whole) else None
                    units = int(fba.loc[fba["seller_sku"] == sku, "total_quantity"].sum()) * counts_pool
                    from_fba = source == "fba" and units > 0
                    level = units if from_fba else listing
                    row = got.loc[sku]
                    assert row["fba_quantity"] == units
                    assert (None if pd.isna(row["listing_quantity"]) else row["listing_quantity"]) == listing
                    assert (None if pd.isna(row["stock_level"]) else row["stock_level"]) == level
                    assert row["stock_source"] == ("fba" if from_fba else "listing")
                assert sorted(got.index) == sorted(set(listings["seller-sku"]))
