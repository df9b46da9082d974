"""A plan line: no reading source at all, only what its owner declares (when it renews,
what a renewal costs). Each check says when the plan renews next, so the expiry
thresholds, `expiry_reminders` and `renewal-risk` (against a balance recorded by hand)
apply to any carrier on earth. The date logic is `monitor.plans`.

The owner's `record LINE --renewed` is kept in the adapters' own small state (the token
cache beside the history), so it outlives restarts and every process sees it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.adapters import Adapter
from monitor.config import Money
from monitor.errors import UnitError
from monitor.model import Reading, utcnow
from monitor.plans import Every, end_of_day, next_renewal, parse_renews, start_of_day


class PlanOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    renews: str | None = Field(
        default=None,
        description="'monthly DAY' (the DAY of each month; 31 = the last day of shorter "
        "months) or 'every Nd' (N days from renewed_at)",
    )
    renewed_at: datetime | date | None = Field(
        default=None, description="when an 'every Nd' plan last renewed (a date: its start)"
    )
    expires_at: datetime | date | None = Field(
        default=None, description="instead of renews: a fixed end (a date: the end of that day)"
    )
    price: Money | None = Field(default=None, gt=0, description="what a renewal costs")
    currency: str | None = Field(
        default=None, pattern=r"^[A-Z]{3}$", description="ISO 4217 code of price (and balance)"
    )

    @field_validator("renews")
    @classmethod
    def _rule(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_renews(value)
            except UnitError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _complete(self) -> PlanOptions:
        if (self.renews is None) == (self.expires_at is None):
            raise ValueError("set either renews ('monthly 5', 'every 30d') or expires_at")
        every = self.renews is not None and isinstance(parse_renews(self.renews), Every)
        if every and self.renewed_at is None:
            raise ValueError(f"renews = {self.renews!r} counts from renewed_at: set it")
        if self.price is not None and self.currency is None:
            raise ValueError("price needs the currency it is in")
        return self


class PlanAdapter(Adapter):
    name = "plan"
    description = "A plan its owner declares (renews monthly or every N days, its price): no API."
    Options = PlanOptions

    @property
    def _key(self) -> str:
        return f"plan-renewed:{self.line_id}"

    def confirmed(self) -> datetime | None:
        """When the owner last said the plan renewed (`record --renewed`)."""
        stored = self.context.tokens.get(self._key)
        return datetime.fromisoformat(stored) if stored else None

    def confirm(self, now: datetime) -> None:
        """The plan renewed now: on to its next period."""
        self.context.tokens.put(self._key, now.astimezone(UTC).isoformat(), None)

    def read(self) -> Reading:
        o: PlanOptions = self.options
        now = utcnow()
        tz = self.context.tz
        if o.expires_at is not None:
            renews = _moment(o.expires_at, tz, end=True)
        else:
            assert o.renews is not None  # the options say one of the two
            anchor = _moment(o.renewed_at, tz, end=False) if o.renewed_at else None
            rule = parse_renews(o.renews)
            renews = next_renewal(rule, now, tz, anchor=anchor, confirmed=self.confirmed())
        return Reading(
            line=self.line_id,
            checked_at=now,
            currency=o.currency,
            expires_at=renews,
            renewal_at=renews if o.price is not None else None,
            renewal_price=o.price,
            raw={"plan": o.renews or "fixed"},
        )


def _moment(value: datetime | date, tz: Any, *, end: bool) -> datetime:
    """A config date or time as an aware UTC time: a date is its start (a renewal) or its
    end (an expiry) in the zone; a time without an offset is the zone's."""
    if not isinstance(value, datetime):
        return end_of_day(value, tz) if end else start_of_day(value, tz)
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)
