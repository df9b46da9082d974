"""The tokens table: access tokens that adapters fetched, kept across restarts.

Adapters read in worker threads, so this table has a connection of its own, shared by
those threads under the caller's lock (`monitor.tokens.TokenCache`); each statement is
its own short transaction, which waits for the loop's writes (busy timeout) like any
other connection (see the package's concurrency contract).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from monitor.model import utcnow
from monitor.store import codec
from monitor.store.connection import BUSY_TIMEOUT


class Tokens:
    def __init__(self, path: Path) -> None:
        # the table comes from the store's migrations, which run before any adapter
        self.path = path
        self._conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT, check_same_thread=False)

    def get(self, key: str) -> tuple[str, datetime | None] | None:
        """The token and when it expires, or None."""
        row = self._conn.execute(
            "SELECT value, expires_at FROM tokens WHERE key = ?", [key]
        ).fetchone()
        return (row[0], codec.parse_ts(row[1])) if row else None

    def put(self, key: str, value: str, expires_at: datetime | None) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO tokens (key, value, expires_at, updated_at) "
                "VALUES (?, ?, ?, ?)",
                [key, value, codec.ts(expires_at), codec.ts(utcnow())],
            )

    def delete(self, key: str) -> None:
        with self._conn:
            self._conn.execute("DELETE FROM tokens WHERE key = ?", [key])

    def close(self) -> None:
        self._conn.close()
