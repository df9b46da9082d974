"""Dates of plans a person declares: a day as typed, its end in the configured time zone.

Pure: no clock of its own (callers pass `now`), no I/O.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, tzinfo

from monitor.errors import UnitError

_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


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
