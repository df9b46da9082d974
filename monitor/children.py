"""The programs this process started: a `command` line's program, a top-up command, mmcli.

Each runs in a session of its own, so that a timeout can kill everything it started; a
terminal's Ctrl-C therefore reaches none of them (they are not in the foreground process
group). `stop_all` kills every group still running, so an interrupted `run --once` leaves
no program behind, reparented to init and running past its timeout. Stdlib only: the CLI
calls it while handling an interrupt.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from typing import Any

_lock = threading.Lock()
_groups: set[int] = set()
_stopping = False


def start(argv: list[str], **popen: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen` in a new session, its process group kept until `release`. One
    started after `stop_all` is killed at once (its caller sees it killed)."""
    proc: subprocess.Popen[bytes] = subprocess.Popen(argv, start_new_session=True, **popen)
    with _lock:
        _groups.add(proc.pid)
        if _stopping:
            _kill(proc.pid)
    return proc


def release(proc: subprocess.Popen[bytes]) -> None:
    """The program is done with (killed or exited): forget its group. Call it before the
    process is reaped where the caller can, so its group id cannot have been reused."""
    with _lock:
        _groups.discard(proc.pid)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the program's whole group (what it started too) and forget it. Call it before
    the process is reaped, so its group id cannot have been reused."""
    _kill(proc.pid)
    release(proc)


def stop_all() -> int:
    """Kill every group still running, and any started from now on; how many there were."""
    global _stopping
    with _lock:
        _stopping = True
        groups = sorted(_groups)
        for pgid in groups:  # under the lock: none of them is reaped meanwhile
            _kill(pgid)
    return len(groups)


def running() -> list[int]:
    """The process groups started and not yet released (for tests and logs)."""
    with _lock:
        return sorted(_groups)


def _kill(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
