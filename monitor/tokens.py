"""A small, thread-safe cache of access tokens, kept in the history database.

Adapters read in worker threads; this cache has its own connection and lock, apart from
the store, so a token fetched once survives restarts (the database is mode 0600).
Without a database path it lives in memory (`check` on a machine with no database yet).
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime
from pathlib import Path

from monitor.model import utcnow


class TokenCache:
    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._memory: dict[str, tuple[str, datetime | None]] = {}
        self._conn: sqlite3.Connection | None = None
        if path is not None and path.exists():
            # the table comes from the store's migrations, which run before any adapter
            self._conn = sqlite3.connect(str(path), timeout=10.0, check_same_thread=False)

    def get(self, key: str) -> str | None:
        """The token, unless it is missing or expires within a minute."""
        with self._lock:
            if self._conn is None:
                value, expires = self._memory.get(key, (None, None))
            else:
                row = self._conn.execute(
                    "SELECT value, expires_at FROM tokens WHERE key = ?", [key]
                ).fetchone()
                value, expires = (row[0], _parse(row[1])) if row else (None, None)
        if value is None or (expires is not None and (expires - utcnow()).total_seconds() < 60):
            return None
        return value

    def put(self, key: str, value: str, expires_at: datetime | None) -> None:
        with self._lock:
            if self._conn is None:
                self._memory[key] = (value, expires_at)
                return
            with self._conn:
                self._conn.execute(
                    "INSERT OR REPLACE INTO tokens (key, value, expires_at, updated_at) "
                    "VALUES (?, ?, ?, ?)",
                    [
                        key,
                        value,
                        expires_at.isoformat() if expires_at else None,
                        utcnow().isoformat(),
                    ],
                )

    def delete(self, key: str) -> None:
        with self._lock:
            self._memory.pop(key, None)
            if self._conn is not None:
                with self._conn:
                    self._conn.execute("DELETE FROM tokens WHERE key = ?", [key])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
