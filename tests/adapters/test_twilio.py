"""Twilio adapter against two loopback fakes (the main API and the Super SIM host), through
the real HTTP client.

The fakes serve the shapes of Twilio's OpenAPI (twilio/twilio-oai, spec/json/twilio_api_v2010.json
and twilio_supersim_v1.json: Balance.json, Sim, BillingPeriods paged with `meta`,
UsageRecords, Fleet), nothing the spec does not have. Errors `{"code", "message",
"more_info", "status"}` follow Twilio's error documentation (the OAI has no error schema).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from fakes import FakeProvider, FakeServer, Harness
from fakes.twilio import (
    SIM_SID,
    FakeSuperSim,
    FakeTwilioApi,
    config_text,
)

from monitor.adapters.http import AuthenticationFailed, ProviderRefused


@pytest.fixture
def supersim() -> FakeSuperSim:
    return FakeSuperSim()


@pytest.fixture
def servers(
    serve: Callable[[FakeProvider], FakeServer], supersim: FakeSuperSim
) -> tuple[FakeServer, FakeServer]:
    return serve(FakeTwilioApi()), serve(supersim)


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


def test_the_current_billing_period_on_a_later_page(
    harness: Harness, servers: tuple[FakeServer, FakeServer], supersim: FakeSuperSim
) -> None:
    """BillingPeriods is paged (PageSize 50 by default): a SIM with more periods than a page
    has its current one further on, reached by `meta.next_page_url` on the configured host."""
    api, host = servers
    old = supersim.start - timedelta(days=30 * 60)
    supersim.spans = [
        (old + timedelta(days=30 * n), old + timedelta(days=30 * (n + 1))) for n in range(60)
    ] + [(supersim.start, supersim.end)]
    reading = harness.read(harness.settings(config_text(api.url, host.url)), "tracker")
    assert reading.extras["period_ends_at"] == supersim.end.isoformat()
    assert reading.data_remaining == 750_000_000
    pages = host.seen("GET", r"/v1/Sims/.*/BillingPeriods")
    assert [r.arg("Page") for r in pages] == [None, "1"]
    assert pages[1].arg("PageToken") == "PAHB0"


@pytest.mark.parametrize(
    ("status", "named", "critical"),
    [
        ("active", "active", False),
        ("ready", "ready", False),
        ("new", "not yet in service", False),
        ("scheduled", "scheduled", False),
        ("inactive", "inactive", True),
    ],
)
def test_every_super_sim_status_has_its_level(
    harness: Harness,
    servers: tuple[FakeServer, FakeServer],
    supersim: FakeSuperSim,
    status: str,
    named: str,
    critical: bool,
) -> None:
    """active and ready are judged by the figures; new and scheduled are ok with the status
    named; inactive is critical whatever the figures."""
    api, host = servers
    supersim.status = status
    reading = harness.read(harness.settings(config_text(api.url, host.url)), "tracker")
    assert named in (reading.status or "")
    assert (reading.critical_reason is not None) == critical
    assert reading.warning_reason is None
