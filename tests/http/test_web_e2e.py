"""The status page end to end: real HTTP over loopback to a running daemon (a subprocess):
log in, act from the line page, read the API with a token from `esim-monitor http token`,
and see it all from the CLI on the same database."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from daemon_proc import DaemonProcess, free_port

from monitor.http.auth import hash_password
from monitor.store import View

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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class Server:
    def __init__(self, daemon: DaemonProcess, config: Path, port: int) -> None:
        self.daemon, self.config, self.base = daemon, config, f"http://127.0.0.1:{port}"
        self.database = config.parent / "history.db"

    def call(
        self,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str, dict[str, str]]:
        data = urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            with _OPENER.open(request, timeout=30) as answer:
                return answer.status, answer.read().decode(), dict(answer.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), dict(exc.headers)

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def readings(self, line: str) -> int:
        view = View.open_existing(self.database)
        assert view is not None
        try:
            return len(view.history(line, datetime.now(UTC) - timedelta(days=1)))
        finally:
            view.close()


@pytest.fixture
def server(write_config: Callable[..., Path]) -> Iterator[Server]:
    port = free_port()
    config = write_config(CONFIG.format(port=port, hash=hash_password(PASSWORD)))
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for("http server listening")
        made = Server(daemon, config, port)
        deadline = time.monotonic() + 60
        while made.readings("phone") == 0 or made.readings("tablet") == 0:
            assert time.monotonic() < deadline, "the first checks did not land"
            time.sleep(0.1)
        yield made
    finally:
        daemon.kill()


def test_log_in_act_from_the_page_and_read_the_api(server: Server) -> None:
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
    assert json.loads(server.cli("status", "--json"))[0]["snoozed_until"] is None
    status, _, headers = server.call(
        "/lines/phone/snooze", {"duration": "1h", "csrf": csrf[1]}, {"Cookie": cookie}
    )
    assert status == 303 and headers["Location"] == "/lines/phone"
    # committed before the answer: the CLI sees it at once
    assert json.loads(server.cli("status", "--json"))[0]["snoozed_until"] is not None

    before = server.readings("phone")
    status, _, _ = server.call("/lines/phone/check", {"csrf": csrf[1]}, {"Cookie": cookie})
    assert status == 303
    deadline = time.monotonic() + 60
    while server.readings("phone") == before:  # the daemon checks it now, not in an hour
        assert time.monotonic() < deadline, "check now did not reach the daemon"
        time.sleep(0.1)

    token = server.cli("http", "token", "e2e").strip()
    status, body, headers = server.call("/api/lines", headers={"Authorization": f"Bearer {token}"})
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == json.loads(server.cli("status", "--json"))
