"""The depletion forecast against synthetic histories with known answers."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from monitor.forecast import forecast, segment

T0 = datetime(2026, 11, 1, tzinfo=UTC)
GB = Decimal(10**9)


def series(values: list[Decimal], step: timedelta = timedelta(hours=6)):
    return [(T0 + step * i, v) for i, v in enumerate(values)]


def test_steady_use() -> None:
    # 10 GB, 1 GB a day, read every 6 hours for 4 days: 6 GB left, 6 days to go
    points = series([10 * GB - GB * i / 4 for i in range(17)])
    now = points[-1][0]
    f = forecast("data", points, now)
    assert f is not None
    assert f.per_day == GB
    assert f.runs_out_at == now + timedelta(days=6)


def test_a_top_up_starts_a_new_segment() -> None:
    before = [Decimal(20) - Decimal(2) * i for i in range(8)]  # $2 a step down to $6
    after = [Decimal(30) - Decimal("0.5") * i for i in range(8)]  # topped up to $30, slower
    points = series(before + after)
    assert segment(points) == points[8:]
    f = forecast("balance", points, points[-1][0])
    assert f is not None
    assert f.per_day == Decimal(2)  # $0.50 per 6 hours
    assert f.runs_out_at == points[-1][0] + timedelta(days=13, hours=6)  # $26.50 left


def test_noisy_series() -> None:
    rng = random.Random(7)
    values = [
        (10 * GB - GB * i / 4) * (1 + Decimal(rng.uniform(-0.01, 0.01))).quantize(Decimal("0.0001"))
        for i in range(40)
    ]
    # a few wild readings that a least-squares fit would follow
    values[10] = values[10] * Decimal("0.7")
    values[25] = values[25] * Decimal("0.6")
    f = forecast("data", series(values, timedelta(hours=2)), T0 + timedelta(hours=78))
    assert f is not None
    # the true pace: 1 GB per 8 hours = 3 GB a day
    assert abs(f.per_day - 3 * GB) / (3 * GB) < Decimal("0.05")


def test_a_flat_line_never_runs_out() -> None:
    f = forecast("balance", series([Decimal("15.00")] * 10), T0 + timedelta(days=3))
    assert f is not None
    assert f.runs_out_at is None
    assert f.per_day == 0


@pytest.mark.parametrize(
    "points",
    [
        [],
        series([Decimal(5), Decimal(4)]),  # too few
        series([Decimal(5), Decimal(4), Decimal(3)], timedelta(minutes=5)),  # too short a span
    ],
)
def test_not_enough_history(points: list[tuple[datetime, Decimal]]) -> None:
    assert forecast("balance", points, T0 + timedelta(days=1)) is None


def test_already_empty() -> None:
    points = series([Decimal(2), Decimal(1), Decimal(0)])
    f = forecast("balance", points, points[-1][0])
    assert f is not None and f.runs_out_at == points[-1][0]
