"""Checks on a real file: a reading, its line state and its events in one transaction."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from monitor.model import Event, ExpiryNotice, Level, LineState, Notices, Reading
from monitor.store import Check, OutboxEntry, Store

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def test_a_check_round_trip(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "h.db")
    reading = Reading(
        line="a",
        checked_at=T0,
        balance=Decimal("4.10"),
        currency="USD",
        data_remaining=123,
        data_total=1000,
        expires_at=T0 + timedelta(days=2),
        status="ACTIVE",
        raw={"remaining": 0.1},
    )
    state = LineState("a", Level.CRITICAL, {"balance": Level.CRITICAL}, low_since=T0, checked_at=T0)
    event = Event("critical", "a", T0, {"value": "4.10 USD"})
    store.record_checks(
        [
            Check(
                line="a",
                checked_at=T0,
                state=state,
                events=[OutboxEntry(event, "msg", ["phone", "mail"])],
                reading=reading,
            )
        ],
        now=T0,
    )
    assert store.state("a") == state
    assert store.state("unknown-line") == LineState("unknown-line")
    row = store.status()["a"]
    assert row.balance == Decimal("4.10") and str(row.balance) == "4.10"  # money stays exact
    assert row.currency == "USD" and row.data_remaining == 123
    assert row.expires_at == T0 + timedelta(days=2) and row.read_at == T0
    stored = store.db.execute("SELECT balance FROM readings").fetchone()[0]
    assert stored == "4.10"  # exact decimal text, never a float
    due = store.due_deliveries(T0)
    assert {d.channel for d in due} == {"phone", "mail"}
    assert due[0].event.facts == {"value": "4.10 USD"}
    assert store.next_delivery_at() == T0
    store.delivered(due[0].id, T0)
    store.delivery_failed(due[1].id, "boom", T0, T0 + timedelta(seconds=30))
    assert store.due_deliveries(T0) == []
    assert [d.id for d in store.due_deliveries(T0 + timedelta(seconds=30))] == [due[1].id]
    # a failed check keeps the last reading as the line's latest
    store.record_checks(
        [
            Check(
                line="a",
                checked_at=T0 + timedelta(hours=1),
                state=LineState("a", Level.CRITICAL, failures=1, last_error="timeout"),
                events=[],
                error="timeout",
            )
        ],
        now=T0,
    )
    assert store.status()["a"].balance == Decimal("4.10")
    assert store.status()["a"].last_error == "timeout"
    history = store.history("a", T0 - timedelta(days=1))
    assert [(h.ok, h.error) for h in history] == [(True, None), (False, "timeout")]
    assert [e.channel for e in store.events(T0 - timedelta(days=1))] == ["mail", "phone"]
    raw = store.db.execute("SELECT raw FROM readings WHERE ok = 1").fetchone()[0]
    assert json.loads(raw) == {"remaining": 0.1}
    store.close()


def test_a_check_is_all_or_nothing(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "h.db")
    bad = Event("warning", "a", T0, {"x": 1})
    check = Check(
        line="a",
        checked_at=T0,
        state=LineState("a", Level.WARNING),
        # a delivery row without a channel violates NOT NULL, after the reading was written
        events=[OutboxEntry(bad, "m", [None])],  # type: ignore[list-item]
        reading=Reading("a", T0, balance=Decimal(1)),
    )
    with pytest.raises(sqlite3.IntegrityError):
        store.record_checks([check], now=T0)
    assert store.db["readings"].count == 0
    assert store.db["events"].count == 0
    assert store.states() == {}
    store.close()


def test_notices_and_time_facts_come_back_typed(tmp_path: Path) -> None:
    """A line's notices and an event's time facts cross the store as datetimes, and what
    the earlier version wrote (`isoformat()` text) reads as the same instants."""
    store = Store.open(tmp_path / "h.db")
    notices = Notices(
        critical_since=T0,
        expiry=ExpiryNotice(T0 + timedelta(days=3), frozenset({"7d"})),
        folded="acme",
    )
    state = LineState("a", Level.CRITICAL, checked_at=T0, notices=notices)
    event = Event("critical", "a", T0, {"low_since": T0, "expires_at": None})
    store.record_checks([Check("a", T0, state, events=[OutboxEntry(event, "m", ["hook"])])], now=T0)
    assert store.state("a").notices == notices
    (due,) = store.due_deliveries(T0)
    assert due.event.facts == {"low_since": T0, "expires_at": None}
    store.db.execute(
        "UPDATE line_state SET notices = ?",
        [
            '{"renewal-risk": "2026-11-02T00:00:00+00:00", '
            '"critical_since": "2026-11-01T12:00:00+00:00"}'
        ],
    )
    assert store.state("a").notices == Notices(
        critical_since=T0, renewal_risk=datetime(2026, 11, 2, tzinfo=UTC)
    )
    store.close()


def test_stored_excerpts_are_at_most_4_kib(tmp_path: Path) -> None:
    """A valid 1 MiB answer or a long error is history, not an archive (issue 11.5)."""
    store = Store.open(tmp_path / "h.db")
    reading = Reading(line="a", checked_at=T0, balance=Decimal(1), raw={"pad": "é" * (1 << 19)})
    state = LineState("a", Level.OK, checked_at=T0)
    store.record_checks(
        [Check(line="a", checked_at=T0, state=state, events=[], reading=reading)], now=T0
    )
    long_error = "the provider said: " + "ü" * 10_000
    failed = LineState("a", Level.OK, failures=1, last_error=long_error)
    store.record_checks(
        [Check(line="a", checked_at=T0, state=failed, events=[], error=long_error)], now=T0
    )
    raw, error = store.db.execute("SELECT max(raw), max(error) FROM readings").fetchone()
    last_error = store.db.execute("SELECT last_error FROM line_state").fetchone()[0]
    for text in (raw, error, last_error):
        assert 3000 < len(text.encode()) <= 4096
        assert text.endswith("…[cut]")
    assert error.startswith("the provider said: ü")
    store.close()


def test_a_check_judged_from_a_state_that_moved_on_is_not_written(tmp_path: Path) -> None:
    """The daemon reads its states once per pass: a reading recorded meanwhile (another
    process) must not be overwritten by a check judged without it."""
    store = Store.open(tmp_path / "h.db")
    seen = store.state("a")  # what the daemon read at the start of its pass
    manual = Reading("a", T0, balance=Decimal("2"), source="manual")
    recorded = LineState("a", Level.CRITICAL, {"balance": Level.CRITICAL}, checked_at=T0)
    other = Store.open(tmp_path / "h.db")  # the `record` command's own connection
    assert other.record_checks([Check("a", T0, recorded, reading=manual, based_on=seen)], T0) == []
    other.close()
    later = T0 + timedelta(minutes=1)
    polled = LineState("a", Level.OK, {"balance": Level.OK}, checked_at=later)
    event = Event("recovery", "a", later)
    stale = store.record_checks(
        [
            Check(
                "a",
                later,
                polled,
                events=[OutboxEntry(event, "m", ["hook"])],
                reading=Reading("a", later, balance=Decimal("20")),
                based_on=seen,
            )
        ],
        later,
    )
    assert stale == ["a"]
    assert store.state("a") == recorded
    assert [(r.source, r.balance) for r in store.history("a", T0)] == [("manual", Decimal("2"))]
    assert store.events(T0) == []
    # judged again from the state now stored, it is written
    assert store.record_checks([Check("a", later, polled, based_on=recorded)], later) == []
    assert store.state("a") == polled
    store.close()


def test_a_raw_reply_is_kept_once_while_it_repeats(tmp_path: Path) -> None:
    """Issue 18: a reply the same as the line's previous kept one is stored once; a failed
    check's reply is kept; the line's last reply stays readable, through pruning too."""
    store = Store.open(tmp_path / "h.db")
    replies = [{"volume": "500"}, {"volume": "500"}, None, {"volume": "500"}, {"volume": "499"}]
    replies += [{"volume": "499"}, {"volume": "499"}]
    shown = []
    for k, reply in enumerate(replies):
        at = T0 + timedelta(minutes=30 * k)
        state = LineState("a", Level.OK, checked_at=at)
        if reply is None:
            check = Check("a", at, state, error="HTTP 503", raw="<html>busy</html>")
        else:
            check = Check("a", at, state, reading=Reading("a", at, data_remaining=1, raw=reply))
        store.record_checks([check], at)
        shown.append(store.last_raw("a"))
    stored = [row[0] for row in store.db.execute("SELECT raw FROM readings ORDER BY id")]
    five, nine = '{"volume": "500"}', '{"volume": "499"}'
    assert stored == [five, None, "<html>busy</html>", five, nine, None, None]
    assert shown == [five, five, "<html>busy</html>", five, nine, nine, nine]
    # pruning keeps the reading that holds the reply the latest one repeats
    assert store.prune(T0 + timedelta(hours=3)) == 5
    assert store.last_raw("a") == nine
    assert [h.checked_at for h in store.history("a", T0)] == [
        T0 + timedelta(hours=2),
        T0 + timedelta(hours=3),
    ]
    store.close()
