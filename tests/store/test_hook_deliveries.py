"""The hook_deliveries table: a delivery's key is kept a day, then forgotten."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlite_utils import Database

from monitor.store import Store, schema
from monitor.store import hooks as deliveries

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_a_key_is_taken_for_a_day_then_forgotten(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "h.db")
    with store.transaction():
        assert not deliveries.taken(store, "sha256:ab", NOW)
        deliveries.remember(store, "sha256:ab", "travel", NOW)
    assert deliveries.taken(store, "sha256:ab", NOW + timedelta(hours=23))
    assert not deliveries.taken(store, "sha256:ab", NOW + timedelta(hours=25))
    with store.transaction():
        deliveries.prune(store, NOW + timedelta(hours=25))
        deliveries.remember(store, "sha256:cd", "travel", NOW + timedelta(hours=25))
    keys = [r[0] for r in store.conn.execute("SELECT key FROM hook_deliveries")]
    assert keys == ["sha256:cd"]
    store.close()


def test_a_database_of_the_previous_version_gains_the_table(
    database_before: Callable[[str], Path],
) -> None:
    """Migrated as far as the step before the hooks', then opened by this version."""
    path = database_before("0010_hook_deliveries")
    conn = sqlite3.connect(path)
    db = Database(conn)
    conn.execute("INSERT INTO readings (line, checked_at, ok) VALUES ('a', '2026-01-01', 1)")
    conn.commit()
    assert "hook_deliveries" not in db.table_names()
    conn.close()
    store = Store.open(path)
    assert "hook_deliveries" in store.db.table_names()
    assert store.db.execute("SELECT count(*) FROM readings").fetchone()[0] == 1
    assert schema.applied(store.conn) == list(schema.NAMES)
    with store.transaction():
        deliveries.remember(store, "sha256:ab", "travel", NOW)
    assert deliveries.taken(store, "sha256:ab", NOW)
    store.close()
