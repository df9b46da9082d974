"""The Hologram fake on loopback, for the adapter read through the real HTTP client.

The fake serves the shapes of Hologram's API reference (Basic `apikey:KEY`;
docs.hologram.io/api/1/organizations/orgid/balance/get: the balance as strings;
docs.hologram.io/api/1/usage/data/billing/get: bytes per SIM per 30-day billing period).
"""

from __future__ import annotations

from typing import Any

from fakes.base import FakeProvider, Request, Route, json_reply

API_KEY = "hologram-key-abcdef"
ORG = 144
LINK = 7788


class FakeHologram(FakeProvider):
    """`GET /organizations/{orgId}/balance` and `GET /usage/data/billing?orgid=..&linkid=..`
    under Basic auth (user `apikey`), in the documented envelope (`success`, `limit`,
    `size`, `continues`, `lastid`, `data`)."""

    def __init__(self) -> None:
        self.periods = [
            {
                "linkid": LINK,
                "cur_period_end": "2026-12-11 17:24:43",
                "periods_back": "0",
                "record_id": "22357230",
                "bytes": 250_000_000,
            },
            {
                "linkid": LINK,
                "cur_period_end": "2026-11-11 17:24:48",
                "periods_back": "1",
                "record_id": "22357231",
                "bytes": 900_000_000,
            },
        ]

    def routes(self) -> list[tuple[str, str, Route]]:
        return [
            ("GET", r"/api/1/organizations/(?P<org>\d+)/balance", self.balance),
            ("GET", r"/api/1/usage/data/billing", self.billing),
        ]

    def denied(self, request: Request) -> Any:
        if request.basic != ("apikey", API_KEY):
            return json_reply(401, {"success": False, "error": "Unauthorized"})
        return None

    def balance(self, request: Request, match: Any) -> Any:
        if denied := self.denied(request):
            return denied
        if int(match["org"]) != ORG:
            return json_reply(200, {"success": False, "error": "Organization not found"})
        return json_reply(
            200,
            {
                "success": True,
                "data": {
                    "balance": "96.05",
                    "minbalance": "50.00",
                    "promobalance": "0.00",
                    "orgid": ORG,
                },
            },
        )

    def billing(self, request: Request, _: Any) -> Any:
        if denied := self.denied(request):
            return denied
        if request.arg("orgid") != str(ORG):
            return json_reply(200, {"success": False, "error": "Organization not found"})
        link = int(request.arg("linkid") or 0)
        data = [p for p in self.periods if p["linkid"] == link]
        body = {"success": True, "limit": 100, "size": len(data), "continues": False}
        return json_reply(200, {**body, "lastid": "22357231", "data": data})


def config_text(url: str, key: str = API_KEY, org: int = ORG) -> str:
    return f"""
[accounts.fleet]
provider = "hologram"
api_key = "{key}"
org_id = {org}
base_url = "{url}/api/1"

[lines.org]
account = "fleet"

[lines.tracker]
account = "fleet"
linkid = {LINK}
plan_data = "1GB"
"""
