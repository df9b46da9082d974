"""Airalo Partner API: an eSIM's data left and expiry by ICCID, or the partner's credit.

Facts from the reference (providers.md, "Airalo Partner API"): usage figures are binary
megabytes, `expired_at` has no zone (UTC), unlimited plans report 0 for both figures,
EXPIRED and RECYCLED are conditions to alert on rather than failures, and the token
endpoint allows three requests a minute, so the token lives in the database.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from monitor.adapters.http import (
    Auth,
    BadAnswer,
    BaseUrl,
    Budget,
    HttpAccountOptions,
    HttpAdapter,
    Iccid,
    ProviderRefused,
    Session,
    Token,
    TokenAuth,
    dig,
    dig_object,
    parse_time,
    provider_message,
    raw_excerpt,
    segment,
    to_bytes,
    to_count,
    to_currency,
    to_decimal,
    token_key,
)
from monitor.model import Reading

MB = 2**20
"""Airalo's MB is binary: a "3 GB" package has `amount: 3072`."""

CRITICAL_STATUSES = {"EXPIRED": "expired", "RECYCLED": "recycled"}
RECYCLED_CODE = 73


class AiraloAccount(HttpAccountOptions):
    client_id: str = Field(min_length=1, description="Partner API client id")
    client_secret: SecretStr = Field(description="Partner API client secret")
    base_url: BaseUrl = Field(
        default="https://partners-api.airalo.com",
        description="everything before /v2/...",
    )


class AiraloLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    iccid: Iccid | None = Field(
        default=None, description="the eSIM's ICCID; without it the line watches partner credit"
    )
    quotas: list[Literal["sms", "voice"]] = Field(
        default_factory=list, description='also read these quotas: ["sms", "voice"]'
    )


class AiraloAdapter(HttpAdapter):
    name = "airalo"
    provider = "Airalo"
    description = "Airalo Partner API: eSIM data, expiry and status by ICCID, or partner credit."
    Options = AiraloLine
    AccountOptions = AiraloAccount
    min_interval = timedelta(minutes=20)
    rate_limit = 4.0
    """Airalo allows 5 requests a second per company: stay below."""

    def make_auth(self) -> Auth:
        options: AiraloAccount = self.account_ref.options
        key = token_key("airalo", self.account_ref.name, options.base_url, options.client_id)
        return TokenAuth(self.context.tokens, key, partial(fetch_token, options))

    def read(self) -> Reading:
        options: AiraloLine = self.options
        session = self.session
        budget = session.budget()
        if options.iccid is None:
            return self._credit(session, budget)
        return self._usage(session, budget, options.iccid, options.quotas)

    def _usage(self, session: Session, budget: Budget, iccid: str, quotas: list[str]) -> Reading:
        response = session.request("GET", f"/v2/sims/{segment(iccid)}/usage", budget=budget)
        if response.status_code == 422:
            body = session.parse_json(response)
            code = body.get("code") if isinstance(body, dict) else None
            if code == RECYCLED_CODE:
                return self.reading(status="RECYCLED", critical_reason="recycled", raw=body)
            reason = provider_message(body) or "no reason given"
            raise ProviderRefused(
                f"Airalo refused the usage of ICCID {iccid} for account "
                f"{self.account_ref.name}: {reason} (code {code})",
                raw=session.redact(response.text[:2000]),
                status=422,
            )
        session.check_status(
            response,
            {404: f"Airalo does not know the ICCID {iccid} (account {self.account_ref.name})"},
        )
        payload = session.parse_json(response)
        data = dig_object(payload, "data", what="usage")
        status = str(data.get("status") or "").upper() or None
        remaining = total = None
        if data.get("is_unlimited") is not True:
            remaining = to_bytes(dig(data, "remaining"), MB, "remaining data")
            total = to_bytes(dig(data, "total"), MB, "total data")
        expired_at = data.get("expired_at")
        expires = parse_time(expired_at, "expired_at") if expired_at else None
        return self.reading(
            data_remaining=remaining,
            data_total=total,
            expires_at=expires,
            status=status,
            critical_reason=CRITICAL_STATUSES.get(status or ""),
            extras=_quotas(data, quotas),
            raw=payload,
        )

    def _credit(self, session: Session, budget: Budget) -> Reading:
        payload = session.get_json("/v2/balance", budget=budget)
        balances = dig(payload, "data", "balances")
        if isinstance(balances, list):
            if not balances:
                raise BadAnswer("Airalo sent no balance", raw=raw_excerpt(payload))
            balances = balances[0]
        available = dig(balances, "availableBalance", what="availableBalance")
        return self.reading(
            balance=to_decimal(dig(available, "amount", what="balance amount"), "balance"),
            currency=to_currency(dig(available, "currency", what="balance currency")),
            raw=payload,
        )


def fetch_token(options: AiraloAccount, session: Session, budget: Budget) -> Token:
    """POST /v2/token (multipart form); retried like a read: it spends nothing."""
    response = session.request(
        "POST",
        "/v2/token",
        files={
            "client_id": (None, options.client_id),
            "client_secret": (None, options.client_secret.get_secret_value()),
            "grant_type": (None, "client_credentials"),
        },
        budget=budget,
        authenticate=False,
    )
    if response.status_code in (400, 401, 403, 422):
        raise session.auth_failed(response)
    session.check_status(response)
    data = dig_object(session.parse_json(response), "data", what="token answer")
    return Token.lasting(dig(data, "access_token"), data.get("expires_in"))


def _quotas(data: dict[str, Any], wanted: list[str]) -> dict[str, int]:
    """Texts and voice minutes, only for lines that ask: most data eSIMs have none."""
    extras: dict[str, int] = {}
    if "sms" in wanted:
        extras["sms_remaining"] = to_count(dig(data, "remaining_text"), "remaining texts")
        extras["sms_total"] = to_count(dig(data, "total_text"), "total texts")
    if "voice" in wanted:
        extras["voice_minutes_remaining"] = to_count(
            dig(data, "remaining_voice"), "remaining voice minutes"
        )
        extras["voice_minutes_total"] = to_count(dig(data, "total_voice"), "total voice minutes")
    return extras
