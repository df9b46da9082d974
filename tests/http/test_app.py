"""The request logic alone: routing, bounds, authentication and the rate limit, with a
recording sink in place of the store and a clock the test moves."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from monitor.http.app import App, RateLimiter, Request
from monitor.http.relay import BadRequest, RelayMessage, parse_message, same_sender
from monitor.redact import query_redacted


class Sink:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, RelayMessage]] = []

    def lines(self) -> Mapping[str, list[str] | None]:
        return {"phone": ["611611"], "open": None}

    def verify(self, line: str, token: str) -> bool:
        return token == f"{line}-token"

    def record(self, line: str, message: RelayMessage) -> str:
        self.recorded.append((line, message))
        return "recorded"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _app(count: int = 1000) -> tuple[App, Sink, Clock]:
    sink, clock = Sink(), Clock()
    return App(sink, RateLimiter(count, 60.0, clock), max_body=1000), sink, clock


def _post(path: str, body: bytes, token: str | None = "phone-token", **headers: str) -> Request:
    sent = {"content-type": "application/json", **headers}
    if token:
        sent["authorization"] = f"Bearer {token}"
    return Request("POST", path, "192.0.2.1", sent, {}, body)


def test_a_relay_text_reaches_the_sink() -> None:
    app, sink, _ = _app()
    answer = app.handle(_post("/relay/phone", b'{"from": "611611", "text": "Balance $5"}'))
    assert answer.status == 200
    assert sink.recorded == [("phone", RelayMessage("Balance $5", "611611"))]


def test_the_token_may_come_in_the_query() -> None:
    app, sink, _ = _app()
    request = Request("POST", "/relay/open", "192.0.2.1", {}, {"token": "open-token"}, b"hi")
    assert app.handle(request).status == 200
    assert sink.recorded == [("open", RelayMessage("hi"))]


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        (Request("GET", "/relay/phone", "192.0.2.1"), 405),
        (Request("POST", "/nothing", "192.0.2.1"), 404),
        (_post("/relay/phone", b"{}", token=None), 401),
        (_post("/relay/phone", b'{"text": "x", "from": "611611"}', token="open-token"), 401),
        (_post("/relay/ghost", b'{"text": "x"}', token="ghost-token"), 401),
        (_post("/relay/phone", b'{"text": "x", "from": "555"}'), 403),
        (_post("/relay/phone", b"x" * 1001), 413),
        (_post("/relay/phone", b'["text"]'), 400),
    ],
)
def test_refusals_record_nothing(request_: Request, status: int) -> None:
    app, sink, _ = _app()
    answer = app.handle(request_)
    assert answer.status == status
    assert answer.text and "\n" not in answer.text
    assert sink.recorded == []


def test_past_the_rate_429_with_retry_after_then_the_bucket_refills() -> None:
    app, _, clock = _app(count=2)
    wrong = _post("/relay/phone", b"x", token="wrong")
    assert [app.handle(wrong).status for _ in range(3)] == [401, 401, 429]
    limited = app.handle(wrong)
    assert dict(limited.headers)["Retry-After"] == "30"
    other = Request("POST", "/relay/phone", "192.0.2.2")
    assert app.handle(other).status == 401  # per source: another address is not limited
    clock.now += 30
    assert app.handle(wrong).status == 401


@pytest.mark.parametrize(
    ("kind", "body", "expected"),
    [
        ("text/plain; charset=utf-8", b"Balance $5\n", RelayMessage("Balance $5")),
        ("application/x-www-form-urlencoded", b"text=a+b&from=611", RelayMessage("a b", "611")),
        ("application/json", b'{"body": "a", "sender": 611}', RelayMessage("a", "611")),
        ("application/json", b'{"content": "a", "from": "x"}', RelayMessage("a", "x")),
    ],
)
def test_bodies_apps_send(kind: str, body: bytes, expected: RelayMessage) -> None:
    assert parse_message(kind, body) == expected


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("text/plain", b"\xff\xfe"),
        ("text/plain", b"   "),
        ("text/plain", b"\x00\x01\x02binary"),
        ("application/json", b"[1, 2"),
        ("application/json", b'{"text": 5}'),
        ("application/x-www-form-urlencoded", b"from=611"),
        ("image/png", b"x"),
    ],
)
def test_garbage_is_refused(kind: str, body: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_message(kind, body)


def test_senders_compare_by_digits_or_name() -> None:
    assert same_sender("+1 611-611", ["611611"])
    assert same_sender("1611611", ["611611"])
    assert same_sender("at&t", ["AT&T"])
    assert not same_sender("611612", ["611611"])
    assert not same_sender(None, ["611611"])


def test_query_tokens_are_redacted_for_the_log() -> None:
    assert query_redacted("token=abc123&x=1") == "token=[redacted]&x=1"
    assert query_redacted("TOKEN=abc&sig=zz") == "TOKEN=[redacted]&sig=[redacted]"
    assert query_redacted("") == ""
