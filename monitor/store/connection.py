"""The database file and its connection: privacy, the error door, one write transaction.

Free of sqlite-utils, so the read-only views can use it from plain `sqlite3`.
"""

from __future__ import annotations

import functools
import inspect
import sqlite3
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from monitor.errors import DatabaseUnusable, StoreError
from monitor.store import schema

if TYPE_CHECKING:
    from sqlite_utils import Database

DATAFRAME_MODULES = ("numpy", "pandas")
"""What sqlite-utils imports when it is installed, only to convert their values on insert
(we insert none): numpy, which matplotlib (the charts extra) brings, is 11 MB of RSS and
about 0.1 s of every process that opens the store."""


@contextmanager
def without_dataframes() -> Iterator[None]:
    """Import sqlite-utils as if numpy and pandas were absent: a None in `sys.modules`
    makes their import fail inside, and they stay importable outside (matplotlib imports
    numpy for `report --png`). A module already imported is left as it is."""
    import sys

    blocked = [name for name in DATAFRAME_MODULES if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


BUSY_TIMEOUT = 10.0
"""Seconds a write waits for another connection's write transaction (see the package's
concurrency contract): far longer than any transaction of ours lasts."""

_P = ParamSpec("_P")
_R = TypeVar("_R")
_C = TypeVar("_C", bound=type)

_UNUSABLE_CODES = {
    sqlite3.SQLITE_CORRUPT,
    sqlite3.SQLITE_NOTADB,
    sqlite3.SQLITE_FORMAT,
}
"""Primary result codes after which no retry and no restart can help."""
_SCHEMA_MESSAGES = ("no such table", "no such column", "malformed database schema")
"""SQLITE_ERROR texts that say the schema is not the one our migrations made."""
MOVE_ASIDE = (
    "If the file is damaged, stop the daemon, move the file aside and start again "
    "(history starts afresh)"
)
PRIVATE_FILES = ("", "-wal", "-shm", "-journal")
"""The database and the files SQLite keeps beside it: all of them hold the history."""
DECODING_ERRORS = (ValueError, KeyError, InvalidOperation)
"""What the codec raises for a stored value it cannot read."""


def translate(exc: BaseException, path: Path) -> StoreError | None:
    """The project's error for what SQLite (or decoding its rows) raised, or None when it
    is none of the database's business. Corrupt, not a database, a schema or contents we
    cannot read: DatabaseUnusable (65, no restart helps). Busy, locked, full, read-only,
    I/O and the like: StoreError (1, it may pass)."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)):
        return None  # a constraint our own code broke, a closed connection: a bug, not the file
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        text = str(exc)
        if code is not None and code & 0xFF in _UNUSABLE_CODES:
            return DatabaseUnusable(f"cannot use the database at {path}: {text}. {MOVE_ASIDE}")
        if code is None and text.startswith("Could not decode"):
            return DatabaseUnusable(f"cannot read the database at {path}: {text}. {MOVE_ASIDE}")
        if (code is None or code & 0xFF == sqlite3.SQLITE_ERROR) and any(
            m in text for m in _SCHEMA_MESSAGES
        ):
            return DatabaseUnusable(
                f"cannot read the database at {path}: its schema is not one esim-monitor "
                f"made ({text}). {MOVE_ASIDE}"
            )
        return StoreError(f"cannot use the database at {path}: {text}")
    if isinstance(exc, DECODING_ERRORS):  # a row we cannot decode
        return DatabaseUnusable(
            f"cannot read the database at {path}: a stored value is damaged "
            f"({type(exc).__name__}: {exc}). {MOVE_ASIDE}"
        )
    return None


@contextmanager
def opening(path: Path, close: Callable[[], None]) -> Iterator[None]:
    """The checks made while a database is opened: on any failure the connection is
    closed, and what SQLite (or decoding a row) raised becomes the project's error."""
    try:
        yield
    except (sqlite3.Error, *DECODING_ERRORS) as exc:
        close()
        mapped = translate(exc, path)
        if mapped is None:
            raise
        raise mapped from None
    except BaseException:
        close()
        raise


def guarded(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """A public method of a store or a view raises the project's errors only."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except (sqlite3.Error, *DECODING_ERRORS) as exc:
            mapped = translate(exc, args[0].path)  # type: ignore[attr-defined]
            if mapped is None or mapped is exc:
                raise
            raise mapped from None

    return wrapper


def guard_public(cls: _C) -> _C:
    """Every public method of the class (reads too) goes through `translate`: the store's
    door lets out the project's errors only, and a method added later is covered without
    anyone remembering."""
    for name in dir(cls):
        member = inspect.getattr_static(cls, name)
        if not name.startswith("_") and inspect.isfunction(member):
            setattr(cls, name, guarded(member))
    return cls


def tighten(path: Path) -> None:
    """Make the database and its companion files owner-only, whatever made them wider:
    they hold the history, tokens and the recharge ledger."""
    for suffix in PRIVATE_FILES:
        target = path.with_name(path.name + suffix)
        try:
            mode = target.stat().st_mode
            if stat.S_IMODE(mode) & 0o077:
                target.chmod(stat.S_IMODE(mode) & 0o700 | 0o600)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StoreError(f"cannot make {target} private (mode 0600): {exc.strerror}") from None


def make_private_dirs(folder: Path) -> None:
    """Create a folder and any missing parents, each 0700 whatever the umask (mkdir's
    `mode` applies to the last one only, and the umask may widen none but narrow it)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for created in reversed(missing):
        try:
            created.mkdir(mode=0o700)
        except FileExistsError:
            continue
        created.chmod(0o700)


def connect(path: Path) -> sqlite3.Connection:
    """A connection of this thread's own (see the concurrency contract)."""
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT, check_same_thread=False)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:  # corrupt: 65; locked, I/O: may pass, so exit 1
        mapped = translate(exc, path)
        raise (mapped or StoreError(f"cannot open the database at {path}: {exc}")) from None
    return conn


def quick_check(conn: sqlite3.Connection, path: Path) -> None:
    """Read every page and check its structure; damage is DatabaseUnusable."""
    rows = conn.execute("PRAGMA quick_check(5)").fetchall()
    problems = [str(row[0]) for row in rows]
    if problems != ["ok"]:
        raise DatabaseUnusable(
            f"the database at {path} is damaged ({'; '.join(problems)[:300]}). {MOVE_ASIDE}"
        )


def check_known_schema(conn: sqlite3.Connection, path: Path) -> list[str]:
    """Refuse a database that a newer version has migrated: we cannot know its meaning.
    Returns the migrations it has run."""
    names = schema.applied(conn)
    newer = schema.unknown(names)
    if newer:
        raise DatabaseUnusable(
            f"the database at {path} was written by a newer esim-monitor (migrations "
            f"{', '.join(newer)}); upgrade esim-monitor or point [monitor] database elsewhere"
        )
    return names


def insert_row(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> int:
    """A plain INSERT: on the per-check path, sqlite-utils' table introspection on every
    call costs more than the write itself."""
    columns = ", ".join(row)
    marks = ", ".join("?" * len(row))
    cursor = conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))
    return int(cursor.lastrowid or 0)


def upsert_row(conn: sqlite3.Connection, table: str, row: dict[str, Any], key: str) -> None:
    """INSERT, or UPDATE the given columns of the row with that key."""
    columns = ", ".join(row)
    marks = ", ".join("?" * len(row))
    updates = ", ".join(f"{c} = excluded.{c}" for c in row if c != key)
    conn.execute(
        f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
        f"ON CONFLICT({key}) DO UPDATE SET {updates}",
        list(row.values()),
    )


class Connection:
    """What every part of the store shares: the connection and its one write transaction.

    `Lines`, `Outbox`, `Ledger` and `Views` (one table family each) build on it, and
    `Store` is all of them on one connection."""

    db: Database
    path: Path

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    @contextmanager
    def _writing(self) -> Iterator[Database]:
        """One write transaction. BEGIN IMMEDIATE takes the write lock up front, so a
        database another connection holds is waited for (busy timeout), not failed at once
        as a read transaction upgrading to a write would be."""
        conn = self.db.conn
        try:
            if conn.in_transaction:
                with self.db.atomic():
                    yield self.db
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        except sqlite3.Error as exc:
            mapped = translate(exc, self.path)
            if mapped is None:
                raise
            if isinstance(mapped, DatabaseUnusable):
                raise mapped from None
            raise StoreError(f"cannot write to the database at {self.path}: {exc}") from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The writes inside, all or none: a ledger outcome and the alert it calls for."""
        with self._writing():
            yield
