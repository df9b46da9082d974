"""Airalo's webhooks (Partner API, "Webhook definition"), pure.

The raw body is signed with HMAC-SHA512 by the account's webhook key, hex, in the
`airalo-signature` header. Two notifications carry line figures: the low data notification
(`webhook_low_data`: `level` "75%", "90%", "3days" or "1days", `package_name`,
`remaining_percentage`, `iccid`) and the credit limit notification (`webhook_credit_limit`:
`message`, `remaining`, the partner credit left). A percentage is no byte count, so low
data is a trigger (check that eSIM now); the credit left is a figure, a reading of the
account's credit line (its line without an `iccid`). The documented payloads carry no
event id: a retry is known by the body's SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from monitor.webhooks import BadRequest, Figures, Notice, Push, Target, Trigger, secret_text

SIGNATURE = "airalo-signature"
CREDIT_LINE = Target("iccid", None)


def signed(secret: str, body: bytes, signature: str) -> bool:
    expected = hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


def notice(body: bytes) -> Notice:
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
        return Trigger(Target("iccid", text), level[:20])
    remaining = data.get("remaining")
    if isinstance(remaining, (int, Decimal, str)) and not isinstance(remaining, bool):
        try:
            amount = Decimal(str(remaining))
        except InvalidOperation:
            raise BadRequest(400, "the remaining credit is not a number") from None
        if not amount.is_finite():
            raise BadRequest(400, "the remaining credit is not a number")
        return Figures(CREDIT_LINE, balance=amount, raw={"hook": body.decode("utf-8")[:2000]})
    raise BadRequest(400, "not an Airalo low data or credit limit notification")


class AiraloWebhook:
    secrets = ("webhook_secret",)
    targets = ("iccid",)

    def verify(self, options: Mapping[str, Any], push: Push, window: timedelta) -> bool:
        secret = secret_text(options.get("webhook_secret"))
        signature = push.headers.get(SIGNATURE, "")
        return bool(secret) and bool(signature) and signed(secret, push.body, signature)

    def notices(self, push: Push) -> Sequence[Notice]:
        return (notice(push.body),)


WEBHOOK = AiraloWebhook()
