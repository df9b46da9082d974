"""systemd's notify protocol and watchdog, without a dependency.

A notification is one datagram of `KEY=value` lines to the AF_UNIX socket named in
`$NOTIFY_SOCKET` (a leading `@` names the abstract namespace). Outside systemd the variable
is unset and every call does nothing, so the daemon needs no "am I under systemd" branches.
Sending never raises: a lost notification must not take the loop down with it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"
SEND_TIMEOUT = 2.0


def _address(name: str | None) -> str | None:
    """The socket address for `name`, or None when it is unset or not one systemd uses."""
    if not name or len(name) < 2 or name[0] not in "@/":
        return None
    return "\0" + name[1:] if name[0] == "@" else name


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, the clock systemd compares `MONOTONIC_USEC=` with."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """Sends notifications to the service manager; a no-op without `$NOTIFY_SOCKET`.

    The environment is read once, at construction: the daemon builds one Notifier at start
    and keeps it across reloads.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.address = _address(env.get(NOTIFY_SOCKET))
        self._socket: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send `fields` (`KEY=value` each) as one datagram; True when it was sent."""
        if self.address is None:
            return False
        message = "\n".join(fields).encode("utf-8")
        try:
            if self._socket is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # A service manager too busy to read must not stall the loop for long.
                sock.settimeout(SEND_TIMEOUT)
                self._socket = sock
            self._socket.sendto(message, self.address)
        except OSError:
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Startup (or a reload) is done; with `status`, the summary goes in the same datagram."""
        return self.notify("READY=1", *_status_field(status))

    def reloading(self) -> bool:
        """A reload begins; `ready()` ends it. systemd 253+ wants MONOTONIC_USEC beside it."""
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        """The one-line summary `systemctl status` shows."""
        return self.notify(*_status_field(text))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _status_field(text: str | None) -> list[str]:
    if text is None:
        return []
    return ["STATUS=" + " ".join(text.split())]


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between watchdog pings (half of `$WATCHDOG_USEC`), or None without a watchdog.

    `$WATCHDOG_PID`, when set, must be this process: a child that inherited the variables
    must not believe it is the one being watched.
    """
    env = os.environ if env is None else env
    try:
        usec = int(env.get(WATCHDOG_USEC, ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get(WATCHDOG_PID)
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return usec / 2 / 1_000_000


class Watchdog:
    """Pings at most once per interval, from whichever loop calls `kick()`.

    The main loop calls `kick()` after every wait and between the stages of a pass, and
    bounds its waits by `due_in()`. Pinging from the loop itself, never from a side thread,
    is what lets systemd restart a loop that hangs.
    """

    def __init__(
        self,
        notifier: Notifier,
        interval: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notifier = notifier
        self.interval = interval if notifier.enabled else None
        self._clock = clock
        self._next: float | None = None
        self.halted = False

    def halt(self) -> None:
        """Stop pinging (a loop that keeps failing): systemd restarts the service."""
        self.halted = True

    def resume(self) -> None:
        self.halted = False

    def kick(self) -> bool:
        """Ping if one is due; True when a ping was sent."""
        if self.interval is None or self.halted:
            return False
        now = self._clock()
        if self._next is not None and now < self._next:
            return False
        self._next = now + self.interval
        return self.notifier.watchdog()

    def due_in(self) -> float | None:
        """Seconds until the next ping is due (0 when overdue); None without a watchdog
        or while halted (nothing to wait for: the loop keeps its own pace)."""
        if self.interval is None or self.halted:
            return None
        if self._next is None:
            return 0.0
        return max(self._next - self._clock(), 0.0)
