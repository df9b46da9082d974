"""The status page end to end: real HTTP over loopback to a running daemon (a subprocess):
log in, act from the line page, read the API with a token from `esim-monitor http token`,
and see it all from the CLI on the same database."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from daemon_proc import free_port
from web_daemon import WebDaemon, serving

from monitor.http.auth import hash_password

PASSWORD = "correct horse battery"
CONFIG = """
[monitor]
interval = "1h"
[http]
listen = "127.0.0.1:{port}"
user = "admin"
password_hash = "{hash}"
[defaults.thresholds]
balance_warning = 10
[lines.phone]
adapter = "demo"
balance = 7
drain = 0
[lines.tablet]
adapter = "demo"
balance = 40
drain = 0
"""


@pytest.fixture
def server(write_config: Callable[..., Path]) -> Iterator[WebDaemon]:
    port = free_port()
    config = write_config(CONFIG.format(port=port, hash=hash_password(PASSWORD)))
    with serving(config, port, ["phone", "tablet"]) as made:
        yield made


def test_log_in_act_from_the_page_and_read_the_api(server: WebDaemon) -> None:
    status, _, headers = server.call("/api/lines")
    assert status == 401
    status, _, headers = server.call("/")
    assert status == 303 and headers["Location"] == "/login"

    status, _, headers = server.call(
        "/login", {"user": "admin", "password": PASSWORD, "next": "/lines/phone"}
    )
    assert status == 303 and headers["Location"] == "/lines/phone"
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    status, page, headers = server.call("/lines/phone", headers={"Cookie": cookie})
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None

    refused, _, _ = server.call("/lines/phone/snooze", {"duration": "1h"}, {"Cookie": cookie})
    assert refused == 403
    assert server.status("phone")["snoozed_until"] is None
    status, _, headers = server.call(
        "/lines/phone/snooze", {"duration": "1h", "csrf": csrf[1]}, {"Cookie": cookie}
    )
    assert status == 303 and headers["Location"] == "/lines/phone"
    # committed before the answer: the CLI sees it at once
    assert server.status("phone")["snoozed_until"] is not None

    asked = datetime.now(UTC)
    status, _, _ = server.call("/lines/phone/check", {"csrf": csrf[1]}, {"Cookie": cookie})
    assert status == 303
    server.wait_for_checks(["phone"], asked)  # the daemon checks it now, not in an hour

    token = server.cli("http", "token", "e2e").strip()
    status, body, headers = server.call("/api/lines", headers={"Authorization": f"Bearer {token}"})
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == json.loads(server.cli("status", "--json"))
