"""One pass over some lines: read them (concurrently), evaluate, record.

Reads run in a bounded thread pool, each isolated: any exception an adapter raises is a
failed check for that line alone. Evaluation and database writes happen on the calling
thread, one transaction per line, so the store needs no locking. The recharge policy runs
after each check on a worker of its own (`recharge.RechargeWorker`, with its own connection),
so a slow top-up never delays another line's check or alert.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog

from monitor import adapters
from monitor.config import Settings, secret_values
from monitor.counters import COUNTERS
from monitor.errors import CheckFailed, ReadingRejected, StoreError
from monitor.evaluate import Policy, evaluate_failure, evaluate_reading, summarize
from monitor.forecast import MAX_POINTS, Forecast, forecast
from monitor.model import (
    Controls,
    Event,
    LineState,
    MetricResult,
    Reading,
    reading_problems,
    utcnow,
)
from monitor.notify import outbox_entries
from monitor.recharge import RechargeWorker
from monitor.redact import Redactor
from monitor.store import Check, Point, Store
from monitor.tokens import TokenCache

log = structlog.get_logger("monitor.cycle")

TICK = 0.5
"""Longest wait between two looks at the checks under way."""
ROUND_WINDOW = 0.05
"""After a first result, how long to gather others into the same round (one transaction)."""
STALE_RETRIES = 3
"""How often a check whose line's state moved on meanwhile is judged again."""
HISTORY = timedelta(days=30)
"""How far back the forecast looks."""


@dataclass(frozen=True)
class CheckResult:
    """What reading one line gave: a Reading, or why it failed (with the raw reply)."""

    line: str
    checked_at: datetime
    duration_ms: int
    reading: Reading | None = None
    error: str | None = None
    raw: str | None = None
    skipped: bool = False
    """Not asked at all (its account's breaker is open): a failed check all the same."""


@dataclass(frozen=True)
class Judged:
    """A check evaluated against the line's policy."""

    result: CheckResult
    state: LineState
    events: list[Event]
    metrics: list[MetricResult]
    forecasts: list[Forecast] = field(default_factory=list)


@dataclass(frozen=True)
class _Outcome:
    """A judged check on its way to the database, with what it needs if it must be redone
    as a failed check (the line's previous state)."""

    judged: Judged
    control: Controls
    previous: LineState
    record: Check


class Checker:
    """Owns the adapters of one configuration; rebuilt on reload."""

    def __init__(
        self,
        settings: Settings,
        tokens: TokenCache | None = None,
        on_recharge_events: Callable[[], None] | None = None,
    ) -> None:
        """`tokens`: where access tokens are kept, by default beside the history;
        `on_recharge_events`: called from the recharge worker when it wrote alerts."""
        self.settings = settings
        self.context = adapters.AdapterContext(
            tokens or TokenCache(settings.database_path()),
            secret_values(settings),
            settings.tz(),
            settings.database_path(),
        )
        self._adapters: dict[str, adapters.Adapter] = {}
        self._accounts: dict[str, adapters.AccountRef] = {}
        """Each account's validated options, shared by its lines' adapters."""
        self._pool = WorkerPool(settings.monitor.workers)
        self.breakers: dict[str, Breaker] = {
            name: Breaker(name, settings.monitor.breaker_after) for name in settings.accounts
        }
        self.recharges = RechargeWorker(settings, self._adapter, on_recharge_events)

    def close(self, wait: float = 0.0) -> None:
        """Waits up to `wait` seconds for a top-up under way; the clients it uses are
        closed once it ends (on a reload the new checker goes on meanwhile)."""
        self._pool.shutdown()
        self.recharges.close(wait, then=self._close_clients)

    def _close_clients(self) -> None:
        self.context.close()
        self.context.tokens.close()

    def adapter(self, line_id: str) -> adapters.Adapter:
        """The line's adapter, built once (the one its checks use)."""
        return self._adapter(line_id)

    def _adapter(self, line_id: str) -> adapters.Adapter:
        if line_id not in self._adapters:
            self._adapters[line_id] = adapters.build(
                self.settings, line_id, self.context, self._accounts
            )
        return self._adapters[line_id]

    def read(self, line_ids: Sequence[str]) -> list[CheckResult]:
        """Read the lines concurrently; results in the order asked."""
        results = {r.line: r for batch in self.rounds(line_ids) for r in batch}
        return [results[line_id] for line_id in line_ids]

    def rounds(
        self,
        line_ids: Sequence[str],
        tick: Callable[[], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> Iterator[list[CheckResult]]:
        """Read the lines concurrently, yielding the results as they come, in rounds: what
        finished since the last look (so the caller can write a round in one transaction).

        Lines of one account are dispatched at most `max_concurrency` at a time (their
        adapter's documented limit, else `account_concurrency`), round-robin across
        accounts, so one slow or hanging provider cannot take every worker. An account
        whose circuit breaker is open is not asked at all: its lines fail at once. Every
        check has a hard deadline (`check_timeout`): past it, the check is a failure and
        its worker is abandoned: the check's sockets are shut, so the worker comes back,
        and a fresh one takes its place meanwhile. `tick` runs at least every half second,
        so the caller can ping a watchdog while checks are under way; once `stop` says so,
        the checks under way are abandoned unrecorded and the rounds end.
        """
        queues: dict[str | None, deque[tuple[str, adapters.Adapter]]] = {}
        first: list[CheckResult] = []
        for line_id in line_ids:
            # Adapters are built here, on the calling thread: no two workers race to build one.
            try:
                adapter = self._adapter(line_id)
            except Exception as exc:
                log.exception("adapter could not be set up", line=line_id)
                why = self.context.redactor.text(f"adapter could not be set up: {exc}")
                first.append(CheckResult(line_id, utcnow(), 0, error=why))
                continue
            key = account_key(adapter)
            breaker = self.breakers.get(key) if key else None
            if breaker is not None and breaker.is_open(time.monotonic()):
                first.append(CheckResult(line_id, utcnow(), 0, error=breaker.why(), skipped=True))
                continue
            queues.setdefault(key, deque()).append((line_id, adapter))
        pending: dict[Future[CheckResult], tuple[str, str | None]] = {}
        started: dict[str, float] = {}
        inflight: dict[str | None, int] = dict.fromkeys(queues, 0)

        def dispatch() -> None:
            moved = True
            while moved:
                moved = False
                for key, queue_ in queues.items():
                    if queue_ and inflight[key] < self._concurrency(key, queue_[0][1]):
                        line_id, adapter = queue_.popleft()
                        future = self._pool.submit(_read_one, line_id, adapter, started)
                        pending[future] = (line_id, key)
                        inflight[key] += 1
                        moved = True

        dispatch()
        if first:
            yield first
        limit = self.settings.monitor.check_timeout.total_seconds()
        progress = time.monotonic()
        while pending:
            if stop is not None and stop():
                for future in pending:
                    if not future.cancel():
                        self._pool.abandon(future, self.context.abort)
                log.warning("checks interrupted: stopping", lines=len(pending))
                return
            done, _ = wait(pending, timeout=TICK, return_when=FIRST_COMPLETED)
            if done:  # gather what finishes soon after, so a round is worth a transaction
                done, _ = wait(pending, timeout=ROUND_WINDOW, return_when=ALL_COMPLETED)
            batch = []
            for future in done:
                _, key = pending.pop(future)
                inflight[key] -= 1
                progress = time.monotonic()
                batch.append(future.result())
            now = time.monotonic()
            for future, (line_id, key) in list(pending.items()):
                began = started.get(line_id)
                stalled = began is None and now - progress > limit
                if (began is not None and now - began > limit) or stalled:
                    del pending[future]
                    inflight[key] -= 1
                    if future.cancel():
                        why = f"not started within {limit:g} s: every worker was busy"
                    else:
                        self._pool.abandon(future, self.context.abort)
                        why = f"no answer within {limit:g} s (check_timeout)"
                    log.warning("check abandoned", line=line_id, reason=why)
                    batch.append(CheckResult(line_id, utcnow(), int(limit * 1000), error=why))
            dispatch()
            if batch:
                yield batch
            if tick is not None:
                tick()

    def _concurrency(self, key: str | None, adapter: adapters.Adapter) -> int:
        if key is None:
            return self.settings.monitor.workers
        return adapter.max_concurrency or self.settings.monitor.account_concurrency

    def _fold(self, result: CheckResult, judged: Judged, store: Store, now: datetime) -> Judged:
        """Feed the line's account breaker; while it is tripped, the lines' failure alerts
        become one alert for the account, and so does their recovery.

        What was folded is kept in the database (a line's state, the account's alert), so
        a reload or a restart neither floods recoveries nor repeats the account's alert."""
        account = self.settings.lines[result.line].account
        breaker = self.breakers.get(account) if account else None
        if breaker is None:
            return judged
        if breaker.alerted is None:
            breaker.alerted = account in store.account_alerts()
        change = None
        if not result.skipped:
            change = breaker.record(result.reading is not None, result.error, time.monotonic())
        events = list(judged.events)
        notices = judged.state.notices
        account_events = []
        if breaker.tripped and any(e.type == "failure" for e in events):
            events = [e for e in events if e.type != "failure"]
            notices = dataclasses.replace(notices, folded=breaker.account)
        if change == "opened" and not breaker.alerted:
            log.error("account paused: its checks keep failing", account=breaker.account)
            breaker.alerted = True
            store.set_account_alert(breaker.account, now)
            account_events.append(
                _account_event(
                    "failure",
                    breaker,
                    now,
                    error=breaker.why(),
                    failures=breaker.failures,
                    headline=f"account {breaker.account} cannot be read: {breaker.last_error}",
                )
            )
        if result.reading is not None:
            if notices.folded is not None:
                notices = dataclasses.replace(notices, folded=None)
                events = [e for e in events if e.type != "failure-recovered"]
            if breaker.alerted:
                log.info("account readable again", account=breaker.account)
                breaker.alerted = False
                store.set_account_alert(breaker.account, None)
                account_events.append(_account_event("failure-recovered", breaker, now))
        if account_events:
            store.add_events(outbox_entries(self.settings, account_events), now)
        state = dataclasses.replace(judged.state, notices=notices)
        return dataclasses.replace(judged, events=events, state=state)

    def policy(self, line_id: str) -> Policy:
        return Policy(
            self.settings.thresholds(line_id),
            self.settings.alerts(line_id),
            adapters.line_sizes(self.settings, line_id),
        )

    def judge(
        self,
        result: CheckResult,
        previous: LineState,
        now: datetime,
        controls: Controls | None = None,
        history: Sequence[Point] = (),
    ) -> Judged:
        """Evaluate one check; `history` (time, balance, data) feeds the forecast."""
        policy = self.policy(result.line)
        forecasts: list[Forecast] = []
        if result.reading is not None:
            forecasts = line_forecasts(history, result.reading, now)
            known = next((p.balance for p in reversed(history) if p.balance is not None), None)
            state, events, metrics = evaluate_reading(
                previous, result.reading, policy, now, controls, forecasts, known
            )
        else:
            state, events = evaluate_failure(previous, result.error or "failed", policy, now)
            metrics = []
        extra = {"label": self.settings.label(result.line)}
        payment_url = self.settings.lines[result.line].payment_url
        if payment_url:
            extra["payment_url"] = payment_url
        events = [Event(e.type, e.line, e.created_at, {**e.facts, **extra}) for e in events]
        return Judged(result, state, events, metrics, forecasts)

    def run(
        self,
        store: Store,
        line_ids: Sequence[str],
        tick: Callable[[], None] | None = None,
        direct: Callable[[Event], Collection[str] | None] | None = None,
        stop: Callable[[], bool] | None = None,
        keep: bool = True,
    ) -> list[Judged]:
        """Check the lines and record each outcome with its events in the outbox. Results
        are written as they arrive, a round at a time, each round in one transaction (all
        of a check or none of it, and thousands of lines without a commit each). A round
        the database refuses for one check's data is written again one check at a time, so
        one line's trouble is that line's failed check alone. When the database cannot be
        written at all, `direct` sends the events at once (it returns the channels it
        reached; None: all) and the store keeps the checks until it can write them, so a
        full disk neither silences alerts nor sends one twice. Once `stop` says so, checks
        still under way are dropped unrecorded (see `rounds`). The judged checks are
        returned unless not `keep` (the daemon's cycle: on 10,000 lines, keeping every one
        to the end was 24 MB of its peak memory, for a count of failures)."""
        started = time.monotonic()
        judged: list[Judged] = []
        failed = 0
        self._settle(store)
        controls = store.controls()
        states = store.states()  # one query for the batch, not one per line
        for batch in self.rounds(line_ids, tick, stop):
            done = self._round(store, batch, controls, states, direct)
            failed += sum(1 for j in done if j.result.reading is None)
            if keep:
                judged.extend(done)
        log.info(
            "checks done",
            routine=True,
            lines=len(line_ids),
            failed=failed,
            seconds=round(time.monotonic() - started, 3),
        )
        return judged

    def record(self, store: Store, reading: Reading) -> Judged:
        """One reading of one line from outside the poll (recorded by hand, relayed by a
        phone, pushed by a provider), judged and written exactly as a polled one: its alerts
        go to the outbox, it feeds the forecast and the recharge policy. Safe beside a
        running daemon: the write is guarded by the state it was judged from (see
        `Check.based_on`), so neither overwrites the other. Raises `ReadingRejected` for
        figures out of range, `StoreError` when it could not be recorded."""
        problems = reading_problems(reading)
        if problems:
            raise ReadingRejected("; ".join(problems))
        result = CheckResult(reading.line, reading.checked_at, 0, reading=reading)
        states = {reading.line: store.state(reading.line)}
        controls = store.controls()
        judged = self._round(store, [result], controls, states, None)
        if not judged:
            raise StoreError(f"the reading of {reading.line} could not be recorded (see the log)")
        return judged[0]

    def _round(
        self,
        store: Store,
        batch: Sequence[CheckResult],
        controls: dict[str, Controls],
        states: dict[str, LineState],
        direct: Callable[[Event], Collection[str] | None] | None,
    ) -> list[Judged]:
        """Judge a round of checks and record them in one transaction. A check whose line's
        state changed since it was read (a reading recorded meanwhile by another process)
        is judged again against the state now stored, so the recorded reading is neither
        lost nor overwritten."""
        now = utcnow()
        judged: list[Judged] = []
        pending = list(batch)
        for _ in range(STALE_RETRIES):
            read = [r.line for r in pending if r.reading is not None]
            histories = store.series_many(read, now - HISTORY, MAX_POINTS) if read else {}
            outcomes: list[_Outcome] = []
            for result in pending:
                control = controls.get(result.line, Controls())
                previous = states.get(result.line) or LineState(result.line)
                history = histories.get(result.line, [])
                outcome = self._evaluate(result, previous, now, control, history, store)
                if outcome is not None:
                    outcomes.append(outcome)
            written, stale = self._write(store, outcomes, now, direct)
            for item in written:
                self._after(store, item.judged, item.control, now)
                _log_outcome(item.judged)
                _count_check(item.judged.result)
                judged.append(item.judged)
            if not stale:
                return judged
            log.info("line state changed meanwhile: judged again", lines=sorted(stale))
            for line in stale:
                states[line] = store.state(line)
            pending = [r for r in pending if r.line in stale]
        log.error("line state kept changing: check not recorded", lines=[r.line for r in pending])
        return judged

    def _settle(self, store: Store) -> None:
        """Write what an unwritable database was left owing, before new checks."""
        if not store.owing:
            return
        owed = store.owing
        try:
            dropped = store.settle(utcnow())
        except StoreError as exc:
            log.error("the database still cannot be written", owed=owed, error=str(exc))
            return
        log.info("checks and sends kept while the database was unwritable are recorded", owed=owed)
        if dropped:
            log.error("kept checks the database refused were let go", lines=dropped)

    def _evaluate(
        self,
        result: CheckResult,
        previous: LineState,
        now: datetime,
        control: Controls,
        history: Sequence[Point],
        store: Store,
    ) -> _Outcome | None:
        """Judge one check; an exception here is a failed check of this line alone."""
        try:
            outcome = self.judge(result, previous, now, control, history)
        except Exception as exc:  # one line's bad data must not cost the others their check
            log.exception("check could not be evaluated", line=result.line)
            return self._failed(result, f"could not be evaluated: {_named(exc)}", previous, now)
        try:
            if result.reading is None or result.reading.source == "poll":
                outcome = self._fold(result, outcome, store, now)
        except StoreError as exc:  # the check stands; only the account's alert state is lost
            log.error(
                "account breaker state could not be written", line=result.line, error=str(exc)
            )
        except Exception:
            log.exception("account breaker failed", line=result.line)
        try:
            record = self._record(outcome, control, previous, now)
            return _Outcome(outcome, control, previous, record)
        except Exception as exc:
            log.exception("check could not be prepared for the database", line=result.line)
            return self._failed(result, f"could not be evaluated: {_named(exc)}", previous, now)

    def _failed(
        self, result: CheckResult, why: str, previous: LineState, now: datetime
    ) -> _Outcome | None:
        """The check as a failed one (its figures could not be used), or None if even that
        cannot be judged (logged)."""
        failed = CheckResult(result.line, result.checked_at, result.duration_ms, error=why)
        control = Controls()
        try:
            outcome = self.judge(failed, previous, now, control)
            record = self._record(outcome, control, previous, now)
            return _Outcome(outcome, control, previous, record)
        except Exception:
            log.exception("failed check could not be evaluated either", line=result.line)
            return None

    def _write(
        self,
        store: Store,
        outcomes: list[_Outcome],
        now: datetime,
        direct: Callable[[Event], Collection[str] | None] | None,
    ) -> tuple[list[_Outcome], set[str]]:
        """Record a round in one transaction; what was recorded, and the lines whose state
        had moved on meanwhile (not recorded: see `Check.based_on`). When the database
        refuses the round for something in it, each check is written alone: one the
        database refuses becomes a failed check of its line."""
        try:
            stale = set(store.record_checks([o.record for o in outcomes], now=now))
            return [o for o in outcomes if o.record.line not in stale], stale
        except StoreError as exc:
            self._send_directly(store, outcomes, exc, direct)
            return [], set()
        except Exception:
            log.exception("a round of checks could not be recorded: one at a time now")
        written = []
        stale = set()
        for outcome in outcomes:
            try:
                if store.record_checks([outcome.record], now=now):
                    stale.add(outcome.record.line)
                    continue
            except StoreError as exc:
                self._send_directly(store, [outcome], exc, direct)
                continue
            except Exception as exc:
                result = outcome.judged.result
                log.exception("check could not be recorded", line=result.line)
                why = f"could not be recorded: {_named(exc)}"
                failed = self._failed(result, why, outcome.previous, now)
                if failed is None or not self._write_alone(store, failed, now, direct):
                    continue
                outcome = failed
            written.append(outcome)
        return written, stale

    def _write_alone(
        self,
        store: Store,
        outcome: _Outcome,
        now: datetime,
        direct: Callable[[Event], Collection[str] | None] | None,
    ) -> bool:
        """Record one check in its own transaction; whether it was."""
        try:
            if store.record_checks([outcome.record], now=now):
                return False
        except StoreError as exc:
            self._send_directly(store, [outcome], exc, direct)
            return False
        except Exception:
            log.exception("failed check could not be recorded either", line=outcome.record.line)
            return False
        return True

    def _send_directly(
        self,
        store: Store,
        outcomes: Sequence[_Outcome],
        exc: StoreError,
        direct: Callable[[Event], Collection[str] | None] | None,
    ) -> None:
        """The database cannot be written: send the events now, and leave the checks with
        the store (with where each event went), which writes them when it can. Until then
        the store answers with their states, so no transition is raised or sent twice."""
        log.critical(
            "checks could not be recorded; their alerts go out directly",
            lines=len(outcomes),
            error=str(exc),
        )
        owed = []
        for outcome in outcomes:
            record = outcome.record
            sent: list[Collection[str]] = []
            for entry in record.events:
                reached: Collection[str] = ()
                if direct is not None and not record.snoozed:
                    answer = direct(entry.event)
                    reached = list(entry.channels) if answer is None else answer
                sent.append(reached)
            owed.append(dataclasses.replace(record, sent=sent))
            _count_check(outcome.judged.result)
        store.owe(owed)

    def _record(
        self, outcome: Judged, control: Controls, previous: LineState, now: datetime
    ) -> Check:
        """One check as `Store.record_checks` takes it, guarded by the state it was judged
        from."""
        result = outcome.result
        return Check(
            line=result.line,
            checked_at=result.checked_at,
            state=outcome.state,
            events=outbox_entries(self.settings, outcome.events),
            reading=result.reading,
            error=result.error,
            raw=result.raw if result.reading is None else None,
            duration_ms=result.duration_ms,
            forecasts=outcome.forecasts if result.reading is not None else None,
            snoozed=control.snoozed(now),
            based_on=previous,
        )

    def _after(self, store: Store, outcome: Judged, control: Controls, now: datetime) -> None:
        """What follows a recorded check: an ack its state change ends, and the recharge
        policy, handed to its worker (a top-up must not hold up other lines' checks). The
        check and its alerts are safe already: a failure here is only logged."""
        line = outcome.result.line
        try:
            if control.acked_level is not None and control.acked_level != outcome.state.level:
                store.acknowledge(line, None, now)
        except StoreError as exc:
            log.error("after the check, a database write failed", line=line, error=str(exc))
        self.recharges.submit(line, store, outcome.state.level, outcome.result.reading, now)


def _account_event(kind: str, breaker: Breaker, now: datetime, **facts: Any) -> Event:
    return Event(
        kind, "", now, {"label": f"account {breaker.account}", "account": breaker.account, **facts}
    )


def account_key(adapter: adapters.Adapter) -> str | None:
    """The account a line is read through: the unit of concurrency and of the breaker."""
    return adapter.account.name if adapter.account is not None else None


class Breaker:
    """A circuit breaker per account. After `after` failed checks in a row it pauses the
    account's checks (1 min, doubling up to 30 min while failures go on); the first check
    that works closes it. While it is open, the failure alerts of the account's lines fold
    into one alert for the account, and its skipped checks count as failed."""

    MIN_PAUSE = 60.0
    MAX_PAUSE = 1800.0

    def __init__(self, account: str, after: int) -> None:
        self.account = account
        self.after = after
        self.failures = 0
        self.pause = self.MIN_PAUSE
        self.open_until: float | None = None
        self.open_until_at: datetime | None = None
        self.last_error: str | None = None
        self.alerted: bool | None = None
        """Whether the account's failure alert went out (None: not yet read from the store)."""

    def is_open(self, now: float) -> bool:
        return self.open_until is not None and now < self.open_until

    @property
    def tripped(self) -> bool:
        """Open, or half-open: paused once and not yet closed by a working check."""
        return self.open_until is not None

    def why(self) -> str:
        until = f"{self.open_until_at:%H:%M:%S} UTC" if self.open_until_at else "later"
        return (
            f"skipped: account {self.account!r} keeps failing ({self.last_error}); "
            f"its checks are paused until {until}"
        )

    def record(self, ok: bool, error: str | None, now: float) -> str | None:
        """Count one real check; "opened", "reopened" or "closed" when that changes."""
        if self.after <= 0:
            return None
        if ok:
            was = self.tripped
            self.failures, self.pause = 0, self.MIN_PAUSE
            self.open_until = self.open_until_at = None
            return "closed" if was else None
        self.failures += 1
        self.last_error = error
        if self.failures < self.after or self.is_open(now):
            return None
        reopened = self.tripped
        if reopened:
            self.pause = min(self.pause * 2, self.MAX_PAUSE)
        self.open_until = now + self.pause
        self.open_until_at = utcnow() + timedelta(seconds=self.pause)
        return "reopened" if reopened else "opened"


class WorkerPool:
    """A bounded pool of daemon threads.

    Unlike ThreadPoolExecutor, whose workers the interpreter joins at exit, a worker stuck
    in a hung call here never blocks a clean stop. `abandon` ends the task's I/O through
    its `abort` hook (so the worker comes back) and lets one more worker start in its place
    until it does, up to twice the size, so one hanging provider cannot starve the rest."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._tasks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._running: dict[Future[Any], int] = {}
        """Task under way -> the id of the thread running it."""
        self._abandoned: set[Future[Any]] = set()
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._tasks.put((future, fn, args))
        with self._lock:  # workers end only at shutdown: no dead ones to prune here
            wanted = min(self._size + len(self._abandoned), 2 * self._size)
            if len(self._threads) < wanted:
                thread = threading.Thread(target=self._work, name="check", daemon=True)
                thread.start()
                self._threads.append(thread)
        return future

    def abandon(self, future: Future[Any], abort: Callable[[int], None] | None = None) -> None:
        """Give up waiting for a running task; `abort(thread_id)` ends its I/O. Under the
        lock, so the thread cannot have moved on to another task meanwhile."""
        with self._lock:
            thread = self._running.get(future)
            if thread is None:
                return  # it has just finished
            self._abandoned.add(future)
            if abort is not None:
                try:
                    abort(thread)
                except Exception:  # a failed abort leaves the worker busy, nothing worse
                    log.exception("abandoned check could not be aborted")

    def shutdown(self) -> None:
        with self._lock:
            for _ in self._threads:
                self._tasks.put(None)
            self._threads = []

    def _work(self) -> None:
        while True:
            item = self._tasks.get()
            if item is None:
                return
            future, fn, args = item
            with self._lock:
                if not future.set_running_or_notify_cancel():
                    continue
                self._running[future] = threading.get_ident()
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the waiting caller
                self._finished(future)
                future.set_exception(exc)
            else:
                self._finished(future)
                future.set_result(result)

    def _finished(self, future: Future[Any]) -> None:
        with self._lock:
            self._running.pop(future, None)
            self._abandoned.discard(future)


def line_forecasts(history: Sequence[Point], reading: Reading, now: datetime) -> list[Forecast]:
    """Forecasts of balance and data from the stored series plus the new reading."""
    found = []
    for metric, latest in (("balance", reading.balance), ("data", reading.data_remaining)):
        if latest is None:
            continue
        if metric == "balance":
            points = [(p.at, p.balance) for p in history if p.balance is not None]
        else:
            points = [(p.at, Decimal(p.data)) for p in history if p.data is not None]
        points.append((reading.checked_at, Decimal(latest)))
        result = forecast(metric, points, now)
        if result is not None:
            found.append(result)
    return found


def _read_one(line_id: str, adapter: adapters.Adapter, starts: dict[str, float]) -> CheckResult:
    """Read one line; what comes out of the adapter passes through the redactor first."""
    return _redacted(_read_raw(line_id, adapter, starts), adapter.context.redactor)


def _redacted(result: CheckResult, redactor: Redactor) -> CheckResult:
    """The result with every configured secret (and fetched token), in every form a client
    sends it, blotted out of its error, its raw reply and its reading's text and payload: a
    provider that echoes credentials must not put them into logs, alerts or the database."""
    if not redactor:
        return result
    reading = result.reading
    if reading is not None:
        reading = dataclasses.replace(
            reading,
            currency=redactor.optional(reading.currency),
            status=redactor.optional(reading.status),
            critical_reason=redactor.optional(reading.critical_reason),
            warning_reason=redactor.optional(reading.warning_reason),
            extras=redactor.data(reading.extras),
            raw=redactor.data(reading.raw),
        )
    return dataclasses.replace(
        result,
        reading=reading,
        error=redactor.optional(result.error),
        raw=redactor.optional(result.raw),
    )


def _read_raw(line_id: str, adapter: adapters.Adapter, starts: dict[str, float]) -> CheckResult:
    started = starts[line_id] = time.monotonic()
    checked_at = utcnow()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        reading = adapter.read()
    except CheckFailed as exc:
        return CheckResult(line_id, checked_at, took(), error=str(exc), raw=exc.raw)
    except Exception as exc:  # an adapter's bug is a failed check for its line alone
        log.exception("adapter raised", line=line_id)
        return CheckResult(
            line_id, checked_at, took(), error=f"internal error in adapter: {type(exc).__name__}"
        )
    if reading.line != line_id:
        return CheckResult(line_id, checked_at, took(), error="adapter returned another line")
    problems = reading_problems(reading)
    if problems:  # the one door every adapter's reading passes: nothing out of range goes on
        why = "the provider's figures are out of range: " + "; ".join(problems)
        return CheckResult(line_id, checked_at, took(), error=why)
    return CheckResult(line_id, reading.checked_at, took(), reading=reading)


def _named(exc: BaseException) -> str:
    """An exception as a check's error shows it: its type (its text may hold anything)."""
    return type(exc).__name__


def _count_check(result: CheckResult) -> None:
    """A check recorded (or kept for the database): `esim_monitor_checks_total`."""
    COUNTERS.check(
        "ok" if result.reading is not None else "skipped" if result.skipped else "failed"
    )


def _log_outcome(judged: Judged) -> None:
    result = judged.result
    if result.reading is None:
        log.warning(
            "check failed",
            line=result.line,
            error=result.error,
            failures=judged.state.failures,
            raw=result.raw[:200] if result.raw else None,
        )
    else:
        log.debug(
            "line checked",
            line=result.line,
            state=judged.state.state,
            figures=summarize(judged.metrics),
        )
    for event in judged.events:
        # routine: its alert, or the failure to send it, follows
        log.info("event raised", line=event.line, kind=event.type, routine=True)
