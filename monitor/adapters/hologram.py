"""Hologram: the organisation's balance, or a SIM's data used in its current billing
period against its plan.

Facts from Hologram's API reference (docs.hologram.io/api/1/...): HTTP Basic with user
`apikey`, amounts are strings (`GET /organizations/{orgId}/balance`), usage is in bytes. Plans
bill "every 30 days beginning at the time the device was activated", not by calendar month:
`GET /usage/data/billing?orgid=..&linkid=..` gives each SIM's bytes per billing period
(`periods_back` "0" = the current one, `cur_period_end` its end, "YYYY-MM-DD HH:MM:SS" with no
zone, read as UTC). There is no per-SIM "remaining": it is the plan allowance the line's
config gives (`plan_data`) less the current period's use, and the period's end is the line's
renewal.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from monitor.adapters.http import (
    Auth,
    BadAnswer,
    BaseUrl,
    BasicAuth,
    Budget,
    HttpAccountOptions,
    HttpAdapter,
    ProviderRefused,
    Session,
    dig,
    parse_time,
    provider_message,
    raw_excerpt,
    segment,
    to_bytes,
    to_decimal,
)
from monitor.config import DataSize
from monitor.model import Reading


class HologramAccount(HttpAccountOptions):
    api_key: SecretStr = Field(description="API key (HTTP Basic, user 'apikey')")
    org_id: int = Field(gt=0, description="organisation id")
    currency: str = Field(
        default="USD",
        pattern=r"^[A-Z]{3}$",
        description="the balance's currency (Hologram's answer does not say)",
    )
    base_url: BaseUrl = Field(
        default="https://dashboard.hologram.io/api/1",
        description="everything before /organizations/... and /usage/...",
    )


class HologramLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    linkid: int | None = Field(
        default=None, gt=0, description="the SIM's link id; without it the line watches balance"
    )
    plan_data: DataSize | None = Field(
        default=None,
        description="the plan's data allowance per 30-day billing period, such as '1GB'",
    )

    @model_validator(mode="after")
    def _plan_with_link(self) -> Self:
        if self.linkid is not None and self.plan_data is None:
            raise ValueError("set plan_data (the monthly allowance) for a line with a linkid")
        if self.linkid is None and self.plan_data is not None:
            raise ValueError("plan_data needs a linkid (the SIM whose usage it limits)")
        return self


class HologramAdapter(HttpAdapter):
    name = "hologram"
    provider = "Hologram"
    description = "Hologram: organisation balance, or a SIM's billing-period data against its plan."
    Options = HologramLine
    AccountOptions = HologramAccount

    @classmethod
    def reports(cls, options: HologramLine) -> frozenset[str]:
        """A link's data left of `plan_data`; without both, the organisation's balance."""
        usage = options.linkid is not None and options.plan_data is not None
        return frozenset({"data"} if usage else {"balance"})

    def make_auth(self) -> Auth:
        options: HologramAccount = self.account_ref.options
        return BasicAuth("apikey", options.api_key)

    def read(self) -> Reading:
        options: HologramLine = self.options
        session = self.session
        budget = session.budget()
        if options.linkid is None or options.plan_data is None:
            return self._balance(session, budget)
        return self._usage(session, budget, options.linkid, options.plan_data)

    def _balance(self, session: Session, budget: Budget) -> Reading:
        account: HologramAccount = self.account_ref.options
        payload = self._checked(
            session.get_json(f"/organizations/{segment(account.org_id)}/balance", budget=budget)
        )
        return self.reading(
            balance=to_decimal(dig(payload, "data", "balance"), "balance"),
            currency=account.currency,
            raw=payload,
        )

    def _usage(self, session: Session, budget: Budget, linkid: int, plan: int) -> Reading:
        account: HologramAccount = self.account_ref.options
        unknown = f"Hologram does not know the linkid {linkid} (account {self.account_ref.name})"
        payload = self._checked(
            session.get_json(
                "/usage/data/billing",
                params={"orgid": account.org_id, "linkid": linkid},
                budget=budget,
                errors={404: unknown},
            )
        )
        records = dig(payload, "data")
        if isinstance(records, dict):
            records = [records]
        if not isinstance(records, list):
            raise BadAnswer("Hologram sent no billing-period usage", raw=raw_excerpt(payload))
        current = [r for r in records if _same_link(r, linkid) and _periods_back(r) == 0]
        used = sum(to_bytes(dig(record, "bytes"), 1, "bytes") for record in current)
        ends = [parse_time(dig(r, "cur_period_end"), "cur_period_end") for r in current]
        extras: dict[str, Any] = {"data_used": used}
        renewal = max(ends) if ends else None
        if renewal is not None:
            extras["period_ends_at"] = renewal.isoformat()
        return self.reading(
            data_remaining=max(plan - used, 0),
            data_total=plan,
            renewal_at=renewal,
            extras=extras,
            raw=payload,
        )

    def _checked(self, payload: Any) -> Any:
        """Hologram reports some refusals as HTTP 200 with `success: false`."""
        if isinstance(payload, dict) and payload.get("success") is False:
            reason = provider_message(payload) or "success: false"
            raise ProviderRefused(
                f"Hologram refused the request for account {self.account_ref.name}: {reason}",
                raw=raw_excerpt(payload),
            )
        return payload


def _periods_back(record: Any) -> int:
    """How many billing periods back a record is (0 = current); Hologram sends a string."""
    try:
        return int(str(dig(record, "periods_back")))
    except ValueError:
        raise BadAnswer(f"Hologram sent a periods_back that is not a number: {record!r}") from None


def _same_link(record: dict[str, Any], linkid: int) -> bool:
    value = record.get("linkid")
    return value is None or str(value) == str(linkid)
