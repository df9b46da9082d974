"""Action links in alerts: made when a public URL is set, acting once, on what they name,
refused when forged, altered, expired or used. The link pages in a browser are tested end
to end with the status page."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from monitor.config import Settings, load
from monitor.http.auth import LinkError
from monitor.links import Linker, LinkUsed, act, alert_links, look
from monitor.model import Event, Level, LineState
from monitor.notify import render, render_group
from monitor.store import Check, Store

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
CONFIG = """
[http]
listen = "127.0.0.1:8750"
public_url = "https://monitor.example/esim/"
link_expiry = "2d"

[channels.phone]
url = "json://127.0.0.1:9/"

[channels.sms]
url = "json://127.0.0.1:9/"
format = "short"

[lines.travel]
adapter = "demo"

[lines.home]
adapter = "demo"
"""


@pytest.fixture
def settings(write_config: Callable[..., Path]) -> Settings:
    return load(write_config(CONFIG))


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    store = Store.open(settings.database_path())
    checks = [
        Check(line, NOW, LineState(line=line, level=Level.CRITICAL, checked_at=NOW))
        for line in ("travel", "home")
    ]
    store.record_checks(checks, NOW)
    yield store
    store.close()


def token(url: str) -> str:
    parts = urlsplit(url)
    assert parts.path.startswith("/esim/a/")
    return parts.path.removeprefix("/esim/a/")


def test_links_are_made_only_with_a_public_url(settings: Settings, store: Store) -> None:
    urls = Linker.of(store, settings.http.public_url, settings.http.link_expiry, NOW)
    assert urls is not None
    made = urls.urls(["travel"], NOW)
    assert set(made) == {"ack_url", "snooze_url", "line_url"}
    assert made["line_url"] == "https://monitor.example/esim/lines/travel"
    assert made["ack_url"] != urls.urls(["travel"], NOW)["ack_url"]  # a nonce each
    assert Linker.of(store, None, timedelta(days=7), NOW) is None


def test_an_ack_link_acts_once(settings: Settings, store: Store) -> None:
    linker = Linker.of(store, settings.http.public_url, settings.http.link_expiry, NOW)
    assert linker is not None
    ack = token(linker.urls(["travel"], NOW)["ack_url"])
    assert look(store, linker.key, ack, NOW).lines == ("travel",)
    done = act(store, linker.key, ack, NOW)
    assert done.said == ("travel: critical acknowledged; no reminders until its state changes",)
    assert store.controls()["travel"].acked_level == Level.CRITICAL
    with pytest.raises(LinkUsed):
        look(store, linker.key, ack, NOW)
    with pytest.raises(LinkUsed):
        act(store, linker.key, ack, NOW)


def test_a_group_link_snoozes_every_line_of_the_group(settings: Settings, store: Store) -> None:
    linker = Linker.of(store, settings.http.public_url, settings.http.link_expiry, NOW)
    assert linker is not None
    snooze = token(linker.urls(["travel", "home"], NOW)["snooze_url"])
    with pytest.raises(LinkError, match="choose how long"):
        act(store, linker.key, snooze, NOW)
    act(store, linker.key, snooze, NOW, snooze=timedelta(hours=12))
    controls = store.controls()
    assert (
        controls["travel"].snoozed_until
        == controls["home"].snoozed_until
        == NOW + timedelta(hours=12)
    )


def test_expired_and_forged_links_change_nothing(settings: Settings, store: Store) -> None:
    linker = Linker.of(store, settings.http.public_url, settings.http.link_expiry, NOW)
    assert linker is not None
    ack = token(linker.urls(["travel"], NOW)["ack_url"])
    with pytest.raises(LinkError, match="expired"):
        act(store, linker.key, ack, NOW + timedelta(days=2))
    with pytest.raises(LinkError, match="not made by this monitor"):
        act(store, b"x" * 32, ack, NOW)
    assert store.controls().get("travel") is None or store.controls()["travel"].acked_level is None
    act(store, linker.key, ack, NOW + timedelta(days=2) - timedelta(seconds=1))


def test_alerts_carry_the_links_and_a_group_one_per_line_plus_one_for_all(
    settings: Settings, store: Store
) -> None:
    links = alert_links(store, settings)
    assert links is not None
    one = Event("critical", "travel", NOW, {"metric": "balance", "value": "1 USD"})
    _, body = render(one, settings.channels["phone"], settings, links=links)
    assert "Acknowledge: https://monitor.example/esim/a/" in body
    assert "Snooze: https://monitor.example/esim/a/" in body
    assert "Details: https://monitor.example/esim/lines/travel" in body
    _, short = render(one, settings.channels["sms"], settings, links=links)
    assert "Ack: https://monitor.example/esim/a/" in short and "Snooze" not in short
    _, plain = render(one, settings.channels["phone"], settings)
    assert "Acknowledge" not in plain and "/a/" not in plain
    recovery = Event("recovery", "travel", NOW, {})
    assert "/a/" not in render(recovery, settings.channels["phone"], settings, links=links)[1]
    two = [one, Event("critical", "home", NOW, {"metric": "data", "value": "0 B"})]
    _, grouped = render_group(two, settings.channels["phone"], settings, links=links)
    assert grouped.count("  acknowledge: https://monitor.example/esim/a/") == 2
    assert "Acknowledge all: https://monitor.example/esim/a/" in grouped
    all_token = grouped.split("Acknowledge all: https://monitor.example/esim/a/")[1].split()[0]
    key = Linker.of(store, settings.http.public_url, settings.http.link_expiry, NOW)
    assert key is not None
    assert look(store, key.key, all_token, NOW).lines == ("travel", "home")
