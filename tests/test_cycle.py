"""Checks are isolated: whatever an adapter does, it is a failed check for its line alone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import structlog
import structlog.testing

from monitor import adapters
from monitor.adapters import Adapter
from monitor.cli import load_settings
from monitor.cycle import Checker, WorkerPool
from monitor.errors import CheckFailed
from monitor.model import Level, Reading, utcnow
from monitor.store import Check, Store


class Exploding(Adapter):
    name = "exploding"

    def read(self) -> Reading:
        raise RuntimeError("bug in adapter with token=abc123")


class Garbage(Adapter):
    name = "garbage"

    def read(self) -> Reading:
        raise CheckFailed("provider answered an HTML page", raw="<html>502 Bad Gateway</html>")


class Good(Adapter):
    name = "good"

    def read(self) -> Reading:
        return Reading(self.line_id, utcnow(), balance=Decimal("3"), currency="EUR")


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for cls in (Exploding, Garbage, Good):
        monkeypatch.setitem(adapters.BUILTIN, cls.name, f"{__name__}:{cls.__name__}")
    yield


CONFIG = """
[defaults.thresholds]
balance_critical = 5
[defaults.alerts]
failures_before_alert = 1
[lines.bad]
adapter = "exploding"
[lines.ugly]
adapter = "garbage"
[lines.fine]
adapter = "good"
"""


def test_each_line_isolated(registry: None, write_config: Callable[..., Path]) -> None:
    settings = load_settings(write_config(CONFIG))
    store = Store.open(settings.database_path())
    checker = Checker(settings)
    try:
        judged = {j.result.line: j for j in checker.run(store, list(settings.lines))}
    finally:
        checker.close()
    assert judged["bad"].result.error == "internal error in adapter: RuntimeError"
    assert "abc123" not in judged["bad"].result.error
    assert judged["ugly"].result.raw == "<html>502 Bad Gateway</html>"
    assert judged["fine"].state.level is Level.CRITICAL
    states = store.states()
    assert states["bad"].level is None and states["bad"].failures == 1  # not a zero balance
    assert store.status()["ugly"].balance is None
    assert store.last_raw("ugly") == "<html>502 Bad Gateway</html>"  # a failure's reply is kept
    events = {(e.line, e.type) for e in store.events(utcnow().replace(year=2000))}
    assert events == {("bad", "failure"), ("ugly", "failure"), ("fine", "critical")}
    store.close()


# ---- accounts: concurrency and the circuit breaker -------------------------------------------

import threading  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from pydantic import BaseModel, ConfigDict  # noqa: E402


class AccountOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    behaviour: str = "ok"


IN_FLIGHT: dict[str, int] = {}
PEAK: dict[str, int] = {}
LOCK = threading.Lock()
RELEASE = threading.Event()


class Accounted(Adapter):
    """Reads through an account whose `behaviour` says what happens: ok, fail, hang, slow."""

    name = "accounted"
    AccountOptions = AccountOptions
    max_concurrency = 2

    def read(self) -> Reading:
        account = self.account.name  # type: ignore[union-attr]
        with LOCK:
            IN_FLIGHT[account] = IN_FLIGHT.get(account, 0) + 1
            PEAK[account] = max(PEAK.get(account, 0), IN_FLIGHT[account])
        try:
            behaviour = self.account.options.behaviour  # type: ignore[union-attr]
            if behaviour == "hang":
                RELEASE.wait(30)
            if behaviour == "slow":
                time.sleep(0.05)
            if behaviour == "fail":
                raise CheckFailed("provider answered 503")
            return Reading(self.line_id, utcnow(), balance=Decimal(50))
        finally:
            with LOCK:
                IN_FLIGHT[account] -= 1


@pytest.fixture
def accounted(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(adapters.BUILTIN, "accounted", f"{__name__}:Accounted")
    IN_FLIGHT.clear()
    PEAK.clear()
    RELEASE.clear()
    yield
    RELEASE.set()


def accounts_config(behaviours: dict[str, str], lines_each: int, extra: str = "") -> str:
    text = extra
    for name, behaviour in behaviours.items():
        text += f'[accounts.{name}]\nprovider = "accounted"\nbehaviour = "{behaviour}"\n'
        for i in range(lines_each):
            text += f'[lines.{name}-{i}]\naccount = "{name}"\n'
    return text


def test_a_cycle_that_keeps_no_results_records_and_counts_them_all(
    registry: None, write_config: Callable[..., Path]
) -> None:
    """The daemon's cycle (`keep=False`) returns nothing, so 10,000 results are not held to
    the end; every check is still written and the log still counts the failures."""
    settings = load_settings(write_config(CONFIG))
    store = Store.open(settings.database_path())
    checker = Checker(settings)
    try:
        with structlog.testing.capture_logs() as logged:
            assert checker.run(store, list(settings.lines), keep=False) == []
    finally:
        checker.close()
    (done,) = [e for e in logged if e["event"] == "checks done"]
    assert done["lines"] == 3 and done["failed"] == 2
    states = store.states()
    assert states["bad"].failures == 1 and states["fine"].level is Level.CRITICAL
    store.close()


def test_the_lines_of_an_account_share_its_validated_options(
    write_config: Callable[..., Path],
) -> None:
    settings = load_settings(
        write_config(
            '[accounts.fleet]\nprovider = "airalo"\nclient_id = "id"\nclient_secret = "s3cr3t-x"\n'
            '[lines.a]\naccount = "fleet"\niccid = "8944465400000267221"\n'
            '[lines.b]\naccount = "fleet"\niccid = "8944465400000267222"\n'
        )
    )
    checker = Checker(settings)
    try:
        a, b = checker.adapter("a"), checker.adapter("b")
    finally:
        checker.close()
    assert a.account is not None and b.account is not None
    assert a.account.options is b.account.options  # one copy, not one a line
    assert a.options is not b.options


def test_one_account_never_takes_every_worker(
    accounted: None, write_config: Callable[..., Path]
) -> None:
    text = accounts_config(
        {"stuck": "hang", "fine": "slow"}, 6, '[monitor]\nworkers = 4\ncheck_timeout = "2s"\n'
    )
    settings = load_settings(write_config(text))
    store = Store.open(settings.database_path())
    checker = Checker(settings)
    try:
        judged = checker.run(store, list(settings.lines))
    finally:
        checker.close()
    errors = {j.result.line: j.result.error for j in judged}
    assert all(errors[f"fine-{i}"] is None for i in range(4))
    assert all(errors[f"stuck-{i}"] == "no answer within 2 s (check_timeout)" for i in range(4))
    assert PEAK["fine"] <= 2  # the adapter's max_concurrency
    # the hanging account had at most 2 checks running before the first were abandoned
    assert PEAK["stuck"] >= 2
    store.close()


def test_breaker_pauses_a_failing_account_and_folds_its_alerts(
    accounted: None, write_config: Callable[..., Path], recorder: list[dict[str, Any]]
) -> None:
    text = accounts_config(
        {"bad": "fail"},
        4,
        "[monitor]\nbreaker_after = 3\n[defaults.alerts]\nfailures_before_alert = 1\n"
        '[channels.r]\nurl = "record://r"\ngroup = false\n',  # a message per alert
    )
    path = write_config(text)
    settings = load_settings(path)
    store = Store.open(settings.database_path())
    checker = Checker(settings)
    from monitor.notify import Notifier, deliver_due

    try:
        checker.run(store, list(settings.lines))  # 4 failures: the breaker opens at the 3rd
        deliver_due(store, Notifier(settings))
        titles = [m["title"] for m in recorder]
        # two lines alerted before the breaker opened; then one alert for the account
        assert titles.count("[FAILURE] account bad cannot be read: provider answered 503") == 1
        assert len(titles) == 3
        # while open, nobody is asked and the skipped checks count as failed
        judged = checker.run(store, list(settings.lines))
        assert all(j.result.skipped for j in judged)
        assert all("paused until" in (j.result.error or "") for j in judged)
        assert store.state("bad-3").failures == 2
        deliver_due(store, Notifier(settings))
        assert len(recorder) == 3  # no new alerts
        # a restart (fresh breakers, nothing in memory), and the provider answers again
        checker.close()
        checker = Checker(load_settings(write_config(text.replace('"fail"', '"ok"'))))
        checker.run(store, list(settings.lines))
        deliver_due(store, Notifier(settings))
        new = [m["title"] for m in recorder[3:]]
        assert new.count("[FAILURE-RECOVERED] account bad can be read again") == 1
        # the two lines that alerted on their own say so on their own
        assert len([t for t in new if t.endswith("can be read again")]) == 3
    finally:
        checker.close()
        store.close()


def test_stop_ends_the_cycle_with_checks_under_way(
    accounted: None, write_config: Callable[..., Path]
) -> None:
    """SIGTERM mid-cycle (issue 11.4): the daemon's stop flag ends the cycle at once; the
    checks still under way are dropped unrecorded rather than waited for (60 s here)."""
    text = accounts_config({"stuck": "hang", "fine": "ok"}, 2, '[monitor]\ncheck_timeout = "60s"\n')
    settings = load_settings(write_config(text))
    store = Store.open(settings.database_path())
    checker = Checker(settings)
    asked: list[bool] = []

    def stop() -> bool:
        asked.append(True)
        return len(asked) > 2  # after the first rounds

    def cycle() -> list[Any]:
        return checker.run(store, list(settings.lines), stop=stop)

    try:
        judged = finishes(cycle, within=10)
    finally:
        checker.close()
    assert {j.result.line for j in judged} == {"fine-0", "fine-1"}
    assert set(store.states()) == {"fine-0", "fine-1"}
    store.close()


def test_an_abandoned_check_is_aborted_on_its_own_thread() -> None:
    pool = WorkerPool(1)
    started, release = threading.Event(), threading.Event()
    ran_on: list[int] = []

    def task() -> None:
        ran_on.append(threading.get_ident())
        started.set()
        release.wait(30)

    try:
        future = pool.submit(task)
        assert started.wait(10)
        aborted: list[int] = []
        pool.abandon(future, aborted.append)
        assert aborted == ran_on
        release.set()
        future.result(timeout=10)
        pool.abandon(future, aborted.append)  # finished: nothing left to abort
        assert aborted == ran_on
    finally:
        release.set()
        pool.shutdown()


def finishes(call: Callable[[], Any], within: float) -> Any:
    """What `call` returned, run in a thread; fails if it still runs after `within` s."""
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(call()), daemon=True)
    thread.start()
    thread.join(within)
    assert not thread.is_alive(), f"still running after {within:g} s"
    assert outcome, "it raised"
    return outcome[0]


# ---- one line's trouble is its own (issue 11.1); an unwritable database (issue 11.8) --------

import contextlib  # noqa: E402
import sqlite3  # noqa: E402

from monitor import cycle  # noqa: E402
from monitor.errors import StoreError  # noqa: E402
from monitor.notify import Notifier, deliver_due, send_now  # noqa: E402

BALANCES: dict[str, Decimal] = {}


class Dial(Adapter):
    """Answers the balance the test sets for the line in BALANCES."""

    name = "dial"

    def read(self) -> Reading:
        return Reading(self.line_id, utcnow(), balance=BALANCES[self.line_id], currency="EUR")


@pytest.fixture
def dial(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(adapters.BUILTIN, "dial", f"{__name__}:Dial")
    BALANCES.clear()
    yield


DIALS = """
[defaults.thresholds]
balance_critical = 5
[defaults.alerts]
failures_before_alert = 1
[channels.owl]
url = "record://owl"
[lines.a]
adapter = "dial"
[lines.b]
adapter = "dial"
[lines.c]
adapter = "dial"
[lines.bad]
adapter = "dial"
"""


def _rows(store: Store, line: str) -> list[tuple[Any, ...]]:
    return store.db.execute(
        "SELECT ok, error, balance FROM readings WHERE line = ? ORDER BY id", [line]
    ).fetchall()


def test_a_check_the_database_refuses_is_that_lines_failure_alone(
    dial: None,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    recorder: list[dict[str, Any]],
) -> None:
    BALANCES.update(a=Decimal(3), b=Decimal(3), c=Decimal(3), bad=Decimal(3))
    settings = load_settings(write_config(DIALS))
    store = Store.open(settings.database_path())
    write_check = Store._write_check
    sizes: list[int] = []
    record_checks = Store.record_checks

    def refusing(self: Store, db: Any, check: Check, now: Any) -> list[int]:
        if check.line == "bad" and check.reading is not None:
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return write_check(self, db, check, now)

    def counting(self: Store, checks: Any, now: Any) -> list[str]:
        sizes.append(len(checks))
        return record_checks(self, checks, now)

    monkeypatch.setattr(Store, "_write_check", refusing)
    monkeypatch.setattr(Store, "record_checks", counting)
    checker = Checker(settings)
    try:
        judged = {j.result.line: j for j in checker.run(store, list(settings.lines))}
    finally:
        checker.close()
    assert sorted(judged) == ["a", "b", "bad", "c"]
    for line in "abc":
        assert _rows(store, line) == [(1, None, "3")]
        assert store.states()[line].level is Level.CRITICAL
    assert _rows(store, "bad") == [(0, "could not be recorded: OverflowError", None)]
    assert store.states()["bad"].failures == 1 and store.states()["bad"].level is None
    assert sizes[0] > 1 and set(sizes[1:]) <= {1}  # a round first; one at a time only after
    events = {(e.line, e.type) for e in store.events(utcnow().replace(year=2000))}
    assert events == {("a", "critical"), ("b", "critical"), ("c", "critical"), ("bad", "failure")}
    store.close()


def test_a_check_that_cannot_be_evaluated_is_that_lines_failure_alone(
    dial: None,
    write_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    recorder: list[dict[str, Any]],
) -> None:
    BALANCES.update(a=Decimal(3), b=Decimal(3), c=Decimal(3), bad=Decimal(3))
    settings = load_settings(write_config(DIALS))
    store = Store.open(settings.database_path())
    evaluate = cycle.evaluate_reading

    def failing(previous: Any, reading: Reading, *args: Any) -> Any:
        if reading.line == "bad":
            raise ZeroDivisionError("division by zero")
        return evaluate(previous, reading, *args)

    monkeypatch.setattr(cycle, "evaluate_reading", failing)
    checker = Checker(settings)
    try:
        checker.run(store, list(settings.lines))
    finally:
        checker.close()
    for line in "abc":
        assert _rows(store, line) == [(1, None, "3")]
    assert _rows(store, "bad") == [(0, "could not be evaluated: ZeroDivisionError", None)]
    assert store.states()["bad"].failures == 1
    store.close()


def test_an_unwritable_database_sends_each_transition_once(
    dial: None, write_config: Callable[..., Path], recorder: list[dict[str, Any]]
) -> None:
    """Writes fail for several passes (a full disk, a lock): each transition goes out
    directly once, an outbox row sent meanwhile is not sent again, and once the database
    takes writes again, every reading and event is in it, each delivery marked sent."""
    BALANCES.update(a=Decimal(10), b=Decimal(10), c=Decimal(10), bad=Decimal(10))
    settings = load_settings(write_config(DIALS))
    store = Store.open(settings.database_path())
    notifier = Notifier(settings)
    checker = Checker(settings)

    def send(event: Any) -> list[str]:
        return send_now(notifier, event)

    def deliver() -> None:
        with contextlib.suppress(StoreError):  # the daemon logs it and goes on
            deliver_due(store, notifier)

    def one_pass() -> None:
        deliver()
        checker.run(store, list(settings.lines), direct=send)
        deliver()

    try:
        one_pass()  # all fine, nothing to say
        BALANCES["a"] = Decimal(3)
        checker.run(store, list(settings.lines), direct=send)  # a's critical waits in the outbox
        assert recorder == []
        store.db.execute("PRAGMA query_only = ON")  # from here every write fails
        with pytest.raises(sqlite3.OperationalError):
            store.db.execute("DELETE FROM events")
        one_pass()  # a's critical is sent from the outbox; its mark cannot be written
        BALANCES["b"] = Decimal(3)
        for _ in range(3):
            one_pass()  # b's critical goes out directly
        BALANCES.update(a=Decimal(10), b=Decimal(10))
        for _ in range(3):
            one_pass()  # both recoveries go out directly
        store.db.execute("PRAGMA query_only = OFF")
        for _ in range(2):
            one_pass()
    finally:
        checker.close()
    titles = sorted(m["title"] for m in recorder)
    assert len(titles) == 4 and len(set(titles)) == 4, titles
    rows = store.events(utcnow().replace(year=2000))
    assert sorted((r.line, r.type) for r in rows) == [
        ("a", "critical"),
        ("a", "recovery"),
        ("b", "critical"),
        ("b", "recovery"),
    ]
    assert {r.status for r in rows} == {"sent"}
    assert store.db.execute("SELECT count(*) FROM readings").fetchone() == (
        4 * 11,
    )  # 11 passes, 4 lines
    assert store.owing == 0
    assert store.states()["b"].level is Level.OK
    store.close()


def test_every_text_a_reading_carries_is_redacted() -> None:
    # a provider's state reason (Telnyx `status.reason`) is provider text like any other
    from monitor.redact import Redactor

    secret = "s3cret-token-value"
    text = f"echo {secret}"
    reading = Reading(
        "a", utcnow(), status=text, critical_reason=text, warning_reason=text, raw={"x": text}
    )
    result = cycle._redacted(
        cycle.CheckResult("a", utcnow(), 1, reading=reading, error=text, raw=text),
        Redactor([secret]),
    )
    assert secret not in repr(result)
