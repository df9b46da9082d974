"""Twilio adapter against two loopback fakes (the main API and the Super SIM host), through
the real HTTP client.

The fakes follow providers.md, section "Twilio" (Basic `Sid:AuthToken`, Balance.json with a
string balance, Super SIM usage in bytes against the Fleet's `data_limit` in decimal MB,
errors `{"code", "message", "status"}`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fakes import FakeProvider, FakeServer, Harness, Request, Route, json_reply

from monitor.adapters.http import AuthenticationFailed, ProviderRefused

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-auth-token-42"
SIM_SID = "HS" + "a" * 32
FLEET_SID = "HF" + "b" * 32


def twilio_error(status: int, code: int, message: str) -> Any:
    return json_reply(status, {"code": code, "message": message, "status": status})


class FakeTwilioApi(FakeProvider):
    """providers.md, "Twilio": `GET /2010-04-01/Accounts/{Sid}/Balance.json`."""

    def routes(self) -> list[tuple[str, str, Route]]:
        return [("GET", r"/2010-04-01/Accounts/(?P<sid>\w+)/Balance\.json", self.balance)]

    def balance(self, request: Request, match: Any) -> Any:
        if request.basic != (SID, TOKEN) or match["sid"] != SID:
            return twilio_error(401, 20003, "Authenticate")
        return json_reply(200, {"account_sid": SID, "balance": "12.34", "currency": "USD"})


class FakeSuperSim(FakeProvider):
    """providers.md, "Twilio" Super SIM host: the SIM (for its fleet), its billing periods,
    usage records (`data_total` bytes) and the Fleet (`data_limit` MB). The SIM and billing
    period bodies follow Twilio's public resource shapes (copy, medium)."""

    def __init__(self) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        self.start = now - timedelta(days=10)
        self.end = now + timedelta(days=20)

    def routes(self) -> list[tuple[str, str, Route]]:
        return [
            ("GET", r"/v1/Sims/(?P<sim>[^/]+)", self.sim),
            ("GET", r"/v1/Sims/(?P<sim>[^/]+)/BillingPeriods", self.periods),
            ("GET", r"/v1/UsageRecords", self.usage),
            ("GET", r"/v1/Fleets/(?P<fleet>[^/]+)", self.fleet),
        ]

    def handle(self, request: Request) -> Any:
        if request.basic != (SID, TOKEN):
            return twilio_error(401, 20003, "Authenticate")
        return super().handle(request)

    def sim(self, request: Request, match: Any) -> Any:
        if match["sim"] not in (SIM_SID, "tracker-1"):
            return twilio_error(404, 20404, "The requested resource was not found")
        return json_reply(
            200,
            {
                "sid": SIM_SID,
                "unique_name": "tracker-1",
                "account_sid": SID,
                "fleet_sid": FLEET_SID,
                "status": "active",
                "iccid": "89883070000123456789",
            },
        )

    def periods(self, request: Request, match: Any) -> Any:
        return json_reply(
            200,
            {
                "billing_periods": [
                    {
                        "sid": "HB" + "c" * 32,
                        "sim_sid": SIM_SID,
                        "start_time": (self.start - timedelta(days=30)).isoformat(),
                        "end_time": self.start.isoformat(),
                        "period_type": "active",
                    },
                    {
                        "sid": "HB" + "d" * 32,
                        "sim_sid": SIM_SID,
                        "start_time": self.start.isoformat().replace("+00:00", "Z"),
                        "end_time": self.end.isoformat().replace("+00:00", "Z"),
                        "period_type": "active",
                    },
                ],
                "meta": {"page": 0, "page_size": 50},
            },
        )

    def usage(self, request: Request, _: Any) -> Any:
        assert request.arg("Sim") == SIM_SID
        assert request.arg("StartTime") == self.start.strftime("%Y-%m-%dT%H:%M:%SZ")
        return json_reply(
            200,
            {
                "usage_records": [
                    {
                        "period": {"start_time": request.arg("StartTime")},
                        "data_upload": 50_000_000,
                        "data_download": 200_000_000,
                        "data_total": 250_000_000,
                    }
                ],
                "meta": {"page": 0},
            },
        )

    def fleet(self, request: Request, match: Any) -> Any:
        return json_reply(200, {"sid": match["fleet"], "data_limit": 1000, "data_enabled": True})


@pytest.fixture
def servers(serve: Callable[[FakeProvider], FakeServer]) -> tuple[FakeServer, FakeServer]:
    return serve(FakeTwilioApi()), serve(FakeSuperSim())


def config_text(api: str, supersim: str, token: str = TOKEN, sim: str = SIM_SID) -> str:
    return f"""
[accounts.twilio]
provider = "twilio"
account_sid = "{SID}"
auth_token = "{token}"
base_url = "{api}"
supersim_base_url = "{supersim}"

[lines.balance]
account = "twilio"

[lines.tracker]
account = "twilio"
sim = "{sim}"
"""


def test_account_balance(harness: Harness, servers: tuple[FakeServer, FakeServer]) -> None:
    api, supersim = servers
    reading = harness.read(harness.settings(config_text(api.url, supersim.url)), "balance")
    assert reading.balance == Decimal("12.34")
    assert reading.currency == "USD"


@pytest.mark.parametrize("sim", [SIM_SID, "tracker-1"])
def test_super_sim_usage_against_the_fleet_limit_in_decimal_mb(
    harness: Harness, servers: tuple[FakeServer, FakeServer], sim: str
) -> None:
    api, supersim = servers
    reading = harness.read(harness.settings(config_text(api.url, supersim.url, sim=sim)), "tracker")
    assert reading.data_total == 1_000_000_000
    assert reading.data_remaining == 750_000_000
    assert reading.status == "active"
    assert reading.extras["data_used"] == 250_000_000
    assert reading.raw["fleet"]["data_limit"] == 1000
    assert api.seen() == []  # Super SIM reads go to the second host only


def test_unknown_super_sim_fails_naming_it(
    harness: Harness, servers: tuple[FakeServer, FakeServer]
) -> None:
    api, supersim = servers
    settings = harness.settings(config_text(api.url, supersim.url, sim="HS404"))
    error = harness.fail(settings, "tracker")
    assert isinstance(error, ProviderRefused)
    assert "HS404" in str(error)


def test_bad_token_is_an_authentication_failure(
    harness: Harness, servers: tuple[FakeServer, FakeServer]
) -> None:
    api, supersim = servers
    settings = harness.settings(config_text(api.url, supersim.url, token="bad-token-00"))
    for line in ("balance", "tracker"):
        error = harness.fail(settings, line)
        assert isinstance(error, AuthenticationFailed)
        assert str(error).startswith("authentication failed for account twilio")
        assert "bad-token-00" not in str(error)
