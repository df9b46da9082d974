"""Simulated lines that drain deterministically: the demo, and a line for trying channels.

Each read takes one step: the balance drops by `drain`, the data by `data_drain`. After
`cycle` reads (when set) the line is "topped up" and starts again, which shows recoveries.
`fail_from = N` with `fail_reads = M` makes reads N to N+M-1 fail (counting from 1), which
shows a failure alert and its recovery.
"""

from __future__ import annotations

import threading
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from monitor.adapters import Adapter
from monitor.config import DataSize, Duration, Money
from monitor.errors import CheckFailed
from monitor.model import Reading, TopUpRequest, TopUpResult, utcnow


class DemoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    balance: Money | None = Field(
        default=Decimal("12.00"), description="the balance at the first read"
    )
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code")
    drain: Money = Field(default=Decimal("1.50"), description="spent between two reads")
    data: DataSize | None = Field(default=None, description="data left at the first read")
    data_total: DataSize | None = Field(default=None, description="the plan's data (default: data)")
    data_drain: DataSize = Field(default=0, description="data used between two reads")
    expires_in: Duration | None = Field(default=None, description="expiry, from the first read")
    cycle: int = Field(default=0, ge=0, description="start again after this many reads (0: never)")
    fail_from: int = Field(default=0, ge=0, description="the first read that fails (0: none)")
    fail_reads: int = Field(default=0, ge=0, description="how many reads fail from fail_from")


_steps: dict[str, int] = {}
_started: dict[str, datetime] = {}
_top_ups: dict[str, TopUpRequest] = {}
_lock = threading.Lock()


class DemoAdapter(Adapter):
    name = "demo"
    description = "Simulated line that drains a little on every read (no network)."
    Options = DemoOptions

    @classmethod
    def reports(cls, options: DemoOptions) -> frozenset[str]:
        """What its options simulate."""
        given = {"balance": options.balance, "data": options.data, "expiry": options.expires_in}
        return frozenset(metric for metric, value in given.items() if value is not None)

    def read(self) -> Reading:
        o: DemoOptions = self.options
        now = utcnow()
        with _lock:
            step = _steps.get(self.line_id, 0)
            _steps[self.line_id] = step + 1
            started = _started.setdefault(self.line_id, now)
        if o.fail_from and o.fail_from <= step + 1 < o.fail_from + o.fail_reads:
            raise CheckFailed("simulated outage: the demo provider did not answer")
        if o.cycle:
            step %= o.cycle
        balance = None
        if o.balance is not None:
            balance = max(o.balance - o.drain * step, Decimal(0)).quantize(Decimal("0.01"))
        remaining = None
        if o.data is not None:
            remaining = max(o.data - o.data_drain * step, 0)
        expires = started + o.expires_in if o.expires_in is not None else None
        return Reading(
            line=self.line_id,
            checked_at=now,
            balance=balance,
            currency=o.currency if balance is not None else None,
            data_remaining=remaining,
            data_total=(o.data_total or o.data) if remaining is not None else None,
            expires_at=expires,
            status="ACTIVE",
            raw={"step": step, "simulated": True},
        )

    supports_top_up = True

    def top_up(self, request: TopUpRequest) -> TopUpResult:
        """A simulated top-up: the line starts again from its configured figures."""
        with _lock:
            _steps[self.line_id] = 0
            _top_ups[request.key] = request
        price = request.amount or self.options.balance
        return TopUpResult(
            reference=f"demo-{len(_top_ups)}", price=price, currency=self.options.currency
        )

    def find_top_up(self, request: TopUpRequest) -> TopUpResult | None:
        with _lock:
            done = request.key in _top_ups
        return TopUpResult(reference="demo", detail="found by reconciliation") if done else None


def reset() -> None:
    """Forget every simulated line (tests)."""
    with _lock:
        _steps.clear()
        _started.clear()
        _top_ups.clear()
