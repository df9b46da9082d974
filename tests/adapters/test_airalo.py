"""Airalo adapter against a loopback fake of the Partner API, through the real HTTP client.

The fake follows providers.md, section "Airalo Partner API" (token, usage, partner credit,
404 and 429 bodies, business errors); details the reference leaves open are marked.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import structlog
from fakes import (
    FakeProvider,
    FakeServer,
    Harness,
    Reply,
    VirtualClock,
    json_reply,
)
from fakes.airalo import CLIENT_ID, CLIENT_SECRET, ICCID, FakeAiralo, config_text, usage

from monitor.adapters import AdapterContext
from monitor.adapters.airalo import AiraloAdapter
from monitor.adapters.http import (
    AuthenticationFailed,
    BadAnswer,
    ProviderRefused,
    ProviderUnavailable,
    RateLimited,
)
from monitor.config import load
from monitor.cycle import Checker
from monitor.store import Store
from monitor.tokens import TokenCache

MIB = 2**20


@pytest.fixture
def fake() -> FakeAiralo:
    return FakeAiralo()


@pytest.fixture
def server(serve: Callable[[FakeProvider], FakeServer], fake: FakeAiralo) -> FakeServer:
    return serve(fake)


def tokens(server: FakeServer) -> int:
    return len(server.seen("POST", "/v2/token"))


def test_usage_is_normalised_to_binary_megabytes_and_utc(
    harness: Harness, server: FakeServer
) -> None:
    reading = harness.read(harness.settings(config_text(server.url)), "trip")
    assert reading.data_remaining == 767 * MIB
    assert reading.data_total == 2048 * MIB
    assert reading.expires_at == datetime(2022, 1, 1, tzinfo=UTC)
    assert reading.status == "ACTIVE"
    assert reading.critical_reason is None
    assert reading.balance is None
    assert reading.extras == {}
    assert reading.raw["data"]["remaining"] == 767  # the provider's own figure
    (token,) = server.seen("POST", "/v2/token")
    assert token.headers["Content-Type"].startswith("multipart/form-data")
    assert server.seen("GET")[0].bearer == "airalo-token-1"


def test_iso_expiry_with_offset_is_accepted(
    harness: Harness, server: FakeServer, fake: FakeAiralo
) -> None:
    fake.sims[ICCID] = usage(expired_at="2026-03-01T10:00:00+02:00")
    reading = harness.read(harness.settings(config_text(server.url)), "trip")
    assert reading.expires_at == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def test_unlimited_plan_has_no_data_figure_rather_than_empty(
    harness: Harness, server: FakeServer, fake: FakeAiralo
) -> None:
    fake.sims[ICCID] = usage(remaining=0, total=0, is_unlimited=True)
    reading = harness.read(harness.settings(config_text(server.url)), "trip")
    assert reading.data_remaining is None
    assert reading.data_total is None
    assert reading.status == "ACTIVE"


@pytest.mark.parametrize(("status", "reason"), [("EXPIRED", "expired"), ("RECYCLED", "recycled")])
def test_expired_or_recycled_sim_is_a_critical_reading_not_a_failure(
    harness: Harness, server: FakeServer, fake: FakeAiralo, status: str, reason: str
) -> None:
    fake.sims[ICCID] = usage(status=status, remaining=0)
    reading = harness.read(harness.settings(config_text(server.url)), "trip")
    assert reading.critical_reason == reason
    assert reading.status == status


def test_recycled_business_error_is_a_critical_reading(
    harness: Harness, server: FakeServer
) -> None:
    # providers.md, Airalo "Business errors": HTTP 422 {"code": 73, ...} eSIM recycled.
    server.script("GET", r"/v2/sims/.*/usage", json_reply(422, {"code": 73, "reason": "recycled"}))
    reading = harness.read(harness.settings(config_text(server.url)), "trip")
    assert reading.critical_reason == "recycled"


def test_other_business_error_fails_with_its_reason(harness: Harness, server: FakeServer) -> None:
    server.script(
        "GET",
        r"/v2/sims/.*/usage",
        json_reply(422, {"code": 13, "reason": "Operator under maintenance"}),
    )
    error = harness.fail(harness.settings(config_text(server.url)), "trip")
    assert isinstance(error, ProviderRefused)
    assert "Operator under maintenance" in str(error) and "code 13" in str(error)


def test_unknown_iccid_fails_naming_it(
    harness: Harness, server: FakeServer, fake: FakeAiralo
) -> None:
    fake.sims.clear()
    error = harness.fail(harness.settings(config_text(server.url)), "trip")
    assert ICCID in str(error)
    assert "travel" in str(error)
    assert "resource_not_found" in (error.raw or "")


def test_quotas_only_when_the_line_asks(
    harness: Harness, server: FakeServer, fake: FakeAiralo
) -> None:
    fake.sims[ICCID] = usage(remaining_text=40, total_text=50, remaining_voice=12, total_voice=30)
    settings = harness.settings(
        config_text(server.url)
        + f'\n[lines.calls]\naccount = "travel"\niccid = "{ICCID}"\nquotas = ["sms", "voice"]\n'
    )
    assert harness.read(settings, "trip").extras == {}
    assert harness.read(settings, "calls").extras == {
        "sms_remaining": 40,
        "sms_total": 50,
        "voice_minutes_remaining": 12,
        "voice_minutes_total": 30,
    }


def test_partner_credit_is_exact_decimal(harness: Harness, server: FakeServer) -> None:
    reading = harness.read(harness.settings(config_text(server.url)), "credit")
    assert reading.balance == Decimal("1234.56")
    assert str(reading.balance) == "1234.56"
    assert reading.currency == "USD"
    assert reading.data_remaining is None


def test_refused_credentials_fail_without_showing_the_secret(
    harness: Harness, server: FakeServer
) -> None:
    settings = harness.settings(config_text(server.url, secret="wrong-secret-value"))
    with structlog.testing.capture_logs() as logs:
        error = harness.fail(settings, "trip")
    assert isinstance(error, AuthenticationFailed)
    assert str(error).startswith("authentication failed for account travel")
    assert "wrong-secret-value" not in str(error) + (error.raw or "") + repr(logs)
    options = AiraloAdapter.AccountOptions.model_validate(settings.accounts["travel"].options)
    assert "wrong-secret-value" not in repr(options) + str(options.model_dump())


def test_ip_not_allow_listed_is_an_authentication_failure(
    harness: Harness, server: FakeServer
) -> None:
    # providers.md, Airalo "Business errors": 89 (HTTP 403) IP not allow-listed.
    server.script(
        "GET", r"/v2/sims/.*/usage", json_reply(403, {"code": 89, "reason": "IP not allowed"})
    )
    error = harness.fail(harness.settings(config_text(server.url)), "trip")
    assert str(error).startswith("authentication failed for account travel")
    assert "IP not allowed" in str(error)


def test_expired_token_is_renewed_once_on_401(
    harness: Harness, server: FakeServer, fake: FakeAiralo
) -> None:
    settings = harness.settings(config_text(server.url))
    context = harness.context()
    harness.read(settings, "trip", context)
    fake.revoke()
    reading = harness.read(settings, "trip", context)
    assert reading.data_remaining == 767 * MIB
    assert tokens(server) == 2
    assert server.seen("GET")[-1].bearer == "airalo-token-2"


def test_a_token_that_keeps_failing_is_renewed_only_once(
    harness: Harness, server: FakeServer, fake: FakeAiralo
) -> None:
    fake.accept_tokens = False
    error = harness.fail(harness.settings(config_text(server.url)), "trip")
    assert str(error).startswith("authentication failed for account travel")
    assert tokens(server) == 2
    assert "airalo-token" not in str(error) + (error.raw or "")


def test_429_within_budget_waits_for_retry_after(
    harness: Harness, server: FakeServer, clock: VirtualClock
) -> None:
    # providers.md, Airalo "Usage": 429 {"message": "Too Many Attempts."} with Retry-After.
    server.script(
        "GET",
        r"/v2/sims/.*/usage",
        json_reply(429, {"message": "Too Many Attempts."}, **{"Retry-After": "3"}),
    )
    reading = harness.read(harness.settings(config_text(server.url)), "trip")
    assert reading.data_remaining == 767 * MIB
    assert 3.0 in clock.slept
    assert len(server.seen("GET", r"/v2/sims/.*")) == 2


def test_429_beyond_budget_fails_saying_when_and_slows_down(
    harness: Harness, server: FakeServer
) -> None:
    server.script(
        "GET",
        r"/v2/sims/.*/usage",
        json_reply(429, {"message": "Too Many Attempts."}, **{"Retry-After": "600"}),
    )
    settings = harness.settings(config_text(server.url))
    context = harness.context()
    error = harness.fail(settings, "trip", context)
    assert isinstance(error, RateLimited)
    assert "retry after" in str(error)
    assert error.retry_at > datetime.now(UTC) + timedelta(minutes=9)
    # The next check of that line does not knock again before Retry-After has passed.
    again = harness.fail(settings, "trip", context)
    assert isinstance(again, RateLimited)
    assert len(server.seen("GET", r"/v2/sims/.*")) == 1


def test_server_errors_are_retried_with_backoff(harness: Harness, server: FakeServer) -> None:
    server.script(
        "GET",
        r"/v2/sims/.*/usage",
        Reply(502, "<html><body>Bad Gateway</body></html>", content_type="text/html"),
        Reply(drop=True),
    )
    with structlog.testing.capture_logs() as logs:
        reading = harness.read(harness.settings(config_text(server.url)), "trip")
    assert reading.data_remaining == 767 * MIB
    assert len(server.seen("GET", r"/v2/sims/.*")) == 3
    delays = [entry["delay"] for entry in logs if entry["event"] == "retrying"]
    assert len(delays) == 2
    assert 0.25 <= delays[0] <= 0.5 <= delays[1] <= 1.0  # exponential, jittered


def test_token_request_is_retried_on_5xx(harness: Harness, server: FakeServer) -> None:
    server.script("POST", r"/v2/token", json_reply(503, {"message": "try later"}))
    harness.read(harness.settings(config_text(server.url)), "trip")
    assert tokens(server) == 2


def test_lasting_outage_fails_within_budget_never_zero(
    harness: Harness, server: FakeServer
) -> None:
    outage = [json_reply(500, {"message": "boom"}) for _ in range(100)]
    server.script("GET", r"/v2/sims/.*/usage", *outage)
    error = harness.fail(harness.settings(config_text(server.url)), "trip")
    assert isinstance(error, ProviderUnavailable)
    assert "HTTP 500" in str(error) and "20s budget" in str(error)
    assert 3 <= len(server.seen("GET", r"/v2/sims/.*")) < 20


@pytest.mark.parametrize(
    ("reply", "shown"),
    [
        (
            Reply(200, "<!DOCTYPE html><title>Captive portal</title>", content_type="text/html"),
            "HTML",
        ),
        (Reply(200, '{"data": {"remaining": 7', content_type="application/json"), "malformed JSON"),
        (Reply(200, "", content_type="application/json"), "empty answer"),
    ],
)
def test_garbage_is_a_failed_check_with_an_excerpt(
    harness: Harness, server: FakeServer, reply: Reply, shown: str
) -> None:
    server.script("GET", r"/v2/sims/.*/usage", reply)
    with structlog.testing.capture_logs() as logs:
        error = harness.fail(harness.settings(config_text(server.url)), "trip")
    assert isinstance(error, BadAnswer)
    assert shown in str(error)
    if reply.body:
        assert reply.body[:15] in str(error)
        assert error.raw == reply.body
        assert any(entry.get("excerpt") for entry in logs)


def test_answer_without_the_figures_fails(harness: Harness, server: FakeServer) -> None:
    server.script("GET", r"/v2/sims/.*/usage", json_reply(200, {"data": {"status": "ACTIVE"}}))
    error = harness.fail(harness.settings(config_text(server.url)), "trip")
    assert "remaining" in str(error)


def test_timeout_is_a_failed_check(harness: Harness, server: FakeServer) -> None:
    server.script("GET", r"/v2/sims/.*/usage", *[Reply(hold=5) for _ in range(5)])
    error = harness.fail(harness.settings(config_text(server.url, timeout="0.4s")), "trip")
    assert isinstance(error, ProviderUnavailable)
    assert "no answer within" in str(error)


def test_refused_connection_is_a_failed_check(harness: Harness, server: FakeServer) -> None:
    url = server.url
    server.close()
    error = harness.fail(harness.settings(config_text(url, timeout="2s")), "trip")
    assert isinstance(error, ProviderUnavailable)
    assert "connection failed" in str(error)


def test_line_without_an_account_cannot_be_set_up(tmp_path: Path) -> None:
    path = tmp_path / "lone.toml"
    path.write_text(f'[lines.lone]\nadapter = "airalo"\niccid = "{ICCID}"\n')
    checker = Checker(load(path))
    try:
        (result,) = checker.read(["lone"])
    finally:
        checker.close()
    assert result.reading is None
    assert "give line 'lone' an `account`" in (result.error or "")


def test_polling_faster_than_the_server_cache_gains_nothing() -> None:
    assert AiraloAdapter.min_interval == timedelta(minutes=20)


# ---- many lines, one token, one pool; tokens across restarts ------------------------------


def many_lines(url: str, database: Path, count: int) -> str:
    lines = "".join(
        f'\n[lines.sim-{n:02d}]\naccount = "travel"\niccid = "89444654000002{n:05d}"\n'
        for n in range(count)
    )
    return f"""
[monitor]
database = "{database}"
workers = 8

[accounts.travel]
provider = "airalo"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
base_url = "{url}"
{lines}"""


def test_fifty_lines_on_one_account_make_one_token_request_and_share_a_pool(
    tmp_path: Path, server: FakeServer, fake: FakeAiralo
) -> None:
    database = tmp_path / "history.db"
    for n in range(50):
        fake.sims[f"89444654000002{n:05d}"] = usage(remaining=n)
    path = tmp_path / "many.toml"
    path.write_text(many_lines(server.url, database, 50))
    Store.open(database).close()
    checker = Checker(load(path))
    try:
        results = checker.read(list(checker.settings.lines))
    finally:
        checker.close()
    assert [r.error for r in results] == [None] * 50
    assert sorted(r.reading.data_remaining for r in results if r.reading) == [
        n * MIB for n in range(50)
    ]
    assert tokens(server) == 1
    connections = {r.client for r in server.seen("GET")}
    assert len(connections) <= 8  # keep-alive connections of one pool, not one per line


def test_token_survives_a_restart_through_the_database(
    tmp_path: Path, server: FakeServer, fake: FakeAiralo
) -> None:
    fake.sims["8944465400000200000"] = usage()
    database = tmp_path / "history.db"
    path = tmp_path / "config.toml"
    path.write_text(many_lines(server.url, database, 1))
    Store.open(database).close()
    for _ in range(2):  # two daemon lifetimes
        checker = Checker(load(path))
        try:
            (result,) = checker.read(["sim-00"])
        finally:
            checker.close()
        assert result.reading is not None, result.error
    assert tokens(server) == 1
    with sqlite3.connect(database) as conn:
        (key, expires_at) = conn.execute("SELECT key, expires_at FROM tokens").fetchone()
    assert key.startswith("airalo:travel:")
    assert datetime.fromisoformat(expires_at) > datetime.now(UTC) + timedelta(days=300)


def test_token_of_other_credentials_is_not_reused(harness: Harness, server: FakeServer) -> None:
    cache = TokenCache(None)
    first = harness.settings(config_text(server.url))
    harness.read(first, "trip", harness.context(cache))
    moved = harness.settings(config_text(server.url + "/"))  # same account, same host
    harness.read(moved, "trip", harness.context(cache))
    assert tokens(server) == 1
    other = harness.settings(config_text(server.url).replace(CLIENT_ID, "other-client"))
    assert harness.fail(other, "trip", AdapterContext(cache)).__class__ is AuthenticationFailed
