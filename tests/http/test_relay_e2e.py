"""The phone relay end to end: real HTTP over loopback to a running daemon (a subprocess),
its token made by `esim-monitor relay url`, what it records read back from the database."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from daemon_proc import DaemonProcess, free_port, post

from monitor.adapters.sms_replies import SMS_PRESETS, Sample
from monitor.store import View

CONFIG = """
[monitor]
interval = "1h"
[http]
listen = "127.0.0.1:{port}"
public_url = "https://monitor.example.org"
rate = "{rate}"
{http_extra}
[channels.relayed]
url = "json://127.0.0.1:9/relayed"
events = ["relay"]
[channels.alerts]
url = "json://127.0.0.1:9/alerts"
[lines.phone]
adapter = "demo"
relay_senders = ["611611", "AT&T"]
relay_preset = "att-prepaid-sms"
[lines.other]
adapter = "demo"
"""


CARRIERS = """
[monitor]
interval = "1h"
timezone = "America/New_York"
[http]
listen = "127.0.0.1:{port}"
public_url = "https://monitor.example.org"
rate = "600/min"
[channels.relayed]
url = "json://127.0.0.1:9/relayed"
events = ["relay"]
[lines.tmobile]
adapter = "plan"
renews = "monthly 5"
price = 40
currency = "USD"
relay_senders = ["456"]
relay_preset = "t-mobile-sms"
[lines.ultra]
adapter = "plan"
renews = "monthly 5"
relay_preset = "ultra-sms"
[lines.att]
adapter = "plan"
renews = "monthly 5"
relay_preset = "att-prepaid-sms"
"""


class Relay:
    def __init__(self, daemon: DaemonProcess, config: Path, port: int) -> None:
        self.daemon, self.config, self.port = daemon, config, port
        self.database = config.parent / "history.db"

    def url(self, line: str = "phone") -> str:
        return f"http://127.0.0.1:{self.port}/relay/{line}"

    def token(self, line: str = "phone") -> str:
        out = _cli(self.config, "relay", "url", line)
        assert out.returncode == 0, out.stderr
        first = out.stdout.splitlines()[0]
        assert first.startswith(f"https://monitor.example.org/relay/{line}?token=")
        return first.split("token=", 1)[1]

    def readings(self, line: str = "phone") -> list[Any]:
        view = View.open_existing(self.database)
        assert view is not None
        try:
            return view.history(line, datetime.now(UTC) - timedelta(days=1))
        finally:
            view.close()

    def events(self) -> list[Any]:
        view = View.open_existing(self.database)
        assert view is not None
        try:
            return view.events(datetime.now(UTC) - timedelta(days=1))
        finally:
            view.close()

    def raw(self) -> list[str]:
        with sqlite3.connect(self.database) as conn:
            return [r[0] for r in conn.execute("SELECT raw FROM readings ORDER BY id")]


def _carrier_sample(preset: str, start: str) -> Sample:
    (found,) = [s for s in SMS_PRESETS[preset].samples if s.text.startswith(start)]
    return found


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def relay(write_config: Callable[..., Path]) -> Iterator[Callable[..., Relay]]:
    started: list[DaemonProcess] = []

    def start(rate: str = "600/min", template: str = CONFIG, http_extra: str = "") -> Relay:
        port = free_port()
        config = write_config(template.format(port=port, rate=rate, http_extra=http_extra))
        daemon = DaemonProcess(config)
        started.append(daemon)
        daemon.wait_for("http server listening")
        daemon.wait_for("checks done")  # the startup check of both lines is recorded
        return Relay(daemon, config, port)

    yield start
    for daemon in started:
        daemon.kill()


def test_a_relayed_carrier_text_becomes_the_lines_reading(relay: Callable[..., Relay]) -> None:
    r = relay()
    token = r.token()
    before = r.readings()
    text = "AT&T Free Msg: Your balance is $3.25. Your plan expires on 12/30/2026."
    status, body, _ = post(
        r.url() + f"?token={token}",
        json.dumps({"from": "611611", "text": text}),
        {"Content-Type": "application/json"},
    )
    assert (status, body.strip()) == (200, "recorded: a reading")
    after = r.readings()
    assert len(after) == len(before) + 1
    last = after[-1]
    assert last.ok and last.balance == Decimal("3.25") and last.currency == "USD"
    assert last.source == "relay"
    assert last.expires_at is not None and last.expires_at.date().isoformat() == "2026-12-30"
    assert text in r.raw()[-1]
    logged = [e for e in r.daemon.seen if e.get("event") == "http request"]
    r.daemon.wait_for("http request", status=200)
    assert all(token not in json.dumps(e) for e in [*logged, *r.daemon.seen])


def test_a_text_without_a_figure_is_a_relay_event_for_the_channels_that_list_it(
    relay: Callable[..., Relay],
) -> None:
    r = relay()
    token = r.token()
    before = r.readings()
    status, body, _ = post(
        r.url(),
        "text=AT%26T+Free+Msg%3A+You+have+used+75%25+of+your+data&from=611611",
        {"Authorization": f"Bearer {token}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200, body
    assert r.readings() == before
    relayed = [e for e in r.events() if e.type == "relay"]
    assert [(e.line, e.channel) for e in relayed] == [("phone", "relayed")]
    assert "used 75% of your data" in (relayed[0].message or "")


@pytest.mark.parametrize(
    ("case", "line", "headers", "body", "expected"),
    [
        ("no token", "phone", {}, "text=Your balance is $1.00&from=611611", 401),
        ("wrong token", "phone", {"Authorization": "Bearer nope"}, "text=$1.00&from=611611", 401),
        ("unknown line", "ghost", {}, "text=Your balance is $1.00&from=611611", 401),
        ("other line's token", "other", None, "text=Your balance is $1.00&from=611611", 401),
        ("wrong sender", "phone", None, "text=Your balance is $1.00&from=5550100", 403),
        ("no sender", "phone", None, "text=Your balance is $1.00", 403),
        ("garbage", "phone", None, b"\xff\xfe\x00garbage", 400),
        ("bad json", "phone", {"Content-Type": "application/json"}, '{"text": ', 400),
        ("empty text", "phone", None, "text=&from=611611", 400),
        ("unknown type", "phone", {"Content-Type": "image/png"}, "PNG", 415),
        ("out of range", "phone", None, "text=Balance $9999999999999.00&from=611611", 422),
    ],
)
def test_a_bad_request_gets_a_4xx_with_a_reason_and_changes_nothing(
    relay: Callable[..., Relay],
    case: str,
    line: str,
    headers: dict[str, str] | None,
    body: str | bytes,
    expected: int,
) -> None:
    r = relay()
    token = r.token()
    before = (r.readings("phone"), r.readings("other"), r.events())
    sent = {"Content-Type": "application/x-www-form-urlencoded"}
    if case != "no token":
        sent["Authorization"] = f"Bearer {token}"
    sent.update(headers or {})
    status, reason, _ = post(r.url(line), body, sent)
    assert status == expected, reason
    assert reason.strip() and "\n" not in reason.strip()
    assert (r.readings("phone"), r.readings("other"), r.events()) == before


def test_an_oversized_body_gets_413_before_it_is_sent_and_changes_nothing(
    relay: Callable[..., Relay],
) -> None:
    """The answer comes after the headers alone: the 5 MiB (over max_body) never need go."""
    r = relay()
    token = r.token()
    before = (r.readings(), r.events())
    with socket.create_connection(("127.0.0.1", r.port), timeout=30) as sock:
        sock.sendall(
            b"POST /relay/phone HTTP/1.1\r\nHost: monitor\r\n"
            + f"Authorization: Bearer {token}\r\n".encode()
            + b"Content-Type: text/plain\r\nContent-Length: 5242880\r\n\r\n"
            + b"Your balance is $1.00 "
        )
        answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413 "), answer
    assert (r.readings(), r.events()) == before


def test_past_the_rate_a_source_gets_429_with_retry_after(relay: Callable[..., Relay]) -> None:
    r = relay(rate="3/min")
    answers = [post(r.url(), "text=x", {"Authorization": "Bearer wrong"}) for _ in range(5)]
    assert [a[0] for a in answers] == [401, 401, 401, 429, 429]
    assert int(answers[3][2]["Retry-After"]) >= 1


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_rate(
    relay: Callable[..., Relay],
) -> None:
    """Loopback is the trusted proxy here: the rate and the access log go by the client
    X-Forwarded-For names, the rightmost hop that is no trusted proxy."""
    r = relay(rate="2/min", http_extra='trusted_proxies = ["127.0.0.1"]')

    def send(forwarded: str) -> tuple[int, str]:
        status, body, _ = post(r.url(), "x", {"X-Forwarded-For": forwarded})
        return status, body.strip()

    spoofed = "198.51.100.1, 203.0.113.7"  # the client's own claim stays on the left
    assert [send(spoofed)[0] for _ in range(2)] == [401, 401]
    status, reason = send("203.0.113.7")
    assert status == 429 and reason.startswith("too many requests from 203.0.113.7: retry in")
    assert send("203.0.113.8")[0] == 401  # another client behind the same proxy
    logged = r.daemon.wait_for("http request", remote="203.0.113.8")
    assert logged["via"] == "127.0.0.1"


def test_sigkill_right_after_a_2xx_loses_nothing(relay: Callable[..., Relay]) -> None:
    r = relay()
    token = r.token()
    plain = {"Content-Type": "text/plain"}
    status, _, _ = post(r.url() + f"?token={token}", "From AT&T: Your balance is $7.77", plain)
    assert status == 403  # plain text has no sender: the line allows only its senders
    status, _, _ = post(
        r.url() + f"?token={token}",
        json.dumps({"from": "AT&T", "text": "Your balance is $7.77"}),
        {"Content-Type": "application/json"},
    )
    assert status == 200
    os.kill(r.daemon.proc.pid, signal.SIGKILL)
    r.daemon.proc.wait()
    assert r.readings()[-1].balance == Decimal("7.77")


def test_sigterm_stops_the_server_and_the_daemon_within_a_bound(
    relay: Callable[..., Relay],
) -> None:
    r = relay()
    started = time.monotonic()
    r.daemon.proc.send_signal(signal.SIGTERM)
    assert r.daemon.proc.wait(timeout=30) == 0
    assert time.monotonic() - started < 20
    with pytest.raises(OSError):
        post(r.url(), "text=x", {})


def test_a_new_token_replaces_the_old(relay: Callable[..., Relay]) -> None:
    r = relay()
    old = r.token()
    new = r.token()
    body = json.dumps({"from": "611611", "text": "Your balance is $2.00"})
    kind = {"Content-Type": "application/json"}
    assert post(r.url() + f"?token={old}", body, kind)[0] == 401
    assert post(r.url() + f"?token={new}", body, kind)[0] == 200


def test_a_reload_with_a_changed_http_section_restarts_the_server(
    relay: Callable[..., Relay],
) -> None:
    r = relay()
    port = free_port()
    r.config.write_text(r.config.read_text().replace(f":{r.port}", f":{port}"))
    r.daemon.proc.send_signal(signal.SIGHUP)
    r.daemon.wait_for("http server listening", address=f"127.0.0.1:{port}")
    assert post(f"http://127.0.0.1:{port}/relay/phone", "text=x", {})[0] == 401
    with pytest.raises(OSError):
        post(r.url(), "text=x", {})


@pytest.mark.parametrize(
    ("line", "preset", "figures", "event"),
    [
        ("tmobile", "t-mobile-sms", "Free T-Mobile Msg", "T-Mobile Free Msg: Your bill"),
        ("ultra", "ultra-sms", "You just got", "Your Ultra Mobile plan has changed"),
        ("att", "att-prepaid-sms", "Your account balance", None),
    ],
)
def test_a_carriers_sourced_text_becomes_its_reading_and_one_without_figures_an_event(
    relay: Callable[..., Relay], line: str, preset: str, figures: str, event: str | None
) -> None:
    """Per supported carrier, through a plan line (a phone-only line): the text with
    figures is recorded as a relay reading with exactly those figures; the one without
    becomes a relay event and no reading."""
    r = relay(template=CARRIERS)
    token = r.token(line)
    text = _carrier_sample(preset, figures)
    body = {"from": text.sender, "text": text.text} if text.sender else {"text": text.text}
    kind = {"Content-Type": "application/json"}
    status, answer, _ = post(r.url(line) + f"?token={token}", json.dumps(body), kind)
    assert (status, answer.strip()) == (200, "recorded: a reading")
    last = r.readings(line)[-1]
    assert last.source == "relay" and last.ok
    if line == "tmobile":
        assert (last.balance, last.currency, last.expires_at) == (Decimal("61.00"), "USD", None)
    elif line == "ultra":
        assert last.balance is None and last.expires_at is not None
        local = last.expires_at.astimezone(ZoneInfo("America/New_York"))
        assert (local.month, local.day, local.hour, local.minute) == (5, 10, 23, 59)
        assert timedelta(0) < last.expires_at - datetime.now(UTC) <= timedelta(days=366)
    else:
        assert (last.balance, last.currency) == (Decimal("20.00"), "USD")
        assert last.expires_at == datetime(2021, 8, 28, 4, 0, tzinfo=UTC)
    assert text.text in r.raw()[-1]
    if event is None:
        return
    before = r.readings(line)
    quiet = _carrier_sample(preset, event)
    body = {"from": quiet.sender, "text": quiet.text} if quiet.sender else {"text": quiet.text}
    status, answer, _ = post(r.url(line) + f"?token={token}", json.dumps(body), kind)
    assert (status, answer.strip()) == (200, "recorded: a relay event (the text holds no figure)")
    assert r.readings(line) == before
    relayed = [e for e in r.events() if e.type == "relay"]
    assert [(e.line, e.channel) for e in relayed] == [(line, "relayed")]
    assert quiet.text in (relayed[0].message or "")
