"""Twilio: the account's balance, or a Super SIM's data used this billing period against
its Fleet's data limit.

Facts from Twilio's OpenAPI (twilio/twilio-oai, spec/json/twilio_api_v2010.json and
twilio_supersim_v1.json): HTTP Basic `Sid:AuthToken`, balance as a string with its currency,
Super SIM on a second host (`supersim_base_url`), usage in bytes (`data_total`), the Fleet's
`data_limit` in decimal MB per billing period, `BillingPeriods` paged (`PageSize` default 50,
`meta.next_page_url`), and the Super SIM `status` one of new, ready, active, inactive,
scheduled.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

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

MAX_PAGES = 20
"""Billing-period pages followed at most (50 periods each: four years of monthly periods)."""

NOT_IN_SERVICE = {
    "new": "new: not yet in service (the Super SIM has not been activated)",
    "scheduled": "scheduled: a status change is pending",
}
"""Ok, with the status named: thresholds judge active and ready, inactive is critical."""


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

    @classmethod
    def reports(cls, options: TwilioLine) -> frozenset[str]:
        """A Super SIM's data; without `sim`, the account balance."""
        return frozenset({"data"} if options.sim else {"balance"})

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
        status = record.get("status")
        status = str(status) if status is not None else None
        return self.reading(
            data_remaining=remaining,
            data_total=total,
            status=NOT_IN_SERVICE.get(status or "", status),
            critical_reason="inactive: the Super SIM cannot connect"
            if status == "inactive"
            else None,
            extras=extras,
            raw=raw,
        )

    def _current_period(
        self, session: Session, budget: Budget, host: str, sid: str
    ) -> tuple[datetime, datetime] | None:
        """The billing period that contains now, on whichever page it is, else the latest;
        None before activation. Each next page is asked of the configured host: only the
        path and query of `meta.next_page_url` are taken."""
        url: str | None = f"{host}/v1/Sims/{segment(sid)}/BillingPeriods"
        spans: list[tuple[datetime, datetime]] = []
        now = utcnow()
        for _ in range(MAX_PAGES):
            if url is None:
                break
            payload = session.get_json(url, budget=budget)
            periods = dig(payload, "billing_periods")
            if not isinstance(periods, list):
                raise BadAnswer("Twilio sent no billing periods", raw=raw_excerpt(payload))
            for period in periods:
                span = (
                    parse_time(dig(period, "start_time"), "start_time"),
                    parse_time(dig(period, "end_time"), "end_time"),
                )
                if span[0] <= now < span[1]:
                    return span
                spans.append(span)
            url = _next_page(payload, host)
        return max(spans) if spans else None


def _next_page(payload: Any, host: str) -> str | None:
    meta = payload.get("meta") if isinstance(payload, dict) else None
    link = meta.get("next_page_url") if isinstance(meta, dict) else None
    if not isinstance(link, str) or not link:
        return None
    parts = urlsplit(link)
    return f"{host}{parts.path}" + (f"?{parts.query}" if parts.query else "")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
