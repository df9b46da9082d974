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
import functools
import hashlib
import itertools
import json
import logging
import math
import random
import re
import ssl
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, ClassVar
from urllib.parse import quote, urlsplit

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
from monitor.model import Reading, utcnow
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
        raise BadAnswer(f"{what} is not a finite number: {value!r}")
    return amount


def to_bytes(value: Any, unit: int, what: str) -> int:
    """A data figure in the provider's unit (1, 10**6, 2**20...) as int bytes."""
    amount = to_decimal(value, what)
    if amount < 0:
        raise BadAnswer(f"{what} is negative: {value!r}")
    return int(amount * unit)


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

    def remaining(self) -> float:
        return self.deadline - self._clock()


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
        log.info("token fetched", provider=session.provider, account=session.account)
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
        self._interval = 1.0 / rate_limit if rate_limit else 0.0
        self._next_slot = 0.0
        self._cooldown: dict[str, float] = {}
        self._lock = threading.Lock()
        # The cycle's dispatcher bounds an account's checks in flight; the pools must not
        # be narrower, and keep that many connections open for the next cycle. Several
        # small pools, one per group of threads: httpcore scans every connection of a pool
        # on each request, so one wide pool costs far more CPU than a few narrow ones.
        self._clients = [
            httpx.Client(
                headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
                follow_redirects=False,
                verify=_tls_context(),
                transport=transport,
                limits=httpx.Limits(
                    max_connections=None, max_keepalive_connections=KEEPALIVE // POOLS
                ),
            )
            for _ in range(POOLS)
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
        budget = budget or self.budget()
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
                response = self._client.request(
                    method,
                    url,
                    params=params,
                    headers=sent,
                    json=json,
                    data=data,
                    files=files,
                    timeout=timeout,
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
        budget = budget or self.budget()
        url = self.url(path)
        key = f"{method} {url}"
        renewed = False
        while True:
            self._await_cooldown(key, budget)
            self._pace(budget)
            timeout = self._attempt_timeout(budget, 0, "not sent")
            sent = self._headers(headers, budget, authenticate=True)
            try:
                response = self._client.request(
                    method,
                    url,
                    params=params,
                    headers=sent,
                    json=json,
                    data=data,
                    files=files,
                    timeout=timeout,
                )
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
