"""The recharge ledger: top-up intents and their outcomes, spent refill PINs, open needs,
and the accounts whose folded failure alert is out.

An intent is committed before any money is spent; its outcome (and the alert it calls
for, in the same transaction) after. See `monitor.recharge` for the policy.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, get_args

from monitor.store import codec
from monitor.store.connection import Connection, insert_row


class Ledger(Connection):
    def recharges(self, line: str | None = None, since: datetime | None = None) -> list[Recharge]:
        """The ledger, oldest first, of one line or all, since a time or ever."""
        return recharges(self.conn, line, since)

    def recharge_by_key(self, key: str) -> Recharge | None:
        row = self.conn.execute(
            f"SELECT {RECHARGE_COLUMNS} FROM recharges WHERE key = ?", [key]
        ).fetchone()
        return recharge_from_row(row) if row else None

    def add_recharge(self, entry: Recharge, pin_hash: str | None = None) -> Recharge:
        """Write an intent (or a skip) before anything is called; a PIN is spent with it.
        Returns the entry with the id the ledger gave it."""
        if entry.id is not None:  # a TypeError: the store's door reads a ValueError as damage
            raise TypeError(f"recharge {entry.id} is in the ledger already: update it")
        with self._writing() as db:
            recharge_id = insert_row(db.conn, "recharges", recharge_row(entry))
            if pin_hash is not None:
                insert_row(
                    db.conn,
                    "recharge_pins",
                    {
                        "pin_hash": pin_hash,
                        "line": entry.line,
                        "used_at": codec.ts(entry.requested_at),
                        "recharge_id": recharge_id,
                    },
                )
        return replace(entry, id=recharge_id)

    def update_recharge(self, entry: Recharge) -> None:
        """Write an entry's outcome (every column of it) over its row."""
        if entry.id is None:
            raise TypeError("a recharge not yet in the ledger: add it")
        row = recharge_row(entry)
        with self._writing() as db:
            cursor = db.conn.execute(
                f"UPDATE recharges SET {', '.join(f'{c} = ?' for c in row)} WHERE id = ?",
                [*row.values(), entry.id],
            )
            if cursor.rowcount != 1:
                raise LookupError(f"no recharge {entry.id} in the ledger")

    def release_pin(self, pin_hash: str) -> None:
        """A PIN whose redeem code never left the modem may be used again."""
        with self._writing() as db:
            db.conn.execute("DELETE FROM recharge_pins WHERE pin_hash = ?", [pin_hash])

    def used_pins(self) -> set[str]:
        return {row[0] for row in self.conn.execute("SELECT pin_hash FROM recharge_pins")}

    def need_since(self, line: str) -> datetime | None:
        row = self.conn.execute(
            "SELECT since FROM recharge_needs WHERE line = ?", [line]
        ).fetchone()
        return codec.parse_ts(row[0]) if row else None

    def set_need(self, line: str, since: datetime | None) -> None:
        with self._writing() as db:
            if since is None:
                db.conn.execute("DELETE FROM recharge_needs WHERE line = ?", [line])
            else:
                db["recharge_needs"].upsert({"line": line, "since": codec.ts(since)}, pk="line")

    def account_alerts(self) -> set[str]:
        """Accounts whose folded failure alert went out and whose recovery has not."""
        return {row[0] for row in self.conn.execute("SELECT account FROM account_alerts")}

    def set_account_alert(self, account: str, at: datetime | None) -> None:
        with self._writing() as db:
            if at is None:
                db.conn.execute("DELETE FROM account_alerts WHERE account = ?", [account])
            else:
                db["account_alerts"].upsert(
                    {"account": account, "alerted_at": codec.ts(at)}, pk="account"
                )


RechargeState = Literal[
    "requested", "submitted", "confirmed", "unconfirmed", "unknown", "failed", "skipped", "dry-run"
]
"""Where a top-up stands: `requested` (the intent, before any call), `submitted` (the call
answered; verified by a later reading: `confirmed` or `unconfirmed`), `unknown` (money may
have been spent: never retried), `failed`, `skipped` (a cap), `dry-run`."""
RECHARGE_STATES: frozenset[str] = frozenset(get_args(RechargeState))


@dataclass(frozen=True)
class Recharge:
    """One entry of the ledger: a top-up's intent and, once known, its outcome. Written and
    read as it is (money Decimal, times aware datetimes); `id` is None until the ledger
    has it (`add_recharge` returns the entry with its id)."""

    line: str
    key: str
    """The idempotency key: the need (or the manual request) it answers."""
    state: RechargeState
    action: str
    requested_at: datetime
    package: str | None = None
    amount: Decimal | None = None
    price: Decimal | None = None
    currency: str | None = None
    dry_run: bool = False
    manual: bool = False
    submitted_at: datetime | None = None
    settled_at: datetime | None = None
    baseline_balance: Decimal | None = None
    baseline_data: int | None = None
    reference: str | None = None
    detail: str | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        if self.state not in RECHARGE_STATES:
            raise ValueError(f"unknown recharge state {self.state!r}")
        for name in ("requested_at", "submitted_at", "settled_at"):
            moment = getattr(self, name)
            if moment is not None and (not isinstance(moment, datetime) or moment.tzinfo is None):
                raise TypeError(f"Recharge.{name} must be an aware datetime")
        for name in ("amount", "price", "baseline_balance"):
            amount = getattr(self, name)
            if amount is not None and not isinstance(amount, Decimal):
                raise TypeError(f"Recharge.{name} must be a Decimal")
        count = self.baseline_data
        if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
            raise TypeError("Recharge.baseline_data must be int bytes")


RECHARGE_COLUMNS = (
    "id, line, key, state, action, requested_at, package, amount, price, currency, dry_run, "
    "manual, submitted_at, settled_at, baseline_balance, baseline_data, reference, detail"
)


def recharge_row(entry: Recharge) -> dict[str, Any]:
    """The columns of an entry (all but its id) in their stored forms."""
    return {
        "line": entry.line,
        "key": entry.key,
        "state": entry.state,
        "action": entry.action,
        "requested_at": codec.ts(entry.requested_at),
        "package": entry.package,
        "amount": codec.money(entry.amount),
        "price": codec.money(entry.price),
        "currency": entry.currency,
        "dry_run": codec.flag(entry.dry_run),
        "manual": codec.flag(entry.manual),
        "submitted_at": codec.ts(entry.submitted_at),
        "settled_at": codec.ts(entry.settled_at),
        "baseline_balance": codec.money(entry.baseline_balance),
        "baseline_data": entry.baseline_data,
        "reference": entry.reference,
        "detail": entry.detail,
    }


def recharge_from_row(row: Sequence[Any]) -> Recharge:
    """An entry from the `RECHARGE_COLUMNS` of its row."""
    return Recharge(
        id=row[0],
        line=row[1],
        key=row[2],
        state=row[3],
        action=row[4],
        requested_at=datetime.fromisoformat(row[5]),
        package=row[6],
        amount=codec.parse_money(row[7]),
        price=codec.parse_money(row[8]),
        currency=row[9],
        dry_run=bool(row[10]),
        manual=bool(row[11]),
        submitted_at=codec.parse_ts(row[12]),
        settled_at=codec.parse_ts(row[13]),
        baseline_balance=codec.parse_money(row[14]),
        baseline_data=row[15],
        reference=row[16],
        detail=row[17],
    )


def need_key(line: str, since: datetime) -> str:
    """The idempotency key of a need: its line and when its spell began."""
    return f"{line}:{codec.ts(since)}"


def manual_key(line: str, at: datetime) -> str:
    """The key of a manual top-up (`esim-monitor recharge LINE`): each is a need of its own."""
    return f"{line}:manual:{codec.ts(at)}"


def skip_key(key: str, cap: str, frees_at: datetime) -> str:
    """The key of a skip: one per need, cap and window, apart from the need's own key, so
    the need is still bought once the cap frees up."""
    return f"{key}:skip:{cap}:{codec.ts(frees_at)}"


def interrupted_key(key: str) -> str:
    """An intent found never called keeps its row under this key: the need's own is free."""
    return f"{key}:interrupted"


def recharges(
    conn: sqlite3.Connection, line: str | None = None, since: datetime | None = None
) -> list[Recharge]:
    """The ledger, oldest first, of one line or all, since a time or ever: the one query
    of it, for the policy (`Ledger.recharges`) and the read model (`recharge_history`)."""
    sql, params = f"SELECT {RECHARGE_COLUMNS} FROM recharges WHERE 1 = 1", []
    if line is not None:
        sql += " AND line = ?"
        params.append(line)
    if since is not None:
        sql += " AND requested_at >= ?"
        params.append(codec.ts(since))
    rows = conn.execute(sql + " ORDER BY requested_at, id", params).fetchall()
    return [recharge_from_row(row) for row in rows]
