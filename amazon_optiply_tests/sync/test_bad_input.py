"""Bad input in Amazon's listings report, end to end: the sandbox serves a tampered document to the real client.

Bad rows are quarantined (listed with their reason in enriched_catalog's `listings_deliverable` check) and never
reach Optiply; good rows are delivered with the generator's values. Too many bad rows, an empty report or a
missing required column stop product delivery, and Optiply keeps its last values.
"""

from datetime import timedelta

import dagster as dg
import pandas as pd
import pytest

from amazon_optiply.marketplaces import MARKETPLACES, python_codec
from amazon_optiply.sandbox.report_documents import LISTINGS_ALL
from amazon_optiply.sync import sync_all
from amazon_optiply.transforms import catalog
from amazon_optiply_tests.sync.ground_truth import (
    assert_orders_match_ground_truth,
    assert_products_match_ground_truth,
    optiply_products,
)
from amazon_optiply_tests.sync.harness import MAIN

CHECK = ("enriched_catalog", "listings_deliverable")


# ---- tampering with the listings document -------------------------------------------------------------


def split_document(text: str) -> tuple[list[str], list[list[str]]]:
    lines = text.split("\r\n")
    if lines[-1] == "":
        lines.pop()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


def join_document(header: list[str], rows: list[list[str]]) -> str:
    return "\r\n".join("\t".join(fields) for fields in [header, *rows]) + "\r\n"


def tamper_listings(harness, country: str, skus: set[str], edit) -> None:
    """Have the sandbox pass the rows of `skus` in `country`'s listings document through edit(header, row).

    Applied after any tampering already set up, so several marketplaces can be tampered with.
    """
    earlier = harness.sandbox.amazon.tamper_documents.get(LISTINGS_ALL)

    def hook(text: str, mp: str) -> str:
        if earlier is not None:
            text = earlier(text, mp)
        if mp != country:
            return text
        header, rows = split_document(text)
        sku_at = header.index("seller-sku")
        found = {row[sku_at] for row in rows} & skus
        assert found == skus, "the test picked SKUs the document does not hold"
        for row in rows:
            if row[sku_at] in skus:
                edit(header, row)
        return join_document(header, rows)

    harness.sandbox.amazon.tamper_documents[LISTINGS_ALL] = hook


def set_field(column: str, value: str):
    def edit(header: list[str], row: list[str]) -> None:
        row[header.index(column)] = value

    return edit


def active_skus(harness, country: str, n: int, skip: int = 0) -> set[str]:
    listings = harness.sandbox.world.listings[country]
    skus = sorted(listings.loc[listings["status"] == "Active", "sku"])[skip : skip + n]
    assert len(skus) == n
    return set(skus)


def remote_ids(skus: set[str], country: str) -> set[str]:
    if country == MAIN:
        return set(skus)
    return {f"{sku}_{MARKETPLACES[country].marketplace_id}" for sku in skus}


def without(expected: pd.DataFrame, ids: set[str]) -> pd.DataFrame:
    assert ids <= set(expected["remoteId"]), "the picked SKUs are not all expected products"
    return expected[~expected["remoteId"].isin(ids)].reset_index(drop=True)


# ---- reading what the runs said -------------------------------------------------------------------------


def quarantine_line(metadata: dict, table: str, key: str) -> str:
    """The one row of the check's markdown table `table` that names `key` (a SKU or an ASIN)."""
    lines = [line for line in metadata[table].splitlines() if key in line]
    assert len(lines) == 1, (key, metadata[table])
    return lines[0]


def assert_quarantined_with_warning(harness, country: str, keys: dict[str, str], table: str = "set_aside"):
    """Each key's row is listed with its reason; the check failed as a WARN (delivery went on)."""
    metadata = harness.check_metadata(country, *CHECK)
    for key, reason in keys.items():
        assert reason in quarantine_line(metadata, table, key)
    assert metadata["passed"] is False
    assert harness.check_evaluation(country, *CHECK).severity == dg.AssetCheckSeverity.WARN
    assert 0 < metadata["bad_row_share"] <= metadata["max_bad_row_share"] == 0.05
    return metadata


def materialized_in_latest_run(harness, marketplace: str) -> set[str]:
    run = harness.instance.get_runs(filters=dg.RunsFilter(tags={"marketplace": marketplace}), limit=1)[0]
    return {
        record.dagster_event.event_specific_data.materialization.asset_key.to_user_string()
        for record in harness.instance.all_logs(run.run_id)
        if record.dagster_event and record.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
    }


def sync_allowing_failures(harness) -> dict:
    return {r.marketplace: r for r in sync_all(harness.instance)}


def held_by_remote_id(harness) -> pd.DataFrame:
    return optiply_products(harness).set_index("remoteId")


# ---- one bad row kind at a time, under the threshold ------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("price", "12,99", "unparsable price '12,99'"),
        ("price", "", "unparsable price ''"),
        ("price", "N/A", "unparsable price 'N/A'"),
        ("quantity", "-3", "unparsable or negative quantity '-3'"),
        ("quantity", "N/A", "unparsable or negative quantity 'N/A'"),
        ("asin1", "", "missing asin1"),
    ],
)
def test_a_row_with_a_bad_value_is_quarantined_and_the_others_delivered(harness, column, value, reason):
    skus = active_skus(harness, "DE", 3)
    tamper_listings(harness, "DE", skus, set_field(column, value))
    harness.sync()

    assert_products_match_ground_truth(harness, expected=without(harness.expected_products(), skus))
    metadata = assert_quarantined_with_warning(harness, "DE", dict.fromkeys(skus, reason))
    assert metadata["rows_set_aside"] == 3
    assert harness.check_metadata("US", *CHECK)["passed"] is True  # the untouched marketplace


def test_a_row_without_seller_sku_is_quarantined_under_its_asin(harness):
    skus = active_skus(harness, "DE", 2)
    listings = harness.sandbox.world.listings["DE"].set_index("sku")
    asins = {listings.loc[sku, "asin"] for sku in skus}
    assert len(asins) == 2
    tamper_listings(harness, "DE", skus, set_field("seller-sku", ""))
    harness.sync()

    assert_products_match_ground_truth(harness, expected=without(harness.expected_products(), skus))
    assert_quarantined_with_warning(harness, "DE", dict.fromkeys(asins, "missing seller-sku"))


@pytest.mark.parametrize("change", ["a tab in the name", "the last field cut off"])
def test_a_row_with_the_wrong_number_of_fields_is_quarantined(harness, change):
    skus = active_skus(harness, "DE", 2)

    def edit(header: list[str], row: list[str]) -> None:
        if change == "a tab in the name":
            row[header.index("item-name")] = "Messer\tScharf"
        else:
            row.pop()

    tamper_listings(harness, "DE", skus, edit)
    harness.sync()

    assert_products_match_ground_truth(harness, expected=without(harness.expected_products(), skus))
    expected_reason = "found 30" if change == "a tab in the name" else "found 28"
    expected_reason = f"expected 29 fields, {expected_reason}"
    metadata = assert_quarantined_with_warning(
        harness, "DE", dict.fromkeys(skus, expected_reason), table="malformed"
    )
    assert metadata["malformed_rows"] == 2
    assert metadata["rows_set_aside"] == 0


def test_a_name_over_255_characters_is_cut_and_counted(harness):
    (sku,) = active_skus(harness, "DE", 1)
    long_name = "Émile Henry " + "Backform " * 40
    assert len(long_name) > 300
    served: list[str] = []

    def hook(text: str, mp: str) -> str:
        if mp == "DE":
            header, rows = split_document(text)
            for row in rows:
                if row[header.index("seller-sku")] == sku:
                    row[header.index("item-name")] = long_name
            text = join_document(header, rows)
            served.append(text)
        return text

    harness.sandbox.amazon.tamper_documents[LISTINGS_ALL] = hook
    harness.sync()

    expected = harness.expected_products()
    cut = long_name.strip()[:255]
    expected.loc[expected["remoteId"] == sku, "name"] = cut
    assert_products_match_ground_truth(harness, expected=expected)
    assert held_by_remote_id(harness).loc[sku, "name"] == cut
    # Every name over 255 in the served document is counted (ours and any the generator made).
    header, rows = split_document(served[-1])
    long_names = sum(len(row[header.index("item-name")].strip()) > 255 for row in rows)
    assert long_names >= 1
    assert harness.check_metadata("DE", *CHECK)["names_truncated"] == long_names


@pytest.mark.parametrize(
    ("country", "column", "bad_byte"),
    [
        ("DE", "item-name", b"\x81"),  # not a character in Cp1252
        ("DE", "seller-sku", b"\x9d"),
        ("US", "item-name", b"\xff"),  # never valid in UTF-8
    ],
)
def test_a_row_with_undecodable_bytes_is_quarantined(harness, country, column, bad_byte):
    skus = active_skus(harness, country, 2)
    marker = "@@UNDECODABLE@@"
    codec = python_codec(MARKETPLACES[country].charset)

    def hook(text: str, mp: str) -> str | bytes:
        if mp != country:
            return text
        header, rows = split_document(text)
        for row in rows:
            if row[header.index("seller-sku")] in skus:
                row[header.index(column)] += marker
        # Encoded as the sandbox does, then the marker becomes a byte the charset cannot decode.
        return join_document(header, rows).encode(codec, errors="replace").replace(marker.encode(), bad_byte)

    harness.sandbox.amazon.tamper_documents[LISTINGS_ALL] = hook
    harness.sync()

    expected = without(harness.expected_products(), remote_ids(skus, country))
    assert_products_match_ground_truth(harness, expected=expected)
    held = optiply_products(harness)
    assert not held["name"].str.contains("\ufffd").any()
    assert not held["skuCode"].str.contains("\ufffd").any()
    listings = harness.sandbox.world.listings[country].set_index("sku")
    # A garbled SKU is not the SKU any more: its row is found by its ASIN.
    keys = skus if column == "item-name" else {listings.loc[sku, "asin"] for sku in skus}
    assert_quarantined_with_warning(harness, country, dict.fromkeys(keys, f"undecodable bytes in {column}"))


# ---- the report's shape ------------------------------------------------------------------------------------


def test_extra_and_reordered_columns_are_accepted(harness):
    def hook(text: str, mp: str) -> str:
        header, rows = split_document(text)
        order = list(reversed(range(len(header))))
        header = ["a-column-amazon-added", *(header[i] for i in order)]
        rows = [["whatever", *(row[i] for i in order)] for row in rows]
        return join_document(header, rows)

    harness.sandbox.amazon.tamper_documents[LISTINGS_ALL] = hook
    harness.sync()

    assert_products_match_ground_truth(harness)
    for country in ("DE", "US"):
        metadata = harness.check_metadata(country, *CHECK)
        assert metadata["passed"] is True
        assert metadata["rows_set_aside"] == metadata["malformed_rows"] == 0
        assert "optiply_products" in materialized_in_latest_run(harness, country)


def _second_cycle_with(harness, hook, country: str = "DE"):
    """Sync cleanly, advance, sync again with `hook` on the listings.

    Returns the sync results and what Optiply should then hold if `country` is stopped: its products as
    delivered in the first cycle, the other marketplaces' as they are now. The ground truth must have
    changed in `country`, or "kept its last values" would prove nothing.
    """
    harness.sync()
    ours = remote_ids(set(harness.sandbox.world.listings[country]["sku"]), country)
    before = harness.expected_products()
    harness.sandbox.advance(timedelta(minutes=30))
    after = harness.expected_products()
    kept = before[before["remoteId"].isin(ours)]
    moved = after[after["remoteId"].isin(ours)].merge(kept, how="left", indicator=True)
    assert (moved["_merge"] == "left_only").any(), (
        "nothing changed in 30 minutes; the test would prove nothing"
    )
    harness.sandbox.amazon.tamper_documents[LISTINGS_ALL] = hook
    results = sync_allowing_failures(harness)
    expected = pd.concat([kept, after[~after["remoteId"].isin(ours)]], ignore_index=True)
    return results, expected


def test_a_missing_required_column_fails_the_run_naming_the_column_and_the_report(harness):
    def hook(text: str, mp: str) -> str:
        if mp != "DE":
            return text
        header, rows = split_document(text)
        at = header.index("price")
        return join_document(header[:at] + header[at + 1 :], [row[:at] + row[at + 1 :] for row in rows])

    results, expected = _second_cycle_with(harness, hook)

    assert not results["DE"].success
    assert "GET_MERCHANT_LISTINGS_ALL_DATA" in results["DE"].error
    assert "'price'" in results["DE"].error
    assert results["US"].success
    # DE keeps the last values delivered; US moves on.
    assert_products_match_ground_truth(harness, expected=expected)


def test_an_empty_listings_report_stops_delivery_and_optiply_keeps_its_products(harness):
    """A DONE report with only the header is not "no listings": products are neither zeroed nor dropped."""

    def hook(text: str, mp: str) -> str:
        return text.split("\r\n", 1)[0] + "\r\n" if mp == "DE" else text

    results, expected = _second_cycle_with(harness, hook)

    assert not results["DE"].success
    assert "blocking asset check" in results["DE"].error
    assert results["US"].success
    assert_products_match_ground_truth(harness, expected=expected)
    metadata = harness.check_metadata("DE", *CHECK)
    assert metadata["passed"] is False
    assert metadata["listing_rows"] == 0
    assert "no rows" in metadata["verdict"]
    assert harness.check_evaluation("DE", *CHECK).severity == dg.AssetCheckSeverity.ERROR


# ---- the threshold ---------------------------------------------------------------------------------------


def _break_a_fifth_of_the_rows(harness, country: str = "DE") -> set[str]:
    listings = harness.sandbox.world.listings[country]
    skus = set(sorted(listings["sku"])[: len(listings) // 5])
    tamper_listings(harness, country, skus, set_field("price", "N/A"))
    return skus


def test_too_many_bad_rows_block_product_delivery(harness):
    harness.sync()
    before = harness.expected_products()
    harness.sandbox.advance(timedelta(minutes=30))
    after = harness.expected_products()
    assert not before.equals(after), "nothing changed in 30 minutes; the test would prove nothing"
    harness.sandbox.optiply.reset_request_log()
    # Both marketplaces get too many bad rows, so no product in the whole run may be written.
    _break_a_fifth_of_the_rows(harness, "DE")
    _break_a_fifth_of_the_rows(harness, "US")

    results = sync_allowing_failures(harness)

    for country in ("DE", "US"):
        assert not results[country].success
        assert "enriched_catalog" in results[country].error
        metadata = harness.check_metadata(country, *CHECK)
        assert metadata["bad_row_share"] > metadata["max_bad_row_share"] == 0.05
        assert harness.check_evaluation(country, *CHECK).severity == dg.AssetCheckSeverity.ERROR
        assert "unparsable price 'N/A'" in metadata["set_aside"]
        assert "optiply_products" not in materialized_in_latest_run(harness, country)
    assert [w for w in harness.sandbox.optiply.writes() if "/products" in w["path"]] == []
    products = assert_products_match_ground_truth(harness, expected=before)
    # Orders do not wait on the listings: the new ones went out on the products Optiply holds.
    assert_orders_match_ground_truth(harness, products)


def test_max_bad_row_share_lets_a_consultant_accept_more_bad_rows(harness, monkeypatch):
    monkeypatch.setenv("MAX_BAD_ROW_SHARE", "0.5")
    skus = _break_a_fifth_of_the_rows(harness)
    harness.sync()

    expected = harness.expected_products()
    assert_products_match_ground_truth(harness, expected=without(expected, skus & set(expected["remoteId"])))
    metadata = harness.check_metadata("DE", *CHECK)
    assert 0.05 < metadata["bad_row_share"] <= metadata["max_bad_row_share"] == 0.5
    assert harness.check_evaluation("DE", *CHECK).severity == dg.AssetCheckSeverity.WARN


def test_a_row_going_bad_keeps_its_last_good_values_while_the_others_move_on(harness):
    harness.sync()
    before = harness.expected_products().set_index("remoteId")
    harness.sandbox.advance(timedelta(minutes=30))
    after = harness.expected_products().set_index("remoteId")
    de_skus = set(harness.sandbox.world.listings["DE"]["sku"]) & set(after.index) & set(before.index)
    changed = sorted(s for s in de_skus if not before.loc[s].fillna("").equals(after.loc[s].fillna("")))
    assert len(changed) >= 2, "too little changed in 30 minutes; the test would prove nothing"
    bad = set(changed[:1])
    tamper_listings(harness, "DE", bad, set_field("price", "12,99"))
    harness.sync()

    expected = after.copy()
    expected.loc[list(bad)] = before.loc[list(bad)]
    assert_products_match_ground_truth(harness, expected=expected.reset_index())
    assert_quarantined_with_warning(harness, "DE", dict.fromkeys(bad, "unparsable price '12,99'"))


# ---- the pure parts ------------------------------------------------------------------------------------


def test_bad_row_share_counts_malformed_rows_and_calls_an_empty_report_all_bad():
    assert catalog.bad_row_share(rows_set_aside=2, malformed_rows=1, parsed_rows=99) == 0.03
    assert catalog.bad_row_share(0, 0, 10) == 0
    assert catalog.bad_row_share(0, 0, 0) == 1.0


def test_max_bad_row_share_outside_zero_to_one_is_refused():
    from amazon_optiply.resources import IntegrationSettings

    with pytest.raises(ValueError, match="MAX_BAD_ROW_SHARE must be between 0 and 1"):
        IntegrationSettings(marketplaces="DE", max_bad_row_share=5)
