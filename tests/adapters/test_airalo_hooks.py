"""Airalo's webhooks end to end: real HTTP over loopback to a running daemon (a subprocess)
whose Airalo account is the loopback fake, each body signed as Airalo signs it.

The payloads are Airalo's documented examples, verbatim, from "Webhook definition" of the
Partner API documentation:
https://apidog.com/apidoc/shared/e776ed42-a7e7-4c52-9ea2-b65d4758fea2/webhook-definition-11883043e0
(the documentation's `// possible values ...` comment is left out: JSON has none).

`hooks subscribe` is tested against the fake's opt-in (which checks the URL with a HEAD
request, as Airalo's "Webhook definition" says it does) with the daemon serving that URL,
and with the opt-in examples of the documentation, request and answer verbatim.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import urllib.request
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from daemon_proc import free_port, post
from fakes import FakeProvider, FakeServer, Harness, Reply, esimgo
from fakes import airalo as fake
from hook_cases import Hooked, assert_refused, http_config, running

from monitor import adapters, cli
from monitor.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from monitor.model import HookSubscription

SECRET = "whsec-airalo-test-key"
CREDIT_LIMIT = b"""{
"message": "Surpassed 80% of the credit limit balance",
"remaining": 225.35
}"""
LOW_DATA = b"""{
"level": "3days",
"package_name": "bonbon-7gb-10days",
"remaining_percentage": 43,
"iccid": "87123123456889019"
}"""


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()
    return {"Content-Type": "application/json", "airalo-signature": digest}


def usage_reads(hooked: Hooked[FakeServer]) -> int:
    return len(hooked.server.seen("GET", rf"/v2/sims/{fake.ICCID}/usage"))


def hooked_config(server: FakeServer, port: int, public: bool = True, secret: bool = True) -> str:
    text = fake.config_text(server.url)
    if secret:
        text = text.replace(
            f'base_url = "{server.url}"', f'base_url = "{server.url}"\nwebhook_secret = "{SECRET}"'
        )
    public_url = f'public_url = "http://127.0.0.1:{port}"\n' if public else ""
    return http_config(port) + public_url + text


@pytest.fixture
def hooked(write_config: Callable[..., Path]) -> Iterator[Hooked[FakeServer]]:
    server = FakeServer(fake.FakeAiralo())
    port = free_port()
    config = write_config(hooked_config(server, port))
    with running(config, port, "travel", ("trip", "credit"), [server]) as hooked:
        yield hooked


def test_a_signed_credit_limit_notification_is_a_reading_of_the_credit_line(
    hooked: Hooked[FakeServer],
) -> None:
    before = hooked.readings("credit")
    status, body, _ = post(hooked.url(), CREDIT_LIMIT, signed(CREDIT_LIMIT))
    assert (status, body.strip()) == (200, "recorded: a reading")
    after = hooked.readings("credit")
    assert len(after) == len(before) + 1
    last = after[-1]
    assert last.source == "hook" and last.balance == Decimal("225.35")
    assert last.currency == "USD"  # the payload names none: the line's own, from its poll
    logged = json.dumps(hooked.daemon.seen)
    assert SECRET not in logged


def test_a_retry_of_the_same_delivery_is_recorded_once(hooked: Hooked[FakeServer]) -> None:
    before = hooked.readings("credit")
    first = post(hooked.url(), CREDIT_LIMIT, signed(CREDIT_LIMIT))
    again = post(hooked.url(), CREDIT_LIMIT, signed(CREDIT_LIMIT))
    assert first[0] == 200 and again[0] == 200
    assert again[1].strip() == "already taken: a retry of the same delivery"
    assert len(hooked.readings("credit")) == len(before) + 1


def test_a_low_data_notification_makes_the_daemon_check_that_esim_now(
    hooked: Hooked[FakeServer],
) -> None:
    """The documented payload with the configured eSIM's ICCID for the documented one."""
    body = LOW_DATA.replace(b"87123123456889019", fake.ICCID.encode())
    reads = usage_reads(hooked)
    status, text, _ = post(hooked.url(), body, signed(body))
    assert (status, text.strip()) == (202, "taken: line trip is checked now")
    hooked.daemon.wait_for("checks done")
    assert usage_reads(hooked) == reads + 1


def test_a_notification_for_an_unwatched_iccid_is_taken_and_records_nothing(
    hooked: Hooked[FakeServer],
) -> None:
    """Taken (a 2xx: Airalo's retry would not help) and dropped; no check is made."""
    before = hooked.everything()
    reads = usage_reads(hooked)
    status, text, _ = post(hooked.url(), LOW_DATA, signed(LOW_DATA))
    assert (status, text.strip()) == (202, "taken: no configured line is the one it names")
    assert hooked.everything()[:2] == before[:2]
    assert usage_reads(hooked) == reads


@pytest.mark.parametrize(
    ("case", "account", "body", "headers", "expected"),
    [
        ("bad signature", "travel", CREDIT_LIMIT, signed(CREDIT_LIMIT, "wrong"), 401),
        ("no signature", "travel", CREDIT_LIMIT, {"Content-Type": "application/json"}, 401),
        ("signed other body", "travel", CREDIT_LIMIT, signed(LOW_DATA), 401),
        ("unknown account", "ghost", CREDIT_LIMIT, signed(CREDIT_LIMIT), 401),
        ("garbage", "travel", b"\xff\xfe\x00garbage", signed(b"\xff\xfe\x00garbage"), 400),
        ("not a notification", "travel", b'{"a": 1}', signed(b'{"a": 1}'), 400),
    ],
)
def test_a_bad_delivery_gets_a_4xx_and_changes_nothing(
    hooked: Hooked[FakeServer],
    case: str,
    account: str,
    body: bytes,
    headers: dict[str, str],
    expected: int,
) -> None:
    assert_refused(lambda: post(hooked.url(account), body, headers), expected, hooked.everything)


def test_an_oversized_body_gets_413_and_changes_nothing(hooked: Hooked[FakeServer]) -> None:
    before = hooked.everything()
    with socket.create_connection(("127.0.0.1", hooked.port), timeout=30) as sock:
        sock.sendall(
            b"POST /hooks/travel HTTP/1.1\r\nHost: monitor\r\n"
            b"Content-Type: application/json\r\nContent-Length: 5242880\r\n\r\n{"
        )
        answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413 "), answer
    assert hooked.everything() == before


# ---- hooks subscribe ----------------------------------------------------------------------

OPT_IN_LOW_DATA = b"""{
"type": "webhook_low_data",
"webhook_url": "https://example.com"
}"""
OPTED_IN_LOW_DATA = b"""{
"data": {
"notification": {
"type": "webhook_low_data",
"contact_point": "https://example.com"
}
},
"meta": {
"message": "success"
}
}"""
"""Request and answer of "Low data notification - opt In", verbatim:
https://www.apidog.com/apidoc/shared/e776ed42-a7e7-4c52-9ea2-b65d4758fea2/low-data-notification-opt-in-11883039e0"""
OPT_IN_CREDIT_LIMIT = b"""{
"type": "webhook_credit_limit",
"webhook_url": "https://example.com",
"levels": [
50,
70,
80,
90
]
}"""
OPTED_IN_CREDIT_LIMIT = b"""{
"data": {
"notification": {
"type": "webhook_credit_limit",
"contact_point": "https://example.com",
"levels": [
50,
70,
80,
90
]
}
},
"meta": {
"message": "success"
}
}"""
"""Request and answer of "Credit limit notification" (opt in), verbatim:
https://share.apidog.com/e776ed42-a7e7-4c52-9ea2-b65d4758fea2/credit-limit-notification-11883042e0"""


def subscribe(config: Path, account: str = "travel", *options: str) -> int:
    return cli.main(["--config", str(config), "hooks", "subscribe", account, *options])


def test_the_documented_opt_in_requests_are_sent_and_their_answers_read(
    harness: Harness, serve: Callable[[FakeProvider], FakeServer]
) -> None:
    """With the documentation's URL, each request is its example (as JSON) and each
    example answer is read back as what Airalo registered."""
    server = serve(fake.FakeAiralo())
    for answer in (OPTED_IN_LOW_DATA, OPTED_IN_CREDIT_LIMIT):
        server.script(
            "POST", r"/v2/notifications/opt-in", Reply(200, answer, {}, "application/json")
        )
    settings = harness.settings(fake.config_text(server.url))
    account = adapters.build_account(settings, "travel", harness.context())
    results = account.subscribe_webhooks("https://example.com")
    sent = [r.json() for r in server.seen("POST", r"/v2/notifications/opt-in")]
    assert sent == [json.loads(OPT_IN_LOW_DATA), json.loads(OPT_IN_CREDIT_LIMIT)]
    assert results == [
        HookSubscription("webhook_low_data", "https://example.com", (), "success"),
        HookSubscription(
            "webhook_credit_limit", "https://example.com", (50, 70, 80, 90), "success"
        ),
    ]
    (opt_in, _) = server.seen("POST", r"/v2/notifications/opt-in")
    assert opt_in.bearer == "airalo-token-1"
    assert opt_in.headers["Content-Type"] == "application/json"


def test_subscribe_opts_in_both_kinds_once_airalo_has_checked_the_url(
    hooked: Hooked[FakeServer], capsys: pytest.CaptureFixture[str]
) -> None:
    provider = hooked.server.provider
    assert isinstance(provider, fake.FakeAiralo)
    url = hooked.url()
    assert subscribe(hooked.daemon.config, "travel", "--json") == EXIT_OK
    assert [(o["type"], o["webhook_url"]) for o in provider.opt_ins] == [
        ("webhook_low_data", url),
        ("webhook_credit_limit", url),
    ]
    answered = json.loads(capsys.readouterr().out)
    assert [(r["kind"], r["ok"], r["url"], r["levels"]) for r in answered] == [
        ("webhook_low_data", True, url, []),
        ("webhook_credit_limit", True, url, [50, 70, 80, 90]),
    ]
    hooked.daemon.wait_for("http request", method="HEAD", status=200)


def test_subscribe_reports_airalo_refusing_a_url_nothing_serves(
    write_config: Callable[..., Path],
    serve: Callable[[FakeProvider], FakeServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No daemon runs: Airalo's HEAD finds nothing, each kind is refused and said why."""
    server = serve(fake.FakeAiralo())
    config = write_config(hooked_config(server, free_port()))
    assert subscribe(config) == EXIT_FAILURE
    out = capsys.readouterr().out
    assert out.count("refused: Airalo refused it (HTTP 422)") == 2, out
    assert "HEAD request" in out and SECRET not in out


@pytest.mark.parametrize(
    ("public", "secret", "key"),
    [
        (False, True, "http.public_url"),
        (True, False, "accounts.travel.webhook_secret"),
    ],
)
def test_subscribe_without_what_the_webhooks_need_is_a_config_error(
    write_config: Callable[..., Path],
    serve: Callable[[FakeProvider], FakeServer],
    capsys: pytest.CaptureFixture[str],
    public: bool,
    secret: bool,
    key: str,
) -> None:
    server = serve(fake.FakeAiralo())
    config = write_config(hooked_config(server, free_port(), public=public, secret=secret))
    assert subscribe(config) == EXIT_CONFIG
    assert f"At '{key}'" in capsys.readouterr().err
    assert server.seen("POST", r"/v2/notifications/opt-in") == []


def test_subscribe_for_a_provider_without_the_api_names_the_portal(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        '[http]\nlisten = "127.0.0.1:8750"\npublic_url = "https://monitor.example.org"\n'
        + esimgo.config_text("http://127.0.0.1:9")
    )
    assert subscribe(config, "fleet") == EXIT_USAGE
    err = capsys.readouterr().err
    assert "eSIM Go has no API here to register webhooks" in err
    assert "portal" in err
    assert subscribe(config, "ghost") == EXIT_USAGE
    assert "unknown account 'ghost'" in capsys.readouterr().err


def test_a_head_request_to_a_hook_url_answers_200(hooked: Hooked[FakeServer]) -> None:
    """What Airalo's opt-in checks: any account name answers alike, and nothing changes."""
    before = hooked.everything()
    for account in ("travel", "ghost"):
        request = urllib.request.Request(hooked.url(account), method="HEAD")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert (response.status, response.read()) == (200, b"")
    assert hooked.everything() == before
