"""A Far East seller end to end: Amazon JP's listings report in Japanese, windows-31j and whole yen, beside AU's.

JP is the main marketplace. Optiply's final state is compared with the sandbox seller's ground truth.
"""

from datetime import timedelta

import pandas as pd
import pytest

from amazon_optiply.sandbox.report_documents import LISTINGS_ALL
from amazon_optiply.sandbox.seller import CP932_ONLY, SellerConfig
from amazon_optiply.sync import sync_all
from amazon_optiply_tests.sync.ground_truth import (
    assert_orders_match_ground_truth,
    assert_products_match_ground_truth,
)
from amazon_optiply_tests.sync.harness import running_harness

FAR_EAST = ("JP", "AU")
CHECK = ("enriched_catalog", "listings_deliverable")


@pytest.fixture
def far_east(fast_tmp_path, monkeypatch):
    seller = SellerConfig(marketplaces=FAR_EAST, skus=150, orders_per_day=40, seed=13)
    with running_harness(fast_tmp_path, monkeypatch, seller) as harness:
        yield harness


def test_jp_listings_in_japanese_reach_optiply_with_exact_names_whole_yen_stock_and_orders(far_east):
    summaries = far_east.sync()

    products = assert_products_match_ground_truth(far_east)
    assert_orders_match_ground_truth(far_east, products)
    jp = far_east.sandbox.world.expected_products("JP")
    assert summaries["JP"]["products_created"] == len(jp)
    assert len(far_east.expected_orders()["JP"]) > 50

    listings = far_east.materialization_metadata("JP", "listings_report")
    assert (listings["header_set"], listings["charset"]) == ("ja_JP", "windows-31j")
    assert far_east.materialization_metadata("AU", "listings_report")["header_set"] == "en"
    deliverable = far_east.check_metadata("JP", *CHECK)
    assert deliverable["passed"] is True and deliverable["rows_set_aside"] == 0
    assert deliverable["names_truncated"] > 0  # Japanese titles over 255 characters are cut, not set aside

    held = products.set_index("remoteId").loc[jp["remoteId"]]
    for char in CP932_ONLY:  # exact names are compared above; these prove the generator made them
        assert held["name"].str.contains(char, regex=False).any(), char
    assert (held["price"].astype(float) % 1 == 0).all(), "JP prices are whole yen"


def test_a_jp_header_the_table_does_not_know_stops_jp_naming_the_columns_while_au_moves_on(far_east):
    far_east.sync()
    before = far_east.expected_products()
    far_east.sandbox.advance(timedelta(minutes=30))
    after = far_east.expected_products()
    jp_ids = set(far_east.sandbox.world.listings["JP"]["sku"])
    assert not before[before["remoteId"].isin(jp_ids)].equals(after[after["remoteId"].isin(jp_ids)]), (
        "nothing changed in JP in 30 minutes; 'Optiply keeps its values' would prove nothing"
    )
    # As if Amazon renamed three columns: names in windows-31j that no known header set holds.
    renamed = {"商品名": "商品タイトル", "出品者SKU": "出品者 SKU", "価格": "販売価格"}

    def with_renamed_columns(text: str, mp: str) -> str:
        if mp != "JP":
            return text
        header, rows = text.split("\r\n", 1)
        return "\t".join(renamed.get(name, name) for name in header.split("\t")) + "\r\n" + rows

    far_east.sandbox.amazon.tamper_documents[LISTINGS_ALL] = with_renamed_columns
    results = {r.marketplace: r for r in sync_all(far_east.instance)}

    assert not results["JP"].success
    assert (
        "GET_MERCHANT_LISTINGS_ALL_DATA: required column(s) ['item-name', 'seller-sku', 'price'] missing"
        in results["JP"].error
    )
    assert (
        "columns no known header set places: ['商品タイトル', '出品者 SKU', '販売価格']"
        in results["JP"].error
    )
    assert results["AU"].success
    # JP keeps the values of the first cycle; AU's are the current ones.
    expected = pd.concat(
        [before[before["remoteId"].isin(jp_ids)], after[~after["remoteId"].isin(jp_ids)]], ignore_index=True
    )
    assert_products_match_ground_truth(far_east, expected=expected)
