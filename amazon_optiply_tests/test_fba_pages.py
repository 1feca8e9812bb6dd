"""getInventorySummaries pages read by pyarrow from the answer's bytes give the frame the dict pages give."""

import json
import time

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
    # Pretty-printed (newlines between the tokens), non-ASCII characters as UTF-8 bytes, as Amazon sends them.
    return json.dumps(page, indent=indent, ensure_ascii=False).encode()


def pages_of_different_shapes() -> list[list[dict]]:
    return [
        [summary(i) for i in range(50)],
        # Fields missing, nulls and no details: the page's columns are the same, null where absent.
        [
            summary(50, inventoryDetails=None, totalQuantity=None),
            {"sellerSku": "KW-only", "asin": "B0ONLY"},
            summary(52, condition=None, sellerSku="KW-Größe-€"),
            summary(53, inventoryDetails={"fulfillableQuantity": 4}),
        ],
        [summary(60, inventoryDetails={})],
        [],
    ]


def test_pages_of_different_shapes_read_into_one_schema_and_the_dict_frame():
    pages = pages_of_different_shapes()
    taken = [catalog.inventory_summaries_page(body(p, next_token=f"t{k}")) for k, p in enumerate(pages)]
    assert [page.next_token for page in taken] == ["t0", "t1", "t2", "t3"]
    for page, dicts in zip(taken, pages, strict=True):
        (read,) = catalog.read_summaries_pages([page.body])
        assert read.schema == catalog.SUMMARY_SCHEMA and read.num_rows == len(dicts)
    (together,) = catalog.read_summaries_pages([page.body for page in taken])
    assert together.schema == catalog.SUMMARY_SCHEMA and together.num_rows == sum(map(len, pages))

    frame = catalog.fba_inventory_frame_from_pages(page.body for page in taken)
    expected = catalog.fba_inventory_frame_from_pages(pages)
    pd.testing.assert_frame_equal(frame, expected)
    assert frame.dtypes.astype(str).to_dict() == {
        c: "string" if t == "string" else t for c, t in catalog.FBA_COLUMNS.items()
    }
    assert frame["seller_sku"].iloc[0] == "KW-0000000"
    only = frame[frame["seller_sku"] == "KW-only"].iloc[0]
    assert only["total_quantity"] == only["fulfillable_quantity"] == 0
    assert pd.isna(only["condition"]) and pd.isna(only["fn_sku"])


def test_an_empty_last_page_has_no_token_and_an_empty_frame_keeps_its_dtypes():
    page = catalog.inventory_summaries_page(body([], indent=None))
    assert page is not None and page.next_token is None
    (read,) = catalog.read_summaries_pages([page.body])
    assert read.num_rows == 0 and read.schema == catalog.SUMMARY_SCHEMA
    frame = catalog.fba_inventory_frame_from_pages([page.body])
    pd.testing.assert_frame_equal(frame, catalog.fba_inventory_frame_from_pages([]))
    assert list(frame.columns) == list(catalog.FBA_COLUMNS)


@pytest.mark.parametrize("quantity", ["5", 2.5, True])
def test_a_quantity_the_schema_refuses_leaves_its_page_to_the_dicts_as_before(quantity):
    pages = [[summary(i) for i in range(k, k + 3)] for k in range(0, 9, 3)]
    pages[1][1] = summary(4, totalQuantity=quantity)
    bodies = [catalog.inventory_summaries_page(body(p)).body for p in pages]
    read = list(catalog.read_summaries_pages(bodies))
    assert isinstance(read[0], pa.RecordBatch) and isinstance(read[2], pa.RecordBatch)
    assert read[1] == pages[1]  # that page alone, as its dicts
    frame = catalog.fba_inventory_frame_from_pages(bodies)
    pd.testing.assert_frame_equal(frame, catalog.fba_inventory_frame_from_pages(pages))
    assert frame["total_quantity"].tolist() == [0, 3, 6, 9, int(quantity), 15, 18, 21, 24]


def test_a_quantity_that_is_no_number_still_fails_clearly():
    summaries = [summary(1, inventoryDetails={"fulfillableQuantity": "many"})]
    with pytest.raises(ValueError, match="many"):
        catalog.fba_inventory_frame_from_pages([catalog.inventory_summaries_page(body(summaries)).body])


def test_a_body_that_is_no_json_fails_saying_so():
    page = catalog.inventory_summaries_page(b'{"payload": {"inventorySummaries": [{"sellerSku": "KW')
    with pytest.raises(ValueError, match="no page of summaries"):
        catalog.fba_inventory_frame_from_pages([page.body])


def test_the_next_token_is_the_pagination_key_unescaped():
    named = summary(1, productName='say "nextToken": "not this"', sellerSku="nextToken")
    page = catalog.inventory_summaries_page(body([named], next_token="ab/c+d=="))
    assert page.next_token == "ab/c+d=="
    # The token before the summaries.
    first = {"pagination": {"nextToken": "tok"}, **json.loads(body([named]))}
    assert catalog.inventory_summaries_page(json.dumps(first).encode() + b"\n").next_token == "tok"
    escaped = b'{"payload": {"inventorySummaries": []}, "pagination": {"nextToken" : "ab\\/c\\u003d"}}'
    assert catalog.inventory_summaries_page(escaped).next_token == "ab/c="


def test_arrow_body_and_dict_pages_mix_in_their_order():
    pages = [[summary(i) for i in range(k, k + 50)] for k in range(0, 300, 50)]
    bodies = [catalog.inventory_summaries_page(body(p)).body for p in pages]
    mixed: list = [bodies[k] if k % 2 else pages[k] for k in range(len(pages))]
    mixed[2] = pa.Table.from_batches(list(catalog.read_summaries_pages([bodies[2]])))
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
    assert isinstance(answer.payload["inventorySummaries"], catalog.SummariesPageBody)
    (read,) = catalog.read_summaries_pages([answer.payload["inventorySummaries"]])
    assert read.column("sellerSku").to_pylist() == ["KW-0000001", "KW-0000002"]
    assert answer.pagination == {"nextToken": "next"} and answer.next_token == "next"
    assert answer.headers["x-amzn-RateLimit-Limit"] == "2.0"
    last = _answer(200, body([]))
    assert "inventorySummaries" in last.payload and last.next_token is None


def test_the_client_leaves_errors_and_empty_answers_to_the_library():
    with pytest.raises(SellingApiRequestThrottledException):
        _answer(429, b'{"errors": [{"code": "QuotaExceeded", "message": "You exceeded your quota"}]}')
    with pytest.raises(SellingApiRequestThrottledException):  # even with a page's fields around it
        _answer(429, b'{"errors": [{"code": "QuotaExceeded"}], "payload": {"inventorySummaries": []}}')
    assert _answer(503, b"").payload == {}  # the empty answers SpApiCaller retries
    assert _answer(200, b"").payload == {}


@pytest.mark.parametrize(
    "errors",
    [
        [{"code": "InternalFailure", "message": "We encountered an internal error."}],
        [{"code": 500, "details": {"retry": True}}],  # a shape the page schema refuses: read as dicts
    ],
)
def test_a_2xx_answer_with_errors_beside_its_summaries_fails_the_frame_not_zero_stock(errors):
    pages = [body([summary(i) for i in range(k, k + 5)]) for k in range(0, 15, 5)]
    pages[1] = json.dumps({**json.loads(pages[1]), "errors": errors}).encode()
    bodies = [_answer(200, content).payload["inventorySummaries"] for content in pages]
    with pytest.raises(catalog.AnswerWithErrors, match="refused by Amazon") as failed:
        catalog.fba_inventory_frame_from_pages(bodies)
    assert failed.value.errors[0]["code"] == errors[0]["code"]
    # Empty errors fail nothing, as in the library.
    pages[1] = json.dumps({**json.loads(pages[1]), "errors": []}).encode()
    frame = catalog.fba_inventory_frame_from_pages([catalog.inventory_summaries_page(p).body for p in pages])
    assert len(frame) == 15


def test_bodies_read_on_the_reader_thread_keep_their_order_among_dict_pages(monkeypatch):
    # A read of 2 pages each, so several reads wait at once and a refused page falls between them.
    monkeypatch.setattr(catalog, "_PAGES_PER_READ", 2)
    pages = [[summary(i) for i in range(k, k + 5)] for k in range(0, 100, 5)]
    pages[7][2] = summary(37, totalQuantity="111")
    bodies = [catalog.inventory_summaries_page(body(p)).body for p in pages]
    mixed: list = [pages[k] if k in (4, 13) else bodies[k] for k in range(len(pages))]
    frame = catalog.fba_inventory_frame_from_pages(mixed)
    pd.testing.assert_frame_equal(frame, catalog.fba_inventory_frame_from_pages(pages))
    assert frame["seller_sku"].tolist() == [f"KW-{i:07d}" for i in range(100)]
    assert frame["total_quantity"][37] == 111


def test_a_failing_page_source_fails_the_frame_after_the_reads_in_flight():
    def pages():
        for k in range(0, 500, 5):
            yield catalog.inventory_summaries_page(body([summary(i) for i in range(k, k + 5)])).body
        raise RuntimeError("getInventorySummaries: 503 after all retries")

    with pytest.raises(RuntimeError, match="503 after all retries"):
        catalog.fba_inventory_frame_from_pages(pages())


def test_an_answer_with_errors_stops_the_intake_within_a_few_pages(monkeypatch):
    """At Amazon's pace a read does not wait for 400 pages: a page waits a short while at most, and a failed
    read stops the asking for more pages, as the library's failing call did."""
    monkeypatch.setattr(catalog, "_READ_WITHIN_SECONDS", 0.01)
    asked = []

    def pages():
        for k in range(100):
            asked.append(k)
            time.sleep(0.05)  # an SP-API call
            summaries = [summary(i) for i in range(5 * k, 5 * k + 5)]
            content = body(summaries)
            if k == 5:
                content = json.dumps(
                    {**json.loads(content), "errors": [{"code": "InternalFailure"}]}
                ).encode()
            yield catalog.inventory_summaries_page(content).body

    with pytest.raises(catalog.AnswerWithErrors, match="InternalFailure"):
        catalog.fba_inventory_frame_from_pages(pages())
    assert len(asked) <= 12  # not the 100 pages a read of 400 would have waited for


def test_one_refused_page_among_many_is_found_by_halves(monkeypatch):
    pages = [[summary(i) for i in range(k, k + 2)] for k in range(0, 64, 2)]
    pages[21][0] = summary(42, totalQuantity="7")
    bodies = [catalog.inventory_summaries_page(body(p)).body for p in pages]
    reads = []
    read = catalog._read_bodies
    monkeypatch.setattr(catalog, "_read_bodies", lambda b: reads.append(len(b)) or read(b))
    out = list(catalog.read_summaries_pages(bodies))
    assert pages[21] in out  # the refused page alone, as its dicts
    assert len(reads) <= 2 * 6  # halves down to the page, not a read per page
    frame = catalog.fba_inventory_frame_from_pages(bodies)
    assert frame["total_quantity"][42] == 7 and len(frame) == 64
