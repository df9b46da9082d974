"""Telnyx adapter against a loopback fake, through the real HTTP client.

The fake serves the shapes of Telnyx's OpenAPI spec (team-telnyx/openapi, openapi/spec3.json:
`UserBalance`, `SIMCard`, `SIMCardStatus`, `SIMCardGroup`, `Errors`), with the schema's own
example values; nothing the spec does not have.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from fakes import FakeProvider, FakeServer, Harness
from fakes.telnyx import GROUP_ID, FakeTelnyx, config_text

from monitor.adapters.http import AuthenticationFailed, BadAnswer, ProviderRefused


@pytest.fixture
def fake() -> FakeTelnyx:
    return FakeTelnyx()


@pytest.fixture
def server(serve: Callable[[FakeProvider], FakeServer], fake: FakeTelnyx) -> FakeServer:
    return serve(fake)


def test_balance_as_exact_decimal(harness: Harness, server: FakeServer) -> None:
    reading = harness.read(harness.settings(config_text(server.url)), "balance")
    assert reading.balance == Decimal("300.00")
    assert str(reading.balance) == "300.00"
    assert reading.currency == "USD"
    assert reading.extras == {"available_credit": Decimal("400.00")}


def test_sim_card_data_in_decimal_megabytes(harness: Harness, server: FakeServer) -> None:
    reading = harness.read(harness.settings(config_text(server.url)), "modem")
    assert reading.data_total == 2_048_100_000
    assert reading.data_remaining == 2_048_100_000 - 1_024_050_000
    assert reading.status == "enabled"
    assert reading.raw["sim_card"]["data"]["data_limit"] == {"amount": "2048.1", "unit": "MB"}


def test_consumption_over_the_limit_is_zero_left_not_negative(
    harness: Harness, server: FakeServer, fake: FakeTelnyx
) -> None:
    fake.sim["current_billing_period_consumed_data"] = {"amount": "2049.0", "unit": "MB"}
    reading = harness.read(harness.settings(config_text(server.url)), "modem")
    assert reading.data_remaining == 0


def test_sim_without_a_limit_has_no_data_figure(
    harness: Harness, server: FakeServer, fake: FakeTelnyx
) -> None:
    fake.sim["data_limit"] = None
    reading = harness.read(harness.settings(config_text(server.url)), "modem")
    assert reading.data_remaining is None and reading.data_total is None
    assert reading.extras == {"data_used": 1_024_050_000}


def test_unknown_unit_is_a_failed_check(
    harness: Harness, server: FakeServer, fake: FakeTelnyx
) -> None:
    fake.sim["data_limit"] = {"amount": "2", "unit": "parsecs"}
    error = harness.fail(harness.settings(config_text(server.url)), "modem")
    assert isinstance(error, BadAnswer)


def test_unknown_sim_card_fails_naming_it(harness: Harness, server: FakeServer) -> None:
    error = harness.fail(harness.settings(config_text(server.url, sim="nope-0")), "modem")
    assert isinstance(error, ProviderRefused)
    assert "nope-0" in str(error)


def test_bad_key_is_an_authentication_failure(harness: Harness, server: FakeServer) -> None:
    error = harness.fail(harness.settings(config_text(server.url, key="KEYwrong999")), "balance")
    assert isinstance(error, AuthenticationFailed)
    assert str(error).startswith("authentication failed for account telnyx")
    assert "bad key" in str(error)
    assert "KEYwrong999" not in str(error)


@pytest.mark.parametrize(
    ("value", "warning", "critical", "named"),
    [
        ("enabled", None, None, "enabled"),
        ("registering", None, None, "not yet in service"),
        ("enabling", None, None, "not yet in service"),
        ("disabling", "being disabled", None, "disabling"),
        ("setting_standby", "being set to standby", None, "setting_standby"),
        ("disabled", None, "disabled", "disabled"),
        ("standby", None, "standby", "standby"),
        ("data_limit_exceeded", None, "data limit exceeded", "data_limit_exceeded"),
    ],
)
def test_every_documented_sim_state_has_its_level(
    harness: Harness,
    server: FakeServer,
    fake: FakeTelnyx,
    value: str,
    warning: str | None,
    critical: str | None,
    named: str,
) -> None:
    """SIMCardStatus.value: enabled is judged by the figures, registering/enabling are ok
    (not yet in service), disabling/setting_standby warn, disabled/standby/over the limit
    are critical whatever the figures."""
    fake.sim["status"] = {"value": value, "reason": "as Telnyx says"}
    reading = harness.read(harness.settings(config_text(server.url)), "modem")
    assert named in (reading.status or "")
    assert (reading.warning_reason is None) == (warning is None)
    assert warning is None or warning in (reading.warning_reason or "")
    assert (reading.critical_reason is None) == (critical is None)
    assert critical is None or critical in (reading.critical_reason or "")


def test_an_undocumented_state_warns(
    harness: Harness, server: FakeServer, fake: FakeTelnyx
) -> None:
    fake.sim["status"] = {"value": "teleported"}
    reading = harness.read(harness.settings(config_text(server.url)), "modem")
    assert "teleported" in (reading.warning_reason or "")


def test_the_sim_card_groups_limit_counts(
    harness: Harness, server: FakeServer, fake: FakeTelnyx
) -> None:
    """The group's limit (against the group's consumption) binds before the SIM's own."""
    fake.sim["sim_card_group_id"] = GROUP_ID
    fake.group["data_limit"] = {"amount": "1.5", "unit": "GB"}
    fake.group["consumed_data"] = {"amount": "1200", "unit": "MB"}
    reading = harness.read(harness.settings(config_text(server.url)), "modem")
    assert reading.data_total == 1_500_000_000
    assert reading.data_remaining == 300_000_000
    assert reading.extras["data_limit_of"] == "SIM card group"
    assert server.seen("GET", rf"/v2/sim_card_groups/{GROUP_ID}")


def test_a_group_without_a_limit_leaves_the_sims_own(
    harness: Harness, server: FakeServer, fake: FakeTelnyx
) -> None:
    fake.sim["sim_card_group_id"] = GROUP_ID
    reading = harness.read(harness.settings(config_text(server.url)), "modem")
    assert reading.data_total == 2_048_100_000
    assert reading.extras["data_limit_of"] == "SIM card"
