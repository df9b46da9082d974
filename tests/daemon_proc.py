"""`esim-monitor run` as a subprocess with its JSON log collected, and plain HTTP to it."""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_argv(config: Path, *options: str) -> list[str]:
    """`esim-monitor run` on a config, its log as JSON lines on stderr; `options` go
    before the command (`--log-level debug`)."""
    command = [sys.executable, "-m", "monitor", "--config", str(config), "--log-format", "json"]
    return [*command, *options, "run"]


class DaemonProcess:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.proc = subprocess.Popen(
            run_argv(config),
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.logs: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                self.logs.put(json.loads(line))
            except ValueError:
                self.logs.put({"event": line.strip()})

    def wait_for(self, event: str, timeout: float = 60, **fields: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                entry = self.logs.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                tail = "\n".join(json.dumps(e) for e in self.seen[-30:])
                raise AssertionError(f"no {event} {fields} in {timeout} s:\n{tail}") from None
            self.seen.append(entry)
            if entry.get("event") == event and all(entry.get(k) == v for k, v in fields.items()):
                return entry

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def post(
    url: str, body: bytes | str, headers: dict[str, str] | None = None
) -> tuple[int, str, dict[str, str]]:
    """POST and return (status, body text, headers), 4xx and 5xx included."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)
