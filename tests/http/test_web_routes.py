"""The status page's routes in process: who may see and do what, the login and its
limits, the actions and the API, on a real config, database and `Dashboard`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time
from web_site import PASSWORD, Site, basic, config_text, header, html

from monitor.http.auth import LinkAction, token_hash
from monitor.links import Linker
from monitor.model import utcnow
from monitor.store import Store
from monitor.store import web as web_tables


@pytest.fixture
def make_site(write_config: Callable[..., Path]) -> Iterator[Callable[..., Site]]:
    made: list[Site] = []

    def make(http: str = "", **kw: str) -> Site:
        site = Site(write_config(config_text(http, **kw)))
        site.read("phone", "7")  # warning
        site.read("tablet", "40")
        made.append(site)
        return site

    yield make
    for site in made:
        site.close()


@pytest.fixture
def site(make_site: Callable[..., Site]) -> Site:
    return make_site()


def test_without_a_login_a_page_sends_to_the_login_and_the_api_answers_401(site: Site) -> None:
    browser = site.browser()
    page = browser.get("/lines/phone")
    assert page.status == 303
    assert header(page, "Location") == "/login?next=/lines/phone"
    api = browser.get("/api/lines")
    assert api.status == 401
    assert header(api, "WWW-Authenticate") == 'Bearer realm="esim-monitor"'
    assert b"phone" not in (api.body or b"") and "Phone" not in api.text
    login = browser.get("/login?next=/lines/phone")
    assert login.status == 200
    assert 'name="next" value="/lines/phone"' in html(login)


def test_a_login_opens_a_session_in_a_private_cookie(site: Site) -> None:
    browser = site.browser()
    answer = browser.login()
    assert answer.status == 303
    assert header(answer, "Location") == "/"
    cookie = header(answer, "Set-Cookie") or ""
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # no https public_url: a browser would drop it
    page = browser.get("/")
    assert page.status == 200
    assert page.content_type.startswith("text/html")
    assert "Phone" in html(page) and "warning" in html(page)
    assert "default-src 'none'" in (header(page, "Content-Security-Policy") or "")
    session = browser.cookie.split("=", 1)[1] if browser.cookie else ""
    store = Store.open(site.database)
    try:  # only the session's hash is kept
        assert web_tables.session_user(store, token_hash(session), utcnow()) == "admin"
        assert web_tables.session_user(store, session, utcnow()) is None
    finally:
        store.close()


def test_the_cookie_is_secure_when_the_public_url_is_https(make_site: Callable[..., Site]) -> None:
    site = make_site('public_url = "https://monitor.example"\n')
    cookie = header(site.browser().login(), "Set-Cookie") or ""
    assert cookie.endswith("; Secure")


def test_a_login_sends_on_only_to_a_path_of_this_server(site: Site) -> None:
    for wanted, location in [
        ("/lines/phone", "/lines/phone"),
        ("//evil.example/x", "/"),
        ("https://evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/x\r\nSet-Cookie: a=b", "/"),
    ]:
        answer = site.browser().post(
            "/login", {"user": "admin", "password": PASSWORD, "next": wanted}
        )
        assert header(answer, "Location") == location


def test_failed_logins_are_limited_per_address(site: Site) -> None:
    browser = site.browser("192.0.2.20")
    for _ in range(5):
        answer = browser.login(password="wrong password")
        assert answer.status == 401
        assert "Wrong user or password" in html(answer)
        assert browser.cookie is None
    blocked = browser.login()  # even the right password, now
    assert blocked.status == 429
    assert header(blocked, "Retry-After") == "900"
    assert browser.cookie is None
    assert site.browser("192.0.2.21").login().status == 303  # another address may
    basic_blocked = site.browser("192.0.2.20").get(
        "/api/lines", authorization=basic("admin", PASSWORD)
    )
    assert basic_blocked.status == 429
    site.clock.now += 900
    assert browser.login().status == 303


def test_a_wrong_user_is_refused_like_a_wrong_password(site: Site) -> None:
    answer = site.browser().login(user="root")
    assert answer.status == 401
    assert "Wrong user or password" in html(answer)


def test_logout_needs_the_csrf_token_and_ends_the_session(site: Site) -> None:
    browser = site.browser()
    browser.login()
    csrf = browser.csrf()
    assert browser.post("/logout").status == 403
    assert browser.get("/").status == 200
    kept = browser.cookie
    answer = browser.post("/logout", {"csrf": csrf})
    assert answer.status == 303 and header(answer, "Location") == "/login"
    assert browser.cookie is None
    browser.cookie = kept  # the old cookie opens nothing any more
    assert browser.get("/").status == 303


def test_a_session_ends_when_it_expires(site: Site) -> None:
    browser = site.browser()
    with freeze_time(datetime.now(UTC)) as frozen:
        browser.login()
        frozen.tick(timedelta(days=7) - timedelta(seconds=1))
        assert browser.get("/").status == 200
        frozen.tick(timedelta(seconds=1))
        assert browser.get("/").status == 303


def test_basic_auth_and_bearer_tokens_read_the_api(site: Site) -> None:
    browser = site.browser()
    assert browser.get("/api/lines", authorization=basic("admin", PASSWORD)).status == 200
    wrong = browser.get("/api/lines", authorization=basic("admin", "nope"))
    assert wrong.status == 401
    assert browser.get("/api/lines", authorization="Basic !!!").status == 401
    store = Store.open(site.database)
    web_tables.add_token(store, token_hash("the-token"), "grafana", utcnow())
    store.close()
    answer = browser.get("/api/lines/phone", authorization="Bearer the-token")
    assert answer.status == 200
    assert json.loads(answer.body or b"")["line"] == "phone"
    assert browser.get("/api/lines", authorization="Bearer other").status == 401


ACTIONS = [
    ("snooze", {"duration": "1h"}),
    ("ack", {}),
    ("unsnooze", {}),
    ("record", {"balance": "3"}),
    ("check", {}),
]


@pytest.mark.parametrize(("action", "form"), ACTIONS)
@pytest.mark.parametrize(
    "who", ["nobody", "no csrf", "wrong csrf", "another session's csrf", "bearer", "basic"]
)
def test_an_action_without_a_session_and_its_csrf_token_is_refused_and_changes_nothing(
    site: Site, action: str, form: dict[str, str], who: str
) -> None:
    if action == "unsnooze":  # something for it to undo
        store = Store.open(site.database)
        store.snooze("phone", utcnow() + timedelta(hours=3))
        store.close()
    browser, other = site.browser(), site.browser("192.0.2.99")
    other.login()
    sent = dict(form)
    headers: dict[str, str] = {}
    if who != "nobody":
        browser.login()
    if who == "wrong csrf":
        sent["csrf"] = "A" * 43
    elif who == "another session's csrf":
        sent["csrf"] = other.csrf()
    elif who in ("bearer", "basic"):
        browser.cookie = None
        store = Store.open(site.database)
        web_tables.add_token(store, token_hash("the-token"), "script", utcnow())
        store.close()
        headers["authorization"] = (
            "Bearer the-token" if who == "bearer" else basic("admin", PASSWORD)
        )
    before = site.snapshot()
    answer = browser.post(f"/lines/phone/{action}", sent, **headers)
    assert answer.status in (303, 403) and site.snapshot() == before
    if answer.status == 303:
        assert header(answer, "Location") == "/login"
    else:
        assert who != "nobody"


def test_a_get_never_acts(site: Site) -> None:
    browser = site.browser()
    browser.login()
    before = site.snapshot()
    for action, _ in ACTIONS:
        assert browser.get(f"/lines/phone/{action}").status == 405
    assert site.snapshot() == before


def test_the_actions_change_the_line_and_answer_with_the_line_page(site: Site) -> None:
    browser = site.browser()
    browser.login()
    csrf = browser.csrf()

    def act(action: str, **form: str) -> None:
        answer = browser.post(f"/lines/phone/{action}", {"csrf": csrf, **form})
        assert answer.status == 303, answer.body
        assert header(answer, "Location") == "/lines/phone"

    act("snooze", duration="12h")
    status = site.view().status()["phone"]
    assert status.controls.snoozed_until is not None
    assert abs(status.controls.snoozed_until - (utcnow() + timedelta(hours=12))) < timedelta(
        minutes=1
    )
    act("snooze", duration="custom", custom="3d")
    status = site.view().status()["phone"]
    assert status.controls.snoozed_until > utcnow() + timedelta(days=2, hours=23)
    act("ack")
    assert site.view().status()["phone"].controls.acked_level is not None
    act("unsnooze")
    controls = site.view().status()["phone"].controls
    assert controls.snoozed_until is None and controls.acked_level is None
    act("record", balance="3", data="", expires="")
    status = site.view().status()["phone"]
    assert str(status.balance) == "3" and status.state == "critical" and status.source == "manual"
    act("check")
    assert site.checked == ["phone"]


@pytest.mark.parametrize(
    ("action", "form", "said"),
    [
        ("snooze", {"duration": "forever"}, "snooze for 1h, 12h, 24h or a custom duration"),
        ("snooze", {"duration": "custom", "custom": "soon"}, "snooze: "),
        ("snooze", {"duration": "custom", "custom": "900d"}, "at most a year"),
        ("record", {"balance": "", "data": ""}, "give at least one of"),
        ("record", {"balance": "-3"}, "balance &#x27;-3&#x27; cannot be negative"),
        ("record", {"data": "lots"}, "data: "),
        ("record", {"expires": "2020-01-01"}, "expires 2020-01-01: that day is over"),
    ],
)
def test_a_form_that_cannot_be_read_is_refused_with_its_reason(
    site: Site, action: str, form: dict[str, str], said: str
) -> None:
    browser = site.browser()
    browser.login()
    form["csrf"] = browser.csrf()
    before = site.snapshot()
    answer = browser.post(f"/lines/phone/{action}", form)
    assert answer.status == 400
    assert said in html(answer)
    assert site.snapshot() == before


def test_an_unknown_line_is_not_found_only_once_logged_in(site: Site) -> None:
    browser = site.browser()
    assert browser.get("/lines/ghost").status == 303
    assert browser.get("/api/lines/ghost").status == 401
    browser.login()
    assert browser.get("/lines/ghost").status == 404
    assert browser.get("/api/lines/ghost").status == 404
    assert browser.get("/api/lines/ghost/history").status == 404
    assert browser.get("/nowhere").status == 404


def test_without_a_password_hash_the_page_answers_503_saying_how(
    make_site: Callable[..., Site], write_config: Callable[..., Path]
) -> None:
    site = Site(write_config('[http]\nlisten = "127.0.0.1:0"\n' + config_text().split("\n", 4)[4]))
    try:
        for path in ("/", "/login", "/api/lines", "/lines/phone"):
            answer = site.browser().get(path)
            assert answer.status == 503
            assert "esim-monitor http password" in answer.text
        assert site.browser().post("/relay/phone", {"text": "x"}).status == 401  # its own
    finally:
        site.close()


def test_with_auth_none_the_page_is_open_and_actions_still_need_the_csrf_token(
    make_site: Callable[..., Site],
) -> None:
    site = make_site('auth = "none"\n')
    browser = site.browser()
    assert browser.get("/").status == 200
    assert browser.get("/api/lines").status == 200
    assert browser.get("/login").status == 303
    before = site.snapshot()
    assert browser.post("/lines/phone/ack").status == 403
    assert site.snapshot() == before
    answer = browser.post("/lines/phone/ack", {"csrf": browser.csrf()})
    assert answer.status == 303
    assert site.view().status()["phone"].controls.acked_level is not None


def test_the_stylesheet_is_served_from_the_package_without_a_login(site: Site) -> None:
    answer = site.browser().get("/static/style.css")
    assert answer.status == 200
    assert answer.content_type.startswith("text/css")
    assert answer.body and b"{" in answer.body
    assert site.browser().get("/static/../config.toml").status == 404


def test_with_auth_proxy_only_a_trusted_proxy_names_the_user(
    make_site: Callable[..., Site],
) -> None:
    site = make_site('auth = "proxy"\ntrusted_proxies = ["10.0.0.1"]\n')
    proxy, stranger = site.browser("10.0.0.1"), site.browser("192.0.2.50")
    assert proxy.get("/", remote_user="alice").status == 200
    assert proxy.get("/api/lines", remote_user="alice").status == 200
    assert proxy.get("/").status == 401  # the proxy named no one
    assert stranger.get("/", remote_user="alice").status == 401
    assert stranger.get("/api/lines", remote_user="alice").status == 401
    proxy.headers["remote-user"] = "alice"
    csrf = proxy.csrf()
    before = site.snapshot()
    stranger.headers["remote-user"] = "alice"
    assert stranger.post("/lines/phone/ack", {"csrf": csrf}).status == 401
    proxy.headers["remote-user"] = "bob"  # alice's token is hers alone
    assert proxy.post("/lines/phone/ack", {"csrf": csrf}).status == 403
    assert site.snapshot() == before
    proxy.headers["remote-user"] = "alice"
    assert proxy.post("/lines/phone/ack", {"csrf": csrf}).status == 303
    assert site.view().status()["phone"].controls.acked_level is not None


def test_behind_a_trusted_proxy_failed_logins_count_per_client(
    make_site: Callable[..., Site],
) -> None:
    site = make_site('trusted_proxies = ["10.0.0.1"]\n')
    first, second = site.browser("10.0.0.1"), site.browser("10.0.0.1")
    first.headers["x-forwarded-for"] = "198.51.100.1"
    second.headers["x-forwarded-for"] = "198.51.100.2"
    for _ in range(5):
        assert first.login(password="wrong password").status == 401
    assert first.login().status == 429
    assert second.login().status == 303


# ---- an alert's action links (/a/TOKEN) ------------------------------------------------


def link_path(site: Site, action: LinkAction, lines: tuple[str, ...] = ("phone",)) -> str:
    """The path of a link an alert would carry (the site's own key, a week to live)."""
    store = Store.open(site.database)
    try:
        linker = Linker.of(store, "https://monitor.example", timedelta(days=7), utcnow())
    finally:
        store.close()
    assert linker is not None
    return linker.action_url(action, lines, utcnow()).removeprefix("https://monitor.example")


def test_opening_a_link_shows_what_it_will_do_without_a_login_and_changes_nothing(
    site: Site,
) -> None:
    path = link_path(site, "ack")
    before = site.snapshot()
    answer = site.browser().get(path)
    page = html(answer)
    assert answer.status == 200 and header(answer, "Cache-Control") == "no-store"
    assert "<h1>Acknowledge the alert</h1>" in page and "Phone" in page and "warning" in page
    assert '<form class="link" method="post"><button type="submit">Acknowledge' in page
    assert "7.00" not in page and "USD" not in page  # an alert can be forwarded: no figures
    assert site.snapshot() == before


def test_a_link_acts_once_on_its_button_and_then_says_it_was_used(site: Site) -> None:
    path, browser = link_path(site, "ack"), site.browser()
    answer = browser.post(path)
    assert answer.status == 200, html(answer)
    assert "phone: warning acknowledged" in html(answer)
    assert site.view().status()["phone"].controls.acked_level is not None
    after = site.snapshot()
    for again in (browser.post(path), browser.get(path)):
        assert again.status == 410 and "was used already" in html(again)
    assert site.snapshot() == after


def test_a_snooze_link_asks_how_long_and_a_group_link_snoozes_every_line(site: Site) -> None:
    path, browser = link_path(site, "snooze", ("phone", "tablet")), site.browser()
    page = html(browser.get(path))
    assert page.count('name="duration"') == 3 and "these lines" in page
    before = site.snapshot()
    unchosen = browser.post(path)
    assert unchosen.status == 400 and site.snapshot() == before
    wrong = browser.post(path, {"duration": "forever"})
    assert wrong.status == 400 and site.snapshot() == before
    assert browser.post(path, {"duration": "12h"}).status == 200
    status = site.view().status()
    for line in ("phone", "tablet"):
        until = status[line].controls.snoozed_until
        assert until is not None and abs(until - utcnow() - timedelta(hours=12)) < timedelta(
            minutes=1
        )


def test_expired_forged_altered_and_cut_links_are_refused_and_change_nothing(
    site: Site, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    path = link_path(site, "ack")
    body, mac = path.removeprefix("/a/").split(".")
    elsewhere = f'[monitor]\ndatabase = "{tmp_path / "other.db"}"\n'
    other = Site(write_config(elsewhere + config_text(), name="other.toml"))
    try:
        foreign = link_path(other, "ack")  # signed with another monitor's key
    finally:
        other.close()
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    before, browser = site.snapshot(), site.browser()
    for bad in (foreign, f"/a/{body}.{flipped}", f"/a/{body[:-2]}.{mac}", f"/a/{body}", "/a/"):
        for method in ("GET", "POST"):
            answer = browser.request(method, bad, {} if method == "POST" else None)
            assert answer.status == 403, (bad, answer.status)
            assert "not valid" in html(answer)
    with freeze_time(datetime.now(UTC) + timedelta(days=7, seconds=1)):
        for method in ("GET", "POST"):
            answer = browser.request(method, path, {} if method == "POST" else None)
            assert answer.status == 410 and "expired" in html(answer)
    assert site.snapshot() == before
    assert browser.request("PUT", path).status == 405
