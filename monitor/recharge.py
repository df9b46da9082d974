"""Guarded auto-recharge: need -> caps -> ledger intent -> action -> outcome -> verification.

Money is spent only when `[recharge] enabled = true`, only once per need (a need is one
spell of the line's trigger holding, named by when it began: its idempotency key), never
past a cap, and never twice for a call whose outcome is unknown. The intent is committed
to the ledger before any call, so a crash between the two is found and reconciled before
the daemon acts for that line again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import structlog

from monitor import actions
from monitor.adapters import line_sizes
from monitor.config import Recharge, Settings, Trigger
from monitor.errors import MonitorError, StoreError, TopUpFailed, TopUpUnknown
from monitor.locks import file_lock
from monitor.model import Event, Level, Reading, TopUpRequest, TopUpResult
from monitor.notify import outbox_entries
from monitor.rows import exact_when
from monitor.store import Store, ledger
from monitor.units import Size, Sizes, format_bytes, format_duration, format_money

log = structlog.get_logger("monitor.recharge")

MANUAL_WAIT = 60.0
"""How long `esim-monitor recharge` waits for the daemon's top-up to finish."""
GRACE = 15.0
"""Beyond an action's own `timeout`, how long one recharge step may take (HTTP, ledger)."""

LIVE = ("requested", "submitted", "confirmed", "unconfirmed", "unknown")
"""Ledger states that count against the caps: money was, or may have been, spent."""


def trigger_holds(
    trigger: Trigger, level: Level | None, reading: Reading, sizes: Sizes = "decimal"
) -> bool | None:
    """Whether a reading calls for a top-up; None when it lacks the figure to tell. Pure.
    A data limit ("data < 300MB") reads in the line's size convention, as thresholds do."""
    if trigger.state is not None:
        return level is not None and level >= Level[trigger.state.upper()]
    limit = trigger.limit
    if trigger.metric == "balance" and reading.balance is not None:
        return reading.balance < limit  # type: ignore[operator]
    if trigger.metric == "data" and reading.data_remaining is not None:
        bound = limit.of(sizes) if isinstance(limit, Size) else limit
        return reading.data_remaining < bound  # type: ignore[operator]
    if trigger.metric == "expiry" and reading.expires_at is not None:
        return reading.expires_at - reading.checked_at < limit  # type: ignore[operator]
    return None


class RechargeBusy(MonitorError):
    """Another process holds the recharge ledger (a top-up is under way)."""


@contextmanager
def ledger_lock(database: Path, wait: float) -> Iterator[bool]:
    """An exclusive lock, across processes, around every step that reads the ledger and
    acts on it: the caps are checked and the intent written by one process at a time, and
    an intent without an outcome, seen under the lock, is surely one a crash left."""
    with file_lock(database.with_name(database.name + ".recharge.lock"), wait) as held:
        yield held


@dataclass(frozen=True)
class Block:
    """Why a top-up may not happen now, and when that frees up."""

    cap: str
    frees_at: datetime
    detail: str


def blocked(
    recharge: Recharge, entries: Sequence[ledger.Recharge], now: datetime, tz: tzinfo
) -> Block | None:
    """The first cap (or the cooldown) that forbids another top-up now. Pure."""
    live = [e for e in entries if e.state in LIVE and not e.dry_run]
    local = now.astimezone(tz)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    next_day = (day + timedelta(days=1, hours=12)).replace(hour=0)
    next_month = (month + timedelta(days=32)).replace(day=1)
    last = max((e.requested_at for e in live), default=None)
    if last is not None and now - last < recharge.cooldown:
        return Block("cooldown", last + recharge.cooldown, format_duration(recharge.cooldown))
    today = [e for e in live if e.requested_at >= day]
    if len(today) >= recharge.max_per_day:
        return Block("max_per_day", next_day, f"{recharge.max_per_day} a day")
    this_month = [e for e in live if e.requested_at >= month]
    if len(this_month) >= recharge.max_per_month:
        return Block("max_per_month", next_month, f"{recharge.max_per_month} a month")
    cap = recharge.max_spend_per_month
    if cap is not None:
        estimate = recharge.price or Decimal(0)
        spent = sum((_spent(e, recharge) for e in this_month), Decimal(0))
        if spent + estimate > cap:
            return Block(
                "max_spend_per_month",
                next_month,
                f"{format_money(spent, recharge.currency)} spent of "
                f"{format_money(cap, recharge.currency)} this month",
            )
    return None


def _spent(entry: ledger.Recharge, recharge: Recharge) -> Decimal:
    """What a past top-up cost in the cap's currency; the configured price when the provider
    did not say, or said it in another currency (so the cap errs on the safe side)."""
    if entry.price is not None and entry.currency == recharge.currency:
        return entry.price
    return recharge.price or Decimal(0)


class Recharger:
    """Applies one line's recharge policy after each of its checks."""

    def __init__(self, settings: Settings, store: Store, adapter: Callable[[str], Any]) -> None:
        self.settings = settings
        self.store = store
        self.adapter = adapter

    def after_check(
        self, line: str, level: Level | None, reading: Reading | None, now: datetime
    ) -> list[Event]:
        """Verify earlier top-ups, reconcile interrupted ones, then act on a new need.

        All of it under the ledger lock: while `esim-monitor recharge` holds it, this check
        leaves the ledger alone and a later one catches up."""
        recharge = self.settings.lines[line].recharge
        if recharge is None:
            return []
        with ledger_lock(self.store.path, wait=0) as held:
            if not held:
                log.info("ledger busy (a manual top-up?): recharge steps wait", line=line)
                return []
            events = self._verify(line, recharge, reading, now)
            # Under the lock no top-up is under way: an intent without an outcome is debris.
            interrupted = [e for e in self.store.recharges(line) if e.state == "requested"]
            if interrupted:
                events += self._reconcile(line, interrupted, now)
            elif self.settings.recharge.enabled and reading is not None:
                events += self._consider(line, recharge, level, reading, now)
        return events

    def manual(self, line: str, reading: Reading | None, now: datetime, dry_run: bool) -> Event:
        """`esim-monitor recharge LINE`: a top-up now, under the same caps and ledger."""
        recharge = self.settings.lines[line].recharge
        assert recharge is not None
        key = ledger.manual_key(line, now)
        with ledger_lock(self.store.path, wait=MANUAL_WAIT) as held:
            if not held:
                raise RechargeBusy(
                    f"another top-up holds the ledger of {self.store.path} for more than "
                    f"{MANUAL_WAIT:g} s; try again"
                )
            events = self._perform(line, recharge, key, reading, now, dry_run, manual=True)
        return events[-1]

    # ---- the steps ---------------------------------------------------------------------

    def _consider(
        self, line: str, recharge: Recharge, level: Level | None, reading: Reading, now: datetime
    ) -> list[Event]:
        since = self.store.need_since(line)
        holds = trigger_holds(recharge.when, level, reading, line_sizes(self.settings, line))
        if holds is None:
            return []  # the reading lacks the figure: the need stands as it was
        if not holds:
            if since is not None:
                self.store.set_need(line, None)  # the need is over; a new one gets a new key
            return []
        if any(e.state == "submitted" for e in self.store.recharges(line)):
            return []  # a top-up is on its way: wait for its verification
        if since is None:
            since = now
            self.store.set_need(line, since)
        key = ledger.need_key(line, since)
        if self.store.recharge_by_key(key) is not None:
            return []  # this need was handled: bought, refused, skipped or unknown
        return self._perform(line, recharge, key, reading, now, recharge.dry_run, manual=False)

    def _perform(
        self,
        line: str,
        recharge: Recharge,
        key: str,
        reading: Reading | None,
        now: datetime,
        dry_run: bool,
        manual: bool,
    ) -> list[Event]:
        intent = _intent(line, recharge, key, reading, now, dry_run, manual)
        what = _what(recharge)
        block = blocked(recharge, self.store.recharges(line), now, self.settings.tz())
        if block is not None:
            # Skips do not take the need's key: when the cap frees up, the need is bought.
            # One skip (and one alert) per need, cap and window.
            skip_key = ledger.skip_key(key, block.cap, block.frees_at)
            if self.store.recharge_by_key(skip_key) is not None:
                return []
            frees = exact_when(block.frees_at, self.settings.tz(), up=True)
            detail = f"{block.cap} ({block.detail}) until {frees}"
            skipped = self._event(
                "recharge-skipped",
                line,
                now,
                what=what,
                cap=block.cap,
                cap_detail=block.detail,
                frees_at=block.frees_at,
            )
            with self._writing(now, skipped):
                self.store.add_recharge(
                    replace(intent, key=skip_key, state="skipped", detail=detail)
                )
            log.warning("top-up skipped", line=line, cap=block.cap)
            return [skipped]
        facts = _line_facts(self.settings, line, reading)
        pin_hash = None
        if recharge.action == "ussd-pin":
            used = self.store.used_pins()
            unused = [p for p in actions.pins(recharge) if actions.pin_hash(p) not in used]
            if not unused:
                failed = self._event(
                    "recharge-failed",
                    line,
                    now,
                    what=what,
                    error="no unused refill PIN is left: add PINs to `pins`",
                )
                with self._writing(now, failed):
                    self.store.add_recharge(
                        replace(intent, state="failed", detail="no unused refill PIN left")
                    )
                return [failed]
            facts["pin"] = unused[0]
            facts["pins_left"] = len(unused) - 1
            pin_hash = actions.pin_hash(unused[0])
        request = TopUpRequest(
            line=line,
            key=key,
            requested_at=now,
            package=recharge.package,
            amount=recharge.amount,
            currency=recharge.currency,
            facts=facts,
        )
        if dry_run:
            event = self._event("recharge-requested", line, now, what=what, dry_run=True)
            with self._writing(now, event):
                self.store.add_recharge(
                    replace(intent, state="dry-run", detail="dry run: nothing called")
                )
            log.info("top-up dry run", line=line)
            return [event]
        entry = self.store.add_recharge(intent, pin_hash)
        # routine: "submitted", "failed" or "unknown" follows
        log.info("top-up requested", line=line, action=recharge.action, key=key, routine=True)
        try:
            result = actions.build(self.settings, line, lambda: self.adapter(line)).execute(request)
        except TopUpFailed as exc:
            if pin_hash is not None and not exc.sent:
                self.store.release_pin(pin_hash)  # it never left: the PIN is still good
            return [self._settle(entry, now, "failed", str(exc), what=what)]
        except TopUpUnknown as exc:
            return [self._settle(entry, now, "unknown", str(exc), what=what)]
        except Exception as exc:  # a bug after the call may have spent money: assume it did
            log.exception("top-up action raised", line=line)
            detail = f"internal error in the {recharge.action} action: {type(exc).__name__}"
            return [self._settle(entry, now, "unknown", detail, what=what)]
        extra = {"pins_left": facts["pins_left"]} if "pins_left" in facts else {}
        event = self._event(
            "recharge-requested",
            line,
            now,
            what=what,
            reference=result.reference,
            price=format_money(result.price, result.currency) if result.price else None,
            **extra,
        )
        with self._writing(now, event):
            self.store.update_recharge(_submitted(entry, result, now))
        log.info("top-up submitted", line=line, reference=result.reference)
        return [event]

    def _settle(
        self,
        entry: ledger.Recharge,
        now: datetime,
        state: Literal["failed", "unknown"],
        detail: str,
        **facts: Any,
    ) -> Event:
        outcome = "unknown: not retried; check the account" if state == "unknown" else "failed"
        event = self._event(
            "recharge-failed", entry.line, now, error=detail, outcome=outcome, **facts
        )
        with self._writing(now, event):
            self.store.update_recharge(replace(entry, state=state, settled_at=now, detail=detail))
        log.error("top-up " + state, line=entry.line, detail=detail)
        return event

    def _verify(
        self, line: str, recharge: Recharge, reading: Reading | None, now: datetime
    ) -> list[Event]:
        events = []
        for entry in self.store.recharges(line):
            if entry.state != "submitted":
                continue
            if reading is not None and _went_up(entry, reading):
                event = self._event("recharge-confirmed", line, now, what=_what(recharge))
                with self._writing(now, event):
                    self.store.update_recharge(replace(entry, state="confirmed", settled_at=now))
                log.info("top-up confirmed", line=line, key=entry.key)
                events.append(event)
                continue
            submitted = entry.submitted_at or entry.requested_at
            if now - submitted >= recharge.verify_within:
                event = self._event(
                    "recharge-unconfirmed",
                    line,
                    now,
                    what=_what(recharge),
                    verify_within=format_duration(recharge.verify_within),
                )
                with self._writing(now, event):
                    self.store.update_recharge(replace(entry, state="unconfirmed", settled_at=now))
                log.warning("top-up unconfirmed", line=line, key=entry.key)
                events.append(event)
        return events

    def _reconcile(
        self, line: str, entries: Sequence[ledger.Recharge], now: datetime
    ) -> list[Event]:
        """Intents a crash interrupted: ask the action what became of them, or tell a person."""
        events = []
        for entry in entries:
            request = TopUpRequest(
                line=line,
                key=entry.key,
                requested_at=entry.requested_at,
                package=entry.package,
                amount=entry.amount,
                currency=entry.currency,
            )
            try:
                action = actions.build(self.settings, line, lambda: self.adapter(line))
                found = action.reconcile(request)
            except TopUpUnknown as exc:
                events.append(self._settle(entry, now, "unknown", str(exc)))
                continue
            except Exception as exc:  # cannot tell: a person must look, never a second buy
                log.exception("reconciling a top-up failed", line=line)
                detail = f"could not be reconciled ({type(exc).__name__}): check the account"
                events.append(self._settle(entry, now, "unknown", detail))
                continue
            if found is None:
                # Nothing was bought: the need's key is freed, so the need can be met again.
                freed = replace(entry, key=ledger.interrupted_key(entry.key))
                events.append(
                    self._settle(freed, now, "failed", "interrupted before the call was made")
                )
            else:
                self.store.update_recharge(_submitted(entry, found, now))
                log.info("interrupted top-up found by reconciliation", line=line)
        return events

    # ---- helpers ------------------------------------------------------------------------

    def _event(self, kind: str, line: str, now: datetime, **facts: Any) -> Event:
        base = {"label": self.settings.label(line)}
        payment_url = self.settings.lines[line].payment_url
        if payment_url:
            base["payment_url"] = payment_url
        return Event(kind, line, now, {**base, **{k: v for k, v in facts.items() if v is not None}})

    @contextmanager
    def _writing(self, now: datetime, event: Event) -> Iterator[None]:
        """The ledger write inside and the alert it calls for, in one transaction: with
        two, a crash between them would lose the alert for good (a top-up, or a top-up
        whose outcome is unknown, that nobody hears of)."""
        with self.store.transaction():
            yield
            self.store.add_events(outbox_entries(self.settings, [event]), now)


@dataclass(frozen=True)
class _Job:
    database: Path
    level: Level | None
    reading: Reading | None
    now: datetime


class RechargeWorker:
    """Runs the recharge policy off the checking loop: a top-up command or payment call may
    take its whole `timeout`, and no other line's check or alert may wait for it.

    One thread, so the steps run one at a time in the order the checks came (across
    processes the ledger lock still serialises them), on a Store connection of its own: a
    SQLite connection belongs to one thread. A line's queued step is replaced by its next
    check's: every step re-reads the ledger, so only the newest reading matters, and a slow
    action cannot pile up a backlog. Steps queued but not begun when the worker is closed
    are dropped safely: the next check raises the need again."""

    def __init__(
        self,
        settings: Settings,
        adapter: Callable[[str], Any],
        on_events: Callable[[], None] | None = None,
    ) -> None:
        """`on_events`: called (from the worker) after a step wrote alerts to the outbox,
        so the loop delivers them without waiting for its next pass."""
        self.settings = settings
        self.adapter = adapter
        self.on_events = on_events
        self._jobs: dict[str, _Job] = {}
        self._running: str | None = None
        self._closed = False
        self._then: Callable[[], None] | None = None
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stores: dict[Path, Store] = {}

    def submit(
        self, line: str, store: Store, level: Level | None, reading: Reading | None, now: datetime
    ) -> None:
        """The recharge step after one check of `line`, recorded in `store`."""
        if self.settings.lines[line].recharge is None:
            return
        if str(store.path) == ":memory:":  # no file to open a second connection on
            self._step(store, line, _Job(store.path, level, reading, now))
            return
        with self._cond:
            if self._closed:
                return
            self._jobs.pop(line, None)
            self._jobs[line] = _Job(store.path, level, reading, now)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="recharge", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def drain(self) -> bool:
        """Wait until every queued step has run, each bounded by its action's timeout plus
        `GRACE`; False when one outlived that (it goes on, unwaited for)."""
        with self._cond:
            while self._jobs or self._running is not None:
                line = self._running or next(iter(self._jobs))
                bound = self._bound(line)
                if not self._cond.wait_for(
                    lambda line=line: self._running != line and line not in self._jobs,
                    timeout=bound,
                ):
                    log.error(
                        "a top-up step outlived its bound; not waiting for it",
                        line=line,
                        seconds=bound,
                    )
                    return False
        return True

    def close(self, wait: float, then: Callable[[], None] | None = None) -> bool:
        """Stop taking steps and drop those not begun; wait up to `wait` seconds for the
        one under way. `then` (closing what the steps use) runs once no step uses it: now,
        or when the running step ends. False when a step was still running."""
        with self._cond:
            self._closed = True
            self._jobs.clear()
            self._cond.notify_all()
            if self._running is None:
                idle = True
            else:
                idle = self._cond.wait_for(lambda: self._running is None, timeout=wait)
                if not idle:
                    log.warning("stopping with a top-up step under way", line=self._running)
                    self._then = then
                    return False
        self._finish(then)
        return idle

    def _bound(self, line: str) -> float:
        recharge = self.settings.lines[line].recharge
        return (recharge.timeout.total_seconds() if recharge else 0.0) + GRACE

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._jobs or self._closed)
                if self._closed:
                    break
                line = next(iter(self._jobs))
                job = self._jobs.pop(line)
                self._running = line
            try:
                self._step(self._store(job.database), line, job)
            except Exception as exc:  # the database would not open: this step's failure
                log.error("recharge: cannot open the database", line=line, error=str(exc))
            finally:
                with self._cond:
                    self._running = None
                    self._cond.notify_all()
        with self._cond:
            then, self._then = self._then, None
        self._finish(then)

    def _store(self, path: Path) -> Store:
        if path not in self._stores:
            self._stores[path] = Store.open(path)
        return self._stores[path]

    def _step(self, store: Store, line: str, job: _Job) -> None:
        """One line's recharge policy; a failure is that step's alone, and only logged (the
        check and its alerts are safe already)."""
        try:
            events = Recharger(self.settings, store, self.adapter).after_check(
                line, job.level, job.reading, job.now
            )
        except StoreError as exc:
            log.error("recharge: a database write failed", line=line, error=str(exc))
            return
        except Exception:
            log.exception("the recharge policy failed", line=line)
            return
        if events and self.on_events is not None:
            self.on_events()

    def _finish(self, then: Callable[[], None] | None) -> None:
        with self._cond:
            stores = list(self._stores.values())
            self._stores.clear()
        for store in stores:
            store.close()
        if then is not None:
            then()


def _what(recharge: Recharge) -> str:
    if recharge.package:
        return recharge.package
    if recharge.amount is not None:
        return format_money(recharge.amount, recharge.currency)
    return recharge.action


def _intent(
    line: str,
    recharge: Recharge,
    key: str,
    reading: Reading | None,
    now: datetime,
    dry_run: bool,
    manual: bool,
) -> ledger.Recharge:
    """The ledger entry of a top-up about to be tried, with the reading it must beat."""
    return ledger.Recharge(
        line=line,
        key=key,
        state="requested",
        action=recharge.action,
        requested_at=now,
        package=recharge.package,
        amount=recharge.amount,
        price=recharge.price,
        currency=recharge.currency,
        dry_run=dry_run,
        manual=manual,
        baseline_balance=reading.balance if reading is not None else None,
        baseline_data=reading.data_remaining if reading is not None else None,
    )


def _submitted(entry: ledger.Recharge, result: TopUpResult, now: datetime) -> ledger.Recharge:
    """The entry once the action answered: the provider's reference, price and detail."""
    entry = replace(entry, state="submitted", submitted_at=now)
    if result.reference:
        entry = replace(entry, reference=result.reference)
    if result.price is not None and result.currency:
        entry = replace(entry, price=result.price, currency=result.currency)
    if result.detail:
        entry = replace(entry, detail=result.detail)
    return entry


def _went_up(entry: ledger.Recharge, reading: Reading) -> bool:
    """A later reading shows the top-up: more money or more data than before it."""
    if (
        entry.baseline_balance is not None
        and reading.balance is not None
        and reading.balance > entry.baseline_balance
    ):
        return True
    return (
        entry.baseline_data is not None
        and reading.data_remaining is not None
        and reading.data_remaining > entry.baseline_data
    )


def _line_facts(settings: Settings, line: str, reading: Reading | None) -> dict[str, Any]:
    facts: dict[str, Any] = {"label": settings.label(line)}
    if reading is not None:
        if reading.balance is not None:
            facts["balance"] = f"{reading.balance:f}"
            facts["balance_currency"] = reading.currency
        if reading.data_remaining is not None:
            facts["data_remaining_bytes"] = reading.data_remaining
            facts["data_remaining"] = format_bytes(
                reading.data_remaining, line_sizes(settings, line)
            )
        if reading.expires_at is not None:
            facts["expires_at"] = reading.expires_at.isoformat()
    options = settings.lines[line].options
    for key in ("iccid", "sim", "sim_card_id", "linkid", "modem"):
        if key in options:
            facts[key] = str(options[key])
    return facts
