"""Airalo Partner API: an eSIM's data left and expiry by ICCID, or the partner's credit.

Facts from the reference (providers.md, "Airalo Partner API"): usage figures are binary
megabytes, `expired_at` has no zone (UTC), unlimited plans report 0 for both figures,
EXPIRED and RECYCLED are conditions to alert on rather than failures, and the token
endpoint allows three requests a minute, so the token lives in the database.

Webhooks (`hooks subscribe`) are registered with `POST /v2/notifications/opt-in`, one
request per kind: `webhook_low_data` (75 % and 90 % used, 3 days and 1 day before expiry)
and `webhook_credit_limit` at every level the documentation offers (50, 70, 80, 90 %).
Airalo checks the URL with a HEAD request before it answers, so the daemon must be serving
it at `[http] public_url` by then.

Top-ups (the recharge `provider` action) buy a top-up package for the line's eSIM with
`POST /v2/orders/topups`. Airalo takes no idempotency key, so the order is sent once and
never retried; after a crash, the eSIM's package history tells whether it went through.
The documented order answer carries `price` only, the package's retail price: what the
partner credit pays is the order's `net_price` where it carries one (Airalo's FAQ says every
order endpoint does), else the `net_price` of the package in the eSIM's top-up catalogue
(`GET /v2/sims/{iccid}/topups`), read just before the order. Without either, the price paid
is unknown and the retail price is recorded as retail, in the detail.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, Literal

import httpx
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
    excerpt,
    parse_time,
    provider_message,
    raw_excerpt,
    segment,
    send_top_up,
    to_bytes,
    to_count,
    to_currency,
    to_decimal,
    token_key,
    top_up_answer,
    top_up_refused,
)
from monitor.errors import CheckFailed, TopUpFailed, TopUpUnknown
from monitor.model import HookSubscription, Reading, TopUpRequest, TopUpResult

MB = 2**20
"""Airalo's MB is binary: a "3 GB" package has `amount: 3072`."""

CRITICAL_STATUSES = {"EXPIRED": "expired", "RECYCLED": "recycled"}
RECYCLED_CODE = 73

TOP_UP_REFUSALS = {
    11: "the partner credit is too low: add credit to the Airalo partner account",
    13: "the operator is under maintenance: try again later",
    23: "top-ups are disabled for this eSIM or package: choose another package",
    33: "the package is out of stock: choose another top-up package",
    34: "the package is not a top-up of this eSIM: pick one from GET /v2/sims/ICCID/topups",
    RECYCLED_CODE: "the eSIM was recycled and can no longer be topped up: replace it",
}
"""Business errors of a top-up order (HTTP 422 `{"code": N, "reason": ...}`), as advice."""

OPT_INS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("webhook_low_data", {}),
    ("webhook_credit_limit", {"levels": [50, 70, 80, 90]}),
)
"""What `hooks subscribe` opts in to, with each kind's options: the credit limit at every
level Airalo's documentation lists (its opt-in example and its webhook simulator)."""

CLOCK_SKEW = timedelta(minutes=5)
"""A package bought up to this long before the intent was written still counts as its own
when reconciling: Airalo's clock and ours may differ."""


class AiraloAccount(HttpAccountOptions):
    client_id: str = Field(min_length=1, description="Partner API client id")
    client_secret: SecretStr = Field(description="Partner API client secret")
    base_url: BaseUrl = Field(
        default="https://partners-api.airalo.com",
        description="everything before /v2/...",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="the key Airalo signs its webhooks with (POST /hooks/ACCOUNT)",
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

    @classmethod
    def reports(cls, options: AiraloLine) -> frozenset[str]:
        """An eSIM's data and expiry; without `iccid`, the partner account's credit."""
        return frozenset({"data", "expiry"} if options.iccid else {"balance"})

    sizes = "binary"  # "3 GB" package is `amount: 3072` MB
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
                raw=session.redactor.excerpt(response.text, 2000),
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

    supports_top_up = True

    @classmethod
    def top_up_problems(cls, package: str | None, amount: Any) -> list[str]:
        """Airalo sells top-up packages by id; it takes no amount."""
        if amount is not None:
            return ["Airalo sells packages: set `package` (a top-up package id), not `amount`"]
        return [] if package else ["set `package`: a top-up package id of the eSIM"]

    def top_up(self, request: TopUpRequest) -> TopUpResult:
        """Order the request's top-up package once. The request's key goes into the order's
        `description`, so a person can find it in Airalo's order list. A 401 renews the token
        and sends again: Airalo checks the token before it looks at the order."""
        iccid, package = self._top_up_target(request)
        session = self.session
        what = f"the Airalo top-up {package} for ICCID {iccid} (account {self.account_ref.name})"
        net_price = self._net_price(session, iccid, package)
        response = send_top_up(
            session,
            "POST",
            "/v2/orders/topups",
            what=what,
            files={
                "package_id": (None, package),
                "iccid": (None, iccid),
                "description": (None, f"esim-monitor {request.key}"),
            },
        )
        if response.status_code == 422:
            raise TopUpFailed(f"{what} was refused: {_refusal(session, response)}")
        if not response.is_success:
            raise top_up_refused(session, response, what)
        payload = top_up_answer(session, response, what)
        data = payload.get("data") if isinstance(payload, dict) else None
        reference = (data.get("code") or data.get("id")) if isinstance(data, dict) else None
        if not isinstance(data, dict) or reference in (None, ""):
            raise TopUpUnknown(
                f"{what} may have gone through: Airalo answered {response.status_code} without "
                f"an order code ({excerpt(raw_excerpt(payload))}); check the account's orders"
            )
        currency = _currency(data.get("currency"))
        retail = data.get("price")
        paid = _order_net_price(data, net_price) if currency is not None else None
        detail = f"Airalo order {reference}: {data.get('package_id') or package}"
        if paid is None:
            detail += ", price paid unknown (no net_price in the order or the top-up catalogue)"
        if retail is not None:
            detail += f", retail price {retail} {currency or ''}".rstrip()
            detail += " (not what the partner credit paid)"
        return TopUpResult(
            reference=str(reference),
            price=paid,
            currency=currency if paid is not None else None,
            detail=detail,
        )

    def _net_price(self, session: Session, iccid: str, package: str) -> Decimal | None:
        """What the partner credit pays for the package: its `net_price` in the eSIM's top-up
        catalogue. None when the catalogue cannot be read or does not say: the order goes
        ahead, its price is unknown."""
        try:
            payload = session.get_json(f"/v2/sims/{segment(iccid)}/topups", budget=session.budget())
        except CheckFailed:
            return None
        entries = payload.get("data") if isinstance(payload, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("id") == package:
                try:
                    net = entry.get("net_price")
                    return to_decimal(net, "net_price") if net is not None else None
                except BadAnswer:
                    return None
        return None

    def find_top_up(self, request: TopUpRequest) -> TopUpResult | None:
        """The eSIM's package history after a crash. It carries no order code or description,
        so package id and time are all there is to match on: a package of the request's
        kind bought (`created_at`) or started (`activated_at`) at or after the intent, less
        CLOCK_SKEW, is the request's. None only when no package of that kind can be it: one
        with no purchase time that started earlier (the documented sample gives every entry
        the same `activated_at`) might be it, so that is unknown, never "not bought"."""
        try:
            iccid, package = self._top_up_target(request)
        except TopUpFailed:
            if self.options.iccid is None:
                raise TopUpUnknown(
                    f"line {self.line_id} has no iccid now: its interrupted top-up cannot be "
                    "looked up; check the eSIM's packages in Airalo"
                ) from None
            return None  # top_up refuses such a request before sending anything
        what = f"the interrupted Airalo top-up {package} for ICCID {iccid}"
        session = self.session
        try:
            payload = session.get_json(
                f"/v2/sims/{segment(iccid)}/packages",
                budget=session.budget(),
                errors={404: f"Airalo does not know the ICCID {iccid}"},
            )
            entries = dig(payload, "data", what="package history")
            if not isinstance(entries, list):
                raise BadAnswer("the package history is not a list", raw=raw_excerpt(payload))
        except CheckFailed as exc:
            raise TopUpUnknown(f"whether {what} went through cannot be told: {exc}") from None
        since = request.requested_at - CLOCK_SKEW
        undecided = 0
        for entry in entries:
            if not isinstance(entry, dict) or _package_id(entry) != package:
                continue
            bought = _moment(entry.get("created_at"))
            started = _moment(entry.get("activated_at"))
            moment = bought or started
            if moment is not None and moment >= since:
                return TopUpResult(
                    reference=str(entry["id"]) if entry.get("id") is not None else None,
                    detail=f"found in the eSIM's package history ({package}, "
                    f"{'bought' if bought else 'started'} {moment.isoformat()})",
                )
            if bought is None:
                undecided += 1
        if undecided:
            raise TopUpUnknown(
                f"whether {what} went through cannot be told: the eSIM's history lists "
                f"{undecided} earlier {package} package(s) without a purchase time; check the "
                f"account's orders for the description 'esim-monitor {request.key}'"
            )
        return None

    def _top_up_target(self, request: TopUpRequest) -> tuple[str, str]:
        """(ICCID, package) of a top-up, or TopUpFailed: what Airalo cannot do is refused
        before anything is sent."""
        options: AiraloLine = self.options
        if options.iccid is None:
            raise TopUpFailed(
                f"line {self.line_id} watches partner credit: Airalo tops up an eSIM, so give "
                "the line its `iccid`"
            )
        if request.amount is not None or not request.package:
            raise TopUpFailed(
                "Airalo sells top-up packages, not amounts: set `package` to a top-up package "
                f"id of this eSIM (GET /v2/sims/{options.iccid}/topups) and remove `amount`"
            )
        return options.iccid, request.package

    subscribes_webhooks = True

    def subscribe_webhooks(self, url: str) -> list[HookSubscription]:
        """Opt the account in to each kind of `OPT_INS` with `url`. Registering the same URL
        again is harmless, so the request is retried like a read."""
        return [self._opt_in(self.session, kind, url, extra) for kind, extra in OPT_INS]

    def _opt_in(
        self, session: Session, kind: str, url: str, extra: dict[str, Any]
    ) -> HookSubscription:
        try:
            response = session.request(
                "POST",
                "/v2/notifications/opt-in",
                json={"type": kind, "webhook_url": url, **extra},
                budget=session.budget(),
            )
            if response.status_code in (400, 422):
                body = session.parse_json(response)
                reason = provider_message(body) or "no reason given"
                fields = body.get("data") if isinstance(body, dict) else None
                if isinstance(fields, dict) and fields:
                    named = "; ".join(f"{k}: {v}" for k, v in fields.items())
                    reason += f" ({excerpt(session.redact(named), 200)})"
                return HookSubscription(
                    kind,
                    error=f"Airalo refused it (HTTP {response.status_code}): {reason}. Airalo "
                    f"checks {url} with a HEAD request first: is the daemon running with "
                    "[http] listen, and does public_url reach it from the internet?",
                )
            session.check_status(response)
            payload = session.parse_json(response)
            notification = dig_object(payload, "data", "notification", what="opt-in answer")
        except CheckFailed as exc:
            return HookSubscription(kind, error=str(exc))
        meta = payload.get("meta") if isinstance(payload, dict) else None
        levels = notification.get("levels")
        return HookSubscription(
            kind=str(notification.get("type") or kind),
            url=str(notification["contact_point"]) if notification.get("contact_point") else None,
            levels=tuple(int(v) for v in levels if isinstance(v, int))
            if isinstance(levels, list)
            else (),
            message=str(meta["message"])
            if isinstance(meta, dict) and meta.get("message")
            else None,
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


def _package_id(entry: dict[str, Any]) -> Any:
    """The package a history entry is of (`package.id` in the documented shape)."""
    package = entry.get("package")
    return package.get("id") if isinstance(package, dict) else entry.get("package_id")


def _moment(value: Any) -> datetime | None:
    """A history time, or None when it is absent or unreadable (nothing can be told by it)."""
    try:
        return parse_time(value, "time") if value else None
    except BadAnswer:
        return None


def _currency(value: Any) -> str | None:
    """The order's currency, or None when it is missing or malformed (the price is unknown)."""
    try:
        return to_currency(value) if value is not None else None
    except BadAnswer:
        return None


def _refusal(session: Session, response: httpx.Response) -> str:
    """A 422 to a top-up order, as advice: the documented business codes, or the fields
    Airalo's validation names (`{"data": {"package_id": "..."}, "meta": {...}}`)."""
    try:
        body = session.parse_json(response)
    except BadAnswer:
        body = None
    reason = provider_message(body) or "no reason given"
    code = body.get("code") if isinstance(body, dict) else None
    if isinstance(code, int) and code in TOP_UP_REFUSALS:
        return f"{TOP_UP_REFUSALS[code]} (code {code}: {reason}); nothing was bought"
    fields = body.get("data") if isinstance(body, dict) else None
    if isinstance(fields, dict) and fields:
        named = "; ".join(f"{k}: {v}" for k, v in fields.items())
        reason += f" ({excerpt(named, 200)})"
    suffix = f" (code {code})" if code is not None else ""
    return f"{reason}{suffix}; nothing was bought"


def _order_net_price(order: dict[str, Any], catalogue: Decimal | None) -> Decimal | None:
    """The price paid: the order's own `net_price` where it carries one (Airalo's FAQ: "the
    net price is provided as net_price in every order or package-related endpoint", the
    wholesale price charged), else the catalogue's read before the order."""
    net = order.get("net_price")
    if net is None:
        return catalogue
    try:
        return to_decimal(net, "net_price")
    except BadAnswer:
        return catalogue
