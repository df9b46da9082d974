"""The eSIM Go fake: API v2.5 on loopback, for the adapter read through the real HTTP client.

The fake serves what eSIM Go's API reference documents (docs.esim-go.com, v2.4/v2.5 "List
Bundles applied to eSIM": the v2.4 `Assignment` fields only, the 15 newest assignments unless
`limit` says more, used ones only with `includeUsed`; "Get Current Organisation Details":
`balance` is "Organisational balance + test credit"; errors `{"message"}`, 400 unknown ICCID,
403 refused key or inaccessible ICCID, 503 with Retry-After).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from fakes.base import FakeProvider, Reply, Request, Route, iso, json_reply

API_KEY = "esimgo-key-0123456789"
ICCID = "8944538532008160990"
USED = {"depleted", "expired", "lapsed", "revoked"}


def assignment(state: str, initial: int, remaining: int, **extra: Any) -> dict[str, Any]:
    """One assignment of `GET /esims/{iccid}/bundles` in the fields of eSIM Go's v2.4
    `Assignment` schema (the guide's example values), quantities in bytes."""
    item = {
        "id": "215009266",
        "assignmentReference": "3a6e2e40-c674-45e9-b289-b35027bf72a9-0",
        "callTypeGroup": "data",
        "initialQuantity": initial,
        "remainingQuantity": remaining,
        "assignmentDateTime": "2024-12-11T10:47:00Z",
        "bundleState": state,
        "unlimited": False,
    }
    item.update(extra)
    return item


def bundles(*assignments: dict[str, Any]) -> dict[str, Any]:
    return {
        "bundles": [
            {"name": "esim_1GB_7D_GB_V2", "description": "1GB, 7 days", "assignments": [a]}
            for a in assignments
        ]
    }


class FakeEsimGo(FakeProvider):
    """eSIM Go's reference: `X-API-Key` auth (403 when bad), bundles by ICCID (400 when
    unknown; newest first, `limit` default 15, used ones only with `includeUsed`), and
    `GET /organisation` flat as in v2.5 (the documented example's values)."""

    def __init__(self) -> None:
        self.sims: dict[str, dict[str, Any]] = {
            ICCID: bundles(assignment("active", 1_000_000_000, 750_000_000))
        }
        self.organisation: dict[str, Any] = {
            "name": "Acme Corp",
            "currency": "USD",
            "balance": 10000,
            "testCredit": 500,
            "testCreditExpiry": "2023-12-31",
            "groups": ["Enterprise", "Tech"],
            "users": [],
        }

    def routes(self) -> list[tuple[str, str, Route]]:
        return [
            ("GET", r"/v2.5/esims/(?P<iccid>[^/]+)/bundles", self.bundles),
            ("GET", r"/v2.5/organisation", self.org),
        ]

    def denied(self, request: Request) -> Reply | None:
        if request.headers.get("X-API-Key") != API_KEY:
            return json_reply(403, {"message": "Forbidden: invalid API key"})
        return None

    def bundles(self, request: Request, match: Any) -> Reply:
        if denied := self.denied(request):
            return denied
        sim = self.sims.get(match["iccid"])
        if sim is None:
            return json_reply(400, {"message": "ICCID not found"})
        used = request.arg("includeUsed") == "true"
        limit = int(request.arg("limit") or 15)
        listed = [
            (bundle, item)
            for bundle in sim["bundles"]
            for item in bundle["assignments"]
            if used or item["bundleState"] not in USED
        ]
        listed.sort(key=lambda pair: pair[1]["assignmentDateTime"], reverse=True)
        shown: list[dict[str, Any]] = []
        for bundle, item in listed[:limit]:
            entry = next((e for e in shown if e["name"] == bundle["name"]), None)
            if entry is None:
                entry = {**bundle, "assignments": []}
                shown.append(entry)
            entry["assignments"].append(item)
        return json_reply(200, {"bundles": shown})

    def org(self, request: Request, _: Any) -> Reply:
        return self.denied(request) or json_reply(200, self.organisation)


def config_text(url: str, key: str = API_KEY) -> str:
    return f"""
[accounts.fleet]
provider = "esimgo"
api_key = "{key}"
base_url = "{url}/v2.5"

[lines.roam]
account = "fleet"
iccid = "{ICCID}"

[lines.org]
account = "fleet"
"""


# ---- top-ups ---------------------------------------------------------------------------

BUNDLE = "esim_1GB_7D_GB_V2"
ESIMGO_ORDER = r"/v2.5/orders"


class TopUpEsimGo(FakeEsimGo):
    """Adds eSIM Go's `POST /orders` (request body shape from providers.md: copy, medium).
    The answer has the fields of eSIM Go's order detail (docs.esim-go.com, "Get order
    detail": `order[]`, `total`, `currency`, `status`, `statusMessage`, `orderReference`,
    `createDate`); an assigned bundle appears among the eSIM's bundles, queued."""

    def __init__(self) -> None:
        super().__init__()
        self.orders: list[Any] = []
        self.references = (f"ref-{n:04d}" for n in itertools.count(1))

    def routes(self) -> list[tuple[str, str, Route]]:
        return [("POST", ESIMGO_ORDER, self.order), *super().routes()]

    def order(self, request: Request, _: Any) -> Reply:
        if denied := self.denied(request):
            return denied
        body = request.json()
        (item,) = body["order"]
        (iccid,) = item["iccids"]
        if iccid not in self.sims:
            return json_reply(400, {"message": "ICCID not found"})
        self.orders.append(body)
        reference = next(self.references)
        self.sims[iccid]["bundles"].append(
            {
                "name": item["item"],
                "description": "1GB, 7 days",
                "assignments": [
                    assignment(
                        "queued",
                        1_000_000_000,
                        1_000_000_000,
                        id=f"assigned-{reference}",
                        assignmentDateTime=iso(datetime.now(UTC)).replace("+00:00", "Z"),
                    )
                ],
            }
        )
        return json_reply(
            200,
            {
                "order": [
                    {
                        "type": "bundle",
                        "item": item["item"],
                        "quantity": 1,
                        "subTotal": 2.67,
                        "pricePerUnit": 2.67,
                    }
                ],
                "total": 2.67,
                "currency": "USD",
                "status": "completed",
                "statusMessage": "Order completed: 1 eSIMs assigned",
                "orderReference": reference,
                "createDate": iso(datetime.now(UTC)),
            },
        )
