"""eSIM Go API v2.5: an eSIM's bundles by ICCID, or the organisation's balance.

Facts from the reference (providers.md, "eSIM Go API v2.5"): quantities are bytes, a
line's data left is the sum over its active and queued data assignments, an unknown ICCID
answers 400, a bad key 403, and 503 comes with `Retry-After` (the HTTP layer honours it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from monitor.adapters.http import (
    Auth,
    BadAnswer,
    BaseUrl,
    Budget,
    HeaderAuth,
    HttpAccountOptions,
    HttpAdapter,
    Iccid,
    Session,
    dig,
    parse_time,
    raw_excerpt,
    segment,
    to_bytes,
    to_currency,
    to_decimal,
)
from monitor.model import Reading

LIVE_STATES = ("active", "queued")
ENDED_STATES = {"expired": "expired", "lapsed": "expired", "revoked": "revoked"}


class EsimGoAccount(HttpAccountOptions):
    api_key: SecretStr = Field(description="API key (sent as X-API-Key)")
    base_url: BaseUrl = Field(
        default="https://api.esim-go.com/v2.5", description="everything before /esims/..."
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
        unknown = f"eSIM Go does not know the ICCID {iccid} (account {self.account_ref.name})"
        payload = session.get_json(
            f"/esims/{segment(iccid)}/bundles", budget=budget, errors={400: unknown, 404: unknown}
        )
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

    def _summed(self, assignments: list[dict[str, Any]], payload: Any) -> Reading:
        """Remaining = active + queued data; expiry only when nothing is queued behind the
        active bundle (a queued bundle starts when it ends, so the line lives on)."""
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
        expires = None
        if all(_state(a) == "active" for a in live):
            ends = [parse_time(a["endTime"], "endTime") for a in live if a.get("endTime")]
            expires = max(ends, default=None)
        states = {_state(a) for a in live}
        return self.reading(
            data_remaining=remaining,
            data_total=total,
            expires_at=expires,
            status="active" if "active" in states else "queued",
            raw=payload,
        )

    def _organisation(self, session: Session, budget: Budget) -> Reading:
        payload = session.get_json("/organisation", budget=budget)
        organisation = payload
        if isinstance(payload, dict) and isinstance(payload.get("organisations"), list):
            if not payload["organisations"]:
                raise BadAnswer("eSIM Go sent no organisation", raw=raw_excerpt(payload))
            organisation = payload["organisations"][0]  # v2.1 wrapped it in a list
        return self.reading(
            balance=to_decimal(dig(organisation, "balance"), "balance"),
            currency=to_currency(dig(organisation, "currency")),
            raw=payload,
        )


def _state(assignment: dict[str, Any]) -> str:
    return str(assignment.get("bundleState") or "").lower()


def _assigned_at(assignment: dict[str, Any]) -> datetime:
    value = assignment.get("assignmentDateTime")
    return parse_time(value, "assignmentDateTime") if value else datetime.min.replace(tzinfo=UTC)
