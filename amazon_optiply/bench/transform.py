"""Section 4: from the gzip documents to the Optiply payload frames, pandera validation included.

The documents: GET_MERCHANT_LISTINGS_ALL_DATA rendered by the sandbox's own renderer
(`report_documents.render_listings`, `encode_document`) from a synthesized listings frame (a SellerWorld of
1M SKUs takes too long to generate), the FBA rows as getInventorySummaries JSON pages of 50 in the
sandbox's own shape (`sandbox.amazon._summary`), one page a line, and the catalog identifiers as a gzip
TSV (what the state database's cache holds), all written by a subprocess of their own. The measured part
runs in a fresh subprocess, with the same transforms and pandera models the assets use; a first sync's
plan (nothing delivered yet). Peak RSS is that subprocess's VmHWM (its ru_maxrss is reported too). The floor: pyarrow reading the same gzip files in the same subprocess
afterwards (pyarrow.csv for the TSVs, pyarrow.json for the pages).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

MARKETPLACE = "DE"
PAGE_SIZE = 50
TARGET_RATIO = 2.0
TARGET_RSS_MB = 1536
LISTINGS_FILE, FBA_FILE, IDENTIFIERS_FILE = "listings.tsv.gz", "fba_pages.jsonl.gz", "identifiers.tsv.gz"


# ---- documents ------------------------------------------------------------------------------------------
def synthesize_listings(n: int, seed: int = 23) -> pd.DataFrame:
    """A listings frame shaped like SellerWorld's: names with non-Latin-1 characters, FBA and MFN, 5% inactive."""
    from amazon_optiply.sandbox.seller import _LONG_TAIL, _WORDS

    rng = np.random.default_rng(seed)
    i = pd.Series(np.arange(n)).astype(str).str.zfill(7)

    def pick(words: list[str]) -> pd.Series:
        return pd.Series(np.array(words, dtype=object)[rng.integers(0, len(words), n)])

    name = pick(_WORDS["brand"]) + " " + pick(_WORDS["adj"]) + " " + pick(_WORDS["noun"])
    name = name.where(rng.random(n) >= 0.3, name + " " + pick(_WORDS["extra"])) + " Nr. " + i
    name = name.where(rng.random(n) >= 0.02, name + _LONG_TAIL * 2)
    kind = rng.random(n)
    ean = "40" + i + "0000"
    eans = [
        [e] if k < 0.70 else [e, "50" + e[2:]] if k < 0.75 else [] for e, k in zip(ean, kind, strict=True)
    ]
    afn = rng.random(n) < 0.6
    return pd.DataFrame(
        {
            "sku": "KW-" + i,
            "asin": "B0" + i + "X",
            "name": name,
            "listing_id": "0" + i + "00X",
            "price": np.round(rng.uniform(2, 400, n), 2),
            "quantity": np.where(afn, -1, rng.integers(0, 200, n)),
            "fulfillment_channel": np.where(afn, "AMAZON_EU", "DEFAULT"),
            "status": np.where(rng.random(n) < 0.05, "Inactive", "Active"),
            "open_date": "2021-03-04 05:06:07 MET",
            "eans": eans,
            "upc": np.where((kind >= 0.75) & (kind < 0.85), "0" + i + "1234", ""),
        }
    )


def synthesize_fba(listings: pd.DataFrame, n: int, seed: int = 29) -> pd.DataFrame:
    """n FBA rows: one per SKU from the first, and a second condition for one SKU in twenty."""
    rng = np.random.default_rng(seed)
    second = n // 20
    rows = pd.concat([listings.head(n - second), listings.head(second)], ignore_index=True)
    zeros = np.zeros(n, dtype=int)
    return pd.DataFrame(
        {
            "sku": rows["sku"],
            "fnsku": [f"X00{k:07d}" for k in range(n)],
            "asin": rows["asin"],
            "name": rows["name"],
            "condition": np.where(np.arange(n) < n - second, "NewItem", "UsedLikeNew"),
            "fulfillable": rng.integers(0, 500, n),
            "inbound_working": zeros,
            "inbound_shipped": rng.integers(0, 20, n) * (rng.random(n) < 0.1),
            "inbound_receiving": zeros,
            "reserved": rng.integers(0, 5, n),
            "researching": zeros,
            "unfulfillable": rng.integers(0, 3, n) * (rng.random(n) < 0.1),
            "last_updated": pd.Timestamp("2026-01-01", tz="UTC"),
        }
    )


def write_documents(directory: Path, n: int) -> dict:
    from amazon_optiply.marketplaces import MARKETPLACES
    from amazon_optiply.sandbox.amazon import _summary
    from amazon_optiply.sandbox.report_documents import encode_document, render_listings

    began = time.perf_counter()
    market = MARKETPLACES[MARKETPLACE]
    listings = synthesize_listings(n)
    text = render_listings(SimpleNamespace(listings={MARKETPLACE: listings}), MARKETPLACE)
    (directory / LISTINGS_FILE).write_bytes(encode_document(text, market.charset))
    del text
    fba = synthesize_fba(listings, n)
    granularity = {"granularityType": "Marketplace", "granularityId": market.marketplace_id}
    with gzip.open(directory / FBA_FILE, "wt", encoding="utf-8", compresslevel=1) as out:
        rows = list(fba.itertuples(index=False))
        for start in range(0, len(rows), PAGE_SIZE):
            summaries = [_summary(r, True) for r in rows[start : start + PAGE_SIZE]]
            page = {"payload": {"granularity": granularity, "inventorySummaries": summaries}}
            if start + PAGE_SIZE < len(rows):
                page["pagination"] = {"nextToken": f"page-{start // PAGE_SIZE + 1}"}
            out.write(json.dumps(page) + "\n")
    identifiers = pd.DataFrame(
        {
            "asin": listings["asin"],
            "ean_codes": listings["eans"].map(",".join),
            "upc_codes": listings["upc"],
            "item_name": listings["name"],
        }
    )
    identifiers.to_csv(directory / IDENTIFIERS_FILE, sep="\t", index=False, quoting=3, compression="gzip")
    return {
        "listings_rows": n,
        "fba_rows": len(fba),
        "identifier_rows": len(identifiers),
        "charset": market.charset,
        "bytes": {f: (directory / f).stat().st_size for f in (LISTINGS_FILE, FBA_FILE, IDENTIFIERS_FILE)},
        "generation_seconds": round(time.perf_counter() - began, 1),
    }


# ---- the measured part (in a fresh subprocess) -------------------------------------------------------------
def _peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM, which execve resets. (ru_maxrss is kept across fork and execve on
    Linux, so in a child it starts at the parent's RSS at fork; it is reported too, as ru_maxrss_mb.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _ru_maxrss_mb()


def _ru_maxrss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _tsv_options(charset: str | None = None):
    import pyarrow.csv as pv

    read = pv.ReadOptions(block_size=1 << 24, **({"encoding": charset} if charset else {}))
    parse = pv.ParseOptions(delimiter="\t", quote_char=False)
    return read, parse


def measure(directory: Path) -> dict:
    """Documents -> payload frames, stage by stage, then the pyarrow floor on the same files."""
    import pyarrow as pa
    import pyarrow.csv as pv
    import pyarrow.json as pj

    from amazon_optiply import schemas
    from amazon_optiply.marketplaces import MARKETPLACES, python_codec
    from amazon_optiply.sandbox.report_documents import LISTINGS_ALL
    from amazon_optiply.transforms import catalog
    from amazon_optiply.transforms import optiply as payloads
    from amazon_optiply.transforms.reports import LISTINGS_REQUIRED, parse_flat_file

    market = MARKETPLACES[MARKETPLACE]
    rss_after_imports = _peak_rss_mb()
    stages: dict[str, float] = {}
    peaks: dict[str, float] = {}  # the peak RSS so far, after each stage: where the memory goes
    valid: dict[str, bool] = {}
    clock = time.perf_counter()

    def stage(name: str, frame: pd.DataFrame | None = None, model=None) -> None:
        nonlocal clock
        if model is not None:
            try:
                model.validate(frame, lazy=True, inplace=True)  # as schema_check does
                valid[name] = True
            except Exception:  # a failing model is reported, not fatal to the bench
                valid[name] = False
        now = time.perf_counter()
        stages[name] = round(now - clock, 2)
        peaks[name] = round(_peak_rss_mb(), 1)
        clock = now

    began = clock
    raw = gzip.decompress((directory / LISTINGS_FILE).read_bytes())
    text = raw.decode(python_codec(market.charset), errors="replace")  # as download_report_document does
    del raw
    listings, _malformed = parse_flat_file(text, LISTINGS_ALL, LISTINGS_REQUIRED)
    del text
    stage("listings_report", listings, schemas.ListingsReport)
    # As the fba_inventory asset does: each answer's bytes taken by the SP-API client's page reader
    # (catalog.inventory_summaries_page: its nextToken, no decoding), the frame reading the bodies with
    # pyarrow a few pages at a time. The client's part is timed apart as well.
    page_taking = 0.0

    def client_pages(lines):
        nonlocal page_taking
        for line in lines:
            began_taking = time.perf_counter()
            page = catalog.inventory_summaries_page(line)
            page_taking += time.perf_counter() - began_taking
            if page is None:
                raise RuntimeError("an FBA page the client's page reader refused")
            yield page.body

    # The pages as the network would hand them over: a line at a time, from a buffer of 1 MiB (gzip's own
    # 8 KiB one costs a decompress call per 8 KiB, which no answer from Amazon would).
    with (
        open(directory / FBA_FILE, "rb") as compressed,
        io.BufferedReader(gzip.GzipFile(fileobj=compressed), buffer_size=1 << 20) as pages,
    ):
        fba = catalog.fba_inventory_frame_from_pages(client_pages(pages))
    stage("fba_inventory", fba, schemas.FbaInventory)
    read, parse = _tsv_options()
    table = pv.read_csv(
        directory / IDENTIFIERS_FILE,
        read_options=read,
        parse_options=parse,
        # large_string: pandas' string columns hold it, so no copy widens the offsets.
        convert_options=pv.ConvertOptions(
            column_types=dict.fromkeys(("asin", "ean_codes", "upc_codes", "item_name"), pa.large_string()),
            strings_can_be_null=False,
        ),
    )
    identifiers = table.to_pandas(types_mapper=lambda t: pd.StringDtype() if t == pa.large_string() else None)
    del table
    stage("catalog_identifiers", identifiers, schemas.CatalogIdentifiers)
    stock = catalog.warehouse_stock(listings, fba, "fba", True)
    stage("warehouse_stock", stock, schemas.WarehouseStock)
    enriched = catalog.enriched_catalog(listings, identifiers, stock, MARKETPLACE)
    stage("enriched_catalog", enriched, schemas.EnrichedCatalog)
    frame = payloads.optiply_product_payloads(enriched, market.marketplace_id, True)
    delivered = pd.DataFrame(
        columns=["entity", "remote_id", "marketplace", "optiply_id", "state", "attributes_json", "updated_at"]
    )
    plan = payloads.plan_product_writes(
        frame, delivered, payloads.existing_products_frame([], 42), "eanCode", adopt_existing=True
    )
    stage("optiply_product_payloads", plan, schemas.OptiplyProductPayloads)
    wall = time.perf_counter() - began
    peak = _peak_rss_mb()
    payload_rows = len(plan)
    del listings, fba, identifiers, stock, enriched, frame, plan

    floor_began = time.perf_counter()
    read_cp, parse = _tsv_options(python_codec(market.charset))
    pv.read_csv(directory / LISTINGS_FILE, read_options=read_cp, parse_options=parse)
    pv.read_csv(directory / IDENTIFIERS_FILE, read_options=read, parse_options=parse)
    pj.read_json(directory / FBA_FILE, read_options=pj.ReadOptions(block_size=1 << 26))
    floor = time.perf_counter() - floor_began
    return {
        "wall_seconds": round(wall, 3),  # milliseconds: at the tiny scale the ratio is of tenths of a second
        "stages_seconds": stages,
        # Within fba_inventory: the SP-API client's part (each page's nextToken); the JSON is read by the frame.
        "fba_pages_client_seconds": round(page_taking, 2),
        "stages_peak_rss_mb": peaks,
        "validated": valid,
        "payload_rows": payload_rows,
        "peak_rss_mb": round(peak, 1),
        "rss_after_imports_mb": round(rss_after_imports, 1),
        "ru_maxrss_mb": round(_ru_maxrss_mb(), 1),
        "floor_seconds": round(floor, 3),
        "ratio_to_floor": round(wall / floor, 2),
    }


def run(scale) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-transform-") as tmp:
        directory = Path(tmp)
        # Both in subprocesses of their own: the documents' memory never sits in the measuring process.
        documents = _subprocess("generate", directory, str(scale.transform_rows))
        measured = _subprocess("measure", directory)
    return {
        "how": __doc__.split("\n\n", 1)[1].strip(),
        "documents": documents,
        **measured,
        "targets": [
            {
                "name": "transform: wall / pyarrow parse floor",
                "target": f"<= {TARGET_RATIO}x",
                "value": measured["ratio_to_floor"],
                "met": measured["ratio_to_floor"] <= TARGET_RATIO,
                "missed_by": f"+{measured['ratio_to_floor'] - TARGET_RATIO:.1f}x",
            },
            {
                "name": "transform: peak RSS",
                "target": f"<= {TARGET_RSS_MB} MB",
                "value": measured["peak_rss_mb"],
                "met": measured["peak_rss_mb"] <= TARGET_RSS_MB,
                "missed_by": f"+{measured['peak_rss_mb'] - TARGET_RSS_MB:.0f} MB",
            },
        ],
    }


def _subprocess(action: str, directory: Path, *args: str) -> dict:
    env = {**os.environ, "AMAZON_MARKETPLACES": os.environ.get("AMAZON_MARKETPLACES", MARKETPLACE)}
    child = subprocess.run(
        [sys.executable, "-m", "amazon_optiply.bench.transform", action, str(directory), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(f"transform {action} subprocess failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    action, target = sys.argv[1], Path(sys.argv[2])
    result = write_documents(target, int(sys.argv[3])) if action == "generate" else measure(target)
    print(json.dumps(result))
