"""The hook_deliveries table: the webhook deliveries taken in the last day, by key.

A key is the provider's event id where it sends one, else the SHA-256 of the raw body.
All calls run inside the caller's write transaction (`Store.transaction`), beside the
reading the delivery becomes, so a retry after a lost 2xx finds it or finds nothing.
`prune` runs once per delivery, not per key: a 1NCE batch holds 3,000 keys, and a day of
batches is a table a delete must scan.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from monitor.store import Store, codec

KEPT = timedelta(hours=24)


def taken(store: Store, key: str, now: datetime) -> bool:
    """Whether a delivery with `key` was taken within the last `KEPT`."""
    row = store.conn.execute(
        "SELECT received_at FROM hook_deliveries WHERE key = ?", [key]
    ).fetchone()
    return row is not None and codec.parse_ts(row[0]) > now - KEPT


def prune(store: Store, now: datetime) -> None:
    """Forget the keys taken longer than `KEPT` ago."""
    store.conn.execute("DELETE FROM hook_deliveries WHERE received_at < ?", [codec.ts(now - KEPT)])


def remember(store: Store, key: str, account: str, now: datetime) -> None:
    """Keep `key` as taken now."""
    store.conn.execute(
        "INSERT OR REPLACE INTO hook_deliveries (key, account, received_at) VALUES (?, ?, ?)",
        [key, account, codec.ts(now)],
    )
