"""What a relay request says: the text a phone forwards, and who sent it.

Apps send it three ways: a plain-text body, a form (`text=...&from=...`), or JSON
(`{"from": ..., "text": ...}`; `body` and `message` are taken for `text`, `sender` and
`number` for `from`, as forwarding apps name them). Pure: bytes and a content type in, a
`RelayMessage` or a `BadRequest` (why, in one line) out.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from urllib.parse import parse_qs

from monitor.errors import MonitorError

MAX_TEXT = 2000
"""Characters of a relayed text: an SMS is 160 (a long one a few times that)."""
_TEXT_KEYS = ("text", "body", "message", "msg", "content")
_FROM_KEYS = ("from", "sender", "number", "phone", "address")


class BadRequest(MonitorError):
    """A request that cannot be taken, with its HTTP status and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class RelayMessage:
    text: str
    sender: str | None = None


def parse_message(content_type: str, body: bytes) -> RelayMessage:
    """The message in a request body; BadRequest (400 or 415) when there is none."""
    kind = content_type.split(";", 1)[0].strip().lower()
    try:
        decoded = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(400, "the body is not UTF-8 text") from None
    if kind == "application/json":
        message = _from_json(decoded)
    elif kind == "application/x-www-form-urlencoded":
        message = _from_form(decoded)
    elif kind in ("", "text/plain"):
        message = RelayMessage(decoded)
    else:
        raise BadRequest(415, f"unsupported content type {kind!r}: send text/plain, a form or JSON")
    return _checked(message)


def _from_json(text: str) -> RelayMessage:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise BadRequest(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest(400, 'the JSON body must be an object such as {"text": "..."}')
    found = _first(data, _TEXT_KEYS)
    if not isinstance(found, str):
        raise BadRequest(400, 'the JSON body has no "text" string')
    sender = _first(data, _FROM_KEYS)
    if sender is not None and not isinstance(sender, (str, int)):
        raise BadRequest(400, 'the JSON "from" must be a string')
    return RelayMessage(found, None if sender is None else str(sender))


def _from_form(text: str) -> RelayMessage:
    try:
        fields = parse_qs(
            text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=20
        )
    except ValueError:
        raise BadRequest(400, "the form body cannot be read") from None
    values = {k: v[0] for k, v in fields.items()}
    found = _first(values, _TEXT_KEYS)
    if found is None:
        raise BadRequest(400, "the form has no text= field")
    return RelayMessage(found, _first(values, _FROM_KEYS))


def _first(data: dict[str, object], keys: tuple[str, ...]) -> object:
    lowered = {str(k).lower(): v for k, v in data.items()}
    return next((lowered[k] for k in keys if k in lowered), None)


def _checked(message: RelayMessage) -> RelayMessage:
    text = message.text.strip()
    if not text:
        raise BadRequest(400, "the text is empty")
    if len(text) > MAX_TEXT:
        raise BadRequest(413, f"the text is longer than {MAX_TEXT} characters")
    if any(unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn") and c not in "\n\r\t" for c in text):
        raise BadRequest(400, "the text holds control or unassigned characters: not a message")
    sender = message.sender.strip() if message.sender else None
    if sender is not None and (len(sender) > 64 or not sender.isprintable()):
        raise BadRequest(400, "the sender is not a phone number or a name")
    return RelayMessage(text, sender or None)


def same_sender(sender: str | None, allowed: list[str]) -> bool:
    """Whether `sender` is one of `allowed`: digits compared alone ("+1 (611) 611" is
    "1611611"; a leading country code 1 is optional), names case-insensitively."""
    if sender is None:
        return False
    for entry in allowed:
        if _digits(entry) and _digits(sender):
            a, b = _digits(entry), _digits(sender)
            if a == b or a.removeprefix("1") == b.removeprefix("1"):
                return True
        elif entry.strip().lower() == sender.strip().lower():
            return True
    return False


def _digits(text: str) -> str:
    stripped = text.strip()
    if not stripped or any(c.isalpha() for c in stripped):
        return ""
    return "".join(c for c in stripped if c.isdigit())
