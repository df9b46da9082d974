"""Depletion forecast: when will a line run out of money or data at its recent pace?

Pure. The series is cut at the last jump up (a top-up or a renewal starts a new segment),
and the rate is the Theil-Sen slope (the median of pairwise slopes), which shrugs off noisy
readings that a least-squares line would follow. Decimal throughout: no float creeps into
money.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

DAY = Decimal(86400)
MIN_POINTS = 3
MIN_SPAN = timedelta(hours=1)
MAX_POINTS = 32
"""The newest readings a forecast looks at: enough for a robust slope (496 pairs), few
enough that thousands of lines are forecast in each cycle."""
JUMP = Decimal("0.02")
"""A rise of more than this share (of the larger value) is a top-up, not noise."""


@dataclass(frozen=True)
class Forecast:
    metric: str
    per_day: Decimal
    """Units used per day (money, or bytes), positive when the line is being used up."""
    runs_out_at: datetime | None
    """None when the line does not run out at this pace."""

    def to_json(self) -> dict[str, str | None]:
        return {
            "per_day": f"{self.per_day:f}",
            "runs_out_at": self.runs_out_at.isoformat() if self.runs_out_at else None,
        }


def segment(points: Sequence[tuple[datetime, Decimal]]) -> list[tuple[datetime, Decimal]]:
    """The readings since the last jump up, oldest first."""
    ordered = sorted(points)[-MAX_POINTS:]
    start = 0
    for i in range(1, len(ordered)):
        before, after = ordered[i - 1][1], ordered[i][1]
        if after - before > JUMP * max(abs(before), abs(after), Decimal(1)):
            start = i
    return ordered[start:]


def forecast(
    metric: str, points: Sequence[tuple[datetime, Decimal]], now: datetime
) -> Forecast | None:
    """The pace and run-out time of one metric, or None without enough recent history."""
    seg = segment(points)
    if len(seg) < MIN_POINTS or seg[-1][0] - seg[0][0] < MIN_SPAN:
        return None
    slopes = []
    for i in range(len(seg)):
        for j in range(i + 1, len(seg)):
            seconds = Decimal((seg[j][0] - seg[i][0]).total_seconds())
            if seconds > 0:
                slopes.append((seg[j][1] - seg[i][1]) / seconds)
    if not slopes:
        return None
    slopes.sort()
    mid = len(slopes) // 2
    slope = slopes[mid] if len(slopes) % 2 else (slopes[mid - 1] + slopes[mid]) / 2
    per_day = (-slope * DAY).quantize(Decimal("0.0001"))
    latest_at, latest = seg[-1]
    if slope >= 0:
        return Forecast(metric, per_day, None)
    if latest <= 0:
        return Forecast(metric, per_day, latest_at)
    seconds_left = latest / -slope
    return Forecast(metric, per_day, latest_at + timedelta(seconds=float(seconds_left)))
