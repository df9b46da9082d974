"""What the provider webhook tests (tests/adapters/test_*_hooks.py) share: a daemon that
takes webhooks on loopback (a subprocess, its accounts on the providers' loopback fakes),
what a test reads of its database, and the check that a refused delivery is a one-line
4xx that changes nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from daemon_proc import DaemonProcess

from monitor.model import Reading
from monitor.store import View


class Fake(Protocol):
    """A provider's loopback fake (`fakes.FakeServer`)."""

    def close(self) -> None: ...


F = TypeVar("F", bound=Fake)


def http_config(port: int) -> str:
    """The config's start: lines checked hourly (so only a push or the startup checks
    them while a test runs) and the server on `port`."""
    return f'[monitor]\ninterval = "1h"\n[http]\nlisten = "127.0.0.1:{port}"\n'


class Hooked(Generic[F]):
    """A running daemon taking the webhooks of `account`, its database, and `server`, the
    fake whose requests a test counts."""

    def __init__(
        self,
        daemon: DaemonProcess,
        server: F,
        port: int,
        database: Path,
        account: str,
        lines: Sequence[str],
    ) -> None:
        self.daemon, self.server, self.port, self.database = daemon, server, port, database
        self.account = account
        self.lines = tuple(lines)
        """The lines whose readings `everything` holds."""

    def url(self, account: str | None = None) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{account or self.account}"

    def readings(self, line: str) -> list[Reading]:
        """The line's readings of the last day, oldest first."""
        view = View.open_existing(self.database)
        assert view is not None
        try:
            return view.history(line, datetime.now(UTC) - timedelta(days=1))
        finally:
            view.close()

    def deliveries(self) -> int:
        """The deliveries remembered (hook_deliveries): what a retry is known by."""
        conn = sqlite3.connect(self.database)
        try:
            return int(conn.execute("SELECT count(*) FROM hook_deliveries").fetchone()[0])
        finally:
            conn.close()

    def everything(self) -> tuple[Any, ...]:
        """The readings of each of `lines`, then the deliveries remembered."""
        return (*(self.readings(line) for line in self.lines), self.deliveries())


@contextmanager
def running(
    config: Path, port: int, account: str, lines: Sequence[str], fakes: Sequence[F]
) -> Iterator[Hooked[F]]:
    """The daemon on `config` once it serves and its startup checks are done; killed at the
    end, and the `fakes` its accounts use closed (the first is `Hooked.server`)."""
    try:
        daemon = DaemonProcess(config)
        try:
            daemon.wait_for("http server listening")
            daemon.wait_for("checks done")
            database = config.parent / "history.db"
            yield Hooked(daemon, fakes[0], port, database, account, lines)
        finally:
            daemon.kill()
    finally:
        for fake in fakes:
            fake.close()


def assert_refused(
    send: Callable[[], tuple[int, str, Any]],
    expected: int,
    everything: Callable[[], Any],
    case: str = "",
) -> None:
    """`send` is answered `expected` with a one-line reason, and `everything` is as it was."""
    before = everything()
    status, reason, _ = send()
    assert status == expected, (case, reason)
    assert reason.strip() and "\n" not in reason.strip(), case
    assert everything() == before, case
