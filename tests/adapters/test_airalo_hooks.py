"""Airalo's webhooks end to end: real HTTP over loopback to a running daemon (a subprocess)
whose Airalo account is the loopback fake, each body signed as Airalo signs it.

The payloads are Airalo's documented examples, verbatim, from "Webhook definition" of the
Partner API documentation:
https://apidog.com/apidoc/shared/e776ed42-a7e7-4c52-9ea2-b65d4758fea2/webhook-definition-11883043e0
(the documentation's `// possible values ...` comment is left out: JSON has none).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from daemon_proc import DaemonProcess, free_port, post
from fakes import FakeServer
from fakes import airalo as fake

from monitor.store import View

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


class Hooked:
    def __init__(self, daemon: DaemonProcess, server: FakeServer, port: int, db: Path) -> None:
        self.daemon, self.server, self.port, self.database = daemon, server, port, db

    def url(self, account: str = "travel") -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{account}"

    def readings(self, line: str) -> list[Any]:
        view = View.open_existing(self.database)
        assert view is not None
        try:
            return view.history(line, datetime.now(UTC) - timedelta(days=1))
        finally:
            view.close()

    def everything(self) -> tuple[Any, ...]:
        with sqlite3.connect(self.database) as conn:
            deliveries = conn.execute("SELECT count(*) FROM hook_deliveries").fetchone()[0]
        return self.readings("trip"), self.readings("credit"), deliveries

    def usage_reads(self) -> int:
        return len(self.server.seen("GET", rf"/v2/sims/{fake.ICCID}/usage"))


@pytest.fixture
def hooked(write_config: Callable[..., Path]) -> Iterator[Hooked]:
    server = FakeServer(fake.FakeAiralo())
    port = free_port()
    text = fake.config_text(server.url).replace(
        f'base_url = "{server.url}"', f'base_url = "{server.url}"\nwebhook_secret = "{SECRET}"'
    )
    config = write_config(
        f'[monitor]\ninterval = "1h"\n[http]\nlisten = "127.0.0.1:{port}"\n' + text
    )
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for("http server listening")
        daemon.wait_for("checks done")
        yield Hooked(daemon, server, port, config.parent / "history.db")
    finally:
        daemon.kill()
        server.close()


def test_a_signed_credit_limit_notification_is_a_reading_of_the_credit_line(
    hooked: Hooked,
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


def test_a_retry_of_the_same_delivery_is_recorded_once(hooked: Hooked) -> None:
    before = hooked.readings("credit")
    first = post(hooked.url(), CREDIT_LIMIT, signed(CREDIT_LIMIT))
    again = post(hooked.url(), CREDIT_LIMIT, signed(CREDIT_LIMIT))
    assert first[0] == 200 and again[0] == 200
    assert again[1].strip() == "already taken: a retry of the same delivery"
    assert len(hooked.readings("credit")) == len(before) + 1


def test_a_low_data_notification_makes_the_daemon_check_that_esim_now(hooked: Hooked) -> None:
    """The documented payload with the configured eSIM's ICCID for the documented one."""
    body = LOW_DATA.replace(b"87123123456889019", fake.ICCID.encode())
    reads = hooked.usage_reads()
    status, text, _ = post(hooked.url(), body, signed(body))
    assert (status, text.strip()) == (202, "taken: line trip is checked now")
    hooked.daemon.wait_for("checks done")
    assert hooked.usage_reads() == reads + 1


def test_a_notification_for_an_unwatched_iccid_is_taken_and_records_nothing(
    hooked: Hooked,
) -> None:
    """Taken (a 2xx: Airalo's retry would not help) and dropped; no check is made."""
    before = hooked.everything()
    reads = hooked.usage_reads()
    status, text, _ = post(hooked.url(), LOW_DATA, signed(LOW_DATA))
    assert (status, text.strip()) == (202, "taken: no configured line is the one it names")
    assert hooked.everything()[:2] == before[:2]
    assert hooked.usage_reads() == reads


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
    hooked: Hooked,
    case: str,
    account: str,
    body: bytes,
    headers: dict[str, str],
    expected: int,
) -> None:
    before = hooked.everything()
    status, reason, _ = post(hooked.url(account), body, headers)
    assert status == expected, reason
    assert reason.strip() and "\n" not in reason.strip()
    assert hooked.everything() == before


def test_an_oversized_body_gets_413_and_changes_nothing(hooked: Hooked) -> None:
    before = hooked.everything()
    with socket.create_connection(("127.0.0.1", hooked.port), timeout=30) as sock:
        sock.sendall(
            b"POST /hooks/travel HTTP/1.1\r\nHost: monitor\r\n"
            b"Content-Type: application/json\r\nContent-Length: 5242880\r\n\r\n{"
        )
        answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413 "), answer
    assert hooked.everything() == before
