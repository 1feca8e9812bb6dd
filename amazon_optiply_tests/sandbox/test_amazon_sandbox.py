"""The Amazon sandbox, driven by python-amazon-sp-api itself: it must behave as SP-API does for that client.

Every test compares what the client receives with the sandbox seller's own data (`sandbox.world`), so a
sandbox that answered with the wrong rows, charset, status or error shape fails here rather than in a sync.
"""

from __future__ import annotations

import gzip
import math
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sp_api.api import Inventories, Reports, Sellers
from sp_api.api.catalog_items.catalog_items_2022_04_01 import CatalogItemsV20220401
from sp_api.auth import access_token_client
from sp_api.auth.exceptions import AuthorizationError
from sp_api.base.exceptions import (
    SellingApiBadRequestException,
    SellingApiForbiddenException,
    SellingApiNotFoundException,
    SellingApiRequestThrottledException,
)

from amazon_optiply.clients.amazon import (
    AmazonUnavailableError,
    ReportDocumentError,
    SpApiCaller,
    SpApiCredentials,
    build_api,
    download_report_document,
)
from amazon_optiply.marketplaces import MARKETPLACES, python_codec
from amazon_optiply.sandbox.amazon import AmazonSettings
from amazon_optiply.sandbox.faults import FaultRates
from amazon_optiply.sandbox.seller import SellerConfig
from amazon_optiply.sandbox.server import Sandbox, SandboxConfig

REPO_ROOT = Path(__file__).resolve().parents[2]

LISTINGS = "GET_MERCHANT_LISTINGS_ALL_DATA"
ORDERS_BY_LAST_UPDATE = "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL"
ORDERS_BY_ORDER_DATE = "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_ORDER_DATE_GENERAL"
FBA_MYI = "GET_FBA_MYI_UNSUPPRESSED_INVENTORY_DATA"
FINAL_STATUSES = ("DONE", "FATAL", "CANCELLED")

# Amazon's documented column headers, written out here independently of the sandbox's own constants.
EXPECTED_HEADERS = {
    LISTINGS: [
        "item-name",
        "item-description",
        "listing-id",
        "seller-sku",
        "price",
        "quantity",
        "open-date",
        "image-url",
        "item-is-marketplace",
        "product-id-type",
        "zshop-shipping-fee",
        "item-note",
        "item-condition",
        "zshop-category1",
        "zshop-browse-path",
        "zshop-storefront-feature",
        "asin1",
        "asin2",
        "asin3",
        "will-ship-internationally",
        "expedited-shipping",
        "zshop-boldface",
        "product-id",
        "bid-for-featured-placement",
        "add-delete",
        "pending-quantity",
        "fulfillment-channel",
        "merchant-shipping-group",
        "status",
    ],
    FBA_MYI: [
        "sku",
        "fnsku",
        "asin",
        "product-name",
        "condition",
        "your-price",
        "mfn-listing-exists",
        "mfn-fulfillable-quantity",
        "afn-listing-exists",
        "afn-warehouse-quantity",
        "afn-fulfillable-quantity",
        "afn-unsellable-quantity",
        "afn-reserved-quantity",
        "afn-total-quantity",
        "per-unit-volume",
        "afn-inbound-working-quantity",
        "afn-inbound-shipped-quantity",
        "afn-inbound-receiving-quantity",
        "afn-researching-quantity",
        "afn-reserved-future-supply",
        "afn-future-supply-buyable",
    ],
    ORDERS_BY_LAST_UPDATE: [
        "amazon-order-id",
        "merchant-order-id",
        "purchase-date",
        "last-updated-date",
        "order-status",
        "fulfillment-channel",
        "sales-channel",
        "order-channel",
        "url",
        "ship-service-level",
        "product-name",
        "sku",
        "asin",
        "item-status",
        "quantity",
        "currency",
        "item-price",
        "item-tax",
        "shipping-price",
        "shipping-tax",
        "gift-wrap-price",
        "gift-wrap-tax",
        "item-promotion-discount",
        "ship-promotion-discount",
        "ship-city",
        "ship-state",
        "ship-postal-code",
        "ship-country",
        "promotion-ids",
        "is-business-order",
        "purchase-order-number",
        "price-designation",
    ],
}
EXPECTED_HEADERS[ORDERS_BY_ORDER_DATE] = EXPECTED_HEADERS[ORDERS_BY_LAST_UPDATE]
EXPECTED_COLUMN_COUNTS = {LISTINGS: 29, FBA_MYI: 21, ORDERS_BY_LAST_UPDATE: 32, ORDERS_BY_ORDER_DATE: 32}
# Amazon JP's listings header: Japanese names where Amazon translates, the B2B columns after the fulfillment
# channel. The English meaning of the columns the tests read, as sp-api.md gives it.
JP_LISTINGS_HEADER = [
    "商品名",
    "商品の説明",
    "出品ID",
    "出品者SKU",
    "価格",
    "数量",
    "出品日",
    "image-url",
    "item-is-marketplace",
    "商品IDタイプ",
    "zshop-shipping-fee",
    "コンディション説明",
    "コンディション",
    "zshop-category1",
    "zshop-browse-path",
    "zshop-storefront-feature",
    "ASIN 1",
    "ASIN 2",
    "ASIN 3",
    "国外へ配送可",
    "迅速な配送",
    "zshop-boldface",
    "商品ID",
    "bid-for-featured-placement",
    "add-delete",
    "在庫数",
    "フルフィルメント・チャンネル",
    "法人価格",
    "数量割引のタイプ",
    "数量の下限1",
    "数量割引1",
    "数量の下限2",
    "数量割引2",
    "数量の下限3",
    "数量割引3",
    "数量の下限4",
    "数量割引4",
    "数量の下限5",
    "数量割引5",
    "merchant-shipping-group",
    "ステータス",
]
JP_LISTINGS_MEANING = {
    "商品名": "item-name",
    "出品ID": "listing-id",
    "出品者SKU": "seller-sku",
    "価格": "price",
    "数量": "quantity",
    "出品日": "open-date",
    "ASIN 1": "asin1",
    "商品ID": "product-id",
    "フルフィルメント・チャンネル": "fulfillment-channel",
    "ステータス": "status",
}
CHARSETS = {"DE": "Cp1252", "US": "UTF-8", "JP": "windows-31j"}

# Orders reports cover [now - 3 days, now - 1 day] of the seller's 30-day history.
ORDER_WINDOW = (timedelta(days=3), timedelta(days=1))


# ---- sandbox plumbing ---------------------------------------------------------------------------------


def _start_sandbox(
    marketplaces: tuple[str, ...] = ("DE",),
    skus: int = 120,
    orders_per_day: float = 50,
    faults: FaultRates | None = None,
    rate_scale: float = 1000.0,
    **settings,
) -> Sandbox:
    # A token cached for an earlier sandbox on a reused port would be refused here; start clean.
    access_token_client.cache.clear()
    config = SandboxConfig(
        seller=SellerConfig(marketplaces=marketplaces, skus=skus, orders_per_day=orders_per_day),
        amazon=AmazonSettings(
            report_queue_seconds=0.05, report_processing_seconds=0.1, rate_scale=rate_scale, **settings
        ),
        faults=faults or FaultRates(),
        frozen_clock=True,
    )
    return Sandbox(config).start()


@pytest.fixture(autouse=True)
def _no_default_marketplace_override(monkeypatch):
    # python-amazon-sp-api lets SP_API_DEFAULT_MARKETPLACE override the marketplace (and endpoint) given.
    monkeypatch.delenv("SP_API_DEFAULT_MARKETPLACE", raising=False)


@pytest.fixture(scope="module")
def amazon_sandbox():
    """One seller in DE, US and JP with fast reports and generous rates, shared by read-only tests."""
    sandbox = _start_sandbox(marketplaces=("DE", "US", "JP"), skus=300, orders_per_day=120)
    yield sandbox
    sandbox.stop()


@pytest.fixture
def make_amazon_sandbox():
    """A dedicated sandbox for tests that change state (cooldowns, clock, faults, rate buckets)."""
    started: list[Sandbox] = []

    def make(**kwargs) -> Sandbox:
        sandbox = _start_sandbox(**kwargs)
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()


def _credentials(sandbox: Sandbox, **override: str) -> SpApiCredentials:
    env = sandbox.env()
    values = {
        "refresh_token": env["SP_API_REFRESH_TOKEN"],
        "lwa_app_id": env["LWA_APP_ID"],
        "lwa_client_secret": env["LWA_CLIENT_SECRET"],
    }
    values.update(override)
    return SpApiCredentials(**values)


def _api(sandbox: Sandbox, api_class, mp: str = "DE", credentials: SpApiCredentials | None = None):
    env = sandbox.env()
    return build_api(
        api_class,
        mp,
        credentials or _credentials(sandbox),
        env["SP_API_ENDPOINT"],
        env["LWA_TOKEN_URL"],
        timeout=10,
    )


def _access_token(sandbox: Sandbox) -> str:
    env = sandbox.env()
    response = httpx.post(
        env["LWA_TOKEN_URL"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": env["SP_API_REFRESH_TOKEN"],
            "client_id": env["LWA_APP_ID"],
            "client_secret": env["LWA_CLIENT_SECRET"],
        },
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def _wait_for_report(reports: Reports, report_id: str, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        report = reports.get_report(report_id).payload
        if report["processingStatus"] in FINAL_STATUSES:
            return report
        if time.monotonic() > deadline:
            pytest.fail(f"report {report_id} still {report['processingStatus']} after {timeout} s")
        time.sleep(0.05)


def _run_report(reports: Reports, report_type: str, **body) -> dict:
    created = reports.create_report(reportType=report_type, **body)
    assert set(created.payload) == {"reportId"}
    return _wait_for_report(reports, created.payload["reportId"])


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _as_served(text: str, charset: str) -> str:
    """A text as a report in that charset carries it: what the charset cannot hold arrives as '?'."""
    codec = python_codec(charset)
    return text.encode(codec, errors="replace").decode(codec)


def _amount(x: float, mp: str) -> str:
    """An amount as the marketplace's reports write it: whole yen in JP, two decimals elsewhere."""
    return f"{x:.0f}" if MARKETPLACES[mp].currency == "JPY" else f"{x:.2f}"


def _parse_tsv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """The header as served, and the rows keyed by English column names (JP's Japanese ones translated)."""
    lines = text.split("\r\n")
    assert lines[-1] == "", "a flat file ends with a line break"
    header = lines[0].split("\t")
    keys = [JP_LISTINGS_MEANING.get(name, name) for name in header]
    rows = []
    for line in lines[1:-1]:
        cells = line.split("\t")
        assert len(cells) == len(header), line
        rows.append(dict(zip(keys, cells, strict=True)))
    return header, rows


def _assert_amazon_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("x-amzn-RequestId")
    body = response.json()
    assert list(body) == ["errors"]
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert error["message"]
    return error


# ---- 1. Login with Amazon ------------------------------------------------------------------------------


def test_lwa_issues_a_token_the_apis_accept(amazon_sandbox):
    sellers = _api(amazon_sandbox, Sellers)
    token = sellers.auth.access_token
    assert token.startswith("Atza|")
    assert token in amazon_sandbox.amazon.access_tokens

    payload = sellers.get_marketplace_participation().payload
    assert [p["marketplace"]["countryCode"] for p in payload] == ["DE", "US", "JP"]
    assert [p["marketplace"]["id"] for p in payload] == [
        MARKETPLACES[m].marketplace_id for m in ("DE", "US", "JP")
    ]
    assert {p["storeName"] for p in payload} == {amazon_sandbox.config.seller.store_name}


def test_lwa_rejects_a_wrong_client_secret_with_invalid_client(amazon_sandbox):
    # The project's LWA cache key holds the refresh token, URL and app id but not the secret: clear it so a
    # token fetched with the right secret cannot answer for the wrong one.
    access_token_client.cache.clear()
    sellers = _api(
        amazon_sandbox, Sellers, credentials=_credentials(amazon_sandbox, lwa_client_secret="nope")
    )
    with pytest.raises(AuthorizationError) as info:
        sellers.get_marketplace_participation()
    assert info.value.error_code == "invalid_client"
    assert info.value.status_code == 401


def test_lwa_rejects_a_wrong_refresh_token_with_invalid_grant(amazon_sandbox):
    access_token_client.cache.clear()
    sellers = _api(amazon_sandbox, Sellers, credentials=_credentials(amazon_sandbox, refresh_token="Atzr|x"))
    with pytest.raises(AuthorizationError) as info:
        sellers.get_marketplace_participation()
    assert info.value.error_code == "invalid_grant"
    assert info.value.status_code == 400


def test_a_forged_access_token_gets_403_unauthorized(amazon_sandbox):
    reports = _api(amazon_sandbox, Reports)
    # The library sends restricted_data_token, when set, as x-amz-access-token instead of the LWA token.
    reports.restricted_data_token = "Atza|forged-token"
    calls_before = amazon_sandbox.amazon.calls["getReports"]
    with pytest.raises(SellingApiForbiddenException) as info:
        reports.get_reports(reportTypes=[LISTINGS])
    assert info.value.amzn_code == "Unauthorized"
    assert "revoked, malformed or invalid" in info.value.error[0]["details"]
    assert amazon_sandbox.amazon.calls["getReports"] == calls_before, "refused before counting the call"

    raw = httpx.get(
        f"{amazon_sandbox.sp_api_url}/reports/2021-06-30/reports",
        params={"reportTypes": LISTINGS},
        headers={"x-amz-access-token": "Atza|forged-token"},
    )
    _assert_amazon_error(raw, 403, "Unauthorized")


# ---- 2. Reports: create, poll, download, decode ---------------------------------------------------------


@dataclass
class FetchedReport:
    report: dict
    document: dict  # getReportDocument's answer
    download: httpx.Response
    text: str
    start: datetime | None
    end: datetime | None


@pytest.fixture(scope="module")
def fetch_report(amazon_sandbox):
    """Runs each (marketplace, report type) once in the shared sandbox: FBA reports have a cooldown."""
    fetched: dict[tuple[str, str], FetchedReport] = {}

    def fetch(mp: str, report_type: str) -> FetchedReport:
        if (mp, report_type) not in fetched:
            reports = _api(amazon_sandbox, Reports, mp)
            body, start, end = {}, None, None
            if report_type in (ORDERS_BY_LAST_UPDATE, ORDERS_BY_ORDER_DATE):
                now = amazon_sandbox.clock.now()
                start, end = now - ORDER_WINDOW[0], now - ORDER_WINDOW[1]
                body = {"dataStartTime": _iso(start), "dataEndTime": _iso(end)}
            report = _run_report(reports, report_type, **body)
            assert report["processingStatus"] == "DONE", report
            document = reports.get_report_document(report["reportDocumentId"]).payload
            download = httpx.get(document["url"])
            assert download.status_code == 200
            charset = download.headers["content-type"].split("charset=")[1]
            text = gzip.decompress(download.content).decode(python_codec(charset))
            fetched[(mp, report_type)] = FetchedReport(report, document, download, text, start, end)
        return fetched[(mp, report_type)]

    return fetch


def _expected_rows(world, mp: str, report_type: str, start, end) -> list[dict[str, str]]:
    """The generator's data as the report's key columns, in the generator's order."""
    charset = CHARSETS[mp]
    if report_type == LISTINGS:
        return [
            {
                "item-name": _as_served(r.name, charset),
                "listing-id": r.listing_id,
                "seller-sku": r.sku,
                "price": _amount(r.price, mp),
                "quantity": "" if r.quantity < 0 else str(int(r.quantity)),
                "asin1": r.asin,
                "product-id": r.eans[0] if r.eans else (r.upc or r.asin),
                "fulfillment-channel": r.fulfillment_channel,
                "status": r.status,
            }
            for r in world.listings[mp].itertuples(index=False)
        ]
    if report_type == FBA_MYI:
        out = []
        for r in world.fba[mp].itertuples(index=False):
            warehouse = r.fulfillable + r.unfulfillable + r.reserved + r.researching
            inbound = r.inbound_working + r.inbound_shipped + r.inbound_receiving
            out.append(
                {
                    "sku": r.sku,
                    "fnsku": r.fnsku,
                    "asin": r.asin,
                    "product-name": _as_served(r.name, charset),
                    "condition": "New" if r.condition == "NewItem" else "Used",
                    "afn-fulfillable-quantity": str(r.fulfillable),
                    "afn-reserved-quantity": str(r.reserved),
                    "afn-total-quantity": str(warehouse + inbound),
                }
            )
        return out
    if report_type == ORDERS_BY_LAST_UPDATE:
        orders = world.orders_updated_between(mp, start, end)
    else:
        orders = world.orders_placed_between(mp, start, end)
    out = []
    for order in orders:
        status = order.status_at(end)
        for line in order.lines:
            out.append(
                {
                    "amazon-order-id": order.order_id,
                    "purchase-date": _iso(order.purchase_date),
                    "last-updated-date": _iso(order.last_update_at(end)),
                    "order-status": status,
                    "product-name": _as_served(line["name"], charset),
                    "sku": line["sku"],
                    "asin": line["asin"],
                    "quantity": "0" if status == "Cancelled" else str(line["quantity"]),
                    "currency": MARKETPLACES[mp].currency,
                    "item-price": ""
                    if status in ("Pending", "Cancelled")
                    else _amount(line["item_price"], mp),
                    "ship-country": mp,
                }
            )
    return out


@pytest.mark.parametrize("mp", ["DE", "US", "JP"])
@pytest.mark.parametrize("report_type", [LISTINGS, ORDERS_BY_LAST_UPDATE, ORDERS_BY_ORDER_DATE, FBA_MYI])
def test_report_round_trip_serves_generator_rows_as_gzip_in_marketplace_charset(
    amazon_sandbox, fetch_report, mp, report_type
):
    fetched = fetch_report(mp, report_type)
    report = fetched.report
    assert report["reportType"] == report_type
    assert report["marketplaceIds"] == [MARKETPLACES[mp].marketplace_id]
    if fetched.start is not None:
        assert (report["dataStartTime"], report["dataEndTime"]) == (_iso(fetched.start), _iso(fetched.end))
    assert fetched.document["reportDocumentId"] == report["reportDocumentId"]
    assert fetched.document["compressionAlgorithm"] == "GZIP"

    # The presigned download: gzip bytes as the body, never Content-Encoding, charset in Content-Type.
    download = fetched.download
    assert "content-encoding" not in download.headers
    assert download.content[:2] == b"\x1f\x8b"
    assert download.headers["content-type"] == f"text/plain;charset={CHARSETS[mp]}"

    header, rows = _parse_tsv(fetched.text)
    if (mp, report_type) == ("JP", LISTINGS):
        assert header == JP_LISTINGS_HEADER and len(header) == 41
    else:
        assert header == EXPECTED_HEADERS[report_type]
        assert len(header) == EXPECTED_COLUMN_COUNTS[report_type]

    expected = _expected_rows(amazon_sandbox.world, mp, report_type, fetched.start, fetched.end)
    assert len(expected) > 10, "the generator should give this report real data"
    assert [{k: row[k] for k in expected[0]} for row in rows] == expected

    # The project's downloader reads the same bytes the same way.
    ours = download_report_document(fetched.document["url"], fetched.document["compressionAlgorithm"])
    assert ours.charset == CHARSETS[mp]
    assert ours.text == fetched.text


def test_de_listings_decode_cp1252_with_euro_and_umlauts_and_question_marks_for_the_rest(
    amazon_sandbox, fetch_report
):
    fetched = fetch_report("DE", LISTINGS)
    _, rows = _parse_tsv(fetched.text)
    by_sku = {row["seller-sku"]: row for row in rows}
    listings = amazon_sandbox.world.listings["DE"]

    outside_mask = listings["name"].str.contains("[✓Ω]")
    outside = listings[outside_mask]
    euro = listings[listings["name"].str.contains("€") & ~outside_mask]
    umlaut = listings[listings["name"].str.contains("[äöüÄÖÜß]") & ~outside_mask]
    assert len(euro) and len(umlaut) and len(outside), "the generator must produce such names"

    for r in euro.itertuples():
        assert by_sku[r.sku]["item-name"] == r.name  # € is Cp1252 0x80
        assert by_sku[r.sku]["price"] == f"{r.price:.2f}"
    for r in umlaut.itertuples():
        assert by_sku[r.sku]["item-name"] == r.name
    for r in outside.itertuples():
        served = by_sku[r.sku]["item-name"]
        assert served == r.name.replace("✓", "?").replace("Ω", "?")
        assert "✓" not in served and "Ω" not in served
    # The raw bytes really are Cp1252: € is the single byte 0x80, not UTF-8's E2 82 AC.
    raw = gzip.decompress(fetched.download.content)
    assert b"\x80-Sparpaket" in raw
    assert "€".encode() not in raw


def test_us_listings_are_utf8_and_keep_every_character(amazon_sandbox, fetch_report):
    _, rows = _parse_tsv(fetch_report("US", LISTINGS).text)
    names = {row["seller-sku"]: row["item-name"] for row in rows}
    listings = amazon_sandbox.world.listings["US"]
    special = listings[listings["name"].str.contains("[✓Ω€]")]
    assert len(special)
    for r in special.itertuples():
        assert names[r.sku] == r.name


def test_jp_listings_are_windows_31j_with_japanese_headers_cp932_only_characters_and_whole_yen(
    amazon_sandbox, fetch_report
):
    fetched = fetch_report("JP", LISTINGS)
    header, rows = _parse_tsv(fetched.text)
    listings = amazon_sandbox.world.listings["JP"]
    assert header[:4] == ["商品名", "商品の説明", "出品ID", "出品者SKU"]
    assert len(rows) == len(listings)
    names = {row["seller-sku"]: row["item-name"] for row in rows}
    assert names == dict(zip(listings["sku"], listings["name"], strict=True))  # every character survives
    raw = gzip.decompress(fetched.download.content)
    # NEC special characters and IBM extension kanji: in Microsoft's cp932, not in Shift_JIS.
    for char in "①Ⅲ㈱№髙﨑":
        assert char.encode("cp932") in raw, char
        with pytest.raises(UnicodeEncodeError):
            char.encode("shift_jis")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("shift_jis")
    assert "出品者SKU".encode("cp932") in raw
    assert all(row["price"].isdigit() for row in rows), "yen prices have no decimal part"
    assert all(re.fullmatch(r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} JST", row["open-date"]) for row in rows)


def test_library_download_true_decodes_de_by_content_type_charset(amazon_sandbox, fetch_report):
    fetched = fetch_report("DE", LISTINGS)
    reports = _api(amazon_sandbox, Reports, "DE")
    response = reports.get_report_document(fetched.report["reportDocumentId"], download=True)
    assert response.character_code.lower() == "cp1252"  # httpx lower-cases the Content-Type charset
    document = response.payload["document"]
    assert isinstance(document, str), "the library falls back to bytes when decoding fails"
    assert document == fetched.text
    assert "€-Sparpaket" in document


# ---- 3. FBA inventory ------------------------------------------------------------------------------------


def test_inventory_summaries_paginate_through_every_fba_row(amazon_sandbox):
    inventories = _api(amazon_sandbox, Inventories, "DE")
    summaries, pages, token = [], 0, None
    while True:
        kwargs = {"details": True}
        if token:
            kwargs["nextToken"] = token
        response = inventories.get_inventory_summary_marketplace(**kwargs)
        page = response.payload["inventorySummaries"]
        assert len(page) <= 50
        assert response.payload["granularity"] == {
            "granularityType": "Marketplace",
            "granularityId": MARKETPLACES["DE"].marketplace_id,
        }
        summaries.extend(page)
        pages += 1
        token = response.next_token
        if not token:
            break

    fba = amazon_sandbox.world.fba["DE"]
    assert len(fba) > 100
    assert pages == math.ceil(len(fba) / 50)
    assert Counter(s["sellerSku"] for s in summaries) == Counter(fba["sku"])
    expected = {(r.sku, r.condition): (r.fulfillable, r.reserved, r.unfulfillable) for r in fba.itertuples()}
    got = {
        (s["sellerSku"], s["condition"]): (
            s["inventoryDetails"]["fulfillableQuantity"],
            s["inventoryDetails"]["reservedQuantity"]["totalReservedQuantity"],
            s["inventoryDetails"]["unfulfillableQuantity"]["totalUnfulfillableQuantity"],
        )
        for s in summaries
    }
    assert got == expected


def test_inventory_next_token_older_than_its_ttl_is_rejected(make_amazon_sandbox):
    sandbox = make_amazon_sandbox(skus=300, next_token_ttl_seconds=0.5)
    inventories = _api(sandbox, Inventories, "DE")
    first = inventories.get_inventory_summary_marketplace(details=True)
    assert first.next_token
    # A fresh token works...
    second = inventories.get_inventory_summary_marketplace(details=True, nextToken=first.next_token)
    assert second.next_token
    fba = sandbox.world.fba["DE"]
    assert [s["sellerSku"] for s in second.payload["inventorySummaries"]] == list(fba["sku"][50:100])
    # ...the same kind of token, once older than the TTL, does not.
    time.sleep(0.7)
    with pytest.raises(SellingApiBadRequestException) as info:
        inventories.get_inventory_summary_marketplace(details=True, nextToken=second.next_token)
    assert info.value.amzn_code == "InvalidInput"
    assert "expired" in info.value.message


# ---- 4. Catalog Items 2022-04-01 -----------------------------------------------------------------------


def _single_listing_asins(world, mp: str, n: int) -> list[str]:
    """ASINs listed by exactly one SKU, so the expected identifiers and name are unambiguous."""
    listings = world.listings[mp]
    counts = listings["asin"].value_counts()
    asins = [a for a in listings["asin"] if counts[a] == 1]
    assert len(asins) >= n
    return asins[:n]


def test_catalog_search_by_20_asins_pages_by_10_with_world_identifiers(amazon_sandbox):
    world = amazon_sandbox.world
    asins = _single_listing_asins(world, "DE", 20)
    catalog = _api(amazon_sandbox, CatalogItemsV20220401, "DE")
    query = {"identifiers": asins, "identifiersType": "ASIN", "includedData": ["identifiers", "summaries"]}

    first = catalog.search_catalog_items(**query)
    assert first.payload["numberOfResults"] == 20
    assert len(first.payload["items"]) == 10  # pageSize defaults to 10
    assert first.pagination["nextToken"] == first.next_token
    second = catalog.search_catalog_items(**query, pageToken=first.next_token)
    assert len(second.payload["items"]) == 10
    assert second.next_token is None

    items = first.payload["items"] + second.payload["items"]
    assert sorted(item["asin"] for item in items) == sorted(asins)
    listings = world.listings["DE"].set_index("asin")
    de = MARKETPLACES["DE"].marketplace_id
    for item in items:
        row = listings.loc[item["asin"]]
        (ids,) = item["identifiers"]
        assert ids["marketplaceId"] == de
        eans = [i["identifier"] for i in ids["identifiers"] if i["identifierType"] == "EAN"]
        upcs = [i["identifier"] for i in ids["identifiers"] if i["identifierType"] == "UPC"]
        assert eans == list(row["eans"])
        assert upcs == ([row["upc"]] if row["upc"] else [])
        (summary,) = item["summaries"]
        assert summary["itemName"] == row["name"]
        assert summary["marketplaceId"] == de


def test_catalog_search_by_ean_finds_the_listing_asin(amazon_sandbox):
    listings = amazon_sandbox.world.listings["DE"]
    with_ean = listings[listings["eans"].map(len) > 0].drop_duplicates("asin").head(5)
    catalog = _api(amazon_sandbox, CatalogItemsV20220401, "DE")
    response = catalog.search_catalog_items(
        identifiers=[e[0] for e in with_ean["eans"]], identifiersType="EAN", includedData=["identifiers"]
    )
    assert sorted(item["asin"] for item in response.payload["items"]) == sorted(with_ean["asin"])


def test_catalog_search_refuses_more_than_20_identifiers(amazon_sandbox):
    asins = _single_listing_asins(amazon_sandbox.world, "DE", 21)
    catalog = _api(amazon_sandbox, CatalogItemsV20220401, "DE")
    with pytest.raises(SellingApiBadRequestException) as info:
        catalog.search_catalog_items(identifiers=asins, identifiersType="ASIN")
    assert info.value.amzn_code == "InvalidInput"
    assert "20" in info.value.message


def test_get_catalog_item_answers_known_asins_and_404s_unknown_ones(amazon_sandbox):
    asin = _single_listing_asins(amazon_sandbox.world, "US", 1)[0]
    listings = amazon_sandbox.world.listings["US"].set_index("asin")
    catalog = _api(amazon_sandbox, CatalogItemsV20220401, "US")
    item = catalog.get_catalog_item(asin, includedData=["summaries", "identifiers"]).payload
    assert item["asin"] == asin
    assert item["summaries"][0]["itemName"] == listings.loc[asin, "name"]
    assert item["summaries"][0]["marketplaceId"] == MARKETPLACES["US"].marketplace_id

    with pytest.raises(SellingApiNotFoundException) as info:
        catalog.get_catalog_item("B0NOSUCH00")
    assert info.value.amzn_code == "NotFound"


# ---- 5. Throttling --------------------------------------------------------------------------------------


def test_get_report_burst_is_throttled_with_quota_exceeded_and_caller_retries_through(make_amazon_sandbox):
    sandbox = make_amazon_sandbox(skus=60, rate_scale=1.0)  # Amazon's real rates: getReport 2 rps, burst 15
    reports = _api(sandbox, Reports, "DE")
    report_id = reports.create_report(reportType=LISTINGS).payload["reportId"]

    ok, throttled = [], []
    started = time.monotonic()
    for _ in range(25):
        try:
            ok.append(reports.get_report(report_id))
        except SellingApiRequestThrottledException as exc:
            throttled.append(exc)
    elapsed = time.monotonic() - started

    assert 15 <= len(ok) <= 15 + math.ceil(2 * elapsed) + 1
    assert throttled
    for exc in throttled:
        assert exc.amzn_code == "QuotaExceeded"
        assert exc.headers["x-amzn-RateLimit-Limit"] == "2"
        assert exc.headers["x-amzn-RequestId"]
    for response in ok:
        assert response.payload["reportId"] == report_id
        assert response.rate_limit == "2"
        assert response.headers["x-amzn-RequestId"]
    assert sandbox.amazon.throttled["getReport"] == len(throttled)
    assert sandbox.amazon.calls["getReport"] == 25

    # The server's bucket is empty now; SpApiCaller's own budget still thinks it has a burst.
    caller = SpApiCaller(backoff_base=0.2)
    response = caller.call("getReport", lambda: reports.get_report(report_id), expect="processingStatus")
    assert response.payload["reportId"] == report_id
    assert caller.stats.throttled["getReport"] >= 1
    assert caller.stats.retried["getReport"] >= 1
    assert caller.stats.calls["getReport"] == caller.stats.throttled["getReport"] + 1


# ---- 6. FATAL inside the FBA cooldown ----------------------------------------------------------------------


def test_fatal_inside_fba_cooldown_explains_itself(make_amazon_sandbox):
    sandbox = make_amazon_sandbox(skus=150)
    reports = _api(sandbox, Reports, "DE")

    first = _run_report(reports, FBA_MYI)
    assert first["processingStatus"] == "DONE"

    second = _run_report(reports, FBA_MYI)
    assert second["processingStatus"] == "FATAL"
    assert second["reportDocumentId"]
    assert second["reportDocumentId"] != first["reportDocumentId"]
    document = reports.get_report_document(second["reportDocumentId"]).payload
    explanation = download_report_document(document["url"], document["compressionAlgorithm"]).text
    assert "cooldown" in explanation
    assert FBA_MYI in explanation
    assert first["createdTime"] in explanation  # when the report that started the cooldown was asked for

    sandbox.advance(timedelta(minutes=31))
    third = _run_report(reports, FBA_MYI)
    assert third["processingStatus"] == "DONE"
    document = reports.get_report_document(third["reportDocumentId"]).payload
    _, rows = _parse_tsv(download_report_document(document["url"], document["compressionAlgorithm"]).text)
    fba = sandbox.world.fba["DE"]
    # The clock moved 31 minutes: the report holds the stock as of then.
    assert [(r["sku"], r["afn-fulfillable-quantity"]) for r in rows] == [
        (r.sku, str(r.fulfillable)) for r in fba.itertuples()
    ]


# ---- 7. CANCELLED for a window without data ---------------------------------------------------------------


@pytest.mark.parametrize("report_type", [ORDERS_BY_LAST_UPDATE, ORDERS_BY_ORDER_DATE])
def test_orders_report_before_the_sellers_history_is_cancelled_without_document(amazon_sandbox, report_type):
    now = amazon_sandbox.clock.now()
    start, end = now - timedelta(days=400), now - timedelta(days=399)
    world = amazon_sandbox.world
    assert world.orders_updated_between("DE", start, end) == []
    assert world.orders_placed_between("DE", start, end) == []

    reports = _api(amazon_sandbox, Reports, "DE")
    report = _run_report(reports, report_type, dataStartTime=_iso(start), dataEndTime=_iso(end))
    assert report["processingStatus"] == "CANCELLED"
    assert "reportDocumentId" not in report
    assert (report["dataStartTime"], report["dataEndTime"]) == (_iso(start), _iso(end))


# ---- 8. Bad requests answer with Amazon's error shape ------------------------------------------------------


def test_unknown_report_type_is_a_400_invalid_input(amazon_sandbox):
    reports = _api(amazon_sandbox, Reports, "DE")
    with pytest.raises(SellingApiBadRequestException) as info:
        reports.create_report(reportType="GET_NO_SUCH_REPORT")
    assert info.value.amzn_code == "InvalidInput"
    assert "GET_NO_SUCH_REPORT" in info.value.message


REPORTS = "/reports/2021-06-30/reports"
DE_ID = MARKETPLACES["DE"].marketplace_id


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        pytest.param("POST", REPORTS, {"json": {"reportType": LISTINGS}}, 400, "InvalidInput", id="no-mids"),
        pytest.param("POST", REPORTS, {"content": b'{"reportType": '}, 400, "InvalidInput", id="bad-json"),
        pytest.param("POST", REPORTS, {"content": b"\xff\xfe"}, 400, "InvalidInput", id="not-utf8"),
        pytest.param(
            "POST",
            REPORTS,
            {"json": {"reportType": LISTINGS, "marketplaceIds": [[DE_ID]]}},
            400,
            "InvalidInput",
            id="mid-not-a-string",
        ),
        pytest.param(
            "POST",
            REPORTS,
            {"json": {"reportType": LISTINGS, "marketplaceIds": [DE_ID], "dataStartTime": 1700000000}},
            400,
            "InvalidInput",
            id="time-not-a-string",
        ),
        pytest.param(
            "GET",
            REPORTS,
            {"params": {"reportTypes": LISTINGS, "pageSize": "ten"}},
            400,
            "InvalidInput",
            id="reports-page-size-not-int",
        ),
        pytest.param(
            "GET",
            "/catalog/2022-04-01/items",
            {
                "params": {
                    "marketplaceIds": DE_ID,
                    "identifiers": "B0X",
                    "identifiersType": "ASIN",
                    "pageToken": "!",
                }
            },
            400,
            "InvalidInput",
            id="catalog-bad-page-token",
        ),
        pytest.param(
            "GET",
            "/catalog/2022-04-01/items",
            {
                "params": {
                    "marketplaceIds": DE_ID,
                    "identifiers": "B0X",
                    "identifiersType": "ASIN",
                    "pageSize": "x",
                }
            },
            400,
            "InvalidInput",
            id="catalog-page-size-not-int",
        ),
        pytest.param("GET", "/no/such/path", {}, 404, "NotFound", id="unknown-path"),
        pytest.param("PUT", REPORTS, {}, 405, "MethodNotAllowed", id="wrong-method"),
        pytest.param("GET", f"{REPORTS}/999", {}, 404, "NotFound", id="unknown-report"),
    ],
)
def test_bad_raw_requests_get_amazon_json_errors(amazon_sandbox, method, path, kwargs, status, code):
    headers = {"x-amz-access-token": _access_token(amazon_sandbox)}
    response = httpx.request(method, amazon_sandbox.sp_api_url + path, headers=headers, **kwargs)
    _assert_amazon_error(response, status, code)


def test_unknown_path_is_json_404_even_without_a_token(amazon_sandbox):
    response = httpx.get(f"{amazon_sandbox.sp_api_url}/index.html")
    _assert_amazon_error(response, 404, "NotFound")


def test_missing_token_is_json_403(amazon_sandbox):
    response = httpx.get(f"{amazon_sandbox.sp_api_url}{REPORTS}", params={"reportTypes": LISTINGS})
    error = _assert_amazon_error(response, 403, "Unauthorized")
    assert "access token" in error["details"]


# ---- 9. Faults ---------------------------------------------------------------------------------------------


def test_bodiless_429_is_silent_in_the_library_and_an_unavailable_error_in_the_caller(make_amazon_sandbox):
    sandbox = make_amazon_sandbox(skus=60, faults=FaultRates(throttle_no_body=1.0))
    reports = _api(sandbox, Reports, "DE")

    silent = reports.get_report("123")
    assert silent.payload == {}
    assert silent.errors is None
    assert silent.rate_limit is None

    caller = SpApiCaller(max_attempts=2, backoff_base=0.01)
    with pytest.raises(AmazonUnavailableError, match="empty answer"):
        caller.call("getReport", lambda: reports.get_report("123"), expect="processingStatus")
    assert caller.stats.calls["getReport"] == 2
    assert caller.stats.throttled["getReport"] == 2
    assert sandbox.faults.injected["throttle_no_body"] == 3
    assert sandbox.amazon.calls["getReport"] == 3


def _document_url(sandbox: Sandbox) -> dict:
    reports = _api(sandbox, Reports, "DE")
    report = _run_report(reports, LISTINGS)
    assert report["processingStatus"] == "DONE"
    return reports.get_report_document(report["reportDocumentId"]).payload


def test_corrupt_document_raises_report_document_error(make_amazon_sandbox):
    sandbox = make_amazon_sandbox(skus=60, faults=FaultRates(corrupt_document=1.0))
    document = _document_url(sandbox)
    with pytest.raises(ReportDocumentError, match="gzip"):
        download_report_document(document["url"], document["compressionAlgorithm"])
    assert sandbox.faults.injected["corrupt_document"] == 1


def test_expired_document_url_raises_report_document_error_naming_expiry(make_amazon_sandbox):
    sandbox = make_amazon_sandbox(skus=60, faults=FaultRates(expired_document_url=1.0))
    document = _document_url(sandbox)
    with pytest.raises(ReportDocumentError, match="expired") as info:
        download_report_document(document["url"], document["compressionAlgorithm"])
    assert "403" in str(info.value)
    # Without the fault the same URL serves the document: the failure was the injected expiry.
    sandbox.set_faults(FaultRates())
    text = download_report_document(document["url"], document["compressionAlgorithm"]).text
    assert text.startswith("item-name\t")


def test_connection_reset_is_a_transport_error_the_caller_retries(make_amazon_sandbox):
    sandbox = make_amazon_sandbox(skus=60, faults=FaultRates(connection_reset=1.0))
    reports = _api(sandbox, Reports, "DE")
    with pytest.raises(httpx.TransportError):
        reports.get_report("123")

    caller = SpApiCaller(max_attempts=2, backoff_base=0.01)
    with pytest.raises(AmazonUnavailableError, match="after 2 attempts"):
        caller.call("getReport", lambda: reports.get_report("123"), expect="processingStatus")
    assert caller.stats.calls["getReport"] == 2
    assert caller.stats.retried["getReport"] == 2
    assert sandbox.faults.injected["connection_reset"] == 3


# ---- 10. The CLI -------------------------------------------------------------------------------------------


def test_cli_prints_working_urls_and_exits_cleanly_on_sigterm():
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SP_API_", "LWA_", "OPTIPLY_")) and k != "AWS_ENV"
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "amazon_optiply.sandbox", "--sp-api-port", "0", "--optiply-port", "0"]
    proc = subprocess.Popen(
        [*cmd, "--skus", "50"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        printed: dict[str, str] = {}
        deadline = time.monotonic() + 20
        while not {"SP_API_ENDPOINT", "OPTIPLY_API_URL", "OPTIPLY_CLIENT_SECRET"} <= printed.keys():
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"the CLI printed only {printed} (exit code {proc.poll()})")
            name, _, value = line.strip().partition("=")
            printed[name] = value

        sp_api = printed["SP_API_ENDPOINT"]
        assert sp_api.startswith("http://127.0.0.1:")
        _assert_amazon_error(httpx.get(f"{sp_api}/no/such/path"), 404, "NotFound")
        lwa = httpx.post(
            printed["LWA_TOKEN_URL"],
            data={
                "grant_type": "refresh_token",
                "refresh_token": printed["SP_API_REFRESH_TOKEN"],
                "client_id": printed["LWA_APP_ID"],
                "client_secret": printed["LWA_CLIENT_SECRET"],
            },
        )
        assert lwa.status_code == 200
        assert lwa.json()["access_token"].startswith("Atza|")

        optiply = printed["OPTIPLY_API_URL"]
        assert optiply.startswith("http://127.0.0.1:")
        assert optiply.endswith("/v1")
        token = httpx.post(
            printed["OPTIPLY_TOKEN_URL"],
            auth=(printed["OPTIPLY_CLIENT_ID"], printed["OPTIPLY_CLIENT_SECRET"]),
            data={
                "grant_type": "password",
                "username": printed["OPTIPLY_USERNAME"],
                "password": printed["OPTIPLY_PASSWORD"],
            },
        )
        assert token.status_code == 200, token.text
        assert token.json()["access_token"]
        assert printed["OPTIPLY_TOKEN_URL"].startswith(optiply.removesuffix("/v1"))

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert "sandbox stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
