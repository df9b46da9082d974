"""Twilio's Event Streams webhooks end to end: real HTTP over loopback to a running daemon (a
subprocess) whose Twilio account is the loopback fakes, each delivery signed as Twilio signs
a JSON body (twilio-python's RequestValidator: HMAC-SHA1 of the URL with `bodySHA256`, keyed
with the Auth Token, Base64).

TEST_EVENT is Event Streams' test event as Twilio shows a webhook body, verbatim
(https://www.twilio.com/en-us/blog/developers/tutorials/validate-twilio-event-streams-webhooks-rust).
Twilio publishes no example body of a Super SIM Connection Event that we found: session()
puts a Super SIM event's documented fields
(https://www.twilio.com/docs/events/event-types/internet-of-things/super-sim) in that
envelope.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_proc import free_port, post
from fakes import FakeServer
from fakes import twilio as fake
from hook_cases import Hooked, assert_refused, http_config, running

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


def session(sim: str, name: str, event: str = "EZ" + "1" * 32, kind: str = "ended") -> bytes:
    """A Super SIM data-session event in Event Streams' envelope (see the module)."""
    return json.dumps(
        [
            {
                "specversion": "1.0",
                "type": f"com.twilio.iot.supersim.connection.data-session.{kind}",
                "source": f"/v1/Sims/{sim}",
                "id": event,
                "datacontenttype": "application/json",
                "time": "2026-06-10T06:02:54.377Z",
                "data": {
                    "event_sid": event,
                    "event_type": f"com.twilio.iot.supersim.connection.data-session.{kind}",
                    "account_sid": fake.SID,
                    "sim_sid": sim,
                    "fleet_sid": fake.FLEET_SID,
                    "sim_iccid": "89883070000123456789",
                    "sim_unique_name": name,
                    "timestamp": "2026-06-10T06:02:54Z",
                    "data_session_data_total": 524288,
                },
            }
        ]
    ).encode()


def signed_url(hooked: Hooked[FakeServer], body: bytes, account: str = "twilio") -> str:
    digest = hashlib.sha256(body).hexdigest()
    return f"{hooked.url(account)}?bodySHA256={digest}"


def send(
    hooked: Hooked[FakeServer],
    body: bytes,
    token: str = fake.TOKEN,
    account: str = "twilio",
    url: str = "",
) -> tuple[int, str, Any]:
    """POST `body` signed as Twilio signs it (the URL it is sent to, with its hash)."""
    url = url or signed_url(hooked, body, account)
    digest = hmac.new(token.encode(), url.encode(), hashlib.sha1).digest()
    headers = {
        "Content-Type": "application/json",
        "X-Twilio-Signature": base64.b64encode(digest).decode(),
    }
    return post(url, body, headers)


def sim_reads(hooked: Hooked[FakeServer]) -> int:
    return len(hooked.server.seen("GET", r"/v1/Sims/[^/]+$"))


@pytest.fixture
def hooked(write_config: Callable[..., Path]) -> Iterator[Hooked[FakeServer]]:
    api, supersim = FakeServer(fake.FakeTwilioApi()), FakeServer(fake.FakeSuperSim())
    port = free_port()
    config = write_config(
        http_config(port) + fake.config_text(api.url, supersim.url, sim="tracker-1")
    )
    with running(config, port, "twilio", ("tracker", "balance"), [supersim, api]) as hooked:
        yield hooked


def test_a_data_session_event_checks_the_line_named_by_the_sims_unique_name(
    hooked: Hooked[FakeServer],
) -> None:
    """The line's `sim` is the unique name; the event names the SID first, then the name."""
    reads = sim_reads(hooked)
    status, text, _ = send(hooked, session(fake.SIM_SID, "tracker-1"))
    assert (status, text.strip()) == (202, "taken: line tracker is checked now")
    hooked.daemon.wait_for("checks done")
    assert sim_reads(hooked) == reads + 1
    assert fake.TOKEN not in json.dumps(hooked.daemon.seen)


def test_a_retry_of_the_same_event_is_taken_once(hooked: Hooked[FakeServer]) -> None:
    body = session(fake.SIM_SID, "tracker-1", kind="updated")
    first = send(hooked, body)
    hooked.daemon.wait_for("checks done")
    deliveries = hooked.deliveries()
    again = send(hooked, body)
    assert first[0] == 202
    assert (again[0], again[1].strip()) == (200, "already taken: a retry of the same delivery")
    assert hooked.deliveries() == deliveries


def test_the_test_event_is_taken_and_changes_nothing(hooked: Hooked[FakeServer]) -> None:
    status, text, _ = send(hooked, TEST_EVENT)
    assert (status, text.strip()) == (200, "taken: it holds no notice")


def test_an_event_for_an_unwatched_sim_is_taken_and_records_nothing(
    hooked: Hooked[FakeServer],
) -> None:
    before = hooked.everything()
    reads = sim_reads(hooked)
    status, text, _ = send(hooked, session("HS" + "c" * 32, "someone-else", "EZ" + "2" * 32))
    assert (status, text.strip()) == (202, "taken: no configured line is the one it names")
    assert hooked.everything()[:2] == before[:2]
    assert sim_reads(hooked) == reads


def test_a_bad_delivery_gets_a_4xx_and_changes_nothing(hooked: Hooked[FakeServer]) -> None:
    body = session(fake.SIM_SID, "tracker-1", "EZ" + "3" * 32)
    other = session(fake.SIM_SID, "tracker-1", "EZ" + "4" * 32)
    garbage = b"\xff\xfe\x00garbage"
    cases = [
        ("bad token", lambda: send(hooked, body, token="wrong"), 401),
        ("body not the hashed one", lambda: send(hooked, body, url=signed_url(hooked, other)), 401),
        ("no bodySHA256", lambda: send(hooked, body, url=hooked.url()), 401),
        ("no signature", lambda: post(signed_url(hooked, body), body, {}), 401),
        ("unknown account", lambda: send(hooked, body, account="ghost"), 401),
        ("garbage", lambda: send(hooked, garbage), 400),
        ("not CloudEvents", lambda: send(hooked, b'{"a": 1}'), 400),
    ]
    for case, deliver, expected in cases:
        assert_refused(deliver, expected, hooked.everything, case)
