"""What the provider fakes share: a threaded HTTP/1.1 server on 127.0.0.1 (port 0) that
records every request, scripted replies (`server.script(...)`) for errors such as 429, 503,
HTML or a dropped connection, a virtual clock, and a harness that reads lines through the
real config and adapters. Each provider's fake lives in its own module of this package and
cites the section of `../shared/reference/providers.md` it follows. Fixtures are in
../conftest.py.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from monitor import adapters, config
from monitor.errors import CheckFailed
from monitor.model import Reading
from monitor.tokens import TokenCache

# ---- virtual time ------------------------------------------------------------------------


class VirtualClock:
    """Monotonic time plus what has been slept. Sleeps return at once and move the clock
    to the sleeper's wake-up time; concurrent sleeps overlap (the clock takes the latest
    wake-up), as they would in real time."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def now(self) -> float:
        return time.monotonic() + self._offset

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            target = time.monotonic() + self._offset + seconds
            self._offset = max(self._offset, target - time.monotonic())


# ---- the loopback server -----------------------------------------------------------------


@dataclass
class Request:
    """One request as the fake saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    client: tuple[str, int]

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        """Fields of a multipart/form-data body (Airalo's token request)."""
        content_type = self.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            return {}
        message = BytesParser(policy=email_policy).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + self.body
        )
        fields = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                fields[name] = payload.decode()
        return fields

    @property
    def bearer(self) -> str | None:
        header = self.headers.get("Authorization", "")
        return header[7:] if header.startswith("Bearer ") else None

    @property
    def basic(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user, password

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Reply:
    """What the fake answers. A dict or list body is JSON; `hold` keeps the client waiting
    that many seconds (released at teardown); `drop` closes the connection unanswered;
    `reset` resets it (TCP RST) unanswered; `drip` sends the reply one byte every `drip`
    seconds (from the status line, or once the headers are out with `drip_body`); without
    `length` the body has no Content-Length and ends when the connection closes."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    hold: float = 0.0
    drop: bool = False
    reset: bool = False
    drip: float = 0.0
    drip_body: bool = False
    length: bool = True


def json_reply(status: int, body: Any, **headers: str) -> Reply:
    return Reply(status, body, dict(headers))


Route = Callable[[Request, "re.Match[str]"], Reply]


class FakeProvider:
    """Base of a provider fake: `routes` maps (method, path regex) to a handler."""

    def routes(self) -> list[tuple[str, str, Route]]:
        raise NotImplementedError

    def handle(self, request: Request) -> Reply:
        for method, pattern, handler in self.routes():
            match = re.fullmatch(pattern, request.path)
            if method == request.method and match:
                return handler(request, match)
        return json_reply(404, {"message": f"no route for {request.method} {request.path}"})


class Always(FakeProvider):
    """Gives every request the same reply: a hostile provider for the whole test."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply

    def handle(self, request: Request) -> Reply:
        return self.reply


class FakeServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 that answers through a FakeProvider."""

    def __init__(self, provider: FakeProvider) -> None:
        self.provider = provider
        self.requests: list[Request] = []
        self.errors: list[str] = []
        self._scripts: list[tuple[str, re.Pattern[str], deque[Reply]]] = []
        self._lock = threading.Lock()
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 5
            wbufsize = -1  # headers and body leave in one segment: no Nagle/delayed-ACK stall
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers=self.headers,
                    body=self.rfile.read(length) if length else b"",
                    client=self.client_address[:2],
                )
                try:
                    reply = fake._reply(request)
                except Exception as exc:  # a broken fake must fail the test, not hide
                    fake.errors.append(f"{request.method} {request.path}: {exc!r}")
                    reply = Reply(599, f"fake failed: {exc!r}")
                if reply.hold:
                    fake.release.wait(reply.hold)
                if reply.drop:
                    self.close_connection = True
                    return
                if reply.reset:
                    self.close_connection = True
                    linger = struct.pack("ii", 1, 0)  # close at once with an RST, not a FIN
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    self.connection.close()
                    return
                if reply.drip:
                    self.close_connection = True
                    self._drip(reply)
                    return
                body, content_type = _encode(reply)
                self.send_response(reply.status)
                self.send_header("Content-Type", content_type)
                if reply.length:
                    self.send_header("Content-Length", str(len(body)))
                else:
                    self.close_connection = True
                    self.send_header("Connection", "close")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _drip(self, reply: Reply) -> None:
                body, content_type = _encode(reply)
                head = f"HTTP/1.1 {reply.status} Slow\r\nContent-Type: {content_type}\r\n"
                head += f"Content-Length: {len(body)}\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items()) + "\r\n"
                data = head.encode() + body
                start = len(head) if reply.drip_body else 0
                self.wfile.write(data[:start])
                self.wfile.flush()
                for i in range(start, len(data)):
                    if fake.release.wait(reply.drip):
                        return
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            block_on_close = False

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up on a held reply is expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def script(self, method: str, pattern: str, *replies: Reply) -> None:
        """The next matching requests get these replies, in order, before the fake answers."""
        with self._lock:
            self._scripts.append((method, re.compile(pattern), deque(replies)))

    def seen(self, method: str | None = None, pattern: str = ".*") -> list[Request]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and re.fullmatch(pattern, r.path)
            ]

    def _reply(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            for method, pattern, replies in self._scripts:
                if replies and method == request.method and pattern.fullmatch(request.path):
                    return replies.popleft()
        return self.provider.handle(request)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _encode(reply: Reply) -> tuple[bytes, str]:
    if isinstance(reply.body, dict | list):
        return json.dumps(reply.body).encode(), reply.content_type or "application/json"
    if isinstance(reply.body, bytes):
        return reply.body, reply.content_type or "application/octet-stream"
    text = "" if reply.body is None else str(reply.body)
    return text.encode(), reply.content_type or "text/plain; charset=utf-8"


def iso(moment: datetime) -> str:
    """A time as the fakes write it: UTC ISO-8601 to the second."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def finishes(call: Callable[[], Any], within: float) -> Any:
    """What `call` returned or raised, run in a thread; fails the test if it is still
    running after `within` seconds: a bound on a hang, not a measure of speed."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within)
    assert not thread.is_alive(), f"still running after {within:g} s"
    return outcome[0]


# ---- reading lines through the real config and adapters ----------------------------------


class Harness:
    """Settings from a real TOML file, adapters built as the daemon builds them."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self._contexts: list[adapters.AdapterContext] = []

    def settings(self, text: str) -> config.Settings:
        path = self.tmp_path / "config.toml"
        path.write_text(text)
        return config.load(path, [adapters.validate_lines])

    def context(self, tokens: TokenCache | None = None) -> adapters.AdapterContext:
        context = adapters.AdapterContext(tokens)
        self._contexts.append(context)
        return context

    def read(
        self,
        settings: config.Settings,
        line: str,
        context: adapters.AdapterContext | None = None,
    ) -> Reading:
        context = context or self.context()
        return adapters.build(settings, line, context).read()

    def fail(
        self,
        settings: config.Settings,
        line: str,
        context: adapters.AdapterContext | None = None,
    ) -> CheckFailed:
        with pytest.raises(CheckFailed) as info:
            self.read(settings, line, context)
        return info.value

    def close(self) -> None:
        for context in self._contexts:
            context.close()
            context.tokens.close()


# ---- contract files (tests/adapters/contracts/<provider>/<case>.json) --------------------


@dataclass
class ContractRoute:
    """One documented answer of a contract file: served to every request whose method and
    path match exactly and whose query holds `query` (a subset)."""

    method: str
    path: str
    status: int
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    body_text: str | None = None

    def matches(self, request: Request) -> bool:
        return (
            self.method == request.method
            and self.path == request.path
            and all(request.query.get(name) == [value] for name, value in self.query.items())
        )

    def reply(self) -> Reply:
        headers = {k: v for k, v in self.headers.items() if k.lower() != "content-type"}
        content_type = next(
            (v for k, v in self.headers.items() if k.lower() == "content-type"), None
        )
        if self.body_text is not None:
            return Reply(self.status, self.body_text, headers, content_type or "text/plain")
        if self.body is None:
            return Reply(self.status, b"", headers, content_type)
        return Reply(self.status, self.body, headers, content_type)


class ContractProvider(FakeProvider):
    """Serves a contract file's routes, nothing else: any other request is answered 599
    and recorded in `unexpected`, which the contract test asserts empty."""

    def __init__(self, routes: list[ContractRoute]) -> None:
        self.contract_routes = routes
        self.unexpected: list[str] = []

    def handle(self, request: Request) -> Reply:
        for route in self.contract_routes:
            if route.matches(request):
                return route.reply()
        query = "&".join(f"{k}={v}" for k, values in request.query.items() for v in values)
        self.unexpected.append(f"{request.method} {request.path}" + (f"?{query}" if query else ""))
        return Reply(599, "no contract route for this request")


def toml_value(value: Any) -> str:
    """A JSON value written as TOML (strings, numbers, booleans, arrays, inline tables), so
    a contract's account and line options go through the real config loader."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def toml_table(name: str, options: dict[str, Any]) -> str:
    lines = [f"[{name}]"] + [f"{json.dumps(k)} = {toml_value(v)}" for k, v in options.items()]
    return "\n".join(lines) + "\n"
