"""Section 2: seconds from the moment the sandbox marks a report DONE to its document being parsed.

Processing times up to 10 minutes cannot be waited for, so the platform's real `SellingPartner.fetch_report`
runs against the real sandbox over HTTP on a virtual clock: `time.monotonic()` in the platform's resource
and client modules and in the sandbox's Amazon module is real monotonic time plus every sleep skipped so
far, and `time.sleep` skips instead of sleeping. Waiting costs nothing; real work (HTTP, download, parse)
is still timed. The sandbox's reports take their unscaled processing times on that clock, and its rate
limits are Amazon's (rate_scale 1), so a poll schedule faster than getReport's 2/s would be throttled.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time as _time
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from importlib import import_module
from unittest import mock

import dagster as dg
import numpy as np

from amazon_optiply.sandbox.amazon import AmazonSettings
from amazon_optiply.sandbox.report_documents import LISTINGS_ALL
from amazon_optiply.sandbox.seller import SellerConfig
from amazon_optiply.sandbox.server import Sandbox, SandboxConfig

PATCHED_MODULES = (
    "amazon_optiply.clients.selling_partner",
    "amazon_optiply.clients.amazon",
    "amazon_optiply.clients.selling_partner",
    "amazon_optiply.sandbox.amazon",
)
MIN_PROCESSING, MAX_PROCESSING = 5.0, 600.0
TAP_INTERVAL = 30.0  # the reference Singer tap polls every 30 s
TARGET_SECONDS = 1.0
GET_REPORT_RATE, GET_REPORT_BURST = 2.0, 15


class VirtualTime:
    """The `time` module, except that sleeping skips ahead instead of waiting."""

    def __init__(self) -> None:
        self.skipped = 0.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return _time.monotonic() + self.skipped

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.skipped += max(float(seconds), 0.0)

    def __getattr__(self, name: str):
        return getattr(_time, name)


@contextmanager
def virtual_time():
    clock = VirtualTime()
    with ExitStack() as stack:
        for name in PATCHED_MODULES:
            module = import_module(name)
            if hasattr(module, "time"):
                stack.enter_context(mock.patch.object(module, "time", clock))
        yield clock


def processing_times(n: int, seed: int = 5) -> list[float]:
    """Log-uniform between 5 s and 10 min, both ends included, in a shuffled order."""
    rng = np.random.default_rng(seed)
    inner = np.exp(rng.uniform(math.log(MIN_PROCESSING), math.log(MAX_PROCESSING), max(n - 2, 0)))
    times = [MIN_PROCESSING, MAX_PROCESSING, *inner.round(1).tolist()]
    rng.shuffle(times)
    return times


def tap_latency(processing: float) -> float:
    """The fixed-interval tap: it sees DONE at the first multiple of 30 s at or after the report is done."""
    return math.ceil(processing / TAP_INTERVAL) * TAP_INTERVAL - processing


def max_in_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _resource(sandbox: Sandbox):
    from amazon_optiply.resources import AmazonResource

    env = sandbox.env()
    resource = AmazonResource(
        refresh_token=env["SP_API_REFRESH_TOKEN"],
        lwa_app_id=env["LWA_APP_ID"],
        lwa_client_secret=env["LWA_CLIENT_SECRET"],
        endpoint=env["SP_API_ENDPOINT"],
        lwa_token_url=env["LWA_TOKEN_URL"],
    )
    resource.setup_for_execution(dg.build_init_resource_context())
    return resource.partner


def run(scale) -> dict:
    from amazon_optiply.transforms.reports import LISTINGS_REQUIRED, parse_flat_file

    config = SandboxConfig(
        seller=SellerConfig(marketplaces=("DE",), skus=200, seed=3),
        amazon=AmazonSettings(
            report_queue_seconds=0.0, access_token_ttl_seconds=10**9, next_token_ttl_seconds=10**9
        ),
        frozen_clock=True,
    )
    log = logging.getLogger("amazon_optiply.bench")
    samples = []
    with Sandbox(config) as sandbox, mock.patch.dict(os.environ, sandbox.env()), virtual_time() as clock:
        resource = _resource(sandbox)
        poll_times: list[float] = []
        call = resource.caller.call

        def counting_call(operation, fn, expect=None):
            if operation == "getReport":
                poll_times.append(clock.monotonic())
            return call(operation, fn, expect=expect)

        resource.caller.call = counting_call
        for i, processing in enumerate(processing_times(scale.latency_samples)):
            sandbox.amazon.settings.report_processing_seconds = processing
            start = config.seller.origin - timedelta(minutes=i + 1)  # a window of its own: never reused
            fetched = resource.fetch_report("DE", LISTINGS_ALL, log, start=start)
            parse_flat_file(fetched.text or "", LISTINGS_ALL, LISTINGS_REQUIRED)
            parsed = clock.monotonic()
            report = sandbox.amazon.reports[fetched.report_id]
            samples.append(
                {
                    "processing_seconds": processing,
                    "latency_seconds": round(parsed - report.done_mono, 3),
                    "polls": fetched.polls,
                    "tap_latency_seconds": tap_latency(processing),
                }
            )
        throttled = sandbox.amazon.throttled.get("getReport", 0)
    latencies = np.array([s["latency_seconds"] for s in samples])
    tap = np.array([s["tap_latency_seconds"] for s in samples])
    median, p95 = float(np.median(latencies)), float(np.percentile(latencies, 95))
    return {
        "how": (
            "SellingPartner.fetch_report against the sandbox over HTTP on a virtual clock (sleeps skipped, "
            "real work timed); unscaled processing times, log-uniform 5 s..10 min; latency = parsed - the "
            "sandbox's DONE moment; Amazon's real rate limits in the sandbox"
        ),
        "samples": sorted(samples, key=lambda s: s["processing_seconds"]),
        "median_seconds": round(median, 3),
        "p95_seconds": round(p95, 3),
        "max_seconds": round(float(latencies.max()), 3),
        "tap_30s_median_seconds": round(float(np.median(tap)), 2),
        "tap_30s_mean_seconds": round(float(tap.mean()), 2),
        "polls_per_report": round(float(np.mean([s["polls"] for s in samples])), 2),
        "max_getReport_calls_in_1s": max_in_window(poll_times),
        "getReport_throttled": throttled,
        "targets": [
            {
                "name": "latency: p95 DONE -> parsed",
                "target": f"<= {TARGET_SECONDS} s",
                "value": round(p95, 3),
                "met": p95 <= TARGET_SECONDS,
                "missed_by": f"+{p95 - TARGET_SECONDS:.2f} s",
            },
            {
                "name": "latency: median DONE -> parsed",
                "target": f"<= {TARGET_SECONDS} s",
                "value": round(median, 3),
                "met": median <= TARGET_SECONDS,
                "missed_by": f"+{median - TARGET_SECONDS:.2f} s",
            },
            {
                "name": "latency: getReport within 2/s (burst 15), no 429",
                "target": "0 throttled",
                "value": throttled,
                "met": throttled == 0 and max_in_window(poll_times) <= GET_REPORT_BURST,
                "missed_by": f"{throttled} throttled",
            },
        ],
    }
