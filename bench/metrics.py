"""Benchmark a Prometheus scrape of N lines, before and after issue 14.6, in one run.

    .venv/bin/python bench/metrics.py [--lines 10000] [--scrapes 5] [--before REV]

Builds the snapshot the daemon builds for N lines (every figure known, a free-text label
of 40 characters, an account and a provider), serves it from `monitor.metrics.start` on a
loopback port and scrapes /metrics over HTTP as Prometheus does: plain, and with
`Accept-Encoding: gzip` (Prometheus asks for it). Beside it, in the same run, the same
lines served by `monitor/metrics.py` as it was at `--before` (read with `git show`, by
default the commit before the change: every per-line series carried the label), the
scrapes of the two taking turns so that other load on the machine hits both alike.

Prints per version: series (sample lines), bytes per scrape (plain and gzipped) and the
median scrape time of each kind, with the machine's calibration and load average.
Everything is local and bounded (a watchdog of `--timeout`).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import benchlib

from monitor import metrics

BEFORE = "5fd9ce3"
"""The last commit whose per-line series carried the label (issue 14.6)."""
REPO = benchlib.HERE.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000, help="lines in the snapshot")
    parser.add_argument("--scrapes", type=int, default=5, help="timed scrapes of each kind")
    parser.add_argument(
        "--before", default=BEFORE, help="git revision of the old module ('' to skip it)"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds, at most")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.lines <= 100_000 or not 1 <= args.scrapes <= 50:
        parser.error("lines: 1 to 100000; scrapes: 1 to 50")
    return args


def old_module(revision: str, folder: Path) -> ModuleType:
    """monitor/metrics.py as it was at `revision`, imported beside today's package."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{revision}:monitor/metrics.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = folder / f"metrics_{revision}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"metrics_{revision}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def snapshot(module: ModuleType, count: int) -> Any:
    """N lines as the daemon reports them, built with the fields `module` knows."""
    known = {f.name for f in dataclasses.fields(module.LineSnapshot)}
    now = datetime.now(UTC)
    lines = []
    for index, line_id in enumerate(benchlib.line_ids(count)):
        figures: dict[str, Any] = {
            "line": line_id,
            "label": f"Fleet SIM {index:05d}, warehouse Rotterdam",
            "account": f"shard-{index % 8}",
            "provider": "1nce",
            "state": ("ok", "warning", "critical")[index % 3],
            "balance": Decimal("12.50"),
            "currency": "EUR",
            "data_remaining_bytes": 123_456_789 + index,
            "data_total_bytes": benchlib.TOTAL,
            "expires_at": now + timedelta(days=30),
            "last_check_at": now,
            "last_success_at": now,
            "consecutive_failures": index % 2,
        }
        lines.append(module.LineSnapshot(**{k: v for k, v in figures.items() if k in known}))
    health = module.Health(last_cycle_seconds=26.1, last_cycle_at=now, pending_alerts=3)
    extra = (
        {"channels": ("phone", "mail")}
        if "channels" in module.Snapshot.__dataclass_fields__
        else {}
    )
    return module.Snapshot(lines, health, **extra)


def scrape(url: str, compressed: bool) -> tuple[float, bytes]:
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"} if compressed else {})
    began = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        body = response.read()
    return time.perf_counter() - began, body


KINDS = ("fresh", "fresh_gzip", "repeat", "repeat_gzip")
"""Scrapes of a snapshot the endpoint has not served yet (as after each pass of the daemon),
and repeated scrapes of one it has; each plain and with gzip."""


def measure(versions: dict[str, ModuleType], count: int, scrapes: int) -> dict[str, Any]:
    servers, current = {}, {}
    for name, module in versions.items():
        current[name] = [snapshot(module, count)]
        servers[name] = module.start("127.0.0.1:0", lambda held=current[name]: held[0])
    urls = {n: "http://{}:{}/metrics".format(*server.address) for n, server in servers.items()}
    times: dict[str, dict[str, list[float]]] = {n: {k: [] for k in KINDS} for n in versions}
    bodies: dict[str, dict[str, bytes]] = {n: {} for n in versions}
    try:
        for name in versions:  # a first scrape each, untimed (imports, first allocations)
            scrape(urls[name], False)
        for _ in range(scrapes):
            for kind in KINDS:
                for name in versions:
                    if kind.startswith("fresh"):  # the same figures in a new snapshot
                        held = current[name][0]
                        current[name][0] = dataclasses.replace(held, lines=list(held.lines))
                    seconds, body = scrape(urls[name], kind.endswith("gzip"))
                    times[name][kind].append(seconds)
                    bodies[name][kind] = body
    finally:
        for server in servers.values():
            server.stop()
    figures = {}
    for name in versions:
        plain = bodies[name]["fresh"]
        samples = [row for row in plain.splitlines() if row and not row.startswith(b"#")]
        per_line = [row for row in samples if row.startswith(b"esim_monitor_line_")]
        figures[name] = {
            "series": len(samples),
            "per_line_series": len(per_line),
            "bytes": len(plain),
            "gzip_bytes": len(bodies[name]["fresh_gzip"]),
            **{f"{kind}_s": round(benchlib.median(times[name][kind]), 3) for kind in KINDS},
        }
    return figures


def report(figures: dict[str, Any]) -> str:
    out = [
        f"bench/metrics.py: a scrape of {figures['lines']:,} lines ({figures['machine']})",
        f"  code: {figures['code']}; calibration loop {figures['calibration_ms']} ms",
    ]
    for name, got in figures["versions"].items():
        mb, gz = got["bytes"] / benchlib.MB, got["gzip_bytes"] / benchlib.MB
        out.append(
            f"  {name:>6}: {got['series']:,} series ({got['per_line_series']:,} per line), "
            f"{mb:.1f} MB per scrape ({gz:.2f} MB gzipped)"
        )
        out.append(
            f"          scrape median: new snapshot {got['fresh_s']:.3f} s, gzipped "
            f"{got['fresh_gzip_s']:.3f} s; same snapshot again {got['repeat_s']:.3f} s, "
            f"gzipped {got['repeat_gzip_s']:.3f} s"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with benchlib.deadline(args.timeout, "bench/metrics.py"), tempfile.TemporaryDirectory() as tmp:
        versions: dict[str, ModuleType] = {}
        if args.before:
            versions["before"] = old_module(args.before, Path(tmp))
        versions["after"] = metrics
        figures = {
            "lines": args.lines,
            "machine": benchlib.machine(),
            "code": benchlib.code(),
            "calibration_ms": benchlib.calibrate(),
            "before": args.before or None,
            "versions": measure(versions, args.lines, args.scrapes),
        }
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
