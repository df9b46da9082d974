"""Lock files beside the database: one process at a time across the daemon and the CLI.

An flock (mode 0600) is released by the kernel when its holder dies, so a crash or
`kill -9` never leaves a stale lock to clean up. Used for the recharge ledger
(`<database>.recharge.lock`) and a modem's USSD session (`<database>.modem-KEY.lock`);
the daemon's own lock (`<database>.lock`, with its PID inside) is `monitor.daemon`'s.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path, wait: float, poll: float = 0.1) -> Iterator[bool]:
    """Hold an exclusive flock on `path` (made 0600 if missing): yields True once held,
    or False when another process still holds it after `wait` seconds."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(poll)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
