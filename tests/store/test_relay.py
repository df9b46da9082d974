"""The relay_tokens table: tokens kept only as hashes, one per line, replaced by a new one."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from sqlite_utils import Database

from monitor.store import RelayTokens, Store, schema


def test_a_token_is_stored_hashed_and_verifies_for_its_line_only(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    Store.open(path).close()
    tokens = RelayTokens(path)
    token = tokens.issue("phone")
    assert tokens.verify("phone", token)
    assert not tokens.verify("other", token)
    assert not tokens.verify("phone", token[:-1])
    tokens.close()
    for name in ("h.db", "h.db-wal"):
        file = tmp_path / name
        if file.exists():
            assert token.encode() not in file.read_bytes()


def test_a_new_token_replaces_the_old(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    Store.open(path).close()
    tokens = RelayTokens(path)
    old = tokens.issue("phone")
    new = tokens.issue("phone")
    assert new != old
    assert tokens.verify("phone", new) and not tokens.verify("phone", old)
    tokens.close()


def test_a_database_of_the_previous_version_gains_the_table(
    database_before: Callable[[str], Path],
) -> None:
    """Migrated as far as the step before the relay's, then opened by this version."""
    path = database_before("0009_relay_tokens")
    conn = sqlite3.connect(path)
    db = Database(conn)
    conn.execute("INSERT INTO readings (line, checked_at, ok) VALUES ('a', '2026-01-01', 1)")
    conn.commit()
    assert "relay_tokens" not in db.table_names()
    conn.close()
    store = Store.open(path)
    assert "relay_tokens" in store.db.table_names()
    assert store.db.execute("SELECT count(*) FROM readings").fetchone()[0] == 1
    assert schema.applied(store.conn) == list(schema.NAMES)
    store.close()
    tokens = RelayTokens(path)
    assert tokens.verify("a", tokens.issue("a"))
    tokens.close()
