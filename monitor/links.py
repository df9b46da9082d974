"""Action links in alerts: acknowledge or snooze from the message itself.

`Linker` makes the URLs an alert carries (`{ack_url}`, `{snooze_url}`, `{line_url}`)
when `[http] public_url` is set: `/a/TOKEN`, a signed, expiring, single-purpose link
(`monitor.http.auth`). Following one shows what it will do (link previewers fetch URLs,
so a GET never acts); its button POSTs, and `act` does it, once: the link's nonce is
written in the same transaction as the snooze or acknowledgement it makes.
`{line_url}` is the line's page, behind the login like the rest of the page: an alert
forwarded to someone else opens no figures.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from urllib.parse import quote

from monitor.config import Settings
from monitor.http.auth import Link, LinkAction, LinkError, read_link, sign_link
from monitor.model import Level, utcnow
from monitor.store import Store
from monitor.store import web as web_tables

KEY_NAME = "links"


class LinkUsed(LinkError):
    """The link did what it does once already."""


@dataclass(frozen=True)
class Linker:
    """Makes an alert's links: the server's key, where the world reaches it, how long."""

    key: bytes
    public_url: str
    expiry: timedelta

    @classmethod
    def of(
        cls, store: Store, public_url: str | None, expiry: timedelta, now: datetime
    ) -> Linker | None:
        """The linker of a configured server; None when no public URL is set."""
        if not public_url:
            return None
        return cls(web_tables.key(store, KEY_NAME, now), public_url.rstrip("/"), expiry)

    def action_url(self, action: LinkAction, lines: Sequence[str], now: datetime) -> str:
        link = Link(action, tuple(lines), now + self.expiry, secrets.token_urlsafe(12))
        return f"{self.public_url}/a/{sign_link(self.key, link)}"

    def line_url(self, line: str) -> str:
        return f"{self.public_url}/lines/{quote(line, safe='')}"

    def urls(self, lines: Sequence[str], now: datetime) -> dict[str, str]:
        """The template variables for an alert about `lines` (one line, or a group)."""
        made = {
            "ack_url": self.action_url("ack", lines, now),
            "snooze_url": self.action_url("snooze", lines, now),
        }
        if len(lines) == 1:
            made["line_url"] = self.line_url(lines[0])
        return made


@dataclass(frozen=True)
class Done:
    """What following a link did, line by line, in a few words."""

    link: Link
    said: tuple[str, ...]


def look(store: Store, key: bytes, token: str, now: datetime) -> Link:
    """The link behind a token, for its page; LinkError when forged, altered, expired or
    used (so the page says so before offering a button)."""
    link = read_link(key, token, now)
    if web_tables.link_used(store, link.nonce):
        raise LinkUsed("this link was used already: each link works once")
    return link


def act(
    store: Store,
    key: bytes,
    token: str,
    now: datetime,
    snooze: timedelta | None = None,
    tz: tzinfo = UTC,
) -> Done:
    """Do what the link says, once. `snooze` is the duration chosen on a snooze link's
    page. Raises LinkError (forged, altered, expired) or LinkUsed; nothing changes then."""
    link = read_link(key, token, now)
    if link.action == "snooze" and (snooze is None or snooze <= timedelta(0)):
        raise LinkError("choose how long to snooze")
    said = []
    with store.transaction():
        if not web_tables.use_link(store, link.nonce, link.expires, now):
            raise LinkUsed("this link was used already: each link works once")
        for line in link.lines:
            said.append(control(store, link.action, line, now, snooze, tz))
    return Done(link, tuple(said))


def control(
    store: Store,
    action: LinkAction,
    line: str,
    now: datetime,
    snooze: timedelta | None,
    tz: tzinfo,
) -> str:
    """Snooze, acknowledge or unsnooze one line (a link's, or the status page's button):
    what was done, in a few words. Run it inside the caller's transaction."""
    if action == "snooze":
        assert snooze is not None
        store.snooze(line, now + snooze)
        return f"{line}: alerts snoozed until {(now + snooze).astimezone(tz):%Y-%m-%d %H:%M}"
    if action == "unsnooze":
        store.snooze(line, None)
        store.acknowledge(line, None, now)
        return f"{line}: alerts on again"
    state = store.state(line)
    if state.level is None or state.level == Level.OK:
        return f"{line}: nothing to acknowledge (state {state.state})"
    store.acknowledge(line, state.level, now)
    return f"{line}: {state.state} acknowledged; no reminders until its state changes"


def alert_links(
    store: Store, settings: Settings
) -> Callable[[Sequence[str]], dict[str, str]] | None:
    """What a notifier signs its messages' links with (None: no `[http] public_url`)."""
    linker = Linker.of(store, settings.http.public_url, settings.http.link_expiry, utcnow())
    if linker is None:
        return None
    return lambda lines: linker.urls(lines, utcnow())
