"""The process's counters, counted where each thing happens: checks as the cycle records
them, events as the store writes them, deliveries as notify records their outcome; and
counted whole from many threads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from monitor import adapters
from monitor.adapters import Adapter
from monitor.cli import load_settings
from monitor.counters import COUNTERS, Counters, Counts
from monitor.cycle import Checker
from monitor.errors import CheckFailed
from monitor.model import Reading, utcnow
from monitor.notify import Notifier, deliver_due, send_now
from monitor.store import Store


def delta(before: Counts, after: Counts) -> dict[str, dict[Any, int]]:
    """What was counted between two readings of the counters (zeros left out)."""
    out: dict[str, dict[Any, int]] = {}
    for name in ("checks", "events", "deliveries"):
        old, new = getattr(before, name), getattr(after, name)
        out[name] = {k: v - old.get(k, 0) for k, v in new.items() if v != old.get(k, 0)}
    return out


def test_counts_from_many_threads_are_whole() -> None:
    counters = Counters()

    def work() -> None:
        for _ in range(2000):
            counters.check("ok")
            counters.event("warning")
            counters.delivery("phone", "sent", 2)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = counters.counts()
    assert counts.checks == {"ok": 16000}
    assert counts.events == {"warning": 16000}
    assert counts.deliveries == {("phone", "sent"): 32000}


class AccountOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Refused(Adapter):
    """Reads through an account whose provider refuses every request."""

    name = "refused"
    AccountOptions = AccountOptions

    def read(self) -> Reading:
        raise CheckFailed("provider answered 503")


@pytest.fixture
def refused(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(adapters.BUILTIN, "refused", f"{__name__}:Refused")
    yield


LOW = '[lines.low]\nadapter = "demo"\nbalance = 3\n'
BROKEN = '[channels.broken]\nurl = "record://fail"\n'
CONFIG = f"""
[monitor]
breaker_after = 1
[defaults.thresholds]
balance_critical = 5
[defaults.alerts]
failures_before_alert = 1
[channels.ok]
url = "record://ok"
{BROKEN}[accounts.down]
provider = "refused"
{LOW}[lines.off]
account = "down"
"""


def test_checks_events_and_deliveries_counted_where_they_happen(
    refused: None, write_config: Callable[..., Path], recorder: list[dict[str, Any]]
) -> None:
    settings = load_settings(write_config(CONFIG))
    store = Store.open(settings.database_path())
    checker = Checker(settings)
    notifier = Notifier(settings)
    try:
        before = COUNTERS.counts()
        checker.run(store, list(settings.lines))  # low: critical; off: failed, breaker opens
        after_first = COUNTERS.counts()
        checker.run(store, list(settings.lines))  # off: skipped (its account is paused)
        deliver_due(store, notifier)
        counted = delta(before, COUNTERS.counts())
        # a line with no account: its failure alert folds into the account's
        assert delta(before, after_first)["events"] == {"critical": 1, "failure": 1}
        # the broken channel leaves the config: its rows are dropped once due
        without = load_settings(write_config(CONFIG.replace(BROKEN, "")))
        deliver_due(store, Notifier(without), now=utcnow() + timedelta(hours=1))
    finally:
        checker.close()
        store.close()
    assert counted["checks"] == {"ok": 2, "failed": 1, "skipped": 1}
    assert counted["events"] == {"critical": 1, "failure": 1}
    assert counted["deliveries"] == {("ok", "sent"): 2, ("broken", "failed"): 1}
    dropped = delta(before, COUNTERS.counts())["deliveries"]
    assert dropped == {("ok", "sent"): 2, ("broken", "failed"): 1, ("broken", "dropped"): 2}
    assert sorted(m["host"] for m in recorder) == ["fail", "ok", "ok"]  # channels apart


def test_direct_sends_and_their_events_counted_once(
    write_config: Callable[..., Path], recorder: list[dict[str, Any]]
) -> None:
    """The database refuses writes: the event is counted when raised and sent directly,
    not again when the store writes it later; the direct send is a delivery."""
    settings = load_settings(write_config(CONFIG.split("[accounts.down]")[0] + LOW))
    store = Store.open(settings.database_path())
    checker = Checker(settings)
    notifier = Notifier(settings)
    try:
        before = COUNTERS.counts()
        store.db.execute("PRAGMA query_only = ON")
        checker.run(store, ["low"], direct=lambda event: send_now(notifier, event))
        store.db.execute("PRAGMA query_only = OFF")
        checker.run(store, ["low"])  # writes what was owed: nothing counted twice
        deliver_due(store, notifier, now=utcnow() + timedelta(hours=1))
    finally:
        checker.close()
        store.close()
    counted = delta(before, COUNTERS.counts())
    assert counted["checks"] == {"ok": 2}
    assert counted["events"] == {"critical": 1}
    # the direct send reached ok and failed on broken; the outbox retried broken once
    assert counted["deliveries"] == {("ok", "sent"): 1, ("broken", "failed"): 2}
    assert [m["host"] for m in recorder] == ["ok", "fail", "fail"]
