"""A reading a person gives (`esim-monitor record`, the status page's form): the figures as
typed text in, a judged and recorded reading out, built one way for both.

Figures left out stay out (the reading says what the owner saw): their alert levels stand
and `status` shows their last known values, marked carried. A plan line's reading carries
the plan's dates and price, so renewal-risk weighs a recorded balance against them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from monitor.errors import UnitError, UsageError
from monitor.model import Reading, money_problem
from monitor.units import parse_data_size, parse_money

if TYPE_CHECKING:
    from monitor.config import Settings
    from monitor.cycle import Checker, Judged
    from monitor.store import Store


@dataclass(frozen=True)
class ManualFigures:
    """What the person typed; None for a figure not given."""

    balance: str | None = None
    data: str | None = None
    expires: str | None = None
    """The plan's last day, such as 2026-12-30 (it expires at that day's end)."""
    renewed: bool = False
    """A plan line renewed now: on to its next period first."""

    def empty(self) -> bool:
        return (self.balance, self.data, self.expires) == (None, None, None) and not self.renewed


class FigureRefused(UsageError):
    """A figure that cannot be read: `figure` names it, `why` follows its name."""

    def __init__(self, figure: str, why: str) -> None:
        self.figure, self.why = figure, why
        super().__init__(self.said("--"))

    def said(self, prefix: str = "") -> str:
        """The reason, the figure named as the caller calls it (`--balance`, `balance`)."""
        return f"{prefix}{self.figure}{self.why}"


def manual_reading(
    settings: Settings, store: Store, line: str, figures: ManualFigures, now: datetime, tz: tzinfo
) -> Reading:
    """The reading of the figures given; FigureRefused for one that cannot be read."""
    given: dict[str, Any] = {}
    balance = None
    if figures.balance is not None:
        try:
            balance = parse_money(figures.balance)
        except UnitError as exc:
            raise FigureRefused("balance", f": {exc}") from None
        why = "cannot be negative" if balance < 0 else money_problem(balance)
        if why:
            raise FigureRefused("balance", f" {figures.balance!r} {why}")
        given["balance"] = figures.balance
    data = None
    if figures.data is not None:
        try:
            data = parse_data_size(figures.data)
        except UnitError as exc:
            raise FigureRefused("data", f": {exc}") from None
        given["data"] = figures.data
    expires = None
    if figures.expires is not None:
        expires = _end_of_day(figures.expires, tz)
        if expires <= now:
            raise FigureRefused("expires", f" {figures.expires}: that day is over")
        given["expires"] = figures.expires
    currency = settings.lines[line].options.get("currency")
    if balance is not None and not currency:
        currency = store.last_currency(line)
    return Reading(
        line=line,
        checked_at=now,
        balance=balance,
        currency=currency if balance is not None else None,
        data_remaining=data,
        expires_at=expires,
        raw={"recorded": given},
        source="manual",
    )


def record_manual(
    settings: Settings,
    checker: Checker,
    store: Store,
    line: str,
    figures: ManualFigures,
    now: datetime,
) -> Judged:
    """Build the reading, judge and record it (committed on return) as a polled one.
    Raises FigureRefused, or ReadingRejected for figures out of range."""
    reading = manual_reading(settings, store, line, figures, now, settings.tz())
    if settings.adapter_name(line) == "plan":
        reading = _on_plan(checker.adapter(line), reading, figures.renewed)
    return checker.record(store, reading)


def _on_plan(adapter: Any, reading: Reading, renewed: bool) -> Reading:
    if renewed:
        adapter.confirm(reading.checked_at)
    plan = adapter.read()
    return dataclasses.replace(
        reading,
        currency=reading.currency or plan.currency,
        expires_at=reading.expires_at or plan.expires_at,
        renewal_at=plan.renewal_at,
        renewal_price=plan.renewal_price,
    )


def _end_of_day(text: str, tz: tzinfo) -> datetime:
    from monitor.plans import end_of_day, parse_day

    try:
        return end_of_day(parse_day(text), tz)
    except UnitError as exc:
        raise FigureRefused("expires", f": {exc}") from None
