"""The phone relay's recording side: a relayed text becomes a reading or a `relay` event.

Called by the HTTP server's threads (`monitor.http.app.RelaySink`), each with a `Store` of
its own (the store's concurrency contract); what `record` returns is committed. The text is
read by the line's relay readers (`adapters.sms_replies`): figures become a reading marked
`source = relay`, judged like any other (alerts, forecast, top-ups' guards are the
daemon's); a text without a figure becomes a `relay` event, sent only to the channels that
list `relay`. The text is kept redacted of every configured secret and of the line's token.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import structlog

from monitor.adapters.sms_replies import preset_currency, read_relayed, relay_readers
from monitor.adapters.ussd_replies import Figures
from monitor.config import Settings, secret_values
from monitor.errors import ReadingRejected
from monitor.http.relay import BadRequest, RelayMessage
from monitor.model import Event, utcnow
from monitor.notify import outbox_entries
from monitor.recording import Recorder
from monitor.redact import Redactor
from monitor.store import RelayTokens

log = structlog.get_logger("monitor.relay")


class Relay(Recorder):
    """Relayed texts of the lines, checked against each line's token and senders."""

    def _configured(self, settings: Settings) -> None:
        self._redactor = Redactor(secret_values(settings))

    def _tokens(self) -> RelayTokens:
        return self._per_thread("tokens", RelayTokens)

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
        reading = figures.reading(
            line, now, raw={"relay": text, "from": message.sender}, source="relay"
        )
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
    readers = relay_readers(line.relay_patterns, preset if isinstance(preset, str) else None)
    return read_relayed(text, readers, tz=settings.tz(), now=now, currency=currency)
