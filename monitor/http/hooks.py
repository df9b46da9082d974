"""What a provider's webhook says, pure: the signature checked, the payload read.

Airalo (Partner API, "Webhook definition"): the raw body is signed with HMAC-SHA512 by the
account's webhook key, hex, in the `airalo-signature` header. Two notifications carry
line figures: the low data notification (`webhook_low_data`: `level` "75%", "90%",
"3days" or "1days", `package_name`, `remaining_percentage`, `iccid`) and the credit limit
notification (`webhook_credit_limit`: `message`, `remaining`, the partner credit left).
The documented payloads carry no event id: a retry is known by the body's SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from monitor.http.relay import BadRequest

AIRALO_SIGNATURE = "airalo-signature"


@dataclass(frozen=True)
class LowData:
    """A trigger: the eSIM's figures changed (a percentage is no byte count): check it."""

    iccid: str
    level: str


@dataclass(frozen=True)
class CreditLimit:
    """The partner credit left: a figure, so a reading of the account's credit line."""

    remaining: Decimal
    message: str


def airalo_signed(secret: str, body: bytes, signature: str) -> bool:
    expected = hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


def body_key(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def airalo_notice(body: bytes) -> LowData | CreditLimit:
    """The notification in a verified body; BadRequest (400) when it is none of them."""
    try:
        data = json.loads(body.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest(400, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest(400, "the body is not a JSON object")
    iccid, level = data.get("iccid"), data.get("level")
    if isinstance(iccid, (str, int)) and not isinstance(iccid, bool) and isinstance(level, str):
        text = str(iccid).strip()
        if not text.isdigit() or not 10 <= len(text) <= 22:
            raise BadRequest(400, "the iccid is not an ICCID")
        return LowData(text, level[:20])
    remaining = data.get("remaining")
    if isinstance(remaining, (int, Decimal, str)) and not isinstance(remaining, bool):
        try:
            amount = Decimal(str(remaining))
        except InvalidOperation:
            raise BadRequest(400, "the remaining credit is not a number") from None
        if not amount.is_finite():
            raise BadRequest(400, "the remaining credit is not a number")
        return CreditLimit(amount, str(data.get("message", ""))[:200])
    raise BadRequest(400, "not an Airalo low data or credit limit notification")
