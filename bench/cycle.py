"""Benchmark one check cycle against a loopback fake of the 1NCE API (issue 7, item 6).

    .venv/bin/python bench/cycle.py --lines 1000 --latency 0.1 [--workers N]

Starts the fake (bench/fake_onence.py, a child process on 127.0.0.1 answering every request
after `--latency` seconds, all concurrently), writes a config of N lines on one 1NCE account
with the database in a temporary folder, opens the store and runs one cycle as the daemon
does (`Checker(settings).run(store, lines)`, logging set up as `esim-monitor run` sets it,
into a file), then prints lines per second, cycle seconds and peak RSS.

`--history K` first seeds K readings per line (30 minutes apart), so the cycle also pays
for what a daemon's later cycles pay: the 30-day series per line and its forecast.

It stops by itself: lines and latency are bounded, the fake serves a bounded number of
requests and exits when this process ends, and a watchdog ends the run after `--timeout`.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib

from monitor import logs
from monitor.cli import load_settings
from monitor.cycle import Checker
from monitor.model import utcnow
from monitor.store import Store

MAX_LINES = 100_000
TARGETS = {
    # lines: (cycle seconds, peak RSS MB), at 100 ms latency on a 2-core machine
    1_000: (3.0, None),
    10_000: (30.0, 150.0),
}


def bounded(low: float, high: float, kind: type = float) -> Any:
    def parse(text: str) -> Any:
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}")
        return value

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=bounded(1, MAX_LINES, int), default=1000)
    parser.add_argument(
        "--latency", type=bounded(0, 5), default=0.1, help="seconds per request (0.1)"
    )
    parser.add_argument(
        "--workers",
        type=bounded(1, 1024, int),
        help="[monitor] workers (default: the config's default, 64)",
    )
    parser.add_argument(
        "--account-concurrency",
        type=bounded(1, 1024, int),
        help="[monitor] account_concurrency, where the code has it (default: its default)",
    )
    parser.add_argument("--cycles", type=bounded(1, 5, int), default=1, help="cycles in a row (1)")
    parser.add_argument(
        "--history",
        type=bounded(0, 2000, int),
        default=0,
        help="readings per line seeded before the cycle (0: a fresh database)",
    )
    parser.add_argument("--timeout", type=bounded(10, 3600), default=600.0, help="seconds")
    parser.add_argument("--log-level", choices=logs.LEVELS, default="info")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the cycle (main thread)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Set up, run the cycles, and return the figures."""
    code = benchlib.code()
    calibration = [benchlib.calibrate()]
    lines = benchlib.line_ids(args.lines)
    requests = args.lines * args.cycles + 100
    log_path = folder / "cycle.log"
    with (
        benchlib.fake_onence_server(args.latency, requests, args.timeout + 30) as fake,
        log_path.open("w", encoding="utf-8") as log_file,
    ):
        config = benchlib.write_config(
            folder / "config.toml",
            lines=lines,
            base_url=fake.base_url,
            database=folder / "history.db",
            monitor={
                key: value
                for key, value in (
                    ("workers", args.workers),
                    ("account_concurrency", args.account_concurrency),
                )
                if value is not None
            },
        )
        logs.setup(args.log_level, "json", stream=log_file)
        started = time.perf_counter()
        settings = load_settings(config)
        loaded = time.perf_counter() - started
        store = Store.open(settings.database_path())
        seeded = 0
        if args.history:
            seeded = benchlib.seed_history(
                settings.database_path(), lines, args.history, end=utcnow()
            )
        checker = Checker(settings)
        rss_before = benchlib.peak_rss_mb()
        cycles = []
        profile = cProfile.Profile() if args.profile else None
        try:
            for _ in range(args.cycles):
                cpu = benchlib.cpu_seconds()
                began = time.perf_counter()
                if profile is not None:
                    profile.enable()
                judged = checker.run(store, lines)
                if profile is not None:
                    profile.disable()
                seconds = time.perf_counter() - began
                failed = [j for j in judged if j.result.reading is None]
                cycles.append(
                    {
                        "seconds": round(seconds, 3),
                        "lines_per_second": round(len(lines) / seconds, 1),
                        "cpu_seconds": round(benchlib.cpu_seconds() - cpu, 2),
                        "ok": len(judged) - len(failed),
                        "failed": len(failed),
                        "unrecorded": len(lines) - len(judged),
                        "first_error": failed[0].result.error if failed else None,
                    }
                )
                del judged, failed
        finally:
            checker.close()
            store.close()
            logs.setup("warning")  # the log file closes below: later records go to stderr
        calibration.append(benchlib.calibrate())
        if profile is not None:
            profile.dump_stats(args.profile)
    return {
        "machine": benchlib.machine(),
        "code": code,
        "calibration_ms": calibration,
        "lines": args.lines,
        "latency_ms": round(args.latency * 1000),
        "workers": settings.monitor.workers,
        "account_concurrency": getattr(settings.monitor, "account_concurrency", None),
        "history_per_line": args.history,
        "seeded_readings": seeded,
        "config_load_seconds": round(loaded, 2),
        "peak_rss_mb_before_cycle": round(rss_before, 1),
        "peak_rss_mb": round(benchlib.peak_rss_mb(), 1),
        "cycles": cycles,
        "fake": fake.counters,
        "log": str(log_path) if args.keep else None,
    }


def report(figures: dict[str, Any]) -> str:
    out = [
        f"bench/cycle.py: {figures['lines']} lines on one 1NCE account, "
        f"{figures['latency_ms']} ms per request, {figures['workers']} workers"
        + (
            f", {figures['account_concurrency']} per account"
            if figures["account_concurrency"]
            else ""
        )
        + f" ({figures['machine']})",
        f"  code: {figures['code']}",
        "  calibration loop: {} ms before, {} ms after (lower is faster)".format(
            *figures["calibration_ms"]
        ),
    ]
    if figures["history_per_line"]:
        out.append(
            f"  seeded history: {figures['history_per_line']} readings per line "
            f"({figures['seeded_readings']} in all)"
        )
    out.append(f"  config load: {figures['config_load_seconds']} s")
    for number, cycle in enumerate(figures["cycles"], 1):
        out.append(
            f"  cycle {number}: {cycle['seconds']:.2f} s, {cycle['lines_per_second']:.0f} lines/s, "
            f"CPU {cycle['cpu_seconds']:.1f} s; {cycle['ok']} ok, {cycle['failed']} failed"
            + (f", {cycle['unrecorded']} unrecorded" if cycle["unrecorded"] else "")
        )
        if cycle["first_error"]:
            out.append(f"    first error: {cycle['first_error']}")
    out.append(
        f"  peak RSS: {figures['peak_rss_mb']:.1f} MB "
        f"(before the first cycle: {figures['peak_rss_mb_before_cycle']:.1f} MB)"
    )
    fake = figures["fake"]
    if fake:
        out.append(
            f"  fake: {fake['requests']} requests ({fake['tokens']} token), "
            f"{fake['connections']} connections, at most {fake['max_in_flight']} in flight"
            + (f", {fake['refused']} refused" if fake["refused"] else "")
        )
    target = TARGETS.get(figures["lines"]) if figures["latency_ms"] == 100 else None
    if target is not None and not figures["history_per_line"]:
        seconds, rss = target
        took = figures["cycles"][0]["seconds"]
        verdict = [f"cycle {took:.2f} s <= {seconds:g} s: {'met' if took <= seconds else 'MISSED'}"]
        if rss is not None:
            peak = figures["peak_rss_mb"]
            verdict.append(
                f"peak RSS {peak:.0f} MB <= {rss:g} MB: {'met' if peak <= rss else 'MISSED'}"
            )
        out.append("  target: " + "; ".join(verdict))
    if figures["log"]:
        out.append(f"  log: {figures['log']}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="esim-bench-cycle-"))
    try:
        with benchlib.deadline(args.timeout, "bench/cycle.py"):
            figures = run(args, folder)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    if args.profile:
        stats = pstats.Stats(args.profile, stream=sys.stderr)
        stats.sort_stats("cumulative").print_stats(25)
    bad = any(c["failed"] or c["unrecorded"] for c in figures["cycles"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
