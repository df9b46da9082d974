"""eSIM Go adapter against a loopback fake of API v2.5, through the real HTTP client.

The fake serves what eSIM Go's API reference documents (docs.esim-go.com, v2.4/v2.5 "List
Bundles applied to eSIM": the v2.4 `Assignment` fields only, the 15 newest assignments unless
`limit` says more, used ones only with `includeUsed`; "Get Current Organisation Details":
`balance` is "Organisational balance + test credit"; errors `{"message"}`, 400 unknown ICCID,
403 refused key or inaccessible ICCID, 503 with Retry-After).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from fakes import FakeProvider, FakeServer, Harness, Reply, json_reply
from fakes.esimgo import API_KEY, ICCID, FakeEsimGo, assignment, bundles, config_text

from monitor.adapters.http import AuthenticationFailed, ProviderRefused

"""Left out of the list unless `includeUsed=true` ("to include expired and depleted bundles")."""


@pytest.fixture
def fake() -> FakeEsimGo:
    return FakeEsimGo()


@pytest.fixture
def server(serve: Callable[[FakeProvider], FakeServer], fake: FakeEsimGo) -> FakeServer:
    return serve(fake)


def test_active_bundle_in_bytes_and_no_end_time(harness: Harness, server: FakeServer) -> None:
    """The assignment has no end time (v2.4 schema, v2.5 example): no expiry is made up."""
    reading = harness.read(harness.settings(config_text(server.url)), "roam")
    assert reading.data_remaining == 750_000_000
    assert reading.data_total == 1_000_000_000
    assert reading.expires_at is None
    assert reading.status == "active"
    (sent,) = server.seen("GET")
    assert sent.headers["X-API-Key"] == API_KEY
    assert sent.query == {"includeUsed": ["true"], "limit": ["200"]}


def test_a_processing_assignment_is_data_the_line_has(
    harness: Harness, server: FakeServer, fake: FakeEsimGo
) -> None:
    """Up to about 10 minutes after every purchase, and the eSIM works meanwhile."""
    fake.sims[ICCID] = bundles(assignment("processing", 1_000_000_000, 1_000_000_000))
    reading = harness.read(harness.settings(config_text(server.url)), "roam")
    assert reading.data_remaining == 1_000_000_000
    assert reading.status == "processing"
    assert reading.critical_reason is None


def test_remaining_sums_processing_queued_and_active_data_only(
    harness: Harness, server: FakeServer, fake: FakeEsimGo
) -> None:
    fake.sims[ICCID] = bundles(
        assignment("active", 1_000_000_000, 100_000_000),
        assignment("queued", 2_000_000_000, 2_000_000_000),
        assignment("processing", 500_000_000, 500_000_000),
        assignment("depleted", 1_000_000_000, 0),
        assignment("active", 100, 50, callTypeGroup="sms"),
    )
    reading = harness.read(harness.settings(config_text(server.url)), "roam")
    assert reading.data_remaining == 2_600_000_000
    assert reading.data_total == 3_500_000_000
    assert reading.status == "active"


def test_more_than_fifteen_assignments_are_all_read(
    harness: Harness, server: FakeServer, fake: FakeEsimGo
) -> None:
    fake.sims[ICCID] = bundles(
        *(
            assignment("queued", 100, 100, assignmentDateTime=f"2024-12-{day:02d}T10:47:00Z")
            for day in range(1, 21)
        )
    )
    reading = harness.read(harness.settings(config_text(server.url)), "roam")
    assert reading.data_remaining == 2000


def test_unlimited_bundle_has_no_data_figure(
    harness: Harness, server: FakeServer, fake: FakeEsimGo
) -> None:
    fake.sims[ICCID] = bundles(assignment("active", 0, 0, unlimited=True))
    reading = harness.read(harness.settings(config_text(server.url)), "roam")
    assert reading.data_remaining is None and reading.data_total is None


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ("expired", "expired"),
        ("lapsed", "lapsed: expired without being used"),
        ("depleted", "depleted: no data left"),
        ("revoked", "revoked"),
    ],
)
def test_only_used_bundles_is_a_critical_reading(
    harness: Harness, server: FakeServer, fake: FakeEsimGo, state: str, reason: str
) -> None:
    """Used assignments are listed only when asked (`includeUsed`): the adapter asks."""
    fake.sims[ICCID] = bundles(assignment(state, 1_000_000_000, 300_000_000))
    reading = harness.read(harness.settings(config_text(server.url)), "roam")
    assert reading.critical_reason == reason
    assert reading.data_remaining == 0
    assert reading.status == state


def test_organisation_money_is_the_balance_without_test_credit(
    harness: Harness, server: FakeServer
) -> None:
    """v2.4 schema: `balance` is "Organisational balance + test credit"."""
    reading = harness.read(harness.settings(config_text(server.url)), "org")
    assert reading.balance == Decimal(9500)
    assert reading.currency == "USD"
    assert reading.status == "test credit 500 USD until 2023-12-31"


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


def test_403_on_bundles_also_names_an_iccid_the_user_cannot_access(
    harness: Harness, server: FakeServer
) -> None:
    error = harness.fail(harness.settings(config_text(server.url, "wrong-key-999")), "roam")
    assert isinstance(error, AuthenticationFailed)
    assert f"the ICCID {ICCID} is not accessible by this user" in str(error)
    assert "wrong-key-999" not in str(error)


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
    assert reading.balance == Decimal(9500)
    assert 4.0 in clock.slept
