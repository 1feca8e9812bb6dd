"""Parsing Amazon flat-file reports: tab-separated text without quoting, every value kept as a string.

Amazon never quotes fields (a name may contain a double quote), so a CSV reader with default quoting
corrupts rows. Rows with the wrong number of fields are set aside with their line number, not dropped.
Localized headers (Amazon JP's, say) are renamed to English through `report_headers`.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict, deque

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pv

from amazon_optiply.transforms.report_headers import read_header

LISTINGS_REQUIRED = ("item-name", "seller-sku", "price", "quantity", "asin1", "fulfillment-channel", "status")
ORDERS_REQUIRED = (
    "amazon-order-id",
    "purchase-date",
    "last-updated-date",
    "order-status",
    "sku",
    "asin",
    "quantity",
    "currency",
    "item-price",
    "shipping-price",
    "gift-wrap-price",
    "item-promotion-discount",
    "ship-promotion-discount",
)


class ReportFormatError(ValueError):
    """The report cannot be read as the report type it claims to be."""


def parse_flat_file(
    text: str, report_type: str, required: tuple[str, ...]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse a flat-file report into (rows, malformed rows), columns named in English.

    Extra or reordered columns are accepted; a header whose required columns cannot all be placed is not.
    """
    if not text or text.isspace():  # (strip() would copy the whole document)
        return pd.DataFrame({c: pd.Series(dtype="string") for c in required}), _no_malformed()
    malformed: list[dict] = []

    def set_aside(row: pv.InvalidRow) -> str:
        malformed.append(
            {
                "line": row.number,
                "reason": f"expected {row.expected_columns} fields, found {row.actual_columns}",
                "text": row.text or "",
            }
        )
        return "skip"

    header = _header_line(text)
    read = read_header(report_type, header)
    missing = [c for c in required if c not in read.columns]
    if missing:
        unplaced = (
            f"columns no known header set places: {read.unplaced}"
            if read.unplaced
            else f"the header has {header}"
        )
        raise ReportFormatError(
            f"{report_type}: required column(s) {missing} missing (header set {read.header_set}); " + unplaced
        )
    twice = sorted({c for c in required if read.columns.count(c) > 1})
    if twice:
        raise ReportFormatError(
            f"{report_type}: column(s) {twice} named twice (header set {read.header_set}): {header}"
        )
    table = pv.read_csv(
        io.BufferedReader(_Utf8Reader(text), buffer_size=_UTF8_BUFFER_BYTES),
        parse_options=pv.ParseOptions(delimiter="\t", quote_char=False, invalid_row_handler=set_aside),
        # large_string: what pandas' string columns hold, so none is copied to widen its offsets.
        convert_options=pv.ConvertOptions(
            column_types={name: pa.large_string() for name in header}, strings_can_be_null=False
        ),
        read_options=pv.ReadOptions(block_size=1 << 22),
    )
    frame = table.rename_columns(read.columns).to_pandas(
        types_mapper=lambda t: pd.StringDtype() if t == pa.large_string() else None
    )
    del table
    pa.default_memory_pool().release_unused()  # the parser's working memory, kept by the pool otherwise
    if not malformed:
        return frame, _no_malformed()
    _number_lines(text, malformed)
    set_aside_rows = pd.DataFrame(malformed, columns=["line", "reason", "text"]).astype({"line": "Int64"})
    set_aside_rows["text"] = set_aside_rows["text"].str.slice(0, 500)
    return frame, set_aside_rows.sort_values("line", kind="stable", na_position="last").reset_index(drop=True)


# A line and its ending, as pyarrow's reader ends rows (the last line may have none).
_LINE = re.compile(r"([^\r\n]*)(?:\r\n|\n|\r|\Z)")


def _number_lines(text: str, malformed: list[dict]) -> None:
    """Each malformed row's line in the document (the header is line 1). pyarrow's reader knows a bad row's
    text but, parsing blocks in parallel, not its line: the document's lines are read once (one at a time,
    ended as pyarrow ends them: \\n, \\r\\n or \\r) and each bad text given its lines in order. Only a
    document with malformed rows pays for it."""
    unnumbered: dict[str, deque[dict]] = defaultdict(deque)
    for row in malformed:
        if row["line"] is None:
            unnumbered[row["text"]].append(row)
    for number, line in enumerate(_LINE.finditer(text), start=1):
        if not unnumbered:
            return
        rows = unnumbered.get(line[1])
        if rows:
            rows.popleft()["line"] = number
            if not rows:
                del unnumbered[line[1]]


# Characters encoded at a time for the CSV reader, and the bytes its buffer holds: a quarter of its 4 MiB
# block or less even at 3 bytes a character (Japanese).
_UTF8_PIECE = 1 << 20
_UTF8_BUFFER_BYTES = 1 << 20


class _Utf8Reader(io.RawIOBase):
    """A document's text as UTF-8, encoded a piece at a time as pyarrow's reader asks for it: its reads run on
    an I/O thread while its other threads parse the blocks before, so the encoding overlaps the parsing,
    and the whole document is never held twice."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text, self._next_char = text, 0
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self._pending:
            if self._next_char >= len(self._text):
                return 0
            piece = self._text[self._next_char : self._next_char + _UTF8_PIECE]
            self._next_char += len(piece)
            self._pending = memoryview(piece.encode("utf-8"))  # a character at a time: any cut is whole
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def header_set(text: str, report_type: str) -> str:
    """Which known header set (`en`, `ja_JP`, ...) a report's header line is written in."""
    return read_header(report_type, _header_line(text)).header_set


def _header_line(text: str) -> list[str]:
    end = text.find("\n")  # a slice of the first line, not a split copying the whole document
    return text[: end if end >= 0 else len(text)].rstrip("\r").split("\t")


def _no_malformed() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "line": pd.Series(dtype="Int64"),
            "reason": pd.Series(dtype="string"),
            "text": pd.Series(dtype="string"),
        }
    )
