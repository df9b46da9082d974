"""The daemon loop: schedule checks per line, deliver the outbox, react to signals, and
keep systemd informed (READY, STATUS, RELOADING, STOPPING, and WATCHDOG pings).

`schedule` only decides which lines are due; the loop then checks the due lines as one
batch (concurrently, through `cycle.Checker`). Every pass first sends what the outbox has
due. The loop waits on an Event, so SIGTERM, SIGINT and SIGHUP act at once. The watchdog
is pinged from this loop only (never a side thread), so a hung loop gets restarted.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from types import FrameType

import schedule
import structlog

from monitor import adapters, heartbeat, metrics, sdnotify
from monitor.config import Settings
from monitor.cycle import Checker
from monitor.errors import MonitorError
from monitor.model import Event, utcnow
from monitor.notify import Notifier, deliver_due, send_now
from monitor.report import queue_digests
from monitor.store import Store

log = structlog.get_logger("monitor.daemon")

MAX_SLEEP = 60.0
ERROR_PAUSE = 5.0
PRUNE_EVERY = timedelta(days=1)


class Waker:
    """Ends the loop's wait from a signal or another thread, without taking a lock: a
    self-pipe that `signal.set_wakeup_fd` makes the interpreter write to on every signal."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._catching = False

    def catch_signals(self) -> None:
        signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._catching = True

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe wakes the loop all the same
            os.write(self._write, b"\0")

    def wait(self, timeout: float) -> None:
        select.select([self._read], [], [], max(timeout, 0.0))
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 4096):
                pass

    def close(self) -> None:
        if self._catching:
            signal.set_wakeup_fd(-1)
            self._catching = False
        for fd in (self._read, self._write):
            if fd >= 0:
                os.close(fd)
        self._read = self._write = -1


class Daemon:
    def __init__(self, settings: Settings, reload: Callable[[], Settings]) -> None:
        self.settings = settings
        self._reload = reload
        self._stopping = False
        self._waker = Waker()
        self._reload_requested = False
        self._due: set[str] = set()
        self._pruned_at: datetime | None = None
        self._started: dict[str, float] = {}
        self.store = Store.open(settings.database_path())
        self.checker = Checker(settings)
        self.notifier = Notifier(settings)
        self.scheduler = schedule.Scheduler()
        self.sd = sdnotify.Notifier()
        self.dog = sdnotify.Watchdog(self.sd, sdnotify.watchdog_interval())
        self._snapshot = metrics.Snapshot()
        self._metrics: metrics.MetricsServer | None = None

    # ---- signals -----------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """The handlers only set flags: the waker's pipe, written by the interpreter's own
        C-level handler, ends the loop's wait. (A handler that took a lock, such as
        Event.set, would deadlock a loop interrupted while holding that lock.)"""
        self._waker.catch_signals()
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self._reload_requested = True

    def _stop_asked(self) -> bool:
        return self._stopping

    def stop(self) -> None:
        """Stop from another thread (tests, embedding)."""
        self._stopping = True
        self._waker.wake()

    # ---- the loop ----------------------------------------------------------------------

    def run_once(self) -> None:
        """Send what is due, check every line once, send what that produced (digests too,
        so `run --once` from cron is a complete daemon pass)."""
        queue_digests(self.settings, self.store, utcnow())
        self._deliver()
        self._check(list(self.settings.lines))
        self._deliver()

    def run(self) -> None:
        log.info(
            "esim-monitor started",
            lines=len(self.settings.lines),
            channels=len(self.settings.channels),
            database=str(self.store.path),
        )
        for problem in adapters.interval_warnings(self.settings):
            log.warning("polling faster than the provider answers anew", detail=str(problem))
        self._schedule(previous={})
        self._due.update(self.settings.lines)  # a first check of every line at startup
        self._start_metrics()
        self.sd.ready(status=self._status_line())
        self.dog.kick()
        try:
            while not self._stopping:
                try:
                    self._pass()
                    pause = self._sleep_seconds()
                except MonitorError as exc:
                    log.error("loop pass failed", error=str(exc))
                    pause = ERROR_PAUSE
                except Exception:
                    log.exception("loop pass failed unexpectedly")
                    pause = ERROR_PAUSE
                due = self.dog.due_in()
                if not self._stopping and not self._reload_requested:
                    self._waker.wait(pause if due is None else min(pause, due))
                self.dog.kick()
        finally:
            self.sd.stopping()
            self.close()
        log.info("esim-monitor stopped")

    def _pass(self) -> None:
        if self._reload_requested:
            self._reload_requested = False
            self.reload()
            self.dog.kick()
        queue_digests(self.settings, self.store, utcnow())
        self._deliver()
        self._prune()
        self.scheduler.run_pending()
        if self._due and not self._stopping:
            due = [line for line in self.settings.lines if line in self._due]
            self._due.clear()
            self._log_overdue(due)
            self._check(due)
            self._deliver()

    def _log_overdue(self, due: list[str]) -> None:
        """Lines checked well after their time: the cycle is slower than the schedule."""
        now = time.monotonic()
        late = []
        for line in due:
            last = self._started.get(line)
            allowed = self.settings.interval(line) * 1.5 + self.settings.jitter(line)
            if last is not None and now - last > allowed.total_seconds():
                late.append(line)
            self._started[line] = now
        if late:
            log.warning("checks overdue", lines=len(late), first=late[:5])

    def _check(self, lines: list[str]) -> None:
        """Check lines, then tell the world the cycle completed: systemd's status line,
        the metrics snapshot, the dead man's switch."""
        started = time.monotonic()
        self.checker.run(
            self.store, lines, tick=self.dog.kick, direct=self._send_now, stop=self._stop_asked
        )
        if self._stopping:  # an interrupted cycle is no cycle: no status, no heartbeat
            return
        seconds = time.monotonic() - started
        self.dog.kick()
        labels = {line: self.settings.label(line) for line in self.settings.lines}
        self._snapshot = metrics.Snapshot(
            metrics.line_snapshots(self.store.status(), labels),
            metrics.Health(seconds, utcnow(), self.store.pending_count()),
        )
        self.sd.status(self._status_line())
        url = self.settings.monitor.heartbeat_url
        if url is not None:
            beat = heartbeat.ping(
                url.get_secret_value(), self.settings.monitor.heartbeat_timeout.total_seconds()
            )
            if not beat.ok:
                log.warning("heartbeat ping failed", error=beat.error)

    def _status_line(self) -> str:
        """ "12 lines, 2 low, next check 14:05": what `systemctl status` shows."""
        low = sum(1 for line in self._snapshot.lines if line.state in ("warning", "critical"))
        runs = [job.next_run for job in self.scheduler.jobs if job.next_run]
        text = f"{len(self.settings.lines)} lines, {low} low"
        return text + (f", next check {min(runs):%H:%M}" if runs else "")

    def _prune(self) -> None:
        """Once a day, roll readings past `keep_readings` up into daily rows."""
        now = utcnow()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        rolled = self.store.prune(now - self.settings.monitor.keep_readings)
        if rolled:
            log.info("old readings rolled up per day", readings=rolled)

    def _send_now(self, event: Event) -> list[str]:
        return send_now(self.notifier, event)

    def _deliver(self) -> None:
        deliver_due(self.store, self.notifier, tick=self.dog.kick)
        self.dog.kick()

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

    def _start_metrics(self) -> None:
        address = self.settings.monitor.metrics
        if address is None:
            return
        try:
            self._metrics = metrics.start(address, lambda: self._snapshot)
        except MonitorError as exc:
            log.error("metrics endpoint not started", error=str(exc))
            return
        log.info("metrics endpoint listening", address=address)

    def reload(self) -> None:
        """Re-read the config; an invalid one is logged and rejected, the old one runs on."""
        log.info("reloading config")
        self.sd.reloading()
        try:
            self._apply(self._reload())
        except MonitorError as exc:
            log.error("new config rejected, keeping the running one", problems=str(exc))
        except Exception:  # whatever failed, the running config goes on
            log.exception("reload failed, keeping the running config")
        finally:
            self.sd.ready(status=self._status_line())

    def _apply(self, settings: Settings) -> None:
        if settings.database_path() != self.store.path:
            store = Store.open(settings.database_path())
            self.store.close()
            self.store = store
        old_checker = self.checker
        previous = self._timings()
        metrics_changed = settings.monitor.metrics != self.settings.monitor.metrics
        self.settings = settings
        self.checker = Checker(settings)
        self.notifier = Notifier(settings)
        old_checker.close()
        self._due.intersection_update(settings.lines)
        self._schedule(previous)
        if metrics_changed:
            if self._metrics is not None:
                self._metrics.stop()
                self._metrics = None
            self._start_metrics()
        log.info("config reloaded", lines=len(settings.lines), channels=len(settings.channels))

    def close(self) -> None:
        self._waker.close()
        if self._metrics is not None:
            self._metrics.stop()
            self._metrics = None
        self.checker.close()
        self.store.close()
        self.sd.close()
