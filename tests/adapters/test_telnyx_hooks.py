"""Telnyx webhooks end to end: real HTTP over loopback to a running daemon (a subprocess)
whose Telnyx account is the loopback fake and holds the public key of a key pair made here,
each body signed as Telnyx signs it (Ed25519 over `{telnyx-timestamp}|{raw body}`).

Telnyx documents no SIM card event (monitor/webhooks/telnyx.py), so a verified event is
taken with 200 and changes nothing; what is not verified gets 401, and nothing changes
either. The bodies are Telnyx's SDK test events, verbatim (tests/telnyx_payloads.py).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import telnyx_payloads as doc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from daemon_proc import free_port, post
from fakes import FakeServer
from fakes import telnyx as fake
from hook_cases import Hooked, assert_refused, http_config, running

PRIVATE = Ed25519PrivateKey.generate()
PUBLIC = base64.b64encode(PRIVATE.public_key().public_bytes_raw()).decode()


def signed(body: bytes, offset: float = 0, key: Ed25519PrivateKey = PRIVATE) -> dict[str, str]:
    """Telnyx's headers for `body`, its timestamp `offset` seconds from now."""
    stamp = str(int(time.time() + offset))
    signature = base64.b64encode(key.sign(stamp.encode() + b"|" + body)).decode()
    return {
        "Content-Type": "application/json",
        "telnyx-timestamp": stamp,
        "telnyx-signature-ed25519": signature,
    }


def everything(hooked: Hooked[FakeServer]) -> tuple[Any, ...]:
    """The readings of both lines, the deliveries remembered, the requests to Telnyx."""
    return hooked.everything(), len(hooked.server.seen("GET"))


@pytest.fixture
def hooked(write_config: Callable[..., Path]) -> Iterator[Hooked[FakeServer]]:
    server = FakeServer(fake.FakeTelnyx())
    port = free_port()
    text = fake.config_text(server.url).replace(
        f'base_url = "{server.url}"', f'base_url = "{server.url}"\nwebhook_public_key = "{PUBLIC}"'
    )
    config = write_config(http_config(port) + text)
    with running(config, port, "telnyx", ("balance", "modem"), [server]) as hooked:
        yield hooked


@pytest.mark.parametrize("body", [doc.GO_SDK_EVENT, doc.PYTHON_SDK_EVENT], ids=["go", "python"])
def test_a_signed_event_is_taken_with_200_and_changes_nothing(
    hooked: Hooked[FakeServer], body: bytes
) -> None:
    """200 as Telnyx asks ("otherwise we will reattempt"); no SIM event is documented, so
    nothing is recorded or checked. Its retry is answered alike."""
    before = everything(hooked)
    for _ in range(2):
        status, text, _ = post(hooked.url(), body, signed(body))
        assert (status, text.strip()) == (200, "taken: it holds no notice")
    assert everything(hooked) == before
    assert PUBLIC not in json.dumps(hooked.daemon.seen)


OTHER = Ed25519PrivateKey.generate()
BODY = doc.GO_SDK_EVENT


def _without(name: str) -> dict[str, str]:
    return {k: v for k, v in signed(BODY).items() if k != name}


CASES: list[tuple[str, str, bytes, Callable[[], dict[str, str]], int]] = [
    ("another key", "telnyx", BODY, lambda: signed(BODY, key=OTHER), 401),
    ("another body", "telnyx", BODY, lambda: signed(doc.PYTHON_SDK_EVENT), 401),
    ("stale timestamp", "telnyx", BODY, lambda: signed(BODY, offset=-400), 401),
    ("timestamp ahead", "telnyx", BODY, lambda: signed(BODY, offset=400), 401),
    ("no signature", "telnyx", BODY, lambda: _without("telnyx-signature-ed25519"), 401),
    ("no timestamp", "telnyx", BODY, lambda: _without("telnyx-timestamp"), 401),
    ("unknown account", "ghost", BODY, lambda: signed(BODY), 401),
    ("garbage", "telnyx", b"\xff\xfe\x00garbage", lambda: signed(b"\xff\xfe\x00garbage"), 400),
    ("no event", "telnyx", b'{"data": {}}', lambda: signed(b'{"data": {}}'), 400),
]
"""Headers are made when the test runs: a timestamp made at collection would age."""


@pytest.mark.parametrize(
    ("case", "account", "body", "headers", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_a_bad_delivery_gets_a_4xx_and_changes_nothing(
    hooked: Hooked[FakeServer],
    case: str,
    account: str,
    body: bytes,
    headers: Callable[[], dict[str, str]],
    expected: int,
) -> None:
    assert_refused(
        lambda: post(hooked.url(account), body, headers()), expected, lambda: everything(hooked)
    )
