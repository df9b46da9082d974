"""Hostile conditions: hung providers, a locked or read-only database, SIGKILL, retention."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from daemon_proc import run_argv
from logwait import wait_for_log

from monitor import adapters
from monitor.adapters import Adapter
from monitor.cli import load_settings
from monitor.cycle import Checker
from monitor.model import Level, LineState, Reading, utcnow
from monitor.notify import Notifier, send_now
from monitor.store import Check, Store

RELEASE = threading.Event()


class Hanging(Adapter):
    name = "hanging"

    def read(self) -> Reading:
        RELEASE.wait(30)
        return Reading(self.line_id, utcnow(), balance=Decimal(1))


class Quick(Adapter):
    name = "quick"

    def read(self) -> Reading:
        return Reading(self.line_id, utcnow(), balance=Decimal(3), currency="USD")


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for cls in (Hanging, Quick):
        monkeypatch.setitem(adapters.BUILTIN, cls.name, f"{__name__}:{cls.__name__}")
    RELEASE.clear()
    yield
    RELEASE.set()


def test_a_hanging_provider_stalls_nothing_else(
    registry: None, write_config: Callable[..., Path]
) -> None:
    lines = "".join(f'[lines.q{i}]\nadapter = "quick"\n' for i in range(20))
    text = '[monitor]\ncheck_timeout = "1s"\nworkers = 4\n' + lines
    text += '[lines.stuck]\nadapter = "hanging"\n[lines.stuck2]\nadapter = "hanging"\n'
    settings = load_settings(write_config(text))
    store = Store.open(settings.database_path())
    checker = Checker(settings)
    ticks = []
    try:
        judged = checker.run(store, list(settings.lines), tick=lambda: ticks.append(1))
    finally:
        checker.close()
    errors = {j.result.line: j.result.error for j in judged}
    assert errors["stuck"] == "no answer within 1 s (check_timeout)"
    assert errors["stuck2"] == "no answer within 1 s (check_timeout)"
    assert all(errors[f"q{i}"] is None for i in range(20))
    assert ticks  # the watchdog could be fed while waiting
    assert store.state("stuck").failures == 1
    store.close()


def test_read_only_database_sends_alerts_directly(
    registry: None, write_config: Callable[..., Path], recorder: list[dict[str, Any]]
) -> None:
    settings = load_settings(
        write_config(
            '[defaults.thresholds]\nbalance_critical = 5\n[channels.r]\nurl = "record://r"\n'
            '[lines.a]\nadapter = "quick"\n'
        )
    )
    store = Store.open(settings.database_path())
    store.db.execute("PRAGMA query_only = ON")  # writes now fail, as on a read-only disk
    checker = Checker(settings)
    notifier = Notifier(settings)
    try:
        judged = checker.run(store, ["a"], direct=lambda e: send_now(notifier, e))
    finally:
        checker.close()
    assert judged == []  # nothing could be recorded
    assert [m["title"] for m in recorder] == ["[CRITICAL] a is critical: balance 3 USD"]
    store.close()


def test_a_locked_database_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    Store.open(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(1.5)\n"
            "c.execute('COMMIT')\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    store = Store.open(path)
    now = datetime.now(UTC)
    store.record_checks(
        [
            Check(
                line="a",
                checked_at=now,
                state=LineState("a", Level.OK),
                events=[],
                reading=Reading("a", now, balance=Decimal(1)),
            )
        ],
        now=now,
    )
    assert store.state("a").level is Level.OK
    holder.wait(timeout=10)
    store.close()


def test_retention_rolls_old_readings_up_per_day(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "h.db")
    day = datetime(2025, 1, 1, tzinfo=UTC)
    for i, balance in enumerate(["10.00", "9.50", None, "8.25"]):
        at = day + timedelta(hours=i)
        reading = Reading("a", at, balance=Decimal(balance), currency="USD") if balance else None
        store.record_checks(
            [
                Check(
                    line="a",
                    checked_at=at,
                    state=LineState("a", Level.OK),
                    events=[],
                    reading=reading,
                    error=None if balance else "timeout",
                )
            ],
            now=at,
        )
    recent = datetime(2026, 11, 1, tzinfo=UTC)
    store.record_checks(
        [
            Check(
                line="a",
                checked_at=recent,
                state=LineState("a", Level.OK),
                events=[],
                reading=Reading("a", recent, balance=Decimal(7)),
            )
        ],
        now=recent,
    )
    assert store.prune(datetime(2026, 1, 1, tzinfo=UTC), batch=2) == 4
    assert store.db["readings"].count == 1  # the latest reading stays
    (rollup,) = store.db["readings_daily"].rows
    assert rollup == {
        "line": "a",
        "day": "2025-01-01",
        "readings": 4,
        "failures": 1,
        "balance_min": "8.25",
        "balance_max": "10.00",
        "balance_last": "8.25",
        "currency": "USD",
        "data_min": None,
        "data_max": None,
        "data_last": None,
    }
    assert store.prune(datetime(2026, 1, 1, tzinfo=UTC)) == 0
    store.close()


def test_sigkill_loses_no_pending_alert_and_sends_none_twice(
    write_config: Callable[..., Path], sink: Any
) -> None:
    path = write_config(
        '[monitor]\ninterval = "1h"\n[defaults.thresholds]\nbalance_critical = 5\n'
        f'[channels.hook]\nurl = "{sink.url}"\ngroup_wait = "0s"\n'
        '[lines.a]\nadapter = "demo"\nbalance = 3\n'
    )
    sink.down = True
    command = run_argv(path)
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    wait_for_log(proc, "alert delivery failed, will retry")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    sink.down = False
    settings = load_settings(path)
    store = Store.open(settings.database_path())
    (row,) = store.events(datetime(2000, 1, 1, tzinfo=UTC))
    assert row.status == "pending" and row.attempts == 1
    # the restart finds the row due 30 s later: bring it forward rather than wait
    store.db.execute("UPDATE deliveries SET next_attempt_at = '2000-01-01T00:00:00.000000+00:00'")
    store.close()
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    wait_for_log(proc, "alert delivered")  # by the channel's worker, beside the checks
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    assert sink.titles() == ["[CRITICAL] a is critical: balance 3.00 USD"]


KILL_AFTER_OUTCOME = """
import os, signal, sys
from monitor import cli, store
real = store.Store.update_recharge
def update(self, entry):
    real(self, entry)
    if entry.state == "submitted":  # the top-up's outcome is written: die here
        os.kill(os.getpid(), signal.SIGKILL)
store.Store.update_recharge = update
sys.exit(cli.main(sys.argv[1:]))
"""


def test_sigkill_after_a_top_up_outcome_loses_no_alert(write_config: Callable[..., Path]) -> None:
    """A top-up's outcome and its alert are one transaction: a SIGKILL between the two
    writes leaves both or neither (then the restart reconciles it, and says so)."""
    path = write_config(
        "[defaults.thresholds]\nbalance_critical = 5\n[recharge]\nenabled = true\n"
        '[lines.a]\nadapter = "demo"\nbalance = 3\ndrain = 0\n'
        f'[lines.a.recharge]\naction = "command"\nargv = ["{sys.executable}", "-c", "print(1)"]\n'
    )
    once = ["--config", str(path), "run", "--once"]
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_OUTCOME, *once], timeout=60)
    assert killed.returncode == -signal.SIGKILL
    subprocess.run([sys.executable, "-m", "monitor", *once], check=True, timeout=60)
    store = Store.open(load_settings(path).database_path())
    (entry,) = store.recharges("a")
    kinds = [e.type for e in store.events(datetime(2000, 1, 1, tzinfo=UTC))]
    store.close()
    alert = {"submitted": "recharge-requested", "unknown": "recharge-failed"}[entry.state]
    assert alert in kinds, (entry.state, kinds)
