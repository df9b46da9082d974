"""1NCE Data Streamer's Basic auth and records, read pure (bytes in, triggers out).

The records are 1NCE's documented examples, verbatim (tests/onence_payloads.py names each
page); end to end they run in tests/adapters/test_onence_hooks.py."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import onence_payloads as doc
import pytest

from monitor.webhooks import WEBHOOKS, BadRequest, Push, Target, Trigger
from monitor.webhooks.onence import authorized, notice, records

ICCID = "8988280666000000001"
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
OPTIONS = {"webhook_username": "streamer", "webhook_password": "s3cret-pass"}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def push(body: str | bytes, authorization: str | None = None) -> Push:
    data = body.encode() if isinstance(body, str) else body
    headers = {} if authorization is None else {"authorization": authorization}
    return Push(data, headers, "https://monitor.example/hooks/iot", NOW)


def test_basic_auth_must_name_both_the_user_and_the_password() -> None:
    assert authorized("streamer", "s3cret-pass", basic("streamer", "s3cret-pass"))
    assert authorized("streamer", "s3cret-pass", "basic " + basic("streamer", "s3cret-pass")[6:])
    assert not authorized("streamer", "s3cret-pass", basic("streamer", "s3cret-pas"))
    assert not authorized("streamer", "s3cret-pass", basic("streamer", "s3cret-pass2"))
    assert not authorized("streamer", "s3cret-pass", basic("other", "s3cret-pass"))
    assert not authorized("streamer", "s3cret-pass", basic("streamer:s3cret-pass", ""))
    assert not authorized("a:b", "c", basic("a", "b:c"))  # the first colon splits, as RFC 7617
    token = base64.b64encode(b"streamer:s3cret-pass").decode()
    assert not authorized("streamer", "s3cret-pass", "Bearer " + token)
    assert not authorized("streamer", "s3cret-pass", token)
    assert not authorized("streamer", "s3cret-pass", "Basic !!not-base64!!")
    assert not authorized("streamer", "s3cret-pass", "")


def test_the_webhook_takes_only_the_configured_pair() -> None:
    hook = WEBHOOKS["1nce"]
    assert hook.secrets == ("webhook_username", "webhook_password")
    good = push(doc.USAGE_RECORD_POST, basic("streamer", "s3cret-pass"))
    assert hook.verify(OPTIONS, good, timedelta(minutes=5))
    assert not hook.verify(OPTIONS, push(doc.USAGE_RECORD_POST), timedelta(minutes=5))
    assert not hook.verify({}, push(doc.USAGE_RECORD_POST, basic("", "")), timedelta(minutes=5))
    wrong = push(doc.USAGE_RECORD_POST, basic("streamer", "guess"))
    assert not hook.verify(OPTIONS, wrong, timedelta(minutes=5))


def test_the_documented_post_is_a_check_of_the_sim_known_by_its_record_id() -> None:
    """The HTTP/Webhook page's sample POST, verbatim: its ICCID is the placeholder "<icc>",
    a value no line has (the recorder finds no line for it)."""
    notices = WEBHOOKS["1nce"].notices(push(doc.USAGE_RECORD_POST))
    assert notices == [Trigger(Target("iccid", "<icc>"), "data usage", "usage:1234567890")]


@pytest.mark.parametrize(
    ("payload", "reason", "event_id"),
    [
        (doc.DATA_USAGE_RECORD, "data usage", "usage:1234567890"),
        (doc.SMS_USAGE_RECORD, "SMS usage", "usage:1234567890"),
        (doc.DATA_QUOTA_THRESHOLD_REACHED, "Data Quota Threshold reached", "event:1234567890"),
        (doc.SIM_SUSPENSION, "SIM suspension", "event:1234567890"),
    ],
)
def test_usage_and_quota_or_status_events_check_their_sim(
    payload: str, reason: str, event_id: str
) -> None:
    """Usage is what a session used, never what is left; a quota or status event says the
    quota API has news. Usage and event ids are apart: both streams may share the URL."""
    record = json.loads(doc.with_iccid(payload, ICCID))
    assert notice(record) == Trigger(Target("iccid", ICCID), reason, event_id)


def test_location_and_pdp_events_are_taken_and_ignored() -> None:
    assert notice(json.loads(doc.UPDATE_LOCATION)) is None
    body = "[" + ",".join([doc.UPDATE_LOCATION, doc.with_iccid(doc.SIM_SUSPENSION, ICCID)]) + "]"
    assert [n.reason for n in WEBHOOKS["1nce"].notices(push(body))] == ["SIM suspension"]


def test_a_record_without_a_sim_or_an_id_is_read_as_far_as_it_goes() -> None:
    usage = json.loads(doc.with_iccid(doc.DATA_USAGE_RECORD, "8988 2806 6600 0000 001"))
    assert notice(usage) == Trigger(Target("iccid", ICCID), "data usage", "usage:1234567890")
    del usage["id"]
    assert notice(usage) == Trigger(Target("iccid", ICCID), "data usage", None)
    usage["sim"] = None
    assert notice(usage) is None
    assert (
        notice({"id": 1, "traffic_type": {"id": 7}, "volume": {}, "sim": {"iccid": ICCID}}) is None
    )


def test_a_batch_of_3000_records_is_read_whole() -> None:
    record = json.loads(doc.with_iccid(doc.DATA_USAGE_RECORD, ICCID))
    batch = [{**record, "id": n} for n in range(3000)]
    notices = WEBHOOKS["1nce"].notices(push(json.dumps(batch)))
    assert len(notices) == 3000
    assert {n.event_id for n in notices} == {f"usage:{n}" for n in range(3000)}


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"\xff\xfe", b'"text"', b"[1, 2]", b'[{"id": 1}, "x"]', b"42", b"null"],
)
def test_what_is_no_list_of_records_is_refused_400(body: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        records(body)
    assert caught.value.status == 400


def test_one_record_alone_is_read_as_a_list_of_one() -> None:
    """The Data Streamer's first version posted single records (1NCE changelog, "Data
    Streamer: REST API Integration")."""
    assert len(records(doc.DATA_USAGE_RECORD.encode())) == 1
