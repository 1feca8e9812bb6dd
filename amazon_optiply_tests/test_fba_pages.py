"""getInventorySummaries pages read by pyarrow from the answer's bytes give the frame the dict pages give."""

import json

import httpx
import pandas as pd
import pyarrow as pa
import pytest
from sp_api.base.exceptions import SellingApiRequestThrottledException

from amazon_optiply.clients.selling_partner import _ArrowInventories
from amazon_optiply.transforms import catalog


def summary(i: int, **changes) -> dict:
    """A summary as Amazon sends it, with the fields the frame does not keep too."""
    out = {
        "asin": f"B0{i:07d}X",
        "fnSku": f"X00{i:07d}",
        "sellerSku": f"KW-{i:07d}",
        "condition": "NewItem",
        "lastUpdatedTime": "2026-01-01T00:00:00Z",
        "productName": 'Kaffeebecher "Ö"\nNr. 1',  # an escaped newline and quotes inside a string
        "totalQuantity": 3 * i,
        "inventoryDetails": {
            "fulfillableQuantity": i,
            "inboundWorkingQuantity": 0,
            "inboundShippedQuantity": i % 3,
            "inboundReceivingQuantity": 1,
            "reservedQuantity": {"totalReservedQuantity": 2, "pendingCustomerOrderQuantity": 2},
            "researchingQuantity": {"totalResearchingQuantity": 0, "researchingQuantityBreakdown": []},
        },
    }
    out.update(changes)
    return out


def body(summaries: list[dict], next_token: str | None = None, indent: int | None = 2) -> bytes:
    page: dict = {
        "payload": {
            "granularity": {"granularityType": "Marketplace", "granularityId": "A1PA6795UKMFR9"},
            "inventorySummaries": summaries,
        }
    }
    if next_token:
        page["pagination"] = {"nextToken": next_token}
    return json.dumps(page, indent=indent).encode()  # pretty-printed: newlines between the tokens


def test_pages_of_different_shapes_read_into_one_schema_and_the_dict_frame():
    pages = [
        [summary(i) for i in range(50)],
        # Fields missing, nulls and no details: the page's columns are the same, null where absent.
        [
            summary(50, inventoryDetails=None, totalQuantity=None),
            {"sellerSku": "KW-only", "asin": "B0ONLY"},
            summary(52, condition=None),
            summary(53, inventoryDetails={"fulfillableQuantity": 4}),
        ],
        [summary(60, inventoryDetails={})],
        [],
    ]
    read = [catalog.inventory_summaries_page(body(p, next_token=f"t{k}")) for k, p in enumerate(pages)]
    assert all(page is not None for page in read)
    assert [page.summaries.num_rows for page in read] == [len(p) for p in pages]
    assert all(page.summaries.schema == catalog.SUMMARY_SCHEMA for page in read)
    assert [page.next_token for page in read] == ["t0", "t1", "t2", "t3"]

    frame = catalog.fba_inventory_frame_from_pages(page.summaries for page in read)
    expected = catalog.fba_inventory_frame_from_pages(pages)
    pd.testing.assert_frame_equal(frame, expected)
    assert frame.dtypes.astype(str).to_dict() == {
        c: "string" if t == "string" else t for c, t in catalog.FBA_COLUMNS.items()
    }
    only = frame[frame["seller_sku"] == "KW-only"].iloc[0]
    assert only["total_quantity"] == only["fulfillable_quantity"] == 0
    assert pd.isna(only["condition"]) and pd.isna(only["fn_sku"])


def test_an_empty_last_page_has_no_token_and_an_empty_frame_keeps_its_dtypes():
    page = catalog.inventory_summaries_page(body([], indent=None))
    assert page is not None and page.next_token is None
    assert page.summaries.num_rows == 0 and page.summaries.schema == catalog.SUMMARY_SCHEMA
    frame = catalog.fba_inventory_frame_from_pages([page.summaries])
    pd.testing.assert_frame_equal(frame, catalog.fba_inventory_frame_from_pages([]))
    assert list(frame.columns) == list(catalog.FBA_COLUMNS)


@pytest.mark.parametrize("quantity", ["5", 2.5, True])
def test_a_quantity_the_schema_refuses_leaves_the_page_to_the_dicts_as_before(quantity):
    summaries = [summary(1), summary(2, totalQuantity=quantity)]
    assert catalog.inventory_summaries_page(body(summaries)) is None
    frame = catalog.fba_inventory_frame_from_pages(
        [json.loads(body(summaries))["payload"]["inventorySummaries"]]
    )
    assert frame["total_quantity"].tolist() == [3, int(quantity)]


def test_a_quantity_that_is_no_number_still_fails_clearly():
    summaries = [summary(1, inventoryDetails={"fulfillableQuantity": "many"})]
    assert catalog.inventory_summaries_page(body(summaries)) is None
    with pytest.raises(ValueError, match="many"):
        catalog.fba_inventory_frame_from_pages([summaries])


def test_arrow_and_dict_pages_mix_in_their_order():
    pages = [[summary(i) for i in range(k, k + 50)] for k in range(0, 300, 50)]
    arrow = [catalog.inventory_summaries_page(body(p)).summaries for p in pages]
    mixed = [arrow[k] if k % 2 else pages[k] for k in range(len(pages))]
    mixed[3] = pa.Table.from_batches([arrow[3]])  # a Table is taken as well as a RecordBatch
    pd.testing.assert_frame_equal(
        catalog.fba_inventory_frame_from_pages(mixed), catalog.fba_inventory_frame_from_pages(pages)
    )


@pytest.mark.parametrize("content", [b"", b"{}", b"not json", b'{"errors": [{"code": "InvalidInput"}]}'])
def test_what_is_not_a_summaries_page_is_refused(content):
    assert catalog.inventory_summaries_page(content) is None


def _answer(status: int, content: bytes):
    api = object.__new__(_ArrowInventories)  # no credentials needed to read an answer
    api.method = "GET"
    response = httpx.Response(status, content=content, headers={"x-amzn-RateLimit-Limit": "2.0"})
    return api._check_response(response)


def test_the_client_answers_a_page_as_arrow_columns_with_its_token():
    answer = _answer(200, body([summary(1), summary(2)], next_token="next"))
    assert isinstance(answer.payload["inventorySummaries"], pa.RecordBatch)
    assert answer.payload["inventorySummaries"].num_rows == 2
    assert answer.pagination == {"nextToken": "next"} and answer.next_token == "next"
    assert answer.headers["x-amzn-RateLimit-Limit"] == "2.0"
    last = _answer(200, body([]))
    assert "inventorySummaries" in last.payload and last.next_token is None


def test_the_client_leaves_errors_and_refused_pages_to_the_library():
    with pytest.raises(SellingApiRequestThrottledException):
        _answer(429, b'{"errors": [{"code": "QuotaExceeded", "message": "You exceeded your quota"}]}')
    assert _answer(503, b"").payload == {}  # the empty answer SpApiCaller retries
    refused = _answer(200, body([summary(1, totalQuantity="5")], next_token="n"))
    assert refused.payload["inventorySummaries"][0]["totalQuantity"] == "5"
    assert refused.next_token == "n"
