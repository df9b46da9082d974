"""The small immutable records that travel down the road: Reading, LineState, Event.

Money is Decimal, data is int bytes, times are aware UTC datetimes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import IntEnum
from typing import Any

EVENT_TYPES: tuple[str, ...] = (
    "warning",
    "critical",
    "recovery",
    "repeat",
    "failure",
    "failure-recovered",
    "expiry",
    "renewal-risk",
    "recharge-requested",
    "recharge-confirmed",
    "recharge-failed",
    "recharge-unconfirmed",
    "recharge-skipped",
    "digest",
    "test",
    "daemon-failure",
    "relay",
)
"""Every event name there is; fixed early so configs can route events before they exist."""
OPT_IN_EVENTS: frozenset[str] = frozenset({"relay"})
"""Sent only to channels whose `events` list them (a forwarded text is no alert)."""

METRICS: tuple[str, ...] = ("balance", "data", "expiry", "status")

SOURCES: tuple[str, ...] = ("poll", "manual", "relay", "hook")
"""Where a reading came from: the daemon's own check, `esim-monitor record`, a phone's
relayed text, a provider's push."""


class Level(IntEnum):
    """How a metric or a line stands; ordered so that max() is the worst."""

    OK = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        return self.name.lower()


def utcnow() -> datetime:
    """The one clock of the project (freezegun freezes it in tests)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Reading:
    """What an adapter read from a line. Any figure may be absent: a line may only know its data."""

    line: str
    checked_at: datetime
    balance: Decimal | None = None
    currency: str | None = None
    data_remaining: int | None = None
    data_total: int | None = None
    expires_at: datetime | None = None
    status: str | None = None
    renewal_at: datetime | None = None
    """When the plan renews (T-Mobile's reply says so): with `renewal_price`, renewal risk."""
    renewal_price: Decimal | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)
    """Further figures some lines ask for: sms_remaining, voice_minutes_remaining, ..."""
    critical_reason: str | None = None
    """Set when the provider reports a condition that is critical by itself (expired, recycled)."""
    warning_reason: str | None = None
    """Set when the provider reports a condition that is a warning by itself (a SIM being
    disabled): the line is at least a warning whatever its figures."""
    raw: Any = None
    """The provider's own payload or reply, kept for debugging."""
    source: str = "poll"
    """One of `SOURCES`: a reading from outside the poll is judged the same way."""

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"unknown reading source {self.source!r}")
        if self.checked_at.tzinfo is None:
            raise ValueError("Reading.checked_at must be timezone-aware")
        for name in ("expires_at", "renewal_at"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise ValueError(f"Reading.{name} must be timezone-aware")
        for name in ("balance", "renewal_price"):
            amount = getattr(self, name)
            if amount is not None and not isinstance(amount, Decimal):
                raise TypeError(f"Reading.{name} must be a Decimal")
        for name in ("data_remaining", "data_total"):
            count = getattr(self, name)
            if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
                raise TypeError(f"Reading.{name} must be int bytes")


MONEY_DIGITS = 12
"""Money is below 10**12 in size (no SIM balance comes near): exact Decimal up to there."""
DATA_LIMIT = 10**18
"""Data is 0..10**18 bytes (an exabyte): past it a figure is a provider's error, and SQLite's
integers end at 2**63."""
FIGURE_DIGITS = 19
"""Integer digits of any figure a converter takes before it multiplies (a count of MB, say)."""
PLACES = 18
"""Decimal places a figure may have (after trailing zeros): 1e-999999999 is not a figure."""
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2201, 1, 1, tzinfo=UTC)
"""Dates of a reading lie in the years 1970..2200: outside, a provider's placeholder or error."""


def size_problem(amount: Decimal, digits: int) -> str | None:
    """Why `amount` is no plausible figure of at most `digits` integer digits (not finite,
    10**digits or more, more than `PLACES` decimal places), else None. Reads only the sign,
    exponent and digit count, never computes: safe on "1e999999999" before any int() or
    multiplication."""
    if not amount.is_finite():
        return "is not a finite number"
    if amount.is_zero():
        return None
    if amount.adjusted() >= digits:
        return f"is 10^{digits} or more"
    _, digits, exponent = amount.as_tuple()
    if isinstance(exponent, int) and exponent < -PLACES:
        zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
        if exponent + zeros < -PLACES:
            return f"has more than {PLACES} decimal places"
    return None


def money_problem(amount: Decimal) -> str | None:
    """Why `amount` is no plausible amount of money, else None."""
    problem = size_problem(amount, MONEY_DIGITS)
    return f"{problem}: out of range for money" if problem else None


def bytes_problem(count: int) -> str | None:
    """Why `count` is no plausible number of bytes, else None."""
    if not 0 <= count <= DATA_LIMIT:
        return "is outside 0..10^18 bytes"
    return None


def moment_problem(moment: datetime) -> str | None:
    """Why `moment` is no plausible date of a reading, else None."""
    if not EARLIEST <= moment < LATEST:
        return f"is outside the years {EARLIEST.year}..{LATEST.year - 1}"
    return None


def reading_problems(reading: Reading) -> list[str]:
    """Every figure of a reading outside its range, named with the value (shortened). The
    cycle refuses such a reading as a failed check of its line, before anything computes
    with it or writes it."""
    problems = []
    for name in ("balance", "renewal_price"):
        amount = getattr(reading, name)
        if amount is not None and (why := money_problem(amount)):
            problems.append(f"{name} {_shown(amount)} {why}")
    for name in ("data_remaining", "data_total"):
        count = getattr(reading, name)
        if count is not None and (why := bytes_problem(count)):
            problems.append(f"{name} {_shown(count)} {why}")
    for name in ("checked_at", "expires_at", "renewal_at"):
        moment = getattr(reading, name)
        if moment is not None and (why := moment_problem(moment)):
            problems.append(f"{name} {moment.isoformat()} {why}")
    for name, value in reading.extras.items():
        why = _extra_problem(value)
        if why:
            problems.append(f"extras.{name} {_shown(value)} {why}")
    return problems


def _extra_problem(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return "is outside -10^18..10^18" if abs(value) > DATA_LIMIT else None
    if isinstance(value, float):
        value = Decimal(repr(value)) if math.isfinite(value) else Decimal("NaN")
    if isinstance(value, Decimal):
        return size_problem(value, FIGURE_DIGITS)
    return None


def _shown(value: Any) -> str:
    """A figure as a message shows it: str(Decimal) is scientific past its exponent, and
    a number of a million digits is cut."""
    text = str(value) if isinstance(value, Decimal) or abs(value) < 10**40 else f"{value:.3e}"
    return text if len(text) <= 40 else text[:39] + "…"


@dataclass(frozen=True)
class MetricResult:
    """One metric of one reading judged against its thresholds."""

    metric: str
    level: Level
    value: str
    threshold: str | None = None


@dataclass(frozen=True)
class ExpiryNotice:
    """The expiry reminders sent for one expiry date: a new date (a renewal) resets them."""

    expires_at: datetime
    sent: frozenset[str] = frozenset()
    """The reminder offsets sent, as the config spells them ("3d"): the `offset` fact."""


@dataclass(frozen=True)
class Notices:
    """What a line's one-shot notices were about, so each is sent once per occasion and
    again when the occasion moves."""

    critical_since: datetime | None = None
    """When the line's current critical spell began (None: not critical)."""
    escalated: datetime | None = None
    """The `critical_since` of the spell whose escalation went out: once per spell."""
    expiry: ExpiryNotice | None = None
    renewal_risk: datetime | None = None
    """The renewal date whose risk notice went out: sent again only for another date."""
    folded: str | None = None
    """The account whose failure alert stands for this line's (its own was folded into it),
    so the line's own recovery is folded too."""


@dataclass(frozen=True)
class LineState:
    """What the daemon remembers of a line between checks; persisted so restarts do not re-alert."""

    line: str
    level: Level | None = None
    """None until the first successful reading."""
    metrics: Mapping[str, Level] = field(default_factory=dict)
    low_since: datetime | None = None
    last_alert_at: datetime | None = None
    failures: int = 0
    failure_alerted: bool = False
    last_error: str | None = None
    checked_at: datetime | None = None
    last_success_at: datetime | None = None
    notices: Notices = field(default_factory=Notices)

    @property
    def state(self) -> str:
        return "unknown" if self.level is None else self.level.label


@dataclass(frozen=True)
class Controls:
    """What a person said about a line: snoozed until a time, or acknowledged at a level.

    Kept apart from LineState (their own table) so a `snooze` from the CLI is never
    overwritten by the daemon recording a check at the same moment."""

    snoozed_until: datetime | None = None
    acked_level: Level | None = None
    acked_at: datetime | None = None

    def snoozed(self, now: datetime) -> bool:
        return self.snoozed_until is not None and now < self.snoozed_until


TIME_FACTS: tuple[str, ...] = ("expires_at", "low_since", "renewal_at", "frees_at")
"""The event facts that are times: aware datetimes (messages show them in the configured
time zone, the store writes them as it writes every time)."""


@dataclass(frozen=True)
class Event:
    """Something worth telling someone. `facts` are the template variables: text, numbers,
    lists, and aware datetimes under the `TIME_FACTS` names."""

    type: str
    line: str
    created_at: datetime
    facts: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}")
        for name in TIME_FACTS:
            moment = self.facts.get(name)
            if moment is not None and (not isinstance(moment, datetime) or moment.tzinfo is None):
                raise TypeError(f"Event fact {name!r} must be an aware datetime, not {moment!r}")


@dataclass(frozen=True)
class TopUpRequest:
    """One top-up to carry out. `key` is its idempotency key: one need, one key."""

    line: str
    key: str
    requested_at: datetime
    package: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)
    """The line's fields (label, balance, data...) for actions that hand them on."""


@dataclass(frozen=True)
class TopUpResult:
    """What a top-up call answered: the provider's reference and price when it says."""

    reference: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class HookSubscription:
    """One webhook registration with a provider (`hooks subscribe`), as it answered: what
    it registered, or why it refused (`error`; nothing registered for that kind)."""

    kind: str
    """The provider's name for the notifications ("webhook_low_data")."""
    url: str | None = None
    """Where the provider says it will send them (its contact point)."""
    levels: tuple[int, ...] = ()
    """Thresholds the provider confirmed, where the kind takes them (percent)."""
    message: str | None = None
    """The provider's own word on it ("success")."""
    error: str | None = None
