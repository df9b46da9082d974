"""Benchmark delivery off the loop and grouping (issue 14, "Figures").

    .venv/bin/python bench/delivery.py burst [--lines 500 --channels 3 --latency 2]
    .venv/bin/python bench/delivery.py outage [--rows 1000 --outage 20 --scale 30]

`burst`: a real daemon (in this process, on a thread) checks N demo lines every
`--interval` seconds; they read ok on the first pass and all go critical on the second, for
`--channels` json:// channels whose receiver (bench/slow_sink.py, a child process) takes
`--latency` seconds per message. Prints the checks' schedule lag of that pass and the next
(per line: time between two checks minus the interval, the worst line), the deliveries
(messages per channel, events they list, rows sent and their attempts) and RSS (current,
sampled every 0.2 s) above what it was idle, after the first pass.

`outage`: `--rows` pending outbox rows (half for a channel with `group = false`, half for
a grouped one, events of mixed types) meet a receiver that answers 503 for `--outage`
seconds, then comes back. The retry backoff is shortened by `--scale` (30: the first retry
after 1 s instead of 30 s, at most 60 s instead of 30 min; a 20 s outage then stands for 10
minutes), the one change to the daemon's code, made here in-process. Prints how long after
the receiver's return everything was delivered, against the retry interval in effect at the
return, whether each channel's messages came in order, and whether anything came twice.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import benchlib

from monitor import logs, notify
from monitor.cli import load_settings
from monitor.daemon import Daemon
from monitor.dispatch import Dispatcher
from monitor.model import Event, utcnow
from monitor.store import OutboxEntry, Store

HERE = Path(__file__).resolve().parent
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
LINE = re.compile(r"l\d{6}")
"""A line id (benchlib.line_ids) in a message: each event of `outage` is a line of its own."""


@contextmanager
def slow_sink(latency: float, down: Path | None = None) -> Iterator[dict[str, Any]]:
    """bench/slow_sink.py as a child (its threads take nothing from this process's GIL or
    RSS); yields {"port": ...}, and after the block also what it received."""
    command = [sys.executable, str(HERE / "slow_sink.py"), f"--latency={latency}"]
    if down is not None:
        command.append(f"--down={down}")
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    handle: dict[str, Any] = json.loads(child.stdout.readline())
    try:
        yield handle
    finally:
        out, _ = child.communicate(input="", timeout=60)
        handle.update(json.loads(out.strip().splitlines()[-1]))


def rss_mb() -> float:
    """This process's resident set now (not its peak)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 2**20


class Sampler:
    """The highest RSS seen from `start` on, every 0.2 s."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, rss_mb())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, rss_mb())


def _until(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what} after {seconds:g} s")
        time.sleep(0.2)


def _rows(path: Path) -> list[Any]:
    store = Store.open(path)
    try:
        return [r for r in store.events(LONG_AGO) if r.channel is not None]
    finally:
        store.close()


def _checks(path: Path, lines: list[str]) -> dict[str, list[datetime]]:
    """Each line's check times, in order."""
    store = Store.open(path)
    try:
        return {line: [h.checked_at for h in store.history(line, LONG_AGO)] for line in lines}
    finally:
        store.close()


def burst(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    lines = benchlib.line_ids(args.lines)
    with slow_sink(args.latency) as sink:
        channels = [f"c{i}" for i in range(1, args.channels + 1)]
        text = [
            "[monitor]",
            f'database = "{folder / "history.db"}"',
            f'interval = "{args.interval}s"',
            "[defaults.thresholds]",
            "balance_critical = 5",
        ]
        for name in channels:
            text += [f"[channels.{name}]", f'url = "json://127.0.0.1:{sink["port"]}/{name}"']
            text += [f"group = {'true' if args.group else 'false'}"]
        for line in lines:
            text += [f"[lines.{line}]", 'adapter = "demo"', "balance = 6", "drain = 1"]
        config = folder / "config.toml"
        config.write_text("\n".join(text) + "\n")
        settings = load_settings(config)
        database = settings.database_path()
        daemon = Daemon(settings, reload=lambda: settings)
        loop = threading.Thread(target=daemon.run, daemon=True)
        loop.start()
        _until(lambda: all(len(v) >= 1 for v in _checks(database, lines).values()), 120, "pass 1")
        idle = rss_mb()
        sampler = Sampler()
        sampler.start()
        rows = len(lines) * len(channels)
        started = time.monotonic()
        _until(
            lambda: sum(r.status == "sent" for r in _rows(database)) == rows,
            args.timeout,
            "every delivery",
        )
        delivered_in = time.monotonic() - started
        _until(lambda: all(len(v) >= 4 for v in _checks(database, lines).values()), 120, "pass 4")
        peak = sampler.stop()
        daemon.stop()
        loop.join(60)
        checks = _checks(database, lines)
        outbox = _rows(database)
    interval = timedelta(seconds=args.interval)

    def lag(k: int) -> float:
        """The worst line's lateness of pass k (1-based) against its schedule."""
        return max((v[k - 1] - v[k - 2] - interval).total_seconds() for v in checks.values())

    per_channel: dict[str, list[str]] = {}
    for message in sink["received"]:
        per_channel.setdefault(message["path"].strip("/"), []).append(message["title"])
    listed = {name: sum(_count(title) for title in titles) for name, titles in per_channel.items()}
    return {
        "scenario": f"{args.lines} events in one pass, {args.channels} channels, receiver "
        f"{args.latency:g} s a message, interval {args.interval} s, group={args.group}",
        "lag_event_pass_s": round(lag(2), 3),
        "lag_next_pass_s": round(lag(3), 3),
        "lag_pass_after_s": round(lag(4), 3),
        "messages_per_channel": {k: len(v) for k, v in sorted(per_channel.items())},
        "titles": sorted({t for v in per_channel.values() for t in v})[:3],
        "events_listed_per_channel": dict(sorted(listed.items())),
        "rows_sent": sum(r.status == "sent" for r in outbox),
        "rows_attempts": sorted({r.attempts for r in outbox}),
        "all_delivered_after_s": round(delivered_in, 1),
        "rss_idle_mb": round(idle, 1),
        "rss_peak_above_idle_mb": round(peak - idle, 1),
    }


def _count(title: str) -> int:
    match = re.search(r"(\d+) lines", title)
    return int(match[1]) if match else 1


def outage(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    notify.FIRST_RETRY = timedelta(seconds=30 / args.scale)
    notify.MAX_RETRY = timedelta(seconds=1800 / args.scale)
    down = folder / "down"
    down.touch()
    half = args.rows // 2
    lines = benchlib.line_ids(half)
    with slow_sink(0.0, down) as sink:
        url = f"json://127.0.0.1:{sink['port']}"
        text = [
            "[monitor]",
            f'database = "{folder / "history.db"}"',
            "[channels.each]",
            f'url = "{url}/each"',
            "group = false",
            "[channels.grouped]",
            f'url = "{url}/grouped"',
            'group_wait = "0s"',
        ]
        config = folder / "config.toml"
        config.write_text("\n".join(text) + "\n")
        settings = load_settings(config)
        database = settings.database_path()
        store = Store.open(database)
        now = utcnow()
        kinds = ("critical", "warning", "recovery")
        events = [
            Event(kinds[i % 3], line, now, {"metric": "balance", "value": f"{i} USD"})
            for i, line in enumerate(lines)
        ]
        store.add_events([OutboxEntry(e, "m", ("each", "grouped")) for e in events], now)
        store.close()
        dispatcher = Dispatcher(settings, database)
        time.sleep(args.outage)
        rows = _rows(database)
        head = min((r for r in rows if r.channel == "each"), key=lambda r: r.id)
        attempts_before = head.attempts or 0
        interval = (notify.retry_at(attempts_before, now) - now).total_seconds()
        next_retry = head.next_attempt_at or now
        down.unlink()
        back = time.monotonic()
        retry_in = (next_retry - utcnow()).total_seconds()
        _until(lambda: all(r.status == "sent" for r in _rows(database)), args.timeout, "delivery")
        after = time.monotonic() - back
        dispatcher.close(wait=30)
        rows = _rows(database)
    each = [m for m in sink["received"] if m["path"] == "/each"]
    grouped = [m for m in sink["received"] if m["path"] == "/grouped"]
    order = [ln for m in each for ln in LINE.findall(m["title"])]
    listed = [ln for m in grouped for ln in LINE.findall(m["body"])]
    per_message = [LINE.findall(m["body"]) for m in grouped]
    firsts = [found[0] for found in per_message if found]
    return {
        "scenario": f"{args.rows} pending rows, receiver down {args.outage:g} s (stands for "
        f"{args.outage * args.scale / 60:g} min: backoff shortened {args.scale}x)",
        "failed_attempts_during_outage": attempts_before,
        "refused_posts": sink["refused"],
        "retry_interval_at_return_s": round(interval, 1),
        "next_retry_after_return_s": round(retry_in, 1),
        "all_delivered_after_return_s": round(after, 2),
        "rows_sent": sum(r.status == "sent" for r in rows),
        "each_messages": len(each),
        "each_in_order": order == sorted(order) and len(order) == half,
        "each_sent_twice": len(order) - len(set(order)),
        "grouped_messages": len(grouped),
        "grouped_titles": [m["title"] for m in grouped][:4],
        "grouped_events_counted": sum(_count(m["title"]) for m in grouped),
        "grouped_in_order": firsts == sorted(firsts)
        and all(found == sorted(found) for found in per_message),
        "grouped_listed_twice": len(listed) - len(set(listed)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="scenario", required=True)
    one = sub.add_parser("burst")
    one.add_argument("--lines", type=int, default=500)
    one.add_argument("--channels", type=int, default=3)
    one.add_argument("--latency", type=float, default=2.0)
    one.add_argument("--interval", type=int, default=10)
    one.add_argument("--group", type=lambda t: t == "true", default=True)
    one.add_argument("--timeout", type=float, default=600.0)
    two = sub.add_parser("outage")
    two.add_argument("--rows", type=int, default=1000)
    two.add_argument("--outage", type=float, default=20.0)
    two.add_argument("--scale", type=float, default=30.0)
    two.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    print(benchlib.machine(), "|", benchlib.code(), file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="esim-bench-") as name:
        folder = Path(name)
        with (folder / "daemon.log").open("w") as log_file:
            logs.setup("info", "json", stream=log_file)
            with benchlib.deadline(args.timeout + 120, "bench/delivery.py"):
                figures = burst(args, folder) if args.scenario == "burst" else outage(args, folder)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
