"""The status page's secrets, pure: password hashes, session and CSRF tokens, signed links.

- Passwords: scrypt (memory-hard, in the standard library), 32 MiB per guess, in a
  self-describing text `$scrypt$ln=15,r=8,p=1$SALT$HASH` that `esim-monitor http
  password` prints and `[http] password_hash` holds; the config never holds a password.
- Sessions and API tokens are random; only their SHA-256 is stored (nothing to guess by
  brute force), so a copy of the database opens no session.
- A CSRF token is an HMAC of the session id under the server's key: it needs no table and
  dies with the session.
- An action link (`{ack_url}`, `{snooze_url}`) is a payload (what, on which lines, until
  when, a nonce) and its HMAC-SHA256 under the server's key, URL-safe Base64. It works
  without logging in, once (the store remembers the nonce) and until it expires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from monitor.errors import MonitorError

SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P = 15, 8, 1
"""OWASP's scrypt minimum is N=2^17 at r=8 (128 MiB); 2^15 (32 MiB, ~0.1 s here) keeps a
login affordable on a Raspberry Pi while each guess still costs 32 MiB of memory."""
_MAXMEM = 2**26
_HASH = re.compile(
    r"\$scrypt\$ln=(?P<ln>\d{1,2}),r=(?P<r>\d{1,2}),p=(?P<p>\d{1,2})"
    r"\$(?P<salt>[A-Za-z0-9+/]+={0,2})\$(?P<hash>[A-Za-z0-9+/]+={0,2})"
)
TOKEN_BYTES = 32
LinkAction = Literal["ack", "snooze", "unsnooze"]
LINK_ACTIONS: tuple[LinkAction, ...] = ("ack", "snooze", "unsnooze")


class LinkError(MonitorError):
    """An action link that cannot be used: not ours, altered, expired or used (why, in a
    few words, for its page)."""


class LinkExpired(LinkError):
    """A link of ours whose time is over."""


def hash_password(password: str, salt: bytes | None = None) -> str:
    """The `password_hash` text for `password`."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = _scrypt(password, salt, SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P)
    return f"$scrypt$ln={SCRYPT_LOG_N},r={SCRYPT_R},p={SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def valid_hash(text: str) -> bool:
    """Whether `text` is a hash `hash_password` could have written (config validation)."""
    match = _HASH.fullmatch(text.strip())
    return match is not None and 10 <= int(match["ln"]) <= 20 and int(match["r"]) >= 1


def check_password(password: str, stored: str) -> bool:
    """Whether `password` is the one `stored` was made from; a malformed hash is False."""
    match = _HASH.fullmatch(stored.strip())
    if match is None or not valid_hash(stored):
        return False
    try:
        salt = base64.b64decode(match["salt"], validate=True)
        expected = base64.b64decode(match["hash"], validate=True)
    except binascii.Error:
        return False
    digest = _scrypt(password, salt, int(match["ln"]), int(match["r"]), int(match["p"]))
    return hmac.compare_digest(digest, expected)


def _scrypt(password: str, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=2**log_n, r=r, p=p, maxmem=_MAXMEM, dklen=32
    )


def new_token() -> str:
    """A session id or API token: 32 random bytes, URL-safe."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """How a session id or API token is stored."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def csrf_token(key: bytes, session: str) -> str:
    """The CSRF token of a session: forms carry it, POSTs must send it back."""
    return _b64url(hmac.new(key, b"csrf|" + session.encode(), hashlib.sha256).digest())


def csrf_ok(key: bytes, session: str, sent: str) -> bool:
    return bool(sent) and hmac.compare_digest(csrf_token(key, session), sent)


@dataclass(frozen=True)
class Link:
    """What an action link does: `action` on `lines` (one line, or every line of a grouped
    alert), valid until `expires`, once (`nonce`)."""

    action: LinkAction
    lines: tuple[str, ...]
    expires: datetime
    nonce: str

    def __post_init__(self) -> None:
        if self.action not in LINK_ACTIONS:
            raise ValueError(f"unknown link action {self.action!r}")
        if not self.lines:
            raise ValueError("a link acts on at least one line")
        if self.expires.tzinfo is None:
            raise ValueError("Link.expires must be timezone-aware")


def sign_link(key: bytes, link: Link) -> str:
    """The token of the link's URL (`/a/TOKEN`)."""
    payload = json.dumps(
        {
            "a": link.action,
            "l": list(link.lines),
            "e": int(link.expires.timestamp()),
            "n": link.nonce,
        },
        separators=(",", ":"),
    ).encode()
    body = _b64url(payload)
    return f"{body}.{_mac(key, body)}"


def read_link(key: bytes, token: str, now: datetime) -> Link:
    """The link a token stands for; LinkError when it is forged, altered or expired (the
    store, not this, knows whether it was used)."""
    body, dot, mac = token.partition(".")
    if not dot or len(token) > 4096 or not hmac.compare_digest(_mac(key, body), mac):
        raise LinkError("this link is not valid: it was not made by this monitor, or altered")
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        link = Link(
            action=data["a"],
            lines=tuple(str(line) for line in data["l"]),
            expires=datetime.fromtimestamp(int(data["e"]), UTC),
            nonce=str(data["n"]),
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise LinkError("this link is not valid: its contents cannot be read") from None
    if link.expires <= now:
        raise LinkExpired(f"this link expired at {link.expires:%Y-%m-%d %H:%M} UTC")
    return link


def _mac(key: bytes, body: str) -> str:
    return _b64url(hmac.new(key, b"link|" + body.encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
