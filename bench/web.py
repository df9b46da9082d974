"""Benchmark the status page's overview and `/api/lines` on 10,000 lines (issue 16).

    .venv/bin/python bench/web.py [--lines 10000] [--days 30] [--runs 15] [--http]

Builds a database of N lines with a month of readings (one every 30 minutes, as the
daemon's default interval leaves them; a line_state row per line, a mix of states and a
few snoozes) through the store's own migrations, and caches it under the temporary folder
(esim-monitor-bench/), so later runs start at once. Then it times, median of `--runs`:

- the parts, in this process: `Store.status()` (the query both answers start with),
  `pages.overview` (the HTML of the first page: the worst `pages.PAGE_SIZE` lines, counts
  over all) and the API's JSON: `rows.status_rows` + compact `rows.dumps` as a peer, and
  `rows.StatusJson` as the API writes it, once making every row (the first answer after a
  start, or a fleet where every line changed) and once keeping the unchanged rows (the
  steady state: each line changes once per check, every 30 minutes here);
- with `--http`, the whole answers through the real HTTP server: the daemon's own server
  (`esim-monitor run` with `[http]` on loopback and a password login), `GET /` with a
  session cookie and `GET /api/lines` with a bearer token, timed from the request to the
  last byte over a kept-open connection (what loopback adds is a fraction of a ms).

Targets: server time <= 300 ms for the page and <= 200 ms for the API.
Everything runs locally and stops by itself (bounded runs, a watchdog of `--timeout`).
"""

from __future__ import annotations

import argparse
import http.client
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import benchlib

from monitor.config import load
from monitor.http import pages
from monitor.model import utcnow
from monitor.rows import StatusJson, dumps, iso, status_rows
from monitor.store import Store

TARGET_PAGE_MS = 300.0
TARGET_API_MS = 200.0
INTERVAL = timedelta(minutes=30)
USER = "bench"
PASSWORD = "bench-password-for-loopback"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000, help="lines in the config")
    parser.add_argument("--days", type=int, default=30, help="days of readings per line")
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each measure")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "esim-monitor-bench",
        help="where the database is kept between runs",
    )
    parser.add_argument("--rebuild", action="store_true", help="build the database afresh")
    parser.add_argument(
        "--http", action="store_true", help="also through the daemon's server (needs its routes)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the parts' hot spots")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds, at most")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.lines <= 100_000 or not 1 <= args.days <= 90:
        parser.error("need 1 <= lines <= 100000 and 1 <= days <= 90")
    if not 1 <= args.runs <= 100:
        parser.error("runs: 1 to 100")
    return args


# ---- the database --------------------------------------------------------------------------


def ensure_database(cache: Path, lines: int, days: int, rebuild: bool) -> dict[str, Any]:
    """The cached database and its config, built when missing (or asked)."""

    def seed(database: Path, ids: list[str]) -> int:
        per_line = int(timedelta(days=days) / INTERVAL)
        written = benchlib.seed_history(database, ids, per_line, end=utcnow(), interval=INTERVAL)
        _mix_states(database, ids)
        return written

    folder = cache / f"web-{lines}x{days}d"
    return benchlib.cached_database(folder, lines, rebuild, seed, {"days": days})


def _mix_states(db: Path, ids: list[str]) -> None:
    """Not every line ok, as on a real fleet: 2% critical, 8% warning, 1% failing, 5%
    snoozed, so the overview sorts and badges a mix (written straight, as seed_history)."""
    until = (utcnow() + timedelta(hours=12)).isoformat(timespec="microseconds")
    conn = sqlite3.connect(str(db))
    try:
        with conn:
            for index, line in enumerate(ids):
                if index % 50 == 7:
                    conn.execute(
                        "UPDATE line_state SET level = 'critical', metrics = ? WHERE line = ?",
                        [json.dumps({"data": "critical", "expiry": "ok"}), line],
                    )
                elif index % 100 in (11, 23, 37, 41, 59, 67, 83, 97):
                    conn.execute(
                        "UPDATE line_state SET level = 'warning', metrics = ? WHERE line = ?",
                        [json.dumps({"data": "warning", "expiry": "ok"}), line],
                    )
                elif index % 100 == 3:
                    conn.execute(
                        "UPDATE line_state SET failures = 2, last_error = ? WHERE line = ?",
                        [benchlib.FAILED, line],
                    )
                if index % 20 == 5:
                    conn.execute(
                        "INSERT INTO line_controls (line, snoozed_until) VALUES (?, ?)",
                        [line, until],
                    )
    finally:
        conn.close()


# ---- the parts, in this process ------------------------------------------------------------


def timed(work: Callable[[], Any], runs: int) -> tuple[dict[str, float], Any]:
    """One warm-up call, then `runs` timed ones: median and max in ms, and the last result."""
    result = work()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        result = work()
        times.append((time.perf_counter() - began) * 1000)
    return {"median_ms": round(benchlib.median(times), 1), "max_ms": round(max(times), 1)}, result


def time_parts(folder: Path, runs: int, lines: int, profile: bool) -> dict[str, Any]:
    settings = load(folder / "config.toml")
    store = Store.open(folder / "history.db")
    try:
        query, known = timed(store.status, runs)
        if len(known) != lines:
            raise RuntimeError(f"status() gave {len(known)} lines, expected {lines}")
        now = utcnow()
        html, page = timed(lambda: pages.overview(settings, known, now), runs)
        plain, body = timed(
            lambda: dumps(status_rows(settings, known, now), times=iso, indent=None), runs
        )
        kept = StatusJson()
        cold, _ = timed(lambda: StatusJson().dumps(settings, known, now), runs)
        warm, cached = timed(lambda: kept.dumps(settings, known, now), runs)
        if not holds_every_line(page, lines) or len(json.loads(body)) != lines or cached != body:
            raise RuntimeError("the page or the JSON does not hold every line")
        figures: dict[str, Any] = {
            "status_query": query,
            "overview_html": html,
            "status_rows_json": plain,
            "status_json_cold": cold,
            "status_json_warm": warm,
            "page_kb": round(len(page.encode()) / 1024),
            "api_kb": round(len(body.encode()) / 1024),
        }
        if profile:
            figures["profile"] = {
                "overview": hot_spots(lambda: pages.overview(settings, known, now)),
                "api": hot_spots(lambda: StatusJson().dumps(settings, known, now)),
                "status": hot_spots(store.status),
            }
        return figures
    finally:
        store.close()


def holds_every_line(page: str, lines: int) -> bool:
    """The overview's first page: its share of the lines, and counts over all of them."""
    return page.count('<tr class="') == min(lines, pages.PAGE_SIZE) and f">{lines} lines:" in page


def hot_spots(work: Callable[[], Any], top: int = 8) -> list[str]:
    """The functions that take the most time of one call (cProfile, own time)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(work)
    stats = pstats.Stats(profiler)
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:top]  # type: ignore[attr-defined]
    return [
        f"{Path(file).name}:{line} {name} {tottime * 1000:.0f} ms ({calls} calls)"
        for (file, line, name), (_, calls, tottime, _, _) in rows
    ]


# ---- through the real server ---------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_config(folder: Path, port: int) -> Path:
    """The bench config plus [http] on loopback with a password login: the page and the
    API behind the same authentication as a real deployment."""
    from monitor.http.auth import hash_password

    text = (folder / "config.toml").read_text(encoding="utf-8")
    path = folder / "config-http.toml"
    http = (
        "[http]\n"
        f'listen = "127.0.0.1:{port}"\n'
        'auth = "password"\n'
        f'user = "{USER}"\n'
        f'password_hash = "{hash_password(PASSWORD)}"\n'
    )
    # the lines are never polled while the server is measured: a day between checks
    text = text.replace("[monitor]\n", '[monitor]\ninterval = "24h"\njitter = "0s"\n', 1)
    path.write_text(text.replace("\n[accounts.", f"\n{http}\n[accounts.", 1), encoding="utf-8")
    return path


def time_http(folder: Path, runs: int, lines: int) -> dict[str, Any]:
    port = free_port()
    config = server_config(folder, port)
    token = subprocess.run(
        benchlib.esim_monitor("--config", str(config), "http", "token", "bench"),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()[-1]
    daemon = subprocess.Popen(
        benchlib.esim_monitor("--config", str(config), "--log-format", "json", "run"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=folder,
    )
    try:
        conn = _connect(port, daemon)
        cookie = _login(conn)
        page, html = _timed_get(conn, "/", {"Cookie": cookie}, runs)
        api, body = _timed_get(conn, "/api/lines", {"Authorization": f"Bearer {token}"}, runs)
        conn.close()
        if not holds_every_line(html, lines) or len(json.loads(body)) != lines:
            raise RuntimeError("the served page or JSON does not hold every line")
        return {"page": page, "api": api, "port": port}
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def _connect(port: int, daemon: subprocess.Popen[bytes]) -> http.client.HTTPConnection:
    """A kept-open connection, once the daemon's server answers: its start reads the config
    and verifies every page of the database (PRAGMA quick_check: minutes for a database
    of this size that is not in the page cache yet)."""
    deadline = time.monotonic() + 900
    while True:
        if daemon.poll() is not None:
            raise RuntimeError(f"the daemon exited ({daemon.returncode}) before answering")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request("GET", "/login")
            conn.getresponse().read()
            return conn
        except OSError:
            conn.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _login(conn: http.client.HTTPConnection) -> str:
    form = urllib.parse.urlencode({"user": USER, "password": PASSWORD, "next": "/"})
    conn.request("POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    response.read()
    cookie = response.getheader("Set-Cookie") or ""
    if response.status != 303 or not cookie:
        raise RuntimeError(f"login answered {response.status} without a session cookie")
    return cookie.split(";", 1)[0]


def _timed_get(
    conn: http.client.HTTPConnection, path: str, headers: dict[str, str], runs: int
) -> tuple[dict[str, float], str]:
    def get() -> str:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read().decode()
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}: {body[:200]}")
        return body

    figures, body = timed(get, runs)
    return figures, body


# ---- the report ----------------------------------------------------------------------------


def verdict(ms: float, target: float) -> str:
    return f"target <= {target:g} ms: {'met' if ms <= target else 'MISSED'}"


def report(figures: dict[str, Any]) -> str:
    db, parts = figures["database"], figures["parts"]
    built = "reused from the cache" if db["reused"] else f"built in {db['build_seconds']} s"
    query = parts["status_query"]["median_ms"]
    html = parts["overview_html"]["median_ms"]
    plain = parts["status_rows_json"]["median_ms"]
    cold = parts["status_json_cold"]["median_ms"]
    api = parts["status_json_warm"]["median_ms"]
    out = [
        f"bench/web.py: {db['lines']:,} lines, {db['readings']:,} readings over {db['days']} "
        f"days, {db['size_mb']} MB ({built}; {figures['machine']})",
        f"  code: {figures['code']}; calibration loop {figures['calibration_ms']} ms",
        f"  parts (median of {figures['runs']}): Store.status() {query} ms, "
        f"pages.overview {html} ms (first page of {pages.PAGE_SIZE} lines, {parts['page_kb']} kB); "
        f"the API's JSON ({parts['api_kb']} kB): status_rows + dumps {plain} ms, StatusJson "
        f"{cold} ms making every row, {api} ms keeping the unchanged ones",
        f"  in process: page {query + html:.1f} ms ({verdict(query + html, TARGET_PAGE_MS)}), "
        f"API {query + api:.1f} ms ({verdict(query + api, TARGET_API_MS)})",
    ]
    served = figures.get("http")
    if served:
        page, api_http = served["page"], served["api"]
        out += [
            f"  through the daemon's HTTP server: GET / median {page['median_ms']} ms, max "
            f"{page['max_ms']} ms ({verdict(page['median_ms'], TARGET_PAGE_MS)}); "
            f"GET /api/lines median {api_http['median_ms']} ms, max {api_http['max_ms']} ms "
            f"({verdict(api_http['median_ms'], TARGET_API_MS)})",
        ]
    for name, spots in parts.get("profile", {}).items():
        out.append(f"  profile of {name}: " + "; ".join(spots))
    out.append(f"  data: {figures['folder']}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with benchlib.deadline(args.timeout, "bench/web.py"):
        database = ensure_database(args.cache, args.lines, args.days, args.rebuild)
        folder = args.cache / f"web-{args.lines}x{args.days}d"
        figures: dict[str, Any] = {
            "machine": benchlib.machine(),
            "code": benchlib.code(),
            "calibration_ms": benchlib.calibrate(),
            "runs": args.runs,
            "folder": str(folder),
            "database": database,
            "parts": time_parts(folder, args.runs, args.lines, args.profile),
        }
        if args.http:
            figures["http"] = time_http(folder, args.runs, args.lines)
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
