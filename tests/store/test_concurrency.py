"""The concurrency contract: one connection per thread, writes in BEGIN IMMEDIATE.

A writer thread with its own Store beside the loop's: every write of both lands, and
neither sees "database is locked".
"""

from __future__ import annotations

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
