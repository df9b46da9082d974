"""eSIM Go's callbacks (V3), pure.

Facts from eSIM Go's documentation: "Webhooks & Callbacks"
(https://docs.esim-go.com/guides/webhooks/), the usage callback of API v2.2-v2.5
(`/your-usage-callback-url/`) and the Notifications reference
(https://docs.esim-go.com/api/notifications: Utilisation, FirstUse, BalanceThreshold, Topup).

Signature: V3 callbacks carry `X-Signature-SHA256`, an HMAC-SHA256 of the raw body keyed
with the account's **API key** (both pages say so). Its encoding is documented twice,
differently: the guide's example digests to hex, the API reference's to Base64; both are
taken (a 64-digit hex string and a 44-character Base64 one cannot be mistaken for each
other). V2 callbacks are unsigned and refused (401). No timestamp is signed, so there is no
replay window: a replay of the same body is known by its SHA-256 (eSIM Go sends no event
id; the bundle's `id` and `reference` name the assignment, which gets several alerts).

Notifications (`alertType`):
- `Utilisation` (sent at 1, 50, 80 and 100 % used) and `FirstUse`: `iccid` and the bundle in
  use, `initialQuantity` and `remainingQuantity` in **bytes** (the Notifications reference:
  "(Bytes)", JSON integers, 1000000000 for a 1 GB bundle) and `endTime`: a reading of the
  eSIM's line (target `iccid`) with data left, total and expiry. The reading is that
  bundle's, not the sum the poller makes over active, queued and processing bundles: an eSIM
  with a queued bundle reads low until its next poll. The V2 examples of API v2.0/v2.1 give
  the quantities as decimals (`1000.00` for a 1 GB bundle: megabytes, it seems, undocumented);
  a quantity that is no JSON integer, a `unit` other than `BYTES`, or an unlimited bundle
  gives no data figure: then the eSIM is checked now instead.
- `LowBalance` (the organisation balance reached its alert threshold, or 75/50/10 % of it)
  and `InsufficientBalance` (a purchase was refused for lack of credit, sent up to 10 times):
  `balanceInfo.balance`, "Current balance remaining ($)": a reading of the account's
  balance line (the line without `iccid`), in the line's own currency from its poll.
  Whether it includes test credit (which the poller subtracts) is not documented.
  `InsufficientBalance` makes that reading critical: a bundle purchase failed.
- `Topup`, `AutoTopup`, `eSIMGoTopup` (the organisation balance was topped up): the balance
  line is checked now (the reference gives the new amount without an example).
- Any other `alertType` is taken and holds no notice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

from monitor.adapters.http import BadAnswer, parse_time, to_bytes, to_decimal
from monitor.webhooks import BadRequest, Figures, Notice, Push, Target, Trigger, secret_text

SIGNATURE = "x-signature-sha256"
BALANCE_LINE = Target("iccid", None)
USAGE_ALERTS = ("Utilisation", "FirstUse")
BALANCE_ALERTS = ("LowBalance", "InsufficientBalance")
TOPUP_ALERTS = ("Topup", "AutoTopup", "eSIMGoTopup")
REFUSED_PURCHASE = "eSIM Go refused a bundle purchase: insufficient organisation balance"


def signed(key: str, body: bytes, signature: str) -> bool:
    """Whether `signature` is the body's HMAC-SHA256 under `key`, hex or Base64."""
    digest = hmac.new(key.encode(), body, hashlib.sha256).digest()
    given = signature.strip()
    hex_ok = hmac.compare_digest(digest.hex(), given.lower())
    base64_ok = hmac.compare_digest(base64.b64encode(digest).decode(), given)
    return hex_ok or base64_ok


def notices(body: bytes) -> tuple[Notice, ...]:
    """The notification in a verified body; BadRequest (400) when the body is none."""
    try:
        data = json.loads(body.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest(400, "the body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("alertType"), str):
        raise BadRequest(400, "not an eSIM Go callback: no alertType")
    alert = data["alertType"]
    try:
        if alert in USAGE_ALERTS:
            return (_usage(alert, data, body),)
        if alert in BALANCE_ALERTS:
            return (_balance(alert, data, body),)
    except BadAnswer as exc:
        raise BadRequest(400, f"eSIM Go {alert} callback: {exc}") from None
    if alert in TOPUP_ALERTS:
        return (Trigger(BALANCE_LINE, alert[:20]),)
    return ()


def _usage(alert: str, data: dict[str, Any], body: bytes) -> Notice:
    iccid = _iccid(data.get("iccid"))
    bundle = data.get("bundle")
    if not isinstance(bundle, dict):
        raise BadRequest(400, f"eSIM Go {alert} callback without a bundle")
    target = Target("iccid", iccid)
    initial, remaining = bundle.get("initialQuantity"), bundle.get("remainingQuantity")
    unit = bundle.get("unit", "BYTES")
    in_bytes = (
        unit == "BYTES"
        and bundle.get("unlimited") is not True
        and all(isinstance(v, int) and not isinstance(v, bool) for v in (initial, remaining))
    )
    if not in_bytes:
        return Trigger(target, f"{alert} (no byte figures)")
    end = bundle.get("endTime")
    return Figures(
        target,
        data_remaining=to_bytes(remaining, 1, "remainingQuantity"),
        data_total=to_bytes(initial, 1, "initialQuantity"),
        expires_at=parse_time(end, "endTime") if end else None,
        raw={"hook": body.decode("utf-8")[:2000]},
    )


def _balance(alert: str, data: dict[str, Any], body: bytes) -> Notice:
    info = data.get("balanceInfo")
    if not isinstance(info, dict) or "balance" not in info:
        raise BadRequest(400, f"eSIM Go {alert} callback without balanceInfo.balance")
    return Figures(
        BALANCE_LINE,
        balance=to_decimal(info["balance"], "balance"),
        critical_reason=REFUSED_PURCHASE if alert == "InsufficientBalance" else None,
        raw={"hook": body.decode("utf-8")[:2000]},
    )


def _iccid(value: Any) -> str:
    """The ICCID as digits: a string, or a JSON number (the FirstUse example has one)."""
    text = str(value).strip() if isinstance(value, (str, int)) else ""
    if isinstance(value, bool) or not text.isdigit() or not 10 <= len(text) <= 22:
        raise BadRequest(400, "the iccid is not an ICCID")
    return text


class EsimGoWebhook:
    secrets = ("api_key",)
    targets = ("iccid",)

    def verify(self, options: Mapping[str, Any], push: Push, window: timedelta) -> bool:
        key = secret_text(options.get("webhook_secret")) or secret_text(options.get("api_key"))
        signature = push.headers.get(SIGNATURE, "")
        return bool(key) and bool(signature) and signed(key, push.body, signature)

    def notices(self, push: Push) -> Sequence[Notice]:
        return notices(push.body)


WEBHOOK = EsimGoWebhook()
