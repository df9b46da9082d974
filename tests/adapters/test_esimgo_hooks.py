"""eSIM Go's callbacks end to end: real HTTP over loopback to a running daemon (a subprocess)
whose eSIM Go account is the loopback fake, each body signed as eSIM Go signs V3 callbacks
(HMAC-SHA256 of the raw body keyed with the API key, Base64 as in the API reference).

The payloads are eSIM Go's documented examples, verbatim:
- LowBalance: https://docs.esim-go.com/api/notifications/operations/balancethreshold/post/
- FirstUse: https://docs.esim-go.com/api/notifications/operations/firstuse/post
- Utilisation: https://docs.esim-go.com/api/notifications/operations/utilisation gives example
  values per field and no example body; UTILISATION holds those values in the schema's shape,
  with the configured eSIM's ICCID for the documented one where a test says so.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from daemon_proc import DaemonProcess, free_port, post
from fakes import FakeServer
from fakes import esimgo as fake

from monitor.store import View

LOW_BALANCE = (
    b'{ "alertType": "LowBalance", "balanceInfo": { "balance": 1299.3, "threshold": 2600,'
    b' "thresholdPercentRemaining": 49.973 }}'
)
FIRST_USE = (
    b'{ "alertType": "FirstUse", "iccid": 8944538532008160000, "bundle": { "name":'
    b' "A_BUNDLE_1GB", "initialQuantity": 1000000000, "remainingQuantity": 1000000000,'
    b' "startTime": "2006-01-02T15:04:05Z", "endTime": "2007-01-02T15:04:05Z" }}'
)
UTILISATION = (
    b'{"iccid": "8944538532008160222", "alertType": "Utilisation", "bundle": {"name":'
    b' "A_BUNDLE_1GB", "initialQuantity": 1000000000, "remainingQuantity": 1000000000,'
    b' "startTime": "2006-01-02T15:04:05Z", "endTime": "2007-01-02T15:04:05Z"}}'
)


def signed(body: bytes, key: str = fake.API_KEY) -> dict[str, str]:
    digest = hmac.new(key.encode(), body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "X-Signature-SHA256": base64.b64encode(digest).decode(),
    }


def for_our_esim(body: bytes) -> bytes:
    return body.replace(b"8944538532008160222", fake.ICCID.encode())


class Hooked:
    def __init__(self, daemon: DaemonProcess, server: FakeServer, port: int, db: Path) -> None:
        self.daemon, self.server, self.port, self.database = daemon, server, port, db

    def url(self, account: str = "fleet") -> str:
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
        return self.readings("roam"), self.readings("org"), deliveries

    def polls(self, path: str) -> int:
        return len(self.server.seen("GET", path))


@pytest.fixture
def hooked(write_config: Callable[..., Path]) -> Iterator[Hooked]:
    server = FakeServer(fake.FakeEsimGo())
    port = free_port()
    config = write_config(
        f'[monitor]\ninterval = "1h"\n[http]\nlisten = "127.0.0.1:{port}"\n'
        + fake.config_text(server.url)
    )
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for("http server listening")
        daemon.wait_for("checks done")
        yield Hooked(daemon, server, port, config.parent / "history.db")
    finally:
        daemon.kill()
        server.close()


def test_a_signed_low_balance_callback_is_a_reading_of_the_balance_line(hooked: Hooked) -> None:
    before = hooked.readings("org")
    status, body, _ = post(hooked.url(), LOW_BALANCE, signed(LOW_BALANCE))
    assert (status, body.strip()) == (200, "recorded: a reading")
    after = hooked.readings("org")
    assert len(after) == len(before) + 1
    last = after[-1]
    assert last.source == "hook" and last.balance == Decimal("1299.3")
    assert last.currency == "USD"  # the payload names none: the line's own, from its poll
    assert fake.API_KEY not in json.dumps(hooked.daemon.seen)


def test_a_utilisation_callback_is_a_reading_of_the_esim_in_bytes(hooked: Hooked) -> None:
    body = for_our_esim(UTILISATION)
    status, text, _ = post(hooked.url(), body, signed(body))
    assert (status, text.strip()) == (200, "recorded: a reading")
    last = hooked.readings("roam")[-1]
    assert last.source == "hook"
    assert last.data_remaining == last.data_total == 1_000_000_000
    assert last.expires_at == datetime(2007, 1, 2, 15, 4, 5, tzinfo=UTC)


def test_a_hex_signature_as_in_the_guide_is_taken_too(hooked: Hooked) -> None:
    digest = hmac.new(fake.API_KEY.encode(), LOW_BALANCE, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Signature-SHA256": digest}
    status, text, _ = post(hooked.url(), LOW_BALANCE, headers)
    assert (status, text.strip()) == (200, "recorded: a reading")


def test_a_retry_of_the_same_callback_is_recorded_once(hooked: Hooked) -> None:
    before = hooked.readings("org")
    first = post(hooked.url(), LOW_BALANCE, signed(LOW_BALANCE))
    again = post(hooked.url(), LOW_BALANCE, signed(LOW_BALANCE))
    assert first[0] == 200 and again[0] == 200
    assert again[1].strip() == "already taken: a retry of the same delivery"
    assert len(hooked.readings("org")) == len(before) + 1


def test_a_topup_callback_makes_the_daemon_check_the_balance_now(hooked: Hooked) -> None:
    body = b'{"alertType": "Topup", "bundle": {"oldAmount": 10.5, "newAmount": 110.5}}'
    polls = hooked.polls(r"/v2.5/organisation")
    status, text, _ = post(hooked.url(), body, signed(body))
    assert (status, text.strip()) == (202, "taken: line org is checked now")
    hooked.daemon.wait_for("checks done")
    assert hooked.polls(r"/v2.5/organisation") == polls + 1


def test_a_callback_for_an_unwatched_iccid_is_taken_and_records_nothing(hooked: Hooked) -> None:
    """The FirstUse example as documented: its ICCID is no configured eSIM's."""
    before = hooked.everything()
    status, text, _ = post(hooked.url(), FIRST_USE, signed(FIRST_USE))
    assert (status, text.strip()) == (202, "taken: no configured line is the one it names")
    assert hooked.everything()[:2] == before[:2]


@pytest.mark.parametrize(
    ("case", "account", "body", "headers", "expected"),
    [
        ("bad signature", "fleet", LOW_BALANCE, signed(LOW_BALANCE, "wrong"), 401),
        ("no signature (V2)", "fleet", LOW_BALANCE, {"Content-Type": "application/json"}, 401),
        ("signed other body", "fleet", LOW_BALANCE, signed(UTILISATION), 401),
        ("unknown account", "ghost", LOW_BALANCE, signed(LOW_BALANCE), 401),
        ("garbage", "fleet", b"\xff\xfe\x00garbage", signed(b"\xff\xfe\x00garbage"), 400),
        ("no alertType", "fleet", b'{"a": 1}', signed(b'{"a": 1}'), 400),
    ],
)
def test_a_bad_callback_gets_a_4xx_and_changes_nothing(
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
