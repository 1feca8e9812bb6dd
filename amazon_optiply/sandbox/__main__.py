"""`python -m amazon_optiply.sandbox`: run both sandbox servers in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from dataclasses import replace

from amazon_optiply.sandbox.amazon import AmazonSettings
from amazon_optiply.sandbox.faults import parse_faults
from amazon_optiply.sandbox.seller import SellerConfig
from amazon_optiply.sandbox.server import Sandbox, SandboxConfig, credentials_from_env
from amazon_optiply.sandbox.vendor import VendorConfig

SECRET_ENV = {"SP_API_REFRESH_TOKEN", "LWA_CLIENT_SECRET", "OPTIPLY_PASSWORD", "OPTIPLY_CLIENT_SECRET"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m amazon_optiply.sandbox", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    p.add_argument("--sp-api-port", type=int, default=8701, help="0 picks a free port")
    p.add_argument("--optiply-port", type=int, default=8702, help="0 picks a free port")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--marketplaces", default="DE,FR,US", help="country codes, comma-separated")
    p.add_argument("--skus", type=int, default=2000)
    p.add_argument("--orders-per-day", type=float, default=300)
    p.add_argument(
        "--faults", default="none", help="none, flaky, hostile, optionally with kind=rate overrides"
    )
    p.add_argument(
        "--report-seconds", type=float, default=1.0, help="report processing time (Amazon: minutes)"
    )
    p.add_argument("--rate-scale", type=float, default=1.0, help="multiply Amazon's documented rates")
    p.add_argument(
        "--old-integration",
        action="store_true",
        help="start from an Optiply account the old Amazon integration fed (products by ASIN, orders posted)",
    )
    p.add_argument(
        "--vendor",
        action="store_true",
        help="also serve a Vendor Central account (Vendor Orders, vendor reports) in DE, seeded by --seed",
    )
    args = p.parse_args(argv)

    seller = SellerConfig(
        seed=args.seed,
        marketplaces=tuple(m.strip().upper() for m in args.marketplaces.split(",") if m.strip()),
        skus=args.skus,
        orders_per_day=args.orders_per_day,
    )
    config = SandboxConfig(
        seller=seller,
        amazon=replace(
            credentials_from_env(AmazonSettings()),
            report_processing_seconds=args.report_seconds,
            rate_scale=args.rate_scale,
        ),
        faults=parse_faults(args.faults),
        host=args.host,
        sp_api_port=args.sp_api_port,
        optiply_port=args.optiply_port,
        old_integration=args.old_integration,
        vendor=VendorConfig(seed=args.seed, origin=seller.origin) if args.vendor else None,
    )
    sandbox = Sandbox(config).start()
    print(f"SP_API_ENDPOINT={sandbox.sp_api_url}", flush=True)
    print(f"OPTIPLY_API_URL={sandbox.optiply_url}/v1", flush=True)
    for name, value in sandbox.env().items():
        if name not in ("SP_API_ENDPOINT", "OPTIPLY_API_URL"):
            # Sandbox credentials are documented defaults; credentials taken from the environment stay hidden.
            shown = "(from environment)" if name in SECRET_ENV and _from_env(name) else value
            print(f"{name}={shown}", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        time.sleep(0.2)
    sandbox.stop()
    print("sandbox stopped", file=sys.stderr, flush=True)
    return 0


def _from_env(name: str) -> bool:
    import os

    return name in os.environ


if __name__ == "__main__":
    sys.exit(main())
