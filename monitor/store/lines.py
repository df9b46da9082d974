"""Lines: checks and their readings, line state, controls (snooze, acknowledge), series,
retention and the daily roll-ups.

The per-check path is plain SQL (`insert_row`, `upsert_row`): sqlite-utils' table introspection
on every call would cost more than the write itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from monitor.forecast import Forecast
from monitor.model import Controls, Level, LineState, Reading
from monitor.store import codec
from monitor.store.connection import Connection, insert_row, upsert_row
from monitor.store.outbox import OutboxEntry, count_events, write_entries

if TYPE_CHECKING:
    from sqlite_utils import Database

_STATE_COLUMNS = (
    "line, level, metrics, low_since, last_alert_at, failures, failure_alerted, last_error, "
    "checked_at, last_success_at, notices"
)


@dataclass(frozen=True)
class Check:
    """One check on its way to the database: its reading (or failure), the line's new state,
    and its events bound for the outbox. Written in one transaction, all or none."""

    line: str
    checked_at: datetime
    state: LineState
    events: Sequence[OutboxEntry] = ()
    reading: Reading | None = None
    error: str | None = None
    raw: str | None = None
    """A failed check's reply (what the provider or modem answered), kept with it; a
    reading carries its own."""
    duration_ms: int | None = None
    forecasts: Sequence[Forecast] | None = None
    """None leaves the line's stored forecasts as they are (a failed check)."""
    snoozed: bool = False
    """The line is snoozed: its deliveries are held, not sent."""
    sent: Sequence[Collection[str]] | None = None
    """Per event, the channels it already went to directly (while the database could not
    be written): recorded as sent, never sent again."""
    based_on: LineState | None = None
    """The state this check was judged from. When set, the check is written only if the
    line's stored state is still that one (same `checked_at`): a reading recorded by
    another process meanwhile is never overwritten by a judgment that did not see it."""


class Point(NamedTuple):
    """One successful reading in a line's series (a tuple: thousands are read per cycle)."""

    at: datetime
    balance: Decimal | None
    data: int | None


class Lines(Connection):
    _owed: list[Check]

    # ---- line state -------------------------------------------------------------------

    def states(self) -> dict[str, LineState]:
        """Every line's state; a state still owed to the database (see `owe`) wins."""
        # plain SQL, not `db[table].rows`: that reads a missing table as an empty one
        rows = self.conn.execute(f"SELECT {_STATE_COLUMNS} FROM line_state").fetchall()
        states = {row[0]: state_from_row(row) for row in rows}
        states.update((check.line, check.state) for check in self._owed)
        return states

    def state(self, line: str) -> LineState:
        owed = [check.state for check in self._owed if check.line == line]
        if owed:
            return owed[-1]
        row = self.conn.execute(
            f"SELECT {_STATE_COLUMNS} FROM line_state WHERE line = ?", [line]
        ).fetchone()
        return state_from_row(row) if row else LineState(line=line)

    # ---- one check, atomically ---------------------------------------------------------

    def record_checks(self, checks: Sequence[Check], now: datetime) -> list[str]:
        """Several checks in one transaction: each its reading (or failure), the line's new
        state, its events and one pending delivery per routed channel. Returns the lines
        whose check was stale (see `Check.based_on`): nothing of those was written, so the
        caller judges them again against the state now stored."""
        if not checks:
            return []
        stale: list[str] = []
        with self._writing() as db:
            for check in checks:
                if check.based_on is not None and self._moved(db.conn, check.based_on):
                    stale.append(check.line)
                    continue
                self._write_check(db, check, now)
        count_events(entry for check in checks if check.line not in stale for entry in check.events)
        return stale

    @staticmethod
    def _moved(conn: sqlite3.Connection, based_on: LineState) -> bool:
        """Whether the line's stored state is no longer the one a check was judged from
        (inside the write transaction, so nobody can change it before the check is written)."""
        row = conn.execute(
            "SELECT checked_at FROM line_state WHERE line = ?", [based_on.line]
        ).fetchone()
        stored = codec.parse_ts(row[0]) if row else None
        return stored != based_on.checked_at

    def _write_check(self, db: Database, check: Check, now: datetime) -> list[int]:
        reading = _reading_row(check)
        # compared in SQL: the previous reply is not copied out for every check
        previous = db.conn.execute(
            "SELECT s.last_reading_id, s.last_raw_id, r.raw IS ? FROM line_state s "
            "LEFT JOIN readings r ON r.id = s.last_raw_id WHERE s.line = ?",
            [reading["raw"], check.line],
        ).fetchone()
        last_reading_id, last_raw_id, same_raw = previous or (None, None, 0)
        # a reply the same as the line's previous kept one is kept once (a failed check's
        # reply is kept whole: it says why)
        if check.reading is not None and reading["raw"] is not None and same_raw:
            reading.update(raw=None, raw_same=1)
        reading_id = insert_row(db.conn, "readings", reading)
        row = _state_row(check.state)
        if check.forecasts is not None:
            row["forecast"] = codec.forecasts(check.forecasts)
        row["last_reading_id"] = reading_id if check.reading is not None else last_reading_id
        row["last_raw_id"] = reading_id if reading.get("raw") is not None else last_raw_id
        upsert_row(db.conn, "line_state", row, "line")
        return write_entries(db.conn, check.events, now, snoozed=check.snoozed, sent=check.sent)

    # ---- snooze and acknowledge ----------------------------------------------------------

    def snooze(self, line: str, until: datetime | None) -> None:
        with self._writing() as db:
            db["line_controls"].upsert({"line": line, "snoozed_until": codec.ts(until)}, pk="line")

    def acknowledge(self, line: str, level: Level | None, now: datetime) -> None:
        with self._writing() as db:
            db["line_controls"].upsert(
                {
                    "line": line,
                    "acked_level": codec.level(level),
                    "acked_at": codec.ts(now) if level else None,
                },
                pk="line",
            )

    # ---- series ----------------------------------------------------------------------------

    def series_many(
        self, lines: Sequence[str], since: datetime, limit: int = 1000
    ) -> dict[str, list[Point]]:
        """The newest `limit` readings of many lines since a time: one query per few
        hundred lines, not one each, and no more rows than the caller uses."""
        found: dict[str, list[Point]] = {}
        newest = (
            "SELECT * FROM (SELECT line, checked_at, balance, data_remaining FROM readings "
            "WHERE line = ? AND checked_at >= ? AND ok = 1 ORDER BY checked_at DESC LIMIT ?)"
        )
        start_ts = codec.ts(since)
        for start in range(0, len(lines), 100):
            chunk = list(lines[start : start + 100])
            # one statement, each line's part walking the (line, checked_at) index backwards
            sql = " UNION ALL ".join([newest] * len(chunk))
            params = [value for line in chunk for value in (line, start_ts, limit)]
            for line, at, balance, data in self.conn.execute(sql, params).fetchall():
                found.setdefault(line, []).append(
                    Point(datetime.fromisoformat(at), codec.parse_money(balance), data)
                )
        for points in found.values():
            points.sort()
        return found

    # ---- retention -------------------------------------------------------------------------

    def prune(self, before: datetime, batch: int = 5000) -> int:
        """Roll raw readings older than `before` up into one row per line and UTC day, and
        delete them (never a line's latest reading, nor the one holding its latest kept raw
        reply: later readings that repeat it point there). Returns how many were rolled up."""
        total = 0
        while True:
            with self._writing() as db:
                rows = db.conn.execute(
                    "SELECT id, line, substr(checked_at, 1, 10), ok, balance, currency, "
                    "data_remaining FROM readings WHERE checked_at < ? AND id NOT IN "
                    "(SELECT last_reading_id FROM line_state WHERE last_reading_id IS NOT NULL "
                    "UNION SELECT last_raw_id FROM line_state WHERE last_raw_id IS NOT NULL) "
                    "ORDER BY line, checked_at LIMIT ?",
                    [codec.ts(before), batch],
                ).fetchall()
                if not rows:
                    return total
                groups: dict[tuple[str, str], list[Sequence[Any]]] = {}
                for row in rows:
                    groups.setdefault((row[1], row[2]), []).append(row)
                for (line, day), members in groups.items():
                    db["readings_daily"].upsert(
                        _rollup(db.conn, line, day, members), pk=("line", "day")
                    )
                db.conn.execute(
                    f"DELETE FROM readings WHERE id IN ({','.join('?' * len(rows))})",
                    [row[0] for row in rows],
                )
                total += len(rows)


def controls_from(
    snoozed_until: str | None, acked_level: str | None, acked_at: str | None
) -> Controls:
    return Controls(
        snoozed_until=codec.parse_ts(snoozed_until),
        acked_level=codec.parse_level(acked_level),
        acked_at=codec.parse_ts(acked_at),
    )


def state_from_row(row: Sequence[Any]) -> LineState:
    """A LineState from the `_STATE_COLUMNS` of its row."""
    return LineState(
        line=row[0],
        level=codec.parse_level(row[1]),
        metrics=codec.parse_metrics(row[2]),
        low_since=codec.parse_ts(row[3]),
        last_alert_at=codec.parse_ts(row[4]),
        failures=row[5] or 0,
        failure_alerted=bool(row[6]),
        last_error=row[7],
        checked_at=codec.parse_ts(row[8]),
        last_success_at=codec.parse_ts(row[9]),
        notices=codec.parse_notices(row[10]),
    )


def _reading_row(check: Check) -> dict[str, Any]:
    reading = check.reading
    row: dict[str, Any] = {
        "line": check.line,
        "checked_at": codec.ts(check.checked_at),
        "ok": codec.flag(reading is not None),
        "level": codec.level(check.state.level),
        "error": codec.clip(check.error),
        "raw": codec.clip(check.raw),
        "duration_ms": check.duration_ms,
    }
    if reading is not None:
        row.update(
            balance=codec.money(reading.balance),
            currency=reading.currency,
            data_remaining=reading.data_remaining,
            data_total=reading.data_total,
            expires_us=codec.instant(reading.expires_at),
            status=reading.status,
            renews_us=codec.instant(reading.renewal_at),
            renewal_price=codec.money(reading.renewal_price),
            extras=codec.extras(reading.extras),
            raw=codec.raw(reading.raw),
            source=reading.source,
        )
    return row


def _state_row(state: LineState) -> dict[str, Any]:
    return {
        "line": state.line,
        "level": codec.level(state.level),
        "metrics": codec.metrics(state.metrics),
        "low_since": codec.ts(state.low_since),
        "last_alert_at": codec.ts(state.last_alert_at),
        "failures": state.failures,
        "failure_alerted": codec.flag(state.failure_alerted),
        "last_error": codec.clip(state.last_error),
        "checked_at": codec.ts(state.checked_at),
        "last_success_at": codec.ts(state.last_success_at),
        "notices": codec.notices(state.notices),
    }


def _rollup(
    conn: sqlite3.Connection, line: str, day: str, rows: list[Sequence[Any]]
) -> dict[str, Any]:
    """One day's summary, merged into what an earlier pass already rolled up for that day."""
    existing = conn.execute(
        "SELECT readings, failures, balance_min, balance_max, balance_last, currency, "
        "data_min, data_max, data_last FROM readings_daily WHERE line = ? AND day = ?",
        [line, day],
    ).fetchone()
    balances = [Decimal(r[4]) for r in rows if r[4] is not None]
    data = [r[6] for r in rows if r[6] is not None]
    currency = next((r[5] for r in reversed(rows) if r[5]), None)
    if existing:
        balances += [Decimal(v) for v in existing[2:4] if v is not None]
        data += [v for v in existing[6:8] if v is not None]
        currency = currency or existing[5]
    last_balance = next((r[4] for r in reversed(rows) if r[4] is not None), None)
    last_data = next((r[6] for r in reversed(rows) if r[6] is not None), None)
    return {
        "line": line,
        "day": day,
        "readings": len(rows) + (existing[0] if existing else 0),
        "failures": sum(1 for r in rows if not r[3]) + (existing[1] if existing else 0),
        "balance_min": codec.money(min(balances)) if balances else None,
        "balance_max": codec.money(max(balances)) if balances else None,
        "balance_last": last_balance or (existing[4] if existing else None),
        "currency": currency,
        "data_min": min(data) if data else None,
        "data_max": max(data) if data else None,
        "data_last": last_data if last_data is not None else (existing[8] if existing else None),
    }
