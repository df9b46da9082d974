"""1NCE Management API: a SIM's data quota (and SMS quota when asked) by ICCID.

Facts from 1NCE's OpenAPI: tokens come from `POST /oauth/token` with HTTP Basic and last
an hour; quota volumes are binary megabytes as floats ("1 megabyte = 1024 kilobytes", the
raw figure kept); 422 means the SIM has expired, which is an alert, not a failure. 1NCE has
no money balance to watch, so every line names its ICCID.

Top-ups (the recharge `provider` action): `POST /v1/sims/{iccid}/topup?payment_method=...`
buys the SIM's one standard top-up and answers 201 with the order in `Location`. It is sent
once, never retried. The Order Management API tells the rest: `GET /v1/orders/{order_number}`
gives the order's price (`invoice_amount`, `currency`), and after a crash `GET /v1/orders`
(TOPUP orders naming the SIM, placed since the intent) says whether it went through.

Pushes: the Data Streamer's webhook (`monitor.webhooks.onence`) authenticates with the
account's `webhook_username` and `webhook_password`.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from monitor.adapters.http import (
    Auth,
    BadAnswer,
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
    raw_excerpt,
    segment,
    send_top_up,
    to_bytes,
    to_count,
    to_currency,
    to_decimal,
    token_key,
    top_up_refused,
)
from monitor.errors import CheckFailed, TopUpFailed, TopUpUnknown
from monitor.model import Reading, TopUpRequest, TopUpResult

MB = 2**20
"""1NCE's megabyte: "1 megabyte = 1024 kilobytes" (v2 OpenAPI, `SimsQuota.volume`)."""

EXPIRED = 422

PACKAGE = "topup"
"""What `package` may say for a 1NCE line (or be left out): 1NCE sells one top-up per SIM."""

PaymentMethod = Literal["banktransfer", "creditcard", "monthlyinvoice", "boleto"]
"""The SIM Management OpenAPI's `payment_method` enum for `POST /v1/sims/{iccid}/topup`."""

ORDER_PAGE = 10
"""`GET /v1/orders` pages hold at most 10 orders (`pageSize` maximum)."""

ORDER_PAGES = 20
"""Pages read at most when reconciling: /orders allows 100 requests per 5 minutes per IP."""

CLOCK_SKEW = timedelta(minutes=5)
"""An order placed up to this long before the intent was written still counts as its own:
1NCE's clock and ours may differ."""


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
        "(a card saved in the 1NCE portal), monthlyinvoice (where the contract has it) or "
        "boleto",
    )
    webhook_username: SecretStr | None = Field(
        default=None,
        description="the user of the Basic auth header the 1NCE Data Streamer sends "
        "(POST /hooks/ACCOUNT), with webhook_password",
    )
    webhook_password: SecretStr | None = Field(
        default=None,
        description="the password of the Data Streamer's Basic auth header",
    )

    credential_keys: ClassVar[str | None] = "`username` and `password`"

    @model_validator(mode="after")
    def _webhook_pair(self) -> Self:
        if (self.webhook_username is None) != (self.webhook_password is None):
            raise ValueError(
                "set both webhook_username and webhook_password (the Data Streamer's Basic "
                "auth), or neither"
            )
        return self


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

    @classmethod
    def reports(cls, options: OnceLine) -> frozenset[str]:
        """The SIM's data quota and its expiry date."""
        return frozenset({"data", "expiry"})

    sizes = "binary"  # v2 OpenAPI `SimsQuota.volume`: "1 megabyte = 1024 kilobytes"

    def make_auth(self) -> Auth:
        options: OnceAccount = self.account_ref.options
        key = token_key("1nce", self.account_ref.name, options.base_url, options.username)
        return TokenAuth(self.context.tokens, key, partial(fetch_token, options))

    def read(self) -> Reading:
        """The data quota (and SMS quota when asked). A negative `volume` is overuse (the
        v2 OpenAPI: it "can be negative"): none left, critical, the overuse named."""
        options: OnceLine = self.options
        session = self.session
        budget = session.budget()
        expired, data = self._quota(session, budget, options.iccid, "data")
        if expired:
            return self.reading(status="EXPIRED", critical_reason="expired", raw=data)
        extras: dict[str, int] = {}
        raw: dict[str, Any] = {"data": data}
        overuse: list[str] = []
        volume = to_decimal(dig(data, "volume"), "data volume")
        if volume < 0:
            overuse.append(f"data {_figure(-volume)} MB over the quota")
        if "sms" in options.quotas:
            expired, sms = self._quota(session, budget, options.iccid, "sms")
            if expired:
                return self.reading(status="EXPIRED", critical_reason="expired", raw=sms)
            raw["sms"] = sms
            messages = to_decimal(dig(sms, "volume"), "SMS volume")
            if messages < 0:
                overuse.append(f"{_figure(-messages)} SMS over the quota")
            extras["sms_remaining"] = to_count(max(messages, Decimal(0)), "SMS volume")
            extras["sms_total"] = to_count(dig(sms, "total_volume"), "SMS total_volume")
        expiry = data.get("expiry_date")
        reason = "overuse: " + ", ".join(overuse) if overuse else None
        return self.reading(
            data_remaining=to_bytes(max(volume, Decimal(0)), MB, "data volume"),
            data_total=to_bytes(dig(data, "total_volume"), MB, "data total_volume"),
            expires_at=parse_time(expiry, "expiry_date") if expiry else None,
            status="OVERUSE: " + ", ".join(overuse) if overuse else None,
            critical_reason=reason,
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
        answers 201 with no body: the order number (from `Location`) is the reference, and
        that order (`GET /v1/orders/{order_number}`) gives the price."""
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
        if not match:
            return TopUpResult(detail=f"1NCE answered {response.status_code} without an order")
        return self._priced(match[1])

    def find_top_up(self, request: TopUpRequest) -> TopUpResult | None:
        """After a crash: the account's orders (`GET /v1/orders`) hold a TOPUP naming the
        SIM, placed since the intent, when the top-up went through; None when the whole list
        since then has none. Unknown when the list cannot be read to that point."""
        try:
            self._check_request(request)
        except TopUpFailed:
            return None  # top_up refuses such a request before sending anything
        iccid = self.options.iccid
        since = request.requested_at - CLOCK_SKEW
        try:
            order = self._order_since(iccid, since)
            return None if order is None else _result(order)
        except CheckFailed as exc:
            raise TopUpUnknown(
                f"the orders of 1NCE account {self.account_ref.name} could not be read ({exc}): "
                f"check whether the interrupted top-up of SIM {iccid} went through"
            ) from None

    def _priced(self, number: str) -> TopUpResult:
        """The order the top-up created, with its price when 1NCE can say it; a top-up that
        went through stays done when the order cannot be read."""
        try:
            order = dig_object(self.session.get_json(f"/v1/orders/{segment(number)}"), what="order")
            return _result(order, number)
        except CheckFailed as exc:
            return TopUpResult(
                reference=number,
                detail=f"1NCE order {number} (its price could not be read: {exc})",
            )

    def _order_since(self, iccid: str, since: datetime) -> dict[str, Any] | None:
        """The newest TOPUP order of the SIM placed at or after `since`, reading pages of
        `GET /v1/orders` (sorted by order number, the newest last): page 1, then back from
        the last page until one holds an older order. The page count: `X-Total-Pages`, the
        header 1NCE's SIM lists carry (the orders spec says only "listed in the response
        header"); without it, forward until a short page."""
        session = self.session
        budget = session.budget()

        def page(number: int) -> tuple[list[Any], Any]:
            response = session.request(
                "GET",
                "/v1/orders",
                params={"page": number, "pageSize": ORDER_PAGE},
                budget=budget,
            )
            session.check_status(response)
            orders = session.parse_json(response)
            if not isinstance(orders, list):
                raise BadAnswer(f"the 1NCE order list is not a list: {raw_excerpt(orders)}")
            return orders, response.headers.get("X-Total-Pages")

        first, total = page(1)
        pages = int(total) if isinstance(total, str) and total.isdigit() else None
        found: list[dict[str, Any]] = []
        _collect(first, iccid, since, found)
        if pages is None:  # no page count: read forward until a short page
            number, orders = 1, first
            while len(orders) >= ORDER_PAGE:
                number += 1
                if number > ORDER_PAGES:
                    raise BadAnswer(f"more than {ORDER_PAGES} pages of orders")
                orders, _ = page(number)
                _collect(orders, iccid, since, found)
        else:  # sorted by order number: the newest are last; back until a page predates it
            for number in range(pages, 1, -1):
                if pages - number >= ORDER_PAGES:
                    raise BadAnswer(f"more than {ORDER_PAGES} pages of orders since the intent")
                orders, _ = page(number)
                if _collect(orders, iccid, since, found):
                    break
        return max(found, key=_placed) if found else None

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
            return True, session.redactor.excerpt(response.text, 2000)
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


def _figure(amount: Decimal) -> str:
    """An overuse as 1NCE states it (MB or messages), to two decimals at most."""
    return f"{amount.quantize(Decimal('0.01')).normalize():f}"


def _collect(orders: list[Any], iccid: str, since: datetime, found: list[dict[str, Any]]) -> bool:
    """Add the SIM's TOPUP orders placed at or after `since`; True when the page also holds
    an order placed before `since` (the list has reached back to the intent)."""
    older = False
    for order in orders:
        if not isinstance(order, dict):
            raise BadAnswer(f"an order is not an object: {raw_excerpt(order)}")
        if _placed(order) < since:
            older = True
            continue
        sims = order.get("sims") or []
        named = any(isinstance(sim, dict) and sim.get("iccid") == iccid for sim in sims)
        if order.get("order_type") == "TOPUP" and named:
            found.append(order)
    return older


def _placed(order: dict[str, Any]) -> datetime:
    return parse_time(dig(order, "order_date"), "order_date")


def _result(order: dict[str, Any], number: str | None = None) -> TopUpResult:
    """The ledger's view of a 1NCE order: its number, and its invoiced gross price."""
    reference = str(order.get("order_number") or number or "") or None
    amount, currency = order.get("invoice_amount"), order.get("currency")
    price = to_decimal(amount, "invoice_amount") if amount not in (None, "") else None
    status = order.get("order_status")
    detail = f"1NCE order {reference}" + (f" ({status})" if status else "")
    return TopUpResult(
        reference=reference,
        price=price,
        currency=to_currency(currency) if price is not None and currency else None,
        detail=detail,
    )
