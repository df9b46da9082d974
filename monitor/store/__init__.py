"""The history database (SQLite): one module per table family, typed records in and out.

- `schema`: every table and index, by numbered migrations (the only DDL), and our own
  list of their names.
- `codec`: how a Decimal, a datetime, a level, a forecast, notices and event facts are
  written and read: the one module that knows the stored forms.
- `lines`: checks (reading, line state, events in one transaction), controls (snooze,
  acknowledge), series, retention and daily roll-ups.
- `outbox`: events, their deliveries per channel, digests.
- `ledger`: recharge intents and outcomes (`Recharge` entries, written and read whole),
  their idempotency keys, refill PINs, needs, account alerts.
- `views`: the read models (a line's status, history, events, the ledger) for the CLI,
  metrics and reports; `View` reads them with plain `sqlite3`.
- `tokens`: the adapters' access tokens.
- `connection`: the file's privacy, the error door (`translate`), one write transaction.
- `database`: `Store`, all of the families on one connection, opened and migrated.

Callers hand in and get back the model's records (`Reading`, `LineState`, `Event`,
`Controls`, `Forecast`) and the records defined here (`Check`, `OutboxEntry`, `Delivery`,
`Point`, `LineStatus`, `HistoryRow`, `EventRow`, `Recharge`): money Decimal, data int
bytes, times aware UTC datetimes. No caller parses a stored string or builds a row.

Errors: every public method lets out the project's errors only: DatabaseUnusable (exit
65) for a file that is corrupt, not a database, or of a schema or contents we cannot
read; StoreError (exit 1) for what may pass (busy, full, read-only, I/O).

Concurrency contract: one connection per thread, writes in `BEGIN IMMEDIATE`.
- A `Store` (or a `View`) belongs to the thread that opened it; a thread that writes
  opens its own from the path (`Store.open(path)`). Never share one between threads.
- Every write is one transaction that takes the write lock up front (`BEGIN IMMEDIATE`),
  so a second writer waits for the first (SQLite's busy timeout, `BUSY_TIMEOUT` = 10 s,
  far longer than any of our transactions) instead of failing, and a read never has to
  upgrade to a write mid-transaction (which SQLite fails at once, whatever the timeout).
- WAL: readers never wait for a writer, nor a writer for readers; a read sees the last
  committed transaction, never half of one.
- A write is committed when its method returns: a caller may answer (an HTTP handler,
  a delivery worker) on that.
- Only a write held past the busy timeout surfaces, as StoreError ("database is
  locked"): the loop then keeps its checks in memory (`owe`) and writes them later.
- The tokens table has one connection shared by the adapters' worker threads under one
  lock (`monitor.tokens.TokenCache`), each statement its own transaction.

The package's own import is light: names are loaded on first use, so a read-only command
that imports `monitor.store.views` never imports sqlite-utils.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.store.codec import clip, parse_ts, ts
    from monitor.store.connection import make_private_dirs, translate
    from monitor.store.database import Store
    from monitor.store.ledger import Recharge
    from monitor.store.lines import Check, Point
    from monitor.store.outbox import Delivery, OutboxEntry
    from monitor.store.views import EventRow, HistoryRow, LineStatus, View

_EXPORTS = {
    "Store": "database",
    "View": "views",
    "LineStatus": "views",
    "HistoryRow": "views",
    "EventRow": "views",
    "Check": "lines",
    "Point": "lines",
    "Delivery": "outbox",
    "OutboxEntry": "outbox",
    "Recharge": "ledger",
    "RelayTokens": "relay",
    "ts": "codec",
    "parse_ts": "codec",
    "clip": "codec",
    "make_private_dirs": "connection",
    "translate": "connection",
}

__all__ = [
    "Check",
    "Delivery",
    "EventRow",
    "HistoryRow",
    "LineStatus",
    "OutboxEntry",
    "Point",
    "Recharge",
    "RelayTokens",
    "Store",
    "View",
    "clip",
    "make_private_dirs",
    "parse_ts",
    "translate",
    "ts",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
