"""1NCE Management API: a SIM's data quota (and SMS quota when asked) by ICCID.

Facts from the reference (providers.md, "1NCE Management API"): tokens come from
`POST /oauth/token` with HTTP Basic and last an hour; quota volumes are megabytes as floats
(read as decimal MB, the raw figure kept); 422 means the SIM has expired, which is an alert,
not a failure. 1NCE has no money balance to watch, so every line names its ICCID.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from monitor.adapters.http import (
    Auth,
    BaseUrl,
    BasicAuth,
    Budget,
    HttpAccountOptions,
    HttpAdapter,
    Iccid,
    Session,
    Token,
    TokenAuth,
    dig,
    dig_object,
    parse_time,
    segment,
    to_bytes,
    to_count,
    token_key,
)
from monitor.model import Reading

MB = 10**6
"""1NCE does not say which MB it means: decimal, as the reference advises."""

EXPIRED = 422


class OnceAccount(HttpAccountOptions):
    username: str = Field(min_length=1, description="API user name")
    password: SecretStr = Field(description="API user password")
    base_url: BaseUrl = Field(
        default="https://api.1nce.com/management-api",
        description="everything before /oauth/token and /v1/...",
    )


class OnceLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    iccid: Iccid = Field(description="the SIM's ICCID")
    quotas: list[Literal["sms"]] = Field(
        default_factory=list, description='also read these quotas: ["sms"]'
    )


class OnceAdapter(HttpAdapter):
    name = "1nce"
    provider = "1NCE"
    description = "1NCE Management API: data (and SMS) quota and expiry by ICCID."
    Options = OnceLine
    AccountOptions = OnceAccount

    def make_auth(self) -> Auth:
        options: OnceAccount = self.account_ref.options
        key = token_key("1nce", self.account_ref.name, options.base_url, options.username)
        return TokenAuth(self.context.tokens, key, partial(fetch_token, options))

    def read(self) -> Reading:
        options: OnceLine = self.options
        session = self.session
        budget = session.budget()
        expired, data = self._quota(session, budget, options.iccid, "data")
        if expired:
            return self.reading(status="EXPIRED", critical_reason="expired", raw=data)
        extras: dict[str, int] = {}
        raw: dict[str, Any] = {"data": data}
        if "sms" in options.quotas:
            expired, sms = self._quota(session, budget, options.iccid, "sms")
            if expired:
                return self.reading(status="EXPIRED", critical_reason="expired", raw=sms)
            raw["sms"] = sms
            extras["sms_remaining"] = to_count(dig(sms, "volume"), "SMS volume")
            extras["sms_total"] = to_count(dig(sms, "total_volume"), "SMS total_volume")
        expiry = data.get("expiry_date")
        return self.reading(
            data_remaining=to_bytes(dig(data, "volume"), MB, "data volume"),
            data_total=to_bytes(dig(data, "total_volume"), MB, "data total_volume"),
            expires_at=parse_time(expiry, "expiry_date") if expiry else None,
            extras=extras,
            raw=raw,
        )

    def _quota(self, session: Session, budget: Budget, iccid: str, kind: str) -> tuple[bool, Any]:
        """(expired, body): 1NCE answers 422 for an expired SIM, else the quota object."""
        response = session.request("GET", f"/v1/sims/{segment(iccid)}/quota/{kind}", budget=budget)
        if response.status_code == EXPIRED:
            return True, session.redact(response.text[:2000])
        session.check_status(
            response,
            {404: f"1NCE does not know the ICCID {iccid} (account {self.account_ref.name})"},
        )
        return False, dig_object(session.parse_json(response), what=f"{kind} quota")


def fetch_token(options: OnceAccount, session: Session, budget: Budget) -> Token:
    """POST /oauth/token with HTTP Basic; a 400 (BadCredentials) is a refused login too."""
    basic = BasicAuth(options.username, options.password)
    response = session.request(
        "POST",
        "/oauth/token",
        json={"grant_type": "client_credentials"},
        headers=basic.headers(session, budget),
        budget=budget,
        authenticate=False,
    )
    if response.status_code in (400, 401, 403):
        raise session.auth_failed(response)
    session.check_status(response)
    payload = dig_object(session.parse_json(response), what="token answer")
    return Token.lasting(dig(payload, "access_token"), payload.get("expires_in"))
