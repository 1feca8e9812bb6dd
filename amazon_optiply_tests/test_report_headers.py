"""Localized report headers: the parser renames a known header set to English and names what it cannot place."""

import pandas as pd
import pytest

from amazon_optiply import schemas
from amazon_optiply.transforms import catalog
from amazon_optiply.transforms.reports import (
    LISTINGS_REQUIRED,
    ReportFormatError,
    header_set,
    parse_flat_file,
)

LISTINGS = "GET_MERCHANT_LISTINGS_ALL_DATA"

# Amazon JP's listings header with the B2B columns, as (Japanese, English), written out independently of the
# platform's table.
JP_LISTINGS = [
    ("商品名", "item-name"),
    ("商品の説明", "item-description"),
    ("出品ID", "listing-id"),
    ("出品者SKU", "seller-sku"),
    ("価格", "price"),
    ("数量", "quantity"),
    ("出品日", "open-date"),
    ("image-url", "image-url"),
    ("商品IDタイプ", "product-id-type"),
    ("コンディション説明", "item-note"),
    ("コンディション", "item-condition"),
    ("ASIN 1", "asin1"),
    ("ASIN 2", "asin2"),
    ("国外へ配送可", "will-ship-internationally"),
    ("迅速な配送", "expedited-shipping"),
    ("商品ID", "product-id"),
    ("在庫数", "pending-quantity"),
    ("フルフィルメント・チャンネル", "fulfillment-channel"),
    ("法人価格", "Business Price"),
    ("数量割引のタイプ", "Quantity Price Type"),
    ("数量の下限1", "Quantity Lower Bound 1"),
    ("数量割引1", "Quantity Price 1"),
    ("数量の下限5", "Quantity Lower Bound 5"),
    ("数量割引5", "Quantity Price 5"),
    ("merchant-shipping-group", "merchant-shipping-group"),
    ("ポイント", "standard-price-point"),
    ("ステータス", "status"),
    ("累積購入割引価格3", "Progressive Price 3"),
    ("調達タイプ", "Sourcing Type"),
]


def document(header: list[str], rows: list[list[str]]) -> str:
    return "\r\n".join("\t".join(fields) for fields in [header, *rows]) + "\r\n"


def jp_row(**values: str) -> list[str]:
    row = dict.fromkeys((english for _, english in JP_LISTINGS), "")
    row.update({"fulfillment-channel": "DEFAULT", "status": "Active", "quantity": "3"}, **values)
    return [row[english] for _, english in JP_LISTINGS]


def test_jp_listings_header_with_b2b_columns_is_read_in_english():
    name = "㈱髙橋キッチン 﨑山 Ⅲ型 急須 ①②③ №5 ～ギフト包装～"
    text = document(
        [japanese for japanese, _ in JP_LISTINGS],
        [
            jp_row(**{"item-name": name, "seller-sku": "KW-000001", "price": "1980", "asin1": "B0JP000001"}),
            jp_row(
                **{"open-date": "2024/03/01 10:00:00 JST", "Business Price": "1800", "seller-sku": "KW-2"}
            ),
        ],
    )

    rows, malformed = parse_flat_file(text, LISTINGS, LISTINGS_REQUIRED)

    assert list(rows.columns) == [english for _, english in JP_LISTINGS]
    assert malformed.empty
    assert rows.loc[0, ["item-name", "seller-sku", "price", "asin1"]].tolist() == [
        name,
        "KW-000001",
        "1980",
        "B0JP000001",
    ]
    assert rows.loc[1, ["open-date", "Business Price"]].tolist() == ["2024/03/01 10:00:00 JST", "1800"]
    assert header_set(text, LISTINGS) == "ja_JP"


def test_german_listings_header_of_the_seeds_tap_is_read_in_english():
    german = ["Artikelbezeichnung", "Händler-SKU", "Preis", "Menge", "ASIN 1", "Versender", "Status", "Extra"]
    text = document(german, [["Pfanne", "KW-1", "12.99", "4", "B0DE000001", "DEFAULT", "Active", "x"]])

    rows, _ = parse_flat_file(text, LISTINGS, LISTINGS_REQUIRED)

    assert list(rows.columns) == [*LISTINGS_REQUIRED, "Extra"]
    assert rows.iloc[0].tolist() == ["Pfanne", "KW-1", "12.99", "4", "B0DE000001", "DEFAULT", "Active", "x"]
    assert header_set(text, LISTINGS) == "de_DE"


def test_english_header_is_kept_as_it_is():
    english = ["status", "seller-sku", "item-name", "price", "quantity", "asin1", "fulfillment-channel"]
    text = document(english, [["Active", "KW-1", "Mug", "4.50", "1", "B0US000001", "DEFAULT"]])
    rows, _ = parse_flat_file(text, LISTINGS, LISTINGS_REQUIRED)
    assert list(rows.columns) == english
    assert header_set(text, LISTINGS) == "en"


def test_header_in_an_unknown_language_fails_naming_the_columns_it_cannot_place():
    korean = [
        "상품명",
        "판매자 SKU",
        "가격",
        "quantity",
        "ASIN 1",
        "フルフィルメント・チャンネル",
        "ステータス",
    ]
    text = document(korean, [["머그", "KW-1", "9900", "1", "B0KR000001", "DEFAULT", "Active"]])

    with pytest.raises(ReportFormatError) as info:
        parse_flat_file(text, LISTINGS, LISTINGS_REQUIRED)

    message = str(info.value)
    assert message.startswith(f"{LISTINGS}: required column(s) ['item-name', 'seller-sku', 'price'] missing")
    assert "columns no known header set places: ['상품명', '판매자 SKU', '가격']" in message


def test_unknown_columns_beside_a_complete_jp_header_are_kept():
    header = [japanese for japanese, _ in JP_LISTINGS] + ["新しい列"]
    text = document(header, [[*jp_row(**{"seller-sku": "KW-1", "price": "500"}), "値"]])

    rows, _ = parse_flat_file(text, LISTINGS, LISTINGS_REQUIRED)

    assert rows.columns[-1] == "新しい列" and rows.iloc[0, -1] == "値"
    assert rows.loc[0, ["seller-sku", "price"]].tolist() == ["KW-1", "500"]


def test_a_required_column_in_two_languages_is_refused():
    header = [
        "商品名",
        "出品者SKU",
        "seller-sku",
        "価格",
        "数量",
        "ASIN 1",
        "フルフィルメント・チャンネル",
        "ステータス",
    ]
    text = document(header, [["急須", "KW-1", "KW-1", "1980", "1", "B0JP000001", "DEFAULT", "Active"]])

    with pytest.raises(ReportFormatError, match=r"\['seller-sku'\] named twice \(header set ja_JP\)"):
        parse_flat_file(text, LISTINGS, LISTINGS_REQUIRED)


def enriched_jp_catalog(prices: dict[str, str]) -> pd.DataFrame:
    """enriched_catalog of a JP listings document holding these SKUs and prices (merchant listings, no FBA)."""
    text = document(
        [japanese for japanese, _ in JP_LISTINGS],
        [
            jp_row(
                **{"item-name": f"急須 {sku}", "seller-sku": sku, "price": price, "asin1": f"B0JP00000{i}"}
            )
            for i, (sku, price) in enumerate(prices.items())
        ],
    )
    listings, _ = parse_flat_file(text, LISTINGS, LISTINGS_REQUIRED)
    no_fba = pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in catalog.FBA_COLUMNS.items()})
    stock = catalog.warehouse_stock(listings, no_fba)
    identifiers = pd.DataFrame({"asin": pd.Series(dtype="string"), "ean_codes": pd.Series(dtype="string")})
    return catalog.enriched_catalog(listings, identifiers, stock, "JP")


def test_a_report_of_whole_yen_prices_only_is_a_valid_enriched_catalog():
    rows = enriched_jp_catalog({"KW-1": "1980", "KW-2": "500", "KW-3": "0"})

    schemas.EnrichedCatalog.validate(rows)  # prices are floats even when none has a decimal part
    assert rows["price"].tolist() == [1980.0, 500.0, 0.0]
    assert rows["problem"].isna().all()


def test_a_decimal_comma_is_still_set_aside_beside_whole_yen():
    rows = enriched_jp_catalog({"KW-1": "1980", "KW-2": "12,99", "KW-3": "1980.50"}).set_index("sku")

    assert rows.loc[["KW-1", "KW-3"], "price"].tolist() == [1980.0, 1980.5]
    assert rows.loc[["KW-1", "KW-3"], "problem"].isna().all()
    assert rows.loc["KW-2", "problem"] == "unparsable price '12,99'"


def test_a_document_encoded_for_the_reader_in_small_pieces_parses_whole(monkeypatch):
    """The text reaches pyarrow as UTF-8 a piece at a time; pieces cut through rows and multibyte characters."""
    from amazon_optiply.transforms import reports

    names = ["Kaffeebecher €5", "急須 茶器", "Tasse 😀 groß", "plain"]
    header = "item-name\tseller-sku\tprice\tquantity\tasin1\tfulfillment-channel\tstatus"
    rows = [
        f"{name}\tKW-{i}\t{i}.99\t{i}\tB0000000{i:02d}\tDEFAULT\tActive" for i, name in enumerate(names * 50)
    ]
    rows.insert(7, "a row\twith too few fields")
    text = "\n".join([header, *rows]) + "\n"
    whole, whole_malformed = parse_flat_file(text, LISTINGS, LISTINGS_REQUIRED)
    monkeypatch.setattr(reports, "_UTF8_PIECE", 7)
    pieces, pieces_malformed = parse_flat_file(text, LISTINGS, LISTINGS_REQUIRED)
    pd.testing.assert_frame_equal(pieces, whole)
    assert pieces["item-name"].tolist() == names * 50
    assert (
        pieces_malformed["text"].tolist()
        == whole_malformed["text"].tolist()
        == ["a row\twith too few fields"]
    )
    assert pieces_malformed["line"].tolist() == [9]  # the header is line 1


def test_malformed_rows_are_set_aside_with_their_lines_in_order():
    """pyarrow's parallel reader does not number bad rows: their lines are found, repeats and CRLF included."""
    header = "item-name\tseller-sku\tprice\tquantity\tasin1\tfulfillment-channel\tstatus"
    rows = [f"name {i}\tKW-{i}\t1.00\t1\tB00000{i:04d}\tDEFAULT\tActive" for i in range(3000)]
    for at in (2500, 1000, 10, 11):
        rows.insert(at, "cut\trow")
    rows.insert(2000, "x" * 800)
    text = "\r\n".join([header, *rows]) + "\r\n"
    frame, malformed = parse_flat_file(text, LISTINGS, LISTINGS_REQUIRED)
    assert len(frame) == 3000
    expected = [i + 2 for i, row in enumerate(rows) if row == "cut\trow" or row.startswith("xxx")]
    assert malformed["line"].tolist() == expected
    assert malformed["text"].str.len().max() == 500  # a long row's text is cut for the UI


def test_prices_and_quantities_spelled_inf_or_nan_are_flagged_not_a_crash():
    """One Arrow cast reads a column of numbers; the non-finite spellings it also takes go to pandas' rules."""
    prices = catalog.parse_amount(pd.Series(["12.99", "inf", "NaN", "1980"], dtype="string"))
    assert prices.tolist()[0] == 12.99 and prices.tolist()[1] == float("inf") and prices.tolist()[3] == 1980.0
    assert pd.isna(prices.tolist()[2])
    quantities = catalog.parse_quantity(pd.Series(["5", "NaN", "inf", "Infinity", " 7 ", ""], dtype="string"))
    assert [None if pd.isna(q) else q for q in quantities.tolist()] == [5.0, None, None, None, 7.0, 0.0]
