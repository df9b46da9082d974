"""A declared plan's dates: month ends, leap years, DST changes, confirmations."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitor.errors import UnitError
from monitor.plans import (
    Every,
    Monthly,
    end_of_day,
    next_renewal,
    parse_day,
    parse_renews,
)

NY = ZoneInfo("America/New_York")


def local(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=NY).astimezone(UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("monthly 5", Monthly(5)),
        (" Monthly  31 ", Monthly(31)),
        ("every 30d", Every(30)),
        ("every 7 d", Every(7)),
    ],
)
def test_renews_reads(text: str, rule: object) -> None:
    assert parse_renews(text) == rule


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("monthly 0", "1 to 31"),
        ("monthly 32", "1 to 31"),
        ("every 0d", "at least one day"),
        ("weekly", "use 'monthly DAY'"),
        ("monthly", "use 'monthly DAY'"),
        ("every 30", "use 'monthly DAY'"),
    ],
)
def test_bad_renews_say_why(text: str, problem: str) -> None:
    with pytest.raises(UnitError, match=problem):
        parse_renews(text)


@pytest.mark.parametrize(
    ("now", "renews"),
    [
        (local(2026, 12, 3, 12), local(2026, 12, 5)),
        (local(2026, 12, 4, 23, 59), local(2026, 12, 5)),
        (local(2026, 12, 5, 0, 0, 1), local(2027, 1, 5)),  # the day began: the next period
        (local(2026, 12, 31, 23), local(2027, 1, 5)),
    ],
)
def test_monthly_renews_on_its_day(now: datetime, renews: datetime) -> None:
    assert next_renewal(Monthly(5), now, NY) == renews


def test_monthly_31_is_the_last_day_of_shorter_months() -> None:
    moment, found = local(2027, 12, 31, 1), []
    for _ in range(5):
        moment = next_renewal(Monthly(31), moment, NY)
        found.append(moment.astimezone(NY).date())
    assert found == [
        date(2028, 1, 31),
        date(2028, 2, 29),  # a leap year
        date(2028, 3, 31),
        date(2028, 4, 30),
        date(2028, 5, 31),
    ]
    assert next_renewal(Monthly(31), local(2027, 2, 1), NY) == local(2027, 2, 28)


def test_monthly_29_in_february_of_leap_and_common_years() -> None:
    assert next_renewal(Monthly(29), local(2027, 2, 1), NY) == local(2027, 2, 28)
    assert next_renewal(Monthly(29), local(2028, 2, 1), NY) == local(2028, 2, 29)
    assert next_renewal(Monthly(29), local(2028, 2, 29, 1), NY) == local(2028, 3, 29)


def test_a_renewal_is_midnight_in_the_zone_across_dst() -> None:
    # before and after the spring change (8 March 2026): 05:00 UTC, then 04:00 UTC
    assert next_renewal(Monthly(1), local(2026, 2, 15), NY) == datetime(2026, 3, 1, 5, tzinfo=UTC)
    assert next_renewal(Monthly(1), local(2026, 3, 15), NY) == datetime(2026, 4, 1, 4, tzinfo=UTC)


def test_every_n_days_keeps_its_wall_clock_time_across_dst() -> None:
    spring = local(2026, 2, 20)  # 30 calendar days span the March change: 1 hour less
    assert next_renewal(Every(30), local(2026, 3, 1), NY, anchor=spring) == local(2026, 3, 22)
    assert local(2026, 3, 22) - spring == timedelta(days=30, hours=-1)
    autumn = local(2026, 10, 15)  # the November change: 1 hour more
    renews = local(2026, 11, 14)
    assert renews - autumn == timedelta(days=30, hours=1)
    # half an hour after 30 elapsed days, before the wall clock's 30th day: still that one
    just_after = autumn + timedelta(days=30, minutes=30)
    assert next_renewal(Every(30), just_after, NY, anchor=autumn) == renews
    assert next_renewal(Every(30), renews, NY, anchor=autumn) == local(2026, 12, 14)


def test_every_n_days_moves_on_by_itself_period_after_period() -> None:
    anchor = local(2026, 1, 1)
    assert next_renewal(Every(30), local(2026, 4, 15), NY, anchor=anchor) == local(2026, 5, 1)


def test_a_confirmation_settles_the_nearest_renewal() -> None:
    rule = Monthly(5)
    early = local(2026, 12, 3, 12)  # renewed two days before the 5th
    assert next_renewal(rule, early, NY, confirmed=early) == local(2027, 1, 5)
    late = local(2026, 12, 6, 9)  # said a day after the 5th, which moved on already
    assert next_renewal(rule, late, NY, confirmed=late) == local(2027, 1, 5)
    # once January's date passes, February's is next: the confirmation is spent
    assert next_renewal(rule, local(2027, 1, 5, 1), NY, confirmed=early) == local(2027, 2, 5)


def test_a_confirmed_every_n_days_plan_counts_from_the_confirmation() -> None:
    anchor, confirmed = local(2026, 1, 1), local(2026, 1, 20, 15)
    found = next_renewal(Every(30), confirmed, NY, anchor=anchor, confirmed=confirmed)
    assert found == local(2026, 2, 19, 15)


def test_days_as_typed_and_their_end() -> None:
    assert parse_day("2026-12-30") == date(2026, 12, 30)
    assert end_of_day(date(2026, 12, 30), NY) == datetime(2026, 12, 31, 4, 59, 59, tzinfo=UTC)
    for bad in ("2026-02-30", "30/12/2026", "2026-12-30T10:00", ""):
        with pytest.raises(UnitError, match="is not a date"):
            parse_day(bad)
