"""The request logic, pure: a `Request` in, a `Response` out; no socket, no SQL.

Every request is rate-limited per source address first (before any token is looked at,
so tokens cannot be guessed at speed), then routed, bounded and authenticated; any
refusal is a 4xx with a one-line reason and changes nothing. What a relay request records
is committed (by the `RelaySink`) before the 2xx is returned.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from monitor.errors import MonitorError
from monitor.http.proxies import Network, client_address
from monitor.http.relay import BadRequest, RelayMessage, parse_message, same_sender
from monitor.model import utcnow
from monitor.webhooks import Push

log = structlog.get_logger("monitor.http")

_RELAY = re.compile(r"/relay/(?P<line>[a-z0-9][a-z0-9_-]{0,63})/?")
_HOOK = re.compile(r"/hooks/(?P<account>[A-Za-z0-9][A-Za-z0-9_-]{0,63})/?")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    remote: str
    headers: Mapping[str, str] = field(default_factory=dict)
    """Lower-case names."""
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    url: str = ""
    """The whole URL as the server saw it (scheme, host, path, the raw query)."""


@dataclass(frozen=True)
class Response:
    status: int
    text: str
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "text/plain; charset=utf-8"
    body: bytes | None = None
    """Sent as is when set (a page, JSON, a stylesheet); else `text` and a newline."""


class RelaySink(Protocol):
    """Where the relay's messages go (`monitor.relay.Relay`)."""

    def lines(self) -> Mapping[str, list[str] | None]:
        """Every line that takes relayed texts, with the senders it allows (None: any)."""

    def verify(self, line: str, token: str) -> bool: ...

    def record(self, line: str, message: RelayMessage) -> str:
        """Record it (committed on return); what was recorded, in a few words."""


class HookSink(Protocol):
    """Where providers' webhooks go (`monitor.hooks.Hooks`)."""

    def verify(self, account: str, push: Push) -> bool:
        """Whether the account takes webhooks and the push is signed by its key."""

    def record(self, account: str, push: Push) -> tuple[int, str]:
        """Take it (committed on return): the status and what was done, in a few words."""


class WebRoutes(Protocol):
    """The status page and its API (`monitor.http.web.Web`): every other path."""

    def handle(self, request: Request) -> Response: ...


class RateLimiter:
    """A token bucket per source address: `count` requests per `per` seconds, refilled
    evenly. The oldest addresses are forgotten past `max_sources` (a full bucket is what a
    forgotten address gets back, so nothing is refused wrongly)."""

    def __init__(
        self,
        count: int,
        per: float,
        clock: Callable[[], float] = time.monotonic,
        max_sources: int = 10_000,
    ) -> None:
        self.count, self.per, self._clock, self._max = count, per, clock, max_sources
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, source: str) -> float | None:
        """None when the request may go; else the seconds until one may."""
        now = self._clock()
        rate = self.count / self.per
        with self._lock:
            tokens, at = self._buckets.pop(source, (float(self.count), now))
            tokens = min(float(self.count), tokens + (now - at) * rate)
            wait = None
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / rate
            self._buckets[source] = (tokens, now)
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        return wait


class App:
    def __init__(
        self,
        relay: RelaySink,
        limiter: RateLimiter,
        max_body: int,
        hooks: HookSink | None = None,
        public_url: str | None = None,
        trusted: Sequence[Network] = (),
        web: WebRoutes | None = None,
    ) -> None:
        self.web = web
        self.public_url = public_url
        self.trusted = tuple(trusted)
        """`[http] trusted_proxies`: whose X-Forwarded-For names the client."""
        self.relay = relay
        self.hooks = hooks
        self.limiter = limiter
        self.max_body = max_body

    def client(self, request: Request) -> str:
        """The address the request counts as coming from (the peer, or behind a trusted
        proxy the client it forwarded): the rate limit's source and the access log's."""
        return client_address(request, self.trusted)

    def handle(self, request: Request) -> Response:
        client = self.client(request)
        wait = self.limiter.allow(client)
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            return Response(
                429,
                f"too many requests from {client}: retry in {seconds} s",
                (("Retry-After", str(seconds)),),
            )
        try:
            return self._route(request)
        except BadRequest as exc:
            return Response(exc.status, exc.reason)
        except MonitorError as exc:
            log.error("http request failed", path=_path_only(request.path), error=str(exc))
            return Response(503, "the monitor cannot record this now: retry later")

    def _route(self, request: Request) -> Response:
        match = _RELAY.fullmatch(request.path)
        hook = _HOOK.fullmatch(request.path) if self.hooks is not None else None
        if match is None and hook is None and self.web is not None:
            return self.web.handle(request)  # the status page, behind its own login
        if match is None and hook is None:
            raise BadRequest(404, f"no such endpoint {_path_only(request.path)!r}")
        if hook is not None and request.method == "HEAD":
            # Airalo checks a webhook URL with a HEAD request when it is registered and
            # takes it only on a 200; any account name answers alike (it tells no names)
            return Response(200, "POST signed notifications here")
        if request.method != "POST":
            raise BadRequest(405, "use POST")
        if hook is not None:
            return self._hook(hook["account"], request)
        assert match is not None
        return self._relay(match["line"], request)

    def _hook(self, account: str, request: Request) -> Response:
        assert self.hooks is not None
        if len(request.body) > self.max_body:
            raise BadRequest(413, f"the body is larger than {self.max_body} bytes")
        # an unknown account and a bad signature answer alike: the answer tells no names
        push = Push(request.body, request.headers, self._called(request), utcnow())
        if not self.hooks.verify(account, push):
            raise BadRequest(401, "unknown account or bad signature")
        status, done = self.hooks.record(account, push)
        return Response(status, done)

    def _called(self, request: Request) -> str:
        """The URL the provider called: behind a reverse proxy, `public_url` + the path."""
        if self.public_url is None:
            return request.url
        _, _, query = request.url.partition("?")
        return self.public_url.rstrip("/") + request.path + (f"?{query}" if query else "")

    def _relay(self, line: str, request: Request) -> Response:
        if len(request.body) > self.max_body:
            raise BadRequest(413, f"the body is larger than {self.max_body} bytes")
        token = _token(request)
        if token is None:
            raise BadRequest(401, "no token: send Authorization: Bearer TOKEN or ?token=TOKEN")
        lines = self.relay.lines()
        # an unknown line and a wrong token answer alike: the answer tells no line names
        if line not in lines or not self.relay.verify(line, token):
            raise BadRequest(401, "unknown line or wrong token")
        message = parse_message(request.headers.get("content-type", ""), request.body)
        allowed = lines[line]
        if allowed is not None and not same_sender(message.sender, allowed):
            who = "no sender given" if message.sender is None else "this sender"
            raise BadRequest(403, f"{who}: the line takes texts only from its relay_senders")
        recorded = self.relay.record(line, message)
        return Response(200, recorded)


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query.get("token") or None


def _path_only(path: str) -> str:
    return path.split("?", 1)[0][:200]
