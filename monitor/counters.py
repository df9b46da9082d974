"""What the daemon did since it started: checks, events and deliveries, counted where each
happens, for the metrics endpoint's `_total` counters.

Counting happens on whichever thread does the work (check rounds on the loop, top-ups on
the recharge worker, sends on delivery threads) while a scrape reads from the HTTP
server's: one lock keeps every figure whole. The counts live as long as the process, as
Prometheus expects of a counter (`rate()` and `increase()` handle the reset at a restart),
and counting imports nothing, so it costs nothing when no endpoint is configured.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

CheckResult = Literal["ok", "failed", "skipped"]
DeliveryResult = Literal["sent", "failed", "dropped"]
CHECK_RESULTS: tuple[CheckResult, ...] = ("ok", "failed", "skipped")
DELIVERY_RESULTS: tuple[DeliveryResult, ...] = ("sent", "failed", "dropped")


@dataclass(frozen=True)
class Counts:
    """The counters at one moment; keys never counted are absent."""

    checks: Mapping[str, int] = field(default_factory=dict)
    events: Mapping[str, int] = field(default_factory=dict)
    deliveries: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """(channel, result) -> count."""


class Counters:
    """Monotonic, thread-safe counts of checks by result, events by type and deliveries by
    channel and result."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checks: Counter[str] = Counter()
        self._events: Counter[str] = Counter()
        self._deliveries: Counter[tuple[str, str]] = Counter()

    def check(self, result: CheckResult) -> None:
        """One check recorded (or kept for a database that cannot be written)."""
        with self._lock:
            self._checks[result] += 1

    def event(self, kind: str, count: int = 1) -> None:
        """Events of one type written to the outbox (or sent directly, the database down)."""
        if count:
            with self._lock:
                self._events[kind] += count

    def delivery(self, channel: str, result: DeliveryResult, count: int = 1) -> None:
        """Deliveries (outbox rows, or direct sends) to one channel: sent, a failed attempt,
        or dropped unsent."""
        if count:
            with self._lock:
                self._deliveries[channel, result] += count

    def counts(self) -> Counts:
        with self._lock:
            return Counts(dict(self._checks), dict(self._events), dict(self._deliveries))


COUNTERS = Counters()
"""The process's counters: every hook counts here, the metrics endpoint reads them."""
