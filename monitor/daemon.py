"""The daemon loop: schedule checks per line, deliver the outbox, react to signals.

`schedule` only decides which lines are due; the loop then checks the due lines as one
batch (concurrently, through `cycle.Checker`). Every pass first sends what the outbox has
due. The loop waits on an Event, so SIGTERM, SIGINT and SIGHUP act at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from types import FrameType

import schedule
import structlog

from monitor.config import Settings
from monitor.cycle import Checker
from monitor.errors import ConfigError, MonitorError
from monitor.model import Event, utcnow
from monitor.notify import Notifier, deliver_due, send_now
from monitor.report import queue_digests
from monitor.store import Store

log = structlog.get_logger("monitor.daemon")

MAX_SLEEP = 60.0
ERROR_PAUSE = 5.0
PRUNE_EVERY = timedelta(days=1)


class Daemon:
    def __init__(self, settings: Settings, reload: Callable[[], Settings]) -> None:
        self.settings = settings
        self._reload = reload
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._reload_requested = False
        self._due: set[str] = set()
        self._pruned_at: datetime | None = None
        self.store = Store.open(settings.database_path())
        self.checker = Checker(settings)
        self.notifier = Notifier(settings)
        self.scheduler = schedule.Scheduler()

    # ---- signals -----------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop()

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self._reload_requested = True
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    # ---- the loop ----------------------------------------------------------------------

    def run_once(self) -> None:
        """Send what is due, check every line once, send what that produced (digests too,
        so `run --once` from cron is a complete daemon pass)."""
        queue_digests(self.settings, self.store, utcnow())
        self._deliver()
        self.checker.run(self.store, list(self.settings.lines), direct=self._send_now)
        self._deliver()

    def run(self) -> None:
        log.info(
            "esim-monitor started",
            lines=len(self.settings.lines),
            channels=len(self.settings.channels),
            database=str(self.store.path),
        )
        self._schedule(previous={})
        self._due.update(self.settings.lines)  # a first check of every line at startup
        try:
            while not self._stop.is_set():
                try:
                    self._pass()
                    pause = self._sleep_seconds()
                except MonitorError as exc:
                    log.error("loop pass failed", error=str(exc))
                    pause = ERROR_PAUSE
                except Exception:
                    log.exception("loop pass failed unexpectedly")
                    pause = ERROR_PAUSE
                self._wake.wait(pause)
                self._wake.clear()
        finally:
            self.close()
        log.info("esim-monitor stopped")

    def _pass(self) -> None:
        if self._reload_requested:
            self._reload_requested = False
            self.reload()
        queue_digests(self.settings, self.store, utcnow())
        self._deliver()
        self._prune()
        self.scheduler.run_pending()
        if self._due and not self._stop.is_set():
            due = [line for line in self.settings.lines if line in self._due]
            self._due.clear()
            self.checker.run(self.store, due, tick=self._tick, direct=self._send_now)
            self._deliver()

    def _prune(self) -> None:
        """Once a day, roll readings past `keep_readings` up into daily rows."""
        now = utcnow()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        rolled = self.store.prune(now - self.settings.monitor.keep_readings)
        if rolled:
            log.info("old readings rolled up per day", readings=rolled)

    def _send_now(self, event: Event) -> None:
        send_now(self.notifier, event)

    def _tick(self) -> None:
        """Runs while checks are under way: the place for the watchdog ping."""

    def _deliver(self) -> None:
        deliver_due(self.store, self.notifier)

    def _sleep_seconds(self) -> float:
        waits = [MAX_SLEEP]
        idle = self.scheduler.idle_seconds
        if idle is not None:
            waits.append(max(idle, 0.0))
        next_delivery = self.store.next_delivery_at()
        if next_delivery is not None:
            waits.append(max((next_delivery - utcnow()).total_seconds(), 0.0))
        if self._due:
            waits.append(0.0)
        return min(waits)

    def _schedule(self, previous: dict[str, tuple[timedelta, timedelta, datetime | None]]) -> None:
        """One job per line; a line whose timing did not change keeps its next run."""
        self.scheduler.clear()
        for line_id in self.settings.lines:
            interval = self.settings.interval(line_id)
            jitter = self.settings.jitter(line_id)
            seconds = max(int(interval.total_seconds()), 1)
            spread = int(jitter.total_seconds())
            job = self.scheduler.every(max(seconds - spread, 1))
            if spread:
                job = job.to(seconds + spread)
            job = job.seconds.do(self._due.add, line_id).tag(line_id)
            job.timing = (interval, jitter)  # type: ignore[attr-defined]
            old = previous.get(line_id)
            if old is None:
                self._due.add(line_id)
            elif old[:2] == (interval, jitter) and old[2] is not None:
                job.next_run = old[2]

    def _timings(self) -> dict[str, tuple[timedelta, timedelta, datetime | None]]:
        timings = {}
        for job in self.scheduler.jobs:
            interval, jitter = job.timing  # type: ignore[attr-defined]
            timings[next(iter(job.tags))] = (interval, jitter, job.next_run)
        return timings

    def reload(self) -> None:
        """Re-read the config; an invalid one is logged and rejected, the old one runs on."""
        log.info("reloading config")
        try:
            settings = self._reload()
        except ConfigError as exc:
            log.error("new config rejected, keeping the running one", problems=str(exc))
            return
        except MonitorError as exc:
            log.error("new config rejected, keeping the running one", problems=str(exc))
            return
        if settings.database_path() != self.store.path:
            store = Store.open(settings.database_path())
            self.store.close()
            self.store = store
        old_checker = self.checker
        previous = self._timings()
        self.settings = settings
        self.checker = Checker(settings)
        self.notifier = Notifier(settings)
        old_checker.close()
        self._due.intersection_update(settings.lines)
        self._schedule(previous)
        log.info("config reloaded", lines=len(settings.lines), channels=len(settings.channels))

    def close(self) -> None:
        self.checker.close()
        self.store.close()
