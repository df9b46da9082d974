"""The status page's routes, behind its login: the pages, the JSON API, the actions.

`App` hands here every request that is not for the relay or the webhooks (they keep their
own tokens and signatures whatever `[http] auth` says). Who asks is settled first:

- auth = "password": a session cookie (HttpOnly, SameSite=Lax, Secure when `public_url`
  is https; only its hash is stored) made by logging in at /login; scripts send Basic
  auth with the same user and password, or `Authorization: Bearer TOKEN` of
  `esim-monitor http token`. Failed logins (form or Basic) are limited per client
  address (behind a trusted proxy, the client it names), far below `rate`: each is a
  password guess. Without `user` and `password_hash` every
  page answers 503 saying how to set them.
- auth = "proxy": the reverse proxy names the user in `proxy_user_header`, believed only
  from a peer in `trusted_proxies`; a bearer token works too.
- auth = "none": anyone (config validation allows it only on a loopback `listen`).

An alert's action link (`/a/TOKEN`, `monitor.links`) needs no login whatever `auth` says:
its signed token is the right to act. Its GET only shows what it will do (link previewers
fetch URLs); its one button POSTs and acts, once, committed before the answer.

A browser that is not logged in is sent to /login; an API call gets 401. Actions are POST
forms carrying the CSRF token of the session (an HMAC under the server's key), so another
site cannot make a logged-in browser act; a Basic or bearer caller reads the API and acts
on nothing. Each action is committed before its answer, a redirect back to the line page.
This module knows no SQL: the data side is `monitor.dashboard.Dashboard` (`WebSink`), the
HTML is `monitor.http.pages`. Every answer is redacted of the configured secrets once more.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.cookies import CookieError, SimpleCookie
from typing import Protocol
from urllib.parse import parse_qsl, quote

import structlog

from monitor.config import Settings
from monitor.dashboard import ActionRefused
from monitor.errors import MonitorError, UnitError
from monitor.http import pages
from monitor.http.app import Request, Response
from monitor.http.auth import (
    Link,
    LinkError,
    LinkExpired,
    check_password,
    csrf_ok,
    csrf_token,
    new_token,
    token_hash,
)
from monitor.http.proxies import address, client_address, trusted
from monitor.links import Done, LinkUsed
from monitor.manual import FigureRefused, ManualFigures
from monitor.model import utcnow
from monitor.rows import StatusJson, dumps, event_rows, history_rows, iso, status_rows
from monitor.store import EventRow, HistoryRow, LineStatus, Recharge
from monitor.units import parse_duration

log = structlog.get_logger("monitor.http")

SESSION_COOKIE = "esim_monitor_session"
CSRF_KEY = "csrf"
"""The name of the server's key CSRF tokens are made with (`store.web.key`)."""
LOGIN_FAILURES = 5
LOGIN_WINDOW = 15 * 60.0
"""Failed logins allowed per address in that many seconds (a guess each: far below `rate`)."""
MAX_SNOOZE = timedelta(days=366)

_LINE = r"(?P<line>[a-z0-9][a-z0-9_-]{0,63})"
_LINE_PAGE = re.compile(rf"/lines/{_LINE}/?")
_ACTION = re.compile(rf"/lines/{_LINE}/(?P<action>snooze|ack|unsnooze|record|check)/?")
_API_LINE = re.compile(rf"/api/lines/{_LINE}/?")
_API_HISTORY = re.compile(rf"/api/lines/{_LINE}/history/?")
_LINK = re.compile(r"/a/(?P<token>[A-Za-z0-9_-]{1,3000}\.[A-Za-z0-9_-]{1,100})/?")
_NEXT = re.compile(r"/(?![/\\])[A-Za-z0-9/_.~%?&=+-]{0,500}")
"""Where a login may send the browser on: a path of this server, never another site."""
_HTML = "text/html; charset=utf-8"
_JSON = "application/json"
_PAGE_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)
_NO_STORE = (("Cache-Control", "no-store"),)
"""A link's page: neither what it offers nor what it did is kept by a cache."""


class WebSink(Protocol):
    """What the routes read and do (`monitor.dashboard.Dashboard`)."""

    @property
    def settings(self) -> Settings: ...

    def redacted(self, text: str) -> str: ...

    def status(self) -> dict[str, LineStatus]: ...

    def history(self, line: str, since: datetime) -> list[HistoryRow]: ...

    def events(self, since: datetime, line: str | None = None) -> list[EventRow]: ...

    def recharges(self, line: str) -> list[Recharge]: ...

    def last_raw(self, line: str) -> str | None: ...

    def key(self, name: str) -> bytes: ...

    def open_session(self, id_hash: str, user: str, until: datetime) -> None: ...

    def session_user(self, id_hash: str) -> str | None: ...

    def close_session(self, id_hash: str) -> None: ...

    def token_name(self, token_hash: str) -> str | None: ...

    def snooze(self, line: str, duration: timedelta) -> str: ...

    def ack(self, line: str) -> str: ...

    def unsnooze(self, line: str) -> str: ...

    def record(self, line: str, figures: ManualFigures) -> str: ...

    def check(self, line: str) -> str: ...

    def link(self, token: str) -> Link: ...

    def follow(self, token: str, snooze: timedelta | None) -> Done: ...


@dataclass(frozen=True)
class Who:
    """Who a request comes from. `csrf_subject` is what its CSRF token is made of (the
    session id, the proxy's user, anyone); None for a Basic or bearer caller, who reads
    the API but acts on nothing."""

    user: str
    csrf_subject: str | None = None
    session: str | None = None


class Refused(Exception):
    """A request answered before it reaches its route (a bad form, a failed login)."""

    def __init__(self, response: Response) -> None:
        self.response = response


class LoginFailures:
    """Failed logins per address in a sliding window; an address past `count` waits until
    its oldest failure leaves the window. The oldest addresses are forgotten past
    `max_sources`."""

    def __init__(
        self,
        count: int = LOGIN_FAILURES,
        window: float = LOGIN_WINDOW,
        clock: Callable[[], float] = time.monotonic,
        max_sources: int = 10_000,
    ) -> None:
        self.count, self.window, self._clock, self._max = count, window, clock, max_sources
        self._failed: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, source: str) -> float | None:
        """None when the address may try; else the seconds until it may."""
        now = self._clock()
        with self._lock:
            times = self._failed.get(source)
            if times is None:
                return None
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) < self.count:
                return None
            return times[0] + self.window - now

    def failed(self, source: str) -> None:
        with self._lock:
            times = self._failed.pop(source, deque())
            times.append(self._clock())
            while len(times) > self.count:
                times.popleft()
            self._failed[source] = times
            while len(self._failed) > self._max:
                self._failed.popitem(last=False)


class Web:
    def __init__(self, data: WebSink, failures: LoginFailures | None = None) -> None:
        self.data = data
        self.failures = failures or LoginFailures()
        self._status_json = StatusJson()

    def handle(self, request: Request) -> Response:
        try:
            return self._handle(request)
        except Refused as refused:
            return refused.response

    def _handle(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/static/"):
            return self._asset(request)
        if path.startswith("/a/"):
            return self._link(request, path)
        http = self.data.settings.http
        missing = http.login_missing()
        if missing is not None:
            return Response(503, missing)
        if path == "/login":
            return self._login(request)
        who = self._who(request)
        api = path == "/api" or path.startswith("/api/")
        if who is None:
            if api:
                return Response(
                    401,
                    "log in: send Basic auth, or Authorization: Bearer TOKEN "
                    "(esim-monitor http token)",
                    (("WWW-Authenticate", 'Bearer realm="esim-monitor"'),),
                )
            back = path != "/" and request.method == "GET"  # a POST's path is no page
            if http.auth == "proxy":
                return Response(401, "no user named by a trusted proxy: open the page through it")
            return _see_other("/login" + (f"?next={quote(path)}" if back else ""))
        if api:
            if request.method != "GET":
                return Response(405, "the API only reads: use GET")
            return self._api(request)
        if path == "/logout":
            return self._logout(request, who)
        action = _ACTION.fullmatch(path)
        if action is not None:
            return self._act(request, who, action["line"], action["action"])
        if request.method != "GET":
            return Response(405, "use GET")
        if path == "/":
            return self._overview(request, who)
        page = _LINE_PAGE.fullmatch(path)
        if page is not None:
            return self._line_page(request, who, page["line"])
        return Response(404, f"no such page {path[:200]!r}")

    # ---- who asks --------------------------------------------------------------------

    def _who(self, request: Request) -> Who | None:
        http = self.data.settings.http
        if http.auth == "none":
            return Who("anyone", csrf_subject="anyone")
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            name = self.data.token_name(token_hash(value.strip()))
            if name is None:
                raise Refused(Response(401, "unknown token"))
            return Who(f"token {name}")
        if http.auth == "proxy":
            return self._proxied(request)
        if scheme.lower() == "basic":
            return self._basic(request, value.strip())
        session = _cookie(request, SESSION_COOKIE)
        if session:
            user = self.data.session_user(token_hash(session))
            if user is not None:
                return Who(user, csrf_subject=session, session=session)
        return None

    def _proxied(self, request: Request) -> Who | None:
        """The user a trusted proxy names; from any other peer the header is never read
        (anyone could send it)."""
        http = self.data.settings.http
        peer = address(request.remote)
        if peer is None or not trusted(peer, http.trusted_proxies):
            return None
        user = request.headers.get(http.proxy_user_header.lower(), "").strip()
        if not user or len(user) > 256:
            return None
        return Who(user, csrf_subject=f"proxy\n{user}")

    def _basic(self, request: Request, value: str) -> Who:
        self._not_blocked(request)
        try:
            user, colon, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, colon, password = "", "", ""
        if not colon or not self._password_ok(user, password):
            self.failures.failed(self._client(request))
            raise Refused(
                Response(
                    401,
                    "wrong user or password",
                    (("WWW-Authenticate", 'Bearer realm="esim-monitor"'),),
                )
            )
        return Who(user)

    def _password_ok(self, user: str, password: str) -> bool:
        http = self.data.settings.http
        assert http.user is not None and http.password_hash is not None
        right_user = hmac.compare_digest(user.encode(), http.user.encode())
        # the hash is always computed: a wrong user name takes as long as a wrong password
        right_password = check_password(password, http.password_hash.get_secret_value())
        return right_user and right_password

    def _client(self, request: Request) -> str:
        """Who a failed login counts against: the client a trusted proxy names."""
        return client_address(request, self.data.settings.http.trusted_proxies)

    def _not_blocked(self, request: Request) -> None:
        client = self._client(request)
        wait = self.failures.wait(client)
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            raise Refused(
                Response(
                    429,
                    f"too many failed logins from {client}: retry in {seconds} s",
                    (("Retry-After", str(seconds)),),
                )
            )

    # ---- login and logout ------------------------------------------------------------

    def _login(self, request: Request) -> Response:
        http = self.data.settings.http
        if http.auth != "password":
            return _see_other("/")
        if request.method == "GET":
            return self._page(200, pages.login(next_path=_next(request.query.get("next"))))
        if request.method != "POST":
            return Response(405, "use GET or POST")
        self._not_blocked(request)
        form = _form(request)
        next_path = _next(form.get("next"))
        if not self._password_ok(form.get("user", ""), form.get("password", "")):
            self.failures.failed(self._client(request))
            log.warning("failed login", remote=self._client(request))
            page = pages.login(failed="Wrong user or password.", next_path=next_path)
            return self._page(401, page)
        session = new_token()
        user = form.get("user", "")
        self.data.open_session(token_hash(session), user, utcnow() + http.session_expiry)
        log.info("logged in", user=user, remote=self._client(request))
        seconds = int(http.session_expiry.total_seconds())
        return _see_other(next_path, self._cookie(session, seconds))

    def _logout(self, request: Request, who: Who) -> Response:
        if request.method != "POST":
            return Response(405, "use POST (the page's Log out button)")
        self._csrf(request, who, _form(request))
        if who.session is not None:
            self.data.close_session(token_hash(who.session))
        return _see_other("/login", self._cookie("", 0))

    def _cookie(self, value: str, max_age: int) -> str:
        secure = (self.data.settings.http.public_url or "").startswith("https://")
        return f"{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax" + (
            "; Secure" if secure else ""
        )

    def _csrf(self, request: Request, who: Who, form: Mapping[str, str]) -> None:
        if who.csrf_subject is None:
            raise Refused(Response(403, "actions need a logged-in session (the page's forms)"))
        if not csrf_ok(self.data.key(CSRF_KEY), who.csrf_subject, form.get("csrf", "")):
            raise Refused(Response(403, "missing or wrong CSRF token: reload the page"))

    def _csrf_of(self, who: Who) -> str | None:
        if who.csrf_subject is None:
            return None
        return csrf_token(self.data.key(CSRF_KEY), who.csrf_subject)

    # ---- pages -----------------------------------------------------------------------

    def _overview(self, request: Request, who: Who) -> Response:
        settings = self.data.settings
        page = pages.overview(
            settings,
            self.data.status(),
            utcnow(),
            pages.Filter.of(request.query),
            csrf=self._csrf_of(who),
            user=self._shown_user(who),
        )
        return self._page(200, page)

    def _line_page(self, request: Request, who: Who, line: str) -> Response:
        settings = self.data.settings
        if line not in settings.lines:
            return Response(404, f"no line {line!r} is configured")
        csrf = self._csrf_of(who)
        if csrf is None:
            return Response(403, "the line page needs a logged-in session")
        now = utcnow()
        window = request.query.get("window", "7d")
        window = window if window in pages.WINDOWS else "7d"
        since = now - pages.WINDOWS[window]
        status = self.data.status().get(line) or LineStatus(line)
        page = pages.line_page(
            settings,
            status,
            self.data.history(line, since),
            self.data.events(since, line),
            self.data.recharges(line),
            self.data.last_raw(line),
            now,
            window,
            csrf=csrf,
            user=self._shown_user(who),
        )
        return self._page(200, page)

    def _shown_user(self, who: Who) -> str | None:
        """The log-out button is for a session; proxy and open pages have none."""
        return who.user if who.session is not None else None

    def _asset(self, request: Request) -> Response:
        name = request.path.removeprefix("/static/")
        if request.method != "GET":
            return Response(405, "use GET")
        try:
            body = pages.asset(name)
        except KeyError:
            return Response(404, f"no such file {name[:100]!r}")
        return Response(
            200, "", (("Cache-Control", "max-age=3600"),), "text/css; charset=utf-8", body
        )

    def _page(self, status: int, html: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
        body = self.data.redacted(html).encode()
        return Response(status, "", _PAGE_HEADERS + headers, _HTML, body)

    # ---- the JSON API ----------------------------------------------------------------

    def _api(self, request: Request) -> Response:
        settings, path = self.data.settings, request.path
        now = utcnow()
        if path.rstrip("/") == "/api/lines":
            body = self._status_json.dumps(settings, self.data.status(), now)
            return self._json_text(body)
        if path.rstrip("/") == "/api/events":
            line = request.query.get("line") or None
            if line is not None and line not in settings.lines:
                return Response(404, f"no line {line[:64]!r} is configured")
            since = now - _since(request.query)
            return self._json(event_rows(self.data.events(since, line)))
        history = _API_HISTORY.fullmatch(path)
        if history is not None:
            line = history["line"]
            if line not in settings.lines:
                return Response(404, f"no line {line!r} is configured")
            since = now - _since(request.query)
            return self._json(history_rows(self.data.history(line, since)))
        one = _API_LINE.fullmatch(path)
        if one is not None:
            line = one["line"]
            if line not in settings.lines:
                return Response(404, f"no line {line!r} is configured")
            known = self.data.status()
            return self._json(status_rows(settings, known, now, only=[line])[0])
        return Response(404, f"no such API endpoint {path[:200]!r}")

    def _json(self, data: object) -> Response:
        return self._json_text(dumps(data, times=iso, indent=None))

    def _json_text(self, text: str) -> Response:
        return Response(200, "", (), _JSON, self.data.redacted(text + "\n").encode())

    # ---- actions ---------------------------------------------------------------------

    def _act(self, request: Request, who: Who, line: str, action: str) -> Response:
        if request.method != "POST":
            return Response(405, "actions are POST forms (the line page's buttons)")
        form = _form(request)
        self._csrf(request, who, form)
        if line not in self.data.settings.lines:
            return Response(404, f"no line {line!r} is configured")
        back = f"/lines/{line}"
        try:
            if action == "snooze":
                said = self.data.snooze(line, _snooze(form))
            elif action == "ack":
                said = self.data.ack(line)
            elif action == "unsnooze":
                said = self.data.unsnooze(line)
            elif action == "check":
                said = self.data.check(line)
            else:
                said = self.data.record(line, _figures(form))
        except FigureRefused as exc:
            return self._refused(400, exc.said(), back)
        except _BadForm as exc:
            return self._refused(400, str(exc), back)
        except ActionRefused as exc:
            return self._refused(409, str(exc), back)
        log.info("status page action", line=line, action=action, user=who.user, done=said)
        return _see_other(back)

    def _refused(self, status: int, why: str, back: str) -> Response:
        return self._page(status, pages.message("Not done", why, back=back))

    # ---- an alert's action link ------------------------------------------------------

    def _link(self, request: Request, path: str) -> Response:
        found = _LINK.fullmatch(path)
        if found is None:
            return self._link_refused(LinkError("this link is not valid: it is cut or altered"))
        token = found["token"]
        try:
            if request.method == "GET":
                link = self.data.link(token)
                page = pages.link_page(self.data.settings, link, self.data.status(), utcnow())
                return self._page(200, page, _NO_STORE)
            if request.method != "POST":
                return Response(405, "open the link (GET), then press its button (POST)")
            form = _form(request)
            chosen = self.data.link(token).action == "snooze"
            done = self.data.follow(token, _snooze(form) if chosen else None)
        except LinkError as exc:
            return self._link_refused(exc)
        except _BadForm as exc:
            return self._page(400, pages.message("Not done", str(exc), back=path), _NO_STORE)
        log.info(
            "alert link followed",
            action=done.link.action,
            lines=list(done.link.lines),
            remote=self._client(request),
        )
        return self._page(200, pages.link_done(done), _NO_STORE)

    def _link_refused(self, error: LinkError) -> Response:
        status = 410 if isinstance(error, LinkExpired | LinkUsed) else 403
        page = pages.message("This link cannot be used", str(error), back="/")
        return self._page(status, page, _NO_STORE)


class _BadForm(MonitorError):
    """A form field that cannot be read (why, for the page)."""


def _snooze(form: Mapping[str, str]) -> timedelta:
    chosen = form.get("duration", "")
    text = form.get("custom", "").strip() if chosen == "custom" else chosen
    if chosen != "custom" and chosen not in pages.SNOOZES:
        raise _BadForm(f"snooze for {', '.join(pages.SNOOZES)} or a custom duration")
    try:
        duration = parse_duration(text)
    except UnitError as exc:
        raise _BadForm(f"snooze: {exc}") from None
    if duration <= timedelta(0) or duration > MAX_SNOOZE:
        raise _BadForm("snooze for more than nothing and at most a year")
    return duration


def _figures(form: Mapping[str, str]) -> ManualFigures:
    def given(name: str) -> str | None:
        return form.get(name, "").strip() or None

    figures = ManualFigures(given("balance"), given("data"), given("expires"))
    if figures.empty():
        raise _BadForm("give at least one of balance, data left, expires")
    return figures


def _since(query: Mapping[str, str]) -> timedelta:
    try:
        return parse_duration(query.get("since", "7d"))
    except UnitError as exc:
        raise Refused(Response(400, f"since: {exc}")) from None


def _form(request: Request) -> dict[str, str]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("application/x-www-form-urlencoded", ""):
        raise Refused(Response(415, "send a form (application/x-www-form-urlencoded)"))
    try:
        text = request.body.decode("utf-8")
        return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=50))
    except (UnicodeDecodeError, ValueError):
        raise Refused(Response(400, "the form cannot be read")) from None


def _cookie(request: Request, name: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(request.headers.get("cookie", ""))
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def _next(path: str | None) -> str:
    return path if path and _NEXT.fullmatch(path) else "/"


def _see_other(location: str, cookie: str | None = None) -> Response:
    headers = [("Location", location)]
    if cookie is not None:
        headers.append(("Set-Cookie", cookie))
    return Response(303, f"see {location}", tuple(headers))
