"""The status page's data side: what its pages and API read, what its buttons do, and the
logins it keeps.

Called by the HTTP server's threads (`monitor.http.web.WebSink`), each with a `Store` of
its own (the store's concurrency contract). Every action is committed when its method
returns, so the page answers on it. A manual reading goes through the recorder's one
`Checker` (`monitor.manual`: built as `esim-monitor record` builds it), judged like a
polled one; "check now" asks the daemon (`check_soon`, as a provider's webhook does).
What a page shows of a stored reply is redacted of every configured secret once more.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import structlog

from monitor import links
from monitor.config import Settings, secret_values
from monitor.errors import MonitorError, ReadingRejected
from monitor.http.auth import Link
from monitor.manual import ManualFigures, record_manual
from monitor.model import utcnow
from monitor.recording import Recorder
from monitor.redact import Redactor
from monitor.store import EventRow, HistoryRow, LineStatus, Recharge
from monitor.store import web as web_tables

log = structlog.get_logger("monitor.dashboard")


class ActionRefused(MonitorError):
    """An action that cannot be done as asked (why, in a few words, for the page)."""


class Dashboard(Recorder):
    """The status page's reads and actions on the lines."""

    def __init__(
        self,
        settings: Settings,
        database: Path,
        check_soon: Callable[[str], None] | None = None,
    ) -> None:
        self.check_soon = check_soon
        self._keys: dict[str, bytes] = {}
        super().__init__(settings, database)

    def _configured(self, settings: Settings) -> None:
        self._redactor = Redactor(secret_values(settings))

    def redacted(self, text: str) -> str:
        return self._redactor.text(text)

    # ---- reads -----------------------------------------------------------------------

    def status(self) -> dict[str, LineStatus]:
        return self._store().status()

    def history(self, line: str, since: datetime) -> list[HistoryRow]:
        return self._store().history(line, since)

    def events(self, since: datetime, line: str | None = None) -> list[EventRow]:
        return self._store().events(since, line)

    def recharges(self, line: str) -> list[Recharge]:
        return self._store().recharge_history(line)

    def last_raw(self, line: str) -> str | None:
        raw = self._store().last_raw(line)
        return None if raw is None else self._redactor.text(raw)

    # ---- logins ----------------------------------------------------------------------

    def key(self, name: str) -> bytes:
        """The server's key `name` (made once, kept in the database)."""
        found = self._keys.get(name)
        if found is None:
            found = self._keys[name] = web_tables.key(self._store(), name, utcnow())
        return found

    def open_session(self, id_hash: str, user: str, until: datetime) -> None:
        web_tables.open_session(self._store(), id_hash, user, utcnow(), until)

    def session_user(self, id_hash: str) -> str | None:
        return web_tables.session_user(self._store(), id_hash, utcnow())

    def close_session(self, id_hash: str) -> None:
        web_tables.close_session(self._store(), id_hash)

    def token_name(self, token_hash: str) -> str | None:
        return web_tables.token_name(self._store(), token_hash)

    # ---- actions ---------------------------------------------------------------------

    def snooze(self, line: str, duration: timedelta) -> str:
        return self._control("snooze", line, duration)

    def ack(self, line: str) -> str:
        return self._control("ack", line)

    def unsnooze(self, line: str) -> str:
        return self._control("unsnooze", line)

    def _control(self, action: links.LinkAction, line: str, snooze: timedelta | None = None) -> str:
        store = self._store()
        with store.transaction():
            said = links.control(store, action, line, utcnow(), snooze, self.settings.tz())
        log.info("line changed from the status page", line=line, action=action)
        return said

    def record(self, line: str, figures: ManualFigures) -> str:
        """A reading typed on the line's page; FigureRefused or ActionRefused if it
        cannot be one."""
        from monitor.evaluate import summarize

        with self._recording:
            try:
                judged = record_manual(
                    self.settings, self._checker_now(), self._store(), line, figures, utcnow()
                )
            except ReadingRejected as exc:
                raise ActionRefused(f"the figures cannot be a reading: {exc}") from None
        log.info("reading recorded from the status page", line=line)
        return f"{line}: recorded ({summarize(judged.metrics)}); state {judged.state.state}"

    # ---- an alert's action link ------------------------------------------------------

    def link(self, token: str) -> Link:
        """What the link will do; LinkError when it cannot be used."""
        return links.look(self._store(), self.key(links.KEY_NAME), token, utcnow())

    def follow(self, token: str, snooze: timedelta | None) -> links.Done:
        """Do what the link says, once, committed on return; LinkError when it cannot."""
        store, tz = self._store(), self.settings.tz()
        return links.act(store, self.key(links.KEY_NAME), token, utcnow(), snooze, tz)

    def check(self, line: str) -> str:
        if self.check_soon is None:
            raise ActionRefused("no daemon runs here to check the line")
        self.check_soon(line)
        log.info("check asked from the status page", line=line)
        return f"{line}: checked now"
