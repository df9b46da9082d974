"""The shared HTTP layer of REST adapters, over httpx.

Why it exists: every provider needs the same care. One connection pool per account (a
cycle of fifty lines must not open fifty pools), polite retries inside the check's time
budget, tokens that outlive restarts (Airalo allows three token requests a minute), and
answers mapped to failures a user can act on, never to a zero balance.

Public API (the provider adapters and the generic `http_json` adapter build on it):

- `Session`: one account's `httpx.Client` with its base URL, auth, time budget, optional
  request pacing and secret redaction. `get_json()` reads JSON (retried, errors mapped);
  `request()` returns the response after retries, its status left to the caller;
  `check_status()` and `parse_json()` map a response; `send_once()` sends a request that
  must never be repeated (it spends money) and tells "not sent" from "outcome unknown".
- Top-ups: `send_top_up()` sends an order once and sorts what came of it into `TopUpFailed`
  (nothing bought) and `TopUpUnknown` (money may be spent); `top_up_refused()` and
  `top_up_answer()` map the answer it returns.
- `Budget`: one check's deadline; pass the same one to every request of a check.
- Auth: `BasicAuth`, `HeaderAuth`, `BearerAuth`, and `TokenAuth` (a fetched `Token`, cached
  in `AdapterContext.tokens`, renewed on expiry and once on a 401).
- Failures, all `CheckFailed`: `AuthenticationFailed`, `RateLimited`, `ProviderUnavailable`,
  `ProviderRefused`, `BadAnswer`, `OutcomeUnknown`.
- Payload helpers: `dig`, `dig_object`, `to_decimal`, `to_bytes`, `to_count`, `to_currency`,
  `parse_time`, `segment`, `excerpt`, `provider_message`, `raw_excerpt`; the `Iccid` type.
- `HttpAccountOptions` and `HttpAdapter`: the base of an adapter over one account's API.

Tests make waiting virtual by replacing `DEFAULT_BACKOFF` (its `sleep` and `clock`).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import itertools
import json
import logging
import math
import random
import re
import socket
import ssl
import threading
import time
import urllib.request
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, ClassVar
from urllib.parse import quote, urlsplit

import httpcore
import httpx
import structlog
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
)

from monitor import __version__
from monitor.adapters import AccountRef, Adapter, AdapterContext
from monitor.config import PositiveDuration
from monitor.errors import CheckFailed, TopUpFailed, TopUpUnknown
from monitor.model import FIGURE_DIGITS, Reading, bytes_problem, size_problem, utcnow
from monitor.redact import Redactor
from monitor.tokens import TokenCache

log = structlog.get_logger("monitor.adapters.http")

# httpx logs every request URL at INFO; URLs carry account ids and ICCIDs, and our own
# log lines already say what matters (retries, unreadable answers).
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

USER_AGENT = f"esim-monitor/{__version__}"
EXCERPT_CHARS = 80
RAW_CHARS = 2000


# ---- failures ---------------------------------------------------------------------------


class HttpFailure(CheckFailed):
    """Base of the layer's failures: a failed check, with the HTTP status when there was one."""

    def __init__(self, message: str, *, raw: str | None = None, status: int | None = None) -> None:
        super().__init__(message, raw=raw)
        self.status = status


class AuthenticationFailed(HttpFailure):
    """401/403, or a token request refused: the credentials (or the IP) need fixing."""


class RateLimited(HttpFailure):
    """The provider asked us to slow down for longer than the check's budget allows."""

    def __init__(
        self, message: str, *, retry_at: datetime, raw: str | None = None, status: int | None = 429
    ) -> None:
        super().__init__(message, raw=raw, status=status)
        self.retry_at = retry_at


class ProviderUnavailable(HttpFailure):
    """5xx, timeouts or connection errors outlasted the budget; for `send_once`: not sent."""


class ProviderRefused(HttpFailure):
    """A 4xx answer other than auth and rate limits (unknown ICCID, business errors)."""


class BadAnswer(HttpFailure):
    """HTML, malformed JSON or a JSON shape without the expected figures."""


class OutcomeUnknown(HttpFailure):
    """`send_once` lost the answer after sending: the provider may have acted on it, so the
    caller must verify (order history) before anything is sent again."""


# ---- payload helpers --------------------------------------------------------------------


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """A short single-line excerpt of an answer, for messages and logs."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def segment(value: object) -> str:
    """A value made safe as one URL path segment (an ICCID from the config, say)."""
    return quote(str(value), safe="")


_MISSING = object()


def dig(payload: Any, *path: str | int, what: str | None = None) -> Any:
    """payload[path[0]][path[1]]...; a missing step is a `BadAnswer` naming the path."""
    value = payload
    for step in path:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            value = _MISSING
        if value is _MISSING:
            name = what or ".".join(str(p) for p in path)
            raise BadAnswer(f"the answer has no {name}", raw=raw_excerpt(payload))
    return value


def dig_object(payload: Any, *path: str | int, what: str | None = None) -> dict[str, Any]:
    """Like `dig`, for a JSON object: anything else is a `BadAnswer`."""
    value = dig(payload, *path, what=what) if path else payload
    if not isinstance(value, dict):
        name = what or ".".join(str(p) for p in path) or "answer"
        raise BadAnswer(f"the {name} is not a JSON object", raw=raw_excerpt(payload))
    return value


def to_decimal(value: Any, what: str) -> Decimal:
    """Exact money or quantity from a JSON string or number (never via float)."""
    if isinstance(value, bool) or value is None:
        raise BadAnswer(f"{what} is not a number: {value!r}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise BadAnswer(f"{what} is not a number: {excerpt(str(value), 40)!r}") from None
    if not amount.is_finite():
        raise BadAnswer(f"{what} is not a finite number: {excerpt(str(value), 40)!r}")
    problem = size_problem(amount, FIGURE_DIGITS)  # before anyone multiplies or int()s it
    if problem:
        raise BadAnswer(f"{what} {excerpt(str(value), 40)!r} {problem}: out of range")
    return amount


def to_bytes(value: Any, unit: int, what: str) -> int:
    """A data figure in the provider's unit (1, 10**6, 2**20...) as int bytes."""
    amount = to_decimal(value, what)
    if amount < 0:
        raise BadAnswer(f"{what} is negative: {value!r}")
    count = int(amount * unit)
    problem = bytes_problem(count)
    if problem:
        raise BadAnswer(f"{what} {excerpt(str(value), 40)!r} {problem}: out of range")
    return count


def parse_time(value: Any, what: str) -> datetime:
    """An aware UTC datetime from ISO-8601 (offset or Z) or "YYYY-MM-DD HH:MM:SS" (no zone:
    taken as UTC, as Airalo means it)."""
    if not isinstance(value, str):
        raise BadAnswer(f"{what} is not a date: {value!r}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadAnswer(f"{what} is not a date: {excerpt(value, 40)!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def to_count(value: Any, what: str) -> int:
    """A whole non-negative count (texts, minutes) from a JSON number or string."""
    amount = to_decimal(value, what)
    if amount < 0 or amount != amount.to_integral_value():
        raise BadAnswer(f"{what} is not a whole count: {value!r}")
    return int(amount)


def to_currency(value: Any, what: str = "currency") -> str:
    """An ISO 4217 code, upper-cased ("usd" -> "USD")."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z]{3}", value.strip()):
        raise BadAnswer(f"{what} is not a currency code: {value!r}")
    return value.strip().upper()


def _iccid(value: Any) -> str:
    text = re.sub(r"[\s-]", "", str(value)) if isinstance(value, str | int) else ""
    if not re.fullmatch(r"\d{18,22}", text):
        raise ValueError("an ICCID is 18 to 22 digits, such as '8901260123456789012'")
    return text


Iccid = Annotated[str, BeforeValidator(_iccid)]
"""A SIM's ICCID as line option: digits only (spaces and dashes are dropped)."""


def provider_message(payload: Any) -> str | None:
    """The human part of a provider's error body, in the shapes the reference lists:
    `message`, `reason`, `detail`, `error`, `errors[0].detail|title`, `meta.message`."""
    if not isinstance(payload, Mapping):
        return None
    for key in ("message", "reason", "detail", "error_description", "error"):
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    errors = payload.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        for key in ("detail", "title", "message"):
            value = errors[0].get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    meta = payload.get("meta")
    if isinstance(meta, Mapping) and isinstance(meta.get("message"), str):
        return str(meta["message"])
    return None


def raw_excerpt(payload: Any) -> str:
    """A parsed payload as text for `CheckFailed.raw` (bounded)."""
    try:
        text = json.dumps(payload, default=str)
    except (TypeError, ValueError):
        text = repr(payload)
    return text[:RAW_CHARS]


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date; None if unusable."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or utcnow())).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


# ---- time ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """How retries wait: exponential from `base` to `cap` seconds, each delay drawn from
    [delay/2, delay] (jitter, so fifty lines do not retry in step). `sleep` and `clock`
    are injectable so tests never wait for real."""

    base: float = 0.5
    cap: float = 8.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rand: Callable[[], float] = random.random

    def delay(self, attempt: int) -> float:
        """The wait after the `attempt`-th failed attempt (1-based)."""
        ceiling = min(self.cap, self.base * 2 ** (attempt - 1))
        return ceiling / 2 + ceiling / 2 * self.rand()


DEFAULT_BACKOFF = Backoff()
"""Read when a Session is made; tests replace it to make every wait virtual."""


class Budget:
    """The time one check may spend, across all its requests, retries and waits."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self.seconds = seconds
        self._clock = clock
        self.deadline = clock() + seconds
        self.cancelled = False

    def remaining(self) -> float:
        if self.cancelled:
            return 0.0
        return self.deadline - self._clock()

    def cancel(self) -> None:
        """The check was abandoned: no time is left for anything it would still do."""
        self.cancelled = True


# ---- bounded answers -------------------------------------------------------------------
#
# httpx's timeouts bound each socket operation, not a whole answer: a provider that sends
# one byte a second never trips them, and a few kilobytes of nested gzip inflate to
# gigabytes. So every attempt has one deadline for its connect, request, headers and body
# (kept by the connection pool's sockets, `_BoundedBackend`, and again between the body's
# chunks), the body is decoded here as it streams in, counting decoded bytes against a
# cap, and a check abandoned by the cycle has its sockets shut (`Session.abort`).

MAX_RESPONSE_BYTES = 1 << 20
"""Largest answer (decoded) read from a provider: a reading is a few kilobytes; more is a
broken or hostile server. An adapter whose provider documents bigger answers raises it."""
ACCEPT_ENCODING = "gzip, deflate"
"""The content encodings asked for and decoded: one layer, never nested."""
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_ANSWER_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})
_local = threading.local()


class _Refused(Exception):
    """An answer not read to its end: what was wrong with it, for the failure's message."""


class _Attempt:
    """One request's deadline for its whole answer (real monotonic time, whatever clock
    the budget uses) and the sockets it uses, so that another thread can end it."""

    def __init__(self, deadline: float, budget: Budget) -> None:
        self.deadline = deadline
        self.budget = budget
        self._streams: list[_BoundedStream] = []
        self._lock = threading.Lock()

    def timeout(
        self, asked: float | None, late: type[Exception], abandoned: type[Exception]
    ) -> float:
        """What is left of the deadline for one socket operation (at most `asked`)."""
        if self.budget.cancelled:
            raise abandoned("the check was abandoned")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise late("the answer took longer than the check's time budget")
        return left if asked is None else min(asked, left)

    def use(self, stream: _BoundedStream) -> None:
        with self._lock:
            if stream not in self._streams:
                self._streams.append(stream)
            cancelled = self.budget.cancelled
        if cancelled:
            stream.shutdown()

    def abort(self) -> None:
        """End the attempt from another thread: its blocked reads return at once."""
        self.budget.cancel()
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.shutdown()


def _current_attempt() -> _Attempt | None:
    attempt: _Attempt | None = getattr(_local, "attempt", None)
    return attempt


class _BoundedStream(httpcore.NetworkStream):
    """A pooled connection's socket whose every read and write ends by the deadline of the
    attempt using it (the thread's `_Attempt`), and that another thread can shut."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        attempt = _current_attempt()
        if attempt is not None:
            attempt.use(self)
            timeout = attempt.timeout(timeout, httpcore.ReadTimeout, httpcore.ReadError)
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        attempt = _current_attempt()
        if attempt is not None:
            attempt.use(self)
            timeout = attempt.timeout(timeout, httpcore.WriteTimeout, httpcore.WriteError)
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        attempt = _current_attempt()
        if attempt is not None:
            timeout = attempt.timeout(timeout, httpcore.ConnectTimeout, httpcore.ConnectError)
        stream = _BoundedStream(self._inner.start_tls(ssl_context, server_hostname, timeout))
        if attempt is not None:
            attempt.use(stream)
        return stream

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)

    def shutdown(self) -> None:
        """Shut the socket both ways (a read blocked in another thread returns at once);
        the thread using it closes it. The plain socket call, even under TLS: it must not
        touch the TLS object another thread is reading with."""
        sock = self._inner.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _BoundedBackend(httpcore.NetworkBackend):
    """The standard sockets, connected by the attempt's deadline and wrapped as
    `_BoundedStream`: httpcore's documented way to own a pool's network I/O."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        attempt = _current_attempt()
        if attempt is not None:
            timeout = attempt.timeout(timeout, httpcore.ConnectTimeout, httpcore.ConnectError)
        inner = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return self._bounded(inner, attempt)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        attempt = _current_attempt()
        if attempt is not None:
            timeout = attempt.timeout(timeout, httpcore.ConnectTimeout, httpcore.ConnectError)
        return self._bounded(
            self._inner.connect_unix_socket(path, timeout, socket_options), attempt
        )

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)

    @staticmethod
    def _bounded(inner: httpcore.NetworkStream, attempt: _Attempt | None) -> _BoundedStream:
        stream = _BoundedStream(inner)
        if attempt is not None:
            attempt.use(stream)
        return stream


class _BoundedTransport(httpx.HTTPTransport):
    """httpx's own transport, over a connection pool on `_BoundedBackend`."""

    def __init__(self, *, verify: ssl.SSLContext, limits: httpx.Limits) -> None:
        super().__init__(verify=verify, limits=limits)
        self._pool = httpcore.ConnectionPool(
            ssl_context=verify,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_BoundedBackend(),
        )


def _bounded_transport(verify: ssl.SSLContext, limits: httpx.Limits) -> httpx.BaseTransport | None:
    """Our transport, unless the environment names a proxy: a transport of our own would
    make httpx ignore it, so then httpx's proxying transports are kept, and the deadline
    holds between the body's chunks only (a proxy is the operator's own server)."""
    proxies = urllib.request.getproxies()
    if any(proxies.get(scheme) for scheme in ("http", "https", "all")):
        return None
    return _BoundedTransport(verify=verify, limits=limits)


def _content_encoding(response: httpx.Response) -> str:
    """The answer's one content encoding ("" for none); nested or unknown ones refused."""
    names = [
        name.strip().lower()
        for value in response.headers.get_list("Content-Encoding")
        for name in value.split(",")
    ]
    names = [name for name in names if name and name != "identity"]
    if len(names) > 1:
        raise _Refused(f"nested content encodings ({', '.join(names)})")
    if names and names[0] not in _WBITS:
        raise _Refused(f"an unsupported content encoding ({excerpt(names[0], 40)!r})")
    return names[0] if names else ""


class _Body:
    """A body decoded as it arrives, refused past `limit` decoded bytes: the decompressor
    never makes more than the room left (plus one byte, to notice the excess)."""

    def __init__(self, encoding: str, limit: int) -> None:
        self._encoding = encoding
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0
        self._inflater = zlib.decompressobj(_WBITS[encoding]) if encoding else None
        self._first = True

    def feed(self, data: bytes) -> None:
        if self._inflater is None:
            self._keep(data)
            return
        first, self._first = self._first, False
        try:
            self._inflate(data)
        except zlib.error:
            if not (first and self._encoding == "deflate" and not self._chunks):
                raise _Refused(f"a {self._encoding} body that does not decompress") from None
            # "deflate" without its zlib header, as some servers send it (httpx does the same)
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            try:
                self._inflate(data)
            except zlib.error:
                raise _Refused("a deflate body that does not decompress") from None

    def _inflate(self, data: bytes) -> None:
        assert self._inflater is not None
        while data and not self._inflater.eof:
            self._keep(self._inflater.decompress(data, self._limit - self._size + 1))
            data = self._inflater.unconsumed_tail

    def _keep(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            raise _Refused(f"more than {_size_text(self._limit)}")
        if data:
            self._chunks.append(data)

    def content(self) -> bytes:
        return b"".join(self._chunks)


def _size_text(size: int) -> str:
    for unit, factor in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def _read_answer(
    response: httpx.Response, deadline: float, limit: int, sockets_bounded: bool
) -> httpx.Response:
    """Read a streamed answer whole by `deadline` (monotonic), at most `limit` bytes once
    decoded, and return it as a complete response (body decoded, no encoding headers).
    Raises `_Refused` for an answer not worth reading on, `httpx.ReadTimeout` past the
    deadline. The caller closes the streamed response, which drops its connection when
    it was not read to its end. `sockets_bounded`: every socket read ends by the deadline
    (our transport), so a plain answer of a declared size within the limit is read as is,
    the common case, without decoding it a second time."""
    encoding = _content_encoding(response)
    length = response.headers.get("Content-Length", "")
    if not encoding and length.isdigit():
        if int(length) > limit:
            raise _Refused(f"more than {_size_text(limit)} (Content-Length {length})")
        if sockets_bounded:
            response.read()  # h11 reads exactly Content-Length bytes
            return response
    body = _Body(encoding, limit)
    for chunk in response.iter_raw():
        body.feed(chunk)
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout(
                "the answer took longer than the check's time budget", request=response.request
            )
    return httpx.Response(
        response.status_code,
        headers=[
            (name, value)
            for name, value in response.headers.multi_items()
            if name.lower() not in _ANSWER_HEADERS
        ],
        content=body.content(),
        request=response.request,
        extensions={
            k: v for k, v in response.extensions.items() if k in ("http_version", "reason_phrase")
        },
    )


# ---- auth ------------------------------------------------------------------------------


def _reveal(value: SecretStr | str) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


class Auth(ABC):
    """Adds credentials to requests. `renew` is asked once per request after a 401."""

    @abstractmethod
    def headers(self, session: Session, budget: Budget) -> dict[str, str]:
        """The headers that authenticate one request."""

    def renew(self, session: Session, budget: Budget, sent: Mapping[str, str]) -> bool:
        """After a 401 on a request sent with `sent` headers: True if trying again may help."""
        return False

    def secrets(self) -> Iterable[str]:
        """Values to redact from anything shown to a person."""
        return ()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class HeaderAuth(Auth):
    """A static secret header (eSIM Go's `X-API-Key`)."""

    def __init__(self, name: str, value: SecretStr | str) -> None:
        self._name = name
        self._value = SecretStr(_reveal(value))

    def headers(self, session: Session, budget: Budget) -> dict[str, str]:
        return {self._name: self._value.get_secret_value()}

    def secrets(self) -> Iterable[str]:
        return (self._value.get_secret_value(),)


class BearerAuth(HeaderAuth):
    """A static API key sent as a Bearer token (Telnyx)."""

    def __init__(self, token: SecretStr | str) -> None:
        super().__init__("Authorization", f"Bearer {_reveal(token)}")
        self._token = SecretStr(_reveal(token))

    def secrets(self) -> Iterable[str]:
        return (self._token.get_secret_value(),)


class BasicAuth(Auth):
    """HTTP Basic (Hologram `apikey:KEY`, Twilio `SID:token`, 1NCE's token request)."""

    def __init__(self, username: str, password: SecretStr | str) -> None:
        self._username = username
        self._password = SecretStr(_reveal(password))

    def headers(self, session: Session, budget: Budget) -> dict[str, str]:
        pair = f"{self._username}:{self._password.get_secret_value()}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}

    def secrets(self) -> Iterable[str]:
        # The pair too: its Base64 is what the header carries, and what a server echoes.
        password = self._password.get_secret_value()
        return (password, f"{self._username}:{password}")


@dataclass(frozen=True)
class Token:
    """An access token and when it stops working (None: the provider did not say)."""

    value: str = field(repr=False)
    expires_at: datetime | None = None

    @classmethod
    def lasting(cls, value: Any, expires_in: Any) -> Token:
        """From an OAuth-style answer: `expires_in` seconds from now (if it is a number)."""
        if not isinstance(value, str) or not value:
            raise BadAnswer("the token answer has no access token")
        expires_at = None
        if expires_in is not None and not isinstance(expires_in, bool):
            try:
                expires_at = utcnow() + timedelta(seconds=float(expires_in))
            except (TypeError, ValueError, OverflowError):
                expires_at = None
        return cls(value, expires_at)


def token_key(provider: str, account: str, *identity: str) -> str:
    """A token cache key that changes when the base URL or client id does, so a token is
    never sent to another host or used for other credentials."""
    digest = hashlib.sha256("\0".join(identity).encode()).hexdigest()[:16]
    return f"{provider}:{account}:{digest}"


TokenFetcher = Callable[["Session", Budget], Token]


class TokenAuth(Auth):
    """A Bearer token fetched from the provider, cached in the token cache (the database:
    it survives restarts), fetched again when it expires, renewed once on a 401.

    One lock per account: fifty lines that start together make one token request.
    `fetch` should call `session.request(..., authenticate=False, budget=budget)`, map
    refusals with `session.auth_failed(response)`, and return a `Token`.
    """

    def __init__(self, cache: TokenCache, key: str, fetch: TokenFetcher) -> None:
        self._cache = cache
        self._key = key
        self._fetch = fetch
        self._lock = threading.Lock()

    def headers(self, session: Session, budget: Budget) -> dict[str, str]:
        with self._lock:
            value = self._cache.get(self._key)
            if value is None:
                value = self._fetch_locked(session, budget)
            else:
                session.add_secret(value)
        return {"Authorization": f"Bearer {value}"}

    def renew(self, session: Session, budget: Budget, sent: Mapping[str, str]) -> bool:
        with self._lock:
            current = self._cache.get(self._key)
            if current is not None and f"Bearer {current}" != sent.get("Authorization"):
                return True  # another line renewed it meanwhile
            self._cache.delete(self._key)
            self._fetch_locked(session, budget)
        return True

    def _fetch_locked(self, session: Session, budget: Budget) -> str:
        token = self._fetch(session, budget)
        session.add_secret(token.value)
        self._cache.put(self._key, token.value, token.expires_at)
        log.info("token fetched", provider=session.provider, account=session.account, routine=True)
        return token.value


# ---- the session ------------------------------------------------------------------------

RETRY_STATUSES = frozenset({500, 502, 503, 504})


KEEPALIVE = 64
"""Connections an account keeps open between requests (the default concurrency)."""
POOLS = 4
"""Connection pools per account (see Session.__init__)."""


class Session:
    """One account's connection pool and manners. Thread-safe: lines of one account share it.

    `provider` and `account` name the failures ("authentication failed for account travel").
    `timeout` is the per-check budget; one attempt may use at most half of it, so a timeout
    leaves room for a retry. `rate_limit` paces requests (per second) below a documented limit.
    Each attempt's deadline bounds its whole answer, body included, and an answer larger
    than `max_body` bytes once decoded is refused unread (see "bounded answers").
    """

    def __init__(
        self,
        *,
        provider: str,
        account: str,
        base_url: str,
        timeout: timedelta | float,
        auth: Auth | None = None,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        redactor: Redactor | None = None,
        rate_limit: float | None = None,
        backoff: Backoff | None = None,
        transport: httpx.BaseTransport | None = None,
        max_body: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.provider = provider
        self.account = account
        self.base_url = base_url.rstrip("/")
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        if seconds <= 0:
            raise ValueError("timeout must be positive")
        self.timeout = seconds
        self.auth = auth
        self.backoff = backoff or DEFAULT_BACKOFF
        self.redactor = redactor if redactor is not None else Redactor()
        self.redactor.update((*secrets, *(auth.secrets() if auth else ())))
        self.max_body = max_body
        self._interval = 1.0 / rate_limit if rate_limit else 0.0
        self._next_slot = 0.0
        self._cooldown: dict[str, float] = {}
        self._lock = threading.Lock()
        self._attempts: dict[int, _Attempt] = {}
        self._budgets: dict[int, Budget] = {}
        """Per thread: the attempt under way, and the budget of the check it last served."""
        # The cycle's dispatcher bounds an account's checks in flight; the pools must not
        # be narrower, and keep that many connections open for the next cycle. Several
        # small pools, one per group of threads: httpcore scans every connection of a pool
        # on each request, so one wide pool costs far more CPU than a few narrow ones.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=KEEPALIVE // POOLS)
        transports = [transport or _bounded_transport(_tls_context(), limits) for _ in range(POOLS)]
        self._sockets_bounded = all(isinstance(t, _BoundedTransport) for t in transports)
        self._clients = [
            httpx.Client(
                headers={
                    "User-Agent": USER_AGENT,
                    "Accept": "application/json",
                    "Accept-Encoding": ACCEPT_ENCODING,
                    **(headers or {}),
                },
                follow_redirects=False,
                verify=_tls_context(),
                transport=pool_transport,
                limits=limits,
            )
            for pool_transport in transports
        ]
        self._which = threading.local()
        self._turns = itertools.count()

    def __repr__(self) -> str:
        return f"<Session {self.provider} account={self.account!r} base_url={self.base_url!r}>"

    @property
    def _client(self) -> httpx.Client:
        """This thread's pool: threads take pools in turn, and keep theirs."""
        index = getattr(self._which, "index", None)
        if index is None:
            index = self._which.index = next(self._turns) % POOLS
        return self._clients[index]

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def abort(self, thread_id: int) -> None:
        """The check running on that thread was abandoned (past `check_timeout`): shut the
        sockets its request is using, so the thread ends now rather than when the provider
        lets go, and spend its budget, so it sends nothing more."""
        with self._lock:
            attempt = self._attempts.get(thread_id)
            budget = self._budgets.get(thread_id)
        if budget is not None:
            budget.cancel()
        if attempt is not None:
            attempt.abort()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers for adapters --

    def budget(self) -> Budget:
        """A fresh deadline for one check: create it at the start of `read()`."""
        return Budget(self.timeout, self.backoff.clock)

    def url(self, path: str) -> str:
        """An absolute URL as is (Twilio's second host), else the path under `base_url`."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def add_secret(self, value: str) -> None:
        """Redact this value, in every form, from every message and excerpt (tokens as they
        are fetched); the redactor is the adapters' context's, so the cycle redacts it too."""
        self.redactor.add(value)

    def redact(self, text: str) -> str:
        return self.redactor.text(text)

    # -- reads --

    def get_json(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        budget: Budget | None = None,
        errors: Mapping[int, str] | None = None,
    ) -> Any:
        """GET and parse JSON, retried; any non-2xx raises a mapped failure. `errors` gives
        messages for statuses the caller understands (404: "unknown ICCID ...")."""
        response = self.request("GET", path, params=params, headers=headers, budget=budget)
        self.check_status(response, errors)
        return self.parse_json(response)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        budget: Budget | None = None,
        authenticate: bool = True,
    ) -> httpx.Response:
        """Send with retries: 5xx, timeouts and connection errors back off and retry, 429
        waits for Retry-After, a 401 renews the token once, all inside the budget. Returns
        the final response whatever its status (see `check_status`). Only for requests that
        are safe to repeat: reads and token requests."""
        budget = self._serving(budget)
        url = self.url(path)
        key = f"{method} {url}"
        attempts = 0
        renewed = False
        problem = ""
        last: httpx.Response | None = None
        while True:
            self._await_cooldown(key, budget)
            self._pace(budget)
            timeout = self._attempt_timeout(budget, attempts, problem)
            sent = self._headers(headers, budget, authenticate)
            attempts += 1
            wait: float | None = None
            try:
                response = self._send(
                    method,
                    url,
                    budget,
                    timeout,
                    params=params,
                    headers=sent,
                    json=json,
                    data=data,
                    files=files,
                )
            except httpx.TimeoutException:
                problem, last = f"no answer within {timeout:.1f}s", None
            except httpx.RequestError as exc:
                problem, last = f"connection failed ({type(exc).__name__})", None
            else:
                status = response.status_code
                if status == 401 and authenticate and self.auth is not None and not renewed:
                    renewed = self.auth.renew(self, budget, sent)
                    if renewed:
                        continue
                if status == 429:
                    self._rate_limited(key, response, budget, attempts)
                    continue
                if status not in RETRY_STATUSES:
                    return response
                problem = f"HTTP {status}: {self._detail(response)}"
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                last = response
            delay = wait if wait is not None else self.backoff.delay(attempts)
            if delay >= budget.remaining():
                raise ProviderUnavailable(
                    self._gave_up(problem, attempts, budget),
                    raw=self.redactor.excerpt(last.text, RAW_CHARS) if last is not None else None,
                    status=last.status_code if last is not None else None,
                )
            log.info(
                "retrying",
                provider=self.provider,
                account=self.account,
                path=urlsplit(url).path,
                problem=problem,
                attempt=attempts,
                delay=round(delay, 2),
            )
            self.backoff.sleep(delay)

    # -- requests that must not repeat --

    def send_once(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        budget: Budget | None = None,
        reauth: bool = False,
    ) -> httpx.Response:
        """Send exactly once, never retried: for requests that spend money (a top-up has no
        idempotency key: a blind retry buys twice). Raises `ProviderUnavailable` when it was
        certainly not sent, `OutcomeUnknown` when it may have been processed. With `reauth`,
        a 401 renews the token and sends again once: a 401 means it was not processed.
        The response is returned unmapped: use `check_status` and `parse_json`."""
        budget = self._serving(budget)
        url = self.url(path)
        key = f"{method} {url}"
        renewed = False
        while True:
            self._await_cooldown(key, budget)
            self._pace(budget)
            timeout = self._attempt_timeout(budget, 0, "not sent")
            sent = self._headers(headers, budget, authenticate=True)
            try:
                response = self._send(
                    method,
                    url,
                    budget,
                    timeout,
                    params=params,
                    headers=sent,
                    json=json,
                    data=data,
                    files=files,
                )
            except BadAnswer as exc:
                raise OutcomeUnknown(
                    f"{exc}; the {method} may have been processed: verify before sending it again",
                    status=exc.status,
                ) from None
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                raise ProviderUnavailable(
                    f"{self.provider} could not be reached for account {self.account} "
                    f"({type(exc).__name__}); the request was not sent"
                ) from None
            except httpx.RequestError as exc:
                raise OutcomeUnknown(
                    f"{self.provider} did not confirm a {method} for account {self.account} "
                    f"({type(exc).__name__}); it may have been processed: verify before "
                    "sending it again"
                ) from None
            if response.status_code == 401 and reauth and self.auth is not None and not renewed:
                renewed = self.auth.renew(self, budget, sent)
                if renewed:
                    continue
            return response

    # -- one attempt --

    def _serving(self, budget: Budget | None) -> Budget:
        """The check's budget (a fresh one if none), remembered for `abort`."""
        budget = budget or self.budget()
        with self._lock:
            self._budgets[threading.get_ident()] = budget
        return budget

    def _send(
        self, method: str, url: str, budget: Budget, timeout: float, **content: Any
    ) -> httpx.Response:
        """Send once and read the whole answer within `timeout` seconds: connect, headers
        and body (a deadline on the whole answer, not on each read), at most `max_body`
        bytes once decoded. Raises httpx's errors (past the deadline: a timeout) and
        `BadAnswer` for an answer refused unread."""
        attempt = _Attempt(time.monotonic() + timeout, budget)
        thread = threading.get_ident()
        outer = _current_attempt()
        _local.attempt = attempt
        with self._lock:
            self._attempts[thread] = attempt
        try:
            client = self._client
            request = client.build_request(method, url, timeout=timeout, **content)
            streamed = client.send(request, stream=True)
            try:
                return _read_answer(
                    streamed, attempt.deadline, self.max_body, self._sockets_bounded
                )
            except _Refused as exc:
                raise BadAnswer(
                    f"{self.provider} sent {exc} for account {self.account} "
                    f"(HTTP {streamed.status_code}): refused unread",
                    status=streamed.status_code,
                ) from None
            finally:
                streamed.close()
        finally:
            _local.attempt = outer
            with self._lock:
                if outer is None:
                    self._attempts.pop(thread, None)
                else:
                    self._attempts[thread] = outer

    # -- mapping answers --

    def check_status(
        self, response: httpx.Response, errors: Mapping[int, str] | None = None
    ) -> None:
        """Raise the failure a non-2xx response means; return quietly on 2xx."""
        status = response.status_code
        if 200 <= status < 300:
            return
        raw = self.redactor.excerpt(response.text, RAW_CHARS)
        if errors and status in errors:
            raise ProviderRefused(errors[status], raw=raw, status=status)
        if status in (401, 403):
            raise self.auth_failed(response)
        if status == 429:
            seconds = retry_after_seconds(response.headers.get("Retry-After"))
            retry_at = utcnow() + timedelta(seconds=seconds if seconds is not None else 60)
            raise RateLimited(self._rate_message(retry_at), retry_at=retry_at, raw=raw)
        if status >= 500:
            raise ProviderUnavailable(
                f"{self.provider} server error for account {self.account} (HTTP {status}): "
                f"{self._detail(response)}",
                raw=raw,
                status=status,
            )
        if 300 <= status < 400:
            location = response.headers.get("Location", "?")
            raise ProviderRefused(
                f"{self.provider} redirected to {excerpt(self.redact(location))} "
                f"(HTTP {status}): check base_url for account {self.account}",
                raw=raw,
                status=status,
            )
        raise ProviderRefused(
            f"{self.provider} refused the request for account {self.account} "
            f"(HTTP {status}): {self._detail(response)}",
            raw=raw,
            status=status,
        )

    def auth_failed(self, response: httpx.Response | None = None) -> AuthenticationFailed:
        """The failure for refused credentials, with the provider's reason when it gives one."""
        message = f"authentication failed for account {self.account}"
        raw = None
        status = None
        if response is not None:
            status = response.status_code
            raw = self.redactor.excerpt(response.text, RAW_CHARS)
            message += f" ({self.provider}, HTTP {status}: {self._detail(response)})"
        return AuthenticationFailed(message, raw=raw, status=status)

    def parse_json(self, response: httpx.Response) -> Any:
        """The body as JSON, numbers with a fraction as Decimal (money never passes through
        float). HTML, an empty body or broken JSON is a `BadAnswer` with an excerpt."""
        text = response.text
        stripped = text.lstrip()
        content_type = response.headers.get("Content-Type", "").lower()
        if not stripped:
            kind = "an empty answer"
        elif "html" in content_type or stripped.startswith("<"):
            kind = "HTML"
        else:
            try:
                return json.loads(text, parse_float=Decimal, parse_constant=_no_constant)
            except ValueError:
                kind = "malformed JSON"
        shown = self.redact(text)
        log.warning(
            "unreadable answer",
            provider=self.provider,
            account=self.account,
            path=response.request.url.path,
            status=response.status_code,
            kind=kind,
            excerpt=excerpt(shown, 200),
        )
        message = (
            f"{self.provider} sent {kind} instead of JSON for account {self.account} "
            f"(HTTP {response.status_code})"
        )
        if stripped:
            message += f": {excerpt(shown)!r}"
        raise BadAnswer(message, raw=shown[:RAW_CHARS], status=response.status_code)

    # -- internals --

    def _detail(self, response: httpx.Response) -> str:
        try:
            payload = json.loads(response.text, parse_float=Decimal)
        except ValueError:
            payload = None
        message = provider_message(payload)
        if message is None and isinstance(payload, Mapping) and "code" in payload:
            message = f"code {payload['code']}"
        text = message or response.reason_phrase or "no details"
        if message is None and response.text.strip():
            text = excerpt(self.redact(response.text))
        return excerpt(self.redact(text), 160)

    def _headers(
        self, extra: Mapping[str, str] | None, budget: Budget, authenticate: bool
    ) -> dict[str, str]:
        headers = dict(extra or {})
        if authenticate and self.auth is not None:
            headers.update(self.auth.headers(self, budget))
        return headers

    def _attempt_timeout(self, budget: Budget, attempts: int, problem: str) -> float:
        if budget.remaining() <= 0.01:
            raise ProviderUnavailable(self._gave_up(problem or "no time left", attempts, budget))
        return min(budget.remaining(), budget.seconds / 2)

    def _gave_up(self, problem: str, attempts: int, budget: Budget) -> str:
        return (
            f"{self.provider} did not answer usefully for account {self.account}: {problem} "
            f"({attempts} attempt{'s' if attempts != 1 else ''} within the check's "
            f"{budget.seconds:g}s budget)"
        )

    def _pace(self, budget: Budget) -> None:
        if not self._interval:
            return
        with self._lock:
            now = self.backoff.clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
        wait = slot - now
        if wait > budget.remaining():
            raise ProviderUnavailable(
                f"too many requests queued for {self.provider} account {self.account}: "
                f"the check's {budget.seconds:g}s budget ran out waiting for a slot"
            )
        if wait > 0:
            self.backoff.sleep(wait)

    def _await_cooldown(self, key: str, budget: Budget) -> None:
        with self._lock:
            until = self._cooldown.get(key)
        if until is None:
            return
        wait = until - self.backoff.clock()
        if wait <= 0:
            with self._lock:
                self._cooldown.pop(key, None)
            return
        if wait >= budget.remaining():
            retry_at = utcnow() + timedelta(seconds=wait)
            raise RateLimited(self._rate_message(retry_at), retry_at=retry_at, status=None)
        self.backoff.sleep(wait)

    def _rate_limited(
        self, key: str, response: httpx.Response, budget: Budget, attempts: int
    ) -> None:
        """Wait out a 429 inside the budget, else fail saying when to try again."""
        seconds = retry_after_seconds(response.headers.get("Retry-After"))
        if seconds is None:
            seconds = self.backoff.delay(attempts)
        with self._lock:
            self._cooldown[key] = self.backoff.clock() + seconds
        if seconds >= budget.remaining():
            retry_at = utcnow() + timedelta(seconds=seconds)
            raise RateLimited(
                self._rate_message(retry_at),
                retry_at=retry_at,
                raw=self.redactor.excerpt(response.text, RAW_CHARS),
            )
        log.info(
            "rate limited: waiting",
            provider=self.provider,
            account=self.account,
            path=response.request.url.path,
            seconds=round(seconds, 2),
        )
        self.backoff.sleep(seconds)
        with self._lock:
            self._cooldown.pop(key, None)

    def _rate_message(self, retry_at: datetime) -> str:
        return (
            f"{self.provider} is rate limiting account {self.account}: retry after "
            f"{retry_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
        )


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every account: building one loads the CA bundle."""
    return httpx.create_ssl_context()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# ---- top-ups: requests that spend money ------------------------------------------------


def send_top_up(
    session: Session,
    method: str,
    path: str,
    *,
    what: str,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    files: Mapping[str, Any] | None = None,
    refusals: Mapping[int, str] | None = None,
) -> httpx.Response:
    """Send a top-up order exactly once; return its answer if 2xx or a 4xx the caller can
    explain better (business errors), else raise. `refusals` says what 4xx statuses mean
    for this provider ("the SIM has expired"), ahead of the generic reading below.

    `TopUpFailed` (nothing bought): not sent at all; 401/403 (credentials refused before the
    order was looked at); 429; a redirect other than 303. `TopUpUnknown` (money may be
    spent): the answer was lost after sending; any 5xx (a gateway may time out while the
    order goes through); 303 (see other: the order was acted on). A 401 renews the token and
    sends once more, since a refused token proves the order was not processed. The one
    attempt may use the account's whole timeout: reads get half, to leave room for retries
    that an order never has. `what` names the order in messages ("the Airalo top-up ...").
    """
    budget = Budget(session.timeout * 2, session.backoff.clock)
    try:
        response = session.send_once(
            method, path, params=params, json=json, files=files, budget=budget, reauth=True
        )
    except OutcomeUnknown as exc:
        raise TopUpUnknown(f"{what} may have gone through: {exc}") from None
    except CheckFailed as exc:  # not sent, or refused credentials: nothing was processed
        raise TopUpFailed(f"{what} did not go through: {exc}; nothing was bought") from None
    status = response.status_code
    detail = session._detail(response)
    if status >= 500 or status == 303:
        raise TopUpUnknown(
            f"{what} may have gone through: {session.provider} answered HTTP {status} "
            f"({detail}); it is not sent again: check the account's orders"
        )
    if refusals and status in refusals and 400 <= status < 500:
        raise TopUpFailed(
            f"{what} was refused: {refusals[status]} (HTTP {status}: {detail}); nothing was bought"
        )
    if status in (401, 403):
        raise TopUpFailed(
            f"{what} was refused: {session.auth_failed(response)}; check the credentials "
            "(and the allowed IP addresses); nothing was bought"
        )
    if status == 429:
        raise TopUpFailed(
            f"{what} was refused: {session.provider} is rate limiting account "
            f"{session.account} ({detail}); nothing was bought"
        )
    if 300 <= status < 400:
        location = excerpt(session.redact(response.headers.get("Location", "?")))
        raise TopUpFailed(
            f"{what} was redirected to {location} (HTTP {status}): check base_url for account "
            f"{session.account}; nothing was bought"
        )
    return response


def top_up_refused(session: Session, response: httpx.Response, what: str) -> TopUpFailed:
    """A 4xx answer to an order as a failure a person can read: nothing was bought."""
    return TopUpFailed(
        f"{what} was refused (HTTP {response.status_code}): {session._detail(response)}; "
        "nothing was bought"
    )


def top_up_answer(session: Session, response: httpx.Response, what: str) -> Any:
    """The JSON of a 2xx answer to an order. Unreadable is `TopUpUnknown`: a proxy or a
    captive portal may have answered, or the provider may have bought and then garbled."""
    try:
        return session.parse_json(response)
    except BadAnswer as exc:
        raise TopUpUnknown(
            f"{what} may have gone through, but the answer is unreadable: {exc}"
        ) from None


# ---- adapter base -----------------------------------------------------------------------


def _base_url(value: str) -> str:
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("base_url must be an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError("base_url cannot carry a query or a fragment")
    return url


_USER_KEYS = ("username", "user", "client_id", "account_sid")
"""Account keys that name the user half of a provider's credentials."""


BaseUrl = Annotated[str, AfterValidator(_base_url)]
"""A URL prefix: everything before the provider's documented paths, no trailing slash."""


class HttpAccountOptions(BaseModel):
    """Keys every REST account takes; a provider's subclass adds credentials and sets the
    `base_url` default. Inputs stay out of validation errors: they may be secrets."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    base_url: BaseUrl = Field(description="everything before the documented API paths")
    timeout: PositiveDuration = Field(
        default=timedelta(seconds=20),
        description="time budget of one check, retries included",
    )

    credential_keys: ClassVar[str | None] = None
    """How a config error names the keys that carry the credentials; by default the
    account's secret keys and its user key, in the order they are declared."""

    @field_validator("*")
    @classmethod
    def _no_userinfo(cls, value: Any, info: ValidationInfo) -> Any:
        """A `user:password@` in a base URL would replace the configured credentials
        (httpx sends it as Basic auth) and be shown wherever the URL is: refuse it."""
        name = info.field_name or ""
        if name.endswith("base_url") and isinstance(value, str) and "@" in urlsplit(value).netloc:
            raise ValueError(
                f"{name} cannot carry a user or password (it would override the account's "
                f"credentials): remove the `user:password@` and set {cls._credential_keys()}"
            )
        return value

    @classmethod
    def _credential_keys(cls) -> str:
        if cls.credential_keys:
            return cls.credential_keys
        keys = [
            f"`{name}`"
            for name, f in cls.model_fields.items()
            if name in _USER_KEYS or "SecretStr" in str(f.annotation)
        ]
        if not keys:
            return "the provider's credential keys"
        return keys[0] if len(keys) == 1 else ", ".join(keys[:-1]) + " and " + keys[-1]


class HttpAdapter(Adapter):
    """An adapter over one account's REST API: one `Session` per account, shared by its
    lines through the context. Subclasses set `provider`, `AccountOptions` and `make_auth`."""

    provider: ClassVar[str] = "HTTP"
    """How messages name the provider ("Airalo")."""
    rate_limit: ClassVar[float | None] = None
    """Requests per second per account, below a documented limit."""
    max_response_bytes: ClassVar[int] = MAX_RESPONSE_BYTES
    """Largest answer read (decoded); raise it only where the provider documents bigger."""

    def __init__(
        self,
        line_id: str,
        options: Any,
        context: AdapterContext,
        account: AccountRef | None = None,
    ) -> None:
        if account is None:
            raise ValueError(
                f"the {self.name} adapter reads through an account: give line {line_id!r} "
                "an `account` whose provider is " + repr(self.name)
            )
        super().__init__(line_id, options, context, account)
        self.account_ref = account

    @property
    def session(self) -> Session:
        """The account's session, made by the first line that needs it."""
        key = (__name__, self.name, self.account_ref.name)
        return self.context.shared(key, self.make_session)

    def make_session(self) -> Session:
        options = self.account_ref.options
        return Session(
            provider=self.provider,
            account=self.account_ref.name,
            base_url=options.base_url,
            timeout=options.timeout,
            auth=self.make_auth(),
            secrets=_secret_values(options),
            redactor=self.context.redactor,
            rate_limit=self.rate_limit,
            max_body=self.max_response_bytes,
        )

    def make_auth(self) -> Auth | None:
        return None

    def reading(self, **fields: Any) -> Reading:
        """A Reading of this line, checked now."""
        return Reading(line=self.line_id, checked_at=utcnow(), **fields)


def _secret_values(options: BaseModel) -> list[str]:
    return [
        value.get_secret_value()
        for value in (getattr(options, name) for name in type(options).model_fields)
        if isinstance(value, SecretStr)
    ]
