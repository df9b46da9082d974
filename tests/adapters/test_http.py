"""The shared HTTP layer on its own: requests that must not repeat, Retry-After dates,
redaction, redirects, one token for many threads, pacing, the payload helpers, and bounded
answers (one deadline on a whole answer, a size cap on its decoded body, abort)."""

from __future__ import annotations

import gzip
import threading
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import pytest
from fakes import (
    FakeProvider,
    FakeServer,
    Reply,
    Request,
    Route,
    VirtualClock,
    finishes,
    json_reply,
)
from pydantic import BaseModel, SecretStr, ValidationError

from monitor.adapters import http
from monitor.adapters.http import (
    AuthenticationFailed,
    BadAnswer,
    BasicAuth,
    OutcomeUnknown,
    ProviderRefused,
    ProviderUnavailable,
    Session,
    Token,
    TokenAuth,
)
from monitor.tokens import TokenCache

KEY = "very-secret-api-key-77"


class Echo(FakeProvider):
    """A neutral JSON API: `/ok` answers, `/token` issues tokens, `/me` wants one."""

    def __init__(self) -> None:
        self.issued = 0
        self.lock = threading.Lock()

    def routes(self) -> list[tuple[str, str, Route]]:
        return [
            ("GET", r"/ok", lambda r, m: json_reply(200, {"amount": 1.10, "n": 3})),
            ("POST", r"/order", lambda r, m: json_reply(200, {"id": 111})),
            ("POST", r"/token", self.token),
            ("GET", r"/me", self.me),
        ]

    def token(self, request: Request, _: Any) -> Reply:
        with self.lock:
            self.issued += 1
            number = self.issued
        return json_reply(200, {"access_token": f"tok-{number}", "expires_in": 3600})

    def me(self, request: Request, _: Any) -> Reply:
        if request.bearer != f"tok-{self.issued}":
            return json_reply(401, {"message": "expired"})
        return json_reply(200, {"me": request.bearer})


@pytest.fixture
def server(serve: Callable[[FakeProvider], FakeServer]) -> FakeServer:
    return serve(Echo())


@pytest.fixture
def session(server: FakeServer) -> Iterator[Session]:
    s = Session(provider="Echo", account="main", base_url=server.url, timeout=10, secrets=[KEY])
    yield s
    s.close()


def fetch(session: Session, budget: http.Budget) -> Token:
    response = session.request("POST", "/token", budget=budget, authenticate=False)
    session.check_status(response)
    body = session.parse_json(response)
    return Token.lasting(body["access_token"], body["expires_in"])


# ---- requests that spend money ------------------------------------------------------------


def test_send_once_never_retries_a_server_error(session: Session, server: FakeServer) -> None:
    server.script("POST", r"/order", json_reply(503, {"message": "busy"}, **{"Retry-After": "1"}))
    response = session.send_once("POST", "/order", data={"package_id": "x"})
    assert response.status_code == 503
    assert len(server.seen("POST", r"/order")) == 1
    with pytest.raises(ProviderUnavailable):
        session.check_status(response)


def test_send_once_lost_answer_is_outcome_unknown(server: FakeServer) -> None:
    server.script("POST", r"/order", Reply(hold=5))
    session = Session(provider="Echo", account="main", base_url=server.url, timeout=0.4)
    with session, pytest.raises(OutcomeUnknown, match="verify before sending it again"):
        session.send_once("POST", "/order")
    assert len(server.seen("POST", r"/order")) == 1


def test_send_once_to_nowhere_was_not_sent(server: FakeServer) -> None:
    url = server.url
    server.close()
    session = Session(provider="Echo", account="main", base_url=url, timeout=2)
    try:
        with pytest.raises(ProviderUnavailable, match="not sent"):
            session.send_once("POST", "/order")
    finally:
        session.close()


def test_send_once_renews_a_token_only_when_asked(server: FakeServer) -> None:
    auth = TokenAuth(TokenCache(None), "echo", fetch)
    session = Session(provider="Echo", account="main", base_url=server.url, timeout=5, auth=auth)
    try:
        assert session.send_once("GET", "/me").status_code == 200
        session.request("POST", "/token", authenticate=False)  # the cached token is now stale
        assert session.send_once("GET", "/me").status_code == 401
        assert session.send_once("GET", "/me", reauth=True).status_code == 200
    finally:
        session.close()


# ---- reads ----------------------------------------------------------------------------------


def test_numbers_arrive_as_decimal(session: Session) -> None:
    body = session.get_json("/ok")
    assert body == {"amount": Decimal("1.10"), "n": 3}
    assert isinstance(body["amount"], Decimal)


def test_nan_is_malformed_json(session: Session, server: FakeServer) -> None:
    server.script("GET", r"/ok", Reply(200, '{"amount": NaN}', content_type="application/json"))
    with pytest.raises(BadAnswer, match="malformed JSON"):
        session.get_json("/ok")


def test_retry_after_as_an_http_date(
    session: Session, server: FakeServer, clock: VirtualClock
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    server.script("GET", r"/ok", json_reply(429, {"message": "slow"}, **{"Retry-After": when}))
    assert session.get_json("/ok")["n"] == 3
    assert any(3 < wait <= 5 for wait in clock.slept)


def test_secrets_are_redacted_from_messages_and_raw(session: Session, server: FakeServer) -> None:
    server.script("GET", r"/ok", json_reply(400, {"message": f"bad key {KEY}"}))
    with pytest.raises(ProviderRefused) as info:
        session.get_json("/ok")
    assert KEY not in str(info.value) + (info.value.raw or "")
    assert "[redacted]" in str(info.value)


def test_redirect_points_at_base_url(session: Session, server: FakeServer) -> None:
    server.script("GET", r"/ok", Reply(301, "", {"Location": "https://elsewhere.example/ok"}))
    with pytest.raises(ProviderRefused, match="check base_url"):
        session.get_json("/ok")


def test_html_server_error_gives_up_with_an_excerpt(session: Session, server: FakeServer) -> None:
    page = Reply(502, "<html><h1>502 Bad Gateway</h1></html>", content_type="text/html")
    server.script("GET", r"/ok", *[page] * 50)
    with pytest.raises(ProviderUnavailable) as info:
        session.get_json("/ok")
    assert "502 Bad Gateway" in str(info.value)
    assert "10s budget" in str(info.value)


def test_many_threads_share_one_token(server: FakeServer) -> None:
    auth = TokenAuth(TokenCache(None), "echo", fetch)
    session = Session(provider="Echo", account="main", base_url=server.url, timeout=5, auth=auth)
    results: list[Any] = []
    try:
        threads = [
            threading.Thread(target=lambda: results.append(session.get_json("/me")))
            for _ in range(20)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        session.close()
    assert results == [{"me": "tok-1"}] * 20
    assert len(server.seen("POST", r"/token")) == 1


def test_pacing_spaces_requests_within_the_budget(server: FakeServer, clock: VirtualClock) -> None:
    session = Session(provider="Echo", account="main", base_url=server.url, timeout=1, rate_limit=2)
    try:
        session.get_json("/ok")
        session.get_json("/ok")
        assert any(0.4 < wait <= 0.5 for wait in clock.slept)
        with pytest.raises(ProviderUnavailable, match="waiting for a slot"):
            session.get_json("/ok", budget=http.Budget(0.2, clock.now))
    finally:
        session.close()


def test_nothing_secret_in_reprs() -> None:
    auth = BasicAuth("user", SecretStr(KEY))
    token = Token(KEY, None)
    session = Session(
        provider="Echo", account="main", base_url="http://127.0.0.1:9", timeout=1, auth=auth
    )
    try:
        shown = repr(auth) + repr(token) + repr(session)
    finally:
        session.close()
    assert KEY not in shown
    assert "user:" not in shown


def test_refused_token_request_is_an_authentication_failure(server: FakeServer) -> None:
    server.script("POST", r"/token", json_reply(400, {"message": "BadCredentials"}))

    def strict(session: Session, budget: http.Budget) -> Token:
        response = session.request("POST", "/token", budget=budget, authenticate=False)
        if response.status_code == 400:
            raise session.auth_failed(response)
        return fetch(session, budget)

    auth = TokenAuth(TokenCache(None), "echo", strict)
    session = Session(provider="Echo", account="main", base_url=server.url, timeout=5, auth=auth)
    try:
        with pytest.raises(AuthenticationFailed, match=r"^authentication failed for account main"):
            session.get_json("/me")
    finally:
        session.close()


# ---- helpers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-01-01 00:00:00", datetime(2022, 1, 1, tzinfo=UTC)),
        ("2024-12-11T10:47:00Z", datetime(2024, 12, 11, 10, 47, tzinfo=UTC)),
        ("2029-01-01T00:00:00.000Z", datetime(2029, 1, 1, tzinfo=UTC)),
        ("2025-11-18T13:37:07+01:00", datetime(2025, 11, 18, 12, 37, 7, tzinfo=UTC)),
    ],
)
def test_parse_time_accepts_the_providers_formats(text: str, expected: datetime) -> None:
    moment = http.parse_time(text, "expiry")
    assert moment == expected
    assert moment.tzinfo is UTC


@pytest.mark.parametrize("value", ["tomorrow", "", 1700000000, None])
def test_parse_time_rejects_the_rest(value: Any) -> None:
    with pytest.raises(BadAnswer):
        http.parse_time(value, "expiry")


@pytest.mark.parametrize("value", [True, None, "NaN", "12,50", "Infinity"])
def test_money_must_be_a_finite_number(value: Any) -> None:
    with pytest.raises(BadAnswer):
        http.to_decimal(value, "balance")


def test_bytes_from_provider_units() -> None:
    assert http.to_bytes(Decimal("435.787951"), 10**6, "volume") == 435_787_951
    assert http.to_bytes("3072", 2**20, "amount") == 3 * 2**30
    with pytest.raises(BadAnswer):
        http.to_bytes(-1, 1, "volume")


@pytest.mark.parametrize(
    ("convert", "value", "message"),
    [
        (lambda v: http.to_decimal(v, "balance"), "1e999999999", "is 10^19 or more"),
        (lambda v: http.to_decimal(v, "balance"), "1e-999999999", "more than 18 decimal"),
        (lambda v: http.to_bytes(v, 2**20, "volume"), "1e999999999", "is 10^19 or more"),
        (lambda v: http.to_bytes(v, 2**20, "volume"), 10**14, "outside 0..10^18 bytes"),
        (lambda v: http.to_count(v, "texts"), "1e999999999", "is 10^19 or more"),
    ],
)
def test_out_of_range_is_refused_before_any_arithmetic(
    convert: Any, value: Any, message: str
) -> None:
    """Issue 11.1: checked on the exponent before any int() or multiplication, so a hostile
    "1e999999999" costs nothing (it cost GBs of memory) and names the figure."""
    with pytest.raises(BadAnswer) as caught:
        convert(value)
    assert message in str(caught.value)


def test_retry_after_forms() -> None:
    assert http.retry_after_seconds("120") == 120
    assert http.retry_after_seconds("soon") is None
    assert http.retry_after_seconds("nan") is None
    past = format_datetime(datetime.now(UTC) - timedelta(minutes=1), usegmt=True)
    assert http.retry_after_seconds(past) == 0


def test_backoff_grows_with_jitter() -> None:
    backoff = http.Backoff(base=1, cap=8, rand=lambda: 1.0)
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 8]
    assert http.Backoff(base=1, cap=8, rand=lambda: 0.0).delay(3) == 2


class IccidLine(BaseModel):
    iccid: http.Iccid


def test_iccid_option() -> None:
    assert IccidLine(iccid="8901 2601 2345 6789 012").iccid == "8901260123456789012"
    with pytest.raises(ValidationError, match="18 to 22 digits"):
        IccidLine(iccid="8901-abc")


# ---- bounded answers (issue 11.4, 11.5) --------------------------------------------------

BIG = 2 << 20  # twice the cap


def json_bytes(size: int) -> bytes:
    """A valid JSON object of about `size` bytes."""
    return b'{"amount": 1, "padding": "' + b"0" * size + b'"}'


@pytest.mark.parametrize("drip_body", [False, True], ids=["headers", "body"])
def test_a_drip_fed_answer_ends_by_the_checks_budget(server: FakeServer, drip_body: bool) -> None:
    # one byte every 50 ms never trips a per-read timeout: only a deadline on the whole
    # answer ends it (4000 bytes would take 200 s)
    slow = Reply(200, {"amount": "1.00", "padding": "x" * 4000}, drip=0.05, drip_body=drip_body)
    server.script("GET", r"/ok", *[slow] * 10)
    with Session(provider="Echo", account="main", base_url=server.url, timeout=1) as session:
        failure = finishes(lambda: session.get_json("/ok"), within=20)
    assert isinstance(failure, ProviderUnavailable), failure
    assert "no answer within" in str(failure)


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "until-close"])
def test_an_answer_past_the_size_cap_is_refused(
    session: Session, server: FakeServer, length: bool
) -> None:
    body = json_bytes(BIG)
    server.script("GET", r"/ok", Reply(200, body, content_type="application/json", length=length))
    with pytest.raises(BadAnswer, match=r"more than 1 MiB .*refused unread"):
        session.get_json("/ok")
    assert len(server.seen("GET", r"/ok")) == 1  # refused, not retried


def test_a_gzip_bomb_is_refused_once_decoded_past_the_cap(
    session: Session, server: FakeServer
) -> None:
    bomb = gzip.compress(json_bytes(64 << 20))  # 64 MiB that travel as about 64 KiB
    server.script("GET", r"/ok", Reply(200, bomb, {"Content-Encoding": "gzip"}, "application/json"))
    tracemalloc.start()
    try:
        with pytest.raises(BadAnswer, match="more than 1 MiB"):
            session.get_json("/ok")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def test_one_content_encoding_is_decoded_nested_ones_refused(
    session: Session, server: FakeServer
) -> None:
    data = b'{"amount": 1.10, "n": 3}'
    for encoding, body in (
        ("gzip", gzip.compress(data)),
        ("deflate", zlib.compress(data)),
        ("deflate", _raw_deflate(data)),  # deflate without its zlib header, as some send it
    ):
        server.script(
            "GET", r"/ok", Reply(200, body, {"Content-Encoding": encoding}, "application/json")
        )
        assert session.get_json("/ok") == {"amount": Decimal("1.10"), "n": 3}, encoding
    assert server.seen("GET", r"/ok")[0].headers["Accept-Encoding"] == "gzip, deflate"
    twice = gzip.compress(gzip.compress(data))
    server.script(
        "GET", r"/ok", Reply(200, twice, {"Content-Encoding": "gzip, gzip"}, "application/json")
    )
    with pytest.raises(BadAnswer, match=r"nested content encodings \(gzip, gzip\)"):
        session.get_json("/ok")


def test_an_order_answered_past_the_cap_may_have_gone_through(
    session: Session, server: FakeServer
) -> None:
    server.script("POST", r"/order", Reply(200, json_bytes(BIG), content_type="application/json"))
    with pytest.raises(OutcomeUnknown, match=r"more than 1 MiB.*verify before sending it again"):
        session.send_once("POST", "/order")


def test_an_adapter_may_allow_bigger_answers(server: FakeServer) -> None:
    server.script("GET", r"/ok", Reply(200, json_bytes(BIG), content_type="application/json"))
    with Session(
        provider="Echo", account="main", base_url=server.url, timeout=10, max_body=4 << 20
    ) as session:
        assert session.get_json("/ok")["amount"] == 1


def test_abort_ends_a_check_waiting_on_a_silent_provider(server: FakeServer) -> None:
    server.script("GET", r"/ok", Reply(hold=60))
    session = Session(provider="Echo", account="main", base_url=server.url, timeout=120)
    worker: list[int] = []

    def check() -> Any:
        worker.append(threading.get_ident())
        return session.get_json("/ok")

    def abandon_it() -> Any:
        runner = threading.Thread(target=lambda: outcome.append(_outcome(check)), daemon=True)
        runner.start()
        while not server.seen("GET", r"/ok"):
            runner.join(0.01)
        session.abort(worker[0])  # what the cycle does past check_timeout
        runner.join()
        return outcome[0]

    outcome: list[Any] = []
    try:
        failure = finishes(abandon_it, within=20)
    finally:
        session.close()
    assert isinstance(failure, ProviderUnavailable), failure
    assert len(server.seen("GET", r"/ok")) == 1  # and nothing sent after the abort


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as exc:
        return exc
