"""`python -m amazon_optiply.bench`: performance figures of the platform against the sandbox.

One module per section of the table: `api` (SP-API calls per cycle against the lower bound the data
allows, Optiply writes against what changed), `latency` (report DONE -> document parsed), `projection`
(cycle time at Amazon's documented rates), `transform` (documents -> Optiply payload frames) and `e2e`
(a `make sync`-like run, Dagster overhead against step work) and `tenants` (one run process per
tenant-marketplace, many tenants at once: runs per minute, CPU and memory per run, cores for 1,000) and
`writes` (Optiply write throughput against the sandbox's Optiply rate limit; with `projection`, the 1M-SKU
cycle at Optiply rates of 5, 10 and 20 writes/s). Measurement only: nothing here changes
how the platform behaves; where a section bends time or rates in the sandbox, its output says so.
"""

from __future__ import annotations

from dataclasses import dataclass

SECTIONS = ("api", "latency", "projection", "transform", "e2e", "tenants", "writes")


@dataclass(frozen=True)
class Scale:
    name: str
    # api: one marketplace; a second, smaller seller gives each operation's per-SKU slope.
    api_skus: int
    api_fit_skus: int
    new_orders: int  # per 30-minute cycle
    new_asins: int  # per cycle
    latency_samples: int
    transform_rows: int
    e2e_skus: int
    e2e_orders_per_day: float
    # tenants: one sandbox (seller + Optiply account) per tenant; run processes at most `tenants_parallel` at once.
    tenants: int
    tenants_marketplaces: tuple[str, ...]
    tenants_skus: int
    tenants_orders_per_day: float
    tenants_parallel: int


SCALES = {
    # The smallest scale at which every section still proves it works (the suite runs it).
    "tiny": Scale("tiny", 200, 100, 10, 20, 8, 10_000, 30, 3.0, 2, ("DE",), 30, 3.0, 2),
    "full": Scale("full", 10_000, 5_000, 200, 20, 60, 1_000_000, 10_000, 300.0, 200, ("DE",), 200, 20.0, 2),
}


def command(scale: str, section: str) -> str:
    """The command that reproduces a section's figures."""
    return f".venv/bin/python -m amazon_optiply.bench --scale {scale} --only {section}"
