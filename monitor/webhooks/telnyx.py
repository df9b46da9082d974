"""Telnyx's webhooks: the signature is built; no SIM card notification can be, yet.

Built, from Telnyx's OpenAPI spec (team-telnyx/openapi, `webhooks`: every event documents
the headers `telnyx-timestamp`, "Unix timestamp (seconds since epoch) of when the webhook
was sent", and `telnyx-signature-ed25519`, "Base64 encoded Ed25519 signature ... of
timestamp|payload"; "The server must return a HTTP 200, otherwise we will reattempt") and
its SDKs' verification code (telnyx-python `lib/webhook_verification.py`, telnyx-go
`lib/webhook_verification.go`: the account's public key from the portal, Base64 of 32
bytes; the signed bytes `{timestamp}|{raw body}`; a timestamp more than 5 minutes off,
either way, refused). Here the window is `[http] replay_window` (5 minutes by default), and
every verified event is answered 200.

Missing: Telnyx documents no webhook that concerns a SIM card. The spec's webhook events
(66 in its version of 2026-07-16: calls, conferences, faxes, messages, number orders,
transcriptions, ...), the SDKs' webhook event types (telnyx-python of 2026-08-21) and the
IoT guide ("Data Usage Notifications") hold no SIM, usage or data limit event;
`/sim_card_data_usage_notifications` sets a per-SIM threshold without saying how the
notification is delivered or what it carries. So a verified event is taken and changes
nothing; a SIM card's line is polled as before. When Telnyx documents such an event, its
notices belong in `notices` (a trigger for the line whose `sim_card_id` it names).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from monitor.webhooks import BadRequest, Notice, Push, secret_text

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SIGNATURE = "telnyx-signature-ed25519"
TIMESTAMP = "telnyx-timestamp"


def public_key(text: str) -> Ed25519PublicKey | None:
    """The portal's public key (Base64 of 32 bytes), or None when it is not one."""
    # imported here: the registry imports every provider's module where the daemon starts,
    # and only a Telnyx push needs the Ed25519 code
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    raw = _base64(text)
    if raw is None or len(raw) != 32:
        return None
    return Ed25519PublicKey.from_public_bytes(raw)


def signed(
    key: Ed25519PublicKey,
    body: bytes,
    timestamp: str,
    signature: str,
    now: datetime,
    window: timedelta,
) -> bool:
    """Whether `signature` is the key's Ed25519 signature of `timestamp|body`, made within
    `window` of `now`, before or after (a replay is refused, and so is a clock far ahead)."""
    stamp = timestamp.strip()
    if not stamp.isdigit() or len(stamp) > 12:
        return False
    sent = datetime.fromtimestamp(int(stamp), UTC)
    if abs(now - sent) > window:
        return False
    from cryptography.exceptions import InvalidSignature

    raw = _base64(signature)
    if raw is None or len(raw) != 64:
        return False
    try:
        key.verify(raw, stamp.encode() + b"|" + body)
    except InvalidSignature:
        return False
    return True


def event(body: bytes) -> Mapping[str, Any]:
    """The event of a verified body: `{"data": {"event_type", "id", "payload", ...}}` (or
    the event alone); BadRequest (400) for anything else."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest(400, "the body is not JSON") from None
    inner = data.get("data") if isinstance(data, dict) else None
    found = inner if isinstance(inner, dict) else data
    if not isinstance(found, dict) or not isinstance(found.get("event_type"), str):
        raise BadRequest(400, "not a Telnyx webhook event (no data.event_type)")
    return found


def _base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


class TelnyxWebhook:
    secrets = ("webhook_public_key",)
    targets = ("sim_card_id",)
    ok_status = 200
    """The spec: "The server must return a HTTP 200, otherwise we will reattempt"."""

    def verify(self, options: Mapping[str, Any], push: Push, window: timedelta) -> bool:
        key = public_key(secret_text(options.get("webhook_public_key")))
        signature, timestamp = push.headers.get(SIGNATURE, ""), push.headers.get(TIMESTAMP, "")
        if key is None or not signature or not timestamp:
            return False
        return signed(key, push.body, timestamp, signature, push.received_at, window)

    def notices(self, push: Push) -> Sequence[Notice]:
        event(push.body)  # a verified body that is no event is still refused
        return ()


WEBHOOK = TelnyxWebhook()
