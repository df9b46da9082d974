"""The status page's secrets, pure: password hashes, CSRF tokens, signed action links."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from monitor.http.auth import (
    Link,
    LinkError,
    check_password,
    csrf_ok,
    csrf_token,
    hash_password,
    read_link,
    sign_link,
    token_hash,
    valid_hash,
)

KEY = b"k" * 32
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
LINK = Link("ack", ("phone",), NOW + timedelta(days=7), "n1")


def test_a_password_hash_checks_its_password_only() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("$scrypt$ln=15,r=8,p=1$") and "correct horse" not in stored
    assert valid_hash(stored)
    assert check_password("correct horse", stored)
    assert not check_password("correct horse ", stored)
    assert hash_password("correct horse") != stored  # a fresh salt each time


@pytest.mark.parametrize(
    "stored",
    ["", "plain", "$scrypt$ln=15,r=8,p=1$AAAA", "$scrypt$ln=4,r=8,p=1$AAAA$AAAA", "$2b$12$x"],
)
def test_what_is_no_hash_of_ours_checks_nothing(stored: str) -> None:
    assert not valid_hash(stored)
    assert not check_password("", stored)


def test_the_csrf_token_belongs_to_its_session_and_key() -> None:
    token = csrf_token(KEY, "session-a")
    assert csrf_ok(KEY, "session-a", token)
    assert not csrf_ok(KEY, "session-b", token)
    assert not csrf_ok(b"j" * 32, "session-a", token)
    assert not csrf_ok(KEY, "session-a", "")


def test_tokens_are_stored_as_hashes() -> None:
    assert token_hash("abc") == token_hash("abc") != token_hash("abd")
    assert "abc" not in token_hash("abc")


def test_a_signed_link_reads_back_as_made() -> None:
    assert read_link(KEY, sign_link(KEY, LINK), NOW) == LINK
    group = Link("snooze", ("a", "b"), NOW + timedelta(hours=1), "n2")
    assert read_link(KEY, sign_link(KEY, group), NOW) == group


def test_a_link_of_another_key_or_altered_is_refused() -> None:
    token = sign_link(KEY, LINK)
    with pytest.raises(LinkError, match="not made by this monitor"):
        read_link(b"j" * 32, token, NOW)
    body, _, mac = token.partition(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data["l"] = ["someone-else"]
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    with pytest.raises(LinkError, match="not made by this monitor"):
        read_link(KEY, f"{forged}.{mac}", NOW)
    for broken in ("", "x", token + "x", "." + mac, body + "."):
        with pytest.raises(LinkError):
            read_link(KEY, broken, NOW)


def test_an_expired_link_says_when_it_expired() -> None:
    token = sign_link(KEY, LINK)
    with pytest.raises(LinkError, match="expired at 2026-12-10 12:00 UTC"):
        read_link(KEY, token, NOW + timedelta(days=7))
    assert read_link(KEY, token, NOW + timedelta(days=7) - timedelta(seconds=1)) == LINK


def test_a_link_is_made_only_of_what_it_can_do() -> None:
    with pytest.raises(ValueError):
        Link("delete", ("a",), NOW, "n")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Link("ack", (), NOW, "n")
    with pytest.raises(ValueError):
        Link("ack", ("a",), NOW.replace(tzinfo=None), "n")
