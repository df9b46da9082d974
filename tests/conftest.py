"""Shared fixtures: an isolated environment, config files, a loopback JSON sink for Apprise,
a real SMTP server on loopback, an in-process Apprise schema that records what it is
given, and a real Alertmanager on loopback (with a recorder standing in for one)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from alertmanager_server import BINARY as ALERTMANAGER_BINARY
from alertmanager_server import Alertmanager, Recorder
from mailbox_server import Mailbox

from monitor import adapters
from monitor.adapters import demo


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's environment, state directory or demo progress."""
    for name in list(os.environ):
        if name.startswith("ESIM_MONITOR_") or name in (
            "CREDENTIALS_DIRECTORY",
            "STATE_DIRECTORY",
            "JOURNAL_STREAM",
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    demo.reset()
    adapters._entry_points.cache_clear()  # a test may install a distribution
    yield
    demo.reset()
    adapters._entry_points.cache_clear()


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a TOML config into tmp_path; its database goes there too unless it says."""

    def write(text: str, name: str = "config.toml", database: bool = True) -> Path:
        if database and "database" not in text:
            text = f'[monitor]\ndatabase = "{tmp_path / "history.db"}"\n' + text.replace(
                "[monitor]\n", "", 1
            )
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


class Sink:
    """A loopback HTTP endpoint for Apprise's json:// plugin; `down` makes it answer 503."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.down = False
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if sink.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                sink.received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/alerts"

    def titles(self) -> list[str]:
        return [m.get("title", "") for m in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.close()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    yield box
    box.close()


@pytest.fixture
def recorder() -> Iterator[list[dict[str, Any]]]:
    """`record://` channels append what Apprise hands them; unregistered afterwards."""
    import apprise
    from apprise.decorators import notify

    messages: list[dict[str, Any]] = []

    @notify(on="record")
    def _record(body: str, title: str, notify_type: str, meta: dict[str, Any], **_: Any) -> bool:
        messages.append({"title": title, "body": body, "type": notify_type, "host": meta["host"]})
        return meta.get("host") != "fail"

    yield messages
    apprise.manager_plugins.NotificationManager().remove("record")


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    """A real Alertmanager (Debian's prometheus-alertmanager) on loopback, clustering off."""
    if not Path(ALERTMANAGER_BINARY).exists():
        pytest.fail("prometheus-alertmanager is not installed (.ci/run installs it)")
    server = Alertmanager(tmp_path / "alertmanager")
    yield server
    server.close()


@pytest.fixture
def alertmanager_with_auth(tmp_path: Path) -> Iterator[Alertmanager]:
    """The same, its API behind HTTP basic auth (`--web.config.file`)."""
    server = Alertmanager(tmp_path / "alertmanager-auth", basic_auth=True)
    yield server
    server.close()


@pytest.fixture
def am_recorder() -> Iterator[Recorder]:
    """A loopback stand-in for Alertmanager's API that records every request."""
    recorder = Recorder()
    yield recorder
    recorder.close()
