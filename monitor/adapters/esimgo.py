"""eSIM Go API v2.5: an eSIM's bundles by ICCID, or the organisation's balance.

Facts from eSIM Go's API reference (docs.esim-go.com, v2.4/v2.5 "List Bundles applied to
eSIM", "Get Current Organisation Details"): quantities are bytes; a line's data left is the
sum over its processing, queued and active data assignments (a new assignment stays
`processing` for up to about 10 minutes, and the eSIM works meanwhile); the list holds only
the 15 most recent assignments and leaves used ones out unless asked (`limit`, up to 200,
and `includeUsed`), so both are asked for, to see depleted, expired and lapsed bundles. The
assignment carries no end time: eSIM Go documents a bundle's end only in its usage callback
(`bundle.endTime`), which a poller does not receive, so no expiry is read. `balance` is
"Organisational balance + test credit": the money is `balance - testCredit`. An unknown ICCID
answers 400; 403 means a refused key or an ICCID "not accessible by the user"; 503 comes
with `Retry-After` (the HTTP layer honours it).

Top-ups (the recharge `provider` action) order a bundle for the line's eSIM with
`POST /orders`, once, never retried; after a crash, the eSIM's bundle assignments tell
whether it went through.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from monitor.adapters.http import (
    Auth,
    AuthenticationFailed,
    BadAnswer,
    BaseUrl,
    Budget,
    HeaderAuth,
    HttpAccountOptions,
    HttpAdapter,
    Iccid,
    Session,
    dig,
    excerpt,
    parse_time,
    raw_excerpt,
    segment,
    send_top_up,
    to_bytes,
    to_currency,
    to_decimal,
    top_up_answer,
    top_up_refused,
)
from monitor.errors import CheckFailed, TopUpFailed, TopUpUnknown
from monitor.model import Reading, TopUpRequest, TopUpResult

LIVE_STATES = ("active", "queued", "processing")
"""Assignments whose data the line has, in the order their state names the line's."""

ENDED_STATES = {
    "depleted": "depleted: no data left",
    "expired": "expired",
    "lapsed": "lapsed: expired without being used",
    "revoked": "revoked",
}

BUNDLE_QUERY = {"includeUsed": "true", "limit": 200}
"""Used and expired assignments too, and the most eSIM Go lists (default: the 15 newest)."""

CLOCK_SKEW = timedelta(minutes=5)
"""An assignment made up to this long before the intent was written still counts as its
own when reconciling: eSIM Go's clock and ours may differ."""


class EsimGoAccount(HttpAccountOptions):
    api_key: SecretStr = Field(description="API key (sent as X-API-Key)")
    base_url: BaseUrl = Field(
        default="https://api.esim-go.com/v2.5", description="everything before /esims/..."
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="the key eSIM Go signs its V3 callbacks with (POST /hooks/ACCOUNT); "
        "eSIM Go documents it as the API key, the default",
    )


class EsimGoLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    iccid: Iccid | None = Field(
        default=None, description="the eSIM's ICCID; without it the line watches the balance"
    )


class EsimGoAdapter(HttpAdapter):
    name = "esimgo"
    provider = "eSIM Go"
    description = "eSIM Go API: bundle data left and expiry by ICCID, or organisation balance."
    Options = EsimGoLine
    AccountOptions = EsimGoAccount

    @classmethod
    def reports(cls, options: EsimGoLine) -> frozenset[str]:
        """An eSIM's bundle data (the list gives no end time); without `iccid`, the
        organisation's balance."""
        return frozenset({"data"} if options.iccid else {"balance"})

    def make_auth(self) -> Auth:
        options: EsimGoAccount = self.account_ref.options
        return HeaderAuth("X-API-Key", options.api_key)

    def read(self) -> Reading:
        options: EsimGoLine = self.options
        session = self.session
        budget = session.budget()
        if options.iccid is None:
            return self._organisation(session, budget)
        return self._bundles(session, budget, options.iccid)

    def _bundles(self, session: Session, budget: Budget, iccid: str) -> Reading:
        payload = self._bundle_list(session, budget, iccid)
        bundles = dig(payload, "bundles")
        if not isinstance(bundles, list):
            raise BadAnswer("eSIM Go sent no list of bundles", raw=raw_excerpt(payload))
        assignments = [
            assignment
            for bundle in bundles
            for assignment in (bundle.get("assignments") or [] if isinstance(bundle, dict) else [])
            if isinstance(assignment, dict) and assignment.get("callTypeGroup", "data") == "data"
        ]
        return self._summed(assignments, payload)

    def _bundle_list(self, session: Session, budget: Budget, iccid: str) -> Any:
        """`GET /esims/{iccid}/bundles` with used ones and the most assignments; 403 names
        both documented causes (a refused key, or an ICCID the user cannot access)."""
        name = self.account_ref.name
        unknown = f"eSIM Go does not know the ICCID {iccid} (account {name})"
        response = session.request(
            "GET", f"/esims/{segment(iccid)}/bundles", params=BUNDLE_QUERY, budget=budget
        )
        if response.status_code == 403:
            refused = session.auth_failed(response)
            raise AuthenticationFailed(
                f"{refused}: eSIM Go refused the API key, or the ICCID {iccid} is not "
                f"accessible by this user (not an eSIM of account {name}'s organisation)",
                raw=refused.raw,
                status=403,
            )
        session.check_status(response, {400: unknown, 404: unknown})
        return session.parse_json(response)

    def _summed(self, assignments: list[dict[str, Any]], payload: Any) -> Reading:
        """Remaining = processing + queued + active data. With none of those, the newest
        assignment's state says why the line has no data (depleted, expired, lapsed,
        revoked: critical). No expiry: the list gives no end time (see the module)."""
        live = [a for a in assignments if _state(a) in LIVE_STATES]
        if not live:
            latest = max(assignments, key=_assigned_at, default=None)
            state = _state(latest) if latest else "none"
            return self.reading(
                data_remaining=0,
                status=state,
                critical_reason=ENDED_STATES.get(state),
                raw=payload,
            )
        remaining = total = None
        if not any(a.get("unlimited") is True for a in live):
            remaining = sum(
                to_bytes(dig(a, "remainingQuantity"), 1, "remainingQuantity") for a in live
            )
            total = sum(to_bytes(dig(a, "initialQuantity"), 1, "initialQuantity") for a in live)
        states = {_state(a) for a in live}
        return self.reading(
            data_remaining=remaining,
            data_total=total,
            status=next(state for state in LIVE_STATES if state in states),
            raw=payload,
        )

    supports_top_up = True

    @classmethod
    def top_up_problems(cls, package: str | None, amount: Any) -> list[str]:
        """eSIM Go applies catalogue bundles by name; it takes no amount."""
        if amount is not None:
            return ["eSIM Go sells bundles: set `package` (a bundle name), not `amount`"]
        return [] if package else ["set `package`: a catalogue bundle name"]

    def top_up(self, request: TopUpRequest) -> TopUpResult:
        """Order the request's bundle for this eSIM, once; the organisation balance pays.
        The answer's `orderReference` is the reference, `total` and `currency` the price."""
        iccid, bundle = self._top_up_target(request)
        what = f"the eSIM Go order of {bundle} for ICCID {iccid} (account {self.account_ref.name})"
        # Body shape from providers.md "eSIM Go API v2.5", Orders: confidence "copy, medium".
        # `assign` with `iccids` applies the bundle to this eSIM; `allowReassign: false`
        # keeps eSIM Go from putting it on another eSIM instead.
        order = {
            "type": "transaction",
            "assign": True,
            "order": [
                {
                    "type": "bundle",
                    "quantity": 1,
                    "item": bundle,
                    "iccids": [iccid],
                    "allowReassign": False,
                }
            ],
        }
        response = send_top_up(
            self.session,
            "POST",
            "/orders",
            what=what,
            json=order,
            refusals={
                400: "check the ICCID, the bundle name (case sensitive) and the organisation "
                "balance",
                403: "the API key was refused, or the eSIM is not this organisation's",
            },
        )
        if not response.is_success:
            raise top_up_refused(self.session, response, what)
        payload = top_up_answer(self.session, response, what)
        if not isinstance(payload, dict) or not payload.get("orderReference"):
            raise TopUpUnknown(
                f"{what} may have gone through: eSIM Go answered {response.status_code} "
                f"without an order reference ({excerpt(raw_excerpt(payload))}); check the "
                "organisation's orders"
            )
        reference = payload["orderReference"]
        price, currency = _price(payload)
        status = " ".join(str(payload.get(k) or "") for k in ("status", "statusMessage")).strip()
        return TopUpResult(
            reference=str(reference),
            price=price,
            currency=currency,
            detail=f"eSIM Go order {reference}: {bundle}" + (f" ({status})" if status else ""),
        )

    def find_top_up(self, request: TopUpRequest) -> TopUpResult | None:
        """The eSIM's bundles after a crash: an assignment of the request's bundle made at or
        after the intent (less CLOCK_SKEW) is the request's; one without a time might be."""
        try:
            iccid, bundle = self._top_up_target(request)
        except TopUpFailed:
            if self.options.iccid is None:
                raise TopUpUnknown(
                    f"line {self.line_id} has no iccid now: its interrupted order cannot be "
                    "looked up; check the eSIM's bundles in eSIM Go"
                ) from None
            return None  # top_up refuses such a request before sending anything
        what = f"the interrupted eSIM Go order of {bundle} for ICCID {iccid}"
        session = self.session
        try:
            payload = self._bundle_list(session, session.budget(), iccid)
            bundles = dig(payload, "bundles")
            if not isinstance(bundles, list):
                raise BadAnswer("eSIM Go sent no list of bundles", raw=raw_excerpt(payload))
        except CheckFailed as exc:
            raise TopUpUnknown(f"whether {what} went through cannot be told: {exc}") from None
        since = request.requested_at - CLOCK_SKEW
        undated = False
        for entry in bundles:
            if not isinstance(entry, dict) or entry.get("name") != bundle:
                continue
            for assignment in entry.get("assignments") or []:
                if not isinstance(assignment, dict):
                    continue
                try:
                    made = parse_time(assignment.get("assignmentDateTime"), "assignmentDateTime")
                except BadAnswer:
                    undated = True
                    continue
                if made >= since:
                    assigned = assignment.get("id")
                    return TopUpResult(
                        reference=str(assigned) if assigned is not None else None,
                        detail=f"found among the eSIM's bundles ({bundle}, assigned "
                        f"{made.isoformat()}, {_state(assignment) or 'no state'})",
                    )
        if undated:
            raise TopUpUnknown(
                f"whether {what} went through cannot be told: the eSIM lists a {bundle} "
                "assignment without a time; check the organisation's orders"
            )
        return None

    def _top_up_target(self, request: TopUpRequest) -> tuple[str, str]:
        """(ICCID, bundle) of a top-up, or TopUpFailed before anything is sent."""
        options: EsimGoLine = self.options
        if options.iccid is None:
            raise TopUpFailed(
                f"line {self.line_id} watches the organisation balance: eSIM Go tops up an "
                "eSIM, so give the line its `iccid`"
            )
        if request.amount is not None or not request.package:
            raise TopUpFailed(
                "eSIM Go sells bundles, not amounts: set `package` to a bundle name from the "
                "catalogue (such as esim_1GB_7D_GB_V2) and remove `amount`"
            )
        return options.iccid, request.package

    def _organisation(self, session: Session, budget: Budget) -> Reading:
        """The organisation's own money: `balance` less `testCredit` (the v2.4 schema:
        balance is "Organisational balance + test credit"); test credit named beside it."""
        payload = session.get_json("/organisation", budget=budget)
        organisation = payload
        if isinstance(payload, dict) and isinstance(payload.get("organisations"), list):
            if not payload["organisations"]:
                raise BadAnswer("eSIM Go sent no organisation", raw=raw_excerpt(payload))
            organisation = payload["organisations"][0]  # v2.1 wrapped it in a list
        balance = to_decimal(dig(organisation, "balance"), "balance")
        currency = to_currency(dig(organisation, "currency"))
        credit = organisation.get("testCredit") if isinstance(organisation, dict) else None
        test_credit = to_decimal(credit, "testCredit") if credit is not None else Decimal(0)
        status = None
        if test_credit:
            expiry = organisation.get("testCreditExpiry")
            status = f"test credit {test_credit:f} {currency}" + (
                f" until {expiry}" if expiry else ""
            )
        return self.reading(
            balance=balance - test_credit, currency=currency, status=status, raw=payload
        )


def _state(assignment: dict[str, Any]) -> str:
    return str(assignment.get("bundleState") or "").lower()


def _assigned_at(assignment: dict[str, Any]) -> datetime:
    value = assignment.get("assignmentDateTime")
    return parse_time(value, "assignmentDateTime") if value else datetime.min.replace(tzinfo=UTC)


def _price(order: dict[str, Any]) -> tuple[Decimal | None, str | None]:
    """The order's `total` and `currency`; None when either is missing or malformed: the
    order stands, its price is unknown."""
    try:
        if order.get("total") is None or order.get("currency") is None:
            return None, None
        return to_decimal(order["total"], "total"), to_currency(order["currency"])
    except BadAnswer:
        return None, None
