"""Hologram: the organisation's balance, or a SIM's data used this month against its plan.

Facts from the reference (providers.md, "Hologram"): HTTP Basic with user `apikey`, amounts
are strings, usage is in bytes and there is no per-SIM "remaining": it is computed from the
plan allowance the line's config gives (`plan_data`), for the current calendar month (UTC).
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
    provider_message,
    raw_excerpt,
    segment,
    to_bytes,
    to_decimal,
)
from monitor.config import DataSize
from monitor.model import Reading, utcnow


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
        default=None, description="the monthly data allowance, such as '1GB' (with linkid)"
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
    description = "Hologram: organisation balance, or a SIM's monthly data against its plan."
    Options = HologramLine
    AccountOptions = HologramAccount

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
        unknown = f"Hologram does not know the linkid {linkid} (account {self.account_ref.name})"
        payload = self._checked(
            session.get_json(
                "/usage/data/monthly",
                params={"linkid": linkid},
                budget=budget,
                errors={404: unknown},
            )
        )
        records = dig(payload, "data")
        if isinstance(records, dict):
            records = [records]
        if not isinstance(records, list):
            raise BadAnswer("Hologram sent no monthly usage", raw=raw_excerpt(payload))
        now = utcnow()
        used = sum(
            to_bytes(dig(record, "bytes"), 1, "bytes")
            for record in records
            if _month(record) == (now.year, now.month) and _same_link(record, linkid)
        )
        return self.reading(
            data_remaining=max(plan - used, 0),
            data_total=plan,
            extras={"data_used": used},
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


def _month(record: Any) -> tuple[int, int]:
    try:
        return int(str(dig(record, "year"))), int(str(dig(record, "month")))
    except ValueError:
        raise BadAnswer(f"Hologram sent a usage month that is not a number: {record!r}") from None


def _same_link(record: dict[str, Any], linkid: int) -> bool:
    value = record.get("linkid")
    return value is None or str(value) == str(linkid)
