"""Benchmark: webhook POSTs per second the daemon takes while it checks 1,000 lines (issue 15).

    .venv/bin/python bench/hooks.py [--lines 1000] [--seconds 15] [--clients 4] [--runs 3]

Each run starts the real daemon (`esim-monitor run`, a subprocess, logging JSON as in
production) twice on the same config: 1,000 lines on one 1NCE-shaped account
(bench/fake_onence.py, a child process answering each request after `--latency`, as
bench/cycle.py uses it), plus an Airalo account with a `webhook_secret` whose credit line
takes signed credit-limit notifications on `POST /hooks/airalo` (its token and balance come
from a small fake in this process, asked once at startup).

- idle: the 1NCE lines' interval is a day, so after the startup cycle nothing is checked;
  `--clients` threads POST for `--seconds`.
- busy: the interval is `--interval` (shorter than a cycle), so the daemon checks all the
  time; first `--seconds` without POSTs (the cycle time alone), then the same POST load.

Every body is Airalo's documented credit-limit example with its own `remaining` (the
push's number), so each is a new notification (recorded as a reading, not taken as a
retry), signed HMAC-SHA512 as Airalo signs. A POST counts as accepted when the answer is
`200 recorded: a reading`. After each run, with both daemons stopped, every accepted push
must have left its own rows: one hook reading with its `remaining` and its delivery key
(the body's SHA-256) in hook_deliveries; "N/N 200 answers found in the database" is
printed, and a push answered 200 without its rows (or recorded twice) fails the bench
(exit 1, each one named). Printed: accepted POSTs per second and latency p50/p95 busy and
idle, their ratio, and the cycle time without and with the POST load, per run and as the
median of the runs.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import hmac
import http.client
import itertools
import json
import queue
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import benchlib

SECRET = "bench-airalo-webhook-secret"
ACCOUNT = "airalo"
CREDIT_LINE = "credit"
START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- the Airalo side: a fake for the credit line's poll, and the signed notifications ------


class _AiraloHandler(BaseHTTPRequestHandler):
    """`POST /v2/token` and `GET /v2/balance`, the shapes bench nothing else needs."""

    protocol_version = "HTTP/1.1"

    def _send(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send({"data": {"access_token": "bench-airalo-token", "expires_in": 86400}})

    def do_GET(self) -> None:
        amount = {"amount": 5000.0, "currency": "USD"}
        self._send({"data": {"balances": {"availableBalance": amount}}})

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def fake_airalo() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AiraloHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def remaining(number: int) -> Decimal:
    """Push `number`'s credit left: unique per push, so its reading names the push."""
    return Decimal(20_000 + number).scaleb(-2)


def notification(number: int) -> bytes:
    """Airalo's documented credit-limit example ("Webhook definition"), its `remaining`
    made unique so that no two bodies are the same delivery."""
    return (
        '{"message": "Surpassed 80% of the credit limit balance", '
        f'"remaining": {remaining(number)}}}'
    ).encode()


def signed_headers(body: bytes) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha512).hexdigest()
    return {"Content-Type": "application/json", "airalo-signature": digest}


# ---- the config and the daemon -----------------------------------------------------------


def write_config(
    folder: Path, *, lines: list[str], onence_url: str, airalo_url: str, port: int, interval: str
) -> Path:
    path = benchlib.write_config(
        folder / f"config-{interval}.toml",
        lines=lines,
        base_url=onence_url,
        database=folder / "history.db",
    )
    text = path.read_text(encoding="utf-8").replace(
        "[monitor]\n", f'[monitor]\ninterval = "{interval}"\n', 1
    )
    text += f"""
[http]
listen = "127.0.0.1:{port}"
rate = "1000000/s"

[accounts.{ACCOUNT}]
provider = "airalo"
client_id = "bench-client"
client_secret = "bench-client-secret"
base_url = "{airalo_url}"
webhook_secret = "{SECRET}"

[lines.{CREDIT_LINE}]
account = "{ACCOUNT}"
interval = "1d"
"""
    path.write_text(text, encoding="utf-8")
    return path


class Daemon:
    """`esim-monitor run` as a child, its JSON log read as it comes (with arrival times)."""

    def __init__(self, config: Path) -> None:
        command = [sys.executable, "-m", "monitor", "--config", str(config)]
        self.proc = subprocess.Popen(
            [*command, "--log-format", "json", "run"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.entries: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.cycles: list[tuple[float, float]] = []
        """(when it ended, seconds) of every cycle over all the 1NCE lines."""
        self.lines = 0
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for text in self.proc.stderr:
            try:
                entry = json.loads(text)
            except ValueError:
                entry = {"event": text.strip()}
            now = time.monotonic()
            if entry.get("event") == "checks done" and entry.get("lines", 0) >= self.lines > 0:
                self.cycles.append((now, float(entry["seconds"])))
            if entry.get("event") != "http request":
                self.entries.put((now, entry))

    def wait_for(self, event: str, timeout: float, **fields: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError(f"the daemon gave no {event!r} (exit {self.proc.poll()})")
            try:
                _, entry = self.entries.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if entry.get("event") == event and all(
                entry.get(k, 0) >= v if isinstance(v, int) else entry.get(k) == v
                for k, v in fields.items()
            ):
                return entry

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def daemon(config: Path, lines: int) -> Iterator[Daemon]:
    """A started daemon whose first cycle over every line is done."""
    running = Daemon(config)
    running.lines = lines
    try:
        running.wait_for("http server listening", START_TIMEOUT)
        running.wait_for("checks done", START_TIMEOUT, lines=lines)
        yield running
    finally:
        running.stop()


# ---- the load ------------------------------------------------------------------------------


@dataclass
class Load:
    """What the client threads saw."""

    seconds: float
    accepted: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    """The numbers of the pushes answered `200 recorded: a reading`."""

    def figures(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def percentile(share: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 1)

        return {
            "accepted": self.accepted,
            "per_second": round(self.accepted / self.seconds, 1),
            "p50_ms": percentile(0.50),
            "p95_ms": percentile(0.95),
            "answers": self.statuses,
        }


def post_load(port: int, clients: int, seconds: float, numbers: Iterator[int]) -> Load:
    """`clients` threads POST signed notifications on keep-alive connections until
    `seconds` have passed; every answer and its latency is counted."""
    load = Load(seconds)
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        seen: dict[str, int] = {}
        latencies: list[float] = []
        answered: list[int] = []
        while time.monotonic() < end:
            number = next(numbers)
            body = notification(number)
            began = time.perf_counter()
            try:
                connection.request("POST", f"/hooks/{ACCOUNT}", body, signed_headers(body))
                answer = connection.getresponse()
                text = answer.read().decode().strip()
            except (OSError, http.client.HTTPException) as exc:
                key = type(exc).__name__
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            else:
                latencies.append(time.perf_counter() - began)
                key = f"{answer.status} {text}"
                if answer.status == 200 and text == "recorded: a reading":
                    answered.append(number)
            seen[key] = seen.get(key, 0) + 1
        connection.close()
        with lock:
            load.accepted += len(answered)
            load.answered += answered
            load.latencies += latencies
            for key, count in seen.items():
                load.statuses[key] = load.statuses.get(key, 0) + count

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
    return load


def cycles_between(running: Daemon, start: float, end: float) -> list[float]:
    return [seconds for at, seconds in running.cycles if start <= at - seconds and at <= end]


def hook_readings(database: Path) -> int:
    conn = sqlite3.connect(database)
    try:
        query = "SELECT count(*) FROM readings WHERE line = ? AND source = 'hook'"
        return int(conn.execute(query, (CREDIT_LINE,)).fetchone()[0])
    finally:
        conn.close()


def found(database: Path, answered: list[int], posted: int) -> dict[str, Any]:
    """Whether every push answered 200 left its rows, read with the daemons stopped: its
    hook reading (by its `remaining`) and its delivery key (the body's SHA-256)."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        query = "SELECT balance FROM readings WHERE line = ? AND source = 'hook'"
        balances = collections.Counter(
            Decimal(row[0]) for row in conn.execute(query, (CREDIT_LINE,))
        )
        keys = {row[0] for row in conn.execute("SELECT key FROM hook_deliveries")}
    finally:
        conn.close()
    by_number = {remaining(number): number for number in range(1, posted + 1)}
    no_reading = [n for n in answered if balances[remaining(n)] == 0]
    no_key = [n for n in answered if "sha256:" + _sha256(notification(n)) not in keys]
    twice = sorted(by_number[b] for b, count in balances.items() if count > 1 and b in by_number)
    unanswered = sorted(set(by_number[b] for b in balances if b in by_number) - set(answered))
    return {
        "answered": len(answered),
        "found": sum(1 for n in answered if balances[remaining(n)] and n not in no_key),
        "no_reading": sorted(no_reading),
        "no_delivery_key": sorted(no_key),
        "recorded_twice": twice,
        "recorded_unanswered": len(unanswered),
    }


def _sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def one_run(args: argparse.Namespace, folder: Path, onence_url: str, airalo_url: str) -> dict:
    lines = benchlib.line_ids(args.lines)
    numbers = itertools.count(1)
    port = free_port()
    database = folder / "history.db"
    figures: dict[str, Any] = {}

    idle = write_config(
        folder, lines=lines, onence_url=onence_url, airalo_url=airalo_url, port=port, interval="1d"
    )
    answered: list[int] = []
    with daemon(idle, args.lines):
        before = hook_readings(database)
        load = post_load(port, args.clients, args.seconds, numbers)
        figures["idle"] = load.figures()
        figures["idle"]["recorded"] = hook_readings(database) - before
        answered += load.answered

    busy = write_config(
        folder,
        lines=lines,
        onence_url=onence_url,
        airalo_url=airalo_url,
        port=port,
        interval=args.interval,
    )
    with daemon(busy, args.lines) as running:
        began = time.monotonic()
        time.sleep(args.seconds)
        quiet = cycles_between(running, began, time.monotonic())
        before = hook_readings(database)
        began = time.monotonic()
        load = post_load(port, args.clients, args.seconds, numbers)
        figures["busy"] = load.figures()
        loaded = cycles_between(running, began, time.monotonic())
        figures["busy"]["recorded"] = hook_readings(database) - before
        answered += load.answered
    figures["found"] = found(database, answered, next(numbers) - 1)
    figures["cycles_without_posts"] = quiet
    figures["cycles_with_posts"] = loaded
    figures["cycle_without_posts"] = round(statistics.median(quiet), 2) if quiet else None
    figures["cycle_with_posts"] = round(statistics.median(loaded), 2) if loaded else None
    return figures


def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    code = benchlib.code()
    calibration = [benchlib.calibrate()]
    requests = args.lines * 400 * args.runs + 1000
    runs = []
    with (
        benchlib.fake_onence_server(args.latency, requests, args.timeout + 30) as onence,
        fake_airalo() as airalo_url,
    ):
        for number in range(args.runs):
            sub = folder / f"run{number + 1}"
            sub.mkdir()
            runs.append(one_run(args, sub, onence.base_url, airalo_url))
    calibration.append(benchlib.calibrate())

    def med(key: str, part: str | None = None) -> float | None:
        values = [r[part][key] if part else r[key] for r in runs]
        values = [v for v in values if v is not None]
        return round(statistics.median(values), 2) if values else None

    summary = {
        "busy_per_second": med("per_second", "busy"),
        "busy_p50_ms": med("p50_ms", "busy"),
        "busy_p95_ms": med("p95_ms", "busy"),
        "idle_per_second": med("per_second", "idle"),
        "idle_p50_ms": med("p50_ms", "idle"),
        "idle_p95_ms": med("p95_ms", "idle"),
        "cycle_without_posts": med("cycle_without_posts"),
        "cycle_with_posts": med("cycle_with_posts"),
    }
    if summary["busy_per_second"] and summary["idle_per_second"]:
        summary["busy_over_idle"] = round(
            summary["busy_per_second"] / summary["idle_per_second"], 2
        )
    if summary["cycle_with_posts"] and summary["cycle_without_posts"]:
        ratio = summary["cycle_with_posts"] / summary["cycle_without_posts"]
        summary["cycle_with_over_without"] = round(ratio, 2)
    return {
        "machine": benchlib.machine(),
        "code": code,
        "calibration_ms": calibration,
        "lines": args.lines,
        "latency_ms": round(args.latency * 1000),
        "interval": args.interval,
        "clients": args.clients,
        "seconds": args.seconds,
        "runs": runs,
        "median": summary,
        "fake": onence.counters,
    }


def report(figures: dict[str, Any]) -> str:
    def load(part: dict[str, Any]) -> str:
        return (
            f"{part['per_second']:.0f} POSTs/s accepted ({part['accepted']} in all, "
            f"{part['recorded']} recorded), p50 {part['p50_ms']} ms, p95 {part['p95_ms']} ms"
        )

    out = [
        f"bench/hooks.py: {figures['lines']} lines on one 1NCE account "
        f"({figures['latency_ms']} ms per request, interval {figures['interval']}) and signed "
        f"Airalo credit-limit webhooks from {figures['clients']} client threads, "
        f"{figures['seconds']:g} s per load, {len(figures['runs'])} runs ({figures['machine']})",
        f"  code: {figures['code']}",
        "  calibration loop: {} ms before, {} ms after (lower is faster)".format(
            *figures["calibration_ms"]
        ),
    ]
    for number, run_ in enumerate(figures["runs"], 1):
        out.append(f"  run {number}:")
        out.append(f"    checking: {load(run_['busy'])}")
        out.append(f"    idle:     {load(run_['idle'])}")
        out.append(
            f"    cycle: {run_['cycle_without_posts']} s without POSTs "
            f"({len(run_['cycles_without_posts'])} cycles), {run_['cycle_with_posts']} s with "
            f"({len(run_['cycles_with_posts'])} cycles)"
        )
        odd = {
            k: v
            for part in ("busy", "idle")
            for k, v in run_[part]["answers"].items()
            if k != "200 recorded: a reading"
        }
        if odd:
            out.append(f"    other answers: {odd}")
        out.append(f"    {found_line(run_['found'])}")
    m = figures["median"]
    out.append(
        f"  median: checking {m['busy_per_second']} POSTs/s accepted (p50 {m['busy_p50_ms']} ms, "
        f"p95 {m['busy_p95_ms']} ms); idle {m['idle_per_second']} POSTs/s (p50 "
        f"{m['idle_p50_ms']} ms, p95 {m['idle_p95_ms']} ms); checking/idle "
        f"{m.get('busy_over_idle')}"
    )
    out.append(
        f"  median cycle: {m['cycle_without_posts']} s without POSTs, {m['cycle_with_posts']} s "
        f"with (x{m.get('cycle_with_over_without')})"
    )
    whole = {
        "answered": sum(r["found"]["answered"] for r in figures["runs"]),
        "found": sum(r["found"]["found"] for r in figures["runs"]),
        "recorded_unanswered": sum(r["found"]["recorded_unanswered"] for r in figures["runs"]),
    }
    out.append(f"  all runs: {found_line(whole)}")
    return "\n".join(out)


def found_line(found: dict[str, Any]) -> str:
    line = (
        f"{found['found']}/{found['answered']} 200 answers found in the database "
        "(each its reading and its delivery key)"
    )
    if found["recorded_unanswered"]:
        line += f"; {found['recorded_unanswered']} recorded without a 200 seen (no answer read)"
    return line


def losses(figures: dict[str, Any]) -> list[str]:
    """What contradicts "a 200 is committed": each run's pushes answered 200 without their
    rows, or recorded twice."""
    out = []
    for number, run_ in enumerate(figures["runs"], 1):
        found = run_["found"]
        for key, what in (
            ("no_reading", "answered 200, no reading"),
            ("no_delivery_key", "answered 200, no delivery key"),
            ("recorded_twice", "recorded twice"),
        ):
            if found[key]:
                out.append(f"run {number}: {len(found[key])} {what}: pushes {found[key][:20]}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1000, choices=range(1, 20_001), metavar="N")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per 1NCE request")
    parser.add_argument("--interval", default="2s", help="the lines' interval when checking")
    parser.add_argument("--clients", type=int, default=4, choices=range(1, 65), metavar="N")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each load")
    parser.add_argument("--runs", type=int, default=3, choices=range(1, 11), metavar="N")
    parser.add_argument("--timeout", type=float, default=1800.0, help="whole run, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 600:
        parser.error("--seconds must be between 1 and 600")
    folder = Path(tempfile.mkdtemp(prefix="esim-bench-hooks-"))
    try:
        with benchlib.deadline(args.timeout, "bench/hooks.py"):
            figures = run(args, folder)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(figures, indent=2) if args.json else report(figures))
    if args.keep:
        print(f"  kept: {folder}")
    lost = losses(figures)
    for line in lost:
        print(f"LOST: {line}", file=sys.stderr)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
