"""The database file: created private, migrated once by our own list of migrations,
refused when a newer version wrote it or it is damaged."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import EXIT_DATABASE, DatabaseUnusable, StoreError
from monitor.store import Store, schema

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


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
