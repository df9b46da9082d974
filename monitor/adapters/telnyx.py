"""Telnyx: the account's balance, or a SIM card's data consumed against its data limit.

Facts from the reference (providers.md, "Telnyx"): Bearer API key, amounts as decimal
strings, data figures as `{amount, unit}` where MB is read as decimal (10^6) and the raw
figure is kept.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from monitor.adapters.http import (
    Auth,
    BadAnswer,
    BaseUrl,
    BearerAuth,
    Budget,
    HttpAccountOptions,
    HttpAdapter,
    Session,
    dig,
    dig_object,
    segment,
    to_bytes,
    to_currency,
    to_decimal,
)
from monitor.model import Reading

UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
"""Telnyx does not say which MB it means: decimal, as the reference advises."""


class TelnyxAccount(HttpAccountOptions):
    api_key: SecretStr = Field(description="API key (sent as a Bearer token)")
    base_url: BaseUrl = Field(
        default="https://api.telnyx.com", description="everything before /v2/..."
    )


class TelnyxLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sim_card_id: str | None = Field(
        default=None,
        min_length=1,
        description="the SIM card's id; without it the line watches the balance",
    )


class TelnyxAdapter(HttpAdapter):
    name = "telnyx"
    provider = "Telnyx"
    description = "Telnyx: account balance, or a SIM card's data against its data limit."
    Options = TelnyxLine
    AccountOptions = TelnyxAccount

    def make_auth(self) -> Auth:
        options: TelnyxAccount = self.account_ref.options
        return BearerAuth(options.api_key)

    def read(self) -> Reading:
        options: TelnyxLine = self.options
        session = self.session
        budget = session.budget()
        if options.sim_card_id is None:
            return self._balance(session, budget)
        return self._sim_card(session, budget, options.sim_card_id)

    def _balance(self, session: Session, budget: Budget) -> Reading:
        payload = session.get_json("/v2/balance", budget=budget)
        data = dig_object(payload, "data", what="balance")
        extras = {}
        if data.get("available_credit") is not None:
            extras["available_credit"] = to_decimal(data["available_credit"], "available_credit")
        return self.reading(
            balance=to_decimal(dig(data, "balance"), "balance"),
            currency=to_currency(dig(data, "currency")),
            extras=extras,
            raw=payload,
        )

    def _sim_card(self, session: Session, budget: Budget, sim_card_id: str) -> Reading:
        unknown = (
            f"Telnyx does not know the SIM card {sim_card_id} (account {self.account_ref.name})"
        )
        payload = session.get_json(
            f"/v2/sim_cards/{segment(sim_card_id)}", budget=budget, errors={404: unknown}
        )
        data = dig_object(payload, "data", what="SIM card")
        used = _size(data.get("current_billing_period_consumed_data"), "consumed data")
        limit = _size(data.get("data_limit"), "data_limit")
        status = data.get("status")
        if isinstance(status, dict):
            status = status.get("value")
        return self.reading(
            data_remaining=max(limit - (used or 0), 0) if limit is not None else None,
            data_total=limit,
            status=str(status) if status is not None else None,
            extras={"data_used": used} if used is not None else {},
            raw=payload,
        )


def _size(figure: Any, what: str) -> int | None:
    """`{"amount": "2048.1", "unit": "MB"}` as bytes; None when Telnyx sets no figure."""
    if figure is None:
        return None
    amount = dig(figure, "amount", what=f"{what} amount")
    if amount is None:
        return None
    unit = str(dig(figure, "unit", what=f"{what} unit")).strip().upper()
    if unit not in UNITS:
        raise BadAnswer(f"Telnyx sent {what} in an unknown unit: {unit!r}")
    return to_bytes(amount, UNITS[unit], what)
