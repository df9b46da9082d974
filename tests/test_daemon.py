"""The daemon as a real subprocess: signals, reload, and the loop's schedule."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CONFIG = """
[monitor]
interval = "1s"
[lines.a]
adapter = "demo"
"""


class Daemon:
    """`esim-monitor run` in a subprocess, its JSON log lines collected from stderr."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitor",
                "--config",
                str(config),
                "--log-format",
                "json",
                "--log-level",
                "debug",
                "run",
            ],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.logs: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                self.logs.put(json.loads(line))
            except ValueError:
                self.logs.put({"event": line.strip()})

    def wait_for(self, event: str, timeout: float = 40, **fields: Any) -> dict[str, Any]:
        seen = []
        while True:
            try:
                entry = self.logs.get(timeout=timeout)
            except queue.Empty:
                tail = "\n".join(json.dumps(e) for e in seen[-30:])
                raise AssertionError(
                    f"no {event} {fields} in {timeout} s; last logs:\n{tail}"
                ) from None
            seen.append(entry)
            if entry.get("event") == event and all(entry.get(k) == v for k, v in fields.items()):
                return entry

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def daemon(write_config: Callable[..., Path]) -> Any:
    started: list[Daemon] = []

    def start(text: str = CONFIG) -> tuple[Daemon, Path]:
        path = write_config(text)
        d = Daemon(path)
        started.append(d)
        return d, path

    yield start
    for d in started:
        d.stop()


def test_checks_at_startup_and_on_schedule_then_sigterm(daemon: Any) -> None:
    d, _ = daemon()
    d.wait_for("esim-monitor started")
    d.wait_for("line checked", line="a")  # first check at startup
    d.wait_for("line checked", line="a")  # and again a second later
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=10) == 0
    d.wait_for("esim-monitor stopped", timeout=5)


def test_sigint_stops_cleanly(daemon: Any) -> None:
    d, _ = daemon()
    d.wait_for("line checked", line="a")
    d.proc.send_signal(signal.SIGINT)
    assert d.proc.wait(timeout=10) == 0


def test_sighup_reloads_and_an_invalid_config_is_rejected(daemon: Any) -> None:
    d, path = daemon()
    d.wait_for("line checked", line="a")
    path.write_text(path.read_text() + '[lines.b]\nadapter = "demo"\n')
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for("config reloaded", lines=2)
    d.wait_for("line checked", line="b")  # a new line is checked at once
    good = path.read_text()
    path.write_text(good.replace('interval = "1s"', 'interval = "5 parsecs"'))
    d.proc.send_signal(signal.SIGHUP)
    rejected = d.wait_for("new config rejected, keeping the running one")
    assert "monitor.interval" in rejected["problems"]
    d.wait_for("line checked", line="b")  # the old config runs on
    assert d.proc.poll() is None
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=10) == 0


def test_invalid_config_at_start_exits_78(write_config: Callable[..., Path]) -> None:
    path = write_config('[monitor]\ninterval = "soon"\n[lines.a]\nadapter = "demo"\n')
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(path), "run"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 78
    assert "At 'monitor.interval'" in done.stderr
    assert "Traceback" not in done.stderr


def test_systemd_notify_watchdog_reload_stop_metrics_heartbeat(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    import socket
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    beats: list[str] = []

    class Beat(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            beats.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    hb = ThreadingHTTPServer(("127.0.0.1", 0), Beat)
    threading.Thread(target=hb.serve_forever, daemon=True).start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = write_config(
        f'[monitor]\ninterval = "1s"\nmetrics = "127.0.0.1:{port}"\n'
        f'heartbeat_url = "http://127.0.0.1:{hb.server_address[1]}/ping/abc"\n'
        '[lines.a]\nadapter = "demo"\nbalance = 3\n[defaults.thresholds]\nbalance_warning = 5\n'
    )
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(15)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(path), "run"],
        env=env,
        stderr=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )

    def until(field: str) -> list[str]:
        seen = []
        while True:
            message = sock.recv(4096).decode()
            seen.append(message)
            if field in message.split("\n"):
                return seen

    try:
        assert any("READY=1" in m for m in until("READY=1"))
        seen = []
        for _ in range(4):  # pings keep coming, every half of WATCHDOG_USEC
            seen += until("WATCHDOG=1")
        assert any(m.startswith("STATUS=1 lines, 1 low, next check") for m in seen)
        scrape = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        assert b'line="a"' in scrape
        assert beats and beats[0] == "/ping/abc"
        proc.send_signal(signal.SIGHUP)
        seen = until("READY=1")
        assert any(m.startswith("RELOADING=1") for m in seen)
        path.write_text(path.read_text().replace('interval = "1s"', 'interval = "soon"'))
        proc.send_signal(signal.SIGHUP)
        until("READY=1")  # rejected, the old config keeps running
        until("WATCHDOG=1")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        until("STOPPING=1")
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
        hb.shutdown()


def test_a_storm_of_signals_never_wedges_the_loop(daemon: Any) -> None:
    """Signal handlers take no lock: a burst of SIGHUPs lands anywhere in the loop,
    including inside a lock the loop holds (with Event.set in the handler, this wedged the
    daemon for good, every time)."""
    d, _ = daemon()
    d.wait_for("line checked", line="a")
    for _ in range(20000):
        d.proc.send_signal(signal.SIGHUP)
    d.wait_for("config reloaded")
    d.wait_for("line checked", line="a")  # still checking
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=20) == 0
