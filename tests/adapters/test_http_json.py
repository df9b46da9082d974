"""The `http_json` adapter: its pure parts (templates, JMESPath, units, dates) table-tested,
then end to end against a loopback HTTP server through the real HTTP layer (httpx)."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from monitor import adapters
from monitor.adapters import http
from monitor.adapters.fields import to_bytes, to_datetime, to_money
from monitor.adapters.http_json import (
    HttpJsonAccount,
    HttpJsonAdapter,
    HttpJsonOptions,
    Spec,
    render,
    template_fields,
    to_reading,
)
from monitor.cli import load_settings, main
from monitor.cycle import Checker
from monitor.errors import CheckFailed

NOW = datetime(2025, 11, 26, 12, 0, tzinfo=UTC)
TOKEN = "tok-3f9a1c7e55"
PASSWORD = "pw-91be4471"
API_KEY = "key-0c8d2e6f"


# ---- pure parts -------------------------------------------------------------------------


def spec(**keys: Any) -> Spec:
    return Spec.merge(None, HttpJsonOptions.model_validate({"url": "/x", **keys}))


def test_template_fields_are_plain_names() -> None:
    assert template_fields("/sims/{iccid}/usage?x={line}") == {"iccid", "line"}
    assert template_fields("/balance") == set()
    for bad in ("/{a.b}", "/{0}", "/{x!r}", "/{x:>9}", "/{x", "/{a[0]}"):
        with pytest.raises(ValueError):
            template_fields(bad)


def test_render_escapes_path_segments_only() -> None:
    values = {"iccid": "89/01?x=1#y"}
    assert render("/sims/{iccid}", values, path=True) == "/sims/89%2F01%3Fx%3D1%23y"
    assert render("{iccid}", values) == "89/01?x=1#y"
    with pytest.raises(ValueError, match="needs iccid"):
        render("/sims/{iccid}", {})


def test_line_overrides_account_and_headers_merge() -> None:
    account = HttpJsonAccount.model_validate(
        {
            "base_url": "https://api.example.com/v1",
            "url": "/sims/{iccid}",
            "headers": {"Accept-Language": "en", "X-Client": "a"},
            "data_remaining": "data.left",
            "data_unit": "MB",
        }
    )
    line = HttpJsonOptions.model_validate(
        {"url": "/balance", "balance": "amount", "headers": {"X-Client": "b"}, "iccid": "1"}
    )
    merged = Spec.merge(account, line)
    assert merged.url == "/balance"
    assert merged.headers == {"Accept-Language": "en", "X-Client": "b"}
    assert merged.expressions == {"balance": "amount", "data_remaining": "data.left"}
    assert merged.data_unit == "MB"
    assert merged.method == "GET"


def test_merge_needs_a_url_and_a_figure() -> None:
    with pytest.raises(ValueError, match="no `url`"):
        Spec.merge(None, HttpJsonOptions.model_validate({"balance": "a"}))
    with pytest.raises(ValueError, match="only with method"):
        Spec.merge(None, HttpJsonOptions.model_validate({"url": "/x", "body": {}, "status": "s"}))
    with pytest.raises(ValueError, match="no figure"):
        Spec.merge(None, HttpJsonOptions.model_validate({"url": "/x", "currency": "'USD'"}))


def test_reading_from_nested_reply_with_literal_currency() -> None:
    payload = {
        "data": {
            "wallet": [{"kind": "main", "amount": "12.30"}, {"kind": "bonus", "amount": "1"}],
            "plan": {"left": 767, "size": 2048, "ends": "2026-01-01 00:00:00", "state": "ACTIVE"},
        }
    }
    s = spec(
        balance="data.wallet[?kind=='main'] | [0].amount",
        currency="'eur'",
        data_remaining="data.plan.left",
        data_total="data.plan.size",
        data_unit="MiB",
        expires_at="data.plan.ends",
        date_format="%Y-%m-%d %H:%M:%S",
        status="data.plan.state",
    )
    reading = to_reading("travel", s, payload, NOW)
    assert str(reading.balance) == "12.30"
    assert reading.currency == "EUR"
    assert reading.data_remaining == 767 * 2**20
    assert reading.data_total == 2048 * 2**20
    assert reading.expires_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert reading.status == "ACTIVE"
    assert reading.critical_reason is None
    assert reading.raw is payload


def test_used_and_total_give_remaining_and_telnyx_amount_objects() -> None:
    payload = {
        "limit": {"amount": "2048.1", "unit": "MB"},
        "consumed": {"amount": "1024.0", "unit": "MB"},
    }
    reading = to_reading("l", spec(data_total="limit", data_used="consumed"), payload, NOW)
    assert reading.data_total == 2_048_100_000
    assert reading.data_remaining == 1_024_100_000
    assert reading.extras == {"data_used": 1_024_000_000}


def test_critical_status_is_an_alert_not_a_failure() -> None:
    s = spec(status="state", critical_statuses=["expired", "RECYCLED"])
    assert to_reading("l", s, {"state": "Expired"}, NOW).critical_reason == "expired"
    assert to_reading("l", s, {"state": "ACTIVE"}, NOW).critical_reason is None


def test_a_missing_figure_is_absent_and_no_figure_at_all_fails() -> None:
    s = spec(balance="balance", data_remaining="data.left", currency="currency")
    reading = to_reading("l", s, {"balance": 5, "currency": "USD"}, NOW)
    assert reading.balance == Decimal(5) and reading.data_remaining is None
    with pytest.raises(ValueError, match="none of the configured figures"):
        to_reading("l", s, {"error": "session expired", "currency": "USD"}, NOW)


@pytest.mark.parametrize(
    ("payload", "figure"),
    [
        ({"b": "n/a"}, "balance"),
        ({"b": True}, "balance"),
        ({"b": 1, "c": "dollars"}, "currency"),
        ({"d": "plenty"}, "data_remaining"),
        ({"d": -5}, "data_remaining"),
        ({"e": "soon"}, "expires_at"),
        ({"s": {"nested": 1}}, "status"),
    ],
)
def test_unreadable_figure_is_named(payload: dict[str, Any], figure: str) -> None:
    s = spec(balance="b", currency="c", data_remaining="d", expires_at="e", status="s")
    with pytest.raises(ValueError, match=rf"^{figure} \("):
        to_reading("l", s, payload, NOW)


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (767, "MB", 767_000_000),
        (Decimal("435.787951"), "MB", 435_787_951),
        (1.5, "GB", 1_500_000_000),
        ("3", "KiB", 3072),
        ("2GB", "MB", 2_000_000_000),  # a size with its own unit keeps it
        (1000, "b", 1000),
    ],
)
def test_data_units(value: Any, unit: str, expected: int) -> None:
    assert to_bytes(value, unit) == expected


@pytest.mark.parametrize(
    ("value", "fmt", "expected"),
    [
        ("2025-01-01T00:00:00Z", "iso", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-01-01T02:00:00+02:00", "iso", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-01-01", "iso", datetime(2025, 1, 1, tzinfo=UTC)),
        (1735689600, "epoch", datetime(2025, 1, 1, tzinfo=UTC)),
        ("1735689600", "epoch", datetime(2025, 1, 1, tzinfo=UTC)),
        (1735689600000, "epoch_ms", datetime(2025, 1, 1, tzinfo=UTC)),
        ("01/01/2025", "%d/%m/%Y", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-01-01 05:30 +0530", "%Y-%m-%d %H:%M %z", datetime(2025, 1, 1, tzinfo=UTC)),
    ],
)
def test_dates(value: Any, fmt: str, expected: datetime) -> None:
    moment = to_datetime(value, fmt)
    assert moment == expected and moment.tzinfo == UTC


def test_float_balance_keeps_its_shortest_spelling() -> None:
    assert str(to_money(12.34)) == "12.34"


@pytest.mark.parametrize(
    "keys",
    [
        {"balance": "data[?"},
        {"data_unit": "parsecs"},
        {"date_format": "dd/mm/yyyy"},
        {"url": "https://elsewhere.example/steal"},
        {"url": "//elsewhere.example/steal"},
        {"url": "/sims/{iccid.real}"},
        {"method": "DELETE"},
        {"nested": {"a": 1}},
        {"flag": True},
        {"bad-name": "x"},
    ],
)
def test_bad_line_options(keys: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        HttpJsonOptions.model_validate(keys)


BASE = {"base_url": "https://api.example.com"}


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"auth": "bearer"}, "needs `token`"),
        ({"auth": "basic", "username": "u"}, "needs `password`"),
        ({"auth": "header", "api_key": "k"}, "needs `api_key_header`"),
        ({"auth": "basic", "username": "u", "password": "p", "token": "t"}, "`token` is used"),
        ({"token": "t"}, "`token` is used only with auth = 'bearer'"),
        ({"auth": "header", "api_key_header": "X Key", "api_key": "k"}, "not a header name"),
        ({"auth": "oauth"}, "auth"),
        ({"base_url": "ftp://x"}, "base_url"),
        ({"tokn": "t"}, "tokn"),
    ],
)
def test_bad_account_options(keys: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        HttpJsonAccount.model_validate({**BASE, **keys})
    assert message in str(info.value)


def test_account_secrets_stay_masked() -> None:
    account = HttpJsonAccount.model_validate(
        {**BASE, "auth": "basic", "username": "u", "password": PASSWORD}
    )
    assert PASSWORD not in repr(account) and PASSWORD not in str(account.model_dump())
    with pytest.raises(ValidationError) as info:
        HttpJsonAccount.model_validate({**BASE, "auth": "bearer", "password": PASSWORD})
    assert PASSWORD not in str(info.value)


# ---- a loopback API ---------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    port: int


Reply = tuple[int, Any, dict[str, str]]
Route = Callable[[Seen], Reply]


@dataclass
class FakeApi:
    """A JSON API on 127.0.0.1 that speaks HTTP/1.1 (keep-alive, so connection reuse shows).

    `routes` maps "METHOD /path" to a function of the request; a body that is not bytes or
    str is sent as JSON. Unknown paths answer 404 with a JSON error body."""

    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                    self.client_address[1],
                )
                api.seen.append(seen)
                route = api.routes.get(f"{self.command} {parts.path}")
                if route is None:
                    status, body, headers = 404, {"message": "no such resource"}, {}
                else:
                    status, body, headers = route(seen)
                if not isinstance(body, bytes | str):
                    body = json.dumps(body)
                    headers = {"Content-Type": "application/json", **headers}
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                # a client that stops reading a body too large (what some tests check) closes
                # the connection under the write: no traceback on the suite's output for that
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

            do_GET = _serve
            do_POST = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v1"

    def hang(self, seen: Seen) -> Reply:
        """A server that never answers (until the test ends)."""
        self.release.wait(10)
        return 200, {}, {}

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api() -> Iterator[FakeApi]:
    server = FakeApi()
    yield server
    server.close()


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retries and Retry-After waits are virtual: recorded, and added to the clock."""
    slept: list[float] = []
    real = http.DEFAULT_BACKOFF.clock

    def sleep(seconds: float) -> None:
        slept.append(seconds)

    def clock() -> float:
        return real() + sum(slept)

    monkeypatch.setattr(
        http, "DEFAULT_BACKOFF", http.Backoff(sleep=sleep, clock=clock, rand=lambda: 1.0)
    )
    return slept


def usage_route(seen: Seen) -> Reply:
    iccid = seen.path.split("/")[-2]
    return (
        200,
        {"data": {"iccid": iccid, "remaining": 767, "total": 2048, "expired_at": "2026-01-01"}},
        {},
    )


def make(
    api: FakeApi,
    line: dict[str, Any] | None = None,
    context: adapters.AdapterContext | None = None,
    line_id: str = "travel",
    **account: Any,
) -> HttpJsonAdapter:
    keys = {
        "base_url": api.base_url,
        "auth": "bearer",
        "token": TOKEN,
        "url": "/sims/{iccid}/usage",
        "data_remaining": "data.remaining",
        "data_total": "data.total",
        "data_unit": "MB",
        "expires_at": "data.expired_at",
        "timeout": "2s",
        **account,
    }
    ref = adapters.AccountRef("acme", HttpJsonAccount.model_validate(keys))
    options = HttpJsonOptions.model_validate(line if line is not None else {"iccid": "8901"})
    return HttpJsonAdapter(line_id, options, context or adapters.AdapterContext(), ref)


def failure(adapter: HttpJsonAdapter) -> CheckFailed:
    with pytest.raises(CheckFailed) as info:
        adapter.read()
    for secret in (TOKEN, PASSWORD, API_KEY):
        assert secret not in str(info.value)
        assert secret not in (info.value.raw or "")
    return info.value


# ---- end to end over HTTP ---------------------------------------------------------------


def test_bearer_read(api: FakeApi, waits: list[float]) -> None:
    api.routes["GET /api/v1/sims/8901/usage"] = usage_route
    reading = make(api).read()
    assert reading.data_remaining == 767_000_000
    assert reading.data_total == 2_048_000_000
    assert reading.expires_at == datetime(2026, 1, 1, tzinfo=UTC)
    [seen] = api.seen
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["accept"] == "application/json"


def test_basic_auth_and_query_template(api: FakeApi, waits: list[float]) -> None:
    expected = "Basic " + base64.b64encode(f"apikey:{PASSWORD}".encode()).decode()

    def balance(seen: Seen) -> Reply:
        if seen.headers.get("authorization") != expected:
            return 401, {"success": False, "error": "Unauthorized"}, {}
        return 200, {"success": True, "data": {"balance": "96.05", "sims": seen.query}}, {}

    api.routes["GET /api/v1/organizations/144/balance"] = balance
    adapter = make(
        api,
        line={
            "url": "/organizations/{org}/balance",
            "query": {"linkid": "{linkid}", "for": "{line}"},
            "balance": "data.balance",
            "currency": "'USD'",
            "org": 144,
            "linkid": "a b&c",
        },
        auth="basic",
        token=None,
        username="apikey",
        password=PASSWORD,
    )
    reading = adapter.read()
    assert reading.balance == Decimal("96.05") and reading.currency == "USD"
    assert api.seen[0].query == {"linkid": ["a b&c"], "for": ["travel"]}
    assert reading.data_remaining is None  # the account's data expression found nothing


def test_header_auth_and_post_body(api: FakeApi, waits: list[float]) -> None:
    def query(seen: Seen) -> Reply:
        if seen.headers.get("x-api-key") != API_KEY:
            return 403, {"message": "Invalid API key"}, {}
        sent = json.loads(seen.body)
        return 200, {"result": {"sims": [{"id": sent["iccids"][0], "bytes": 5_000_000}]}}, {}

    api.routes["POST /api/v1/query"] = query
    adapter = make(
        api,
        line={"iccid": "8944"},
        auth="header",
        token=None,
        api_key_header="X-API-Key",
        api_key=API_KEY,
        url="/query",
        method="POST",
        body={"iccids": ["{iccid}"], "fields": ["data"], "limit": 1},
        data_remaining="result.sims[0].bytes",
        data_total=None,
        data_unit=None,
        expires_at=None,
    )
    assert adapter.read().data_remaining == 5_000_000
    assert json.loads(api.seen[0].body) == {"iccids": ["8944"], "fields": ["data"], "limit": 1}


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_name_the_account(
    api: FakeApi, waits: list[float], status: int
) -> None:
    api.routes["GET /api/v1/sims/8901/usage"] = lambda seen: (
        status,
        {"message": f"token {TOKEN} is not valid"},
        {},
    )
    exc = failure(make(api))
    assert "authentication failed for account acme" in str(exc)
    assert isinstance(exc, http.AuthenticationFailed)


def test_unknown_sim_is_a_failure_naming_it(api: FakeApi, waits: list[float]) -> None:
    exc = failure(make(api, line={"iccid": "0000"}))
    assert "nothing at /sims/0000/usage" in str(exc) and "iccid" in str(exc)
    assert "HTTP 404" in str(exc)


def test_path_values_cannot_escape_their_segment(api: FakeApi, waits: list[float]) -> None:
    failure(make(api, line={"iccid": "../../admin?x=1"}))
    assert api.seen[0].path == "/api/v1/sims/..%2F..%2Fadmin%3Fx%3D1/usage"


def test_429_waits_for_retry_after_then_reads(api: FakeApi, waits: list[float]) -> None:
    calls: list[int] = []

    def limited(seen: Seen) -> Reply:
        calls.append(1)
        if len(calls) == 1:
            return 429, {"message": "Too Many Attempts."}, {"Retry-After": "1.5"}
        return usage_route(seen)

    api.routes["GET /api/v1/sims/8901/usage"] = limited
    reading = make(api).read()
    assert reading.data_remaining == 767_000_000
    assert waits == [1.5]
    assert len(api.seen) == 2


def test_429_beyond_the_budget_fails_saying_when(api: FakeApi, waits: list[float]) -> None:
    api.routes["GET /api/v1/sims/8901/usage"] = lambda seen: (
        429,
        {"message": "Too Many Attempts."},
        {"Retry-After": "600"},
    )
    exc = failure(make(api))
    assert isinstance(exc, http.RateLimited)
    assert "rate limiting account acme" in str(exc)
    assert waits == []


def test_html_error_page_is_a_failure_with_excerpt(api: FakeApi, waits: list[float]) -> None:
    page = "<!DOCTYPE html><html><head><title>Sign in</title></head><body>Portal</body></html>"
    api.routes["GET /api/v1/sims/8901/usage"] = lambda seen: (
        200,
        page,
        {"Content-Type": "text/html"},
    )
    exc = failure(make(api))
    assert "HTML" in str(exc) and "<!DOCTYPE html>" in str(exc)
    assert exc.raw is not None and "Portal" in exc.raw


def test_server_error_html_is_retried_then_fails(api: FakeApi, waits: list[float]) -> None:
    api.routes["GET /api/v1/sims/8901/usage"] = lambda seen: (
        502,
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
        {"Content-Type": "text/html"},
    )
    exc = failure(make(api))
    assert isinstance(exc, http.ProviderUnavailable)
    assert "502" in str(exc)
    assert len(api.seen) >= 2 and waits


def test_malformed_json(api: FakeApi, waits: list[float]) -> None:
    api.routes["GET /api/v1/sims/8901/usage"] = lambda seen: (
        200,
        '{"data": {"remaining": 767,',
        {"Content-Type": "application/json"},
    )
    exc = failure(make(api))
    assert "malformed JSON" in str(exc)
    assert '{"data": {"remaining": 767,' in str(exc)


def test_json_without_figures_never_reads_as_zero(api: FakeApi, waits: list[float]) -> None:
    api.routes["GET /api/v1/sims/8901/usage"] = lambda seen: (
        200,
        {"data": [], "meta": {"message": f"bad token {TOKEN}"}},
        {},
    )
    exc = failure(make(api))
    assert isinstance(exc, http.BadAnswer)
    assert "none of the configured figures" in str(exc)
    assert "[redacted]" in str(exc)


def test_wrong_type_figure_fails_naming_it(api: FakeApi, waits: list[float]) -> None:
    api.routes["GET /api/v1/sims/8901/usage"] = lambda seen: (
        200,
        {"data": {"remaining": "unlimited", "total": 2048}},
        {},
    )
    assert "data_remaining (data.remaining)" in str(failure(make(api)))


def test_timeout_is_a_failure(api: FakeApi, waits: list[float]) -> None:
    api.routes["GET /api/v1/sims/8901/usage"] = api.hang
    exc = failure(make(api, timeout="0.6s"))
    assert isinstance(exc, http.ProviderUnavailable)
    assert "no answer within" in str(exc)


def test_unused_line_key_is_reported(api: FakeApi, waits: list[float]) -> None:
    exc = failure(make(api, line={"iccid": "8901", "icid": "8901"}))
    assert "unknown key(s) icid" in str(exc)
    assert api.seen == []


def test_lines_of_one_account_share_one_session_and_connection(
    api: FakeApi, waits: list[float]
) -> None:
    for n in range(5):
        api.routes[f"GET /api/v1/sims/{n}/usage"] = usage_route
    context = adapters.AdapterContext()
    lines = [make(api, {"iccid": str(n)}, context, line_id=f"l{n}") for n in range(5)]
    try:
        readings = [line.read() for line in lines]
        assert len({id(line.session) for line in lines}) == 1
    finally:
        context.close()
    assert [r.line for r in readings] == [f"l{n}" for n in range(5)]
    assert len({seen.port for seen in api.seen}) == 1


def test_line_without_account_cannot_be_set_up() -> None:
    with pytest.raises(ValueError, match="reads through an account"):
        HttpJsonAdapter(
            "x", HttpJsonOptions.model_validate({}), adapters.AdapterContext(), account=None
        )


# ---- through the config -----------------------------------------------------------------


def config_text(api: FakeApi) -> str:
    return f"""
[accounts.acme]
provider = "http_json"
base_url = "{api.base_url}"
auth = "bearer"
url = "/sims/{{iccid}}/usage"
data_remaining = "data.remaining"
data_total = "data.total"
data_unit = "MB"
expires_at = "data.expired_at"
timeout = "5s"

[lines.travel]
account = "acme"
iccid = "8901"

[lines.wallet]
account = "acme"
url = "/balance"
balance = "balance.amount"
currency = "balance.currency"
"""


def test_config_with_secret_from_environment_reads_end_to_end(
    api: FakeApi,
    waits: list[float],
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api.routes["GET /api/v1/sims/8901/usage"] = usage_route
    api.routes["GET /api/v1/balance"] = lambda seen: (
        200,
        {"balance": {"amount": "300.00", "currency": "USD"}},
        {},
    )
    monkeypatch.setenv("ESIM_MONITOR_ACCOUNTS__ACME__TOKEN", TOKEN)
    path = write_config(config_text(api))
    settings = load_settings(path)
    checker = Checker(settings)
    try:
        travel, wallet = checker.read(["travel", "wallet"])
    finally:
        checker.close()
    assert travel.error is None and wallet.error is None
    assert travel.reading is not None and travel.reading.data_remaining == 767_000_000
    assert wallet.reading is not None and str(wallet.reading.balance) == "300.00"
    assert {seen.headers["authorization"] for seen in api.seen} == {f"Bearer {TOKEN}"}

    assert main(["--config", str(path), "config", "show"]) == 0
    assert TOKEN not in capsys.readouterr().out


def test_config_errors_are_reported_at_validation(
    api: FakeApi, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    text = config_text(api).replace('auth = "bearer"', 'auth = "bearer"\ntoken = "t"')
    text = text.replace('data_unit = "MB"', 'data_unit = "megs"')
    text += '\n[lines.bad]\naccount = "acme"\nbalance = "a[?"\n'
    path = write_config(text)
    assert main(["--config", str(path), "config", "validate"]) == 78
    err = capsys.readouterr().err
    assert "accounts.acme.data_unit" in err
    assert "lines.bad.balance" in err


def test_adapters_command_lists_both(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["adapters", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert "argv" in rows["command"]["options"]
    assert "balance" in rows["http_json"]["options"]


def test_expression_failing_on_the_reply_shape_is_named() -> None:
    with pytest.raises(ValueError, match=r"^balance \(sum\(wallet\)\)"):
        to_reading("l", spec(balance="sum(wallet)"), {"wallet": "empty"}, NOW)


def test_functions_work_on_exact_numbers() -> None:
    """Replies are parsed with Decimal; JMESPath's functions must still see numbers."""
    payload = {
        "bundles": [
            {"state": "active", "left": Decimal("435.787951")},
            {"state": "queued", "left": 500},
            {"state": "expired", "left": Decimal("99.5")},
        ],
        "wallet": [{"amount": "10.10"}, {"amount": "0.20"}],
    }
    s = spec(
        data_remaining="sum(bundles[?state=='active' || state=='queued'].left)",
        data_total="max(bundles[].left)",
        data_unit="MB",
        balance="sum(wallet[].to_number(amount))",
        status="type(bundles[0].left)",
    )
    reading = to_reading("l", s, payload, NOW)
    assert reading.data_remaining == 935_787_951
    assert reading.data_total == 500_000_000
    assert str(reading.balance) == "10.30"
    assert reading.status == "number"
