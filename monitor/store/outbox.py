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

    def channel_queue(self, channel: str, now: datetime) -> list[Delivery]:
        """A channel's pending rows in the order their events came, up to the first one
        not due yet: a channel's messages go strictly in order, so nothing overtakes a
        row that waits for its retry."""
        blocked = self.conn.execute(
            "SELECT min(d.id) FROM deliveries d WHERE d.channel = ? AND d.status = 'pending' "
            "AND d.next_attempt_at > ?" + self._unmarked(),
            [channel, codec.ts(now)],
        ).fetchone()[0]
        rows = self.conn.execute(
            _DELIVERY + "WHERE d.channel = ? AND d.status = 'pending' AND d.id < ? ORDER BY d.id",
            [channel, blocked if blocked is not None else 2**63 - 1],
        ).fetchall()
        return [_delivery(row) for row in rows if row[0] not in self._sent]

    def channel_next_at(self, channel: str) -> datetime | None:
        """When a channel next has something to send: a row's retry, or quiet hours' end."""
        row = self.conn.execute(
            "SELECT min(next_attempt_at) FROM deliveries d WHERE d.channel = ? "
            "AND d.status IN ('pending', 'held')" + self._unmarked(),
            [channel],
        ).fetchone()
        return codec.parse_ts(row[0])

    def pending_channels(self) -> set[str]:
        """The channels that pending or held rows are bound for."""
        rows = self.conn.execute(
            "SELECT DISTINCT channel FROM deliveries WHERE status IN ('pending', 'held')"
        ).fetchall()
        return {row[0] for row in rows}

    def next_delivery_at(self) -> datetime | None:
        row = self.conn.execute(
            "SELECT min(next_attempt_at) FROM deliveries d WHERE status = 'pending'"
            + self._unmarked()
        ).fetchone()
        return codec.parse_ts(row[0])

    def delivered(self, delivery_id: int, now: datetime) -> None:
        """Mark a delivery sent. A send is a fact: when the mark cannot be written, it is
        remembered (the row is never sent again) and written by `settle`."""
        self.delivered_all([delivery_id], now)

    def delivered_all(self, delivery_ids: Sequence[int], now: datetime) -> None:
        """Mark the rows of one message sent, in one transaction (see `delivered`)."""
        self._sent.update(dict.fromkeys(delivery_ids, now))
        try:
            with self._writing() as db:
                self._write_sent(db)
        except StoreError:
            return
        self._sent = {}

    def delivery_failed(
        self, delivery_id: int, error: str, now: datetime, retry_at: datetime
    ) -> None:
        self.deliveries_failed([delivery_id], error, now, retry_at)

    def deliveries_failed(
        self, delivery_ids: Sequence[int], error: str, now: datetime, retry_at: datetime
    ) -> None:
        """The rows of one message failed together: one attempt more each, one retry time."""
        with self._writing() as db:
            db.conn.executemany(
                "UPDATE deliveries SET attempts = attempts + 1, last_attempt_at = ?, "
                "last_error = ?, next_attempt_at = ? WHERE id = ?",
                [(codec.ts(now), error, codec.ts(retry_at), i) for i in delivery_ids],
            )

    def defer_channel(self, channel: str, until: datetime) -> None:
        """A channel's pending rows due before `until` wait until then: the row ahead of
        them waits for its retry (or its group), and they keep their place behind it."""
        with self._writing() as db:
            db.conn.execute(
                "UPDATE deliveries SET next_attempt_at = ? WHERE channel = ? "
                "AND status = 'pending' AND next_attempt_at < ?",
                [codec.ts(until), channel, codec.ts(until)],
            )

    def drop_channels(self, channels: Collection[str], reason: str) -> dict[str, int]:
        """Pending and held rows of channels that left the config: kept, never sent.
        Returns how many per channel."""
        dropped = {}
        with self._writing() as db:
            for channel in channels:
                cursor = db.conn.execute(
                    "UPDATE deliveries SET status = 'dropped', last_error = ? "
                    "WHERE channel = ? AND status IN ('pending', 'held')",
                    [reason, channel],
                )
                if cursor.rowcount:
                    dropped[channel] = cursor.rowcount
        return dropped

    def hold(self, delivery_id: int, until: datetime) -> None:
        """Quiet hours: keep the row for the catch-up message at the window's end."""
        self.hold_all([delivery_id], until)

    def hold_all(self, delivery_ids: Sequence[int], until: datetime) -> None:
        with self._writing() as db:
            db.conn.executemany(
                "UPDATE deliveries SET status = 'held', next_attempt_at = ? WHERE id = ?",
                [(codec.ts(until), i) for i in delivery_ids],
            )

    def held_due(self, now: datetime, channel: str | None = None) -> dict[str, list[Delivery]]:
        """Held rows whose quiet hours are over, by channel (of `channel` only, if given)."""
        where = "" if channel is None else "AND d.channel = ? "
        rows = self.conn.execute(
            _DELIVERY
            + "WHERE d.status = 'held' AND d.next_attempt_at <= ? "
            + where
            + "ORDER BY d.channel, e.created_at, d.id",
            [codec.ts(now)] + ([] if channel is None else [channel]),
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
