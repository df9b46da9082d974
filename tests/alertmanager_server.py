"""A real Alertmanager (Debian's prometheus-alertmanager, 0.25) on loopback, and a loopback
recorder for what an Alertmanager channel puts on the wire (headers the real one does not
check: a bearer token)."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BINARY = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"

CONFIG = """\
route:
  receiver: "null"
  group_by: ["alertname", "line"]
receivers:
  - name: "null"
"""

USER = "esim"
PASSWORD = "am-test-password-7f3k"
PASSWORD_HASH = "$2b$04$xV/IffgkSBBF175betEnReHji8aluc7CIy/I5rriFvXzIseoIrcLK"
"""bcrypt of PASSWORD at cost 4 (cheap per request), as `--web.config.file` takes it."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Alertmanager:
    """The binary on a free loopback port, clustering off, its storage in `folder`;
    `basic_auth` puts USER/PASSWORD in front of its API (`--web.config.file`)."""

    def __init__(self, folder: Path, basic_auth: bool = False) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "alertmanager.yml").write_text(CONFIG)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth = (USER, PASSWORD) if basic_auth else None
        args = [
            BINARY,
            f"--config.file={folder / 'alertmanager.yml'}",
            f"--storage.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]
        if basic_auth:
            (folder / "web.yml").write_text(f"basic_auth_users:\n  {USER}: {PASSWORD_HASH}\n")
            args.append(f"--web.config.file={folder / 'web.yml'}")
        self.log = folder / "alertmanager.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"alertmanager exited: {self.log.read_text()[-2000:]}")
            try:
                self.request("GET", "/-/ready")
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        raise RuntimeError("alertmanager did not become ready within 20 s")

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.auth is not None:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(req, timeout=10) as response:
            text = response.read().decode()
        return json.loads(text) if text.strip().startswith(("[", "{")) else text

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """GET /api/v2/alerts (active ones: Alertmanager leaves resolved ones out there)."""
        query = "&".join(
            "filter=" + urllib.request.quote(f'{k}="{v}"') for k, v in sorted(labels.items())
        )
        return list(self.request("GET", "/api/v2/alerts" + (f"?{query}" if query else "")))

    def silence(self, **labels: str) -> str:
        """POST /api/v2/silences for these labels, for an hour; its id."""
        now = time.time()

        def at(seconds: float) -> str:
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))

        body = {
            "matchers": [
                {"name": k, "value": v, "isRegex": False, "isEqual": True}
                for k, v in labels.items()
            ],
            "startsAt": at(now - 60),
            "endsAt": at(now + 3600),
            "createdBy": "tests",
            "comment": "silenced by a test",
        }
        return str(self.request("POST", "/api/v2/silences", body)["silenceID"])

    def received(self, status: str) -> float:
        """Alerts it was posted with this status ("firing", "resolved"), from its /metrics."""
        total = 0.0
        for line in str(self.request("GET", "/metrics")).splitlines():
            if (
                line.startswith("alertmanager_alerts_received_total{")
                and f'status="{status}"' in line
            ):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Recorder:
    """A loopback stand-in that answers like Alertmanager's API (200 to a post, [] to a
    read) and keeps each request's method, path, headers and JSON body."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.status = 200
        """What it answers; 503 plays an Alertmanager that is down."""
        self.reply = b""
        """The body of a non-200 answer (one that echoes a credential, say)."""
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                size = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(size) if size else b""
                with recorder.lock:
                    recorder.requests.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "headers": dict(self.headers),
                            "body": json.loads(body) if body else None,
                        }
                    )
                status = recorder.status
                answer = b"[]" if self.command == "GET" else b""
                answer = answer if status == 200 else recorder.reply
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = _record

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def posts(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["method"] == "POST"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
