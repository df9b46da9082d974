"""Read models: what the CLI, the metrics endpoint, the reports (and a web page) show.

Typed records, decoded here: money Decimal, data int bytes, times aware UTC datetimes.
`Views` is shared by the `Store` and by `View`, which reads a database with plain
`sqlite3`, so read-only commands never import sqlite-utils (nor the numpy it pulls in).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from monitor.forecast import Forecast
from monitor.model import Controls, Level, Reading
from monitor.store import codec, schema
from monitor.store.connection import (
    check_known_schema,
    connect,
    guard_public,
    opening,
    tighten,
)
from monitor.store.ledger import Recharge, recharges
from monitor.store.lines import Point, controls_from

_NO_CONTROLS = Controls()
_NO_FORECASTS: Mapping[str, Forecast] = MappingProxyType({})


class LineStatus(NamedTuple):
    """A line as the database knows it: its state, its last reading's figures, its
    forecasts and what a person said about it. A named tuple, not a frozen dataclass:
    as immutable, and `status` builds thousands of them several times cheaper."""

    line: str
    level: Level | None = None
    checked_at: datetime | None = None
    last_success_at: datetime | None = None
    failures: int = 0
    last_error: str | None = None
    low_since: datetime | None = None
    read_at: datetime | None = None
    """When the last successful reading was taken (None: never)."""
    balance: Decimal | None = None
    currency: str | None = None
    data_remaining: int | None = None
    data_total: int | None = None
    expires_at: datetime | None = None
    status: str | None = None
    renewal_at: datetime | None = None
    renewal_price: Decimal | None = None
    forecasts: Mapping[str, Forecast] = _NO_FORECASTS
    controls: Controls = _NO_CONTROLS
    source: str | None = None
    """Where the last reading came from (`model.SOURCES`); None: never read."""
    carried: frozenset[str] = frozenset()
    """The figures shown from an earlier reading: the last one (recorded by hand, say) did
    not give them, so they keep their last known value rather than turn unknown."""

    @property
    def state(self) -> str:
        return "unknown" if self.level is None else self.level.label

    @property
    def reading(self) -> Reading | None:
        """The last reading's figures: the baseline a top-up is verified against."""
        if self.read_at is None:
            return None
        return Reading(
            line=self.line,
            checked_at=self.read_at,
            balance=self.balance,
            currency=self.currency,
            data_remaining=self.data_remaining,
            data_total=self.data_total,
            expires_at=self.expires_at,
            status=self.status,
            renewal_at=self.renewal_at,
            renewal_price=self.renewal_price,
        )


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One check of a line: its figures, or its error."""

    checked_at: datetime
    ok: bool
    level: Level | None
    balance: Decimal | None
    currency: str | None
    data_remaining: int | None
    data_total: int | None
    expires_at: datetime | None
    status: str | None
    error: str | None
    source: str = "poll"


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event with one of its deliveries (channel None: routed nowhere)."""

    id: int
    created_at: datetime
    line: str | None
    type: str
    message: str | None
    channel: str | None
    status: str | None
    attempts: int | None
    sent_at: datetime | None
    next_attempt_at: datetime | None
    last_error: str | None


_STATUS = """
    SELECT s.line, s.level, s.checked_at, s.last_success_at, s.failures, s.last_error,
           s.low_since, r.checked_at, r.balance, r.currency, r.data_remaining,
           r.data_total, coalesce(r.expires_us, r.expires_at), r.status,
           coalesce(r.renews_us, r.renewal_at), r.renewal_price, s.forecast,
           c.snoozed_until, c.acked_level, c.acked_at, r.source
    FROM line_state s LEFT JOIN readings r ON r.id = s.last_reading_id
    LEFT JOIN line_controls c ON c.line = s.line
"""


_EXPIRES = "coalesce(expires_us, expires_at)"
"""A reading's expiry: integer microseconds (`codec.instant`), or the ISO text of a row
written before migration 0013 moved it (or by hand)."""

_CARRIED: dict[str, tuple[str, ...]] = {
    "balance": ("balance", "currency"),
    "data_remaining": ("data_remaining", "data_total"),
    "expires_at": (_EXPIRES,),
}
"""The figures a reading from outside the poll may leave out, with the columns that go
with each."""


class Views:
    """The read models, on whatever connection the class that has them holds."""

    conn: sqlite3.Connection
    path: Path

    def status(self) -> dict[str, LineStatus]:
        """The latest state and reading of every line the database knows.

        A line whose stored row is the same as at the previous call on this connection
        keeps the record decoded then: the status page, its API and the metrics scrape
        call this again and again on a fleet where few lines change between calls, and
        decoding is most of the time the call takes (bench/web.py)."""
        # the decoding inlined: this runs for every line on every `status` and scrape
        moment, money, forecasts = datetime.fromisoformat, codec.parse_money, codec.parse_forecasts
        instant = codec.parse_instant
        before: dict[str, tuple[Any, LineStatus]] = getattr(self, "_decoded", {})
        decoded: dict[str, tuple[Any, LineStatus]] = {}
        result = {}
        # lines with a reading from outside the poll (the partial index: no table scan)
        others = {
            row[0]
            for row in self.conn.execute(
                "SELECT DISTINCT line FROM readings WHERE source <> 'poll'"
            ).fetchall()
        }
        for row in self.conn.execute(_STATUS).fetchall():
            known = before.get(row[0])
            if known is not None and known[0] == row:
                status = known[1]
            else:
                status = LineStatus(
                    row[0],
                    codec.parse_level(row[1]),
                    moment(row[2]) if row[2] else None,
                    moment(row[3]) if row[3] else None,
                    row[4] or 0,
                    row[5],
                    moment(row[6]) if row[6] else None,
                    moment(row[7]) if row[7] else None,
                    money(row[8]),
                    row[9],
                    row[10],
                    row[11],
                    instant(row[12]),
                    row[13],
                    instant(row[14]),
                    money(row[15]),
                    forecasts(row[16]) if row[16] and row[16] != "{}" else _NO_FORECASTS,
                    controls_from(row[17], row[18], row[19])
                    if row[17] is not None or row[18] is not None or row[19] is not None
                    else _NO_CONTROLS,
                    row[20],
                )
            decoded[row[0]] = (row, status)
            # what is carried comes from earlier readings: asked afresh every time
            result[row[0]] = self._carry(status) if row[0] in others else status
        self._decoded = decoded
        return result

    def _carry(self, status: LineStatus) -> LineStatus:
        """A line some reading from outside the poll has told about (recorded by hand, a
        plan line's balance): a figure its last reading lacks shows its last known value
        from an earlier successful reading, marked carried (one query per figure, and only
        for such lines: a line only ever polled costs nothing more)."""
        if status.read_at is None:
            return status
        carried: dict[str, Any] = {}
        for figure, columns in _CARRIED.items():
            if getattr(status, figure) is not None:
                continue
            row = self.conn.execute(
                f"SELECT {', '.join(columns)} FROM readings WHERE line = ? AND ok = 1 "
                f"AND checked_at < ? AND {columns[0]} IS NOT NULL "
                "ORDER BY checked_at DESC LIMIT 1",
                [status.line, codec.ts(status.read_at)],
            ).fetchone()
            if row is None:
                continue
            if figure == "balance":
                carried.update(balance=codec.parse_money(row[0]))
                if status.currency is None:
                    carried["currency"] = row[1]
            elif figure == "data_remaining":
                carried.update(data_remaining=row[0])
                if status.data_total is None:
                    carried["data_total"] = row[1]
            else:
                carried[figure] = codec.parse_instant(row[0])
        if not carried:
            return status
        return status._replace(**carried, carried=frozenset(k for k in carried if k in _CARRIED))

    def last_currency(self, line: str) -> str | None:
        """The currency of the line's latest reading that had one: a figure read without
        its unit (a manual balance, a provider's credit notice) is in it."""
        row = self.conn.execute(
            "SELECT currency FROM readings WHERE line = ? AND currency IS NOT NULL "
            "ORDER BY id DESC LIMIT 1",
            [line],
        ).fetchone()
        return str(row[0]) if row else None

    def pending_count(self) -> int:
        """Deliveries still to go out: due, retrying, or held for quiet hours. A read model,
        so the metrics endpoint can read it on a connection of its own while delivery
        workers change it."""
        return int(
            self.conn.execute(
                "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'held')"
            ).fetchone()[0]
        )

    def controls(self) -> dict[str, Controls]:
        rows = self.conn.execute(
            "SELECT line, snoozed_until, acked_level, acked_at FROM line_controls"
        ).fetchall()
        return {row[0]: controls_from(row[1], row[2], row[3]) for row in rows}

    def history(self, line: str, since: datetime) -> list[HistoryRow]:
        rows = self.conn.execute(
            "SELECT checked_at, ok, level, balance, currency, data_remaining, data_total, "
            f"{_EXPIRES}, status, error, source FROM readings WHERE line = ? AND checked_at >= ? "
            "ORDER BY checked_at",
            [line, codec.ts(since)],
        ).fetchall()
        return [
            HistoryRow(
                checked_at=datetime.fromisoformat(r[0]),
                ok=bool(r[1]),
                level=codec.parse_level(r[2]),
                balance=codec.parse_money(r[3]),
                currency=r[4],
                data_remaining=r[5],
                data_total=r[6],
                expires_at=codec.parse_instant(r[7]),
                status=r[8],
                error=r[9],
                source=r[10],
            )
            for r in rows
        ]

    def last_raw(self, line: str) -> str | None:
        """What the line's last check was answered (the stored excerpt), for its page."""
        row = self.conn.execute(
            "SELECT id, raw, raw_same FROM readings WHERE line = ? ORDER BY checked_at DESC "
            "LIMIT 1",
            [line],
        ).fetchone()
        if row is None or not row[2]:
            return None if row is None else row[1]
        # the same reply as the line's previous kept one: the line's latest kept reply,
        # when it was kept before this reading (as readings are written, in id order)
        kept = self.conn.execute(
            "SELECT r.raw FROM line_state s JOIN readings r ON r.id = s.last_raw_id "
            "WHERE s.line = ? AND s.last_raw_id < ?",
            [line, row[0]],
        ).fetchone()
        if kept is None:  # a reply kept after it (a reading recorded out of time order)
            kept = self.conn.execute(
                "SELECT raw FROM readings WHERE line = ? AND id < ? AND raw IS NOT NULL "
                "ORDER BY id DESC LIMIT 1",
                [line, row[0]],
            ).fetchone()
        return None if kept is None else kept[0]

    def events(self, since: datetime, line: str | None = None) -> list[EventRow]:
        sql = (
            "SELECT e.id, e.created_at, e.line, e.type, e.message, d.channel, d.status, "
            "d.attempts, d.sent_at, d.next_attempt_at, d.last_error "
            "FROM events e LEFT JOIN deliveries d ON d.event_id = e.id "
            "WHERE e.created_at >= ?"
        )
        params: list[Any] = [codec.ts(since)]
        if line:
            sql += " AND e.line = ?"
            params.append(line)
        rows = self.conn.execute(sql + " ORDER BY e.created_at, e.id, d.channel", params)
        return [
            EventRow(
                id=r[0],
                created_at=datetime.fromisoformat(r[1]),
                line=r[2],
                type=r[3],
                message=r[4],
                channel=r[5],
                status=r[6],
                attempts=r[7],
                sent_at=codec.parse_ts(r[8]),
                next_attempt_at=codec.parse_ts(r[9]),
                last_error=r[10],
            )
            for r in rows.fetchall()
        ]

    def recharge_history(
        self, line: str | None = None, since: datetime | None = None
    ) -> list[Recharge]:
        """The recharge ledger, oldest first."""
        return recharges(self.conn, line, since)

    def series(self, line: str, since: datetime) -> list[Point]:
        """The line's successful readings since a time, oldest first."""
        return [
            Point(datetime.fromisoformat(row[0]), codec.parse_money(row[1]), row[2])
            for row in self.conn.execute(
                "SELECT checked_at, balance, data_remaining FROM readings "
                "WHERE line = ? AND checked_at >= ? AND ok = 1 ORDER BY checked_at",
                [line, codec.ts(since)],
            ).fetchall()
        ]

    def failures_since(self, since: datetime) -> dict[str, tuple[int, str | None]]:
        """Failed checks per line since a time, with the latest error."""
        rows = self.conn.execute(
            "SELECT line, count(*), max(checked_at) FROM readings "
            "WHERE ok = 0 AND checked_at >= ? GROUP BY line",
            [codec.ts(since)],
        ).fetchall()
        result = {}
        for line, count, last in rows:
            error = self.conn.execute(
                "SELECT error FROM readings WHERE line = ? AND checked_at = ? AND ok = 0",
                [line, last],
            ).fetchone()
            result[line] = (int(count), error[0] if error else None)
        return result


@guard_public
class View(Views):
    """The read models of a database file, on a plain `sqlite3` connection of its own."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open_existing(cls, path: Path) -> View | None:
        """The database if it exists; never creates one. A database an older version left
        is migrated first (by the store, as opening it for writing would)."""
        if not path.exists():
            return None
        tighten(path)
        conn = connect(path)
        with opening(path, conn.close):
            applied = check_known_schema(conn, path)
        if len(applied) < len(schema.NAMES):
            conn.close()
            from monitor.store.database import Store

            Store.open(path).close()
            conn = connect(path)
        conn.execute("PRAGMA query_only = ON")
        return cls(conn, path)

    def close(self) -> None:
        self.conn.close()
