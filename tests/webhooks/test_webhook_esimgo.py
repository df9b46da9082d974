"""eSIM Go's callback signature and payloads, read pure (bytes in, notices out).

The payloads are eSIM Go's documented examples, verbatim:
- LowBalance: https://docs.esim-go.com/api/notifications/operations/balancethreshold/post/
  ("Examples");
- FirstUse: https://docs.esim-go.com/api/notifications/operations/firstuse/post ("Examples";
  its `iccid` is a JSON number, rounded by the page's generator);
- the V2-era Utilisation: https://docs.esim-go.com/api/v2_1/operations/httpsyour-usage-callback-url
  ("Example data": decimal quantities).
The Notifications reference's Utilisation page
(https://docs.esim-go.com/api/notifications/operations/utilisation) gives no example body,
only example values per field: UTILISATION holds those values in the schema's shape
(`unlimited` has no example value and is left out).

eSIM Go publishes no signature test vector: the signatures are computed here as its
documented Node example computes them (HMAC-SHA256 of the raw body, key the API key,
`digest("base64")` in the API reference, `digest("hex")` in the guide).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from monitor.webhooks import WEBHOOKS, BadRequest, Figures, Push, Target, Trigger
from monitor.webhooks.esimgo import REFUSED_PURCHASE, notices, signed

LOW_BALANCE = (
    b'{ "alertType": "LowBalance", "balanceInfo": { "balance": 1299.3, "threshold": 2600,'
    b' "thresholdPercentRemaining": 49.973 }}'
)
FIRST_USE = (
    b'{ "alertType": "FirstUse", "iccid": 8944538532008160000, "bundle": { "name":'
    b' "A_BUNDLE_1GB", "initialQuantity": 1000000000, "remainingQuantity": 1000000000,'
    b' "startTime": "2006-01-02T15:04:05Z", "endTime": "2007-01-02T15:04:05Z" }}'
)
V2_UTILISATION = b"""{
    "iccid": "8944538532008160222",
    "alertType": "Utilisation",
    "bundle": {
        "name": "A_BUNDLE_1GB",
        "initialQuantity": 1000.00,
        "remainingQuantity": 90.00,
        "startTime": "2006-01-02T15:04:05Z",
        "endTime": "2007-01-02T15:04:05Z"
    }
}"""
UTILISATION = (
    b'{"iccid": "8944538532008160222", "alertType": "Utilisation", "bundle": {"name":'
    b' "A_BUNDLE_1GB", "initialQuantity": 1000000000, "remainingQuantity": 1000000000,'
    b' "startTime": "2006-01-02T15:04:05Z", "endTime": "2007-01-02T15:04:05Z"}}'
)
KEY = "esimgo-api-key"


def push(body: bytes, signature: str | None) -> Push:
    headers = {} if signature is None else {"x-signature-sha256": signature}
    return Push(body, headers, "https://monitor.example/hooks/fleet", datetime.now(UTC))


def test_the_signature_is_hmac_sha256_of_the_raw_body_in_base64_or_hex() -> None:
    digest = hmac.new(KEY.encode(), LOW_BALANCE, hashlib.sha256).digest()
    assert signed(KEY, LOW_BALANCE, base64.b64encode(digest).decode())
    assert signed(KEY, LOW_BALANCE, digest.hex())
    assert signed(KEY, LOW_BALANCE, digest.hex().upper())
    assert not signed("other", LOW_BALANCE, digest.hex())
    assert not signed(KEY, LOW_BALANCE + b" ", digest.hex())
    assert not signed(KEY, LOW_BALANCE, base64.urlsafe_b64encode(digest[:-1]).decode())
    sha512 = hmac.new(KEY.encode(), LOW_BALANCE, hashlib.sha512).hexdigest()
    assert not signed(KEY, LOW_BALANCE, sha512)


def test_the_key_is_the_api_key_unless_a_webhook_secret_is_set() -> None:
    webhook = WEBHOOKS["esimgo"]
    good = hmac.new(KEY.encode(), UTILISATION, hashlib.sha256).hexdigest()
    window = timedelta(minutes=5)
    assert webhook.secrets == ("api_key",)
    assert webhook.verify({"api_key": KEY}, push(UTILISATION, good), window)
    assert webhook.verify({"api_key": "x", "webhook_secret": KEY}, push(UTILISATION, good), window)
    assert not webhook.verify({"api_key": "x"}, push(UTILISATION, good), window)
    assert not webhook.verify({"api_key": KEY}, push(UTILISATION, None), window)


def test_a_utilisation_callback_is_a_reading_of_the_esim_in_bytes_with_its_end() -> None:
    (notice,) = notices(UTILISATION)
    assert isinstance(notice, Figures)
    assert notice.target == Target("iccid", "8944538532008160222")
    assert notice.data_remaining == notice.data_total == 1_000_000_000
    assert notice.expires_at == datetime(2007, 1, 2, 15, 4, 5, tzinfo=UTC)
    assert notice.event_id is None and notice.balance is None


def test_first_use_names_its_esim_by_a_json_number() -> None:
    (notice,) = notices(FIRST_USE)
    assert isinstance(notice, Figures)
    assert notice.target == Target("iccid", "8944538532008160000")
    assert notice.data_remaining == 1_000_000_000


def test_decimal_quantities_of_the_v2_example_are_no_byte_figures_the_esim_is_checked() -> None:
    """1000.00 for a 1 GB bundle is megabytes, not the bytes the reference names: no reading
    that would say 90 bytes are left, a check of the eSIM instead."""
    (notice,) = notices(V2_UTILISATION)
    assert notice == Trigger(
        Target("iccid", "8944538532008160222"), "Utilisation (no byte figures)"
    )


@pytest.mark.parametrize(
    "bundle",
    [
        b'"unit": "SMSmessages", "initialQuantity": 100, "remainingQuantity": 5',
        b'"unlimited": true, "initialQuantity": 0, "remainingQuantity": 0',
    ],
)
def test_a_bundle_without_byte_figures_is_a_check(bundle: bytes) -> None:
    body = b'{"alertType": "Utilisation", "iccid": "8944538532008160222", "bundle": {%s}}' % bundle
    (notice,) = notices(body)
    assert isinstance(notice, Trigger) and notice.target.value == "8944538532008160222"


def test_a_low_balance_callback_is_a_reading_of_the_balance_line_money_as_decimal() -> None:
    (notice,) = notices(LOW_BALANCE)
    assert isinstance(notice, Figures)
    assert notice.target == Target("iccid", None)
    assert notice.balance == Decimal("1299.3") and notice.currency is None
    assert notice.critical_reason is None


def test_insufficient_balance_is_a_critical_reading_of_the_balance_line() -> None:
    body = LOW_BALANCE.replace(b"LowBalance", b"InsufficientBalance")
    (notice,) = notices(body)
    assert isinstance(notice, Figures) and notice.critical_reason == REFUSED_PURCHASE


def test_a_topup_asks_for_a_check_of_the_balance_and_other_alerts_hold_no_notice() -> None:
    topup = b'{"alertType": "AutoTopup", "bundle": {"oldAmount": 10.5, "newAmount": 110.5}}'
    assert notices(topup) == (Trigger(Target("iccid", None), "AutoTopup"),)
    assert notices(b'{"alertType": "MSISDNEnabled", "iccid": "8944538532008160222"}') == ()


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"{",
        b"\xff\xfe",
        b'{"balanceInfo": {"balance": 1}}',
        b'{"alertType": "Utilisation", "iccid": "x1", "bundle": {}}',
        b'{"alertType": "Utilisation", "iccid": "8944538532008160222"}',
        b'{"alertType": "Utilisation", "iccid": true, "bundle": {}}',
        b'{"alertType": "Utilisation", "iccid": "8944538532008160222", "bundle": '
        b'{"initialQuantity": 10, "remainingQuantity": -1}}',
        b'{"alertType": "Utilisation", "iccid": "8944538532008160222", "bundle": '
        b'{"initialQuantity": 10, "remainingQuantity": 1, "endTime": "soon"}}',
        b'{"alertType": "LowBalance", "balanceInfo": {"balance": "NaN"}}',
        b'{"alertType": "LowBalance", "balanceInfo": {"balance": true}}',
        b'{"alertType": "LowBalance"}',
    ],
)
def test_what_is_no_callback_is_refused_400(body: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        notices(body)
    assert caught.value.status == 400 and "\n" not in str(caught.value)
