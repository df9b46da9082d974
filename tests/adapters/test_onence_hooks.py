"""1NCE Data Streamer pushes end to end: real HTTP over loopback to a running daemon (a
subprocess) whose 1NCE account is the loopback fake, each POST with the Basic auth header
the 1NCE portal is given.

The records are 1NCE's documented examples, verbatim (tests/onence_payloads.py names the
pages), with a configured SIM's ICCID for the documented placeholder where a test needs a
line of ours.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import onence_payloads as doc
import pytest
from daemon_proc import free_port, post
from fakes import FakeServer
from fakes import onence as fake
from hook_cases import Hooked, assert_refused, http_config, running

USER = "streamer-hook"
PASSWORD = "hook-pa55-1nce"
SIMS = [f"89882806660000{n:05d}" for n in range(50)]
"""The account's SIMs, one line each (`sim00` to `sim49`)."""


def basic(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Content-Type": "application/json", "Authorization": f"Basic {token}"}


Streamed = Hooked[FakeServer]
LINES = [f"sim{n:02d}" for n in range(len(SIMS))]


def everything(streamed: Streamed) -> tuple[int, int, int]:
    """The readings of every SIM's line, the deliveries remembered, the quota reads."""
    readings = sum(len(streamed.readings(line)) for line in LINES)
    return readings, streamed.deliveries(), quota_reads(streamed)


def reads_reach(streamed: Streamed, count: int) -> None:
    """Wait for the daemon's checks until the fake has answered `count` quota reads."""
    while quota_reads(streamed) < count:
        streamed.daemon.wait_for("checks done")


def quota_reads(streamed: Streamed, iccid: str | None = None) -> int:
    which = iccid or "[^/]+"
    return len(streamed.server.seen("GET", rf"/management-api/v1/sims/{which}/quota/data"))


@pytest.fixture
def streamed(write_config: Callable[..., Path]) -> Iterator[Streamed]:
    provider = fake.FakeOnce()
    provider.sims = set(SIMS)
    server = FakeServer(provider)
    port = free_port()
    lines = "".join(
        f'\n[lines.sim{n:02d}]\naccount = "iot"\niccid = "{iccid}"\n'
        for n, iccid in enumerate(SIMS)
    )
    config = write_config(
        http_config(port) + f'[accounts.iot]\nprovider = "1nce"\nusername = "{fake.USER}"\n'
        f'password = "{fake.PASSWORD}"\nbase_url = "{server.url}/management-api"\n'
        f'webhook_username = "{USER}"\nwebhook_password = "{PASSWORD}"\n' + lines
    )
    with running(config, port, "iot", LINES, [server]) as streamed:
        yield streamed


def test_a_documented_usage_record_makes_the_daemon_check_that_sim_now(
    streamed: Streamed,
) -> None:
    body = doc.with_iccid(doc.USAGE_RECORD_POST, SIMS[7])
    reads = quota_reads(streamed, SIMS[7])
    status, text, _ = post(streamed.url(), body, basic())
    assert (status, text.strip()) == (200, "taken: line sim07 is checked now")  # 1NCE wants 200
    streamed.daemon.wait_for("checks done")
    assert quota_reads(streamed, SIMS[7]) == reads + 1
    assert quota_reads(streamed) == len(SIMS) + 1  # the startup pass, and this one SIM
    logged = json.dumps(streamed.daemon.seen)
    assert PASSWORD not in logged and USER not in logged


def test_a_batch_of_3000_records_for_50_sims_asks_50_checks_and_a_retry_none(
    streamed: Streamed,
) -> None:
    """The Data Streamer's largest POST (3,000 records) in one transaction, answered with
    its counts; every SIM checked once however many of its records came; the same POST
    again (a retry after a lost answer) is all retries and checks nothing."""
    records = [json.loads(doc.with_iccid(doc.DATA_USAGE_RECORD, sim)) for sim in SIMS]
    batch = [{**records[n % len(SIMS)], "id": 5_000_000 + n} for n in range(3000)]
    body = json.dumps(batch).encode()
    assert len(body) < 4 * 2**20  # `[http] max_body` takes it
    status, text, _ = post(streamed.url(), body, basic())
    assert (status, text.strip()) == (
        200,
        "taken: 0 recorded as readings, 50 lines checked now, 0 retries, 0 for no line, 0 refused",
    )
    assert streamed.deliveries() == 3000
    reads_reach(streamed, 2 * len(SIMS))  # the checks may come in more than one pass
    assert all(quota_reads(streamed, sim) == 2 for sim in SIMS)  # startup + one for the batch
    again = post(streamed.url(), body, basic())
    assert again[:2] == (
        200,
        "taken: 0 recorded as readings, 0 lines checked now, 3000 retries, 0 for no line, "
        "0 refused\n",
    )
    assert streamed.deliveries() == 3000
    assert quota_reads(streamed) == 2 * len(SIMS)


def test_a_quota_event_checks_the_sim_and_its_retry_is_known_by_the_record_id(
    streamed: Streamed,
) -> None:
    body = "[" + doc.with_iccid(doc.DATA_QUOTA_THRESHOLD_REACHED, SIMS[3]) + "]"
    first = post(streamed.url(), body, basic())
    assert first[:2] == (200, "taken: line sim03 is checked now\n")
    streamed.daemon.wait_for("checks done")
    reads = quota_reads(streamed)
    reformatted = json.dumps(json.loads(body))  # another body, the same record id
    again = post(streamed.url(), reformatted, basic())
    assert again[:2] == (200, "already taken: a retry of the same delivery\n")
    assert quota_reads(streamed) == reads


def test_records_for_an_unwatched_sim_or_of_no_interest_are_taken_and_change_nothing(
    streamed: Streamed,
) -> None:
    """The documented POST names SIM "<icc>" (no line of ours): taken, 200 (a 4xx would
    only make 1NCE resend it), nothing checked; a location update is taken and ignored."""
    before = everything(streamed)
    status, text, _ = post(streamed.url(), doc.USAGE_RECORD_POST, basic())
    assert (status, text.strip()) == (200, "taken: no configured line is the one it names")
    location = "[" + doc.with_iccid(doc.UPDATE_LOCATION, SIMS[0]) + "]"
    assert post(streamed.url(), location, basic())[:2] == (200, "taken: it holds no notice\n")
    readings, deliveries, reads = everything(streamed)
    assert (readings, reads) == (before[0], before[2])
    assert deliveries == before[1] + 1  # the usage record's id is kept: its retry is known


def _cases() -> list[tuple[str, str, bytes, dict[str, Any], int]]:
    body = doc.with_iccid(doc.USAGE_RECORD_POST, SIMS[1]).encode()
    plain = {"Content-Type": "application/json"}
    return [
        ("wrong password", "iot", body, basic(password="guess"), 401),
        ("wrong user", "iot", body, basic(user="other"), 401),
        ("no auth", "iot", body, plain, 401),
        ("bearer", "iot", body, {**plain, "Authorization": f"Bearer {PASSWORD}"}, 401),
        ("unknown account", "ghost", body, basic(), 401),
        ("garbage", "iot", b"\xff\xfe\x00garbage", basic(), 400),
        ("no list of records", "iot", b'[{"id": 1}, 2]', basic(), 400),
    ]


@pytest.mark.parametrize(
    ("case", "account", "body", "headers", "expected"), _cases(), ids=[c[0] for c in _cases()]
)
def test_a_bad_post_gets_a_4xx_and_changes_nothing(
    streamed: Streamed,
    case: str,
    account: str,
    body: bytes,
    headers: dict[str, str],
    expected: int,
) -> None:
    assert_refused(
        lambda: post(streamed.url(account), body, headers), expected, lambda: everything(streamed)
    )
