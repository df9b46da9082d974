"""The outbox: events, one delivery per routed channel, and the channels' digests.

An event is written with its deliveries before anything is sent (in the check's own
transaction), so an alert survives a notifier outage, a crash and a restart. A send is a
fact: when its mark cannot be written, it is remembered (`_sent`) and the row is never
sent again.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from monitor.counters import COUNTERS
from monitor.errors import StoreError
from monitor.model import Event
from monitor.store import codec
from monitor.store.connection import Connection, insert_row, upsert_row

if TYPE_CHECKING:
    from sqlite_utils import Database

_DELIVERY = """
    SELECT d.id, d.event_id, d.channel, d.attempts, e.line, e.type, e.created_at, e.facts
    FROM deliveries d JOIN events e ON e.id = d.event_id
"""


@dataclass(frozen=True)
class OutboxEntry:
    """An event as the outbox takes it: its one-line message (the events table's) and the
    channels it is routed to (`notify.outbox_entries` renders and routes them)."""

    event: Event
    message: str
    channels: Sequence[str] = ()


@dataclass(frozen=True)
class Delivery:
    """One event bound for one channel: a row of the outbox."""

    id: int
    event_id: int
    channel: str
    attempts: int
    event: Event


def write_entries(
    conn: sqlite3.Connection,
    entries: Sequence[OutboxEntry],
    now: datetime,
    snoozed: bool = False,
    sent: Sequence[Collection[str]] | None = None,
) -> list[int]:
    """Each event and one delivery per channel: pending, or already sent (`sent[i]`: the
    channels event i reached directly while the database could not be written), or
    held for a snoozed line. Inside the caller's transaction; returns the event ids."""
    ids = []
    for i, entry in enumerate(entries):
        event = entry.event
        event_id = insert_row(
            conn,
            "events",
            {
                "line": event.line,
                "type": event.type,
                "created_at": codec.ts(event.created_at),
                "message": entry.message,
                "facts": codec.facts(event.facts),
            },
        )
        done = sent[i] if sent is not None else ()
        for channel in entry.channels:
            row: dict[str, Any] = {
                "event_id": event_id,
                "channel": channel,
                "status": "snoozed" if snoozed else "pending",
                "attempts": 0,
                "next_attempt_at": codec.ts(now),
            }
            if channel in done:
                at = codec.ts(event.created_at)
                row.update(status="sent", attempts=1, sent_at=at, last_attempt_at=at)
            insert_row(conn, "deliveries", row)
        ids.append(event_id)
    return ids


def count_events(entries: Iterable[OutboxEntry]) -> None:
    """Count written events by type (`esim_monitor_events_total`), once they are committed."""
    for kind, count in Counter(entry.event.type for entry in entries).items():
        COUNTERS.event(kind, count)


class Outbox(Connection):
    _sent: dict[int, datetime]

    def add_events(self, entries: Sequence[OutboxEntry], now: datetime) -> None:
        with self._writing() as db:
            write_entries(db.conn, entries, now)
        count_events(entries)

    def due_deliveries(self, now: datetime) -> list[Delivery]:
        rows = self.conn.execute(
            _DELIVERY + "WHERE d.status = 'pending' AND d.next_attempt_at <= ? "
            "ORDER BY d.next_attempt_at, d.id",
            [codec.ts(now)],
        ).fetchall()
        return [_delivery(row) for row in rows if row[0] not in self._sent]

    def next_delivery_at(self) -> datetime | None:
        row = self.conn.execute(
            "SELECT min(next_attempt_at) FROM deliveries d WHERE status = 'pending'"
            + self._unmarked()
        ).fetchone()
        return codec.parse_ts(row[0])

    def delivered(self, delivery_id: int, now: datetime) -> None:
        """Mark a delivery sent. A send is a fact: when the mark cannot be written, it is
        remembered (the row is never sent again) and written by `settle`."""
        self._sent[delivery_id] = now
        try:
            with self._writing() as db:
                self._write_sent(db)
        except StoreError:
            return
        self._sent = {}

    def delivery_failed(
        self, delivery_id: int, error: str, now: datetime, retry_at: datetime
    ) -> None:
        with self._writing() as db:
            db.conn.execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_attempt_at = ?, "
                "last_error = ?, next_attempt_at = ? WHERE id = ?",
                [codec.ts(now), error, codec.ts(retry_at), delivery_id],
            )

    def defer(self, delivery_id: int, until: datetime) -> None:
        """Not tried: its channel just failed. It waits for the channel's retry time."""
        with self._writing() as db:
            db.conn.execute(
                "UPDATE deliveries SET next_attempt_at = ? WHERE id = ?",
                [codec.ts(until), delivery_id],
            )

    def drop_deliveries(self, delivery_ids: Sequence[int], reason: str) -> None:
        """Pending rows whose channel left the config: kept for the record, never sent."""
        with self._writing() as db:
            for delivery_id in delivery_ids:
                db.conn.execute(
                    "UPDATE deliveries SET status = 'dropped', last_error = ? WHERE id = ?",
                    [reason, delivery_id],
                )

    def hold(self, delivery_id: int, until: datetime) -> None:
        """Quiet hours: keep the row for the catch-up message at the window's end."""
        with self._writing() as db:
            db.conn.execute(
                "UPDATE deliveries SET status = 'held', next_attempt_at = ? WHERE id = ?",
                [codec.ts(until), delivery_id],
            )

    def held_due(self, now: datetime) -> dict[str, list[Delivery]]:
        """Held rows whose quiet hours are over, by channel."""
        rows = self.conn.execute(
            _DELIVERY + "WHERE d.status = 'held' AND d.next_attempt_at <= ? "
            "ORDER BY d.channel, e.created_at, d.id",
            [codec.ts(now)],
        ).fetchall()
        held: dict[str, list[Delivery]] = {}
        for row in rows:
            if row[0] in self._sent:
                continue
            held.setdefault(row[2], []).append(_delivery(row))
        return held

    # ---- digests ---------------------------------------------------------------------------

    def digest_sent(self, channel: str) -> datetime | None:
        row = self.conn.execute(
            "SELECT last_sent_at FROM digests WHERE channel = ?", [channel]
        ).fetchone()
        return codec.parse_ts(row[0]) if row else None

    def add_digest_baseline(self, channel: str, now: datetime) -> None:
        """Remember when a channel's digests start counting, without sending one."""
        with self._writing() as db:
            upsert_row(
                db.conn, "digests", {"channel": channel, "last_sent_at": codec.ts(now)}, "channel"
            )

    def add_digest(self, channel: str, event: Event, message: str, now: datetime) -> None:
        """The digest event, its delivery and the channel's last-digest time, at once."""
        entry = OutboxEntry(event, message, (channel,))
        with self._writing() as db:
            write_entries(db.conn, [entry], now)
            upsert_row(
                db.conn, "digests", {"channel": channel, "last_sent_at": codec.ts(now)}, "channel"
            )
        count_events([entry])

    # ---- sends not yet marked ------------------------------------------------------------------

    def _write_sent(self, db: Database) -> None:
        for delivery_id, sent_at in self._sent.items():
            db.conn.execute(
                "UPDATE deliveries SET status = 'sent', sent_at = ?, last_attempt_at = ?, "
                "attempts = attempts + 1, last_error = NULL WHERE id = ?",
                [codec.ts(sent_at), codec.ts(sent_at), delivery_id],
            )

    def _unmarked(self) -> str:
        """SQL that leaves out deliveries sent but not yet marked so."""
        if not self._sent:
            return ""
        return f" AND d.id NOT IN ({', '.join(str(int(i)) for i in self._sent)})"


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(
        id=row[0],
        event_id=row[1],
        channel=row[2],
        attempts=row[3],
        event=Event(
            type=row[5],
            line=row[4],
            created_at=datetime.fromisoformat(row[6]),
            facts=codec.parse_facts(row[7]),
        ),
    )
