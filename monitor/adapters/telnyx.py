"""Telnyx: the account's balance, or a SIM card's data consumed against its data limit
and its SIM card group's.

Facts from Telnyx's OpenAPI spec (team-telnyx/openapi, openapi/spec3.json): Bearer API key,
amounts as decimal strings (`UserBalance`), data figures as `{amount, unit}` (`SIMCard.
data_limit`, `current_billing_period_consumed_data`; MB or GB, read as decimal: Telnyx does
not say which, the raw figure is kept), `SIMCard.status.value` one of the eight
`SIMCardStatus` values, and a group limit (`SIMCardGroup.data_limit`: "Upper limit on the
amount of data the SIM cards, within the group, can use", against the group's
`consumed_data`); SIMs over either limit enter `data_limit_exceeded`.

Webhooks (`monitor.webhooks.telnyx`) are verified with the account's `webhook_public_key`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

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

NOT_IN_SERVICE = {"registering": "being registered", "enabling": "being enabled"}
"""States on the way into service: ok, the status says so (not yet in service)."""
WARNING_STATES = {"disabling": "being disabled", "setting_standby": "being set to standby"}
CRITICAL_STATES = {
    "disabled": "disabled: the SIM card cannot be used",
    "standby": "in standby: the SIM card is not in service",
    "data_limit_exceeded": "data limit exceeded: the SIM card has no data until the limit rises",
}
IN_SERVICE = "enabled"


class TelnyxAccount(HttpAccountOptions):
    api_key: SecretStr = Field(description="API key (sent as a Bearer token)")
    base_url: BaseUrl = Field(
        default="https://api.telnyx.com", description="everything before /v2/..."
    )
    webhook_public_key: SecretStr | None = Field(
        default=None,
        description="the portal's public key (Base64) Telnyx's webhooks are verified with "
        "(POST /hooks/ACCOUNT)",
    )

    credential_keys: ClassVar[str | None] = "`api_key`"

    @field_validator("webhook_public_key")
    @classmethod
    def _ed25519_key(cls, value: SecretStr | None) -> SecretStr | None:
        """Checked here, so a mistyped key is a config error, not a 401 on every webhook;
        the message does not echo it."""
        if value is not None and not _is_key(value.get_secret_value()):
            raise ValueError(
                "is not an Ed25519 public key: the Base64 of 32 bytes, as the portal shows it"
            )
        return value


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

    @classmethod
    def reports(cls, options: TelnyxLine) -> frozenset[str]:
        """A SIM card's data; without `sim_card_id`, the account balance."""
        return frozenset({"data"} if options.sim_card_id else {"balance"})

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
        limits: list[tuple[int, int, str]] = []  # (remaining, limit, whose)
        limit = _size(data.get("data_limit"), "data_limit")
        if limit is not None:
            limits.append((max(limit - (used or 0), 0), limit, "SIM card"))
        raw: dict[str, Any] = {"sim_card": payload}
        group_id = data.get("sim_card_group_id")
        if group_id:
            group = self._group(session, budget, str(group_id))
            raw["sim_card_group"] = group
            group_limit = _size(group.get("data_limit"), "group data_limit")
            if group_limit is not None:
                group_used = _size(group.get("consumed_data"), "group consumed_data") or 0
                limits.append((max(group_limit - group_used, 0), group_limit, "SIM card group"))
        extras: dict[str, Any] = {"data_used": used} if used is not None else {}
        remaining = total = None
        if limits:
            remaining, total, whose = min(limits)
            extras["data_limit_of"] = whose
        status, warning, critical = _status(data.get("status"))
        return self.reading(
            data_remaining=remaining,
            data_total=total,
            status=status,
            warning_reason=warning,
            critical_reason=critical,
            extras=extras,
            raw=raw,
        )

    def _group(self, session: Session, budget: Budget, group_id: str) -> dict[str, Any]:
        """The SIM's card group: its data limit counts for the SIM as well."""
        unknown = f"Telnyx does not know the SIM card group {group_id}"
        payload = session.get_json(
            f"/v2/sim_card_groups/{segment(group_id)}", budget=budget, errors={404: unknown}
        )
        return dig_object(payload, "data", what="SIM card group")


def _is_key(text: str) -> bool:
    """Base64 of 32 bytes: an Ed25519 public key's form (the webhook checks the rest)."""
    try:
        return len(base64.b64decode(text.strip(), validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _status(status: Any) -> tuple[str | None, str | None, str | None]:
    """(status text, warning reason, critical reason) of `SIMCardStatus`: enabled is judged
    by the figures; on the way in, ok with the state named; on the way out, a warning; out
    of service, critical. A value Telnyx does not document is a warning, never ignored."""
    reason = None
    if isinstance(status, dict):
        reason = status.get("reason")
        status = status.get("value")
    if status is None:
        return None, None, None
    value = str(status)
    text = value + (f" ({reason})" if reason else "")
    if value == IN_SERVICE:
        return value, None, None
    if value in NOT_IN_SERVICE:
        return f"{value}: not yet in service, {NOT_IN_SERVICE[value]}", None, None
    if value in WARNING_STATES:
        return text, WARNING_STATES[value], None
    if value in CRITICAL_STATES:
        return text, None, CRITICAL_STATES[value]
    return text, f"status {value!r} is not one Telnyx documents", None


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
