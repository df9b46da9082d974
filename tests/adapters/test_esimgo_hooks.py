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
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from daemon_proc import free_port, post
from fakes import FakeServer
from fakes import esimgo as fake
from hook_cases import Hooked, assert_refused, http_config, running

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


def polled(hooked: Hooked[FakeServer], path: str) -> int:
    return len(hooked.server.seen("GET", path))


@pytest.fixture
def hooked(write_config: Callable[..., Path]) -> Iterator[Hooked[FakeServer]]:
    server = FakeServer(fake.FakeEsimGo())
    port = free_port()
    config = write_config(http_config(port) + fake.config_text(server.url))
    with running(config, port, "fleet", ("roam", "org"), [server]) as hooked:
        yield hooked


def test_a_signed_low_balance_callback_is_a_reading_of_the_balance_line(
    hooked: Hooked[FakeServer],
) -> None:
    before = hooked.readings("org")
    status, body, _ = post(hooked.url(), LOW_BALANCE, signed(LOW_BALANCE))
    assert (status, body.strip()) == (200, "recorded: a reading")
    after = hooked.readings("org")
    assert len(after) == len(before) + 1
    last = after[-1]
    assert last.source == "hook" and last.balance == Decimal("1299.3")
    assert last.currency == "USD"  # the payload names none: the line's own, from its poll
    assert fake.API_KEY not in json.dumps(hooked.daemon.seen)


def test_a_utilisation_callback_is_a_reading_of_the_esim_in_bytes(
    hooked: Hooked[FakeServer],
) -> None:
    body = for_our_esim(UTILISATION)
    status, text, _ = post(hooked.url(), body, signed(body))
    assert (status, text.strip()) == (200, "recorded: a reading")
    last = hooked.readings("roam")[-1]
    assert last.source == "hook"
    assert last.data_remaining == last.data_total == 1_000_000_000
    assert last.expires_at == datetime(2007, 1, 2, 15, 4, 5, tzinfo=UTC)


def test_a_hex_signature_as_in_the_guide_is_taken_too(hooked: Hooked[FakeServer]) -> None:
    digest = hmac.new(fake.API_KEY.encode(), LOW_BALANCE, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Signature-SHA256": digest}
    status, text, _ = post(hooked.url(), LOW_BALANCE, headers)
    assert (status, text.strip()) == (200, "recorded: a reading")


def test_a_retry_of_the_same_callback_is_recorded_once(hooked: Hooked[FakeServer]) -> None:
    before = hooked.readings("org")
    first = post(hooked.url(), LOW_BALANCE, signed(LOW_BALANCE))
    again = post(hooked.url(), LOW_BALANCE, signed(LOW_BALANCE))
    assert first[0] == 200 and again[0] == 200
    assert again[1].strip() == "already taken: a retry of the same delivery"
    assert len(hooked.readings("org")) == len(before) + 1


def test_a_topup_callback_makes_the_daemon_check_the_balance_now(
    hooked: Hooked[FakeServer],
) -> None:
    body = b'{"alertType": "Topup", "bundle": {"oldAmount": 10.5, "newAmount": 110.5}}'
    polls = polled(hooked, r"/v2.5/organisation")
    status, text, _ = post(hooked.url(), body, signed(body))
    assert (status, text.strip()) == (202, "taken: line org is checked now")
    hooked.daemon.wait_for("checks done")
    assert polled(hooked, r"/v2.5/organisation") == polls + 1


def test_a_callback_for_an_unwatched_iccid_is_taken_and_records_nothing(
    hooked: Hooked[FakeServer],
) -> None:
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
    hooked: Hooked[FakeServer],
    case: str,
    account: str,
    body: bytes,
    headers: dict[str, str],
    expected: int,
) -> None:
    assert_refused(lambda: post(hooked.url(account), body, headers), expected, hooked.everything)
