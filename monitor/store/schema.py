"""The schema: every table and index, created only here, by numbered migrations.

`STEPS` is our own list of migrations, in order (sqlite-utils keeps its registry private):
`NAMES` tells which a database may have, so one a newer version migrated is refused, and
the read-only views can tell a current database from one that needs migrating without
importing sqlite-utils (which pulls in numpy where it is installed). A migration is added
at the end of `STEPS` and never changed once released: a user's database has run it.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from sqlite_utils import Database, Migrations

MIGRATION_SET = "esim-monitor"
MIGRATIONS_TABLE = "_sqlite_migrations"
"""Where sqlite-utils' Migrations records what it applied (its documented table)."""


def _wal(db: Database) -> None:
    db.execute("PRAGMA journal_mode=WAL")


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


def _notices_tokens(db: Database) -> None:
    db["line_state"].add_column("notices", str)
    db["tokens"].create(
        {"key": str, "value": str, "expires_at": str, "updated_at": str},
        pk="key",
        not_null={"value", "updated_at"},
        if_not_exists=True,
    )


def _controls(db: Database) -> None:
    db["line_controls"].create(
        {"line": str, "snoozed_until": str, "acked_level": str, "acked_at": str}, pk="line"
    )
    db["line_state"].add_column("forecast", str)
    db["digests"].create({"channel": str, "last_sent_at": str}, pk="channel")


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


def _account_alerts(db: Database) -> None:
    db["account_alerts"].create({"account": str, "alerted_at": str}, pk="account")


def _sources(db: Database) -> None:
    # Readings before this migration all came from the daemon's own checks.
    db["readings"].add_column("source", str, not_null_default="poll")
    # Few readings come from elsewhere: a partial index finds them (and their lines) without
    # reading the table, and costs a poll's insert nothing.
    db.execute(
        "CREATE INDEX IF NOT EXISTS readings_not_polled ON readings (line, checked_at) "
        "WHERE source <> 'poll'"
    )


def _relay_tokens(db: Database) -> None:
    db["relay_tokens"].create(
        {"line": str, "token_hash": str, "created_at": str},
        pk="line",
        not_null={"token_hash", "created_at"},
    )
    db["relay_tokens"].create_index(["token_hash"], unique=True, if_not_exists=True)


def _hook_deliveries(db: Database) -> None:
    # A provider retries a webhook it got no 2xx for: what was taken is kept a day by its
    # event id or the SHA-256 of its body, so a retry is answered without a second record.
    db["hook_deliveries"].create(
        {"key": str, "account": str, "received_at": str},
        pk="key",
        not_null={"account", "received_at"},
    )


def _web(db: Database) -> None:
    # The status page's secrets: its signing key, sessions and API tokens (stored as
    # hashes), and the nonces of action links already used (kept until they expire).
    db["web_keys"].create({"name": str, "key": str, "created_at": str}, pk="name")
    db["web_sessions"].create(
        {"id_hash": str, "user": str, "created_at": str, "expires_at": str},
        pk="id_hash",
        not_null={"user", "created_at", "expires_at"},
    )
    db["web_tokens"].create(
        {"token_hash": str, "name": str, "created_at": str},
        pk="token_hash",
        not_null={"name", "created_at"},
    )
    db["web_links_used"].create(
        {"nonce": str, "used_at": str, "expires_at": str},
        pk="nonce",
        not_null={"used_at", "expires_at"},
    )


RAW_BATCH = 20_000
"""Readings `_raw_once` reads per transaction: a big history is rewritten a short
transaction at a time, so a daemon's checks wait a moment at most, never the whole run."""


def _raw_once(db: Database) -> None:
    # A reading's raw reply is most of its row, and a provider's reply often repeats the
    # previous one: a reading whose reply is the same as the line's previous kept one
    # (by id, the order readings are written) keeps NULL and raw_same = 1 instead, and
    # line_state.last_raw_id names the reading holding the line's latest kept reply.
    # Not one transaction: batches of readings in id order, each its own; a run cut
    # short is simply run again (a batch done twice changes nothing).
    conn = db.conn
    with _immediate(conn):
        if "raw_same" not in _columns(conn, "readings"):
            conn.execute("ALTER TABLE readings ADD COLUMN raw_same INTEGER")
        if "last_raw_id" not in _columns(conn, "line_state"):
            conn.execute("ALTER TABLE line_state ADD COLUMN last_raw_id INTEGER")
    kept: dict[str, tuple[int, str]] = {}
    after = 0
    while True:
        with _immediate(conn):
            rows = conn.execute(
                "SELECT id, line, raw FROM readings WHERE id > ? AND raw IS NOT NULL "
                "ORDER BY id LIMIT ?",
                [after, RAW_BATCH],
            ).fetchall()
            same = []
            for reading_id, line, raw in rows:
                previous = kept.get(line)
                if previous is not None and previous[1] == raw:
                    same.append((reading_id,))
                else:
                    kept[line] = (reading_id, raw)
            conn.executemany("UPDATE readings SET raw = NULL, raw_same = 1 WHERE id = ?", same)
            if not rows:
                conn.executemany(
                    "UPDATE line_state SET last_raw_id = ? WHERE line = ? "
                    "AND (last_raw_id IS NULL OR last_raw_id < ?)",
                    [(reading_id, line, reading_id) for line, (reading_id, _) in kept.items()],
                )
        if not rows:
            return
        after = rows[-1][0]


def _instants(db: Database) -> None:
    # A reading's expiry and renewal were ISO text in expires_at and renewal_at, 32 bytes
    # each on every reading: now integer microseconds since the epoch (codec.instant,
    # 8 bytes) in expires_us and renews_us, INTEGER columns (the old ones are TEXT, whose
    # affinity would turn an integer back into text). No query compares them and the
    # store reads either column, so readings move over a short transaction at a time,
    # and a run cut short leaves every row readable (run again, it goes on).
    conn = db.conn
    with _immediate(conn):
        for column in ("expires_us", "renews_us"):
            if column not in _columns(conn, "readings"):
                conn.execute(f"ALTER TABLE readings ADD COLUMN {column} INTEGER")
    after = 0
    while True:
        with _immediate(conn):
            rows = conn.execute(
                "SELECT id, expires_at, renewal_at FROM readings WHERE id > ? "
                "AND (expires_at IS NOT NULL OR renewal_at IS NOT NULL) ORDER BY id LIMIT ?",
                [after, RAW_BATCH],
            ).fetchall()
            conn.executemany(
                "UPDATE readings SET expires_us = coalesce(?, expires_us), expires_at = NULL, "
                "renews_us = coalesce(?, renews_us), renewal_at = NULL WHERE id = ?",
                [(_instant(e), _instant(r), i) for i, e, r in rows],
            )
        if not rows:
            return
        after = rows[-1][0]


def _instant(text: str | None) -> int | None:
    """Stored ISO text as `codec.instant` writes it; naive text (written by hand) is UTC."""
    from datetime import UTC, datetime

    from monitor.store import codec

    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return codec.instant(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction of a migration that commits as it goes: all of it or none."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


class Step(NamedTuple):
    name: str
    apply: Callable[[Database], None]
    transactional: bool = True


STEPS: tuple[Step, ...] = (
    Step("0001_wal", _wal, transactional=False),
    Step("0002_core", _core),
    Step("0003_notices_tokens", _notices_tokens),
    Step("0004_controls_forecasts_digests", _controls),
    Step("0005_daily_rollups", _rollups),
    Step("0006_recharge_ledger", _ledger),
    Step("0007_account_alerts", _account_alerts),
    Step("0008_reading_sources", _sources),
    Step("0009_relay_tokens", _relay_tokens),
    Step("0010_hook_deliveries", _hook_deliveries),
    Step("0011_web", _web),
    Step("0012_raw_kept_once", _raw_once, transactional=False),
    Step("0013_reading_instants", _instants, transactional=False),
)
NAMES: tuple[str, ...] = tuple(step.name for step in STEPS)


@functools.cache
def migrations() -> Migrations:
    """sqlite-utils' Migrations holding `STEPS` (built once, on first use)."""
    from sqlite_utils import Migrations

    registry = Migrations(MIGRATION_SET)
    for step in STEPS:
        registry(name=step.name, transactional=step.transactional)(step.apply)
    return registry


def applied(conn: sqlite3.Connection) -> list[str]:
    """The migrations a database has run, oldest first ([] for a new file)."""
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [MIGRATIONS_TABLE]
    ).fetchone()
    if found is None:
        return []
    rows = conn.execute(
        f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = ? ORDER BY rowid",
        [MIGRATION_SET],
    ).fetchall()
    return [row[0] for row in rows]


def unknown(names: list[str]) -> list[str]:
    """Applied migrations this version does not have: a newer version wrote the file."""
    return sorted(set(names) - set(NAMES))
