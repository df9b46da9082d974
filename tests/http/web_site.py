"""A status page in process for the tests: a real config file and database, the real
`Dashboard` and `Web` behind the real `App`, and a browser that keeps its cookie."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from monitor.config import Settings, load
from monitor.cycle import Checker
from monitor.dashboard import Dashboard
from monitor.http.app import App, RateLimiter, Request, Response
from monitor.http.auth import hash_password
from monitor.http.web import LoginFailures, Web
from monitor.model import Reading
from monitor.store import Store, View

PASSWORD = "correct horse battery"
PASSWORD_HASH = hash_password(PASSWORD)
LINES = """
[defaults.thresholds]
balance_warning = 10
balance_critical = 5

[lines.phone]
label = "Phone"
adapter = "demo"
balance = 7
drain = 0
data = "3GB"

[lines.tablet]
adapter = "demo"
balance = 40
drain = 0
"""


def config_text(http: str = "", lines: str = LINES) -> str:
    base = f'[http]\nlisten = "127.0.0.1:0"\nuser = "admin"\npassword_hash = "{PASSWORD_HASH}"\n'
    return base + http + "\n" + lines


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class NoRelay:
    def lines(self) -> Mapping[str, list[str] | None]:
        return {}

    def verify(self, line: str, token: str) -> bool:
        return False

    def record(self, line: str, message: Any) -> str:
        raise AssertionError("no relay here")


class Site:
    def __init__(self, config: Path) -> None:
        self.config = config
        self.settings: Settings = load(config)
        self.database = self.settings.database_path()
        self.checked: list[str] = []
        self.dashboard = Dashboard(self.settings, self.database, self.checked.append)
        self.clock = Clock()
        self.app = App(
            NoRelay(),
            RateLimiter(10_000, 60.0),
            1_000_000,
            web=Web(self.dashboard, LoginFailures(clock=self.clock)),
        )

    def read(self, line: str, balance: str, **figures: Any) -> None:
        """A reading of the line, judged and written as a polled one."""
        checker, store = Checker(self.settings), Store.open(self.database)
        reading = Reading(
            line, datetime.now(UTC), balance=Decimal(balance), currency="USD", **figures
        )
        try:
            checker.record(store, reading)
        finally:
            checker.close()
            store.close()

    def browser(self, remote: str = "192.0.2.10") -> Browser:
        return Browser(self, remote)

    def view(self) -> View:
        view = View.open_existing(self.database)
        assert view is not None
        return view

    def snapshot(self) -> dict[str, Any]:
        """What an action could change: the lines' status, readings, events, sessions."""
        view = self.view()
        try:
            since = datetime.now(UTC) - timedelta(days=30)
            return {
                "status": view.status(),
                "history": {line: view.history(line, since) for line in self.settings.lines},
                "events": view.events(since),
                "checked": list(self.checked),
            }
        finally:
            view.close()

    def close(self) -> None:
        self.dashboard.close()


class Browser:
    def __init__(self, site: Site, remote: str) -> None:
        self.site, self.remote = site, remote
        self.cookie: str | None = None
        self.headers: dict[str, str] = {}

    def request(
        self, method: str, path: str, form: Mapping[str, str] | None = None, **headers: str
    ) -> Response:
        parts = urlsplit(path)
        query = dict(re.findall(r"([^&=]+)=([^&]*)", parts.query))
        sent = {**self.headers, **{k.replace("_", "-"): v for k, v in headers.items()}}
        if self.cookie:
            sent["cookie"] = self.cookie
        body = b""
        if form is not None:
            body = urlencode(form).encode()
            sent["content-type"] = "application/x-www-form-urlencoded"
        request = Request(method, parts.path, self.remote, sent, query, body)
        answer = self.site.app.handle(request)
        for name, value in answer.headers:
            if name == "Set-Cookie":
                pair = value.split(";", 1)[0]
                self.cookie = None if pair.endswith("=") else pair
        return answer

    def get(self, path: str, **headers: str) -> Response:
        return self.request("GET", path, **headers)

    def post(self, path: str, form: Mapping[str, str] | None = None, **headers: str) -> Response:
        return self.request("POST", path, form or {}, **headers)

    def login(self, user: str = "admin", password: str = PASSWORD) -> Response:
        return self.post("/login", {"user": user, "password": password, "next": "/"})

    def csrf(self, line: str = "phone") -> str:
        page = self.get(f"/lines/{line}")
        assert page.status == 200, page.text
        found = re.search(r'name="csrf" value="([^"]+)"', html(page))
        assert found is not None
        return found.group(1)


def html(response: Response) -> str:
    assert response.body is not None
    return response.body.decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def header(response: Response, name: str) -> str | None:
    return next((v for k, v in response.headers if k.lower() == name.lower()), None)
