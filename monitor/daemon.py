"""The daemon loop: schedule checks per line, wake the outbox's delivery, react to signals,
and keep systemd informed (READY, STATUS, RELOADING, STOPPING, and WATCHDOG pings).

`schedule` only decides which lines are due; the loop then checks the due lines as one
batch (concurrently, through `cycle.Checker`). Delivery runs off the loop, one worker per
channel (`dispatch`): every pass, and every check, only wakes the workers. The loop waits
on an Event, so SIGTERM, SIGINT and SIGHUP act at once. The watchdog is pinged from this
loop only (never a side thread), so a hung loop gets restarted.

A loop that fails unexpectedly pass after pass is never silent: after FAILED_PASSES in a
row it says why (STATUS=, the log at err, a direct `daemon-failure` alert) and stops the
watchdog's pings, so systemd restarts it. A database that turns unusable (corrupt,
vanished, replaced, read-only) is different: a restart would only exit 65 and go quiet, so
the daemon keeps checking with its state in memory, alerts, and keeps pinging.

One daemon per database: `<database>.lock` beside it, held for the daemon's lifetime.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import stat
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType

import schedule
import structlog

from monitor import (
    adapters,
    alertmanager,
    children,
    control,
    heartbeat,
    metrics,
    redact,
    sdnotify,
)
from monitor.config import Settings
from monitor.cycle import Checker
from monitor.dispatch import Dispatcher
from monitor.errors import (
    EXIT_FAILURE,
    AlreadyRunning,
    ConfigError,
    DatabaseUnusable,
    LoopFailed,
    MonitorError,
)
from monitor.http.service import HttpService
from monitor.model import Event, utcnow
from monitor.notify import Notifier, deliver_due, drop_gone, send_now
from monitor.report import queue_digests
from monitor.store import Store, View, make_private_dirs
from monitor.tokens import TokenCache

log = structlog.get_logger("monitor.daemon")

MAX_SLEEP = 60.0
ERROR_PAUSE = 5.0
PRUNE_EVERY = timedelta(days=1)
FAILED_PASSES = 3
STOP_WAIT = 10.0
"""On SIGTERM, how long a top-up under way is waited for before the daemon exits (its
intent is in the ledger: an unfinished one is reconciled, never bought again, at start)."""
"""Unexpected pass failures in a row after which the loop counts as broken."""


class DatabaseLock:
    """An exclusive flock on `<database>.lock`, the holder's PID inside (mode 0600): a
    second daemon on the same database fails at once, naming the first. The file is never
    removed (unlinking a lock file races with the next taker); the kernel drops the lock
    when the holder's process ends, however it ends."""

    def __init__(self, database: Path) -> None:
        self.path = control.lock_path(database)
        try:
            make_private_dirs(database.parent)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:  # where the lock cannot be, the database cannot be either
            raise DatabaseUnusable(
                f"cannot create the database at {database}: {exc.strerror}; set [monitor] "
                "database to a writable path"
            ) from None
        try:
            os.fchmod(fd, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(
                f"another esim-monitor (PID {holder}) is running on {database} (it holds "
                f"{self.path}); stop it first, or give this one another [monitor] database"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise AlreadyRunning(f"cannot lock {self.path}: {exc.strerror}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _identity(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _where(exc: BaseException) -> str:
    """The exception's type and where it was raised: no message, which might hold anything."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {Path(last.filename).name}:{last.lineno}"


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

    def wait(self, timeout: float, also: control.ControlSocket | None = None) -> None:
        """Until a signal, a wake(), `timeout` seconds, or (`also`) a reload request."""
        watched = [self._read] if also is None else [self._read, also.fileno()]
        select.select(watched, [], [], max(timeout, 0.0))
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
        self._failed_passes = 0
        self._broken: str | None = None
        self._unusable: str | None = None
        """Why the database cannot be used (the daemon runs on a store in memory), or None."""
        self._probe: tuple[int, ...] | None = None
        self._rejected: str | None = None
        """Why the last reload was rejected (until one is applied): `systemctl status` says."""
        self._control: control.ControlSocket | None = None
        self.lock = DatabaseLock(settings.database_path())
        try:
            self.store = Store.open(settings.database_path(), verify=True)
            self.database = self.store.path
            self._identity = _identity(self.database)
        except BaseException:
            self.lock.release()
            raise
        self.checker = self._checker(settings)
        self.notifier = Notifier(settings)
        self.alertmanager = alertmanager.Hub(settings, alertmanager.StoredStates(self.database))
        self.scheduler = schedule.Scheduler()
        self.sd = sdnotify.Notifier()
        self.dog = sdnotify.Watchdog(self.sd, sdnotify.watchdog_interval())
        self._snapshot = metrics.Snapshot()
        self._metrics: metrics.MetricsServer | None = None
        self._http: HttpService | None = None
        self._gone_checked = False
        self.dispatcher = Dispatcher(settings, self.database, self._delivered)
        self.abandoned = False
        """After `close`: a send was still under way (its row stays pending)."""

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
        so `run --once` from cron is a complete daemon pass), then what the top-ups those
        checks called for produced."""
        queue_digests(self.settings, self.store, utcnow())
        self._deliver(at_once=True)
        self._check(list(self.settings.lines))
        self._deliver(at_once=True)  # the checks' alerts do not wait for the top-ups below
        self.alertmanager.flush()  # the line states, before the process is gone
        self.checker.recharges.drain()  # the top-ups those checks called for
        self._flush()

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
        self._start_http()
        self.alertmanager.start()
        self._control = control.ControlSocket.open()
        self.sd.ready(status=self._status_line())
        self.dog.kick()
        try:
            while not self._stopping:
                try:
                    self._pass()
                    pause = self._sleep_seconds()
                    self._passed()
                except DatabaseUnusable as exc:
                    self._database_unusable(str(exc))
                    pause = 0.0  # the next pass runs at once, on the store in memory
                except MonitorError as exc:
                    log.error("loop pass failed", error=str(exc))
                    pause = ERROR_PAUSE
                except Exception as exc:
                    log.exception("loop pass failed unexpectedly")
                    self._pass_failed(exc)
                    pause = ERROR_PAUSE
                due = self.dog.due_in()
                if not self._stopping and not self._reload_requested:
                    self._waker.wait(pause if due is None else min(pause, due), self._control)
                self.dog.kick()
        finally:
            self.sd.stopping()
            self.close()
        log.info("esim-monitor stopped")

    def _pass(self) -> None:
        if self._control is not None and self._control.accept():
            self._reload_requested = True  # `esim-monitor reload`: a verdict is awaited
        if self._reload_requested:
            self._reload_requested = False
            self.reload()
            self.dog.kick()
        self._watch_database()
        queue_digests(self.settings, self.store, utcnow())
        self._deliver()
        self._prune()
        self.scheduler.run_pending()
        if self._due and not self._stopping:
            # taken as a copy: a webhook's thread may add a line meanwhile (`_check_soon`)
            asked = set(self._due)
            self._due.difference_update(asked)
            due = [line for line in self.settings.lines if line in asked]
            self._log_overdue(due)
            self._check(due)
            self._deliver()

    # ---- a loop that keeps failing -------------------------------------------------------

    def _passed(self) -> None:
        self._failed_passes = 0
        if self._broken is not None:
            log.warning("daemon loop passes again: watchdog pings resume")
            self._broken = None
            self.dog.resume()
            self.sd.status(self._status_line())

    def _pass_failed(self, exc: BaseException) -> None:
        """Count unexpected failures in a row; at FAILED_PASSES, say so everywhere and stop
        the watchdog's pings. Without a watchdog nothing would restart us: exit instead."""
        self._failed_passes += 1
        if self._failed_passes < FAILED_PASSES or self._broken is not None:
            return
        self._broken = (
            f"loop failing: {self._failed_passes} passes in a row failed unexpectedly "
            f"({_where(exc)})"
        )
        restart = "watchdog pings stopped" if self.dog.interval is not None else "exiting"
        log.error("daemon loop failing", reason=self._broken, action=restart)
        self.sd.status(f"{self._broken}; {restart}")
        self.dog.halt()
        self._alert(self._broken)
        if self.dog.interval is None:
            raise LoopFailed(self._broken)

    def _alert(self, reason: str) -> None:
        """A `daemon-failure` alert, sent at once: the outbox may be what is failing."""
        event = Event(
            "daemon-failure",
            "",
            utcnow(),
            {"label": "esim-monitor", "error": reason, "database": str(self.database)},
        )
        try:
            send_now(self.notifier, event)
        except Exception:  # the alert is the last resort: its failure is logged, not raised
            log.exception("daemon-failure alert could not be sent")

    # ---- a database that cannot be used ---------------------------------------------------

    def _watch_database(self) -> None:
        """Each pass: is the file we opened still there, the same file, and writable? A
        deleted or replaced file takes every later write into a file nobody will read."""
        if self._unusable is not None:
            self._retry_database()
            if self._unusable is not None:
                log.error("database unusable", reason=self._unusable, database=str(self.database))
                self.sd.status(self._status_line())
            return
        problem = self._file_problem()
        if problem is not None:
            self._database_unusable(problem)

    def _file_problem(self) -> str | None:
        path = self.database
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return f"{path} vanished while the daemon ran"
        except OSError as exc:
            return f"cannot look at {path}: {exc.strerror}"
        if (st.st_dev, st.st_ino) != self._identity:
            return f"{path} was replaced by another file while the daemon ran"
        if _read_only(path, st):
            return f"{path} became read-only"
        return None

    def _database_unusable(self, reason: str) -> None:
        """Go on with line state and outbox in memory (no top-ups: the ledger is not
        there to cap them), alert once per reason, and try the file again each pass."""
        if reason == self._unusable:
            return
        first = self._unusable is None
        self._unusable = reason
        self._probe = _probe(self.database)
        log.error("database unusable", reason=reason, database=str(self.database))
        self.sd.status(self._status_line())
        if first:
            self.dispatcher.close(wait=0.0)  # its rows stay pending in the file
            old = self.store
            self.store = Store.open_memory()
            with contextlib.suppress(Exception):
                old.close()
            self._swap_checker(_without_recharge(self.settings), TokenCache(None))
        self._alert(f"database unusable: {reason}; checks go on, history is kept in memory")

    def _retry_database(self) -> None:
        """When something changed at the path (a file is back, writable again), open it;
        if it is sound, the daemon goes back to it."""
        probe = _probe(self.database)
        if probe is None or probe == self._probe:
            return
        self._probe = probe
        st = os.stat(self.database)
        if _read_only(self.database, st):
            return
        try:
            store = Store.open(self.database, verify=True)
        except MonitorError as exc:
            self._unusable = str(exc)
            return
        self._flush_memory()
        self.store.close()
        self.store = store
        self._identity = _identity(self.database)
        self._unusable = None
        self._swap_checker(self.settings)
        self.dispatcher = Dispatcher(self.settings, self.database, self._delivered, self.dispatcher)
        self._gone_checked = False
        log.warning("database usable again", database=str(self.database))
        self.sd.status(self._status_line())

    def _flush_memory(self) -> None:
        """Alerts the store in memory still owes go out before it is dropped."""
        with contextlib.suppress(Exception):
            self._deliver()
        left = self.store.pending_count()
        if left:
            log.error("alerts lost with the store in memory", count=left)

    def _checker(self, settings: Settings, tokens: TokenCache | None = None) -> Checker:
        """A checker whose recharge worker wakes the loop to deliver the alerts it wrote."""
        return Checker(settings, tokens, on_recharge_events=self._waker.wake)

    def _swap_checker(self, settings: Settings, tokens: TokenCache | None = None) -> None:
        old, self.checker = self.checker, self._checker(settings, tokens)
        old.close()

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
            self.store,
            lines,
            tick=self.dog.kick,
            direct=self._send_now,
            stop=self._stop_asked,
            keep=False,
        )
        if self._stopping:  # an interrupted cycle is no cycle: no status, no heartbeat
            return
        self.alertmanager.wake()  # the states changed: posted off this thread
        seconds = time.monotonic() - started
        self.dog.kick()
        self._snapshot = metrics.Snapshot(
            metrics.line_snapshots(self.store.status(), self.settings),
            metrics.Health(seconds, utcnow(), self.store.pending_count()),
            tuple(self.settings.channels),
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
        """ "12 lines, 2 low, next check 14:05": what `systemctl status` shows; after a
        rejected reload, why, first (until a reload is applied)."""
        if self._unusable is not None:
            return f"database unusable: {self._unusable}"
        low = sum(1 for line in self._snapshot.lines if line.state in ("warning", "critical"))
        runs = [job.next_run for job in self.scheduler.jobs if job.next_run]
        text = f"{len(self.settings.lines)} lines, {low} low"
        text += f", next check {min(runs):%H:%M}" if runs else ""
        if self._rejected is not None:
            text = f"reload rejected: {self._rejected}; running the previous config: {text}"
        return text

    def _prune(self) -> None:
        """Once a day, roll readings past `keep_readings` up into daily rows."""
        now = utcnow()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        rolled = self.store.prune(now - self.settings.monitor.keep_readings)
        if rolled:
            log.info("old readings rolled up per day", readings=rolled, routine=True)

    def _send_now(self, event: Event) -> list[str]:
        return send_now(self.notifier, event)

    def _deliver(self, at_once: bool = False) -> None:
        """Wake the channels' workers: the loop never waits for a channel (`at_once`: for
        `run --once`, groups go without waiting). On the store in memory (no file for a
        second connection) the loop sends itself, as it must."""
        if self._unusable is not None:
            deliver_due(self.store, self.notifier, tick=self.dog.kick)
            self.dog.kick()
            self._delivered(self.store.pending_count())
            return
        if not self._gone_checked:  # once per config: channels change only on reload
            drop_gone(self.store, self.settings)
            self._gone_checked = True
        self.dispatcher.wake(at_once)

    def _delivered(self, pending: int) -> None:
        """After sends (on the loop, or a channel's worker), the metrics' pending count is
        read anew, not left at what was pending before them. The snapshot is immutable and
        replaced whole, so a scrape on another thread sees one or the other."""
        self._snapshot = self._snapshot.with_pending(pending)

    def _flush(self) -> None:
        """`run --once`: what is due goes out now, groups without waiting, before exit."""
        if self._unusable is not None:
            self._deliver()
            return
        self._deliver(at_once=True)
        self.dispatcher.flush()

    def _sleep_seconds(self) -> float:
        waits = [MAX_SLEEP]
        idle = self.scheduler.idle_seconds
        if idle is not None:
            waits.append(max(idle, 0.0))
        next_delivery = self.store.next_delivery_at() if self._unusable is not None else None
        if next_delivery is not None:  # the loop sends itself (see _deliver)
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

    @property
    def snapshot(self) -> metrics.Snapshot:
        """What the metrics endpoint serves now."""
        return self._snapshot

    def pending_alerts(self) -> int:
        """The outbox's pending count as it is now, read on a connection of the caller's
        own (the metrics endpoint's thread; WAL: it never waits for a writer), as delivery
        threads change it between the loop's passes. DatabaseUnusable while the daemon
        runs on its store in memory (the endpoint then shows the loop's last figure)."""
        if self._unusable is not None:
            raise DatabaseUnusable(self._unusable)
        view = View.open_existing(self.database)
        if view is None:
            raise DatabaseUnusable(f"{self.database} is gone")
        try:
            return view.pending_count()
        finally:
            view.close()

    def _start_metrics(self) -> None:
        address = self.settings.monitor.metrics
        if address is None:
            return
        try:
            self._metrics = metrics.start(
                address, lambda: self._snapshot, pending=self.pending_alerts
            )
        except MonitorError as exc:
            log.error("metrics endpoint not started", error=str(exc))
            return
        log.info("metrics endpoint listening", address=address)

    def _start_http(self) -> None:
        """The HTTP server ([http] listen), on its own threads; a failure to bind is logged
        and the daemon runs on without it (the checks matter more)."""
        if self.settings.http.listen is None:
            return
        try:
            self._http = HttpService.start(self.settings, self.database, self._check_soon)
        except MonitorError as exc:
            log.error("http server not started", error=str(exc))
            return
        log.info("http server listening", address=self.settings.http.listen)

    def _check_soon(self, line: str) -> None:
        """A provider's webhook said the line changed (the server's thread): check it now."""
        self._due.add(line)
        self._waker.wake()

    def _stop_http(self) -> None:
        if self._http is not None:
            if not self._http.stop():
                log.warning("http server did not stop in time")
            self._http = None

    def reload(self) -> None:
        """Re-read the config; an invalid one is logged at err and rejected, the old one
        runs on. The verdict goes to `STATUS=` and to every `esim-monitor reload` waiting."""
        log.info("reloading config")
        self.sd.reloading()
        verdict = control.Verdict(False, "reload failed", EXIT_FAILURE)
        try:
            self._apply(self._reload())
        except MonitorError as exc:
            log.error("new config rejected, keeping the running one", problems=str(exc))
            verdict = control.Verdict(False, f"new config rejected: {exc}", exc.exit_code)
            self._rejected = _short_reason(exc)
        except Exception as exc:  # whatever failed, the running config goes on
            log.exception("reload failed, keeping the running config")
            verdict = control.Verdict(False, f"reload failed: {_where(exc)}", EXIT_FAILURE)
            self._rejected = f"reload failed ({_where(exc)})"
        else:
            self._rejected = None
            verdict = control.Verdict(
                True,
                f"config reloaded: {len(self.settings.lines)} lines, "
                f"{len(self.settings.channels)} channels",
            )
        finally:
            self.sd.ready(status=self._status_line())
            if self._control is not None:
                self._control.answer(_scrubbed(verdict))

    def _apply(self, settings: Settings) -> None:
        """A new database moves the lock with it: taken on the new one first, so a
        refusal (another daemon there) leaves the running config as it was."""
        path = settings.database_path()
        moved = path != self.database
        if moved:
            lock = DatabaseLock(path)
            try:
                store = Store.open(path, verify=True)
                identity = _identity(path)
            except BaseException:
                lock.release()
                raise
            self.store.close()
            self.lock.release()
            self.store, self.lock, self.database, self._identity = store, lock, path, identity
            self._unusable = self._probe = None
        old_checker = self.checker
        previous = self._timings()
        metrics_changed = settings.monitor.metrics != self.settings.monitor.metrics
        http_changed = settings.http != self.settings.http or moved
        self.settings = settings
        if self._unusable is not None:
            self.checker = self._checker(_without_recharge(settings), TokenCache(None))
        else:
            self.checker = self._checker(settings)
        self.notifier = Notifier(settings)
        self.alertmanager = self.alertmanager.reload(
            settings, alertmanager.StoredStates(self.database)
        )
        if self._unusable is None:
            old_dispatcher = self.dispatcher
            self.dispatcher = Dispatcher(settings, self.database, self._delivered, old_dispatcher)
            old_dispatcher.close(wait=0.0)
        self._gone_checked = False
        old_checker.close()
        self._due.intersection_update(settings.lines)
        self._schedule(previous)
        if metrics_changed:
            if self._metrics is not None:
                self._metrics.stop()
                self._metrics = None
            self._start_metrics()
        if http_changed:
            self._stop_http()
            self._start_http()
        elif self._http is not None:
            self._http.relay.settings = settings  # the lines' senders, patterns, labels
            self._http.hooks.settings = settings  # the accounts' webhook secrets, the ICCIDs
            self._http.dashboard.settings = settings  # the lines, the login
        log.info("config reloaded", lines=len(settings.lines), channels=len(settings.channels))

    def close(self) -> None:
        """Stop the channels' workers first (no message begun after this), waiting up to
        STOP_WAIT for the ones under way; `abandoned` then says whether one still is."""
        self.abandoned = not self.dispatcher.close(wait=STOP_WAIT)
        self._waker.close()
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._metrics is not None:
            self._metrics.stop()
            self._metrics = None
        self._stop_http()
        self.alertmanager.close()
        self.checker.close(wait=STOP_WAIT)
        self.store.close()
        self.lock.release()
        self.sd.close()


def end_programs() -> None:
    """After the daemon's stop, kill the programs still running: those of checks under way
    (a `command` line's, mmcli) and a top-up command the stop's wait did not see end. Each
    runs in a session of its own (monitor.children), out of reach of the SIGTERM or Ctrl-C
    that stopped the daemon, and would run on past its timeout, reparented to init, with
    no one left to kill it. Process-wide, so `run` calls it, not `Daemon.close`: a daemon
    inside a test's process is not that process's only user of programs."""
    ended = children.stop_all()
    if ended:
        log.info("programs still running at the stop were killed", programs=ended)


STATUS_REASON = 200
"""Characters of a rejection's reason in `STATUS=`: the journal has the whole of it."""


def _short_reason(exc: MonitorError) -> str:
    """One line for `STATUS=`: the first problem, and how many more."""
    if isinstance(exc, ConfigError) and exc.problems:
        more = len(exc.problems) - 1
        text = str(exc.problems[0]) + (f" (and {more} more)" if more else "")
    else:
        text = str(exc).split("\n", 1)[0]
    return text if len(text) <= STATUS_REASON else text[: STATUS_REASON - 1] + "…"


def _scrubbed(verdict: control.Verdict) -> control.Verdict:
    """The verdict as the log would show it: no configured secret in any form (it is
    printed by `esim-monitor reload`, which logging's scrubber never sees)."""
    clean = redact.scrub_log_event(None, "", {"message": verdict.message})["message"]
    return control.Verdict(verdict.ok, clean, verdict.exit_code)


def _read_only(path: Path, st: os.stat_result) -> bool:
    """Read-only for us: no write bit for its owner (even root's daemon honours that: a
    person made it so), no write access, or a file system mounted read-only."""
    if not st.st_mode & stat.S_IWUSR or not os.access(path, os.W_OK):
        return True
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _probe(path: Path) -> tuple[int, ...] | None:
    """What the file at the path is now; a change is worth another try at opening it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode)


def _without_recharge(settings: Settings) -> Settings:
    """The config without top-ups: while the ledger is out of reach, its caps are too."""
    lines = {k: line.model_copy(update={"recharge": None}) for k, line in settings.lines.items()}
    return settings.model_copy(update={"lines": lines})
