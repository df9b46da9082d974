"""Waiting for a daemon subprocess's log lines, with a deadline (never a hung suite)."""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any


def wait_for_log(proc: Any, event: str, timeout: float = 60) -> None:
    """Read a subprocess's JSON log lines (stderr) until `event`; fail after `timeout`
    seconds rather than hang the suite."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    if not hasattr(proc, "_log_pump"):
        proc._log_pump = lines
        threading.Thread(target=pump, daemon=True).start()
    lines = proc._log_pump
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            raise AssertionError(f"no {event!r} from the daemon in {timeout} s") from None
        if line is None:
            raise AssertionError(f"the daemon ended before {event!r}")
        try:
            if json.loads(line).get("event") == event:
                return
        except ValueError:
            continue
