"""The concurrency contract: one connection per thread, writes in BEGIN IMMEDIATE.

A writer thread with its own Store beside the loop's: every write of both lands, and
neither sees "database is locked".
"""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from monitor.model import Event, Level, LineState, Reading
from monitor.store import Check, OutboxEntry, Store

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
ROUNDS = 40
LINES = 25
WRITES = 200


def _round(n: int) -> list[Check]:
    at = T0 + timedelta(minutes=n)
    checks = []
    for i in range(LINES):
        line = f"line{i}"
        level = Level.CRITICAL if (n + i) % 7 == 0 else Level.OK
        events = [OutboxEntry(Event("critical", line, at), "m", ["hook"])] if level else []
        checks.append(
            Check(
                line=line,
                checked_at=at,
                state=LineState(line, level, checked_at=at),
                events=events,
                reading=Reading(line, at, balance=Decimal(n)),
            )
        )
    return checks


def test_a_writer_thread_beside_the_loop_loses_no_write(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    loop = Store.open(path)
    start = threading.Barrier(2)
    errors: list[BaseException] = []
    sent: list[int] = []

    def writer() -> None:
        try:
            store = Store.open(path)  # the thread's own connection, as the contract says
            try:
                start.wait()
                for i in range(WRITES):
                    event = Event("test", "", T0 + timedelta(seconds=i), {"n": i})
                    store.add_events([OutboxEntry(event, f"w{i}", ["hook"])], T0)
                    store.snooze(f"line{i % LINES}", T0 + timedelta(hours=i))
            finally:
                store.close()
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        start.wait()
        for n in range(ROUNDS):
            loop.record_checks(_round(n), now=T0)
            for delivery in loop.due_deliveries(T0 + timedelta(days=1))[:5]:
                loop.delivered(delivery.id, T0)
                sent.append(delivery.id)
    finally:
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert errors == []  # no StoreError ("database is locked") in the writer
    count = loop.conn.execute
    assert count("SELECT count(*) FROM readings").fetchone()[0] == ROUNDS * LINES
    written = count("SELECT count(*) FROM events WHERE type = 'test'").fetchone()[0]
    assert written == WRITES
    critical = sum(1 for n in range(ROUNDS) for i in range(LINES) if (n + i) % 7 == 0)
    assert count("SELECT count(*) FROM events WHERE type = 'critical'").fetchone()[0] == critical
    assert count("SELECT count(*) FROM deliveries").fetchone()[0] == WRITES + critical
    marked = count("SELECT id FROM deliveries WHERE status = 'sent'").fetchall()
    assert sorted(row[0] for row in marked) == sorted(sent) and sent
    assert loop.owing == 0
    assert len(loop.states()) == LINES
    assert loop.controls()[f"line{(WRITES - 1) % LINES}"].snoozed_until == T0 + timedelta(
        hours=WRITES - 1
    )
    loop.close()


def _events_seen_by_another_process(path: Path) -> int:
    """What a process of its own reads (the CLI, a test): it opens, reads and closes, and a
    closing connection that finds no other holder checkpoints and deletes the WAL."""
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "print(c.execute('SELECT count(*) FROM events').fetchone()[0]); c.close()"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def test_a_second_store_in_the_process_keeps_the_first_ones_writes_visible(
    tmp_path: Path,
) -> None:
    """Opening a Store used to open and close a descriptor of the database file. POSIX
    drops every lock a process holds on a file when any descriptor of it closes, so the
    first store's SQLite locks went with it: the next process to close a connection took
    itself for the last one and deleted the WAL, and the first store then committed into a
    deleted file, seen by no one else and gone at the next start (a relay event answered
    200 was lost that way)."""
    path = tmp_path / "h.db"
    first = Store.open(path)
    try:
        first.add_events([OutboxEntry(Event("test", "", T0), "before", ["hook"])], T0)
        Store.open(path).close()  # another thread's store, as the HTTP server's threads open
        assert _events_seen_by_another_process(path) == 1
        first.add_events([OutboxEntry(Event("test", "", T0), "after", ["hook"])], T0)
        assert _events_seen_by_another_process(path) == 2
        assert path.with_name("h.db-wal").exists()
    finally:
        first.close()
