"""Bytes per reading: N lines x M readings written through the store's own write path
(`Store.record_checks`, one transaction per cycle as the daemon writes), then the database
file's size after VACUUM divided by the readings, with what each column and index takes.

The readings change a little each check, as a month of a real fleet's do: the balance
drains a cent, the data a few MB, the expiry stays; the raw reply (a provider's JSON of
about 150 bytes) changes only every `--raw-every` checks (providers cache their figures:
the reply between two changes is the same), and one check in `--failure-every` fails.

    .venv/bin/python bench/storage.py                        # 100 lines x 1440 (a month)
    .venv/bin/python bench/storage.py --lines 10000 --readings 1440

The issue's target is 120 bytes per reading; 327 was measured before the store kept a
raw reply only when it changed (issue 18).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import benchlib

from monitor.model import Level, LineState, Reading
from monitor.store import Check, Store

TARGET = 120
BEFORE = 327
"""Bytes per reading the issue measured before (the raw reply kept on every reading)."""
START = datetime(2026, 11, 1, tzinfo=UTC)
EXPIRES = datetime(2027, 3, 1, tzinfo=UTC)
MB = 10**6


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=100)
    parser.add_argument("--readings", type=int, default=1440, help="per line (1440: a month)")
    parser.add_argument("--interval", type=int, default=30, help="minutes between checks")
    parser.add_argument("--raw-every", type=int, default=12, help="checks per raw change")
    parser.add_argument("--failure-every", type=int, default=50)
    parser.add_argument("--keep", type=Path, help="write the database here and keep it")
    return parser.parse_args(argv)


def raw_reply(line: int, k: int, raw_every: int) -> dict[str, Any]:
    """A provider's reply (about 150 bytes of JSON) that changes every `raw_every` checks."""
    step = k // raw_every
    return {
        "iccid": f"8988280666{line:010d}",
        "balance": f"{50 - step * raw_every / 100:.2f}",
        "currency": "EUR",
        "volume": f"{(5000 - step * raw_every * 3):d}",
        "expiry_date": "2027-03-01T00:00:00.000Z",
        "status": "ACTIVE",
    }


def build(path: Path, lines: int, readings: int, args: argparse.Namespace) -> float:
    """Write the readings cycle by cycle; returns the seconds the writes took."""
    store = Store.open(path)
    ids = benchlib.line_ids(lines)
    states = {line: LineState(line=line) for line in ids}
    began = time.perf_counter()
    try:
        for k in range(readings):
            at = START + timedelta(minutes=args.interval * k)
            checks = []
            for index, line in enumerate(ids):
                failed = k % args.failure_every == args.failure_every - 1
                previous = states[line]
                if failed:
                    state = LineState(
                        line=line,
                        level=previous.level,
                        metrics=previous.metrics,
                        failures=previous.failures + 1,
                        last_error="HTTP 503: busy",
                        checked_at=at,
                        last_success_at=previous.last_success_at,
                    )
                    checks.append(Check(line, at, state, error="provider answered HTTP 503: busy"))
                else:
                    reading = Reading(
                        line=line,
                        checked_at=at,
                        balance=Decimal(50_00 - k - index % 7) / 100,
                        currency="EUR",
                        data_remaining=(5000 - k * 3) * MB - index * 1000,
                        data_total=5000 * MB,
                        expires_at=EXPIRES,
                        status="ACTIVE",
                        raw=raw_reply(index, k, args.raw_every),
                    )
                    state = LineState(
                        line=line,
                        level=Level.OK,
                        metrics={"balance": Level.OK, "data": Level.OK},
                        checked_at=at,
                        last_success_at=at,
                    )
                    checks.append(Check(line, at, state, reading=reading, duration_ms=120))
                states[line] = state
            store.record_checks(checks, at)
    finally:
        store.close()
    return time.perf_counter() - began


def measure(path: Path, count: int) -> dict[str, Any]:
    """The file after VACUUM, and per table and index what dbstat says it takes."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        size = path.stat().st_size
        parts = dict(
            conn.execute(
                "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
            ).fetchall()
        )
        columns = {}
        names = [row[1] for row in conn.execute("PRAGMA table_info(readings)")]
        for name in names:
            if name == "id":
                continue  # the rowid: a key of the b-tree, not a value of the row
            # the bytes of the column's values (integers as SQLite stores them: 0-8 bytes)
            (total,) = conn.execute(
                f"SELECT sum(CASE WHEN typeof({name}) IN ('text', 'blob') THEN "
                f"length(CAST({name} AS BLOB)) WHEN typeof({name}) = 'integer' THEN "
                f"CASE WHEN {name} IN (0, 1) THEN 0 WHEN abs({name}) < 128 THEN 1 "
                f"WHEN abs({name}) < 32768 THEN 2 WHEN abs({name}) < 8388608 THEN 3 "
                f"WHEN abs({name}) < 2147483648 THEN 4 WHEN abs({name}) < 140737488355328 "
                f"THEN 6 ELSE 8 END WHEN typeof({name}) = 'real' THEN 8 ELSE 0 END) "
                "FROM readings"
            ).fetchone()
            columns[name] = (total or 0) / count
    finally:
        conn.close()
    return {"size": size, "parts": parts, "columns": columns}


def report(figures: dict[str, Any], count: int, seconds: float) -> str:
    per = figures["size"] / count
    verdict = "meets" if per <= TARGET else "misses"
    out = [
        f"{count} readings written in {seconds:.1f} s ({count / seconds:,.0f}/s)",
        f"file after VACUUM: {figures['size'] / 1e6:.1f} MB",
        f"bytes per reading: {per:.1f} (before: {BEFORE}; target <= {TARGET}: {verdict})",
        "",
        "by table and index (dbstat), bytes per reading:",
    ]
    for name, size in figures["parts"].items():
        if size / count >= 0.5:
            out.append(f"  {name:<32} {size / count:7.1f}")
    out += ["", "readings' values by column (payload only), bytes per reading:"]
    for name, size in sorted(figures["columns"].items(), key=lambda kv: -kv[1]):
        out.append(f"  {name:<32} {size:7.1f}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="esim-storage-") as folder:
        path = args.keep or Path(folder) / "history.db"
        seconds = build(path, args.lines, args.readings, args)
        count = args.lines * args.readings
        figures = measure(path, count)
    print(report(figures, count, seconds))
    print(json.dumps({"bytes_per_reading": round(figures["size"] / count, 1), "target": TARGET}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
