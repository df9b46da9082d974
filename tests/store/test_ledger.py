"""The recharge ledger on a real file: typed entries in, the same entries out, in the
stored forms the ledger has always had."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from monitor.errors import DatabaseUnusable
from monitor.store import Recharge, Store, View
from monitor.store.ledger import interrupted_key, manual_key, need_key, skip_key

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def intent(**changes: Any) -> Recharge:
    entry = Recharge(
        line="a",
        key=need_key("a", T0),
        state="requested",
        action="provider",
        requested_at=T0,
        package="demo-topup",
        amount=Decimal("20.00"),
        price=Decimal("19.99"),
        currency="USD",
        manual=True,
        baseline_balance=Decimal("3.10"),
        baseline_data=123 * 2**20,
    )
    return replace(entry, **changes)


def test_an_entry_comes_back_as_it_went_in(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "h.db")
    east = timezone(timedelta(hours=5))
    stored = store.add_recharge(intent(requested_at=T0.astimezone(east)))
    assert stored.id is not None
    assert store.recharges() == [stored] == store.recharges("a", since=T0)
    assert store.recharge_by_key(stored.key) == stored
    (read,) = store.recharges()
    assert read.requested_at == T0 and read.requested_at.utcoffset() == timedelta(0)
    assert str(read.amount) == "20.00" and str(read.baseline_balance) == "3.10"  # places kept
    assert read.dry_run is False and read.manual is True
    settled = replace(
        stored,
        state="confirmed",
        submitted_at=T0 + timedelta(seconds=1),
        settled_at=T0 + timedelta(hours=1, microseconds=5),
        price=Decimal("8.5"),
        currency="EUR",
        reference="ref-1",
        detail="done",
    )
    store.update_recharge(settled)
    assert store.recharges() == [settled]
    store.close()
    view = View.open_existing(tmp_path / "h.db")
    assert view is not None
    assert view.recharge_history("a") == [settled]
    view.close()


def test_the_stored_forms_are_the_ledgers_own(tmp_path: Path) -> None:
    """The schema and its text are unchanged: exact decimal text, one time shape, 0/1."""
    store = Store.open(tmp_path / "h.db")
    store.add_recharge(intent(amount=Decimal("1E+1"), dry_run=True))
    store.close()
    conn = sqlite3.connect(tmp_path / "h.db")
    row = conn.execute(
        "SELECT key, amount, price, requested_at, dry_run, manual, baseline_data, settled_at "
        "FROM recharges"
    ).fetchone()
    conn.close()
    assert row == (
        "a:2026-11-01T12:00:00.000000+00:00",
        "10",
        "19.99",
        "2026-11-01T12:00:00.000000+00:00",
        1,
        1,
        123 * 2**20,
        None,
    )


def test_keys_keep_their_shape() -> None:
    key = need_key("a", T0)
    assert key == "a:2026-11-01T12:00:00.000000+00:00"
    assert manual_key("a", T0) == "a:manual:2026-11-01T12:00:00.000000+00:00"
    assert skip_key(key, "cooldown", T0) == f"{key}:skip:cooldown:2026-11-01T12:00:00.000000+00:00"
    assert interrupted_key(key) == f"{key}:interrupted"


@pytest.mark.parametrize(
    "changes",
    [
        {"price": 9.5},
        {"amount": 20.0},
        {"baseline_balance": 3},
        {"baseline_data": 1.5},
        {"baseline_data": True},
        {"requested_at": datetime(2026, 11, 1, 12, 0)},
        {"settled_at": "2026-11-01T12:00:00+00:00"},
    ],
    ids=lambda c: next(iter(c)),
)
def test_a_float_a_naive_time_or_text_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        intent(**changes)


def test_an_unknown_state_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown recharge state"):
        intent(state="bought")


def test_add_and_update_keep_to_their_rows(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "h.db")
    stored = store.add_recharge(intent())
    with pytest.raises(TypeError, match="in the ledger already"):
        store.add_recharge(stored)
    with pytest.raises(TypeError, match="not yet in the ledger"):
        store.update_recharge(intent())
    with pytest.raises(LookupError):
        store.update_recharge(replace(stored, id=stored.id + 1))  # type: ignore[operator]
    other = store.add_recharge(intent(key="a:other"))
    store.update_recharge(replace(stored, state="failed", settled_at=T0))
    assert [e.state for e in store.recharges()] == ["failed", "requested"]
    assert store.recharge_by_key("a:other") == other
    assert store.recharge_by_key("a:none") is None
    store.close()


def test_a_pin_is_spent_with_its_intent(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "h.db")
    stored = store.add_recharge(intent(action="ussd-pin"), pin_hash="h1")
    assert store.used_pins() == {"h1"}
    row = store.conn.execute("SELECT line, used_at, recharge_id FROM recharge_pins").fetchone()
    assert row == ("a", "2026-11-01T12:00:00.000000+00:00", stored.id)
    store.release_pin("h1")
    assert store.used_pins() == set()
    store.close()


@pytest.mark.parametrize(
    ("column", "value"),
    [("state", "bought"), ("price", "9,50"), ("requested_at", "yesterday")],
)
def test_a_damaged_entry_is_unusable(tmp_path: Path, column: str, value: str) -> None:
    store = Store.open(tmp_path / "h.db")
    stored = store.add_recharge(intent())
    store.conn.execute(f"UPDATE recharges SET {column} = ?", [value])
    store.conn.commit()
    with pytest.raises(DatabaseUnusable, match="a stored value is damaged"):
        store.recharges()
    with pytest.raises(DatabaseUnusable):
        store.recharge_by_key(stored.key)
    store.close()
