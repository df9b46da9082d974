"""The history database (SQLite through sqlite-utils): readings, line state, events, outbox.

One transaction per check writes the reading, the new line state, its events and their
deliveries, so a crash or `kill -9` leaves either all of them or none. Times are UTC
ISO-8601 text (sortable), money is exact decimal text, data is integer bytes.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import sqlite3
import stat
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlite_utils import Database, Migrations

from monitor.errors import DatabaseUnusable, StoreError
from monitor.model import Controls, Event, Level, LineState, Reading, utcnow

migrations = Migrations("esim-monitor")

EXCERPT_BYTES = 4096
"""Most of a provider's text kept per reading (its raw answer, an error): a row is history,
not an archive, and a provider that sends megabytes must not grow the database by them."""


def clip(text: str | None, limit: int = EXCERPT_BYTES) -> str | None:
    """At most `limit` bytes of UTF-8, cut on a character boundary, marked when cut."""
    if text is None or len(text) <= limit // 4:
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    mark = "…[cut]"
    room = limit - len(mark.encode())
    return data[:room].decode("utf-8", "ignore") + mark


_ALL_STATES = "SELECT * FROM line_state"
_P = ParamSpec("_P")
_R = TypeVar("_R")

_UNUSABLE_CODES = {
    sqlite3.SQLITE_CORRUPT,
    sqlite3.SQLITE_NOTADB,
    sqlite3.SQLITE_FORMAT,
}
"""Primary result codes after which no retry and no restart can help."""
_SCHEMA_MESSAGES = ("no such table", "no such column", "malformed database schema")
"""SQLITE_ERROR texts that say the schema is not the one our migrations made."""
MOVE_ASIDE = (
    "If the file is damaged, stop the daemon, move the file aside and start again "
    "(history starts afresh)"
)
PRIVATE_FILES = ("", "-wal", "-shm", "-journal")
"""The database and the files SQLite keeps beside it: all of them hold the history."""


def translate(exc: BaseException, path: Path) -> StoreError | None:
    """The project's error for what SQLite (or decoding its rows) raised, or None when it
    is none of the database's business. Corrupt, not a database, a schema or contents we
    cannot read: DatabaseUnusable (65, no restart helps). Busy, locked, full, read-only,
    I/O and the like: StoreError (1, it may pass)."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)):
        return None  # a constraint our own code broke, a closed connection: a bug, not the file
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        text = str(exc)
        if code is not None and code & 0xFF in _UNUSABLE_CODES:
            return DatabaseUnusable(f"cannot use the database at {path}: {text}. {MOVE_ASIDE}")
        if code is None and text.startswith("Could not decode"):
            return DatabaseUnusable(f"cannot read the database at {path}: {text}. {MOVE_ASIDE}")
        if (code is None or code & 0xFF == sqlite3.SQLITE_ERROR) and any(
            m in text for m in _SCHEMA_MESSAGES
        ):
            return DatabaseUnusable(
                f"cannot read the database at {path}: its schema is not one esim-monitor "
                f"made ({text}). {MOVE_ASIDE}"
            )
        return StoreError(f"cannot use the database at {path}: {text}")
    if isinstance(exc, (ValueError, KeyError, InvalidOperation)):  # a row we cannot decode
        return DatabaseUnusable(
            f"cannot read the database at {path}: a stored value is damaged "
            f"({type(exc).__name__}: {exc}). {MOVE_ASIDE}"
        )
    return None


def _guarded(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Every public Store method raises the project's errors only (see `translate`)."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except (sqlite3.Error, ValueError, KeyError, InvalidOperation) as exc:
            mapped = translate(exc, args[0].path)  # type: ignore[attr-defined]
            if mapped is None or mapped is exc:
                raise
            raise mapped from None

    return wrapper


def tighten(path: Path) -> None:
    """Make the database and its companion files owner-only, whatever made them wider:
    they hold the history, tokens and the recharge ledger."""
    for suffix in PRIVATE_FILES:
        target = path.with_name(path.name + suffix)
        try:
            mode = target.stat().st_mode
            if stat.S_IMODE(mode) & 0o077:
                target.chmod(stat.S_IMODE(mode) & 0o700 | 0o600)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StoreError(f"cannot make {target} private (mode 0600): {exc.strerror}") from None


@migrations(name="0001_wal", transactional=False)
def _wal(db: Database) -> None:
    db.execute("PRAGMA journal_mode=WAL")


@migrations(name="0002_core")
def _core(db: Database) -> None:
    db["readings"].create(
        {
            "id": int,
            "line": str,
            "checked_at": str,
            "ok": int,
            "level": str,
            "balance": str,
            "currency": str,
            "data_remaining": int,
            "data_total": int,
            "expires_at": str,
            "status": str,
            "renewal_at": str,
            "renewal_price": str,
            "extras": str,
            "error": str,
            "raw": str,
            "duration_ms": int,
        },
        pk="id",
        not_null={"line", "checked_at", "ok"},
    )
    db["readings"].create_index(["line", "checked_at"], if_not_exists=True)
    db["line_state"].create(
        {
            "line": str,
            "level": str,
            "metrics": str,
            "low_since": str,
            "last_alert_at": str,
            "failures": int,
            "failure_alerted": int,
            "last_error": str,
            "checked_at": str,
            "last_success_at": str,
            "last_reading_id": int,
        },
        pk="line",
        defaults={"failures": 0, "failure_alerted": 0},
    )
    db["events"].create(
        {
            "id": int,
            "line": str,
            "type": str,
            "created_at": str,
            "message": str,
            "facts": str,
        },
        pk="id",
        not_null={"type", "created_at"},
    )
    db["events"].create_index(["created_at"], if_not_exists=True)
    db["events"].create_index(["line", "created_at"], if_not_exists=True)
    db["deliveries"].create(
        {
            "id": int,
            "event_id": int,
            "channel": str,
            "status": str,
            "attempts": int,
            "next_attempt_at": str,
            "last_attempt_at": str,
            "sent_at": str,
            "last_error": str,
        },
        pk="id",
        foreign_keys=[("event_id", "events", "id")],
        not_null={"event_id", "channel", "status"},
        defaults={"attempts": 0},
    )
    db["deliveries"].create_index(["status", "next_attempt_at"], if_not_exists=True)
    db["deliveries"].create_index(["event_id"], if_not_exists=True)


@migrations(name="0003_notices_tokens")
def _notices_tokens(db: Database) -> None:
    db["line_state"].add_column("notices", str)
    db["tokens"].create(
        {"key": str, "value": str, "expires_at": str, "updated_at": str},
        pk="key",
        not_null={"value", "updated_at"},
        if_not_exists=True,
    )


@migrations(name="0004_controls_forecasts_digests")
def _controls(db: Database) -> None:
    db["line_controls"].create(
        {"line": str, "snoozed_until": str, "acked_level": str, "acked_at": str}, pk="line"
    )
    db["line_state"].add_column("forecast", str)
    db["digests"].create({"channel": str, "last_sent_at": str}, pk="channel")


@migrations(name="0005_daily_rollups")
def _rollups(db: Database) -> None:
    db["readings_daily"].create(
        {
            "line": str,
            "day": str,
            "readings": int,
            "failures": int,
            "balance_min": str,
            "balance_max": str,
            "balance_last": str,
            "currency": str,
            "data_min": int,
            "data_max": int,
            "data_last": int,
        },
        pk=("line", "day"),
    )


@migrations(name="0006_recharge_ledger")
def _ledger(db: Database) -> None:
    db["recharges"].create(
        {
            "id": int,
            "line": str,
            "key": str,
            "state": str,
            "action": str,
            "package": str,
            "amount": str,
            "price": str,
            "currency": str,
            "dry_run": int,
            "manual": int,
            "requested_at": str,
            "submitted_at": str,
            "settled_at": str,
            "baseline_balance": str,
            "baseline_data": int,
            "reference": str,
            "detail": str,
        },
        pk="id",
        not_null={"line", "key", "state", "action", "requested_at"},
    )
    db["recharges"].create_index(["key"], unique=True, if_not_exists=True)
    db["recharges"].create_index(["line", "requested_at"], if_not_exists=True)
    db["recharge_needs"].create({"line": str, "since": str}, pk="line")
    db["recharge_pins"].create(
        {"pin_hash": str, "line": str, "used_at": str, "recharge_id": int}, pk="pin_hash"
    )


@migrations(name="0007_account_alerts")
def _account_alerts(db: Database) -> None:
    db["account_alerts"].create({"account": str, "alerted_at": str}, pk="account")


def ts(moment: datetime | None) -> str | None:
    """UTC ISO-8601 text with a fixed shape, so text order is time order."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_ts(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class Delivery:
    """One event bound for one channel: a row of the outbox."""

    id: int
    event_id: int
    channel: str
    attempts: int
    event: Event


class Store:
    """The database of one daemon. Not shared across threads: the caller serialises writes."""

    MAX_OWED = 10_000
    """Checks kept in memory while the database cannot be written (see `owe`)."""

    def __init__(self, db: Database, path: Path) -> None:
        self.db = db
        self.path = path
        self._owed: list[dict[str, Any]] = []
        self._sent: dict[int, datetime] = {}
        """Deliveries sent whose mark could not be written yet: never sent again."""

    @classmethod
    def open(cls, path: Path, *, verify: bool = False) -> Store:
        """Open (creating if needed, mode 0600) and migrate the database. `verify` reads
        every page first (PRAGMA quick_check), so damage anywhere is found now, not by
        some later query: the daemon's start does that."""
        try:
            make_private_dirs(path.parent)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
        except OSError as exc:
            raise DatabaseUnusable(
                f"cannot create the database at {path}: {exc.strerror}; set [monitor] database "
                "to a writable path"
            ) from None
        tighten(path)
        db = cls._connect(path)
        try:
            if verify:
                _quick_check(db, path)
            _check_known_schema(db, path)
            migrations.apply(db)
        except (sqlite3.Error, ValueError, KeyError) as exc:
            db.close()
            mapped = translate(exc, path)
            if mapped is None:
                raise
            raise mapped from None
        except BaseException:
            db.close()
            raise
        return cls(db, path)

    @classmethod
    def open_existing(cls, path: Path) -> Store | None:
        """For commands that only read: the database if it exists; never creates one."""
        return cls.open(path) if path.exists() else None

    @classmethod
    def open_memory(cls) -> Store:
        """A migrated database in memory: where a daemon whose file is unusable keeps its
        state and outbox meanwhile, so checks and alerts go on."""
        conn = sqlite3.connect(":memory:", check_same_thread=False)
        conn.execute("PRAGMA foreign_keys=ON")
        db = Database(conn, execute_plugins=False)
        migrations.apply(db)
        return cls(db, Path(":memory:"))

    @staticmethod
    def _connect(path: Path) -> Database:
        try:
            conn = sqlite3.connect(str(path), timeout=10.0, check_same_thread=False)
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:  # corrupt: 65; locked, I/O: may pass, so exit 1
            mapped = translate(exc, path)
            raise (mapped or StoreError(f"cannot open the database at {path}: {exc}")) from None
        return Database(conn, execute_plugins=False)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a last chance for what is owed; else lost
            self.settle(utcnow())
        self.db.close()

    @contextmanager
    def _writing(self) -> Iterator[Database]:
        """One write transaction. BEGIN IMMEDIATE takes the write lock up front, so a
        database another process holds is waited for (busy timeout), not failed at once
        as a read transaction upgrading to a write would be."""
        conn = self.db.conn
        try:
            if conn.in_transaction:
                with self.db.atomic():
                    yield self.db
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        except sqlite3.Error as exc:
            mapped = translate(exc, self.path)
            if mapped is None:
                raise
            if isinstance(mapped, DatabaseUnusable):
                raise mapped from None
            raise StoreError(f"cannot write to the database at {self.path}: {exc}") from None

    # ---- line state -------------------------------------------------------------------

    def states(self) -> dict[str, LineState]:
        """Every line's state; a state still owed to the database (see `owe`) wins."""
        # plain SQL, not `db[table].rows`: that reads a missing table as an empty one
        states = {row["line"]: _state_from_row(row) for row in self.db.query(_ALL_STATES)}
        states.update((check["line"], check["state"]) for check in self._owed)
        return states

    def state(self, line: str) -> LineState:
        owed = [check["state"] for check in self._owed if check["line"] == line]
        if owed:
            return owed[-1]
        rows = list(self.db.query(_ALL_STATES + " WHERE line = ?", [line]))
        return _state_from_row(rows[0]) if rows else LineState(line=line)

    # ---- what the database could not take yet ------------------------------------------

    def owe(self, checks: Sequence[dict[str, Any]]) -> None:
        """Keep checks the database could not take (`record_check`'s keywords, plus `sent`:
        per event, the channels it already went to directly) until `settle` writes them.
        Meanwhile `states` answers with their states, so the transitions they raised are
        not raised, nor sent, again. Past `MAX_OWED`, the oldest checks without events
        that a later check of their line supersedes are let go."""
        self._owed.extend(checks)
        if len(self._owed) <= self.MAX_OWED:
            return
        latest = {check["line"]: i for i, check in enumerate(self._owed)}
        excess = len(self._owed) - self.MAX_OWED
        kept = []
        for i, check in enumerate(self._owed):
            if excess and not check["events"] and latest[check["line"]] != i:
                excess -= 1
                continue
            kept.append(check)
        self._owed = kept

    @property
    def owing(self) -> int:
        """Checks and delivery marks waiting for the database."""
        return len(self._owed) + len(self._sent)

    def settle(self, now: datetime) -> list[str]:
        """Write what is owed: delivery marks and checks, in one transaction. A StoreError
        keeps all of it for the next try; a check the database refuses for its own data is
        let go after the others are written. Returns the lines of checks let go."""
        if not self._owed and not self._sent:
            return []
        try:
            with self._writing() as db:
                self._write_sent(db)
                for check in self._owed:
                    self._write_check(db, **check, now=now)
        except StoreError:
            raise
        except Exception:
            pass
        else:
            self._owed, self._sent = [], {}
            return []
        with self._writing() as db:
            self._write_sent(db)
        self._sent = {}
        dropped = []
        while self._owed:
            check = self._owed[0]
            try:
                with self._writing() as db:
                    self._write_check(db, **check, now=now)
            except StoreError:
                raise
            except Exception:
                dropped.append(check["line"])
            self._owed.pop(0)
        return dropped

    def _write_sent(self, db: Database) -> None:
        for delivery_id, sent_at in self._sent.items():
            db.execute(
                "UPDATE deliveries SET status = 'sent', sent_at = ?, last_attempt_at = ?, "
                "attempts = attempts + 1, last_error = NULL WHERE id = ?",
                [ts(sent_at), ts(sent_at), delivery_id],
            )

    def _unmarked(self) -> str:
        """SQL that leaves out deliveries sent but not yet marked so."""
        if not self._sent:
            return ""
        return f" AND d.id NOT IN ({', '.join(str(int(i)) for i in self._sent)})"

    # ---- one check, atomically ---------------------------------------------------------

    def record_checks(self, checks: Sequence[dict[str, Any]], now: datetime) -> None:
        """Several checks (`record_check`'s keywords each) in one transaction."""
        if not checks:
            return
        with self._writing() as db:
            for check in checks:
                self._write_check(db, **check, now=now)

    def record_check(
        self,
        *,
        line: str,
        checked_at: datetime,
        state: LineState,
        events: Sequence[tuple[Event, str, Iterable[str]]],
        reading: Reading | None = None,
        error: str | None = None,
        duration_ms: int | None = None,
        forecasts: dict[str, Any] | None = None,
        snoozed: bool = False,
        now: datetime,
    ) -> list[int]:
        """Write a check's reading (or failure), the line's new state, its events and one
        pending delivery per routed channel, in one transaction. Returns the event ids."""
        with self._writing() as db:
            return self._write_check(
                db,
                line=line,
                checked_at=checked_at,
                state=state,
                events=events,
                reading=reading,
                error=error,
                duration_ms=duration_ms,
                forecasts=forecasts,
                snoozed=snoozed,
                now=now,
            )

    def _write_check(
        self,
        db: Database,
        *,
        line: str,
        checked_at: datetime,
        state: LineState,
        events: Sequence[tuple[Event, str, Iterable[str]]],
        reading: Reading | None,
        error: str | None,
        duration_ms: int | None,
        forecasts: dict[str, Any] | None,
        snoozed: bool,
        now: datetime,
        sent: Sequence[Collection[str]] | None = None,
    ) -> list[int]:
        event_ids = []
        reading_id = _insert(
            db, "readings", _reading_row(line, checked_at, reading, error, state, duration_ms)
        )
        row = _state_row(state)
        if forecasts is not None:
            row["forecast"] = json.dumps(forecasts)
        if reading is not None:
            row["last_reading_id"] = reading_id
        else:
            previous = db.execute(
                "SELECT last_reading_id FROM line_state WHERE line = ?", [line]
            ).fetchone()
            row["last_reading_id"] = previous[0] if previous else None
        _upsert(db, "line_state", row, "line")
        for i, (event, message, channels) in enumerate(events):
            done = sent[i] if sent is not None else ()
            event_ids.append(
                self._add_event(db, event, message, channels, now, snoozed=snoozed, sent=done)
            )
        return event_ids

    def add_events(self, events: Sequence[tuple[Event, str, Iterable[str]]], now: datetime) -> None:
        with self._writing() as db:
            for event, message, channels in events:
                self._add_event(db, event, message, channels, now)

    @staticmethod
    def _add_event(
        db: Database,
        event: Event,
        message: str,
        channels: Iterable[str],
        now: datetime,
        snoozed: bool = False,
        sent: Collection[str] = (),
    ) -> int:
        """An event and one delivery per channel: pending, or already `sent` (directly, when
        the database could not be written), or held for a snoozed line."""
        event_id = _insert(
            db,
            "events",
            {
                "line": event.line,
                "type": event.type,
                "created_at": ts(event.created_at),
                "message": message,
                "facts": json.dumps(event.facts, default=str),
            },
        )
        for channel in channels:
            row: dict[str, Any] = {
                "event_id": event_id,
                "channel": channel,
                "status": "snoozed" if snoozed else "pending",
                "attempts": 0,
                "next_attempt_at": ts(now),
            }
            if channel in sent:
                at = ts(event.created_at)
                row.update(status="sent", attempts=1, sent_at=at, last_attempt_at=at)
            _insert(db, "deliveries", row)
        return event_id

    # ---- outbox -----------------------------------------------------------------------

    def due_deliveries(self, now: datetime) -> list[Delivery]:
        rows = self.db.execute(
            """
            SELECT d.id, d.event_id, d.channel, d.attempts,
                   e.line, e.type, e.created_at, e.facts
            FROM deliveries d JOIN events e ON e.id = d.event_id
            WHERE d.status = 'pending' AND d.next_attempt_at <= ?
            ORDER BY d.next_attempt_at, d.id
            """,
            [ts(now)],
        ).fetchall()
        return [_delivery(row) for row in rows if row[0] not in self._sent]

    def next_delivery_at(self) -> datetime | None:
        row = self.db.execute(
            "SELECT min(next_attempt_at) FROM deliveries d WHERE status = 'pending'"
            + self._unmarked()
        ).fetchone()
        return parse_ts(row[0])

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
            db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_attempt_at = ?, "
                "last_error = ?, next_attempt_at = ? WHERE id = ?",
                [ts(now), error, ts(retry_at), delivery_id],
            )

    def defer(self, delivery_id: int, until: datetime) -> None:
        """Not tried: its channel just failed. It waits for the channel's retry time."""
        with self._writing() as db:
            db.execute(
                "UPDATE deliveries SET next_attempt_at = ? WHERE id = ?", [ts(until), delivery_id]
            )

    def drop_deliveries(self, delivery_ids: Sequence[int], reason: str) -> None:
        """Pending rows whose channel left the config: kept for the record, never sent."""
        with self._writing() as db:
            for delivery_id in delivery_ids:
                db.execute(
                    "UPDATE deliveries SET status = 'dropped', last_error = ? WHERE id = ?",
                    [reason, delivery_id],
                )

    def hold(self, delivery_id: int, until: datetime) -> None:
        """Quiet hours: keep the row for the catch-up message at the window's end."""
        with self._writing() as db:
            db.execute(
                "UPDATE deliveries SET status = 'held', next_attempt_at = ? WHERE id = ?",
                [ts(until), delivery_id],
            )

    def held_due(self, now: datetime) -> dict[str, list[Delivery]]:
        """Held rows whose quiet hours are over, by channel."""
        rows = self.db.execute(
            """
            SELECT d.id, d.event_id, d.channel, d.attempts,
                   e.line, e.type, e.created_at, e.facts
            FROM deliveries d JOIN events e ON e.id = d.event_id
            WHERE d.status = 'held' AND d.next_attempt_at <= ?
            ORDER BY d.channel, e.created_at, d.id
            """,
            [ts(now)],
        ).fetchall()
        held: dict[str, list[Delivery]] = {}
        for row in rows:
            if row[0] in self._sent:
                continue
            held.setdefault(row[2], []).append(_delivery(row))
        return held

    # ---- snooze, acknowledge, forecasts, digests ---------------------------------------------

    def controls(self) -> dict[str, Controls]:
        return {
            row["line"]: Controls(
                snoozed_until=parse_ts(row["snoozed_until"]),
                acked_level=_level(row["acked_level"]),
                acked_at=parse_ts(row["acked_at"]),
            )
            for row in self.db.query("SELECT * FROM line_controls")
        }

    def snooze(self, line: str, until: datetime | None) -> None:
        with self._writing() as db:
            db["line_controls"].upsert({"line": line, "snoozed_until": ts(until)}, pk="line")

    def acknowledge(self, line: str, level: Level | None, now: datetime) -> None:
        with self._writing() as db:
            db["line_controls"].upsert(
                {
                    "line": line,
                    "acked_level": level.label if level else None,
                    "acked_at": ts(now) if level else None,
                },
                pk="line",
            )

    def series_many(
        self, lines: Sequence[str], since: datetime, limit: int = 1000
    ) -> dict[str, list[tuple[datetime, str | None, int | None]]]:
        """The newest `limit` readings of many lines since a time: one query per few
        hundred lines, not one each, and no more rows than the caller uses."""
        found: dict[str, list[tuple[datetime, str | None, int | None]]] = {}
        newest = (
            "SELECT * FROM (SELECT line, checked_at, balance, data_remaining FROM readings "
            "WHERE line = ? AND checked_at >= ? AND ok = 1 ORDER BY checked_at DESC LIMIT ?)"
        )
        for start in range(0, len(lines), 100):
            chunk = list(lines[start : start + 100])
            # one statement, each line's part walking the (line, checked_at) index backwards
            sql = " UNION ALL ".join([newest] * len(chunk))
            params = [value for line in chunk for value in (line, ts(since), limit)]
            for line, at, balance, data in self.db.execute(sql, params).fetchall():
                found.setdefault(line, []).append((datetime.fromisoformat(at), balance, data))
        for rows in found.values():
            rows.sort()
        return found

    def series(self, line: str, since: datetime) -> list[tuple[datetime, str | None, int | None]]:
        """(time, balance, data_remaining) of the line's successful readings since a time."""
        return [
            (datetime.fromisoformat(row[0]), row[1], row[2])
            for row in self.db.execute(
                "SELECT checked_at, balance, data_remaining FROM readings "
                "WHERE line = ? AND checked_at >= ? AND ok = 1 ORDER BY checked_at",
                [line, ts(since)],
            ).fetchall()
        ]

    def digest_sent(self, channel: str) -> datetime | None:
        row = self.db.execute(
            "SELECT last_sent_at FROM digests WHERE channel = ?", [channel]
        ).fetchone()
        return parse_ts(row[0]) if row else None

    def add_digest_baseline(self, channel: str, now: datetime) -> None:
        """Remember when a channel's digests start counting, without sending one."""
        with self._writing() as db:
            db["digests"].upsert({"channel": channel, "last_sent_at": ts(now)}, pk="channel")

    def add_digest(self, channel: str, event: Event, message: str, now: datetime) -> None:
        """The digest event, its delivery and the channel's last-digest time, at once."""
        with self._writing() as db:
            self._add_event(db, event, message, [channel], now)
            db["digests"].upsert({"channel": channel, "last_sent_at": ts(now)}, pk="channel")

    def failures_since(self, since: datetime) -> dict[str, tuple[int, str | None]]:
        """Failed checks per line since a time, with the latest error."""
        rows = self.db.execute(
            "SELECT line, count(*), max(checked_at) FROM readings "
            "WHERE ok = 0 AND checked_at >= ? GROUP BY line",
            [ts(since)],
        ).fetchall()
        result = {}
        for line, count, last in rows:
            error = self.db.execute(
                "SELECT error FROM readings WHERE line = ? AND checked_at = ? AND ok = 0",
                [line, last],
            ).fetchone()
            result[line] = (int(count), error[0] if error else None)
        return result

    def prune(self, before: datetime, batch: int = 5000) -> int:
        """Roll raw readings older than `before` up into one row per line and UTC day, and
        delete them (never a line's latest reading). Returns how many were rolled up."""
        total = 0
        while True:
            with self._writing() as db:
                rows = db.execute(
                    "SELECT id, line, substr(checked_at, 1, 10), ok, balance, currency, "
                    "data_remaining FROM readings WHERE checked_at < ? AND id NOT IN "
                    "(SELECT last_reading_id FROM line_state WHERE last_reading_id IS NOT NULL) "
                    "ORDER BY line, checked_at LIMIT ?",
                    [ts(before), batch],
                ).fetchall()
                if not rows:
                    return total
                groups: dict[tuple[str, str], list[Sequence[Any]]] = {}
                for row in rows:
                    groups.setdefault((row[1], row[2]), []).append(row)
                for (line, day), members in groups.items():
                    db["readings_daily"].upsert(_rollup(db, line, day, members), pk=("line", "day"))
                db.execute(
                    f"DELETE FROM readings WHERE id IN ({','.join('?' * len(rows))})",
                    [row[0] for row in rows],
                )
                total += len(rows)

    # ---- recharge ledger --------------------------------------------------------------------

    def recharges(
        self, line: str | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM recharges WHERE 1 = 1", []
        if line is not None:
            sql += " AND line = ?"
            params.append(line)
        if since is not None:
            sql += " AND requested_at >= ?"
            params.append(ts(since))
        return list(self.db.query(sql + " ORDER BY requested_at, id", params))

    def recharge_by_key(self, key: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM recharges WHERE key = ?", [key]))
        return rows[0] if rows else None

    def add_recharge(self, row: dict[str, Any], pin_hash: str | None = None) -> int:
        """Write an intent (or a skip) before anything is called; a PIN is spent with it."""
        with self._writing() as db:
            recharge_id = int(db["recharges"].insert(row).last_pk)
            if pin_hash is not None:
                db["recharge_pins"].insert(
                    {
                        "pin_hash": pin_hash,
                        "line": row["line"],
                        "used_at": row["requested_at"],
                        "recharge_id": recharge_id,
                    }
                )
        return recharge_id

    def update_recharge(self, recharge_id: int, **fields: Any) -> None:
        with self._writing() as db:
            db["recharges"].update(recharge_id, fields)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The writes inside, all or none: a ledger outcome and the alert it calls for."""
        with self._writing():
            yield

    def release_pin(self, pin_hash: str) -> None:
        """A PIN whose redeem code never left the modem may be used again."""
        with self._writing() as db:
            db.execute("DELETE FROM recharge_pins WHERE pin_hash = ?", [pin_hash])

    def used_pins(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT pin_hash FROM recharge_pins")}

    def need_since(self, line: str) -> datetime | None:
        row = self.db.execute("SELECT since FROM recharge_needs WHERE line = ?", [line]).fetchone()
        return parse_ts(row[0]) if row else None

    def set_need(self, line: str, since: datetime | None) -> None:
        with self._writing() as db:
            if since is None:
                db.execute("DELETE FROM recharge_needs WHERE line = ?", [line])
            else:
                db["recharge_needs"].upsert({"line": line, "since": ts(since)}, pk="line")

    def account_alerts(self) -> set[str]:
        """Accounts whose folded failure alert went out and whose recovery has not."""
        return {row[0] for row in self.db.execute("SELECT account FROM account_alerts")}

    def set_account_alert(self, account: str, at: datetime | None) -> None:
        with self._writing() as db:
            if at is None:
                db.execute("DELETE FROM account_alerts WHERE account = ?", [account])
            else:
                db["account_alerts"].upsert(
                    {"account": account, "alerted_at": ts(at)}, pk="account"
                )

    def pending_count(self) -> int:
        return int(
            self.db.execute(
                "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'held')"
            ).fetchone()[0]
        )

    # ---- queries for the CLI ------------------------------------------------------------

    def status(self) -> dict[str, dict[str, Any]]:
        """The latest state and reading of every line the database knows."""
        rows = self.db.execute(
            """
            SELECT s.line, s.level, s.checked_at, s.last_success_at, s.failures, s.last_error,
                   s.low_since, r.checked_at, r.balance, r.currency, r.data_remaining,
                   r.data_total, r.expires_at, r.status, r.renewal_at, r.renewal_price, s.forecast
            FROM line_state s LEFT JOIN readings r ON r.id = s.last_reading_id
            """
        ).fetchall()
        keys = (
            "line",
            "level",
            "checked_at",
            "last_success_at",
            "failures",
            "last_error",
            "low_since",
            "read_at",
            "balance",
            "currency",
            "data_remaining",
            "data_total",
            "expires_at",
            "status",
            "renewal_at",
            "renewal_price",
            "forecast",
        )
        result = {row[0]: dict(zip(keys, row, strict=True)) for row in rows}
        for entry in result.values():
            entry["forecast"] = json.loads(entry["forecast"] or "{}")
        return result

    def history(self, line: str, since: datetime) -> list[dict[str, Any]]:
        return list(
            self.db.query(
                "SELECT checked_at, ok, level, balance, currency, data_remaining, data_total, "
                "expires_at, status, error FROM readings WHERE line = ? AND checked_at >= ? "
                "ORDER BY checked_at",
                [line, ts(since)],
            )
        )

    def events(self, since: datetime, line: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT e.id, e.created_at, e.line, e.type, e.message, d.channel, d.status, "
            "d.attempts, d.sent_at, d.next_attempt_at, d.last_error "
            "FROM events e LEFT JOIN deliveries d ON d.event_id = e.id "
            "WHERE e.created_at >= ?"
        )
        params: list[Any] = [ts(since)]
        if line:
            sql += " AND e.line = ?"
            params.append(line)
        return list(self.db.query(sql + " ORDER BY e.created_at, e.id, d.channel", params))


# Every public method (reads too) goes through `translate`: the store's door lets out the
# project's errors only, and a method added later is covered without anyone remembering.
for _name, _member in list(vars(Store).items()):
    if not _name.startswith("_") and inspect.isfunction(_member):
        setattr(Store, _name, _guarded(_member))


def _rollup(db: Database, line: str, day: str, rows: list[Sequence[Any]]) -> dict[str, Any]:
    """One day's summary, merged into what an earlier pass already rolled up for that day."""
    existing = db.execute(
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
        "balance_min": f"{min(balances):f}" if balances else None,
        "balance_max": f"{max(balances):f}" if balances else None,
        "balance_last": last_balance or (existing[4] if existing else None),
        "currency": currency,
        "data_min": min(data) if data else None,
        "data_max": max(data) if data else None,
        "data_last": last_data if last_data is not None else (existing[8] if existing else None),
    }


def _insert(db: Database, table: str, row: dict[str, Any]) -> int:
    """A plain INSERT: on the per-check path, sqlite-utils' table introspection on every
    call costs more than the write itself."""
    columns = ", ".join(row)
    marks = ", ".join("?" * len(row))
    cursor = db.conn.execute(
        f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values())
    )
    return int(cursor.lastrowid or 0)


def _upsert(db: Database, table: str, row: dict[str, Any], key: str) -> None:
    """INSERT, or UPDATE the given columns of the row with that key."""
    columns = ", ".join(row)
    marks = ", ".join("?" * len(row))
    updates = ", ".join(f"{c} = excluded.{c}" for c in row if c != key)
    db.conn.execute(
        f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
        f"ON CONFLICT({key}) DO UPDATE SET {updates}",
        list(row.values()),
    )


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
            facts=json.loads(row[7] or "{}"),
        ),
    )


def _quick_check(db: Database, path: Path) -> None:
    """Read every page and check its structure; damage is DatabaseUnusable."""
    rows = db.execute("PRAGMA quick_check(5)").fetchall()
    problems = [str(row[0]) for row in rows]
    if problems != ["ok"]:
        raise DatabaseUnusable(
            f"the database at {path} is damaged ({'; '.join(problems)[:300]}). {MOVE_ASIDE}"
        )


def make_private_dirs(folder: Path) -> None:
    """Create a folder and any missing parents, each 0700 whatever the umask (mkdir's
    `mode` applies to the last one only, and the umask may widen none but narrow it)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for created in reversed(missing):
        try:
            created.mkdir(mode=0o700)
        except FileExistsError:
            continue
        created.chmod(0o700)


def _check_known_schema(db: Database, path: Path) -> None:
    """Refuse a database that a newer version has migrated: we cannot know its meaning."""
    known = {m.name for m in migrations._migrations}
    applied = {m.name for m in migrations.applied(db)}
    unknown = sorted(applied - known)
    if unknown:
        raise DatabaseUnusable(
            f"the database at {path} was written by a newer esim-monitor (migrations "
            f"{', '.join(unknown)}); upgrade esim-monitor or point [monitor] database elsewhere"
        )


def _reading_row(
    line: str,
    checked_at: datetime,
    reading: Reading | None,
    error: str | None,
    state: LineState,
    duration_ms: int | None,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "line": line,
        "checked_at": ts(checked_at),
        "ok": 1 if reading is not None else 0,
        "level": state.level.label if state.level is not None else None,
        "error": clip(error),
        "duration_ms": duration_ms,
    }
    if reading is not None:
        row.update(
            balance=f"{reading.balance:f}" if reading.balance is not None else None,
            currency=reading.currency,
            data_remaining=reading.data_remaining,
            data_total=reading.data_total,
            expires_at=ts(reading.expires_at),
            status=reading.status,
            renewal_at=ts(reading.renewal_at),
            renewal_price=f"{reading.renewal_price:f}"
            if reading.renewal_price is not None
            else None,
            extras=json.dumps(dict(reading.extras), default=str) if reading.extras else None,
            raw=clip(json.dumps(reading.raw, default=str)) if reading.raw is not None else None,
        )
    return row


def _state_row(state: LineState) -> dict[str, Any]:
    return {
        "line": state.line,
        "level": state.level.label if state.level is not None else None,
        "metrics": json.dumps({k: v.label for k, v in state.metrics.items()}),
        "low_since": ts(state.low_since),
        "last_alert_at": ts(state.last_alert_at),
        "failures": state.failures,
        "failure_alerted": int(state.failure_alerted),
        "last_error": clip(state.last_error),
        "checked_at": ts(state.checked_at),
        "last_success_at": ts(state.last_success_at),
        "notices": json.dumps(dict(state.notices)),
    }


def _level(label: str | None) -> Level | None:
    return Level[label.upper()] if label else None


def _state_from_row(row: dict[str, Any]) -> LineState:
    return LineState(
        line=row["line"],
        level=_level(row["level"]),
        metrics={k: Level[v.upper()] for k, v in json.loads(row["metrics"] or "{}").items()},
        low_since=parse_ts(row["low_since"]),
        last_alert_at=parse_ts(row["last_alert_at"]),
        failures=row["failures"] or 0,
        failure_alerted=bool(row["failure_alerted"]),
        last_error=row["last_error"],
        checked_at=parse_ts(row["checked_at"]),
        last_success_at=parse_ts(row["last_success_at"]),
        notices=json.loads(row.get("notices") or "{}"),
    )
