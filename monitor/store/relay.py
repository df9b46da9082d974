"""The relay_tokens table: one token per line for the phone relay, kept only as a hash.

A token is 32 random bytes (URL-safe Base64), so a plain SHA-256 is enough to make the
stored form useless to whoever reads the file: there is nothing to guess by brute force.
Lookups compare the hash in constant time. The HTTP server's threads each open their own
`RelayTokens` (plain sqlite3, one statement a transaction, busy timeout like any writer).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from pathlib import Path

from monitor.model import utcnow
from monitor.store import codec
from monitor.store.connection import BUSY_TIMEOUT, guard_public

TOKEN_BYTES = 32


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@guard_public
class RelayTokens:
    def __init__(self, path: Path) -> None:
        # the table comes from the store's migrations, which run before the server starts
        self.path = path
        self._conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT, check_same_thread=False)

    def issue(self, line: str) -> str:
        """A new token for `line`, replacing its old one (which stops working at once)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO relay_tokens (line, token_hash, created_at) "
                "VALUES (?, ?, ?)",
                [line, token_hash(token), codec.ts(utcnow())],
            )
        return token

    def verify(self, line: str, token: str) -> bool:
        """Whether `token` is `line`'s current token."""
        row = self._conn.execute(
            "SELECT token_hash FROM relay_tokens WHERE line = ?", [line]
        ).fetchone()
        return row is not None and hmac.compare_digest(row[0], token_hash(token))

    def close(self) -> None:
        self._conn.close()
