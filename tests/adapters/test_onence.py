"""1NCE adapter against a loopback fake of the Management API, through the real HTTP client.

The fake serves what 1NCE's OpenAPI documents (help.1nce.com/api/ downloads: Authorization
`POST /oauth/token`, SIM Management v1 `components.schemas.Quota`): a Basic-auth token
request lasting an hour, quotas in binary MB floats (negative = overuse, v2
`SimsQuota.volume`), 400 BadCredentials, and 401/404/422 with the empty bodies the spec gives.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fakes import FakeProvider, FakeServer, Harness, Reply
from fakes.onence import ICCID, FakeOnce, config_text

from monitor.adapters.http import AuthenticationFailed, ProviderRefused
from monitor.store import Store
from monitor.tokens import TokenCache


@pytest.fixture
def fake() -> FakeOnce:
    return FakeOnce()


@pytest.fixture
def server(serve: Callable[[FakeProvider], FakeServer], fake: FakeOnce) -> FakeServer:
    return serve(fake)


def tokens(server: FakeServer) -> int:
    return len(server.seen("POST", r".*/oauth/token"))


def test_data_quota_in_binary_megabytes(harness: Harness, server: FakeServer) -> None:
    """v2 OpenAPI `SimsQuota.volume`: "1 megabyte = 1024 kilobytes"."""
    reading = harness.read(harness.settings(config_text(server.url)), "sensor")
    assert reading.data_remaining == 456_956_786  # 435.787951 * 2**20, not 435_787_951
    assert reading.data_total == 500 * 2**20
    assert reading.expires_at == datetime(2029, 1, 1, tzinfo=UTC)
    assert reading.extras == {}
    assert str(reading.raw["data"]["volume"]) == "435.787951"
    assert len(server.seen("GET", r".*/quota/sms")) == 0  # not asked for


def test_negative_volume_is_overuse_a_critical_reading_of_no_data(
    harness: Harness, server: FakeServer, fake: FakeOnce
) -> None:
    """v2 `SimsQuota.volume` "can be negative": used beyond the quota, not a failed read."""
    fake.quotas["data"]["volume"] = -12.5
    reading = harness.read(harness.settings(config_text(server.url)), "sensor")
    assert reading.data_remaining == 0
    assert reading.data_total == 500 * 2**20
    assert reading.critical_reason == "overuse: data 12.5 MB over the quota"
    assert reading.status == "OVERUSE: data 12.5 MB over the quota"


def test_negative_sms_volume_is_overuse_too(
    harness: Harness, server: FakeServer, fake: FakeOnce
) -> None:
    fake.quotas["sms"]["volume"] = -3
    reading = harness.read(harness.settings(config_text(server.url)), "sensor-sms")
    assert reading.extras == {"sms_remaining": 0, "sms_total": 50}
    assert reading.critical_reason == "overuse: 3 SMS over the quota"


def test_sms_quota_when_the_line_asks(harness: Harness, server: FakeServer) -> None:
    reading = harness.read(harness.settings(config_text(server.url)), "sensor-sms")
    assert reading.extras == {"sms_remaining": 42, "sms_total": 50}


def test_expired_sim_is_a_critical_reading(
    harness: Harness, server: FakeServer, fake: FakeOnce
) -> None:
    fake.expired.add(ICCID)
    reading = harness.read(harness.settings(config_text(server.url)), "sensor")
    assert reading.critical_reason == "expired"
    assert reading.data_remaining is None


def test_unknown_sim_fails_naming_it(harness: Harness, server: FakeServer) -> None:
    settings = harness.settings(config_text(server.url).replace(ICCID, "8988280666000000999"))
    error = harness.fail(settings, "sensor")
    assert isinstance(error, ProviderRefused)
    assert "8988280666000000999" in str(error)


def test_bad_credentials_are_an_authentication_failure(
    harness: Harness, server: FakeServer
) -> None:
    error = harness.fail(harness.settings(config_text(server.url, "nope-nope")), "sensor")
    assert isinstance(error, AuthenticationFailed)
    assert str(error).startswith("authentication failed for account iot")
    assert "User does not exist." in str(error)
    assert "nope-nope" not in str(error)


def test_token_is_reused_while_it_lasts_and_lasts_an_hour(
    harness: Harness, server: FakeServer, tmp_path: Path
) -> None:
    database = tmp_path / "tokens.db"
    Store.open(database).close()
    context = harness.context(TokenCache(database))
    settings = harness.settings(config_text(server.url))
    for line in ("sensor", "sensor-sms", "sensor"):
        harness.read(settings, line, context)
    assert tokens(server) == 1
    with sqlite3.connect(database) as conn:
        (expires_at,) = conn.execute("SELECT expires_at FROM tokens").fetchone()
    left = datetime.fromisoformat(expires_at) - datetime.now(UTC)
    assert timedelta(minutes=55) < left <= timedelta(hours=1)


def test_a_token_about_to_expire_is_fetched_again(
    harness: Harness, server: FakeServer, fake: FakeOnce
) -> None:
    fake.expires_in = 30  # inside the cache's one-minute margin
    context = harness.context()
    settings = harness.settings(config_text(server.url))
    harness.read(settings, "sensor", context)
    harness.read(settings, "sensor", context)
    assert tokens(server) == 2


def test_token_rejected_by_the_api_is_renewed_once(
    harness: Harness, server: FakeServer, fake: FakeOnce
) -> None:
    context = harness.context()
    settings = harness.settings(config_text(server.url))
    harness.read(settings, "sensor", context)
    fake.valid.clear()  # expired on the server's side
    reading = harness.read(settings, "sensor", context)
    assert reading.data_total == 500 * 2**20
    assert tokens(server) == 2


def test_token_request_in_html_is_a_failed_check(harness: Harness, server: FakeServer) -> None:
    server.script(
        "POST",
        r".*/oauth/token",
        Reply(200, "<html><body>Maintenance</body></html>", content_type="text/html"),
    )
    error = harness.fail(harness.settings(config_text(server.url)), "sensor")
    assert "HTML" in str(error) and "Maintenance" in str(error)
