"""Hologram adapter against a loopback fake, through the real HTTP client.

The fake follows providers.md, section "Hologram" (Basic `apikey:KEY`, organisation
balance as strings, monthly usage in bytes per linkid).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fakes import FakeProvider, FakeServer, Harness, Request, Route, json_reply

from monitor.adapters.http import AuthenticationFailed, ProviderRefused
from monitor.errors import ConfigError

API_KEY = "hologram-key-abcdef"
ORG = 144
LINK = 7788


class FakeHologram(FakeProvider):
    """providers.md, "Hologram": `GET /organizations/{orgId}/balance` and
    `GET /usage/data/monthly?linkid=...` under Basic auth (user `apikey`). The usage body's
    envelope (`success`, `data` list) is assumed like the balance's (unsure)."""

    def __init__(self) -> None:
        now = datetime.now(UTC)
        last = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
        self.months = [
            {"bytes": 250_000_000, "month": now.month, "year": now.year, "linkid": LINK},
            {"bytes": 900_000_000, "month": last[1], "year": last[0], "linkid": LINK},
        ]

    def routes(self) -> list[tuple[str, str, Route]]:
        return [
            ("GET", r"/api/1/organizations/(?P<org>\d+)/balance", self.balance),
            ("GET", r"/api/1/usage/data/monthly", self.monthly),
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

    def monthly(self, request: Request, _: Any) -> Any:
        if denied := self.denied(request):
            return denied
        link = int(request.arg("linkid") or 0)
        return json_reply(
            200, {"success": True, "data": [m for m in self.months if m["linkid"] == link]}
        )


@pytest.fixture
def server(serve: Callable[[FakeProvider], FakeServer]) -> FakeServer:
    return serve(FakeHologram())


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


def test_organisation_balance_from_strings(harness: Harness, server: FakeServer) -> None:
    reading = harness.read(harness.settings(config_text(server.url)), "org")
    assert reading.balance == Decimal("96.05")
    assert reading.currency == "USD"


def test_monthly_usage_against_the_plan_allowance(harness: Harness, server: FakeServer) -> None:
    reading = harness.read(harness.settings(config_text(server.url)), "tracker")
    assert reading.data_total == 1_000_000_000
    assert reading.data_remaining == 750_000_000  # last month's usage does not count
    assert reading.extras == {"data_used": 250_000_000}
    assert server.seen("GET", r".*/monthly")[0].arg("linkid") == str(LINK)


def test_bad_key_is_an_authentication_failure(harness: Harness, server: FakeServer) -> None:
    error = harness.fail(harness.settings(config_text(server.url, key="bad-key-123")), "org")
    assert isinstance(error, AuthenticationFailed)
    assert str(error).startswith("authentication failed for account fleet")


def test_success_false_is_a_failed_check(harness: Harness, server: FakeServer) -> None:
    error = harness.fail(harness.settings(config_text(server.url, org=999)), "org")
    assert isinstance(error, ProviderRefused)
    assert "Organization not found" in str(error)


def test_a_linkid_needs_its_plan_allowance(harness: Harness) -> None:
    text = config_text("http://127.0.0.1:9").replace('plan_data = "1GB"\n', "")
    with pytest.raises(ConfigError) as info:
        harness.settings(text)
    assert "lines.tracker" in str(info.value) and "plan_data" in str(info.value)
