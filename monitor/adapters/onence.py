"""1NCE Management API: a SIM's data quota (and SMS quota when asked) by ICCID.

Facts from 1NCE's OpenAPI: tokens come from `POST /oauth/token` with HTTP Basic and last
an hour; quota volumes are binary megabytes as floats ("1 megabyte = 1024 kilobytes", the
raw figure kept); 422 means the SIM has expired, which is an alert, not a failure. 1NCE has
no money balance to watch, so every line names its ICCID.

Top-ups (the recharge `provider` action): `POST /v1/sims/{iccid}/topup?payment_method=...`
buys the SIM's one standard top-up and answers 201 with the order in `Location`. It is sent
once, never retried; 1NCE documents no way to list a SIM's orders, so after a crash whether
it went through cannot be told, and a person is asked to look.
"""

from __future__ import annotations

import re
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
    send_top_up,
    to_bytes,
    to_count,
    token_key,
    top_up_refused,
)
from monitor.errors import TopUpFailed, TopUpUnknown
from monitor.model import Reading, TopUpRequest, TopUpResult

MB = 2**20
"""1NCE's megabyte: "1 megabyte = 1024 kilobytes" (v2 OpenAPI, `SimsQuota.volume`)."""

EXPIRED = 422

PACKAGE = "topup"
"""What `package` may say for a 1NCE line (or be left out): 1NCE sells one top-up per SIM."""

PaymentMethod = Literal["banktransfer", "creditcard", "monthlyinvoice"]


class OnceAccount(HttpAccountOptions):
    username: str = Field(min_length=1, description="API user name")
    password: SecretStr = Field(description="API user password")
    base_url: BaseUrl = Field(
        default="https://api.1nce.com/management-api",
        description="everything before /oauth/token and /v1/...",
    )
    payment_method: PaymentMethod = Field(
        default="banktransfer",
        description="how 1NCE bills a top-up: banktransfer (1NCE's own default), creditcard "
        "(a card saved in the 1NCE portal) or monthlyinvoice (where the contract has it)",
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
    sizes = "binary"  # v2 OpenAPI `SimsQuota.volume`: "1 megabyte = 1024 kilobytes"

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

    supports_top_up = True

    @classmethod
    def top_up_problems(cls, package: str | None, amount: Any) -> list[str]:
        """1NCE sells one standard top-up per SIM: nothing to choose."""
        if amount is not None:
            return ["1NCE sells one fixed top-up per SIM: leave `amount` out"]
        if package not in (None, "topup"):
            return ['1NCE sells one fixed top-up per SIM: leave `package` out (or "topup")']
        return []

    def top_up(self, request: TopUpRequest) -> TopUpResult:
        """Buy the SIM's standard top-up once, billed by the account's `payment_method`. 1NCE
        answers 201 with no body: the order id (from `Location`) is the reference, and the
        price is not said (a spend cap uses the configured `price`)."""
        self._check_request(request)
        options: OnceLine = self.options
        account: OnceAccount = self.account_ref.options
        name = self.account_ref.name
        what = f"the 1NCE top-up of SIM {options.iccid} (account {name})"
        response = send_top_up(
            self.session,
            "POST",
            f"/v1/sims/{segment(options.iccid)}/topup",
            what=what,
            params={"payment_method": account.payment_method},
            refusals={
                400: f"1NCE does not take the payment method {account.payment_method!r}: set "
                f"`payment_method` of account {name} to one the 1NCE account can use",
                403: f"the SIM is not one of account {name}'s",
                404: "1NCE does not know the SIM: check the line's `iccid`",
                EXPIRED: "the SIM has expired, and a top-up does not revive it: extend it in "
                "the 1NCE portal",
            },
        )
        if not response.is_success:
            raise top_up_refused(self.session, response, what)
        location = response.headers.get("Location", "")
        match = re.search(r"/orders/([^/?#]+)", location)
        return TopUpResult(
            reference=match[1] if match else None,
            detail=f"1NCE order {match[1]}" if match else f"1NCE answered {response.status_code}",
        )

    def find_top_up(self, request: TopUpRequest) -> TopUpResult | None:
        """1NCE documents no way to list a SIM's top-up orders (the reference names none), so
        an interrupted top-up cannot be looked up: unknown, and a person checks the portal."""
        try:
            self._check_request(request)
        except TopUpFailed:
            return None  # top_up refuses such a request before sending anything
        raise TopUpUnknown(
            f"1NCE cannot be asked whether the interrupted top-up of SIM "
            f"{self.options.iccid} went through: check the orders in the 1NCE portal"
        )

    def _check_request(self, request: TopUpRequest) -> None:
        """Refuse, before sending, what 1NCE cannot sell, rather than buy something else."""
        if request.amount is not None or request.package not in (None, PACKAGE):
            raise TopUpFailed(
                f"1NCE sells one top-up per SIM, neither packages nor amounts: set "
                f'package = "{PACKAGE}" (or leave it out) and remove `amount`'
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
