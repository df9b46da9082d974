"""1NCE Data Streamer's REST API (webhook) integration, pure.

Facts from 1NCE's documentation (help.1nce.com, Data Streamer: "HTTP/Webhook", "Usage
Records", "Event Records"): each POST carries a JSON list of up to 3,000 records; the
endpoint answers 200 and acknowledged records are not sent again; the request carries the
HTTP Basic header configured in the 1NCE portal (which takes the Base64 of
`username:password`). A usage stream and an event stream are separate streams that may
share the endpoint.

- A usage record (`traffic_type` 5 = Data, 6 = SMS) is what one data session or one SMS
  used (`volume` in MB or messages), not what is left: a trigger, so the SIM's line is
  checked now and the quota API says what remains. 3,000 records of 50 SIMs ask 50 checks.
- An event record is a trigger when it changes what a check would read: quota threshold
  reached or used up, a quota assigned, deleted or expired, the SIM activated, suspended or
  deleted, the endpoint blocked. Location and PDP context events are taken and ignored.

Every record has an `id` ("Duplicate received event IDs indicate possible
retransmissions"): a retry is known by it, kept apart per stream (`usage:ID`, `event:ID`).
A record without a SIM or with an ICCID no line has is taken for no line; a body that is no
list of records is refused.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from monitor.webhooks import BadRequest, Notice, Push, Target, Trigger, secret_text

TRAFFIC = {5: "data usage", 6: "SMS usage"}
"""Usage records' `traffic_type.id`."""

EVENTS = {
    8: "SIM activation",
    9: "SIM suspension",
    10: "SIM deletion",
    11: "Endpoint blocked",
    18: "Data Quota Threshold reached",
    19: "Data Quota used up",
    20: "SMS Quota Threshold reached",
    21: "SMS Quota used up",
    56: "Data Quota Assigned",
    57: "Data Quota Deleted",
    58: "SMS Quota Assigned",
    59: "SMS Quota Deleted",
    60: "Data Quota expired",
}
"""Event records' `event_type.id` that change what a check reads (the "Event Types" table);
the rest (locations, PDP contexts, authentication) say nothing about data, SMS or status."""


def authorized(username: str, password: str, header: str) -> bool:
    """Whether an `Authorization` header is HTTP Basic of exactly these credentials; both
    parts compared in constant time, so the answer's timing tells neither."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        sent = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, colon, secret = sent.partition(b":")
    same_user = hmac.compare_digest(user, username.encode())
    same_password = hmac.compare_digest(secret, password.encode())
    return bool(colon) and same_user and same_password


def records(body: bytes) -> list[dict[str, Any]]:
    """The records of a body: a JSON list of objects (or one object, as the Data Streamer's
    first version posted); BadRequest (400) for anything else."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest(400, "the body is not JSON") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise BadRequest(400, "the body is not a list of Data Streamer records")
    return data


def notice(record: Mapping[str, Any]) -> Trigger | None:
    """The trigger one record is, or None for a record that changes nothing we read."""
    traffic, event = record.get("traffic_type"), record.get("event_type")
    if isinstance(traffic, dict) and "volume" in record:
        kind, reason = "usage", TRAFFIC.get(_number(traffic.get("id")) or -1)
    elif isinstance(event, dict):
        kind, reason = "event", EVENTS.get(_number(event.get("id")) or -1)
    else:
        return None
    sim = record.get("sim")
    iccid = sim.get("iccid") if isinstance(sim, dict) else None
    if reason is None or not isinstance(iccid, str | int) or isinstance(iccid, bool):
        return None
    number = _number(record.get("id"))
    return Trigger(
        Target("iccid", re.sub(r"[\s-]", "", str(iccid))[:40]),
        reason,
        event_id=None if number is None else f"{kind}:{number}",
    )


def _number(value: Any) -> int | None:
    """An id as the integer it is (1NCE sends LONGs; a string of digits is taken too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


class OnceWebhook:
    secrets = ("webhook_username", "webhook_password")
    targets = ("iccid",)
    ok_status = 200
    """1NCE: "The customer supplied endpoint should consume the HTTP Post with a HTTP 200
    status code response"; a batch of triggers is answered 200, not 202."""

    def verify(self, options: Mapping[str, Any], push: Push, window: timedelta) -> bool:
        username = secret_text(options.get("webhook_username"))
        password = secret_text(options.get("webhook_password"))
        header = push.headers.get("authorization", "")
        return bool(username) and bool(password) and authorized(username, password, header)

    def notices(self, push: Push) -> Sequence[Notice]:
        found = (notice(record) for record in records(push.body))
        return [trigger for trigger in found if trigger is not None]


WEBHOOK = OnceWebhook()
