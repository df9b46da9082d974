"""Benchmark `esim-monitor status` on a large history (issue 7, item 6).

    .venv/bin/python bench/status.py [--readings 1000000] [--lines 1000]

Builds a database of N readings over M lines (1,000 readings a line, 30 minutes apart,
with a line_state row per line, as the daemon leaves them) through the store's own
migrations, and caches it under the temporary folder (esim-monitor-bench/), so later runs
start at once. Then it times:

- the status query, `Store.status()`, over several runs (median, ms);
- the whole `esim-monitor --config ... status` command as a subprocess (median, seconds;
  its peak RSS);
- what that command imports (`python -X importtime -m monitor ... status`): a read-only
  command must not import Apprise, httpx or the adapters.

Everything runs locally and stops by itself (bounded runs, a watchdog of `--timeout`).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib

from monitor.model import utcnow
from monitor.store import Store

TARGET_QUERY_MS = 50.0
TARGET_COMMAND_S = 1.0
WATCHED = ("apprise", "httpx", "httpcore", "jmespath", "numpy", "matplotlib", "monitor.adapters")
"""Modules a read-only command has no use for."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=1_000_000, help="readings in all")
    parser.add_argument("--lines", type=int, default=1000, help="lines they spread over")
    parser.add_argument("--runs", type=int, default=15, help="timed status queries")
    parser.add_argument("--command-runs", type=int, default=5, help="timed status commands")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "esim-monitor-bench",
        help="where the database is kept between runs",
    )
    parser.add_argument("--rebuild", action="store_true", help="build the database afresh")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds, at most")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.lines <= 100_000 or not args.lines <= args.readings <= 10_000_000:
        parser.error("need 1 <= lines <= 100000 and lines <= readings <= 10000000")
    if args.readings % args.lines:
        parser.error("readings must be a multiple of lines")
    if not (1 <= args.runs <= 100 and 1 <= args.command_runs <= 20):
        parser.error("runs: 1 to 100; command runs: 1 to 20")
    return args


# ---- the database --------------------------------------------------------------------------


def ensure_database(cache: Path, readings: int, lines: int, rebuild: bool) -> dict[str, Any]:
    """The cached database and its config, built when missing (or asked)."""

    def seed(database: Path, ids: list[str]) -> int:
        return benchlib.seed_history(database, ids, readings // lines, end=utcnow())

    return benchlib.cached_database(cache / f"status-{readings}x{lines}", lines, rebuild, seed)


# ---- measurements --------------------------------------------------------------------------


def time_query(db: Path, runs: int, lines: int) -> dict[str, Any]:
    """Store.open once, then Store.status() `runs` times (the first one reported apart)."""
    started = time.perf_counter()
    store = Store.open(db)
    opened = time.perf_counter() - started
    try:
        times = []
        for _ in range(runs + 1):
            began = time.perf_counter()
            rows = store.status()
            times.append((time.perf_counter() - began) * 1000)
            if len(rows) != lines:
                raise RuntimeError(f"status() gave {len(rows)} lines, expected {lines}")
        began = time.perf_counter()
        store.controls()
        controls_ms = (time.perf_counter() - began) * 1000
        plan = [
            row[-1]
            for row in store.db.execute(
                "EXPLAIN QUERY PLAN SELECT s.line, r.checked_at FROM line_state s "
                "LEFT JOIN readings r ON r.id = s.last_reading_id"
            ).fetchall()
        ]
    finally:
        store.close()
    return {
        "open_ms": round(opened * 1000, 1),
        "first_ms": round(times[0], 2),
        "median_ms": round(benchlib.median(times[1:]), 2),
        "max_ms": round(max(times[1:]), 2),
        "controls_ms": round(controls_ms, 2),
        "plan": plan,
    }


def command(config: Path) -> list[str]:
    """`esim-monitor --config PATH status`, through the venv's script when there is one."""
    return benchlib.esim_monitor("--config", str(config), "status")


def time_command(config: Path, runs: int, lines: int) -> dict[str, Any]:
    """Run the command once to warm caches, then `runs` times; wall seconds each."""
    argv = command(config)
    times = []
    for attempt in range(runs + 1):
        began = time.perf_counter()
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=120, check=False, cwd=config.parent
        )
        took = time.perf_counter() - began
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")
        if done.stdout.count("\n") < lines:
            raise RuntimeError(f"status printed {done.stdout.count(chr(10))} lines for {lines}")
        if attempt:
            times.append(took)
    baseline = []
    for _ in range(3):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, timeout=60)
        baseline.append(time.perf_counter() - began)
    return {
        "argv": argv,
        "median_s": round(benchlib.median(times), 3),
        "max_s": round(max(times), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "python_startup_s": round(benchlib.median(baseline), 3),
    }


def imports(config: Path) -> dict[str, Any]:
    """What `status` imports, from `-X importtime`: watched modules, the biggest imports."""
    argv = [sys.executable, "-X", "importtime", "-m", "monitor", "--config", str(config), "status"]
    # From the data folder: `-m` puts the working directory first on sys.path, and from a
    # checkout that would import the checkout rather than what the command imports.
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=120, check=False, cwd=config.parent
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-2000:]}")
    modules = benchlib.import_times(done.stderr)  # name, depth, cumulative microseconds
    names = {name for name, _, _ in modules}
    watched = {
        module: any(name == module or name.startswith(module + ".") for name in names)
        for module in WATCHED
    }
    top = sorted((m for m in modules if m[1] <= 1), key=lambda m: -m[2])[:8]
    return {
        "modules": len(names),
        "watched": watched,
        "total_import_ms": round(sum(m[2] for m in modules if m[1] == 0) / 1000, 1),
        "largest_ms": {name: round(us / 1000, 1) for name, _, us in top},
    }


def report(figures: dict[str, Any]) -> str:
    db, query, cmd, imp = (
        figures["database"],
        figures["query"],
        figures["command"],
        figures["imports"],
    )
    built = "reused from the cache" if db["reused"] else f"built in {db['build_seconds']} s"
    imported = [name for name, seen in imp["watched"].items() if seen]
    out = [
        f"bench/status.py: {db['readings']:,} readings over {db['lines']:,} lines, "
        f"{db['size_mb']} MB ({built}; {figures['machine']})",
        f"  code: {figures['code']}; calibration loop {figures['calibration_ms']} ms",
        f"  Store.open: {query['open_ms']} ms; status() first {query['first_ms']} ms, "
        f"median {query['median_ms']} ms, max {query['max_ms']} ms "
        f"(target <= {TARGET_QUERY_MS:g} ms: "
        f"{'met' if query['median_ms'] <= TARGET_QUERY_MS else 'MISSED'}); "
        f"controls() {query['controls_ms']} ms",
        f"  query plan: {'; '.join(query['plan'])}",
        f"  `esim-monitor status`: median {cmd['median_s']:.3f} s, max {cmd['max_s']:.3f} s "
        f"(target <= {TARGET_COMMAND_S:g} s: "
        f"{'met' if cmd['median_s'] <= TARGET_COMMAND_S else 'MISSED'}); peak RSS "
        f"{cmd['peak_rss_mb']} MB; bare `python -c pass` {cmd['python_startup_s']:.3f} s",
        f"  imports: {imp['modules']} modules, {imp['total_import_ms']} ms; "
        + ("none of " + ", ".join(WATCHED) if not imported else "IMPORTS " + ", ".join(imported)),
        "  largest imports: "
        + ", ".join(f"{name} {ms} ms" for name, ms in imp["largest_ms"].items()),
        f"  data: {figures['folder']}",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with benchlib.deadline(args.timeout, "bench/status.py"):
        database = ensure_database(args.cache, args.readings, args.lines, args.rebuild)
        folder = args.cache / f"status-{args.readings}x{args.lines}"
        figures = {
            "machine": benchlib.machine(),
            "code": benchlib.code(),
            "calibration_ms": benchlib.calibrate(),
            "folder": str(folder),
            "database": database,
            "query": time_query(folder / "history.db", args.runs, args.lines),
            "command": time_command(folder / "config.toml", args.command_runs, args.lines),
            "imports": imports(folder / "config.toml"),
        }
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
