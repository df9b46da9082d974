"""The recharge ledger: top-up intents and their outcomes, spent refill PINs, open needs,
and the accounts whose folded failure alert is out.

An intent is committed before any money is spent; its outcome (and the alert it calls
for, in the same transaction) after. See `monitor.recharge` for the policy.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from monitor.store import codec
from monitor.store.connection import Connection


class Ledger(Connection):
    def recharges(
        self, line: str | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        sql, params = ledger_query("*", line, since)
        return list(self.db.query(sql, params))

    def recharge_by_key(self, key: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM recharges WHERE key = ?", [key]))
        return rows[0] if rows else None

    def add_recharge(self, row: dict[str, Any], pin_hash: str | None = None) -> int:
        """Write an intent (or a skip) before anything is called; a PIN is spent with it."""
        with self._writing() as db:
            recharge_id = int(db["recharges"].insert(row).last_pk)
            if pin_hash is not None:
                db["recharge_pins"].insert(
                    {
                        "pin_hash": pin_hash,
                        "line": row["line"],
                        "used_at": row["requested_at"],
                        "recharge_id": recharge_id,
                    }
                )
        return recharge_id

    def update_recharge(self, recharge_id: int, **fields: Any) -> None:
        with self._writing() as db:
            db["recharges"].update(recharge_id, fields)

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


@dataclass(frozen=True)
class Recharge:
    """One row of the ledger: a top-up's intent and, once known, its outcome."""

    id: int
    line: str
    key: str
    """The idempotency key: the need (or the manual request) it answers."""
    state: str
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


RECHARGE_COLUMNS = (
    "id, line, key, state, action, requested_at, package, amount, price, currency, dry_run, "
    "manual, submitted_at, settled_at, baseline_balance, baseline_data, reference, detail"
)


def recharge_from_row(row: Sequence[Any]) -> Recharge:
    """A Recharge from the `RECHARGE_COLUMNS` of its row."""
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


def recharges(
    conn: sqlite3.Connection, line: str | None = None, since: datetime | None = None
) -> list[Recharge]:
    """The ledger, oldest first, of one line or all, since a time or ever."""
    sql, params = ledger_query(RECHARGE_COLUMNS, line, since)
    return [recharge_from_row(row) for row in conn.execute(sql, params).fetchall()]


def ledger_query(columns: str, line: str | None, since: datetime | None) -> tuple[str, list[Any]]:
    """The one query of the ledger, oldest first, for both its row and its typed readers."""
    sql, params = f"SELECT {columns} FROM recharges WHERE 1 = 1", []
    if line is not None:
        sql += " AND line = ?"
        params.append(line)
    if since is not None:
        sql += " AND requested_at >= ?"
        params.append(codec.ts(since))
    return sql + " ORDER BY requested_at, id", params
