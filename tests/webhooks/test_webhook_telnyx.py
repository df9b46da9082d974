"""Telnyx's webhook signature (Ed25519 over `{telnyx-timestamp}|{raw body}`) and envelope,
read pure. The key pairs are made here: Telnyx's SDKs publish no fixed test vector (their
tests make a key pair each run too: telnyx-go lib/webhook_verification_test.go).

The event bodies are Telnyx's, verbatim (tests/telnyx_payloads.py names each file); end
to end they run in tests/adapters/test_telnyx_hooks.py."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
import telnyx_payloads as doc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from monitor.webhooks import WEBHOOKS, BadRequest, Push
from monitor.webhooks.telnyx import event, public_key, signed

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=5)
PRIVATE = Ed25519PrivateKey.generate()
PUBLIC = base64.b64encode(PRIVATE.public_key().public_bytes_raw()).decode()
KEY = public_key(PUBLIC)


def signature(body: bytes, stamp: str, private: Ed25519PrivateKey = PRIVATE) -> str:
    return base64.b64encode(private.sign(stamp.encode() + b"|" + body)).decode()


def at(seconds: float) -> str:
    """A `telnyx-timestamp` this many seconds after NOW."""
    return str(int((NOW + timedelta(seconds=seconds)).timestamp()))


def check(body: bytes, stamp: str, sig: str) -> bool:
    assert KEY is not None
    return signed(KEY, body, stamp, sig, NOW, WINDOW)


def test_the_signature_is_ed25519_of_the_timestamp_a_bar_and_the_raw_body() -> None:
    body = doc.GO_SDK_EVENT
    stamp = at(0)
    assert check(body, stamp, signature(body, stamp))
    assert not check(body + b" ", stamp, signature(body, stamp))  # the raw bytes, not the JSON
    assert not check(body, at(1), signature(body, stamp))  # the timestamp is signed too
    assert not check(body, stamp, signature(body, stamp, Ed25519PrivateKey.generate()))
    assert not check(body, stamp, base64.b64encode(PRIVATE.sign(body)).decode())  # no "ts|"
    assert not check(body, stamp, signature(body, stamp)[:-4])  # not 64 bytes
    assert not check(body, stamp, "not base64!")
    assert not check(body, "", signature(body, ""))
    assert not check(body, "17e8", signature(body, "17e8"))


@pytest.mark.parametrize(
    ("seconds", "taken"),
    [(0, True), (-300, True), (300, True), (-301, False), (301, False), (-86400, False)],
)
def test_a_timestamp_outside_the_replay_window_is_refused_both_ways(
    seconds: int, taken: bool
) -> None:
    """A replay (old) and a clock far ahead (new) alike; the edge of the window is in."""
    stamp = at(seconds)
    assert check(doc.GO_SDK_EVENT, stamp, signature(doc.GO_SDK_EVENT, stamp)) is taken


def test_the_webhook_verifies_with_the_account_public_key_and_headers() -> None:
    hook = WEBHOOKS["telnyx"]
    assert hook.secrets == ("webhook_public_key",)
    stamp = at(-10)
    headers = {
        "telnyx-signature-ed25519": signature(doc.GO_SDK_EVENT, stamp),
        "telnyx-timestamp": stamp,
    }
    push = Push(doc.GO_SDK_EVENT, headers, "https://monitor.example/hooks/telnyx", NOW)
    assert hook.verify({"webhook_public_key": PUBLIC}, push, WINDOW)
    assert not hook.verify({"webhook_public_key": PUBLIC}, push, timedelta(seconds=5))
    other = base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
    assert not hook.verify({"webhook_public_key": other.decode()}, push, WINDOW)
    assert not hook.verify({}, push, WINDOW)
    for missing in headers:
        partial = {k: v for k, v in headers.items() if k != missing}
        assert not hook.verify(
            {"webhook_public_key": PUBLIC}, Push(push.body, partial, push.url, NOW), WINDOW
        )


@pytest.mark.parametrize("key", ["", "not base64!", base64.b64encode(b"x" * 31).decode()])
def test_what_is_no_ed25519_public_key_verifies_nothing(key: str) -> None:
    assert public_key(key) is None


@pytest.mark.parametrize("body", [doc.GO_SDK_EVENT, doc.PYTHON_SDK_EVENT])
def test_the_documented_events_are_taken_and_hold_no_notice(body: bytes) -> None:
    """Telnyx documents no SIM card event: a verified event is read, and changes nothing."""
    assert isinstance(event(body)["event_type"], str)
    push = Push(body, {}, "https://monitor.example/hooks/telnyx", NOW)
    assert list(WEBHOOKS["telnyx"].notices(push)) == []


@pytest.mark.parametrize(
    "body", [b"", b"{", b"\xff\xfe", b"[]", b'{"data": {}}', b'{"data": {"event_type": 5}}']
)
def test_what_is_no_telnyx_event_is_refused_400(body: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        event(body)
    assert caught.value.status == 400
