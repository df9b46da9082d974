"""Hostile providers next to healthy ones. One cycle (issue 7): one hangs, one answers
garbage, one answers 429 to everything; each is a failed check for its own lines, the
healthy account is read, the cycle ends on its own. An abandoned check gives its worker
back (issue 11.4). And one running daemon among every hostile provider of issue 11 (hang,
drip, huge, gzip bomb, nested encodings, garbage, HTML, wrong types, 429 storm, 5xx, auth
expiry, reset, refused): healthy lines on schedule, memory bounded, SIGTERM within 10 s."""

from __future__ import annotations

import contextlib
import functools
import gzip
import itertools
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fakes import PROVIDERS, Always, FakeProvider, FakeServer, Harness, Provider, Reply, json_reply
from fakes import telnyx as fake_telnyx

from monitor import config
from monitor.adapters import validate_lines
from monitor.cli import load_settings, main
from monitor.cycle import Checker
from monitor.daemon import Daemon
from monitor.errors import CheckFailed
from monitor.store import Store

ACCOUNTS = ("healthy", "hanging", "garbage", "limited")


def test_hostile_providers_fail_alone(tmp_path: Path, clock: Any) -> None:
    servers = {name: FakeServer(fake_telnyx.FakeTelnyx()) for name in ACCOUNTS}
    try:
        servers["hanging"].script("GET", ".*", *[Reply(hold=30)] * 20)
        servers["garbage"].script(
            "GET", ".*", *[Reply(200, "<html><body>Bad gateway</body></html>")] * 20
        )
        servers["limited"].script(
            "GET", ".*", *[json_reply(429, {"errors": []}, **{"Retry-After": "3600"})] * 20
        )
        text = f'[monitor]\ndatabase = "{tmp_path / "h.db"}"\ncheck_timeout = "3s"\n'
        for name, server in servers.items():
            text += (
                f'[accounts.{name}]\nprovider = "telnyx"\napi_key = "{fake_telnyx.API_KEY}"\n'
                f'base_url = "{server.url}"\ntimeout = "2s"\n'
            )
            for i in range(3):
                text += f'[lines.{name}-{i}]\naccount = "{name}"\n'
                text += f'sim_card_id = "{fake_telnyx.SIM_ID}"\n' if i else ""
        path = tmp_path / "config.toml"
        path.write_text(text)
        settings = config.load(path, [validate_lines])
        store = Store.open(settings.database_path())
        checker = Checker(settings)
        try:
            judged = {j.result.line: j.result for j in checker.run(store, list(settings.lines))}
        finally:
            checker.close()
        assert len(judged) == 12
        for i in range(3):
            assert judged[f"healthy-{i}"].error is None
            assert judged[f"healthy-{i}"].reading is not None
            for name in ("hanging", "garbage", "limited"):
                result = judged[f"{name}-{i}"]
                assert result.reading is None and result.error, (name, result)
        assert "429" in judged["limited-1"].error or "rate" in judged["limited-1"].error.lower()
        assert store.status()["garbage-1"].balance is None  # never a zero
        store.close()
    finally:
        for server in servers.values():
            server.close()


@pytest.mark.parametrize("provider", PROVIDERS, ids=str)
def test_each_provider_healthy_low_and_hostile(
    provider: Provider, harness: Harness, clock: Any
) -> None:
    """The provider test base, per provider: the healthy fake reads a data figure, the
    low one reads less, and a hostile one (an HTML error page for every read) is a failed
    check, never a zero; three accounts of one provider, each on its own servers."""
    started = {answer: provider.start() for answer in ("healthy", "low", "hostile")}
    try:
        provider.low([server.provider for server in started["low"]])
        for server in started["hostile"]:
            provider.hostile(server)
        read = {
            answer: harness.read(
                harness.settings(provider.config([s.url for s in servers])), provider.data_line
            )
            for answer, servers in started.items()
            if answer != "hostile"
        }
        healthy, low = read["healthy"].data_remaining, read["low"].data_remaining
        assert healthy is not None and low is not None and 0 <= low < healthy, (healthy, low)
        settings = harness.settings(provider.config([s.url for s in started["hostile"]]))
        with pytest.raises(CheckFailed):
            harness.read(settings, provider.data_line)
    finally:
        for servers in started.values():
            for server in servers:
                server.close()


# ---- abandoned checks give their worker back (issue 11.4) --------------------------------


def test_an_abandoned_check_gives_its_worker_back(tmp_path: Path) -> None:
    """A provider that never answers, read with a budget longer than `check_timeout`: the
    cycle abandons the check and shuts its socket, so the worker comes back. (Before, each
    abandoned worker stayed stuck; one worker doubled at most, two cycles of a silent line
    took every thread and the healthy line was "not started ... every worker was busy".)"""
    silent = FakeServer(Always(Reply(hold=120)))
    healthy = FakeServer(Always(json_reply(200, {"balance": "12.50", "currency": "USD"})))
    try:
        text = f'[monitor]\ndatabase = "{tmp_path / "h.db"}"\nworkers = 1\ncheck_timeout = "1s"\n'
        text += json_account("silent", silent.url, timeout="60s") + json_line("silent-0", "silent")
        text += json_account("healthy", healthy.url) + json_line("healthy-0", "healthy")
        path = tmp_path / "config.toml"
        path.write_text(text)
        settings = config.load(path, [validate_lines])
        store = Store.open(settings.database_path())
        checker = Checker(settings)
        try:
            for _ in range(3):
                (silent_check,) = checker.run(store, ["silent-0"])
                assert silent_check.result.error == "no answer within 1 s (check_timeout)"
            (healthy_check,) = checker.run(store, ["healthy-0"])
        finally:
            checker.close()
        assert healthy_check.result.error is None
        assert healthy_check.result.reading is not None
        store.close()
    finally:
        silent.close()
        healthy.close()


def json_account(name: str, url: str, timeout: str = "2s") -> str:
    """An `http_json` account reading {"balance", "currency"} from GET /balance."""
    return (
        f'[accounts.{name}]\nprovider = "http_json"\nbase_url = "{url}"\nauth = "none"\n'
        f'url = "/balance"\nbalance = "balance"\ncurrency = "currency"\ntimeout = "{timeout}"\n'
    )


def json_line(line: str, account: str) -> str:
    return f'[lines.{line}]\naccount = "{account}"\n'


# ---- one daemon among hostile providers (issue 11, "Tests and figures") ------------------

HEALTHY_LINES = 8
PEAK_RSS_BOUND = 200 << 20
"""Bytes. Measured about 97 MiB with the bounds in place (3.5 GiB without)."""


@functools.cache
def gzip_bomb() -> bytes:
    """128 MiB of a JSON string that travel as about 128 KiB of gzip."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"0" * (1 << 20)
    parts = [packer.compress(b'{"balance": "1", "currency": "USD", "padding": "')]
    parts += [packer.compress(chunk) for _ in range(128)]
    parts += [packer.compress(b'"}'), packer.flush()]
    return b"".join(parts)


def hostile_replies() -> dict[str, Reply | None]:
    """What each hostile provider does to every request (None: nothing listens)."""
    padding = {"balance": "1", "currency": "USD", "padding": "x" * 4000}
    huge = b'{"balance": "1", "currency": "USD", "padding": "' + b"0" * (50 << 20) + b'"}'
    encoded = {"Content-Encoding": "gzip"}
    return {
        "hang": Reply(hold=120),
        "drip": Reply(200, padding, drip=0.2),
        "drip-body": Reply(200, padding, drip=0.2, drip_body=True),
        "huge": Reply(200, huge, content_type="application/json", length=False),
        "bomb": Reply(200, gzip_bomb(), encoded, "application/json"),
        "nested": Reply(
            200, gzip.compress(gzip_bomb()), {"Content-Encoding": "gzip, gzip"}, "application/json"
        ),
        "garbage": Reply(200, bytes(range(256)) * 4, content_type="application/json"),
        "html": Reply(200, "<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
        "wrong-types": json_reply(200, {"balance": {"amount": [1]}, "currency": 12}),
        "storm": json_reply(429, {"message": "slow down"}, **{"Retry-After": "3600"}),
        "5xx": json_reply(503, {"message": "down for maintenance"}),
        "expired": json_reply(401, {"message": "token expired"}),
        "reset": Reply(reset=True),
        "refused": None,
    }


EXPECTED = {
    "hang": "no answer within",
    "drip": "no answer within",
    "drip-body": "no answer within",
    "huge": "more than 1 MiB",
    "bomb": "more than 1 MiB",
    "nested": "nested content encodings",
    "garbage": "malformed JSON",
    "html": "HTML",
    "wrong-types": "usable figure",
    "storm": "rate limiting",
    "5xx": "HTTP 503",
    "expired": "authentication failed",
    "reset": "connection failed",
    "refused": "connection failed",
}


class LogPump:
    """The daemon's JSON log lines (stderr), drained all the time so it never blocks."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.events: list[dict[str, Any]] = []
        self._seen = threading.Condition()
        self._proc = proc
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            try:
                entry = json.loads(line)
            except ValueError:
                entry = {"event": line.strip()}
            with self._seen:
                self.events.append(entry)
                self._seen.notify_all()

    def wait_for(self, event: str, after: int = 0, within: float = 60) -> int:
        """The index of the first `event` logged at or after index `after`."""

        def find() -> int | None:
            return next(
                (i for i in range(after, len(self.events)) if self.events[i]["event"] == event),
                None,
            )

        with self._seen:
            self._seen.wait_for(lambda: find() is not None, timeout=within)
            found = find()
        assert found is not None, f"no {event!r} logged within {within:g} s"
        return found


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc for the RSS")
def test_a_daemon_among_hostile_providers(tmp_path: Path) -> None:
    """Every hostile provider beside healthy lines in one running daemon: each hostile
    line fails alone with a clear reason, the healthy lines are checked on schedule, the
    memory stays bounded, nothing stored exceeds 4 KiB, and SIGTERM mid-cycle ends it
    within 10 s. Before the fix, the drip lines held every cycle until check_timeout."""
    replies = hostile_replies()
    healthy = {"balance": "12.50", "currency": "USD"}
    big = {"balance": "7.00", "currency": "USD", "padding": "0" * 200_000}
    servers = {"healthy": FakeServer(Always(json_reply(200, healthy)))}
    servers["big"] = FakeServer(Always(json_reply(200, big)))
    servers |= {name: FakeServer(Always(r)) for name, r in replies.items() if r is not None}
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused_url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    database = tmp_path / "history.db"
    text = (
        f'[monitor]\ndatabase = "{database}"\ninterval = "2s"\ncheck_timeout = "20s"\n'
        "workers = 16\nbreaker_after = 0\n"
    )
    text += json_account("healthy", servers["healthy"].url)
    text += "".join(json_line(f"healthy-{i}", "healthy") for i in range(HEALTHY_LINES))
    text += json_account("big", servers["big"].url) + json_line("big-0", "big")
    for name in replies:
        url = servers[name].url if name in servers else refused_url
        text += (
            json_account(name, url) + json_line(f"{name}-0", name) + json_line(f"{name}-1", name)
        )
    path = tmp_path / "config.toml"
    path.write_text(text)
    command = [sys.executable, "-m", "monitor", "--config", str(path)]
    command += ["--log-format", "json", "--log-level", "debug", "run"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        logs = LogPump(proc)
        logs.wait_for("esim-monitor started")
        healthy_lines = [f"healthy-{i}" for i in range(HEALTHY_LINES)]
        readings = wait_for_readings(database, healthy_lines, at_least=5, within=90)
        assert proc.poll() is None, "the daemon died"
        peak = peak_rss(proc.pid)
        print(f"\npeak RSS of the daemon among hostile providers: {peak / 2**20:.1f} MiB")
        assert peak < PEAK_RSS_BOUND
        # SIGTERM mid-cycle: right after a healthy line is recorded, hostile checks run on
        logs.wait_for("line checked", after=len(logs.events))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for server in servers.values():
            server.close()
    for line in healthy_lines:
        times = [checked_at for checked_at, ok, _ in readings[line]]
        assert all(ok for _, ok, _ in readings[line]), readings[line]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        assert max(gaps) < 10, (line, gaps)  # every 2 s, plus a cycle bounded by 2 s budgets
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT line, ok, error, raw FROM readings").fetchall()
    for line, ok, error, raw in rows:
        kind = line.rsplit("-", 1)[0]
        assert len((raw or "").encode()) <= 4096 and len((error or "").encode()) <= 4096
        if kind in ("healthy", "big"):
            assert ok == 1, (line, error)
        else:
            assert ok == 0 and EXPECTED[kind] in error, (line, error)
    assert {line for line, *_ in rows} >= {f"{name}-{i}" for name in replies for i in (0, 1)}


def wait_for_readings(
    database: Path, lines: list[str], at_least: int, within: float
) -> dict[str, list[tuple[datetime, bool, str | None]]]:
    """Each line's readings (time, ok, error) once every line has `at_least` of them."""
    deadline = time.monotonic() + within
    while True:
        found: dict[str, list[tuple[datetime, bool, str | None]]] = {line: [] for line in lines}
        if database.exists():
            with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
                try:
                    rows = db.execute(
                        "SELECT line, checked_at, ok, error FROM readings ORDER BY checked_at"
                    ).fetchall()
                except sqlite3.OperationalError:  # not created yet
                    rows = []
            for line, checked_at, ok, error in rows:
                if line in found:
                    found[line].append((datetime.fromisoformat(checked_at), bool(ok), error))
        if all(len(found[line]) >= at_least for line in lines):
            return found
        counts = {line: len(found[line]) for line in lines}
        assert time.monotonic() < deadline, f"healthy lines not checked on schedule: {counts}"
        time.sleep(0.2)


# ---- out-of-range figures (issue 11.1) ----------------------------------------------------

HEALTHY = b'{"data": {"remaining": 500, "total": 1000}, "balance": "5.00"}'


class Figures(FakeProvider):
    """A JSON API whose healthy lines answer plausible figures and whose /bad path answers
    the one hostile body (sent as raw bytes: exactly the text a hostile server writes)."""

    def __init__(self, hostile: bytes) -> None:
        self.hostile = hostile

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            (
                "GET",
                "/bad",
                lambda request, match: Reply(200, self.hostile, {}, "application/json"),
            ),
            ("GET", "/ok/.*", lambda request, match: Reply(200, HEALTHY, {}, "application/json")),
        ]


def figures_config(tmp_path: Path, url: str, bad: str = "") -> Path:
    text = f"""
[monitor]
database = "{tmp_path / "h.db"}"
[accounts.acme]
provider = "http_json"
base_url = "{url}"
url = "/ok/{{line}}"
balance = "balance"
currency = "'EUR'"
data_remaining = "data.remaining"
data_total = "data.total"
data_unit = "MB"
expires_at = "expires"
"""
    for i in range(25):
        text += f'[lines.ok{i}]\naccount = "acme"\n'
    text += f'[lines.bad]\naccount = "acme"\nurl = "/bad"\n{bad}'
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


HOSTILE = {
    # 10**14 MB is 10**20 bytes: past SQLite's integers (OverflowError, 0 of 26 recorded)
    "data past 2**63": (b'{"data": {"remaining": 1e14}}', "", "is outside 0..10^18 bytes"),
    "data 10**40": (b'{"data": {"remaining": 1' + b"0" * 40 + b"}}", "", "is 10^19 or more"),
    "money 1e999999999": (b'{"balance": "1e999999999"}', "", "out of range for money"),
    "money 1e-999999999": (b'{"balance": "1e-999999999"}', "", "more than 18 decimal places"),
    "money NaN": (b'{"balance": "NaN"}', "", "finite"),
    "money Infinity": (b'{"balance": "-Infinity"}', "", "finite"),
    "year 9999": (b'{"expires": "9999-12-31T23:59:59Z"}', "", "outside the years 1970..2200"),
    "year 1900": (b'{"expires": "1900-01-01T00:00:00Z"}', "", "outside the years 1970..2200"),
    "epoch 1e10": (b'{"expires": 1e10}', 'date_format = "epoch"\n', "outside the years"),
    "epoch 1e20": (b'{"expires": 1e20}', 'date_format = "epoch"\n', "seconds since 1970"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_one_out_of_range_figure_fails_its_line_alone(
    case: str, tmp_path: Path, serve: Callable[[FakeProvider], FakeServer]
) -> None:
    """`run --once` with 25 healthy lines and one hostile: the 25 are recorded, the hostile
    line is a failed check saying which figure is out of range (never a zero, never a line
    left unknown with nothing recorded), the run exits 0 as any run; then the daemon's
    passes go on checking every line."""
    body, bad, expected = HOSTILE[case]
    server = serve(Figures(body))
    path = figures_config(tmp_path, server.url, bad)
    assert main(["--config", str(path), "run", "--once"]) == 0
    db = sqlite3.connect(tmp_path / "h.db")
    ok = db.execute("SELECT count(*) FROM readings WHERE ok = 1 AND line != 'bad'").fetchone()
    assert ok == (25,)
    rows = db.execute(
        "SELECT ok, error, balance, data_remaining, expires_us FROM readings WHERE line = 'bad'"
    ).fetchall()
    assert len(rows) == 1 and rows[0][0] == 0 and rows[0][2:] == (None, None, None), rows
    assert expected in rows[0][1]
    state = db.execute("SELECT level, failures FROM line_state WHERE line = 'bad'").fetchone()
    assert state == (None, 1)

    settings = load_settings(path)
    daemon = Daemon(settings, lambda: settings)
    try:
        for _ in range(2):
            daemon._due.update(settings.lines)
            daemon._pass()  # a pass that raised would be "loop pass failed unexpectedly"
    finally:
        daemon.close()
    counts = dict(db.execute("SELECT line, count(*) FROM readings GROUP BY line").fetchall())
    assert counts == {line: 3 for line in settings.lines}
    db.close()
