"""The database file: created private, migrated once by our own list of migrations,
refused when a newer version wrote it or it is damaged."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from monitor.errors import EXIT_DATABASE, DatabaseUnusable, StoreError
from monitor.model import Level, LineState, Reading
from monitor.store import Check, Store, codec, schema

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
KEPT_COLUMNS = (
    "id, line, checked_at, ok, level, balance, currency, data_remaining, data_total, "
    "expires_at, status, renewal_at, renewal_price, extras, error, duration_ms, source"
)
"""Every column of a reading but its raw reply: what migration 0012 leaves as it was."""


def test_created_private_with_wal_and_indexes(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "history.db"
    store = Store.open(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"readings", "line_state", "events", "deliveries"} <= set(store.db.table_names())
    indexes = {tuple(i.columns) for i in store.db["readings"].indexes}
    assert ("line", "checked_at") in indexes
    assert schema.applied(store.conn) == list(schema.NAMES)
    store.close()
    # opening again applies nothing twice
    again = Store.open(path)
    assert schema.applied(again.conn) == list(schema.NAMES)
    again.close()


def test_refuses_a_database_from_a_newer_version(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
        "VALUES ('esim-monitor', '9999_future', '2030-01-01')"
    )
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseUnusable, match="newer esim-monitor") as caught:
        Store.open(path)
    assert caught.value.exit_code == EXIT_DATABASE == 65


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DatabaseUnusable, match="move the file aside"):
        Store.open(path)


def test_unwritable_path_is_a_clear_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/proc/esim-monitor/history.db")  # not creatable, even for root
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "h.db"
    with pytest.raises(StoreError, match="cannot create the database"):
        Store.open(target)


def test_an_existing_database_and_its_companions_are_narrowed_to_0600(tmp_path: Path) -> None:
    """Issue 11.11: a history.db (and -wal/-shm) left wider by hand or by an old version."""
    path = tmp_path / "h.db"
    Store.open(path).close()
    companions = [path, tmp_path / "h.db-wal", tmp_path / "h.db-shm"]
    for file in companions:
        file.touch()
        file.chmod(0o644)
    Store.open(path).close()
    for file in companions:
        if file.exists():  # SQLite removes -wal/-shm at a clean close
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


def test_created_folders_are_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        Store.open(tmp_path / "a" / "b" / "history.db").close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700  # a parent too
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700


def test_verify_finds_damage_no_query_reads(tmp_path: Path) -> None:
    """A damaged page of old readings: only reading every page finds it at start."""
    path = tmp_path / "h.db"
    store = Store.open(path)
    rows = [
        {
            "line": "a",
            "checked_at": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}",
            "ok": 1,
            "raw": "x" * 500,
        }
        for i in range(400)
    ]
    store.db["readings"].insert_all(rows)
    store.close()
    data = bytearray(path.read_bytes())
    pages = len(data) // 4096
    data[(pages - 5) * 4096 : (pages - 4) * 4096] = bytes(range(256)) * 16
    path.write_bytes(bytes(data))
    Store.open(path).close()  # what the CLI's reads open: nothing reads that page
    with pytest.raises(DatabaseUnusable, match="is damaged"):
        Store.open(path, verify=True)


def test_a_database_of_the_previous_schema_gains_reading_sources(
    database_before: Callable[[str], Path],
) -> None:
    """Migration 0008: readings recorded before it all came from the daemon's own checks."""
    from sqlite_utils import Database

    path = database_before("0008_reading_sources")
    db = Database(path)
    db["readings"].insert({"line": "a", "checked_at": T0.isoformat(), "ok": 1, "balance": "3"})
    db.conn.close()
    assert "0008_reading_sources" not in schema.applied(sqlite3.connect(path))
    store = Store.open(path)
    assert schema.applied(store.conn) == list(schema.NAMES)
    assert store.conn.execute("SELECT source FROM readings").fetchall() == [("poll",)]
    [row] = store.history("a", T0.replace(year=2000))
    assert row.source == "poll"
    store.close()


def test_a_database_of_the_previous_schema_keeps_each_raw_reply_once(
    database_before: Callable[[str], Path],
) -> None:
    """Migration 0012 (issue 18): a reply the same as the line's previous kept one becomes
    a mark; every reading, and every line's last reply, reads as before; run again (a
    migration cut short is), it changes nothing."""
    from sqlite_utils import Database

    path = database_before("0012_raw_kept_once")
    replies = {"a": ["A1", "A1", None, "A1", "A2"], "b": ["B1", "B1", "B1", "B2", "B1"]}
    rows = []
    for k in range(5):
        for line, names in replies.items():  # the lines' readings interleaved, as a fleet's are
            at = (T0 + timedelta(minutes=30 * k)).isoformat(timespec="microseconds")
            row = {"line": line, "checked_at": at, "ok": 1, "balance": f"{9 - k}"}
            if names[k] is None:
                row.update(ok=0, error="HTTP 503")
            else:
                row.update(raw=json.dumps({"v": names[k]}))
            rows.append(row)
    db = Database(path)
    db["readings"].insert_all(rows)
    for line in replies:
        (last,) = db.execute("SELECT max(id) FROM readings WHERE line = ?", [line]).fetchone()
        db["line_state"].insert({"line": line, "checked_at": rows[-1]["checked_at"]})
        db.execute("UPDATE line_state SET last_reading_id = ? WHERE line = ?", [last, line])
    db.conn.commit()
    before = db.execute(f"SELECT {KEPT_COLUMNS} FROM readings ORDER BY id").fetchall()
    old_raws = db.execute("SELECT line, raw FROM readings ORDER BY line, id").fetchall()
    db.conn.close()

    store = Store.open(path)
    assert schema.applied(store.conn) == list(schema.NAMES)
    marks = "SELECT line, raw IS NOT NULL, raw_same FROM readings ORDER BY line, id"
    stored = store.conn.execute(marks).fetchall()
    a, b = [("a", 1, None), ("a", 0, 1), ("a", 0, None), ("a", 0, 1), ("a", 1, None)], []
    b = [("b", 1, None), ("b", 0, 1), ("b", 0, 1), ("b", 1, None), ("b", 1, None)]
    assert stored == a + b
    # every reading reads as before: its columns, and its reply (kept, or the one it repeats)
    assert (
        store.conn.execute(f"SELECT {KEPT_COLUMNS} FROM readings ORDER BY id").fetchall() == before
    )
    kept: dict[str, str] = {}
    read_back = []
    for line, raw, same in store.conn.execute(
        "SELECT line, raw, raw_same FROM readings ORDER BY line, id"
    ):
        if raw is not None:
            kept[line] = raw
        read_back.append((line, raw if raw is not None else kept[line] if same else None))
    assert read_back == old_raws
    for line, names in replies.items():
        history = store.history(line, T0)
        assert [(h.ok, h.balance) for h in history] == [
            (name is not None, Decimal(9 - k)) for k, name in enumerate(names)
        ]
        assert store.last_raw(line) == json.dumps({"v": names[-1]})
    schema._raw_once(store.db)  # again: nothing changes
    assert store.conn.execute(marks).fetchall() == stored
    # a check after the upgrade finds the reply it repeats through the migrated line state
    at = T0 + timedelta(hours=3)
    reading = Reading("b", at, balance=Decimal(1), raw={"v": "B1"})
    state = LineState("b", Level.OK, checked_at=at)
    store.record_checks([Check("b", at, state, reading=reading)], at)
    last = store.conn.execute("SELECT raw, raw_same FROM readings ORDER BY id DESC").fetchone()
    assert last == (None, 1)
    assert store.last_raw("b") == json.dumps({"v": "B1"})
    store.close()


def test_a_database_of_the_previous_schema_reads_its_expiries_as_before(
    database_before: Callable[[str], Path],
) -> None:
    """Migration 0013 (issue 18): a reading's expiry and renewal move from ISO text to
    integer microseconds, and every reading reads the same instants; a row written as text
    after it (by hand) still reads."""
    from sqlite_utils import Database

    path = database_before("0013_reading_instants")
    expiry, renewal = T0 + timedelta(days=30, microseconds=7), T0 + timedelta(days=9)
    db = Database(path)
    db["readings"].insert_all(
        [
            {"line": "a", "checked_at": codec.ts(T0), "ok": 1, "expires_at": codec.ts(expiry)},
            {"line": "a", "checked_at": codec.ts(T0 + timedelta(hours=1)), "ok": 0},
            {
                "line": "b",
                "checked_at": codec.ts(T0),
                "ok": 1,
                "expires_at": "2027-01-01T00:00:00",  # naive text, as a hand would write it
                "renewal_at": codec.ts(renewal),
            },
        ]
    )
    for line, last in (("a", 1), ("b", 3)):
        db["line_state"].insert({"line": line, "checked_at": codec.ts(T0), "last_reading_id": last})
    db.conn.close()
    store = Store.open(path)
    assert schema.applied(store.conn) == list(schema.NAMES)
    rows = store.conn.execute(
        "SELECT expires_at, renewal_at, typeof(expires_us), typeof(renews_us) FROM readings"
    ).fetchall()
    assert rows == [
        (None, None, "integer", "null"),
        (None, None, "null", "null"),
        (None, None, "integer", "integer"),
    ]
    status = store.status()
    assert status["a"].expires_at == expiry
    assert status["b"].expires_at == datetime(2027, 1, 1, tzinfo=UTC)
    assert status["b"].renewal_at == renewal
    assert [h.expires_at for h in store.history("a", T0)] == [expiry, None]
    store.conn.execute(
        "UPDATE readings SET expires_us = NULL, expires_at = ? WHERE id = 1", [codec.ts(expiry)]
    )
    assert store.history("a", T0)[0].expires_at == expiry
    store.close()
