"""The heartbeat against a loopback HTTP server: success, refusals, and no URL in errors."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from monitor import heartbeat

TOKEN = "3f1c2a9e-secret-push-token"


class PushServer:
    """Answers GET /ping/<token> like Healthchecks.io; other paths as the test sets them."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.agents: list[str] = []
        self.replies: dict[str, tuple[int, bytes]] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.paths.append(self.path)
                server.agents.append(self.headers.get("User-Agent", ""))
                if self.path == "/moved":
                    self.send_response(302)
                    self.send_header("Location", f"/ping/{TOKEN}")
                    self.end_headers()
                    return
                code, body = server.replies.get(self.path, (200, b"OK"))
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[PushServer]:
    s = PushServer()
    yield s
    s.close()


def test_ping_succeeds(server: PushServer) -> None:
    beat = heartbeat.ping(server.url(f"/ping/{TOKEN}"), timeout=5)
    assert beat == heartbeat.Beat(True, status=200)
    assert server.paths == [f"/ping/{TOKEN}"]
    assert server.agents[0].startswith("esim-monitor/")


def test_redirect_is_followed(server: PushServer) -> None:
    assert heartbeat.ping(server.url("/moved"), timeout=5).ok
    assert server.paths == ["/moved", f"/ping/{TOKEN}"]


def test_http_error_names_the_status_not_the_url(server: PushServer) -> None:
    server.replies[f"/ping/{TOKEN}"] = (404, b"not found: " + TOKEN.encode())
    beat = heartbeat.ping(server.url(f"/ping/{TOKEN}"), timeout=5)
    assert beat == heartbeat.Beat(False, status=404, error="HTTP 404")


def test_uptime_kuma_refusal(server: PushServer) -> None:
    path = f"/api/push/{TOKEN}?status=up&msg=OK"
    server.replies[path] = (200, b'{"ok":false,"msg":"Monitor not found or not active."}')
    beat = heartbeat.ping(server.url(path), timeout=5)
    assert not beat.ok
    assert beat.error == "refused: Monitor not found or not active."


def test_uptime_kuma_success(server: PushServer) -> None:
    path = f"/api/push/{TOKEN}?status=up"
    server.replies[path] = (200, b'{"ok":true}')
    assert heartbeat.ping(server.url(path), timeout=5).ok


def test_nothing_listening() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    beat = heartbeat.ping(f"http://127.0.0.1:{port}/ping/{TOKEN}", timeout=5)
    assert not beat.ok
    assert beat.error
    assert TOKEN not in beat.error
    assert str(port) not in beat.error


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        beat = heartbeat.ping(f"http://127.0.0.1:{port}/ping/{TOKEN}", timeout=0.2)
    assert beat == heartbeat.Beat(False, error="timed out")


@pytest.mark.parametrize("url", [f"file:///etc/{TOKEN}", f"ftp://example.invalid/{TOKEN}", ""])
def test_only_http_urls_are_fetched(url: str) -> None:
    beat = heartbeat.ping(url)
    assert not beat.ok
    assert beat.error == "the heartbeat URL must start with http:// or https://"


def test_malformed_url_never_raises_nor_leaks() -> None:
    beat = heartbeat.ping(f"http://[{TOKEN}/ping")
    assert not beat.ok
    assert beat.error
    assert TOKEN not in beat.error


def test_scrub_removes_every_part() -> None:
    url = f"https://hc-ping.example/{TOKEN}?rid=abcdef"
    text = f"failed for {url} at hc-ping.example path /{TOKEN} query rid=abcdef"
    scrubbed = heartbeat._scrub(text, url)
    assert TOKEN not in scrubbed
    assert "hc-ping.example" not in scrubbed
    assert "rid=abcdef" not in scrubbed
