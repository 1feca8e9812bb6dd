"""Fault profiles: how often each sandbox answer goes wrong the way Amazon's or Optiply's do.

A fault is drawn per request from a seeded generator, so a failing soak can be replayed.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, fields, replace

FAULT_KINDS = (
    "throttle",  # an extra 429 QuotaExceeded beyond the token bucket
    "throttle_no_body",  # a 429 with an empty body: python-amazon-sp-api then returns an empty answer silently
    "server_error",  # 500 InternalFailure / 503 ServiceUnavailable with a JSON error body
    "html_503",  # a 503 with an HTML body, as a load balancer answers
    "connection_reset",  # the TCP connection is reset instead of answered
    "slow_report",  # report processing takes 10x longer
    "report_fatal",  # the report ends FATAL with an error document
    "report_cancelled",  # the report ends CANCELLED although the window holds data
    "corrupt_document",  # the gzip document is truncated or corrupt
    "expired_document_url",  # the presigned URL answers 403 as if it had expired
    "lwa_outage",  # the LWA token endpoint answers 500
    "optiply_throttle",  # Optiply answers 429
    "optiply_server_error",  # Optiply answers 502/503
    "optiply_lost_answer",  # Optiply applies a write but the connection is reset before the answer
    "optiply_slow_answer",  # Optiply answers, but only after OptiplyBackend.slow_answer_seconds
)


@dataclass(frozen=True)
class FaultRates:
    """Probability per request (or per report / document) of each fault kind."""

    throttle: float = 0.0
    throttle_no_body: float = 0.0
    server_error: float = 0.0
    html_503: float = 0.0
    connection_reset: float = 0.0
    slow_report: float = 0.0
    report_fatal: float = 0.0
    report_cancelled: float = 0.0
    corrupt_document: float = 0.0
    expired_document_url: float = 0.0
    lwa_outage: float = 0.0
    optiply_throttle: float = 0.0
    optiply_server_error: float = 0.0
    optiply_lost_answer: float = 0.0
    optiply_slow_answer: float = 0.0


PROFILES: dict[str, FaultRates] = {
    "none": FaultRates(),
    "flaky": FaultRates(
        throttle=0.05,
        server_error=0.02,
        connection_reset=0.01,
        slow_report=0.1,
        optiply_throttle=0.03,
        optiply_server_error=0.02,
        optiply_lost_answer=0.01,
    ),
    "hostile": FaultRates(
        throttle=0.15,
        throttle_no_body=0.03,
        server_error=0.05,
        html_503=0.02,
        connection_reset=0.03,
        slow_report=0.2,
        report_fatal=0.05,
        report_cancelled=0.03,
        corrupt_document=0.05,
        expired_document_url=0.05,
        lwa_outage=0.05,
        optiply_throttle=0.08,
        optiply_server_error=0.05,
        optiply_lost_answer=0.05,
        optiply_slow_answer=0.05,
    ),
}


def parse_faults(spec: str) -> FaultRates:
    """`none`, `flaky`, `hostile`, or a profile followed by overrides: `flaky,report_fatal=0.2`."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    base = PROFILES["none"]
    overrides: dict[str, float] = {}
    for part in parts:
        if "=" in part:
            name, value = part.split("=", 1)
            if name not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {name!r}; known: {', '.join(FAULT_KINDS)}")
            overrides[name] = float(value)
        elif part in PROFILES:
            base = PROFILES[part]
        else:
            raise ValueError(f"unknown fault profile {part!r}; known: {', '.join(PROFILES)}")
    return replace(base, **overrides)


class Faults:
    """Draws faults from the configured rates and counts what it injected."""

    def __init__(self, rates: FaultRates, seed: int) -> None:
        self.rates = rates
        self._rng = random.Random(f"faults-{seed}")
        self._lock = threading.Lock()
        self.injected: dict[str, int] = {f.name: 0 for f in fields(FaultRates)}

    def set_rates(self, rates: FaultRates) -> None:
        self.rates = rates

    def draw(self, kind: str) -> bool:
        rate = getattr(self.rates, kind)
        if rate <= 0:
            return False
        with self._lock:
            hit = self._rng.random() < rate
            if hit:
                self.injected[kind] += 1
        return hit

    @property
    def total_injected(self) -> int:
        return sum(self.injected.values())
