"""Hologram adapter against a loopback fake, through the real HTTP client.

The fake serves the shapes of Hologram's API reference (Basic `apikey:KEY`;
docs.hologram.io/api/1/organizations/orgid/balance/get: the balance as strings;
docs.hologram.io/api/1/usage/data/billing/get: bytes per SIM per 30-day billing period).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fakes import FakeProvider, FakeServer, Harness
from fakes.hologram import LINK, ORG, FakeHologram, config_text

from monitor.adapters.http import AuthenticationFailed, ProviderRefused
from monitor.errors import ConfigError


@pytest.fixture
def fake() -> FakeHologram:
    return FakeHologram()


@pytest.fixture
def fake_periods(fake: FakeHologram) -> list[dict[str, Any]]:
    return fake.periods


@pytest.fixture
def server(serve: Callable[[FakeProvider], FakeServer], fake: FakeHologram) -> FakeServer:
    return serve(fake)


def test_organisation_balance_from_strings(harness: Harness, server: FakeServer) -> None:
    reading = harness.read(harness.settings(config_text(server.url)), "org")
    assert reading.balance == Decimal("96.05")
    assert reading.currency == "USD"


def test_current_billing_period_against_the_plan_allowance(
    harness: Harness, server: FakeServer
) -> None:
    """The SIM's own 30-day period (periods_back 0), not the calendar month; its end is the
    line's renewal."""
    reading = harness.read(harness.settings(config_text(server.url)), "tracker")
    assert reading.data_total == 1_000_000_000
    assert reading.data_remaining == 750_000_000  # the previous period's use does not count
    assert reading.extras["data_used"] == 250_000_000
    assert reading.renewal_at == datetime(2026, 12, 11, 17, 24, 43, tzinfo=UTC)
    request = server.seen("GET", r".*/usage/data/billing")[0]
    assert (request.arg("linkid"), request.arg("orgid")) == (str(LINK), str(ORG))


def test_a_period_that_began_last_month_keeps_its_use(
    harness: Harness, server: FakeServer, fake_periods: list[dict[str, Any]]
) -> None:
    """Use since activation day counts even across the 1st (a calendar month would reset)."""
    fake_periods[0]["bytes"] = 990_000_000
    reading = harness.read(harness.settings(config_text(server.url)), "tracker")
    assert reading.data_remaining == 10_000_000


def test_no_record_for_the_current_period_is_no_use_yet(
    harness: Harness, server: FakeServer, fake_periods: list[dict[str, Any]]
) -> None:
    del fake_periods[0]
    reading = harness.read(harness.settings(config_text(server.url)), "tracker")
    assert reading.data_remaining == 1_000_000_000
    assert reading.renewal_at is None


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
