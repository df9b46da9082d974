"""Twilio: the account's balance, or a Super SIM's data used this billing period against
its Fleet's data limit.

Facts from the reference (providers.md, "Twilio"): HTTP Basic `Sid:AuthToken`, balance as
a string with its currency, Super SIM on a second host (`supersim_base_url`), usage in
bytes, the Fleet's `data_limit` in decimal MB per billing period.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from monitor.adapters.http import (
    Auth,
    BadAnswer,
    BaseUrl,
    BasicAuth,
    Budget,
    HttpAccountOptions,
    HttpAdapter,
    Session,
    dig,
    dig_object,
    parse_time,
    raw_excerpt,
    segment,
    to_bytes,
    to_currency,
    to_decimal,
)
from monitor.model import Reading, utcnow

MB = 10**6
"""Twilio's MB is decimal: a fleet limit runs "from 1 MB (1) to 2 TB (2,000,000)"."""


class TwilioAccount(HttpAccountOptions):
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$", description="Account SID (AC...)")
    auth_token: SecretStr = Field(description="Auth token")
    base_url: BaseUrl = Field(
        default="https://api.twilio.com", description="everything before /2010-04-01/..."
    )
    supersim_base_url: BaseUrl = Field(
        default="https://supersim.twilio.com", description="Super SIM host, before /v1/..."
    )


class TwilioLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sim: str | None = Field(
        default=None,
        min_length=1,
        description="Super SIM SID (HS...) or unique name; without it the line watches balance",
    )


class TwilioAdapter(HttpAdapter):
    name = "twilio"
    provider = "Twilio"
    description = "Twilio: account balance, or a Super SIM's data against its fleet limit."
    Options = TwilioLine
    AccountOptions = TwilioAccount

    def make_auth(self) -> Auth:
        options: TwilioAccount = self.account_ref.options
        return BasicAuth(options.account_sid, options.auth_token)

    def read(self) -> Reading:
        options: TwilioLine = self.options
        session = self.session
        budget = session.budget()
        if options.sim is None:
            return self._balance(session, budget)
        return self._super_sim(session, budget, options.sim)

    def _balance(self, session: Session, budget: Budget) -> Reading:
        account: TwilioAccount = self.account_ref.options
        payload = session.get_json(
            f"/2010-04-01/Accounts/{segment(account.account_sid)}/Balance.json", budget=budget
        )
        return self.reading(
            balance=to_decimal(dig(payload, "balance"), "balance"),
            currency=to_currency(dig(payload, "currency")),
            raw=payload,
        )

    def _super_sim(self, session: Session, budget: Budget, sim: str) -> Reading:
        host = self.account_ref.options.supersim_base_url
        unknown = f"Twilio does not know the Super SIM {sim} (account {self.account_ref.name})"
        record = dig_object(
            session.get_json(
                f"{host}/v1/Sims/{segment(sim)}", budget=budget, errors={404: unknown}
            ),
            what="Super SIM",
        )
        sid = dig(record, "sid")
        period = self._current_period(session, budget, host, sid)
        raw: dict[str, Any] = {"sim": record}
        used = 0  # no billing period yet: the SIM has never been used
        if period is not None:
            params = {
                "Sim": str(sid),
                "Granularity": "all",
                "StartTime": _iso(period[0]),
                "EndTime": _iso(min(period[1], utcnow())),
            }
            usage = session.get_json(f"{host}/v1/UsageRecords", params=params, budget=budget)
            records = dig(usage, "usage_records")
            if not isinstance(records, list):
                raise BadAnswer("Twilio sent no usage records", raw=raw_excerpt(usage))
            used = sum(to_bytes(dig(r, "data_total"), 1, "data_total") for r in records)
            raw["usage"] = usage
        remaining = total = None
        fleet_sid = record.get("fleet_sid")
        if fleet_sid:
            fleet = dig_object(
                session.get_json(f"{host}/v1/Fleets/{segment(fleet_sid)}", budget=budget),
                what="Fleet",
            )
            raw["fleet"] = fleet
            limit = fleet.get("data_limit")
            if limit is not None:
                total = to_bytes(limit, MB, "fleet data_limit")
                remaining = max(total - used, 0)
        extras: dict[str, Any] = {"data_used": used}
        if period is not None:
            extras["period_ends_at"] = period[1].isoformat()
        return self.reading(
            data_remaining=remaining,
            data_total=total,
            status=record.get("status"),
            extras=extras,
            raw=raw,
        )

    def _current_period(
        self, session: Session, budget: Budget, host: str, sid: str
    ) -> tuple[datetime, datetime] | None:
        """The billing period that contains now, else the latest; None before activation."""
        payload = session.get_json(f"{host}/v1/Sims/{segment(sid)}/BillingPeriods", budget=budget)
        periods = dig(payload, "billing_periods")
        if not isinstance(periods, list):
            raise BadAnswer("Twilio sent no billing periods", raw=raw_excerpt(payload))
        spans = [
            (
                parse_time(dig(p, "start_time"), "start_time"),
                parse_time(dig(p, "end_time"), "end_time"),
            )
            for p in periods
        ]
        now = utcnow()
        current = [span for span in spans if span[0] <= now < span[1]]
        return (current or sorted(spans))[-1] if spans else None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
