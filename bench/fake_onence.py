"""A loopback fake of the 1NCE Management API for the benchmarks (asyncio, stdlib only).

Shaped after providers.md, "1NCE Management API": `POST /oauth/token` with HTTP Basic and a
JSON `client_credentials` grant gives a token lasting an hour; `GET /v1/sims/{iccid}/quota/data`
with that Bearer token gives the quota (volume in MB as a float). Every request waits
`--latency` seconds before its answer, and all of them wait concurrently: one event loop
holds thousands of requests in flight for almost no CPU, so the fake takes little from the
client it measures.

Run as a child process (see `benchlib.fake_onence`): it binds 127.0.0.1 on a free port,
prints `{"port": N}`, and serves until its stdin closes (its parent ended) or `--lifetime`
seconds pass; then it prints its counters as one JSON line and exits. Past
`--max-requests` it answers 503 and closes the connection, so a runaway client cannot
keep it busy.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import re
import sys
import threading
from typing import Any

PREFIX = "/management-api"
QUOTA = re.compile(rf"{PREFIX}/v1/sims/(\d{{18,22}})/quota/data")
TOKEN_PATH = f"{PREFIX}/oauth/token"
USER = "bench-user"
PASSWORD = "bench-password"
TOKEN = "bench-token-0001"
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 503: "Busy"}


class Fake:
    """The 1NCE routes, a per-request latency and counters."""

    def __init__(self, latency: float, max_requests: int) -> None:
        self.latency = latency
        self.max_requests = max_requests
        self.requests = 0
        self.tokens = 0
        self.connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.refused = 0
        self.broken: dict[str, int] = {}
        """Connections that ended on an error, by its type (a client reset, a bad request)."""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One keep-alive HTTP/1.1 connection: requests in turn until the client closes."""
        self.connections += 1
        try:
            while True:
                start = await reader.readline()
                if not start:
                    return
                method, target, _ = start.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                status, payload = await self.answer(method, target, headers, body)
                data = json.dumps(payload).encode()
                close = status == 503 or headers.get("connection", "").lower() == "close"
                head = (
                    f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
                    "Content-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n"
                    f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
                ).encode("latin-1")
                writer.write(head + data)
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            self.broken[type(exc).__name__] = self.broken.get(type(exc).__name__, 0) + 1
            return
        except asyncio.CancelledError:
            return  # the fake is stopping with this connection still open: nothing to report
        finally:
            writer.close()

    async def answer(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        """(status, JSON body) of one request, after the latency."""
        self.requests += 1
        if self.requests > self.max_requests:
            self.refused += 1
            return 503, {"message": "the fake's request budget is spent"}
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
        finally:
            self.in_flight -= 1
        path = target.split("?", 1)[0]
        if method == "POST" and path == TOKEN_PATH:
            return self.token(headers, body)
        match = QUOTA.fullmatch(path)
        if method == "GET" and match:
            if headers.get("authorization") != f"Bearer {TOKEN}":
                return 401, {"message": "Unauthorized"}
            return 200, quota(match.group(1))
        return 404, {"message": f"no route for {method} {path}"}

    def token(self, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode("ascii")
        try:
            grant = json.loads(body or b"null")
        except ValueError:
            grant = None
        if headers.get("authorization") != basic or grant != {"grant_type": "client_credentials"}:
            return 400, {"statusCode": 400, "errorCode": "BadCredentials", "message": "Bad"}
        self.tokens += 1
        return 200, {
            "status_code": 200,
            "access_token": TOKEN,
            "token_type": "bearer",
            "expires_in": 3600,
        }

    def counters(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "tokens": self.tokens,
            "connections": self.connections,
            "max_in_flight": self.max_in_flight,
            "refused": self.refused,
            "broken": self.broken,
        }


def quota(iccid: str) -> dict[str, Any]:
    """A quota that differs per SIM but stays well above any threshold."""
    volume = 250 + int(iccid) % 250_000 / 1000
    return {
        "volume": volume,
        "total_volume": 500,
        "expiry_date": "2029-01-01T00:00:00.000Z",
        "last_volume_added": 500,
        "threshold_percentage": 20,
    }


async def main(latency: float, max_requests: int, lifetime: float) -> dict[str, Any]:
    fake = Fake(latency, max_requests)
    server = await asyncio.start_server(fake.serve, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port}), flush=True)
    loop = asyncio.get_running_loop()
    ended = asyncio.Event()

    def watch_stdin() -> None:
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(ended.set)

    threading.Thread(target=watch_stdin, name="stdin", daemon=True).start()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ended.wait(), lifetime)
    server.close()
    return fake.counters()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per request")
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--lifetime", type=float, default=900.0, help="seconds, at most")
    args = parser.parse_args()
    counters = asyncio.run(main(args.latency, args.max_requests, args.lifetime))
    with contextlib.suppress(BrokenPipeError):  # the parent may be gone (its watchdog fired)
        print(json.dumps(counters), flush=True)
