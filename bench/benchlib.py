"""What the benchmarks share: the fake 1NCE child process, a config of N lines on one 1NCE
account, seeded history written straight into a migrated database, and small helpers."""

from __future__ import annotations

import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fake_onence

HERE = Path(__file__).resolve().parent
ACCOUNT = "bench"
MB = 10**6
TOTAL = 500 * MB
"""Every fake SIM has a 500 MB plan."""
FAILED = "1NCE server error for account bench (HTTP 503): busy"
RAW = (
    '{{"data": {{"volume": "{volume}", "total_volume": 500, "expiry_date": '
    '"2029-01-01T00:00:00.000Z", "last_volume_added": 500, "threshold_percentage": 20}}}}'
)
"""What the store keeps as `raw` for a 1NCE reading (the quota object)."""


def esim_monitor(*args: str) -> list[str]:
    """`esim-monitor ARGS` through the venv's script (what a user runs), else `-m monitor`."""
    script = Path(sys.executable).with_name("esim-monitor")
    head = [str(script)] if script.exists() else [sys.executable, "-m", "monitor"]
    return [*head, *args]


def import_times(stderr: str) -> list[tuple[str, int, int]]:
    """`python -X importtime`'s report as (module, depth, cumulative microseconds)."""
    modules = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|", 2)
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        modules.append((name.strip(), depth, int(cumulative)))
    return modules


def log_events(log: Path) -> list[dict[str, Any]]:
    """The JSON log lines of a daemon run, as records (lines that are not JSON skipped)."""
    events = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            events.append(record)
    return events


def line_ids(count: int) -> list[str]:
    return [f"l{index:06d}" for index in range(1, count + 1)]


def iccid(line_id: str) -> str:
    """A 20-digit ICCID made from the line id (l000042 -> 89882806660000000042)."""
    return f"8988280666{int(line_id[1:]):010d}"


def write_config(
    path: Path,
    *,
    lines: Sequence[str],
    base_url: str,
    database: Path,
    monitor: dict[str, int | str] | None = None,
) -> Path:
    """A config with every line on one 1NCE account; `monitor` sets [monitor] keys such as
    `workers` (unset keys keep their defaults)."""
    out = ["[monitor]", f"database = {json.dumps(str(database))}"]
    out += [f"{key} = {json.dumps(value)}" for key, value in (monitor or {}).items()]
    out += [
        "",
        f"[accounts.{ACCOUNT}]",
        'provider = "1nce"',
        f"username = {json.dumps(fake_onence.USER)}",
        f"password = {json.dumps(fake_onence.PASSWORD)}",
        f"base_url = {json.dumps(base_url)}",
    ]
    for line_id in lines:
        out += ["", f"[lines.{line_id}]", f'account = "{ACCOUNT}"', f'iccid = "{iccid(line_id)}"']
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


# ---- the fake provider ---------------------------------------------------------------------


@dataclass
class FakeHandle:
    """The running fake: its base URL, and its counters once it has stopped."""

    base_url: str
    counters: dict[str, Any] = field(default_factory=dict)


@contextmanager
def fake_onence_server(latency: float, max_requests: int, lifetime: float) -> Iterator[FakeHandle]:
    """Run bench/fake_onence.py as a child on 127.0.0.1; stop it (stdin closed) on exit.

    A child, not a thread: its event loop then takes nothing from the GIL of the client
    being measured, and its memory does not count in the client's peak RSS."""
    child = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "fake_onence.py"),
            f"--latency={latency}",
            f"--max-requests={max_requests}",
            f"--lifetime={lifetime}",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    first = child.stdout.readline()
    if not first:
        child.wait(timeout=10)
        raise RuntimeError(f"the fake 1NCE server did not start (exit {child.returncode})")
    port = json.loads(first)["port"]
    handle = FakeHandle(f"http://127.0.0.1:{port}{fake_onence.PREFIX}")
    try:
        yield handle
    finally:
        try:
            out, _ = child.communicate(input="", timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            out, _ = child.communicate()
        last = out.strip().splitlines()[-1:] if out else []
        if last:
            handle.counters = json.loads(last[0])


# ---- seeded history ------------------------------------------------------------------------


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ts(moment: datetime) -> str:
    """The store's time format (monitor.store.ts)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def seed_history(
    db_path: Path,
    lines: Sequence[str],
    per_line: int,
    *,
    end: datetime,
    interval: timedelta = timedelta(minutes=30),
    failure_every: int = 50,
) -> int:
    """Write `per_line` readings per line (the last at `end`) and a line_state row per line
    pointing at its latest reading, as the daemon leaves them: data falling slowly, one
    failed check in `failure_every`. The database must be migrated (Store.open) and empty.

    One transaction, executemany over generators: a million rows take seconds and little
    memory. Returns the number of readings written."""
    conn = sqlite3.connect(str(db_path))
    try:
        conn.execute("PRAGMA synchronous=OFF")
        existing = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
        if existing:
            raise RuntimeError(f"{db_path} already holds {existing} readings")
        count = len(lines)
        steps = [(1 + index % 7) * 50_000 for index in range(count)]
        first = end - interval * (per_line - 1)
        # the store's form of a reading's expiry (monitor.store.codec.instant): microseconds
        expires = (datetime(2029, 1, 1, tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)

        def readings() -> Iterator[tuple[Any, ...]]:
            reading_id = 0
            for k in range(per_line):
                at = _ts(first + interval * k)
                failed = k % failure_every == failure_every - 1 and k != per_line - 1
                for index, line in enumerate(lines):
                    reading_id += 1
                    key = (reading_id, line, at)
                    if failed:
                        yield (*key, 0, "ok", None, None, None, FAILED, None, 20_000)
                        continue
                    remaining = TOTAL - steps[index] * k
                    raw = RAW.format(volume=f"{remaining / MB:f}")
                    yield (*key, 1, "ok", remaining, TOTAL, expires, None, raw, 100 + index % 50)

        with conn:
            conn.executemany(
                "INSERT INTO readings (id, line, checked_at, ok, level, data_remaining, "
                "data_total, expires_us, error, raw, duration_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                readings(),
            )
            last_at = _ts(end)
            last_base = (per_line - 1) * count
            forecast = json.dumps({"data": {"per_day": "4800000.0000", "runs_out_at": None}})
            conn.executemany(
                "INSERT INTO line_state (line, level, metrics, failures, failure_alerted, "
                "checked_at, last_success_at, last_reading_id, notices, forecast) "
                "VALUES (?, 'ok', ?, 0, 0, ?, ?, ?, '{}', ?)",
                (
                    (
                        line,
                        json.dumps({"data": "ok", "expiry": "ok"}),
                        last_at,
                        last_at,
                        last_base + index + 1,
                        forecast,
                    )
                    for index, line in enumerate(lines)
                ),
            )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return per_line * count
    finally:
        conn.close()


def cached_database(
    folder: Path,
    lines: int,
    rebuild: bool,
    seed: Callable[[Path, list[str]], int],
    facts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A benchmark's database of `lines` lines and its config (every line on one 1NCE
    account) in `folder`, kept between runs so that later ones start at once; built afresh
    when missing, asked for (`rebuild`), or made by a version this one cannot open.
    `seed(database, line ids)` fills the migrated, empty database and returns the readings
    it wrote; `facts` join what is reported of the build."""
    from monitor.errors import MonitorError
    from monitor.store import Store

    marker = folder / "built.json"
    if folder.exists() and (rebuild or not marker.exists()):
        shutil.rmtree(folder)
    if marker.exists():
        try:  # built by another version: reuse it only if this one can open it
            Store.open(folder / "history.db").close()
        except MonitorError:
            shutil.rmtree(folder)
        else:
            info = json.loads(marker.read_text(encoding="utf-8"))
            info["reused"] = True
            return info
    building = folder.with_name(f".building-{folder.name}-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    ids = line_ids(lines)
    started = time.perf_counter()
    Store.open(building / "history.db").close()  # the schema, by the store's migrations
    written = seed(building / "history.db", ids)
    seconds = time.perf_counter() - started
    # A relative database path is read from the config's folder, so the folder can move.
    write_config(
        building / "config.toml",
        lines=ids,
        base_url="http://127.0.0.1:9/management-api",  # never called: the bench reads the db
        database=Path("history.db"),
    )
    info = {
        "readings": written,
        "lines": lines,
        **(facts or {}),
        "build_seconds": round(seconds, 1),
        "size_mb": round((building / "history.db").stat().st_size / 2**20, 1),
    }
    (building / "built.json").write_text(json.dumps(info), encoding="utf-8")
    building.rename(folder)
    info["reused"] = False
    return info


# ---- measuring -----------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident set so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    """Like "Python 3.11.7, 2 CPUs, linux"."""
    version = ".".join(str(part) for part in sys.version_info[:3])
    return f"Python {version}, {os.cpu_count()} CPUs, {sys.platform}"


def calibrate() -> float:
    """Milliseconds for a fixed pure-Python loop, best of three: a yardstick of how fast
    this machine runs Python right now (a busy or throttled machine shows a higher figure,
    and the benchmark's figures should be read against it)."""
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        total = 0
        for number in range(1_000_000):
            total += number * number % 7
        best = min(best, time.perf_counter() - began)
    return round(best * 1000, 1)


def code() -> str:
    """Where the measured `monitor` package comes from, and the load average now (other
    work on the machine skews the figures)."""
    import monitor

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"monitor from {Path(monitor.__file__).parent}; load average {load}"


@contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    """End the whole process if the block runs longer than `seconds` (a hung benchmark
    must not run forever); the fake child then exits as its stdin closes."""

    def expire() -> None:
        print(f"{what}: gave up after {seconds:g} s", file=sys.stderr, flush=True)
        os._exit(3)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
