"""eSIM Go adapter against a loopback fake of API v2.5, through the real HTTP client.

The fake follows providers.md, section "eSIM Go API v2.5" (X-API-Key, bundles with their
assignments in bytes, the flat v2.5 organisation, 400/403/503 errors).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fakes import FakeProvider, FakeServer, Harness, Reply, Request, Route, json_reply

from monitor.adapters.http import AuthenticationFailed, ProviderRefused

API_KEY = "esimgo-key-0123456789"
ICCID = "8944538532008160990"


def assignment(state: str, initial: int, remaining: int, **extra: Any) -> dict[str, Any]:
    """providers.md, eSIM Go `GET /esims/{iccid}/bundles`: one assignment, bytes."""
    item = {
        "id": "215009266",
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
    """providers.md, "eSIM Go API v2.5": `X-API-Key` auth (403 when bad), bundles by
    ICCID (400 when unknown), `GET /organisation` flat in v2.5; errors `{"message"}`."""

    def __init__(self) -> None:
        self.sims: dict[str, dict[str, Any]] = {
            ICCID: bundles(
                assignment(
                    "active",
                    1_000_000_000,
                    750_000_000,
                    startTime="2024-12-11T10:47:00Z",
                    endTime="2024-12-18T10:47:00Z",
                )
            )
        }
        self.organisation: dict[str, Any] = {
            "name": "Acme Corp",
            "currency": "USD",
            "balance": 10000,
            "testCredit": 500,
            "groups": [],
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
        return json_reply(200, sim)

    def org(self, request: Request, _: Any) -> Reply:
        return self.denied(request) or json_reply(200, self.organisation)


@pytest.fixture
def fake() -> FakeEsimGo:
    return FakeEsimGo()


@pytest.fixture
def server(serve: Callable[[FakeProvider], FakeServer], fake: FakeEsimGo) -> FakeServer:
    return serve(fake)


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


def test_active_bundle_in_bytes_with_its_end(harness: Harness, server: FakeServer) -> None:
    reading = harness.read(harness.settings(config_text(server.url)), "roam")
    assert reading.data_remaining == 750_000_000
    assert reading.data_total == 1_000_000_000
    assert reading.expires_at == datetime(2024, 12, 18, 10, 47, tzinfo=UTC)
    assert reading.status == "active"
    assert server.seen("GET")[0].headers["X-API-Key"] == API_KEY


def test_remaining_sums_active_and_queued_data_only(
    harness: Harness, server: FakeServer, fake: FakeEsimGo
) -> None:
    fake.sims[ICCID] = bundles(
        assignment("active", 1_000_000_000, 100_000_000, endTime="2024-12-18T10:47:00Z"),
        assignment("queued", 2_000_000_000, 2_000_000_000),
        assignment("depleted", 1_000_000_000, 0),
        assignment("active", 100, 50, callTypeGroup="sms"),
    )
    reading = harness.read(harness.settings(config_text(server.url)), "roam")
    assert reading.data_remaining == 2_100_000_000
    assert reading.data_total == 3_000_000_000
    assert reading.expires_at is None  # the queued bundle starts when the active one ends


def test_unlimited_bundle_has_no_data_figure(
    harness: Harness, server: FakeServer, fake: FakeEsimGo
) -> None:
    fake.sims[ICCID] = bundles(assignment("active", 0, 0, unlimited=True))
    reading = harness.read(harness.settings(config_text(server.url)), "roam")
    assert reading.data_remaining is None and reading.data_total is None


def test_only_expired_bundles_is_a_critical_reading(
    harness: Harness, server: FakeServer, fake: FakeEsimGo
) -> None:
    fake.sims[ICCID] = bundles(assignment("expired", 1_000_000_000, 300_000_000))
    reading = harness.read(harness.settings(config_text(server.url)), "roam")
    assert reading.critical_reason == "expired"
    assert reading.data_remaining == 0
    assert reading.status == "expired"


def test_organisation_balance(harness: Harness, server: FakeServer) -> None:
    reading = harness.read(harness.settings(config_text(server.url)), "org")
    assert reading.balance == Decimal(10000)
    assert reading.currency == "USD"


def test_organisation_in_the_older_wrapped_shape(
    harness: Harness, server: FakeServer, fake: FakeEsimGo
) -> None:
    server.script(
        "GET",
        r"/v2.5/organisation",
        Reply(
            200,
            '{"organisations": [{"name": "Acme", "currency": "EUR", "balance": 12.30}]}',
            content_type="application/json",
        ),
    )
    reading = harness.read(harness.settings(config_text(server.url)), "org")
    assert reading.balance == Decimal("12.30")
    assert reading.currency == "EUR"


def test_unknown_iccid_answers_400_and_fails_naming_it(
    harness: Harness, server: FakeServer, fake: FakeEsimGo
) -> None:
    fake.sims.clear()
    error = harness.fail(harness.settings(config_text(server.url)), "roam")
    assert isinstance(error, ProviderRefused)
    assert ICCID in str(error)


def test_bad_key_is_an_authentication_failure(harness: Harness, server: FakeServer) -> None:
    error = harness.fail(harness.settings(config_text(server.url, "wrong-key-999")), "org")
    assert isinstance(error, AuthenticationFailed)
    assert str(error).startswith("authentication failed for account fleet")
    assert "wrong-key-999" not in str(error)


def test_503_retry_after_is_honoured(harness: Harness, server: FakeServer, clock: Any) -> None:
    server.script(
        "GET", r"/v2.5/organisation", json_reply(503, {"message": "busy"}, **{"Retry-After": "4"})
    )
    reading = harness.read(harness.settings(config_text(server.url)), "org")
    assert reading.balance == Decimal(10000)
    assert 4.0 in clock.slept
