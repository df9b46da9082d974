"""Dates of plans a person declares (`adapter = "plan"`): when the next renewal falls, a
day as typed and its end, all in the configured time zone.

Pure: no clock of its own (callers pass `now`), no I/O. A renewal falls at the start
(00:00) of its day in the zone: the money must be there when the day begins.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from monitor.errors import UnitError

_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_MONTHLY = re.compile(r"monthly\s+(\d{1,2})")
_EVERY = re.compile(r"every\s+(\d{1,4})\s*d")


@dataclass(frozen=True)
class Monthly:
    """On this day of each month; a day past a month's end is its last day ("monthly 31"
    renews on 30 April and on 28 or 29 February)."""

    day: int


@dataclass(frozen=True)
class Every:
    """Every so many days from the last renewal (a 30-day travel plan)."""

    days: int


Rule = Monthly | Every


def parse_renews(text: str) -> Rule:
    """`"monthly 5"` or `"every 30d"`."""
    spelled = " ".join(text.strip().lower().split())
    if match := _MONTHLY.fullmatch(spelled):
        day = int(match.group(1))
        if not 1 <= day <= 31:
            raise UnitError(f"{text!r}: the day of the month is 1 to 31")
        return Monthly(day)
    if match := _EVERY.fullmatch(spelled):
        days = int(match.group(1))
        if days < 1:
            raise UnitError(f"{text!r}: a plan lasts at least one day")
        return Every(days)
    raise UnitError(
        f"cannot read {text!r} as a renewal: use 'monthly DAY' (such as 'monthly 5') or "
        "'every Nd' (such as 'every 30d')"
    )


def parse_day(text: str) -> date:
    """A calendar day written as `2026-12-30`."""
    match = _DAY.fullmatch(text.strip())
    try:
        if match is None:
            raise ValueError
        return date(*(int(part) for part in match.groups()))
    except ValueError:
        raise UnitError(f"{text!r} is not a date such as 2026-12-30") from None


def end_of_day(day: date, tz: tzinfo) -> datetime:
    """The last second of `day` in `tz`, as an aware UTC time: a plan that "expires on the
    30th" can be used all of the 30th."""
    return datetime.combine(day, time(23, 59, 59), tz).astimezone(UTC)


def start_of_day(day: date, tz: tzinfo) -> datetime:
    """00:00 of `day` in `tz`, as an aware UTC time (a renewal's moment)."""
    return datetime.combine(day, time(0), tz).astimezone(UTC)


def monthly_on(year: int, month: int, day: int) -> date:
    """The renewal day of a month: `day`, or the month's last day when it is shorter."""
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _month_after(year: int, month: int, months: int = 1) -> tuple[int, int]:
    index = year * 12 + month - 1 + months
    return index // 12, index % 12 + 1


def monthly_after(rule: Monthly, moment: datetime, tz: tzinfo) -> datetime:
    """The first renewal of a monthly plan strictly after `moment`."""
    local = moment.astimezone(tz)
    year, month = local.year, local.month
    while True:
        renewal = start_of_day(monthly_on(year, month, rule.day), tz)
        if renewal > moment:
            return renewal
        year, month = _month_after(year, month)


def monthly_before(rule: Monthly, moment: datetime, tz: tzinfo) -> datetime:
    """The last renewal of a monthly plan at or before `moment`."""
    local = moment.astimezone(tz)
    year, month = local.year, local.month
    while True:
        renewal = start_of_day(monthly_on(year, month, rule.day), tz)
        if renewal <= moment:
            return renewal
        year, month = _month_after(year, month, -1)


def every_after(rule: Every, anchor: datetime, moment: datetime, tz: tzinfo) -> datetime:
    """The first renewal of an every-N-days plan renewed at `anchor` strictly after
    `moment`: N calendar days in the zone (the same wall-clock time across a DST change)."""
    start = anchor.astimezone(tz)
    step = timedelta(days=rule.days)
    periods = max((moment - anchor) // step - 1, 0)  # just short of the answer, then walk
    while True:
        periods += 1
        wall = start.replace(tzinfo=None) + step * periods
        renewal = wall.replace(tzinfo=tz).astimezone(UTC)
        if renewal > moment:
            return renewal


def next_renewal(
    rule: Rule,
    now: datetime,
    tz: tzinfo,
    *,
    anchor: datetime | None = None,
    confirmed: datetime | None = None,
) -> datetime:
    """When a plan renews next, after `now`. Once a renewal's moment passes, the plan is
    on its next period by itself (an AutoPay, or a reminded owner, renewed it).

    `anchor`: when an every-N-days plan last renewed (its `renewed_at`); `confirmed`: when
    the owner said it renewed (`record --renewed`). A confirmation settles the renewal
    nearest to it (the one due soon, or one just past), so the next is the one after; on an
    every-N-days plan it starts a new count of N days from the confirmation."""
    if isinstance(rule, Every):
        if anchor is None and confirmed is None:
            raise ValueError("an every-N-days plan needs the time it last renewed")
        start = max(moment for moment in (anchor, confirmed) if moment is not None)
        return every_after(rule, start, now, tz)
    after = now
    if confirmed is not None:
        before, upcoming = monthly_before(rule, confirmed, tz), monthly_after(rule, confirmed, tz)
        settled = before if confirmed - before < upcoming - confirmed else upcoming
        after = max(now, settled)
    return monthly_after(rule, after, tz)
