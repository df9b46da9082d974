"""The status page's tables: one key for every thread, sessions that end, links used once."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.store import Store, schema, web

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_the_key_is_made_once_and_kept(tmp_path: Path) -> None:
    first, second = Store.open(tmp_path / "w.db"), Store.open(tmp_path / "w.db")
    made = web.key(first, "links", NOW)
    assert len(made) == 32
    assert web.key(second, "links", NOW) == made
    assert web.key(second, "other", NOW) != made
    first.close(), second.close()


def test_a_session_lasts_until_it_expires_or_closes(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "w.db")
    web.open_session(store, "h1", "admin", NOW, NOW + timedelta(hours=1))
    assert web.session_user(store, "h1", NOW + timedelta(minutes=59)) == "admin"
    assert web.session_user(store, "h1", NOW + timedelta(hours=1)) is None
    assert web.session_user(store, "h2", NOW) is None
    web.close_session(store, "h1")
    assert web.session_user(store, "h1", NOW) is None
    store.close()


def test_a_link_is_used_once_and_its_nonce_goes_when_it_expires(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "w.db")
    with store.transaction():
        assert web.use_link(store, "n1", NOW + timedelta(days=7), NOW)
    assert web.link_used(store, "n1")
    with store.transaction():
        assert not web.use_link(store, "n1", NOW + timedelta(days=7), NOW)
    with store.transaction():
        assert web.use_link(store, "n2", NOW + timedelta(days=8), NOW + timedelta(days=7))
    assert not web.link_used(store, "n1")  # expired: its link is refused for that anyway
    store.close()


def test_a_use_rolled_back_leaves_the_link_usable(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "w.db")
    try:
        with store.transaction():
            assert web.use_link(store, "n1", NOW + timedelta(days=7), NOW)
            raise RuntimeError("the action failed")
    except RuntimeError:
        pass
    assert not web.link_used(store, "n1")
    store.close()


def test_api_tokens_are_found_by_hash(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "w.db")
    web.add_token(store, "hash-a", "grafana", NOW)
    assert web.token_name(store, "hash-a") == "grafana"
    assert web.token_name(store, "hash-b") is None
    store.close()


def test_a_database_of_the_previous_version_gains_the_tables(
    database_before: Callable[[str], Path],
) -> None:
    path = database_before("0011_web")
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO readings (line, checked_at, ok) VALUES ('a', '2026-01-01', 1)")
    conn.commit()
    conn.close()
    store = Store.open(path)
    assert {"web_keys", "web_sessions", "web_tokens", "web_links_used"} <= set(
        store.db.table_names()
    )
    assert schema.applied(store.conn) == list(schema.NAMES)
    assert store.db.execute("SELECT count(*) FROM readings").fetchone()[0] == 1
    store.close()
