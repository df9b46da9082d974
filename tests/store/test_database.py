"""The store's door: every read and write lets out the project's errors only."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import DatabaseUnusable, StoreError
from monitor.store import Store

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


READS = [
    ("states", ()),
    ("state", ("a",)),
    ("controls", ()),
    ("status", ()),
    ("history", ("a", T0)),
    ("events", (T0,)),
    ("series", ("a", T0)),
    ("series_many", (["a"], T0)),
    ("due_deliveries", (T0,)),
    ("next_delivery_at", ()),
    ("held_due", (T0,)),
    ("pending_count", ()),
    ("recharges", ()),
    ("recharge_history", ()),
    ("used_pins", ()),
    ("account_alerts", ()),
    ("failures_since", (T0,)),
    ("digest_sent", ("hook",)),
]


@pytest.mark.parametrize(("method", "args"), READS, ids=[m for m, _ in READS])
def test_a_schema_we_cannot_read_is_unusable_in_every_read(
    tmp_path: Path, method: str, args: tuple[object, ...]
) -> None:
    """Issue 11.3: reads raised sqlite3 errors past the store's door (the CLI's exit 1)."""
    path = tmp_path / "h.db"
    store = Store.open(path)
    other = sqlite3.connect(path)
    for table in other.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        if table[0] not in ("_sqlite_migrations", "sqlite_sequence"):
            other.execute(f"DROP TABLE {table[0]}")
    other.commit()
    other.close()
    with pytest.raises(DatabaseUnusable, match="schema is not one esim-monitor made") as caught:
        getattr(store, method)(*args)
    assert caught.value.exit_code == 65
    store.close()


def test_a_value_we_cannot_decode_is_unusable(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "h.db")
    store.db.execute("INSERT INTO line_state (line, level, metrics) VALUES ('a', 'weird', '{')")
    store.db.conn.commit()
    with pytest.raises(DatabaseUnusable, match="a stored value is damaged"):
        store.states()
    store.close()


def test_busy_is_a_store_error_never_unusable(tmp_path: Path) -> None:
    """A database another process is writing: exit 1 (it may pass), never 65."""
    path = tmp_path / "h.db"
    store = Store.open(path)
    store.db.execute("PRAGMA busy_timeout = 0")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError) as caught:
            store.snooze("a", T0)
        assert not isinstance(caught.value, DatabaseUnusable)
        assert caught.value.exit_code == 1
        assert "database is locked" in str(caught.value)
    finally:
        other.close()
        store.close()


def test_the_store_opens_without_importing_numpy_which_stays_importable(tmp_path: Path) -> None:
    """sqlite-utils imports numpy and pandas where they are installed (matplotlib, the
    charts extra, brings numpy): the store blocks them for that import alone."""
    pytest.importorskip("numpy")
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from monitor.store import Store\n"
        f"Store.open(Path({str(tmp_path / 'h.db')!r})).close()\n"
        "print(sorted(m for m in ('numpy', 'pandas') if m in sys.modules))\n"
        "import numpy\n"
        "import sqlite_utils.db\n"
        "print(sqlite_utils.db.np is None, numpy.int64(3) + 1)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "True 4"]
