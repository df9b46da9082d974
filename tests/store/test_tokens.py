"""The tokens table, through the adapters' cache: kept across restarts, beside the history."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.model import utcnow
from monitor.store import Store
from monitor.tokens import TokenCache


def test_a_token_survives_a_restart_and_expires(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    Store.open(path).close()
    cache = TokenCache(path)
    cache.put("acct", "t0k3n", utcnow() + timedelta(hours=1))
    cache.put("soon", "old", utcnow() + timedelta(seconds=30))  # within a minute: refetch
    cache.put("forever", "f", None)
    cache.close()
    again = TokenCache(path)
    assert again.get("acct") == "t0k3n"
    assert again.get("soon") is None and again.get("forever") == "f"
    again.delete("acct")
    assert again.get("acct") is None and again.get("missing") is None
    again.close()
    stored = sqlite3.connect(path).execute("SELECT expires_at FROM tokens WHERE key = 'soon'")
    assert stored.fetchone()[0].endswith("+00:00")


def test_a_token_an_earlier_version_wrote_is_read(tmp_path: Path) -> None:
    """Earlier versions wrote `isoformat()` as given (any offset, no fixed shape)."""
    path = tmp_path / "h.db"
    Store.open(path).close()
    later = (datetime.now(UTC) + timedelta(hours=2)).astimezone().replace(microsecond=0)
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO tokens (key, value, expires_at, updated_at) VALUES (?, ?, ?, ?)",
        ["acct", "v", later.isoformat(), datetime.now(UTC).isoformat()],
    )
    conn.commit()
    conn.close()
    cache = TokenCache(path)
    assert cache.get("acct") == "v"
    cache.close()


def test_without_a_database_tokens_live_in_memory(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path / "none.db")
    cache.put("acct", "v", None)
    assert cache.get("acct") == "v"
    cache.close()
    assert not (tmp_path / "none.db").exists()


def test_worker_threads_share_the_cache_beside_the_loops_writes(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store = Store.open(path)
    cache = TokenCache(path)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(50):
                cache.put(f"k{n}-{i}", "v", None)
                assert cache.get(f"k{n}-{i}") == "v"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for i in range(50):
        store.snooze(f"line{i}", utcnow())
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    count = store.conn.execute("SELECT count(*) FROM tokens").fetchone()[0]
    assert count == 200
    cache.close()
    store.close()
