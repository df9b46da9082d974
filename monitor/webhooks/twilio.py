"""Twilio's Event Streams webhooks (Super SIM Connection Events), pure.

Signature, as twilio-python's `RequestValidator` checks it (github:twilio/twilio-python,
twilio/request_validator.py; its vectors in tests/unit/test_request_validator.py): the
`X-Twilio-Signature` header is the Base64 HMAC-SHA1, keyed with the account's Auth Token, of
the URL Twilio called followed by each form parameter's name and value (names sorted, each
name's distinct values sorted). A JSON body is signed through the URL instead: Twilio adds
`bodySHA256`, the body's hex SHA-256, to the query string and signs the URL alone. The URL
is tried with and without its port (443/80 added when absent), as the validator does,
"since sig generation on back end is inconsistent". No timestamp is signed: a replayed
event is known by its id.

Body: an Event Streams webhook sink POSTs a JSON array of CloudEvents (Twilio's Webhook
Quickstart, https://www.twilio.com/docs/events/webhook-quickstart, and its "How to Validate
Twilio Event Streams Webhooks" posts), each with `id` (kept as the event id), `type` and
`data`. The Super SIM event types (https://www.twilio.com/docs/events/event-types/
internet-of-things/super-sim) carry `sim_sid`, `sim_unique_name`, `sim_iccid` and, for data
sessions, the session's bytes (`data_total`, `data_session_data_total`). Those are a data
session's usage, not the billing period's against the Fleet's limit that a line reads, so a
`data-session.updated` or `data-session.ended` event is a trigger: the line whose `sim` is
the SIM's SID or unique name is checked now. Other events (attachments, Event Streams'
test event) hold no notice. Twilio marks these Super SIM event types "discontinued" since
Super SIM moved to KORE Wireless: a subscription may receive none. UsageTriggers callbacks
are not built: their request parameters are not in the sources found.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

from monitor.webhooks import BadRequest, Notice, Push, Target, Trigger, secret_text

SIGNATURE = "x-twilio-signature"
SESSION_EVENTS = {
    "com.twilio.iot.supersim.connection.data-session.updated": "data session updated",
    "com.twilio.iot.supersim.connection.data-session.ended": "data session ended",
}
SIM_SID = re.compile(r"HS[0-9a-fA-F]{32}")
FORM = "application/x-www-form-urlencoded"


def compute_signature(token: str, url: str, params: Mapping[str, Sequence[str]]) -> str:
    """`RequestValidator.compute_signature`: the URL, then each sorted name with each of its
    sorted distinct values, HMAC-SHA1 under the Auth Token, Base64."""
    text = url
    for name in sorted(set(params)):
        for value in sorted(set(params[name])):
            text += name + value
    digest = hmac.new(token.encode("utf-8"), text.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("utf-8").strip()


def with_and_without_port(url: str) -> tuple[str, str]:
    """`add_port` and `remove_port`: the URL with its port (443 or 80 added when it has
    none) and without it."""
    parts = urlparse(url)
    try:
        port = parts.port
    except ValueError:
        return url, url
    if port:
        return url, parts._replace(netloc=parts.netloc.split(":")[0]).geturl()
    default = 443 if parts.scheme == "https" else 80
    return parts._replace(netloc=f"{parts.netloc}:{default}").geturl(), url


def valid(token: str, url: str, body: bytes, content_type: str, signature: str) -> bool:
    """`RequestValidator.validate` on a raw request: a `bodySHA256` in the query must be the
    body's hash (and the URL alone is signed); otherwise the form parameters are signed.
    A body that is neither (JSON without `bodySHA256`) is not validly signed."""
    query = parse_qs(urlparse(url).query)
    params: dict[str, list[str]] = {}
    if "bodySHA256" in query:
        if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), query["bodySHA256"][0]):
            return False
    elif content_type.split(";")[0].strip().lower() == FORM:
        try:
            params = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return False
    elif body:
        return False
    given = signature.strip()
    return any(
        hmac.compare_digest(compute_signature(token, candidate, params), given)
        for candidate in with_and_without_port(url)
    )


def notices(body: bytes) -> tuple[Notice, ...]:
    """The Super SIM data-session events of a verified Event Streams delivery."""
    try:
        events = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest(
            400, "the body is not JSON (UsageTriggers callbacks are not taken)"
        ) from None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise BadRequest(400, "not an Event Streams delivery: no array of CloudEvents")
    found: list[Notice] = []
    for event in events:
        reason = SESSION_EVENTS.get(str(event.get("type")))
        if reason is None:
            continue
        data = event.get("data")
        sid = data.get("sim_sid") if isinstance(data, dict) else None
        if not isinstance(sid, str) or not SIM_SID.fullmatch(sid):
            raise BadRequest(400, "a Super SIM event without a Super SIM SID (HS...)")
        name = data.get("sim_unique_name") if isinstance(data, dict) else None
        aliases = (name,) if isinstance(name, str) and name else ()
        event_id = event.get("id") or data.get("event_sid")
        found.append(
            Trigger(
                Target("sim", sid, aliases),
                reason,
                event_id=str(event_id)[:100] if event_id else None,
            )
        )
    return tuple(found)


class TwilioWebhook:
    secrets = ("auth_token",)
    targets = ("sim",)

    def verify(self, options: Mapping[str, Any], push: Push, window: timedelta) -> bool:
        token = secret_text(options.get("auth_token"))
        signature = push.headers.get(SIGNATURE, "")
        content_type = push.headers.get("content-type", "")
        return (
            bool(token)
            and bool(signature)
            and valid(token, push.url, push.body, content_type, signature)
        )

    def notices(self, push: Push) -> Sequence[Notice]:
        return notices(push.body)


WEBHOOK = TwilioWebhook()
