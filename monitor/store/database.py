"""The Store: every table family on one connection (sqlite-utils), opened and migrated.

It also keeps what the database could not take yet (checks, delivery marks) until it
can: a full or read-only disk neither silences alerts nor sends one twice.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from monitor.store.connection import without_dataframes

with without_dataframes():
    from sqlite_utils import Database

from monitor.errors import DatabaseUnusable, StoreError
from monitor.model import utcnow
from monitor.store import schema
from monitor.store.connection import (
    check_known_schema,
    connect,
    guard_public,
    make_private_dirs,
    opening,
    quick_check,
    tighten,
)
from monitor.store.ledger import Ledger
from monitor.store.lines import Check, Lines
from monitor.store.outbox import Outbox, count_events
from monitor.store.views import Views


@guard_public
class Store(Lines, Outbox, Ledger, Views):
    """The database of one thread: see the package's concurrency contract."""

    MAX_OWED = 10_000
    """Checks kept in memory while the database cannot be written (see `owe`)."""

    def __init__(self, db: Database, path: Path) -> None:
        self.db = db
        self.path = path
        self._owed: list[Check] = []
        self._sent: dict[int, datetime] = {}
        """Deliveries sent whose mark could not be written yet: never sent again."""

    @classmethod
    def open(cls, path: Path, *, verify: bool = False) -> Store:
        """Open (creating if needed, mode 0600) and migrate the database. `verify` reads
        every page first (PRAGMA quick_check), so damage anywhere is found now, not by
        some later query: the daemon's start does that. Each thread that writes opens its
        own."""
        try:
            make_private_dirs(path.parent)
            # Created (0600) only when missing: closing a descriptor of an existing database
            # would drop every POSIX lock this process's connections hold on it (another
            # process could then delete the WAL under them and their commits be lost).
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
        except FileExistsError:
            pass
        except OSError as exc:
            raise DatabaseUnusable(
                f"cannot create the database at {path}: {exc.strerror}; set [monitor] database "
                "to a writable path"
            ) from None
        tighten(path)
        conn = connect(path)
        db = Database(conn, execute_plugins=False)
        with opening(path, db.close):
            if verify:
                quick_check(conn, path)
            check_known_schema(conn, path)
            schema.migrations().apply(db)
        return cls(db, path)

    @classmethod
    def open_existing(cls, path: Path) -> Store | None:
        """For commands that only read: the database if it exists; never creates one."""
        return cls.open(path) if path.exists() else None

    @classmethod
    def open_memory(cls) -> Store:
        """A migrated database in memory: where a daemon whose file is unusable keeps its
        state and outbox meanwhile, so checks and alerts go on."""
        conn = sqlite3.connect(":memory:", check_same_thread=False)
        conn.execute("PRAGMA foreign_keys=ON")
        db = Database(conn, execute_plugins=False)
        schema.migrations().apply(db)
        return cls(db, Path(":memory:"))

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a last chance for what is owed; else lost
            self.settle(utcnow())
        self.db.close()

    # ---- what the database could not take yet ------------------------------------------

    def owe(self, checks: Sequence[Check]) -> None:
        """Keep checks the database could not take (with `sent`: per event, the channels
        it already went to directly) until `settle` writes them. Meanwhile `states`
        answers with their states, so the transitions they raised are not raised, nor
        sent, again. Past `MAX_OWED`, the oldest checks without events that a later check
        of their line supersedes are let go."""
        self._owed.extend(checks)
        count_events(entry for check in checks for entry in check.events)  # raised: counted now
        if len(self._owed) <= self.MAX_OWED:
            return
        latest = {check.line: i for i, check in enumerate(self._owed)}
        excess = len(self._owed) - self.MAX_OWED
        kept = []
        for i, check in enumerate(self._owed):
            if excess and not check.events and latest[check.line] != i:
                excess -= 1
                continue
            kept.append(check)
        self._owed = kept

    @property
    def owing(self) -> int:
        """Checks and delivery marks waiting for the database."""
        return len(self._owed) + len(self._sent)

    def settle(self, now: datetime) -> list[str]:
        """Write what is owed: delivery marks and checks, in one transaction. A StoreError
        keeps all of it for the next try; a check the database refuses for its own data is
        let go after the others are written. Returns the lines of checks let go."""
        if not self._owed and not self._sent:
            return []
        try:
            with self._writing() as db:
                self._write_sent(db)
                for check in self._owed:
                    self._write_check(db, check, now)
        except StoreError:
            raise
        except Exception:
            pass
        else:
            self._owed, self._sent = [], {}
            return []
        with self._writing() as db:
            self._write_sent(db)
        self._sent = {}
        dropped = []
        while self._owed:
            check = self._owed[0]
            try:
                with self._writing() as db:
                    self._write_check(db, check, now)
            except StoreError:
                raise
            except Exception:
                dropped.append(check.line)
            self._owed.pop(0)
        return dropped
