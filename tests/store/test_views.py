"""The read models: typed records, the same through the Store and through a plain View."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlite_utils import Database

from monitor.errors import DatabaseUnusable
from monitor.forecast import Forecast
from monitor.model import Controls, Event, Level, LineState, Reading
from monitor.store import Check, OutboxEntry, Store, View, schema

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
READING = Reading(
    "a",
    T0,
    balance=Decimal("4.10"),
    currency="USD",
    data_remaining=123,
    data_total=1000,
    expires_at=T0 + timedelta(days=2),
    status="ACTIVE",
    renewal_at=T0 + timedelta(days=1),
    renewal_price=Decimal("15"),
)


def _filled(path: Path) -> None:
    store = Store.open(path)
    reading = READING
    forecast = Forecast("balance", Decimal("0.5"), T0 + timedelta(days=8))
    event = Event("critical", "a", T0, {"value": "4.10 USD"})
    store.record_checks(
        [
            Check(
                "a",
                T0,
                LineState("a", Level.CRITICAL, low_since=T0, checked_at=T0, last_success_at=T0),
                events=[OutboxEntry(event, "a is critical", ["hook"])],
                reading=reading,
                forecasts=[forecast],
            ),
            Check("b", T0, LineState("b", failures=1, last_error="timeout"), error="timeout"),
        ],
        now=T0,
    )
    store.snooze("a", T0 + timedelta(hours=2))
    store.close()


def test_status_is_typed_and_the_same_through_store_and_view(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    _filled(path)
    store = Store.open(path)
    view = View.open_existing(path)
    assert view is not None
    try:
        assert view.status() == store.status()
        assert view.history("a", T0) == store.history("a", T0)
        assert view.events(T0) == store.events(T0)
        a, b = view.status()["a"], view.status()["b"]
    finally:
        view.close()
        store.close()
    assert a.level is Level.CRITICAL and a.state == "critical"
    assert a.balance == Decimal("4.10") and a.renewal_price == Decimal("15")
    assert a.read_at == T0 and a.expires_at == T0 + timedelta(days=2)
    assert a.forecasts == {"balance": Forecast("balance", Decimal("0.5"), T0 + timedelta(days=8))}
    assert a.controls == Controls(snoozed_until=T0 + timedelta(hours=2))
    assert a.reading == READING
    assert b.reading is None and b.failures == 1 and b.last_error == "timeout"
    assert b.state == "unknown" and b.controls == Controls()


def test_history_and_events_are_typed(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    _filled(path)
    view = View.open_existing(path)
    assert view is not None
    (row,) = view.history("a", T0 - timedelta(days=1))
    (failed,) = view.history("b", T0 - timedelta(days=1))
    (event,) = view.events(T0 - timedelta(days=1))
    view.close()
    assert row.ok is True and row.level is Level.CRITICAL and row.balance == Decimal("4.10")
    assert row.checked_at == T0 and row.expires_at == T0 + timedelta(days=2)
    assert failed.ok is False and failed.error == "timeout" and failed.balance is None
    assert (event.type, event.line, event.channel, event.status) == (
        "critical",
        "a",
        "hook",
        "pending",
    )
    assert event.created_at == T0 and event.next_attempt_at == T0 and event.sent_at is None


def test_a_read_only_view_never_imports_sqlite_utils(tmp_path: Path) -> None:
    """sqlite-utils imports numpy where it is installed: a read-only command pays for neither."""
    path = tmp_path / "h.db"
    _filled(path)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from monitor.store.views import View\n"
        f"view = View.open_existing(Path({str(path)!r}))\n"
        "assert view.status()['a'].balance is not None\n"
        "view.close()\n"
        "print(sorted(m for m in ('sqlite_utils', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_view_of_an_older_database_migrates_it_first(tmp_path: Path) -> None:
    """As `status` did when it opened the store: a database the last version left, whose
    newest migrations have not run, is brought up to date rather than misread."""
    path = tmp_path / "h.db"
    db = Database(sqlite3.connect(path))
    schema.migrations().apply(db, stop_before=schema.NAMES[-1])
    db.close()
    view = View.open_existing(path)
    assert view is not None
    try:
        assert schema.applied(view.conn) == list(schema.NAMES)
        assert view.status() == {}
    finally:
        view.close()


def test_a_view_refuses_a_newer_or_damaged_database(tmp_path: Path) -> None:
    assert View.open_existing(tmp_path / "none.db") is None
    assert not (tmp_path / "none.db").exists()
    newer = tmp_path / "newer.db"
    Store.open(newer).close()
    conn = sqlite3.connect(newer)
    conn.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
        "VALUES ('esim-monitor', '9999_future', '2030-01-01')"
    )
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseUnusable, match="newer esim-monitor"):
        View.open_existing(newer)
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DatabaseUnusable, match="move the file aside"):
        View.open_existing(damaged)


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("status", ()),
        ("controls", ()),
        ("history", ("a", T0)),
        ("events", (T0,)),
        ("recharge_history", ()),
        ("series", ("a", T0)),
        ("failures_since", (T0,)),
    ],
)
def test_a_view_of_a_schema_we_cannot_read_is_unusable(
    tmp_path: Path, method: str, args: tuple[object, ...]
) -> None:
    path = tmp_path / "h.db"
    Store.open(path).close()
    view = View.open_existing(path)
    assert view is not None
    other = sqlite3.connect(path)
    tables = other.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    for (table,) in tables:
        if table not in ("_sqlite_migrations", "sqlite_sequence"):
            other.execute(f"DROP TABLE {table}")
    other.commit()
    other.close()
    with pytest.raises(DatabaseUnusable, match="schema is not one esim-monitor made"):
        getattr(view, method)(*args)
    view.close()


def test_a_view_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    _filled(path)
    view = View.open_existing(path)
    assert view is not None
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        view.conn.execute("DELETE FROM readings")
    view.close()


def test_the_last_currency_outlasts_a_reading_without_one(tmp_path: Path) -> None:
    """A figure read without its unit (a manual balance, a provider's credit notice) takes
    the currency of the line's latest reading that had one."""
    path = tmp_path / "h.db"
    _filled(path)
    store = Store.open(path)
    later = T0 + timedelta(hours=1)
    state = store.state("a")
    bare = Reading("a", later, data_remaining=100)
    store.record_checks([Check("a", later, state, reading=bare)], now=later)
    assert store.last_currency("a") == "USD"
    assert store.last_currency("b") is None  # it never had a reading
    store.close()
    view = View.open_existing(path)
    assert view is not None and view.last_currency("a") == "USD"
    view.close()


def test_status_decodes_again_only_the_lines_whose_rows_changed(tmp_path: Path) -> None:
    """The page, its API and the scrape call status() again and again: a line whose stored
    row is unchanged keeps its record, and any change, by any connection, shows at once."""
    path = tmp_path / "h.db"
    _filled(path)
    reader, writer = Store.open(path), Store.open(path)
    try:
        first = reader.status()
        again = reader.status()
        assert again["a"] is first["a"] and again["b"] is first["b"]
        writer.record_checks(
            [
                Check(
                    "b",
                    T0 + timedelta(hours=1),
                    LineState("b", failures=2, last_error="refused"),
                    error="refused",
                )
            ],
            now=T0 + timedelta(hours=1),
        )
        writer.snooze("a", T0 + timedelta(hours=5))
        changed = reader.status()
    finally:
        reader.close()
        writer.close()
    assert changed["b"].failures == 2 and changed["b"].last_error == "refused"
    assert changed["a"].controls == Controls(snoozed_until=T0 + timedelta(hours=5))
    assert changed["a"].balance == Decimal("4.10")
