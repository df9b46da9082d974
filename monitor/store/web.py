"""The status page's tables: its signing key, sessions, API tokens, used action links.

Sessions and tokens are kept as SHA-256 hashes (`monitor.http.auth.token_hash`). A used
link's nonce is written in the caller's transaction (`Store.transaction`), beside what
the link does, so a link acts once even when two requests race, and an action whose
commit failed leaves the link usable.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from monitor.store import Store, codec

KEY_BYTES = 32


def key(store: Store, name: str, now: datetime) -> bytes:
    """The server's key `name`, made on first use: every thread and restart agrees on it."""
    fresh = base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()
    with store.transaction():
        store.conn.execute(
            "INSERT OR IGNORE INTO web_keys (name, key, created_at) VALUES (?, ?, ?)",
            [name, fresh, codec.ts(now)],
        )
        row = store.conn.execute("SELECT key FROM web_keys WHERE name = ?", [name]).fetchone()
    return base64.b64decode(row[0])


def open_session(store: Store, id_hash: str, user: str, now: datetime, until: datetime) -> None:
    with store.transaction():
        store.conn.execute("DELETE FROM web_sessions WHERE expires_at <= ?", [codec.ts(now)])
        store.conn.execute(
            "INSERT INTO web_sessions (id_hash, user, created_at, expires_at) VALUES (?, ?, ?, ?)",
            [id_hash, user, codec.ts(now), codec.ts(until)],
        )


def session_user(store: Store, id_hash: str, now: datetime) -> str | None:
    """Whose session it is, while it lasts."""
    row = store.conn.execute(
        "SELECT user, expires_at FROM web_sessions WHERE id_hash = ?", [id_hash]
    ).fetchone()
    if row is None or codec.parse_ts(row[1]) <= now:
        return None
    return str(row[0])


def close_session(store: Store, id_hash: str) -> None:
    with store.transaction():
        store.conn.execute("DELETE FROM web_sessions WHERE id_hash = ?", [id_hash])


def add_token(store: Store, token_hash: str, name: str, now: datetime) -> None:
    with store.transaction():
        store.conn.execute(
            "INSERT INTO web_tokens (token_hash, name, created_at) VALUES (?, ?, ?)",
            [token_hash, name, codec.ts(now)],
        )


def token_name(store: Store, token_hash: str) -> str | None:
    row = store.conn.execute(
        "SELECT name FROM web_tokens WHERE token_hash = ?", [token_hash]
    ).fetchone()
    return None if row is None else str(row[0])


def tokens(store: Store) -> list[tuple[str, datetime]]:
    """The API tokens' names and when each was issued, oldest first (never the tokens)."""
    rows = store.conn.execute(
        "SELECT name, created_at FROM web_tokens ORDER BY created_at, name"
    ).fetchall()
    return [(str(name), datetime.fromisoformat(created)) for name, created in rows]


def revoke_tokens(store: Store, name: str) -> int:
    """Remove every API token of that name: how many there were."""
    with store.transaction():
        gone = store.conn.execute("DELETE FROM web_tokens WHERE name = ?", [name]).rowcount
    return int(gone)


def use_link(store: Store, nonce: str, expires: datetime, now: datetime) -> bool:
    """Mark an action link used; False when it already was. Call it inside the
    transaction that does what the link says."""
    store.conn.execute("DELETE FROM web_links_used WHERE expires_at <= ?", [codec.ts(now)])
    found = store.conn.execute("SELECT 1 FROM web_links_used WHERE nonce = ?", [nonce]).fetchone()
    if found is not None:
        return False
    store.conn.execute(
        "INSERT INTO web_links_used (nonce, used_at, expires_at) VALUES (?, ?, ?)",
        [nonce, codec.ts(now), codec.ts(expires)],
    )
    return True


def link_used(store: Store, nonce: str) -> bool:
    """Whether a link was used (its GET page says so before offering the button)."""
    row = store.conn.execute("SELECT 1 FROM web_links_used WHERE nonce = ?", [nonce]).fetchone()
    return row is not None
