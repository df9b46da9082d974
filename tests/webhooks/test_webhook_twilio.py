"""Twilio's request signature and Event Streams deliveries, read pure.

The signature vectors are twilio-python's, verbatim (github:twilio/twilio-python,
tests/unit/test_request_validator.py: token "12345", its URI, parameters, body and expected
signatures). TEST_EVENT is Event Streams' test event as Twilio's post "How to Validate Twilio
Event Streams Webhooks in Rust" shows a webhook body, verbatim
(https://www.twilio.com/en-us/blog/developers/tutorials/validate-twilio-event-streams-webhooks-rust).
Twilio publishes no example body of a Super SIM Connection Event that we found: SESSION_ENDED
is that envelope with a Super SIM event's documented `type` and `data` fields
(https://www.twilio.com/docs/events/event-types/internet-of-things/super-sim; the
`data_session_data_total` of the 2022-06-15 changelog), with made-up values.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from monitor.webhooks import WEBHOOKS, BadRequest, Push, Target, Trigger
from monitor.webhooks.twilio import compute_signature, notices, valid

TOKEN = "12345"
URI = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": ["CA1234567890ABCDE"],
    "Digits": ["1234"],
    "From": ["+14158675309"],
    "To": ["+18005551212"],
    "Caller": ["+14158675309"],
}
FORM = (
    b"CallSid=CA1234567890ABCDE&Digits=1234&From=%2B14158675309&To=%2B18005551212"
    b"&Caller=%2B14158675309"
)
EXPECTED = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
BODY = b'{"property": "value", "boolean": true}'
BODY_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
URI_WITH_BODY = URI + "&bodySHA256=" + BODY_HASH
FORM_TYPE = "application/x-www-form-urlencoded"

TEST_EVENT = b"""[
  {
    "specversion": "1.0",
    "type": "com.twilio.eventstreams.test-event",
    "source": "Sink",
    "id": "AC11111111111111111111111111111111",
    "dataschema": "https://events-schemas.twilio.com/EventStreams.TestSink/1.json",
    "datacontenttype": "application/json",
    "time": "2026-06-10T06:02:54.377Z",
    "data": {
      "test_id": "cae2f9e2-c277-4612-8ad3-93c1a7a3ef88"
    }
  }
]"""
SIM = "HS0123456789abcdef0123456789abcdef"
SESSION_ENDED = (
    b'[{"specversion": "1.0", "type": "com.twilio.iot.supersim.connection.data-session.ended",'
    b' "source": "/v1/Sims/' + SIM.encode() + b'", "id": "EZ0123456789abcdef0123456789abcdef",'
    b' "datacontenttype": "application/json", "time": "2026-06-10T06:02:54.377Z", "data":'
    b' {"event_sid": "EZ0123456789abcdef0123456789abcdef", "event_type":'
    b' "com.twilio.iot.supersim.connection.data-session.ended", "account_sid":'
    b' "AC0123456789abcdef0123456789abcdef", "sim_sid": "' + SIM.encode() + b'",'
    b' "sim_iccid": "89883070000012345678", "sim_unique_name": "tracker-7",'
    b' "timestamp": "2026-06-10T06:02:54Z", "data_session_data_total": 524288}}]'
)


def test_the_signature_is_twilio_pythons_for_its_vectors() -> None:
    assert compute_signature(TOKEN, URI, PARAMS) == EXPECTED
    duplicates = {"Sid": ["CA123"], "SidAccount": ["AC123"], "Digits": ["5678", "1234", "1234"]}
    assert compute_signature(TOKEN, URI, duplicates) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    assert hashlib.sha256(BODY).hexdigest() == BODY_HASH


def test_a_signed_form_body_is_valid_with_or_without_the_port() -> None:
    assert valid(TOKEN, URI, FORM, FORM_TYPE, EXPECTED)
    assert valid(TOKEN, URI.replace(".com", ".com:1234"), FORM, FORM_TYPE, EXPECTED)
    with_443 = "kvajT1Ptam85bY51eRf/AJRuM3w="
    assert valid(TOKEN, URI, FORM, FORM_TYPE, with_443)
    http = URI.replace("https", "http")
    assert valid(TOKEN, http, FORM, FORM_TYPE, "0ZXoZLH/DfblKGATFgpif+LLRf4=")
    http_1234 = URI.replace(".com", ".com:1234").replace("https", "http")
    assert valid(TOKEN, http_1234, FORM, FORM_TYPE, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=")
    assert not valid("54321", URI, FORM, FORM_TYPE, EXPECTED)
    assert not valid(TOKEN, URI, FORM + b"&Extra=1", FORM_TYPE, EXPECTED)
    assert not valid(TOKEN, URI.replace("foo=1", "foo=2"), FORM, FORM_TYPE, EXPECTED)


def test_a_json_body_is_signed_through_its_body_sha256_in_the_url() -> None:
    assert valid(TOKEN, URI_WITH_BODY, BODY, "application/json", "a9nBmqA0ju/hNViExpshrM61xv4=")
    tampered = BODY.replace(b"value", b"other")
    assert not valid(
        TOKEN, URI_WITH_BODY, tampered, "application/json", "a9nBmqA0ju/hNViExpshrM61xv4="
    )
    assert not valid(TOKEN, URI, BODY, "application/json", compute_signature(TOKEN, URI, {}))


def test_the_account_auth_token_verifies_a_push_to_the_url_twilio_called() -> None:
    webhook = WEBHOOKS["twilio"]
    url = (
        "https://monitor.example/hooks/iot?bodySHA256=" + hashlib.sha256(SESSION_ENDED).hexdigest()
    )
    headers = {
        "x-twilio-signature": compute_signature(TOKEN, url, {}),
        "content-type": "application/json",
    }
    push = Push(SESSION_ENDED, headers, url, datetime.now(UTC))
    assert webhook.secrets == ("auth_token",)
    assert webhook.verify({"auth_token": TOKEN}, push, timedelta(minutes=5))
    assert not webhook.verify({"auth_token": "other"}, push, timedelta(minutes=5))
    moved = Push(
        SESSION_ENDED, headers, url.replace("monitor.example", "evil.example"), push.received_at
    )
    assert not webhook.verify({"auth_token": TOKEN}, moved, timedelta(minutes=5))


def test_a_data_session_event_asks_for_a_check_of_the_sim_by_sid_or_unique_name() -> None:
    (notice,) = notices(SESSION_ENDED)
    assert notice == Trigger(
        Target("sim", SIM, ("tracker-7",)),
        "data session ended",
        event_id="EZ0123456789abcdef0123456789abcdef",
    )


def test_the_test_event_and_other_events_hold_no_notice() -> None:
    assert notices(TEST_EVENT) == ()
    attached = SESSION_ENDED.replace(b"data-session.ended", b"attachment.accepted")
    assert notices(attached) == ()


@pytest.mark.parametrize(
    "body",
    [
        FORM,
        b"\xff",
        b'{"type": "com.twilio.iot.supersim.connection.data-session.ended"}',
        b"[1]",
        SESSION_ENDED.replace(SIM.encode(), b"HSnot-a-sid"),
    ],
)
def test_what_is_no_event_streams_delivery_is_refused_400(body: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        notices(body)
    assert caught.value.status == 400
