"""A small, thread-safe cache of access tokens, kept in the history database.

Adapters read in worker threads; this cache holds one lock around the tokens table's own
connection (`monitor.store.tokens`), apart from the store, so a token fetched once
survives restarts (the database is mode 0600). Without a database path it lives in memory
(`check` on a machine with no database yet).
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

from monitor.model import utcnow
from monitor.store.tokens import Tokens


class TokenCache:
    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._memory: dict[str, tuple[str, datetime | None]] = {}
        self._table: Tokens | None = None
        if path is not None and path.exists():
            self._table = Tokens(path)

    def get(self, key: str) -> str | None:
        """The token, unless it is missing or expires within a minute."""
        with self._lock:
            found = self._memory.get(key) if self._table is None else self._table.get(key)
        value, expires = found if found is not None else (None, None)
        if value is None or (expires is not None and (expires - utcnow()).total_seconds() < 60):
            return None
        return value

    def put(self, key: str, value: str, expires_at: datetime | None) -> None:
        with self._lock:
            if self._table is None:
                self._memory[key] = (value, expires_at)
            else:
                self._table.put(key, value, expires_at)

    def delete(self, key: str) -> None:
        with self._lock:
            self._memory.pop(key, None)
            if self._table is not None:
                self._table.delete(key)

    def close(self) -> None:
        with self._lock:
            if self._table is not None:
                self._table.close()
                self._table = None
