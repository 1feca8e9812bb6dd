"""From Amazon's listings, FBA inventory and catalog identifiers to stock per SKU and the enriched catalog.

Pure pandas: DataFrames in, DataFrames out, no I/O.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

OPTIPLY_NAME_LIMIT = 255
MAX_PRICE = 9_999_999.99
# What the document download puts where the report held bytes its charset cannot decode.
REPLACEMENT_CHARACTER = "\ufffd"
_REPLACEMENT_UTF8 = re.compile(re.escape(REPLACEMENT_CHARACTER.encode()))

FBA_COLUMNS = {
    "seller_sku": "string",
    "fn_sku": "string",
    "asin": "string",
    "condition": "string",
    "total_quantity": "int64",
    "fulfillable_quantity": "int64",
    # Units on their way into FBA, part of total_quantity (details of getInventorySummaries).
    "inbound_working_quantity": "int64",
    "inbound_shipped_quantity": "int64",
    "inbound_receiving_quantity": "int64",
}
INBOUND_COLUMNS = ("inbound_working_quantity", "inbound_shipped_quantity", "inbound_receiving_quantity")
_INBOUND_DETAILS = {
    "inbound_working_quantity": "inboundWorkingQuantity",
    "inbound_shipped_quantity": "inboundShippedQuantity",
    "inbound_receiving_quantity": "inboundReceivingQuantity",
}


# The fields of a getInventorySummaries summary the frame keeps, as Arrow reads them from the page's dicts.
_SUMMARY_FIELDS = {
    "seller_sku": ("sellerSku",),
    "fn_sku": ("fnSku",),
    "asin": ("asin",),
    "condition": ("condition",),
    "total_quantity": ("totalQuantity",),
    "fulfillable_quantity": ("inventoryDetails", "fulfillableQuantity"),
    **{column: ("inventoryDetails", field) for column, field in _INBOUND_DETAILS.items()},
}
_SUMMARY_TYPE = pa.struct(
    [
        *((field, pa.string()) for field in ("sellerSku", "fnSku", "asin", "condition")),
        ("totalQuantity", pa.int64()),
        (
            "inventoryDetails",
            pa.struct([(path[1], pa.int64()) for path in _SUMMARY_FIELDS.values() if len(path) == 2]),
        ),
    ]
)
# A page's summaries as `read_summaries_pages` reads them: the same fields and types whatever the page
# holds (a field no summary of the page has is a null column, not a missing one), so pages concatenate.
SUMMARY_SCHEMA = pa.schema(list(_SUMMARY_TYPE))
# The answer's fields the page reader keeps; any other (granularity, productName, reservedQuantity...) is
# skipped by the parser, never built.
_PAGE_PARSE = pj.ParseOptions(
    explicit_schema=pa.schema(
        [
            ("payload", pa.struct([("inventorySummaries", pa.list_(_SUMMARY_TYPE))])),
            ("pagination", pa.struct([("nextToken", pa.string())])),
            # Read, not searched for in the bytes (a scan of every body): the library fails a 2xx answer
            # carrying errors, and so does the frame (_read_bodies).
            (
                "errors",
                pa.list_(pa.struct([(field, pa.string()) for field in ("code", "message", "details")])),
            ),
        ]
    ),
    unexpected_field_behavior="ignore",
)
_STRING_TYPES = {pa.string(): pd.StringDtype()}
# Summaries converted together: Arrow's per-call cost spread over a few pages, and few dicts kept waiting.
_SUMMARIES_PER_BATCH = 1000
# Page bodies read by pyarrow at once (about 17 MB, 20,000 summaries): its cost per read (thread hand-offs,
# builders) is that of parsing a few pages, so one read per page would cost more than the json module.
_PAGES_PER_READ = 400
# Arrow pages flattened together: their columns are compact, so many pages at once.
_ARROW_SUMMARIES_PER_PART = 100_000
# Reads of page bodies that may wait for the frame at once, and how long a body waits for its read at most
# (see _summary_pages).
_READS_AHEAD = 2
_READ_WITHIN_SECONDS = 1.0


def fba_inventory_frame(summaries: list[dict]) -> pd.DataFrame:
    """getInventorySummaries answers as one row per summary (a SKU may have several: conditions, FNSKUs)."""
    return fba_inventory_frame_from_pages([summaries])


class AnswerWithErrors(ValueError):
    """A getInventorySummaries answer (2xx) that carries errors beside its summaries."""

    def __init__(self, errors: list) -> None:
        super().__init__(
            f"getInventorySummaries refused by Amazon (a 2xx answer with errors, not retried): {errors}"
        )
        self.errors = errors


@dataclass(frozen=True, slots=True)
class SummariesPageBody:
    """A getInventorySummaries answer's body as one JSON line, read into Arrow by the frame together with
    other pages' (`read_summaries_pages`): pyarrow's cost per read is that of parsing a few pages."""

    line: bytes


class SummariesPage(NamedTuple):
    body: SummariesPageBody
    next_token: str | None


# A key, with its value: inside a JSON string a quote is escaped, so no quote and colon follow a value there.
_NEXT_TOKEN = re.compile(rb'"nextToken"\s*:\s*("(?:[^"\\]|\\.)*")')


def inventory_summaries_page(content: bytes) -> SummariesPage | None:
    """A getInventorySummaries answer's body as it came, kept for the frame to read (no Python dict per
    summary), with its nextToken.

    None when the body is not such a page (an error, an empty answer): the caller decodes it as before.
    """
    # Only a key can be "inventorySummaries" in bare quotes. Errors beside the summaries are the frame's to
    # find: they are read with the page (read_summaries_pages), not searched for in every body here.
    if b'"inventorySummaries"' not in content:
        return None
    # A JSON string holds no raw newline: without the newlines between its tokens, the body is one JSON line
    # (one at its very end only ends that line).
    inner_newline = content.find(b"\n", 0, len(content) - 1) >= 0
    line = content.replace(b"\n", b" ") if inner_newline else content
    return SummariesPage(SummariesPageBody(line), _next_token(line))


def _next_token(line: bytes) -> str | None:
    # Found by bytes' fast search (from the end: pagination tends to follow the summaries); the pattern only
    # checks the place.
    at = line.rfind(b'"nextToken"')
    while at >= 0:
        if token := _NEXT_TOKEN.match(line, at):
            return json.loads(token[1]) or None
        at = line.rfind(b'"nextToken"', 0, at)
    return None


def read_summaries_pages(bodies: list[SummariesPageBody]) -> Iterator[pa.RecordBatch | list[dict]]:
    """Page bodies' summaries, in SUMMARY_SCHEMA, by one pyarrow read of them all. When a page holds a
    value the schema refuses (a quantity "5" or 2.5), that page alone comes as its dicts: the frame
    treats it as it always did.

    A page whose answer carries errors beside its summaries fails with them (AnswerWithErrors), as the
    SP-API library fails such an answer: never read as a page that had no stock in it.
    """
    try:
        yield _read_bodies(bodies)
        return
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        if len(bodies) == 1:
            try:
                answer = json.loads(bodies[0].line)
                if isinstance(answer, dict) and answer.get("errors"):
                    raise AnswerWithErrors(answer["errors"])
                summaries = answer["payload"]["inventorySummaries"]
            except AnswerWithErrors:
                raise
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(
                    f"a getInventorySummaries answer is no page of summaries ({type(exc).__name__}: {exc}): "
                    f"{bodies[0].line[:200]!r}"
                ) from None
            yield summaries or []
            return
    half = len(bodies) // 2  # which page it was: each half read apart, down to the page
    yield from read_summaries_pages(bodies[:half])
    yield from read_summaries_pages(bodies[half:])


def _read_bodies(bodies: list[SummariesPageBody]) -> pa.RecordBatch:
    lines = b"\n".join(body.line for body in bodies)
    # A few blocks, parsed on every core; a block holds at least one whole page (a line never straddles two).
    block_size = max(len(lines) // 4, max(len(body.line) for body in bodies)) + 1
    table = pj.read_json(
        pa.BufferReader(lines),
        read_options=pj.ReadOptions(use_threads=True, block_size=block_size),
        parse_options=_PAGE_PARSE,
    )
    errors = table.column("errors").combine_chunks()
    # "errors": [] fails nothing, as in the library.
    carries_errors = pc.greater(pc.list_value_length(errors), 0)
    if pc.any(carries_errors).as_py():
        raise AnswerWithErrors(next(e for e in errors.to_pylist() if e))
    summaries = table.column("payload").combine_chunks().field("inventorySummaries")
    return pa.RecordBatch.from_struct_array(summaries.flatten())


def fba_inventory_frame_from_pages(
    pages: Iterable[list[dict] | SummariesPageBody | pa.RecordBatch],
) -> pd.DataFrame:
    """The same from pages as they arrive: answers' bodies (`inventory_summaries_page`), Arrow columns in
    SUMMARY_SCHEMA or lists of dicts; a few pages at a time become the frame's columns (no loop over rows
    in Python); a missing quantity is 0."""
    parts = list(_frame_parts(_summary_pages(pages)))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in FBA_COLUMNS.items()})
    table = pa.concat_tables(parts)
    del parts
    frame = pd.DataFrame(
        {c: table[c].to_pandas(types_mapper=_STRING_TYPES.get).astype(t) for c, t in FBA_COLUMNS.items()}
    )
    del table
    pa.default_memory_pool().release_unused()  # the batches' memory, kept by the pool otherwise
    return frame


def _summary_pages(
    pages: Iterable[list[dict] | SummariesPageBody | pa.RecordBatch],
) -> Iterator[list[dict] | pa.RecordBatch | pa.Table]:
    """The pages in their order, the bodies read on a thread of their own: pyarrow lets go of the GIL while
    it reads, so the next pages keep coming in (the SP-API calls, the client's page reader) meanwhile.

    A read takes _PAGES_PER_READ bodies, or fewer once the first has waited _READ_WITHIN_SECONDS (at
    Amazon's 2 pages a second a page is read within a few seconds). A finished read that failed (an answer
    with errors) stops the intake at the next page, so few more pages are asked for. At most _READS_AHEAD
    reads wait, so a slow reader holds up the intake, not memory."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fba-pages") as reader:
        reads: deque[Future] = deque()
        bodies: list[SummariesPageBody] = []
        first_waiting = 0.0

        def submit_read() -> None:
            nonlocal bodies
            if bodies:
                reads.append(reader.submit(lambda waiting: list(read_summaries_pages(waiting)), bodies))
                bodies = []

        def read_until(waiting: int) -> Iterator[list[dict] | pa.RecordBatch]:
            while len(reads) > waiting or (reads and reads[0].done()):
                yield from reads.popleft().result()  # a failed read raises here

        for page in pages:
            if isinstance(page, SummariesPageBody):
                if not bodies:
                    first_waiting = time.monotonic()
                bodies.append(page)
                if len(bodies) >= _PAGES_PER_READ or time.monotonic() - first_waiting >= _READ_WITHIN_SECONDS:
                    submit_read()
                yield from read_until(_READS_AHEAD)
                continue
            submit_read()
            yield from read_until(0)
            yield page
        submit_read()
        yield from read_until(0)


def _frame_parts(pages: Iterable[list[dict] | pa.RecordBatch | pa.Table]) -> Iterator[pa.Table]:
    """The frame's columns, a few pages at a time, in the pages' order (Arrow and dict pages may mix: a
    page the Arrow schema refused comes as dicts)."""
    waiting_dicts: list[dict] = []
    waiting_batches: list[pa.RecordBatch] = []
    waiting_rows = 0
    for page in pages:
        if isinstance(page, (pa.RecordBatch, pa.Table)):
            if waiting_dicts:
                yield pa.Table.from_batches([_summaries_batch(waiting_dicts)])
                waiting_dicts = []
            waiting_batches += page.to_batches() if isinstance(page, pa.Table) else [page]
            waiting_rows += page.num_rows
            if waiting_rows >= _ARROW_SUMMARIES_PER_PART:
                yield _summary_columns(waiting_batches)
                waiting_batches, waiting_rows = [], 0
        else:
            if waiting_batches:
                yield _summary_columns(waiting_batches)
                waiting_batches, waiting_rows = [], 0
            waiting_dicts += page
            if len(waiting_dicts) >= _SUMMARIES_PER_BATCH:
                yield pa.Table.from_batches([_summaries_batch(waiting_dicts)])
                waiting_dicts = []
    if waiting_dicts:
        yield pa.Table.from_batches([_summaries_batch(waiting_dicts)])
    if waiting_batches:
        yield _summary_columns(waiting_batches)


def _summary_columns(batches: list[pa.RecordBatch]) -> pa.Table:
    """Summaries in SUMMARY_SCHEMA as the frame's columns: the details' struct fields flattened."""
    flat = pa.Table.from_batches(batches, schema=SUMMARY_SCHEMA).combine_chunks().flatten()
    columns = {}
    for column, path in _SUMMARY_FIELDS.items():
        values = flat[".".join(path)]
        columns[column] = values.fill_null(0) if FBA_COLUMNS[column] == "int64" else values
    return pa.table(columns)


def _summaries_batch(summaries: list[dict]) -> pa.RecordBatch:
    try:
        rows = pa.array(summaries, type=_SUMMARY_TYPE).flatten()
        fields = dict(zip(_SUMMARY_TYPE.names, rows, strict=True))
        details = dict(
            zip(
                _SUMMARY_TYPE["inventoryDetails"].type.names,
                fields["inventoryDetails"].flatten(),
                strict=True,
            )
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a value Arrow will not take as is (a quantity "5", 2.5)
        return _summaries_batch_by_row(summaries)
    columns = {}
    for column, path in _SUMMARY_FIELDS.items():
        values = fields[path[0]] if len(path) == 1 else details[path[1]]
        columns[column] = values.fill_null(0) if FBA_COLUMNS[column] == "int64" else values
    return pa.RecordBatch.from_pydict(columns)


def _summaries_batch_by_row(summaries: list[dict]) -> pa.RecordBatch:
    """The same, a value at a time: what Python's int() and str() make of values Arrow refuses."""

    def value(summary: dict, path: tuple[str, ...]) -> object:
        found = summary.get(path[0]) if len(path) == 1 else (summary.get(path[0]) or {}).get(path[1])
        return int(found or 0) if len(path) == 2 or path[0] == "totalQuantity" else found

    columns = {}
    for column, path in _SUMMARY_FIELDS.items():
        values = [value(s, path) for s in summaries]
        if FBA_COLUMNS[column] == "string":
            values = [None if v is None else str(v) for v in values]
        columns[column] = pa.array(
            values, type=pa.string() if FBA_COLUMNS[column] == "string" else pa.int64()
        )
    return pa.RecordBatch.from_pydict(columns)


def catalog_identifiers_frame(items: list[dict], marketplace_id: str) -> pd.DataFrame:
    """searchCatalogItems items as one row per ASIN: its EANs (comma-joined, Amazon's order), UPCs and name."""
    rows = []
    for item in items:
        eans: list[str] = []
        upcs: list[str] = []
        for group in item.get("identifiers") or []:
            if group.get("marketplaceId") != marketplace_id:
                continue
            for ident in group.get("identifiers") or []:
                if ident.get("identifierType") == "EAN":
                    eans.append(ident["identifier"])
                elif ident.get("identifierType") == "UPC":
                    upcs.append(ident["identifier"])
        names = [
            s.get("itemName") for s in item.get("summaries") or [] if s.get("marketplaceId") == marketplace_id
        ]
        rows.append(
            {
                "asin": item["asin"],
                "ean_codes": ",".join(eans),
                "upc_codes": ",".join(upcs),
                "item_name": names[0] if names else "",
            }
        )
    return pd.DataFrame(rows, columns=["asin", "ean_codes", "upc_codes", "item_name"]).astype("string")


# A plain decimal number, which nearly every amount and quantity is: Arrow's cast reads it as pandas does.
_PLAIN_NUMBER = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"


def to_number(values: pd.Series) -> pd.Series:
    """pandas.to_numeric(values, errors="coerce") as Float64, a column at a time: plain decimal numbers by
    Arrow, the rest ("1_000", "NaN", "12,99") by pandas as before."""
    text = values.astype("string")
    # Most columns hold plain numbers only: one cast reads them all. Arrow's cast takes what the pattern
    # takes and the non-finite spellings too ("inf", "NaN"); those rows are left to pandas.
    try:
        cast = pc.cast(pa.array(text.array, type=pa.large_string()), pa.float64())
    except pa.ArrowInvalid:
        return _to_number_by_pattern(text)
    numbers = np.array(cast.to_numpy(zero_copy_only=False))  # nulls as NaN; a copy, written below
    missing = np.array(cast.is_null().to_numpy(zero_copy_only=False))
    _by_pandas(text, ~missing & ~np.isfinite(numbers), numbers, missing)
    return pd.Series(pd.arrays.FloatingArray(numbers, missing), index=values.index)


def _to_number_by_pattern(text: pd.Series) -> pd.Series:
    plain = text.str.fullmatch(_PLAIN_NUMBER).fillna(False).to_numpy(dtype=bool)
    numbers = np.full(len(text), np.nan)
    missing = ~plain
    if plain.any():
        as_arrow = pa.array(text[plain], type=pa.large_string())
        numbers[plain] = pc.cast(as_arrow, pa.float64()).to_numpy(zero_copy_only=False)
    _by_pandas(text, ~plain & text.notna().to_numpy(dtype=bool), numbers, missing)
    return pd.Series(pd.arrays.FloatingArray(numbers, missing), index=text.index)


def _by_pandas(text: pd.Series, rows: np.ndarray, numbers: np.ndarray, missing: np.ndarray) -> None:
    """`rows` of `text` read by pandas.to_numeric(errors="coerce") into `numbers` and `missing`."""
    if rows.any():
        parsed = pd.to_numeric(text[rows], errors="coerce").astype("Float64")
        numbers[rows] = parsed.to_numpy(dtype="float64", na_value=np.nan)
        missing[rows] = parsed.isna().to_numpy(dtype=bool)


def parse_amount(values: pd.Series) -> pd.Series:
    """Amazon amounts, with a decimal point or whole (yen); anything else (12,99, N/A) becomes NaN to flag.

    Always floats: a report of whole-yen prices alone would otherwise parse as integers.
    """
    stripped = values.str.strip()
    return to_number(stripped.where(stripped != ""))


def parse_quantity(values: pd.Series) -> pd.Series:
    """Listing quantities: blank (FBA listings) is 0; non-integers, negatives and infinity become NaN."""
    stripped = values.str.strip()
    numbers = to_number(stripped.where(stripped != "", "0"))
    valid = numbers.notna() & (numbers >= 0) & (numbers == np.floor(numbers)) & (numbers < np.inf)
    return numbers.where(valid)


def first_positions(keys: pd.Series, lookup: pd.Series) -> np.ndarray:
    """For each key, the position of its first occurrence in `lookup`, -1 where there is none: a left join
    on `lookup`'s first rows by key, done by Arrow's hash lookup (no merge, no dict built in Python)."""
    found = pc.index_in(
        pa.array(keys.astype("string"), type=pa.large_string()),
        value_set=pa.array(lookup.astype("string"), type=pa.large_string()),
    )
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.intp)


def first_occurrences(keys: pd.Series) -> np.ndarray:
    """True at each key's first row (missing keys count as one key), by one Arrow dictionary of the keys (no
    Python string per row, as drop_duplicates would make)."""
    codes = _arrow_strings(keys).dictionary_encode(null_encoding="encode").indices.to_numpy()
    # The codes number the keys in the order they first appear: a first row's code is above all before it.
    is_first = np.ones(len(codes), dtype=bool)
    is_first[1:] = codes[1:] > np.maximum.accumulate(codes)[:-1]
    return is_first


def joined(column: pd.Series, positions: np.ndarray, index: pd.Index) -> pd.Series:
    """`column`'s values at `positions` (from first_positions), missing where -1, on the joining rows' index."""
    return pd.Series(pd.api.extensions.take(column.array, positions, allow_fill=True), index=index)


def warehouse_stock(
    listings: pd.DataFrame,
    fba_inventory: pd.DataFrame,
    stock_source: str = "fba",
    counts_pooled_fba: bool = True,
) -> pd.DataFrame:
    """Stock per SKU: FBA totalQuantity summed over the SKU's rows, or the listing quantity.

    The seed's rule: with the FBA source, a SKU whose FBA stock is 0 (or that has no FBA rows, a merchant
    listing) falls back to the listing's quantity. With the `listing` source only the listing quantity counts.

    Marketplaces sharing one FBA pool (Pan-European FBA) all see the pool's units. Only one of them carries
    them (`counts_pooled_fba`); the others keep their listing quantity, so no unit is counted twice.

    One row per listed SKU, in the order the listings first name them.
    """
    if stock_source not in ("fba", "listing"):
        raise ValueError(f"stock_source must be 'fba' or 'listing', not {stock_source!r}")
    # One dictionary of both sides' SKUs, the listings' first: a listed SKU's code is its place in the
    # order the listings first name it (0..listed-1), and a SKU's FBA rows carry the same code. So the
    # listings' maximum and the FBA sum are per code, and the join is by position (one hash of each SKU).
    listing_skus = _arrow_strings(listings["seller-sku"])
    encoded = pa.concat_arrays(
        [listing_skus, _arrow_strings(fba_inventory["seller_sku"])]
    ).dictionary_encode()
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.intp)  # -1: no SKU
    listing_codes, fba_codes = codes[: len(listing_skus)], codes[len(listing_skus) :]
    listed = int(listing_codes.max()) + 1 if len(listing_codes) else 0
    quantity = parse_quantity(listings["quantity"]).to_numpy(dtype="float64", na_value=np.nan)
    if listed == len(listing_codes) and (listing_codes >= 0).all():  # each SKU listed once: nothing to fold
        most = quantity
    else:  # a SKU listed twice has the higher quantity; an unparsable one counts only alone (NaN)
        most = np.full(listed, np.nan)
        named = listing_codes >= 0
        np.fmax.at(most, listing_codes[named], quantity[named])
    in_fba = (fba_codes >= 0) & (fba_codes < listed)  # FBA rows of SKUs not listed here do not count
    fba_units = np.bincount(
        fba_codes[in_fba],
        weights=fba_inventory["total_quantity"].to_numpy(dtype="float64")[in_fba],
        minlength=listed,
    )
    stock = pd.DataFrame(
        {
            "sku": pd.arrays.ArrowStringArray(encoded.dictionary[:listed]),
            "fba_quantity": fba_units.round().astype("int64"),
            "listing_quantity": pd.arrays.FloatingArray(most, np.isnan(most)),
        }
    )
    if not counts_pooled_fba:
        stock["fba_quantity"] = 0
    if stock_source == "fba":
        use_fba = stock["fba_quantity"] > 0
        stock["stock_level"] = stock["fba_quantity"].where(use_fba, stock["listing_quantity"])
        stock["stock_source"] = _labels(use_fba, "fba", "listing")
    else:
        stock["stock_level"] = stock["listing_quantity"]
        stock["stock_source"] = "listing"
    stock["listing_quantity"] = stock["listing_quantity"].astype("Int64")
    stock["stock_level"] = stock["stock_level"].astype("Int64")
    stock["sku"] = stock["sku"].astype("string")
    stock["stock_source"] = stock["stock_source"].astype("string")
    return stock[["sku", "fba_quantity", "listing_quantity", "stock_level", "stock_source"]]


def _arrow_strings(values: pd.Series) -> pa.Array:
    """A string column as one Arrow array (a copy only when pandas holds it in several chunks)."""
    strings = pa.array(values.astype("string").array, type=pa.large_string())
    return strings.combine_chunks() if isinstance(strings, pa.ChunkedArray) else strings


def _labels(mask: pd.Series, where_true: str, where_false: str) -> pd.Series:
    """A string column of two labels by Arrow (numpy.where would make a Python string per row)."""
    chosen = pc.if_else(pa.array(mask.to_numpy(dtype=bool)), where_true, where_false)
    return pd.Series(pd.arrays.ArrowStringArray(chosen.cast(pa.large_string())), index=mask.index)


def fba_on_hand(fba_inventory: pd.DataFrame) -> pd.DataFrame:
    """FBA rows whose total_quantity leaves out the units still on their way into FBA (working, shipped,
    receiving): what warehouse_stock counts unless inbound units are counted too."""
    out = fba_inventory.copy()
    inbound = out[list(INBOUND_COLUMNS)].sum(axis=1)
    out["total_quantity"] = (out["total_quantity"] - inbound).clip(lower=0).astype("int64")
    return out


def with_inbound_units(
    stock: pd.DataFrame, fba_inventory: pd.DataFrame, counts_pooled_fba: bool = True
) -> pd.DataFrame:
    """warehouse_stock with each SKU's inbound FBA units beside its stock (summed over its FBA rows).

    Reported whether or not they are counted in stock_level; 0 where the marketplace does not carry its
    FBA pool, like fba_quantity.
    """
    inbound = fba_inventory.groupby("seller_sku", as_index=False)[list(INBOUND_COLUMNS)].sum()
    out = stock.copy()
    at = first_positions(out["sku"], inbound["seller_sku"])
    for column in INBOUND_COLUMNS:
        units = joined(inbound[column], at, out.index)
        out[column] = units.fillna(0).astype("int64") * int(counts_pooled_fba)
    return out


def with_awd_units(stock: pd.DataFrame, awd_units: pd.DataFrame | None) -> pd.DataFrame:
    """warehouse_stock with each SKU's AWD units (`awd_units`: sku, awd_quantity) added to stock_level.

    None (not counted, or the AWD read failed) adds nothing: awd_quantity 0, stock_level as it was.
    """
    per_sku = {} if awd_units is None else dict(zip(awd_units["sku"], awd_units["awd_quantity"], strict=True))
    out = stock.copy()
    out["awd_quantity"] = out["sku"].map(per_sku).fillna(0).astype("int64")
    out["stock_level"] = (out["stock_level"] + out["awd_quantity"]).astype("Int64")
    return out


def first_code(codes: pd.Series) -> pd.Series:
    # One regular expression over the column (Arrow's), not a list per row.
    first = codes.fillna("").str.replace(r"(?s),.*", "", regex=True)
    return first.where(first != "").astype("string")


def enriched_catalog(
    listings: pd.DataFrame, catalog_identifiers: pd.DataFrame, stock: pd.DataFrame, marketplace: str
) -> pd.DataFrame:
    """One row per listing with what Optiply needs, and a `problem` for rows that cannot be delivered."""
    out = pd.DataFrame(
        {
            "sku": listings["seller-sku"].str.strip().astype("string"),
            "asin": listings["asin1"].str.strip().astype("string"),
            "name": listings["item-name"].str.strip().astype("string"),
            "price": parse_amount(listings["price"]).round(2),
            "raw_price": listings["price"],
            "raw_quantity": listings["quantity"],
            "listing_status": listings["status"].astype("string"),
            "fulfillment_channel": listings["fulfillment-channel"].astype("string"),
        }
    )
    out = out.reset_index(drop=True)  # numbered from 0, as a merge left it
    # Left joins on a key the other side holds once (the identifiers' first row per ASIN). The two lookups
    # are apart and Arrow's lets go of the GIL, so the ASINs' runs on a thread beside the SKUs'.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="asin-lookup") as beside:
        asin_lookup = beside.submit(first_positions, out["asin"], catalog_identifiers["asin"])
        at = first_positions(out["sku"], stock["sku"])
        by_asin = asin_lookup.result()
    out["ean_codes"] = joined(catalog_identifiers["ean_codes"], by_asin, out.index)
    out["ean_code"] = first_code(out["ean_codes"])
    out["stock_level"] = joined(stock["stock_level"], at, out.index)
    out["stock_source"] = joined(stock["stock_source"], at, out.index)
    out["name_truncated"] = out["name"].str.len() > OPTIPLY_NAME_LIMIT
    out["name"] = out["name"].str.slice(0, OPTIPLY_NAME_LIMIT)
    out["marketplace"] = marketplace
    out["problem"] = _listing_problems(out)
    out = out.drop(columns=["raw_price", "raw_quantity", "ean_codes"])
    return out.astype({"marketplace": "string", "problem": "string"})


def _listing_problems(rows: pd.DataFrame) -> pd.Series:
    problem = pd.Series(pd.NA, index=rows.index, dtype="string")

    def flag(mask: pd.Series, reason: str | Callable[[pd.Series], pd.Series]) -> None:
        """`reason`: the text, or what makes it from the flagged rows (built for those rows only)."""
        nonlocal problem
        mask = mask.fillna(False) & problem.isna()
        if callable(reason):
            reason = reason(mask) if mask.any() else ""
        problem = problem.mask(mask, reason)

    def quoting(prefix: str, column: str) -> Callable[[pd.Series], pd.Series]:
        return lambda mask: prefix + rows.loc[mask, column].fillna("").map(repr)

    flag(rows["sku"].fillna("") == "", "missing seller-sku")
    flag(rows["asin"].fillna("") == "", "missing asin1")
    # A garbled SKU or ASIN would be another product, and a garbled name would overwrite a good one in
    # Optiply: rows with undecodable bytes are set aside rather than delivered with U+FFFD in them.
    for column, field in (("sku", "seller-sku"), ("asin", "asin1"), ("name", "item-name")):
        if _may_hold_replacement_character(rows[column]):
            flag(
                rows[column].str.contains(REPLACEMENT_CHARACTER, regex=False), f"undecodable bytes in {field}"
            )
    flag(rows["name"].fillna("") == "", "missing item-name")
    flag(rows["price"].isna(), quoting("unparsable price ", "raw_price"))
    flag((rows["price"] < 0) | (rows["price"] > MAX_PRICE), "price out of Optiply's range")
    # The listing quantity is checked even where FBA stock is used instead: a row this wrong is not trusted.
    flag(
        parse_quantity(rows["raw_quantity"].fillna("")).isna(),
        quoting("unparsable or negative quantity ", "raw_quantity"),
    )
    flag(rows["stock_level"].isna(), "no stock level")
    return problem


def _may_hold_replacement_character(values: pd.Series) -> bool:
    """False when no value holds REPLACEMENT_CHARACTER: one search of the column's UTF-8 buffers (which may
    hold more than the column's values, never less) instead of a match per row."""
    strings = pa.array(values.astype("string").array, type=pa.large_string())
    chunks = strings.chunks if isinstance(strings, pa.ChunkedArray) else [strings]
    return any(
        chunk.buffers()[2] is not None and _REPLACEMENT_UTF8.search(memoryview(chunk.buffers()[2]))
        for chunk in chunks
    )


def bad_row_share(rows_set_aside: int, malformed_rows: int, parsed_rows: int) -> float:
    """The share of a report's data rows that cannot be delivered (malformed ones included); 1.0 when empty."""
    total = parsed_rows + malformed_rows
    return (rows_set_aside + malformed_rows) / total if total else 1.0
