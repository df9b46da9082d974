"""Airalo's webhook signature and payloads, read pure (bytes in, a notice out).

The documented payloads themselves, verbatim, are replayed end to end in
tests/adapters/test_airalo_hooks.py."""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal

import pytest

from monitor.webhooks import BadRequest, Figures, Target, Trigger, body_key
from monitor.webhooks.airalo import notice, signed

BODY = b'{"message": "Surpassed 80% of the credit limit balance", "remaining": 225.35}'


def test_the_signature_is_hmac_sha512_of_the_raw_body() -> None:
    good = hmac.new(b"key", BODY, hashlib.sha512).hexdigest()
    assert signed("key", BODY, good)
    assert signed("key", BODY, good.upper())
    assert not signed("other", BODY, good)
    assert not signed("key", BODY + b" ", good)
    assert not signed("key", BODY, hmac.new(b"key", BODY, hashlib.sha256).hexdigest())


def test_the_payloads_are_read_money_as_decimal() -> None:
    credit = notice(BODY)
    assert isinstance(credit, Figures)
    assert credit.target == Target("iccid", None) and credit.balance == Decimal("225.35")
    low = b'{"level": "90%", "remaining_percentage": 10, "iccid": "8944465400000267221"}'
    assert notice(low) == Trigger(Target("iccid", "8944465400000267221"), "90%")
    assert body_key(BODY) == body_key(BODY) != body_key(low)


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"{",
        b'{"level": "90%", "iccid": "x1"}',
        b'{"remaining": "NaN"}',
        b'{"remaining": true}',
    ],
)
def test_what_is_no_notification_is_refused_400(body: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        notice(body)
    assert caught.value.status == 400
