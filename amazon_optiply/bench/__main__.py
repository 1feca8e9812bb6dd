"""python -m amazon_optiply.bench [--scale tiny|full] [--only api,latency,...] [--out bench/results.json]"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

# Partitions are fixed when the platform is first imported; the sections set their own marketplaces.
os.environ.setdefault("AMAZON_MARKETPLACES", "DE,FR,US")
os.environ.pop("SP_API_DEFAULT_MARKETPLACE", None)  # python-amazon-sp-api would override every marketplace

from amazon_optiply.bench import SCALES, SECTIONS


def run(scale_name: str, only: list[str]) -> dict:
    from amazon_optiply.bench import api, e2e, latency, projection, tenants, transform, writes

    scale = SCALES[scale_name]
    results: dict = {
        "scale": scale_name,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "seconds": {},
    }
    if "projection" in only and "api" not in only:
        only = ["api", *only]  # the projection is computed from the api section's counts
    runners = {
        "api": lambda: api.run(scale),
        "latency": lambda: latency.run(scale),
        "projection": lambda: projection.run(results["api"]),
        "transform": lambda: transform.run(scale),
        "e2e": lambda: e2e.run(scale),
        "tenants": lambda: tenants.run(scale),
        "writes": lambda: writes.run(scale, results.get("projection")),
    }
    for section in SECTIONS:
        if section in only:
            began = time.perf_counter()
            print(f"[bench] {section} ...", file=sys.stderr, flush=True)
            results[section] = runners[section]()
            results["seconds"][section] = round(time.perf_counter() - began, 1)
            for target in results[section].get("targets", []):
                if target["met"]:
                    target["missed_by"] = None  # each section words the miss; a met target has none
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amazon_optiply.bench", description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated, of {','.join(SECTIONS)}"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results.json"))
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; known: {', '.join(SECTIONS)}")
    from amazon_optiply.bench.report import table

    logging.disable(logging.INFO)  # Dagster's per-event console log would bury the table
    results = run(args.scale, only)
    print(table(results), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nwrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
