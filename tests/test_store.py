"""The history database on real files: migrations, permissions, one transaction per check."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from monitor.errors import EXIT_DATABASE, DatabaseUnusable, StoreError
from monitor.model import Event, Level, LineState, Reading
from monitor.store import Store, migrations

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def test_created_private_with_wal_and_indexes(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "history.db"
    store = Store.open(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"readings", "line_state", "events", "deliveries"} <= set(store.db.table_names())
    indexes = {tuple(i.columns) for i in store.db["readings"].indexes}
    assert ("line", "checked_at") in indexes
    assert [m.name for m in migrations.applied(store.db)] == [
        m.name for m in migrations._migrations
    ]
    store.close()
    # opening again applies nothing twice
    again = Store.open(path)
    assert len(migrations.applied(again.db)) == len(migrations._migrations)
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


def test_record_check_round_trip(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "h.db")
    reading = Reading(
        line="a",
        checked_at=T0,
        balance=Decimal("4.10"),
        currency="USD",
        data_remaining=123,
        data_total=1000,
        expires_at=T0 + timedelta(days=2),
        status="ACTIVE",
        raw={"remaining": 0.1},
    )
    state = LineState("a", Level.CRITICAL, {"balance": Level.CRITICAL}, low_since=T0, checked_at=T0)
    event = Event("critical", "a", T0, {"value": "4.10 USD"})
    store.record_check(
        line="a",
        checked_at=T0,
        state=state,
        events=[(event, "msg", ["phone", "mail"])],
        reading=reading,
        now=T0,
    )
    assert store.state("a") == state
    assert store.state("unknown-line") == LineState("unknown-line")
    row = store.status()["a"]
    assert row["balance"] == "4.10" and row["currency"] == "USD"  # money stays exact text
    assert row["data_remaining"] == 123
    due = store.due_deliveries(T0)
    assert {d.channel for d in due} == {"phone", "mail"}
    assert due[0].event.facts == {"value": "4.10 USD"}
    assert store.next_delivery_at() == T0
    store.delivered(due[0].id, T0)
    store.delivery_failed(due[1].id, "boom", T0, T0 + timedelta(seconds=30))
    assert store.due_deliveries(T0) == []
    assert [d.id for d in store.due_deliveries(T0 + timedelta(seconds=30))] == [due[1].id]
    # a failed check keeps the last reading as the line's latest
    store.record_check(
        line="a",
        checked_at=T0 + timedelta(hours=1),
        state=LineState("a", Level.CRITICAL, failures=1, last_error="timeout"),
        events=[],
        error="timeout",
        now=T0,
    )
    assert store.status()["a"]["balance"] == "4.10"
    assert store.status()["a"]["last_error"] == "timeout"
    history = store.history("a", T0 - timedelta(days=1))
    assert [(h["ok"], h["error"]) for h in history] == [(1, None), (0, "timeout")]
    assert [e["channel"] for e in store.events(T0 - timedelta(days=1))] == ["mail", "phone"]
    raw = store.db.execute("SELECT raw FROM readings WHERE ok = 1").fetchone()[0]
    assert json.loads(raw) == {"remaining": 0.1}
    store.close()


def test_a_check_is_all_or_nothing(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "h.db")
    bad = Event("warning", "a", T0, {"x": 1})
    with pytest.raises(sqlite3.IntegrityError):
        store.record_check(
            line="a",
            checked_at=T0,
            state=LineState("a", Level.WARNING),
            # a delivery row without a channel violates NOT NULL, after the reading was written
            events=[(bad, "m", [None])],  # type: ignore[list-item]
            reading=Reading("a", T0, balance=Decimal(1)),
            now=T0,
        )
    assert store.db["readings"].count == 0
    assert store.db["events"].count == 0
    assert store.states() == {}
    store.close()


def test_stored_excerpts_are_at_most_4_kib(tmp_path: Path) -> None:
    """A valid 1 MiB answer or a long error is history, not an archive (issue 11.5)."""
    store = Store.open(tmp_path / "h.db")
    reading = Reading(line="a", checked_at=T0, balance=Decimal(1), raw={"pad": "é" * (1 << 19)})
    state = LineState("a", Level.OK, checked_at=T0)
    store.record_check(line="a", checked_at=T0, state=state, events=[], reading=reading, now=T0)
    long_error = "the provider said: " + "ü" * 10_000
    failed = LineState("a", Level.OK, failures=1, last_error=long_error)
    store.record_check(line="a", checked_at=T0, state=failed, events=[], error=long_error, now=T0)
    raw, error = store.db.execute("SELECT max(raw), max(error) FROM readings").fetchone()
    last_error = store.db.execute("SELECT last_error FROM line_state").fetchone()[0]
    for text in (raw, error, last_error):
        assert 3000 < len(text.encode()) <= 4096
        assert text.endswith("…[cut]")
    assert error.startswith("the provider said: ü")
    store.close()


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


READS = [
    ("states", ()),
    ("state", ("a",)),
    ("controls", ()),
    ("status", ()),
    ("history", ("a", T0)),
    ("events", (T0,)),
    ("series", ("a", T0)),
    ("series_many", (["a"], T0)),
    ("due_deliveries", (T0,)),
    ("next_delivery_at", ()),
    ("held_due", (T0,)),
    ("pending_count", ()),
    ("recharges", ()),
    ("used_pins", ()),
    ("account_alerts", ()),
    ("failures_since", (T0,)),
    ("digest_sent", ("hook",)),
]


@pytest.mark.parametrize(("method", "args"), READS, ids=[m for m, _ in READS])
def test_a_schema_we_cannot_read_is_unusable_in_every_read(
    tmp_path: Path, method: str, args: tuple[object, ...]
) -> None:
    """Issue 11.3: reads raised sqlite3 errors past the store's door (the CLI's exit 1)."""
    path = tmp_path / "h.db"
    store = Store.open(path)
    other = sqlite3.connect(path)
    for table in other.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        if table[0] not in ("_sqlite_migrations", "sqlite_sequence"):
            other.execute(f"DROP TABLE {table[0]}")
    other.commit()
    other.close()
    with pytest.raises(DatabaseUnusable, match="schema is not one esim-monitor made") as caught:
        getattr(store, method)(*args)
    assert caught.value.exit_code == 65
    store.close()


def test_a_value_we_cannot_decode_is_unusable(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "h.db")
    store.db.execute("INSERT INTO line_state (line, level, metrics) VALUES ('a', 'weird', '{')")
    store.db.conn.commit()
    with pytest.raises(DatabaseUnusable, match="a stored value is damaged"):
        store.states()
    store.close()


def test_busy_is_a_store_error_never_unusable(tmp_path: Path) -> None:
    """A database another process is writing: exit 1 (it may pass), never 65."""
    path = tmp_path / "h.db"
    store = Store.open(path)
    store.db.execute("PRAGMA busy_timeout = 0")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError) as caught:
            store.snooze("a", T0)
        assert not isinstance(caught.value, DatabaseUnusable)
        assert caught.value.exit_code == 1
        assert "database is locked" in str(caught.value)
    finally:
        other.close()
        store.close()


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
