"""The running daemon's control socket: `esim-monitor reload` asks it to reload and hears
its verdict, so `systemctl reload` fails when the new config is rejected.

SIGHUP alone cannot answer: the sender learns nothing, and validating in `ExecReload=`
is not the daemon's verdict (systemd 252 gives that process no credentials). So the
daemon (`run`, not `run --once`) listens on an abstract AF_UNIX stream socket named after
its PID, `@esim-monitor/<pid>/control`. A connection is a reload request (nothing is read
from it); the next reload, which starts after it was accepted, writes its verdict as one
JSON line and closes it. Both sides check the other with SO_PEERCRED: the daemon answers
only its own user or root, the requester believes only the PID it asked. Dependency-free
and quick to import: the CLI command loads neither the config nor Apprise.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from monitor.errors import EXIT_FAILURE, EXIT_OK, DaemonUnreachable

log = structlog.get_logger("monitor.control")

MAX_VERDICT = 64 * 1024
ANSWER_TIMEOUT = 1.0
"""Longest the daemon's loop waits to hand one requester its verdict."""
_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(frozen=True)
class Verdict:
    """What a reload came to: applied (`exit_code` 0), or rejected with the exit code `run`
    would have given that config (78 invalid, 65 unusable database, 1 otherwise)."""

    ok: bool
    message: str
    exit_code: int = EXIT_OK

    def encode(self) -> bytes:
        fields = {"ok": self.ok, "message": self.message, "exit_code": self.exit_code}
        return json.dumps(fields).encode() + b"\n"

    @classmethod
    def decode(cls, data: bytes) -> Verdict:
        try:
            fields = json.loads(data)
            return cls(bool(fields["ok"]), str(fields["message"]), int(fields["exit_code"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise DaemonUnreachable(f"the daemon's answer was not a verdict ({exc})") from None


def address(pid: int) -> bytes:
    return f"\0esim-monitor/{pid}/control".encode()


def lock_path(database: Path) -> Path:
    """`<database>.lock`: held by the daemon for its life, its PID inside."""
    return database.with_name(database.name + ".lock")


def holder(database: Path) -> int:
    """The PID written in the database's lock file (the daemon's, if one runs)."""
    path = lock_path(database)
    try:
        first = path.read_text(encoding="ascii", errors="replace").split("\n", 1)[0]
    except FileNotFoundError:
        raise DaemonUnreachable(f"no esim-monitor daemon has run on {database}") from None
    except OSError as exc:
        raise DaemonUnreachable(f"cannot read {path}: {exc.strerror}") from None
    if not first.strip().isdigit():
        raise DaemonUnreachable(f"{path} names no PID")
    return int(first)


def _peer(sock: socket.socket) -> tuple[int, int]:
    pid, uid, _ = _CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))
    return pid, uid


def request_reload(pid: int, timeout: float) -> Verdict:
    """Ask the daemon of `pid` to reload; its verdict, within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(max(timeout, 0.1))
        try:
            sock.connect(address(pid))
        except (ConnectionRefusedError, FileNotFoundError):
            raise DaemonUnreachable(
                f"no esim-monitor daemon with PID {pid} listens for reloads (not running, "
                "or a `run --once`)"
            ) from None
        except OSError as exc:
            raise DaemonUnreachable(f"cannot reach the daemon (PID {pid}): {exc}") from None
        peer, _ = _peer(sock)
        if peer != pid:
            raise DaemonUnreachable(
                f"the control socket of PID {pid} belongs to PID {peer}: not that daemon"
            )
        data = b""
        while not data.endswith(b"\n") and len(data) < MAX_VERDICT:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                chunk = sock.recv(MAX_VERDICT - len(data))
            except TimeoutError:
                raise DaemonUnreachable(
                    f"no verdict from the daemon (PID {pid}) within {timeout:g} s; it reloads "
                    "when its current cycle ends"
                ) from None
            if not chunk:
                break
            data += chunk
    if not data:
        raise DaemonUnreachable(f"the daemon (PID {pid}) closed the request without a verdict")
    return Verdict.decode(data)


class ControlSocket:
    """The daemon's side: a listening socket whose pending connections are reload requests.

    Never raises into the loop: a socket that cannot be had is logged, and reloads by
    SIGHUP go on working without it."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._waiting: list[socket.socket] = []

    @classmethod
    def open(cls, pid: int | None = None) -> ControlSocket | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(address(os.getpid() if pid is None else pid))
            sock.listen(16)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            log.warning(
                "no control socket: `esim-monitor reload` cannot reach this daemon", error=str(exc)
            )
            return None
        return cls(sock)

    def fileno(self) -> int:
        return self._sock.fileno()

    def accept(self) -> int:
        """Take every pending request; how many were taken (each waits for a verdict)."""
        taken = 0
        while True:
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return taken
            except OSError as exc:
                log.warning("control socket accept failed", error=str(exc))
                return taken
            _, uid = _peer(conn)
            if uid not in (os.getuid(), 0):
                log.warning("reload request refused: another user", uid=uid)
                conn.close()
                continue
            self._waiting.append(conn)
            taken += 1

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def answer(self, verdict: Verdict) -> None:
        """Give every waiting requester the verdict and let it go."""
        waiting, self._waiting = self._waiting, []
        for conn in waiting:
            with contextlib.suppress(OSError), conn:
                conn.settimeout(ANSWER_TIMEOUT)
                conn.sendall(verdict.encode())

    def close(self) -> None:
        if self._waiting:
            self.answer(Verdict(False, "the daemon stopped before reloading", EXIT_FAILURE))
        self._sock.close()
