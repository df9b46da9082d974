"""Delivery off the checking loop: one worker thread per channel.

Apprise paces a reused plugin (about 5.5 s between two messages to one mail server, ntfy
or Pushover), so a channel with a dozen messages to send takes a minute. The loop only
wakes the workers (`Dispatcher.wake`); each sends its own channel's messages, strictly in
order, through `notify.deliver_channel`, on a Store connection of its own (a SQLite
connection belongs to one thread: see the store's concurrency contract). So no check, no
watchdog ping and no other channel waits for a slow one.

Nothing is lost to a worker: every row stays pending in the outbox until its send is
recorded, so a message cut off by a stop or a crash goes out again after the restart (at
least once, as before). A worker that fails unexpectedly logs at error and goes on; one
whose thread ended is started again at the next wake.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

from monitor.config import Settings
from monitor.links import alert_links
from monitor.model import utcnow
from monitor.notify import Notifier, deliver_channel, message_channels
from monitor.store import Store

log = structlog.get_logger("monitor.dispatch")

MAX_PAUSE = 60.0
"""Longest a worker sleeps without a wake: quiet hours that end are seen within it."""
MIN_PAUSE = 1.0
"""Shortest sleep between two passes nobody asked for (a wake ends any sleep at once)."""
ERROR_PAUSE = 5.0
"""After an unexpected failure, before the worker tries again."""
GRACE = 5.0
"""Beyond `notify_timeout`, how long `flush` waits for a worker that makes no progress."""


class ChannelWorker:
    """Sends one channel's messages on a thread of its own."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        database: Path,
        changed: threading.Condition,
        on_pass: Callable[[Store], None] | None = None,
        after: threading.Thread | None = None,
    ) -> None:
        """`on_pass`: called with the worker's store after a pass that sent or failed
        something; `after`: the previous config's worker for this channel, which
        this one waits for before its first pass, so two never send the same row at once."""
        self.name = name
        self.settings = settings
        self.database = database
        self._changed = changed
        self._on_pass = on_pass
        self._after = after
        self._cond = threading.Condition()
        self._woken = True  # a first pass at once
        self._closed = False
        self._asked = 0
        """Passes without waiting for groups asked for (`flush`), counted."""
        self._done = 0
        """Of those, how many a finished pass has answered."""
        self.moves = 0
        """How many things (a message, a pass) the worker has finished: `flush` watches
        it change, on its own clock (a counter: threads need not share one)."""
        self.thread = self._start()

    def _start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name=f"deliver-{self.name}", daemon=True)
        thread.start()
        return thread

    def wake(self, flush: bool = False) -> int:
        """Ask for a pass now (`flush`: one that sends groups without waiting); returns
        the flush count that `flushed` compares with. A worker whose thread ended (it
        must not, but a channel must never go silent) is started again."""
        with self._cond:
            if not self._closed and not self.thread.is_alive():
                log.error("delivery worker had ended; starting it again", channel=self.name)
                self._after = None
                self.thread = self._start()
            self._woken = True
            if flush:
                self._asked += 1
            self._cond.notify_all()
            return self._asked

    def flushed(self, asked: int) -> bool:
        with self._cond:
            return self._done >= asked

    def close(self) -> None:
        """No message is begun after this; the one under way ends by itself."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _closing(self) -> bool:
        return self._closed

    def _moved(self) -> None:
        self.moves += 1
        with self._changed:
            self._changed.notify_all()

    def _run(self) -> None:
        if self._after is not None:
            self._after.join()
        notifier = Notifier(self.settings)
        store: Store | None = None
        pause = 0.0
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._woken or self._closed, timeout=pause)
                    if self._closed:
                        return
                    self._woken = False
                    asked = self._asked
                try:
                    if store is None:
                        store = Store.open(self.database)
                        notifier.links = alert_links(store, self.settings)
                    done = deliver_channel(
                        store,
                        notifier,
                        self.name,
                        utcnow(),
                        wait=asked == self._done,
                        tick=self._moved,
                        stop=self._closing,
                    )
                    if (done.sent or done.failed) and self._on_pass is not None:
                        self._on_pass(store)
                    pause = MAX_PAUSE
                    if done.next_at is not None:
                        pause = (done.next_at - utcnow()).total_seconds()
                    pause = min(max(pause, MIN_PAUSE), MAX_PAUSE)
                except Exception:  # never silent, never the end of the channel
                    log.exception(
                        "delivery failed unexpectedly; the worker goes on", channel=self.name
                    )
                    if store is not None:
                        _close(store)
                    store = None
                    pause = ERROR_PAUSE
                with self._cond:
                    self._done = asked
                self._moved()
        finally:
            if store is not None:
                _close(store)


def _close(store: Store) -> None:
    try:
        store.close()
    except Exception:  # what it still owed is retried from the outbox: at least once
        log.exception("a delivery worker's database connection did not close cleanly")


class Dispatcher:
    """The channels' workers of one configuration; rebuilt on reload."""

    def __init__(
        self,
        settings: Settings,
        database: Path,
        on_pass: Callable[[int], None] | None = None,
        previous: Dispatcher | None = None,
    ) -> None:
        """`on_pass`: called with the outbox's pending count after a worker's pass that
        sent or failed something; `previous`: the workers this config replaces."""
        self.settings = settings
        self._on_pass = on_pass
        self._counting = threading.Lock()
        self._changed = threading.Condition()
        before: Mapping[str, ChannelWorker] = previous.workers if previous is not None else {}
        self.workers = {
            name: ChannelWorker(
                name,
                settings,
                database,
                self._changed,
                self._passed,
                before[name].thread if name in before else None,
            )
            for name in message_channels(settings)
        }

    def _passed(self, store: Store) -> None:
        """Count and tell under one lock: the last count told is never an older one."""
        if self._on_pass is None:
            return
        with self._counting:
            self._on_pass(store.pending_count())

    def wake(self, at_once: bool = False) -> None:
        """Something may be due: every worker takes a look (it costs one query);
        `at_once`: groups go without waiting for `group_wait` (`run --once`)."""
        for worker in self.workers.values():
            worker.wake(flush=at_once)

    def flush(self) -> bool:
        """Every channel sends what is due now, groups without waiting; returns once each
        has. Each message is bounded by `notify_timeout`: a worker that makes no progress
        for that long (plus GRACE) is not waited for. False when one was given up on."""
        asked = {name: worker.wake(flush=True) for name, worker in self.workers.items()}
        bound = self.settings.monitor.notify_timeout.total_seconds() + GRACE
        waiting = dict(self.workers)
        seen = {name: (worker.moves, time.monotonic()) for name, worker in waiting.items()}
        complete = True
        with self._changed:
            while waiting:
                for name, worker in list(waiting.items()):
                    moves, since = seen[name]
                    if worker.moves != moves:
                        seen[name] = (worker.moves, time.monotonic())
                    if worker.flushed(asked[name]):
                        del waiting[name]
                    elif worker.moves == moves and time.monotonic() - since > bound:
                        log.error(
                            "a channel outlived notify_timeout; not waiting for it",
                            channel=name,
                            seconds=bound,
                        )
                        del waiting[name]
                        complete = False
                if waiting:
                    self._changed.wait(timeout=0.5)
        return complete

    def close(self, wait: float) -> bool:
        """Stop every worker; wait up to `wait` seconds for the messages under way. One
        still under way then is not waited for: its rows stay pending and go out again
        after a restart. False when one was."""
        for worker in self.workers.values():
            worker.close()
        deadline = time.monotonic() + wait
        ended = True
        for worker in self.workers.values():
            worker.thread.join(max(deadline - time.monotonic(), 0.0))
            if worker.thread.is_alive():
                ended = False
                log.warning("stopping with a message under way", channel=worker.name)
        return ended
