"""Telnyx adapter against a loopback fake, through the real HTTP client.

The fake follows providers.md, section "Telnyx" (Bearer key, `/v2/balance` with decimal
strings, `/v2/sim_cards/{id}` with `{amount, unit}` data figures).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from fakes import FakeProvider, FakeServer, Harness, Request, Route, json_reply

from monitor.adapters.http import AuthenticationFailed, BadAnswer, ProviderRefused

API_KEY = "KEY0123telnyx"
SIM_ID = "6a09cdc3-8948-47f0-aa62-74ac943d6c58"


class FakeTelnyx(FakeProvider):
    """providers.md, "Telnyx": `GET /v2/balance` and `GET /v2/sim_cards/{id}`, Bearer.
    Error bodies `{"errors": [{code, title, detail}]}` follow Telnyx's API (copy)."""

    def __init__(self) -> None:
        self.sim: dict[str, Any] = {
            "id": SIM_ID,
            "record_type": "sim_card",
            "iccid": "89310410106543789301",
            "status": {"value": "enabled"},
            "data_limit": {"amount": "2048.1", "unit": "MB"},
            "current_billing_period_consumed_data": {"amount": "1024.05", "unit": "MB"},
        }

    def routes(self) -> list[tuple[str, str, Route]]:
        return [
            ("GET", r"/v2/balance", self.balance),
            ("GET", r"/v2/sim_cards/(?P<id>[^/]+)", self.sim_card),
        ]

    def handle(self, request: Request) -> Any:
        if request.bearer != API_KEY:
            error = {"code": "10009", "title": "Authentication failed", "detail": "bad key"}
            return json_reply(401, {"errors": [error]})
        return super().handle(request)

    def balance(self, request: Request, _: Any) -> Any:
        return json_reply(
            200,
            {
                "data": {
                    "record_type": "balance",
                    "balance": "300.00",
                    "pending": "10.00",
                    "credit_limit": "100.00",
                    "available_credit": "400.00",
                    "currency": "USD",
                }
            },
        )

    def sim_card(self, request: Request, match: Any) -> Any:
        if match["id"] != SIM_ID:
            error = {"code": "10005", "title": "Resource not found", "detail": "no such SIM"}
            return json_reply(404, {"errors": [error]})
        return json_reply(200, {"data": self.sim})


@pytest.fixture
def fake() -> FakeTelnyx:
    return FakeTelnyx()


@pytest.fixture
def server(serve: Callable[[FakeProvider], FakeServer], fake: FakeTelnyx) -> FakeServer:
    return serve(fake)


def config_text(url: str, key: str = API_KEY, sim: str = SIM_ID) -> str:
    return f"""
[accounts.telnyx]
provider = "telnyx"
api_key = "{key}"
base_url = "{url}"

[lines.balance]
account = "telnyx"

[lines.modem]
account = "telnyx"
sim_card_id = "{sim}"
"""


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
    assert reading.raw["data"]["data_limit"] == {"amount": "2048.1", "unit": "MB"}


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
