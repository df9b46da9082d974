"""The ranges a reading's figures must lie in (issue 11.1): what `reading_problems` refuses
and what it lets through, exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from monitor.model import Event, Reading, money_problem, reading_problems

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("figures", "problem"),
    [
        ({"balance": Decimal("1e999999999")}, "balance 1E+999999999 is 10^12 or more"),
        ({"balance": Decimal("-1e12")}, "balance -1E+12 is 10^12 or more"),
        ({"balance": Decimal("1e-999999999")}, "more than 18 decimal places"),
        ({"balance": Decimal("NaN")}, "balance NaN is not a finite number"),
        ({"renewal_price": Decimal("-Infinity")}, "renewal_price -Infinity is not a finite"),
        ({"data_remaining": 10**40}, "data_remaining 1.000e+40 is outside 0..10^18 bytes"),
        ({"data_total": 10**18 + 1}, "data_total 1000000000000000001 is outside 0..10^18"),
        ({"data_remaining": -1}, "data_remaining -1 is outside 0..10^18 bytes"),
        ({"expires_at": datetime(9999, 12, 31, tzinfo=UTC)}, "outside the years 1970..2200"),
        ({"renewal_at": datetime(1969, 12, 31, tzinfo=UTC)}, "outside the years 1970..2200"),
        ({"extras": {"sms_remaining": 10**30}}, "extras.sms_remaining"),
        ({"extras": {"credit": Decimal("1e400")}}, "extras.credit 1E+400 is 10^19 or more"),
        ({"extras": {"ratio": float("nan")}}, "extras.ratio nan is not a finite number"),
    ],
)
def test_out_of_range_figures_are_named(figures: dict[str, Any], problem: str) -> None:
    problems = reading_problems(Reading("x", NOW, **figures))
    assert len(problems) == 1 and problem in problems[0], problems


def test_plausible_figures_pass_exactly() -> None:
    reading = Reading(
        "x",
        NOW,
        balance=Decimal("999999999999.99"),
        renewal_price=Decimal("-12.30"),  # a postpaid credit may be negative
        data_remaining=0,
        data_total=10**18,
        expires_at=datetime(2200, 12, 31, 23, 59, tzinfo=UTC),
        renewal_at=datetime(1970, 1, 1, tzinfo=UTC),
        extras={"sms": 500, "note": "x" * 100, "tiny": Decimal("0.30000000000000004")},
    )
    assert reading_problems(reading) == []
    assert money_problem(Decimal("1.5" + "0" * 40)) is None  # trailing zeros are no places
    assert money_problem(Decimal("0E-999999999")) is None  # zero, however written


@pytest.mark.parametrize("value", ["2026-12-02T12:00:00+00:00", datetime(2026, 12, 2, 12, 0)])
def test_an_events_time_fact_is_an_aware_datetime(value: object) -> None:
    Event("expiry", "x", NOW, {"expires_at": NOW, "low_since": None})
    with pytest.raises(TypeError, match="expires_at"):
        Event("expiry", "x", NOW, {"expires_at": value})
