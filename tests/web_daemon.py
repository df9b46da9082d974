"""A running daemon serving the status page on loopback, for the end-to-end tests (plain
HTTP in test_web_e2e, a real Chromium in test_browser): `esim-monitor run` as a subprocess
on a config with `[http]`, its first checks landed, and the CLI on the same database."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from daemon_proc import DaemonProcess

from monitor.store import View


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


class WebDaemon:
    """The daemon, where its page answers (`base`), and its database."""

    def __init__(self, daemon: DaemonProcess, config: Path, port: int) -> None:
        self.daemon, self.config, self.base = daemon, config, f"http://127.0.0.1:{port}"
        self.database = config.parent / "history.db"

    def call(
        self,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str, dict[str, str]]:
        """GET (or POST `form`) without following redirects: (status, body, headers)."""
        data = urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            with _OPENER.open(request, timeout=30) as answer:
                return answer.status, answer.read().decode(), dict(answer.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), dict(exc.headers)

    def cli(self, *args: str) -> str:
        """An `esim-monitor` command on the daemon's config; its output (it must succeed)."""
        done = subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def status(self, line: str) -> dict[str, Any]:
        """The line's row of `status --json`, as a script reads it."""
        rows = {row["line"]: row for row in json.loads(self.cli("status", "--json"))}
        return dict(rows[line])

    def readings(self, line: str, since: datetime | None = None) -> int:
        """How many readings the line has since `since` (default: the last day)."""
        view = View.open_existing(self.database)
        assert view is not None
        try:
            return len(view.history(line, since or datetime.now(UTC) - timedelta(days=1)))
        finally:
            view.close()

    def wait_for_checks(self, lines: list[str], since: datetime, timeout: float = 60) -> None:
        """Until each of `lines` has a reading taken since `since`."""
        deadline = time.monotonic() + timeout
        while any(self.readings(line, since) == 0 for line in lines):
            assert time.monotonic() < deadline, f"{lines} were not all checked in {timeout} s"
            time.sleep(0.1)


@contextmanager
def serving(config: Path, port: int, lines: list[str]) -> Iterator[WebDaemon]:
    """The daemon on `config` (its `[http] listen` on 127.0.0.1:`port`), once its server
    listens and each of `lines` has been checked; killed afterwards."""
    started = datetime.now(UTC)
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for("http server listening")
        made = WebDaemon(daemon, config, port)
        made.wait_for_checks(lines, started)
        yield made
    finally:
        daemon.kill()
