"""The status page in a real headless Chromium (tests/browser) driving a running daemon
over loopback (tests/web_daemon): log in through the form, lines worst first, no sideways
scrolling on a phone, a line's chart, a snooze from its button seen by `status --json`,
an action without the CSRF token refused; and an alert delivered to a loopback sink
(conftest's `sink`) whose signed ack link is followed without logging in: its GET only
says what it will do, its button acts once, and an expired link is refused."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from browser import PHONE, chromium
from daemon_proc import free_port
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from web_daemon import WebDaemon, serving

from monitor.config import load
from monitor.cycle import Checker
from monitor.http.auth import hash_password
from monitor.model import Reading
from monitor.store import Store

PASSWORD = "correct horse battery"
# Labels sort the other way round from the states: worst first cannot come from the names.
CONFIG = """
[monitor]
interval = "1h"
[http]
listen = "127.0.0.1:{port}"
user = "admin"
password_hash = "{hash}"
[defaults.thresholds]
balance_warning = 10
balance_critical = 5
[lines.alpha]
label = "Alpha tablet"
adapter = "demo"
balance = 40
drain = 0
data = "20GB"
[lines.bravo]
label = "Bravo phone"
adapter = "demo"
balance = 7
drain = 0
[lines.charlie]
label = "Charlie travel eSIM with a rather long name"
adapter = "demo"
balance = 2
drain = 0
data = "300MB"
payment_url = "https://example.com/top-up/a-long-path-that-could-push-the-page-sideways"
"""
PAST = [Decimal("9"), Decimal("7"), Decimal("5"), Decimal("3")]
"""Charlie's balance on the days before the test, one a day; the daemon then reads 2."""
WAIT = 30
"""Seconds any one page may take to show what a test waits for."""
PASSING = (NoSuchElementException, StaleElementReferenceException)
"""What a wait sees while the browser swaps one page for the next (an element read on the
page that is going away): tried again, not a failure."""


def write_history(config: Path) -> None:
    """Charlie's earlier readings, written and judged as polled ones would have been."""
    settings = load(config)
    checker, store = Checker(settings), Store.open(settings.database_path())
    now = datetime.now(UTC)
    try:
        for days, balance in zip(range(len(PAST), 0, -1), PAST, strict=True):
            at = now - timedelta(days=days)
            checker.record(store, Reading("charlie", at, balance=balance, currency="USD"))
    finally:
        checker.close()
        store.close()


@pytest.fixture
def server(write_config: Callable[..., Path]) -> Iterator[WebDaemon]:
    port = free_port()
    config = write_config(CONFIG.format(port=port, hash=hash_password(PASSWORD)))
    write_history(config)
    with serving(config, port, ["alpha", "bravo", "charlie"]) as made:
        yield made


def log_in(driver: WebDriver, server: WebDaemon, path: str = "/") -> None:
    """Open `path`, be sent to the login form, fill it in and land back on `path`."""
    driver.get(server.base + path)
    WebDriverWait(driver, WAIT, ignored_exceptions=PASSING).until(
        expected_conditions.url_contains("/login")
    )
    driver.find_element(By.NAME, "user").send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    WebDriverWait(driver, WAIT, ignored_exceptions=PASSING).until(
        lambda d: d.current_url == server.base + path
    )


def wait_for_text(driver: WebDriver, text: str) -> None:
    WebDriverWait(driver, WAIT, ignored_exceptions=PASSING).until(
        lambda d: text in d.find_element(By.TAG_NAME, "body").text,
        f"{text!r} not on {driver.current_url}",
    )


def overflow(driver: WebDriver) -> dict[str, Any]:
    """How far the page reaches sideways, and every element that sticks out of it."""
    return dict(
        driver.execute_script(
            """
            const width = window.innerWidth;
            const wide = [];
            for (const e of document.body.querySelectorAll('*')) {
                const box = e.getBoundingClientRect();
                if (box.width > 0 && (box.left < -0.5 || box.right > width + 0.5)) {
                    wide.push(`${e.tagName}.${e.getAttribute('class') || ''} `
                        + `${Math.round(box.left)}..${Math.round(box.right)}`);
                }
            }
            return {scroll: document.documentElement.scrollWidth, width: width, wide: wide};
            """
        )
    )


def test_log_in_through_the_form_and_see_the_lines_worst_first(server: WebDaemon) -> None:
    with chromium() as driver:
        driver.get(server.base + "/")
        WebDriverWait(driver, WAIT, ignored_exceptions=PASSING).until(
            expected_conditions.url_contains("/login")
        )
        assert not driver.find_elements(By.CSS_SELECTOR, "table.lines")

        driver.find_element(By.NAME, "user").send_keys("admin")
        driver.find_element(By.NAME, "password").send_keys("wrong")
        driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
        wait_for_text(driver, "Wrong user or password.")
        assert not driver.find_elements(By.CSS_SELECTOR, "table.lines")

        log_in(driver, server)
        rows = WebDriverWait(driver, WAIT, ignored_exceptions=PASSING).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "table.lines tbody tr")
        )
        assert [row.get_attribute("class") for row in rows] == ["critical", "warning", "ok"]
        shown = [row.find_element(By.CSS_SELECTOR, "td[data-label=Line] a").text for row in rows]
        assert shown == [
            "Charlie travel eSIM with a rather long name",
            "Bravo phone",
            "Alpha tablet",
        ]
        states = [row.find_element(By.CSS_SELECTOR, ".badge").text for row in rows]
        assert states == ["critical", "warning", "ok"]  # a word, not a colour alone
        counts = driver.find_element(By.CSS_SELECTOR, "p.counts").text
        assert "3 lines" in counts and "1 critical" in counts and "1 ok" in counts


def test_a_phone_never_scrolls_sideways(server: WebDaemon) -> None:
    with chromium(PHONE) as driver:
        log_in(driver, server)
        WebDriverWait(driver, WAIT, ignored_exceptions=PASSING).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "table.lines tbody tr")
        )
        seen = overflow(driver)
        assert seen["width"] == PHONE[0]
        assert seen["scroll"] <= seen["width"] and seen["wide"] == [], seen

        driver.find_element(By.PARTIAL_LINK_TEXT, "Charlie").click()
        WebDriverWait(driver, WAIT, ignored_exceptions=PASSING).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "svg.chart polyline.series")
        )
        assert driver.find_elements(By.CSS_SELECTOR, "table.events tbody tr")  # cards too
        seen = overflow(driver)
        assert seen["scroll"] <= seen["width"] and seen["wide"] == [], seen


def test_open_a_line_see_its_chart_and_snooze_it_from_its_button(server: WebDaemon) -> None:
    assert server.status("charlie")["snoozed_until"] is None
    with chromium() as driver:
        log_in(driver, server)
        driver.find_element(By.PARTIAL_LINK_TEXT, "Charlie").click()
        WebDriverWait(driver, WAIT, ignored_exceptions=PASSING).until(
            expected_conditions.url_contains("/lines/charlie")
        )

        charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart")
        assert charts, "no chart on the line page"
        balance = charts[0].find_element(By.CSS_SELECTOR, "polyline.series")
        points = [p.split(",") for p in str(balance.get_attribute("points")).split()]
        ys = [float(y) for _, y in points]
        xs = [float(x) for x, _ in points]
        # 9, 7, 5, 3 on the days before and the daemon's 2 now: falling, so drawn lower
        assert len(points) == len(PAST) + 1, points
        assert xs == sorted(xs) and ys == sorted(ys) and len(set(ys)) == len(ys), points
        drawn = balance.rect
        assert drawn["width"] > 100 and drawn["height"] > 10, drawn  # laid out, not hidden
        assert "from 5 readings" in str(charts[0].get_attribute("aria-label"))

        clicked = datetime.now(UTC)
        driver.find_element(By.CSS_SELECTOR, "button[name=duration][value='1h']").click()
        wait_for_text(driver, "snoozed until")
        assert driver.current_url == server.base + "/lines/charlie"

    until = server.status("charlie")["snoozed_until"]
    assert until is not None
    snoozed = datetime.fromisoformat(until) - clicked
    assert timedelta(minutes=59) < snoozed <= timedelta(hours=1, minutes=1), until
    assert server.status("bravo")["snoozed_until"] is None


def test_an_action_without_its_csrf_token_is_refused(server: WebDaemon) -> None:
    with chromium() as driver:
        log_in(driver, server, "/lines/bravo")
        # the page's own snooze form, sent without its token
        removed = driver.execute_script(
            "const token = document.querySelector("
            "  'form[action=\"/lines/bravo/snooze\"] input[name=csrf]');"
            "token.remove(); return token.value.length;"
        )
        assert removed > 0
        driver.find_element(By.CSS_SELECTOR, "button[name=duration][value='1h']").click()
        wait_for_text(driver, "missing or wrong CSRF token")
        assert server.status("bravo")["snoozed_until"] is None

        # the browser's logged-in cookie alone, as another site's form would send it
        cookie = next(c for c in driver.get_cookies() if c["name"] == "esim_monitor_session")
        session = {"Cookie": f"{cookie['name']}={cookie['value']}"}
        for form in ({}, {"csrf": "forged"}):
            status, body, _ = server.call("/lines/bravo/ack", form, session)
            assert status == 403 and "CSRF" in body, (status, body)
        assert server.status("bravo")["acknowledged"] is None

        # the same cookie with the page's token does act: the refusals were the token's
        driver.get(server.base + "/lines/bravo")
        token = driver.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")
        status, _, _ = server.call("/lines/bravo/ack", {"csrf": str(token)}, session)
        assert status == 303
        assert server.status("bravo")["acknowledged"] == "warning"


LINKED = """
[monitor]
interval = "1h"
[http]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
link_expiry = "{expiry}"
user = "admin"
password_hash = "{hash}"
[defaults.thresholds]
balance_warning = 10
balance_critical = 5
[channels.sink]
url = "{sink}"
group_wait = "0s"
events = ["critical"]
[lines.charlie]
label = "Charlie travel eSIM"
adapter = "demo"
balance = 2
drain = 0
"""


def alert_links(sink: Any, timeout: float = 60) -> dict[str, str]:
    """The links of the first alert the sink receives, by their label in the message."""
    deadline = time.monotonic() + timeout
    while not sink.received:
        assert time.monotonic() < deadline, f"no alert reached the sink in {timeout} s"
        time.sleep(0.05)
    message = sink.received[0]["message"]
    found = dict(re.findall(r"^(Acknowledge|Snooze): (\S+)$", message, re.MULTILINE))
    assert set(found) == {"Acknowledge", "Snooze"}, message
    return found


def linked_server(write_config: Callable[..., Path], sink: Any, expiry: str) -> Iterator[WebDaemon]:
    port = free_port()
    text = LINKED.format(port=port, expiry=expiry, hash=hash_password(PASSWORD), sink=sink.url)
    with serving(write_config(text), port, ["charlie"]) as made:
        yield made


@pytest.fixture
def linked(write_config: Callable[..., Path], sink: Any) -> Iterator[WebDaemon]:
    yield from linked_server(write_config, sink, "7d")


@pytest.fixture
def short_lived(write_config: Callable[..., Path], sink: Any) -> Iterator[WebDaemon]:
    yield from linked_server(write_config, sink, "2s")


def test_an_alerts_ack_link_asks_first_acts_once_then_says_it_was_used(
    linked: WebDaemon, sink: Any
) -> None:
    ack = alert_links(sink)["Acknowledge"]
    assert ack.startswith(linked.base + "/a/")
    with chromium(PHONE) as driver:  # the phone the alert arrived on, not logged in
        driver.get(ack)
        WebDriverWait(driver, WAIT, ignored_exceptions=PASSING).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "form.link button")
        )
        assert driver.find_element(By.TAG_NAME, "h1").text == "Acknowledge the alert"
        assert "Charlie travel eSIM" in driver.find_element(By.TAG_NAME, "body").text
        assert len(driver.find_elements(By.CSS_SELECTOR, "form[method=post]")) == 1
        assert overflow(driver)["wide"] == []
        # opening it (as a link previewer would) changed nothing
        assert linked.status("charlie")["acknowledged"] is None

        driver.find_element(By.CSS_SELECTOR, "form.link button").click()
        WebDriverWait(driver, WAIT, ignored_exceptions=PASSING).until(
            lambda d: d.find_element(By.TAG_NAME, "h1").text == "Done"
        )
        assert "critical acknowledged" in driver.find_element(By.TAG_NAME, "body").text
        assert linked.status("charlie")["acknowledged"] == "critical"

        driver.get(ack)
        wait_for_text(driver, "used already")
        assert not driver.find_elements(By.CSS_SELECTOR, "form.link")
    status, _, _ = linked.call(ack.removeprefix(linked.base), {})
    assert status == 410
    assert linked.status("charlie")["snoozed_until"] is None  # the ack link did only that


def test_an_alerts_snooze_link_snoozes_for_the_chosen_time(linked: WebDaemon, sink: Any) -> None:
    snooze = alert_links(sink)["Snooze"]
    with chromium(PHONE) as driver:
        driver.get(snooze)
        WebDriverWait(driver, WAIT, ignored_exceptions=PASSING).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "form.link button")
        )
        assert driver.find_element(By.TAG_NAME, "h1").text == "Snooze the alerts"
        assert linked.status("charlie")["snoozed_until"] is None
        clicked = datetime.now(UTC)
        driver.find_element(By.CSS_SELECTOR, "form.link button[value='12h']").click()
        wait_for_text(driver, "snoozed until")
    until = linked.status("charlie")["snoozed_until"]
    assert until is not None
    snoozed = datetime.fromisoformat(until) - clicked
    assert timedelta(hours=11, minutes=59) < snoozed <= timedelta(hours=12, minutes=1), until
    assert linked.status("charlie")["acknowledged"] is None


def test_an_expired_alert_link_is_refused(short_lived: WebDaemon, sink: Any) -> None:
    ack = alert_links(sink)["Acknowledge"]
    token = ack.rsplit("/", 1)[1]
    body = token.split(".", 1)[0]
    expires = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["e"]
    assert expires - time.time() <= 2  # link_expiry = "2s" from when the alert was sent
    time.sleep(max(expires - time.time(), 0) + 0.1)  # the link's own clock: its expiry

    with chromium() as driver:
        driver.get(ack)
        wait_for_text(driver, "expired")
        assert driver.find_element(By.TAG_NAME, "h1").text == "This link cannot be used"
        assert not driver.find_elements(By.CSS_SELECTOR, "form.link")
    status, page, _ = short_lived.call(ack.removeprefix(short_lived.base), {})
    assert status == 410 and "expired" in page
    assert short_lived.status("charlie")["acknowledged"] is None
