"""The phone relay's recording side: a relayed text becomes a reading or a `relay` event.

Called by the HTTP server's threads (`monitor.http.app.RelaySink`), each with a `Store` of
its own (the store's concurrency contract); what `record` returns is committed. The text is
read by the line's relay readers (`adapters.sms_replies`): figures become a reading marked
`source = relay`, judged like any other (alerts, forecast, top-ups' guards are the
daemon's); a text without a figure becomes a `relay` event, sent only to the channels that
list `relay`. The text is kept redacted of every configured secret and of the line's token.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import structlog

from monitor.adapters.sms_replies import preset_currency, read_relayed, relay_specs
from monitor.adapters.ussd_replies import Figures
from monitor.config import Settings, secret_values
from monitor.cycle import Checker
from monitor.errors import ReadingRejected
from monitor.http.relay import BadRequest, RelayMessage
from monitor.model import Event, Reading, utcnow
from monitor.notify import outbox_entries
from monitor.redact import Redactor
from monitor.store import RelayTokens, Store

log = structlog.get_logger("monitor.relay")


class Relay:
    """Readings go through a `Checker` of the relay's own (`Checker.record`: judged and
    written as a polled check, guarded against the loop's writes of the same line), one
    at a time: a relay takes a text now and then, and the checker's account breakers and
    recharge worker are then only ever touched by one thread."""

    def __init__(self, settings: Settings, database: Path) -> None:
        self.database = database
        self._local = threading.local()
        self._opened: list[Store | RelayTokens] = []
        self._lock = threading.Lock()
        self._recording = threading.Lock()
        self._checker: Checker | None = None
        self.settings = settings

    @property
    def settings(self) -> Settings:
        return self._settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        """A reload's config: the lines' senders and readers, and a checker for it."""
        with self._recording:
            self._settings = settings
            self._redactor = Redactor(secret_values(settings))
            old, self._checker = self._checker, None
        if old is not None:
            old.close()

    def _checker_now(self) -> Checker:
        if self._checker is None:
            self._checker = Checker(self._settings)
        return self._checker

    # ---- per thread ------------------------------------------------------------------

    def _store(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = Store.open(self.database)
            with self._lock:
                self._opened.append(store)
        return store

    def _tokens(self) -> RelayTokens:
        tokens = getattr(self._local, "tokens", None)
        if tokens is None:
            tokens = self._local.tokens = RelayTokens(self.database)
            with self._lock:
                self._opened.append(tokens)
        return tokens

    def close(self, wait: float = 5.0) -> None:
        """After the server's threads ended: the checker (a top-up under way gets `wait`
        seconds) and their connections."""
        with self._recording:
            checker, self._checker = self._checker, None
        if checker is not None:
            checker.close(wait=wait)
        with self._lock:
            opened, self._opened = self._opened, []
        for item in opened:
            item.close()

    # ---- RelaySink -------------------------------------------------------------------

    def lines(self) -> Mapping[str, list[str] | None]:
        return {k: line.relay_senders for k, line in self.settings.lines.items()}

    def verify(self, line: str, token: str) -> bool:
        return self._tokens().verify(line, token)

    def record(self, line: str, message: RelayMessage) -> str:
        now = utcnow()
        text = self._redactor.text(message.text)
        figures = read_text(self.settings, line, message.text, now)
        if figures is None:
            event = Event(
                "relay",
                line,
                now,
                {"label": self.settings.label(line), "text": text, "sender": message.sender or ""},
            )
            self._store().add_events(outbox_entries(self.settings, [event]), now)
            log.info("relayed text kept as an event", line=line)
            return "recorded: a relay event (the text holds no figure)"
        reading = reading_from(line, figures, now, text, message.sender)
        with self._recording:
            try:
                self._checker_now().record(self._store(), reading)
            except ReadingRejected as exc:
                raise BadRequest(422, f"the text's figures cannot be a reading: {exc}") from None
        log.info("relayed text recorded as a reading", line=line)
        return "recorded: a reading"


def read_text(settings: Settings, line_id: str, text: str, now: datetime) -> Figures | None:
    """The figures a line's relayed text holds, by its relay readers, or None."""
    line = settings.lines[line_id]
    options = line.options
    currency = options.get("currency") or preset_currency(line.relay_preset)
    preset = line.relay_preset or options.get("preset")
    specs = relay_specs(line.relay_patterns, preset if isinstance(preset, str) else None)
    return read_relayed(text, specs, tz=settings.tz(), now=now, currency=currency)


def reading_from(
    line: str, figures: Figures, now: datetime, text: str, sender: str | None
) -> Reading:
    money = figures.balance is not None or figures.renewal_price is not None
    extras = {"data_used": figures.data_used} if figures.data_used is not None else {}
    return Reading(
        line=line,
        checked_at=now,
        balance=figures.balance,
        currency=figures.currency if money else None,
        data_remaining=figures.data_remaining,
        data_total=figures.data_total,
        expires_at=figures.expires_at,
        renewal_at=figures.renewal_at,
        renewal_price=figures.renewal_price,
        extras=extras,
        raw={"relay": text, "from": sender},
        source="relay",
    )
