"""The outbox on a real file: events with their deliveries, sends kept, holds, digests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.errors import DatabaseUnusable, StoreError
from monitor.model import Event, LineState
from monitor.store import Check, OutboxEntry, Store

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _event(kind: str = "critical", line: str = "a", **facts: object) -> Event:
    return Event(kind, line, T0, facts)


def test_each_channel_gets_a_delivery_and_facts_come_back(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "h.db")
    store.add_events([OutboxEntry(_event(value="4 USD", n=2), "a is critical", ["x", "y"])], T0)
    due = store.due_deliveries(T0)
    assert [d.channel for d in due] == ["x", "y"]
    assert due[0].event == Event("critical", "a", T0, {"value": "4 USD", "n": 2})
    (row,) = {r.message for r in store.events(T0)}
    assert row == "a is critical"
    assert store.pending_count() == 2
    store.close()


def test_a_snoozed_line_is_held_and_a_direct_send_is_recorded_sent(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "h.db")
    store.record_checks(
        [
            Check("a", T0, LineState("a"), [OutboxEntry(_event(), "m", ["x"])], snoozed=True),
            Check(
                "b",
                T0,
                LineState("b"),
                [OutboxEntry(_event(line="b"), "m", ["x", "y"])],
                sent=[["y"]],
            ),
        ],
        now=T0,
    )
    statuses = {(r.line, r.channel): (r.status, r.attempts) for r in store.events(T0)}
    assert statuses == {
        ("a", "x"): ("snoozed", 0),
        ("b", "x"): ("pending", 0),
        ("b", "y"): ("sent", 1),
    }
    assert [d.channel for d in store.due_deliveries(T0)] == ["x"]
    store.close()


def test_a_send_whose_mark_cannot_be_written_is_never_sent_again(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "h.db")
    store.add_events([OutboxEntry(_event(), "m", ["x"])], T0)
    (delivery,) = store.due_deliveries(T0)
    store.conn.execute("PRAGMA query_only = ON")
    store.delivered(delivery.id, T0)  # remembered, not raised
    assert store.due_deliveries(T0) == [] and store.next_delivery_at() is None
    assert store.owing == 1
    store.conn.execute("PRAGMA query_only = OFF")
    assert store.settle(T0) == []
    (row,) = store.events(T0)
    assert row.status == "sent" and row.sent_at == T0 and store.owing == 0
    store.close()


def test_quiet_hours_hold_until_their_end(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "h.db")
    store.add_events([OutboxEntry(_event(), "m", ["x"])], T0)
    (delivery,) = store.due_deliveries(T0)
    store.hold(delivery.id, T0 + timedelta(hours=8))
    assert store.held_due(T0 + timedelta(hours=7)) == {}
    (held,) = store.held_due(T0 + timedelta(hours=8))["x"]
    assert held.id == delivery.id and store.pending_count() == 1
    store.close()


def test_a_digest_and_its_channels_time_are_written_together(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "h.db")
    assert store.digest_sent("x") is None
    store.add_digest_baseline("x", T0)
    assert store.digest_sent("x") == T0
    later = T0 + timedelta(days=1)
    store.add_digest("x", Event("digest", "", later, {"title": "t"}), "t", later)
    assert store.digest_sent("x") == later
    assert [(r.type, r.channel) for r in store.events(T0)] == [("digest", "x")]
    store.close()


def test_a_write_the_file_refuses_is_a_store_error(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "h.db")
    store.conn.execute("PRAGMA query_only = ON")  # as on a read-only disk
    with pytest.raises(StoreError, match="cannot write to the database") as caught:
        store.add_events([OutboxEntry(_event(), "m", ["x"])], T0)
    assert not isinstance(caught.value, DatabaseUnusable)
    store.close()
