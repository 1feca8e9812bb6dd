"""The sandbox clock: the seller's time, which tests can freeze and advance instead of sleeping."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class SandboxClock:
    """Wall time plus an offset; or, frozen, a fixed moment that moves only when advanced.

    Tests freeze it so the ground truth they compare with cannot shift under a running sync. Report
    processing and rate limits run on real time regardless: they are about waiting, not about data.
    """

    def __init__(self, start: datetime | None = None, frozen: bool = False) -> None:
        self._lock = threading.Lock()
        self._frozen_at = (start or datetime.now(UTC)) if frozen else None
        self._offset = (start - datetime.now(UTC)) if (start and not frozen) else timedelta(0)

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def now(self) -> datetime:
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> datetime:
        """Move the seller's world forward: orders arrive and stock changes as if `delta` had passed."""
        if delta < timedelta(0):
            raise ValueError("the sandbox clock only moves forward")
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += delta
            else:
                self._offset += delta
        return self.now()
