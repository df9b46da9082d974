"""A program that never ends by itself: a shell script that starts a `sleep` of its own and
waits, so a test sees whether whoever started it stopped the script and its child too.
It writes both PIDs to a file once running (renamed into place: never read half-written)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def gone(pid: int) -> bool:
    """Dead: no such process, or a zombie waiting for whoever reaps it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


class SlowProgram:
    def __init__(self, folder: Path, name: str = "slow.sh") -> None:
        self.path = folder / name
        self._pids = folder / f"{name}.pids"
        self.path.write_text(
            f'#!/bin/sh\nsleep 300 &\necho "$$ $!" > {self._pids}.tmp\n'
            f"mv {self._pids}.tmp {self._pids}\nwait\n"
        )
        self.path.chmod(0o755)
        self.pids: list[int] = []

    def started(self, proc: subprocess.Popen[str], timeout: float = 60) -> list[int]:
        """Wait until it runs (or `proc`, which starts it, has ended); its PIDs, alive."""
        deadline = time.monotonic() + timeout
        while not self._pids.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self._pids.exists(), "the program never started"
        self.pids = [int(pid) for pid in self._pids.read_text().split()]
        assert not any(gone(pid) for pid in self.pids)
        return self.pids

    def left(self, timeout: float = 10) -> list[int]:
        """The PIDs still alive once they had `timeout` to end (a SIGKILL sent is not yet a
        process ended)."""
        deadline = time.monotonic() + timeout
        while not all(gone(pid) for pid in self.pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        return [pid for pid in self.pids if not gone(pid)]

    def kill(self) -> None:
        """Leave nothing behind, whatever the test's outcome."""
        for pid in self.pids:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
