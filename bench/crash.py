"""The crash suite: SIGKILL a running daemon at random moments, and after every kill check
that nothing it had committed was lost or doubled.

One daemon (a real `esim-monitor run` subprocess) watches `--lines` lines of an `http_json`
account on a loopback fake provider whose balances cycle ok -> warning -> critical, so
every check raises alerts and every critical need runs a top-up. Its alerts go to two
`json://` channels on a loopback receiver that records every message it is handed; half
the lines top up through a `command` action that appends the need's key to a file, then
takes a while to answer (as a real top-up does). Each trial starts the daemon, waits a
random moment (during startup in one trial of five, else within `--window` seconds after
"esim-monitor started"), takes a snapshot of the committed readings, SIGKILLs it, and
checks, with the daemon dead:

- readings: every reading seen committed before any kill so far is still there, unchanged;
  every stored balance is one the provider served, and none is stored twice;
- alerts: every delivery the database marks sent was received (none lost), and nothing was
  received that is no event of the database (the receiver's copies, counted per rendered
  title and body, never outnumber the outbox rows, except for re-sends that a kill
  explains: see below);
- top-ups: no need key ran the command twice, every key the command saw is in the ledger,
  every ledger row that reached `submitted` ran the command exactly once, no critical
  reading led to two top-ups, and each ledger outcome has its alert;
- `PRAGMA integrity_check` is ok and `PRAGMA foreign_key_check` finds nothing.

After the last trial the provider turns steady, failed deliveries are brought forward, and
a last daemon runs until the outbox is empty and no top-up is unsettled; then it is stopped
with SIGTERM and the whole history is checked again: every outbox row sent, and the
receiver's copies equal the outbox rows.

A kill between the receiver taking a message and the daemon committing "sent" makes the
next daemon send it again: delivery is at least once. Such kills are counted per trial (the
copies a trial's receiver got beyond the rows that trial marked sent) and reported as
`in_flight_resends`. Each channel's worker sends one message at a time, so one kill can
cut at most one send per channel: more is a violation (sends marked in a batch, say), and
so is a double that no such kill explains. Both channels set `group = false`: a grouped
message stands for several rows under one text, so it could not be matched to its rows
here; that a group's rows are marked sent or failed together is tested in
tests/test_notify.py.

    python bench/crash.py --trials 40            # figures on stdout; exit 1 on a violation
    python bench/crash.py --trials 30 --json     # the report as one JSON object

The database opened after each kill is opened read-only, so the next daemon meets the
crash's files (a hot WAL) as they were left.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import benchlib

from monitor.cli import load_settings
from monitor.config import Settings
from monitor.model import Event
from monitor.notify import render
from monitor.store import codec

PHASES = (Decimal(20), Decimal(8), Decimal(3), Decimal(3), Decimal(3))
"""What the fake provider answers, in turn per line: ok, warning, then critical three times
(one need spanning several checks, and often a restart)."""
STEADY = Decimal(50)
WARNING, CRITICAL = 10, 5
STARTUP_SHARE = 0.2
"""Share of trials killed at a random moment of startup (imports, migrations)."""
START_TIMEOUT = 60.0
DRAIN_TIMEOUT = 60.0
TOPUP_SECONDS = 0.2
"""How long the top-up command takes after it has "bought" (appended its key)."""


# ---- the loopback provider and receiver ----------------------------------------------------


class Server(ThreadingHTTPServer):
    """A threaded server on 127.0.0.1 that takes a client killed mid-request calmly."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Provider:
    """A JSON API on 127.0.0.1: GET /lines/ID answers {"balance": B, "currency": "USD"}.

    Each answer's balance is one of PHASES in turn for that line, less a serial in the
    millionths that makes every answer unique (a stored balance names the answer it came
    from) and never looks like a top-up within a phase. `steady` makes every line ok."""

    def __init__(self) -> None:
        self.served: dict[str, str] = {}
        """Balance text -> line, for every answer sent."""
        self.steady = False
        self._counts: Counter[str] = Counter()
        self._serial = 0
        self._lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                line = self.path.rsplit("/", 1)[-1]
                body = json.dumps(
                    {"balance": "BALANCE", "currency": "USD"}, separators=(",", ":")
                ).replace('"BALANCE"', provider.answer(line))
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = Server(Handler)

    def answer(self, line: str) -> str:
        with self._lock:
            self._serial += 1
            if line not in self._counts:  # lines start at different phases
                self._counts[line] = len(self._counts)
            base = STEADY if self.steady else PHASES[self._counts[line] % len(PHASES)]
            self._counts[line] += 1
            text = f"{base - Decimal(self._serial).scaleb(-6):f}"
            self.served[text] = line
            return text

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class Received:
    channel: str
    title: str
    body: str
    trial: int


class Receiver:
    """What Apprise's json:// plugin posts to 127.0.0.1/CHANNEL, recorded on arrival (a real
    receiver acts on what it got, whatever becomes of its answer). It answers after
    `latency` seconds, and 503 (recording nothing) to a `failures` share of posts."""

    def __init__(self, latency: float, failures: float, seed: int) -> None:
        self.received: list[Received] = []
        self.failures = failures
        self.trial = 0
        self.refused = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                with receiver._lock:
                    refuse = receiver._rng.random() < receiver.failures
                try:
                    message = json.loads(body)
                except ValueError:  # cut off by a kill: never delivered
                    return
                if refuse:
                    with receiver._lock:
                        receiver.refused += 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with receiver._lock:
                    receiver.received.append(
                        Received(
                            self.path.strip("/"),
                            str(message.get("title", "")),
                            str(message.get("message", "")),
                            receiver.trial,
                        )
                    )
                time.sleep(latency)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = Server(Handler)

    def url(self, channel: str) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/{channel}"

    def copies(self, trial: int | None = None) -> Counter[tuple[str, str, str]]:
        with self._lock:
            return Counter(
                (m.channel, m.title, m.body)
                for m in self.received
                if trial is None or m.trial == trial
            )

    def trials_of(self, key: tuple[str, str, str]) -> list[int]:
        with self._lock:
            return [m.trial for m in self.received if (m.channel, m.title, m.body) == key]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---- the daemon under test -----------------------------------------------------------------


def write_config(folder: Path, lines: int, provider: Provider, receiver: Receiver) -> Path:
    topups = folder / "topups.log"
    script = (
        f'echo "$ESIM_MONITOR_KEY" >> {json.dumps(str(topups))}; '
        f'sleep {TOPUP_SECONDS}; echo "$ESIM_MONITOR_KEY"'
    )
    out = [
        "[monitor]",
        f"database = {json.dumps(str(folder / 'history.db'))}",
        'interval = "1s"',
        'notify_timeout = "10s"',
        "",
        "[defaults.thresholds]",
        f"balance_warning = {WARNING}",
        f"balance_critical = {CRITICAL}",
        "",
        "[recharge]",
        "enabled = true",
        "",
        "[channels.full]",
        f"url = {json.dumps(receiver.url('full'))}",
        "group = false",
        "",
        "[channels.short]",
        f"url = {json.dumps(receiver.url('short'))}",
        'format = "short"',
        "group = false",
        "",
        "[accounts.fake]",
        'provider = "http_json"',
        f"base_url = {json.dumps(provider.base_url)}",
        'auth = "none"',
        'url = "/lines/{line}"',
        'balance = "balance"',
        'currency = "currency"',
        'timeout = "5s"',
    ]
    for index in range(1, lines + 1):
        out += ["", f"[lines.l{index}]", 'account = "fake"']
        if index % 2:
            out += [
                f"[lines.l{index}.recharge]",
                'action = "command"',
                f"argv = {json.dumps(['/bin/sh', '-c', script])}",
                "max_per_day = 1000000",
                "max_per_month = 1000000",
                'cooldown = "0s"',
                'verify_within = "1h"',
                'timeout = "10s"',
            ]
    path = folder / "config.toml"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def daemon_env() -> dict[str, str]:
    """The daemon's environment: this one's, without systemd's or the monitor's variables."""
    skip = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "CREDENTIALS_DIRECTORY")
    return {
        k: v for k, v in os.environ.items() if not k.startswith("ESIM_MONITOR_") and k not in skip
    }


def start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(config), "--log-format=json", "run"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=daemon_env(),
        )


def wait_for_log(proc: subprocess.Popen[bytes], log: Path, event: str, timeout: float) -> int:
    """Wait until the daemon logged `event`; how many times it has. Fails past `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = sum(1 for r in benchlib.log_events(log) if r.get("event") == event)
        if count:
            return count
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited {proc.returncode} before {event!r}: {tail(log)}")
        time.sleep(0.02)
    raise RuntimeError(f"no {event!r} from the daemon within {timeout:g} s: {tail(log)}")


def tail(log: Path, lines: int = 5) -> str:
    return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])


# ---- what the database holds ---------------------------------------------------------------


def read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection: it neither checkpoints nor removes the WAL a crash left."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    return conn


def readings(conn: sqlite3.Connection) -> dict[int, tuple[Any, ...]]:
    rows = conn.execute("SELECT id, line, checked_at, ok, balance, error FROM readings")
    return {row["id"]: tuple(row) for row in rows}


@dataclass
class Outbox:
    """Per (channel, title, body): how many outbox rows, and how many marked sent (also
    per trial, by when they were marked)."""

    rows: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    sent: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    sent_between: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    events: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(line, event type) -> events."""


def outbox(conn: sqlite3.Connection, settings: Settings, since: str, until: str) -> Outbox:
    """The outbox rendered as each channel's message; `sent_between` counts the rows
    marked sent in (since, until]."""
    box = Outbox()
    for event in conn.execute("SELECT line, type FROM events"):
        box.events[(event["line"], event["type"])] += 1
    query = (
        "SELECT d.channel, d.status, d.sent_at, e.line, e.type, e.created_at, e.facts "
        "FROM deliveries d JOIN events e ON e.id = d.event_id"
    )
    for row in conn.execute(query):
        event = Event(
            row["type"],
            row["line"] or "",
            datetime.fromisoformat(row["created_at"]),
            codec.parse_facts(row["facts"]),
        )
        title, body = render(event, settings.channels[row["channel"]], settings)
        key = (row["channel"], title, body)
        box.rows[key] += 1
        box.by_status[row["status"]] += 1
        if row["status"] == "sent":
            box.sent[key] += 1
            if since < row["sent_at"] <= until:
                box.sent_between[key] += 1
    return box


def ledger(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute("SELECT * FROM recharges ORDER BY id")]


# ---- the checks ----------------------------------------------------------------------------


@dataclass
class Report:
    seed: int
    trials: int = 0
    kills: int = 0
    kills_by_phase: Counter[str] = field(default_factory=Counter)
    readings_committed: int = 0
    readings_checks: int = 0
    """Sum over kills of the committed readings checked after it."""
    readings_total: int = 0
    events_total: int = 0
    deliveries_total: int = 0
    received_total: int = 0
    refused_total: int = 0
    distinct_messages: int = 0
    in_flight_resends: int = 0
    doubles: int = 0
    doubled: list[str] = field(default_factory=list)
    """Each alert received more often than the outbox holds it, and in which trials."""
    topups_run: int = 0
    critical_readings: int = 0
    critical_spells: int = 0
    ledger_states: Counter[str] = field(default_factory=Counter)
    integrity_checks: int = 0
    seconds: float = 0.0
    violations: list[str] = field(default_factory=list)
    repeated: Counter[str] = field(default_factory=Counter)
    """Per kind of violation, how many later checks found it again."""

    def as_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["kills_by_phase"] = dict(self.kills_by_phase)
        out["ledger_states"] = dict(self.ledger_states)
        out["repeated"] = dict(self.repeated)
        return out


class Suite:
    def __init__(self, folder: Path, args: argparse.Namespace) -> None:
        self.folder = folder
        self.rng = random.Random(args.seed)
        self.window = args.window
        self.provider = Provider()
        self.receiver = Receiver(args.latency, args.failures, args.seed)
        self.config = write_config(folder, args.lines, self.provider, self.receiver)
        self.settings = load_settings(self.config)
        self.database = self.settings.database_path()
        self.topups = folder / "topups.log"
        self.committed: dict[int, tuple[Any, ...]] = {}
        self.report = Report(seed=args.seed)
        self._kinds: set[str] = set()
        self._marks: list[str] = [ts(datetime(2000, 1, 1, tzinfo=UTC))]
        """The UTC time of each kill, after a starting mark (delivery windows)."""

    def close(self) -> None:
        self.provider.close()
        self.receiver.close()

    def fail(self, trial: int, text: str) -> None:
        """Record a violation once: the first time its kind (the text before its first
        colon, figures aside) is seen, with a count of the checks that found it again."""
        kind = re.sub(r"\d+", "#", text.split(":")[0])
        if kind in self._kinds:
            self.report.repeated[kind] += 1
            return
        self._kinds.add(kind)
        self.report.violations.append(f"trial {trial}: {text}")

    # -- one trial

    def trial(self, number: int) -> None:
        self.receiver.trial = number
        log = self.folder / f"daemon-{number:03d}.log"
        proc = start_daemon(self.config, log)
        try:
            if self.rng.random() < STARTUP_SHARE:
                time.sleep(self.rng.uniform(0.0, 1.5))
            else:
                wait_for_log(proc, log, "esim-monitor started", START_TIMEOUT)
                time.sleep(self.rng.uniform(0.0, self.window))
            if proc.poll() is not None:
                self.fail(number, f"the daemon exited {proc.returncode} by itself: {tail(log)}")
            elif self.database.exists():
                with read_only(self.database) as conn:
                    self.committed.update(readings(conn))
                conn.close()
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                self.report.kills += 1
            proc.wait(timeout=30)
        self._marks.append(ts(datetime.now(UTC)))
        events = benchlib.log_events(log)
        self.report.kills_by_phase[events[-1]["event"] if events else "(before logging)"] += 1
        self.report.trials += 1
        self.check(number, final=False)

    # -- the checks after a kill (daemon dead)

    def check(self, number: int, final: bool) -> None:
        if not self.database.exists():
            return
        with read_only(self.database) as conn:
            integrity = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            if integrity != ["ok"]:
                self.fail(number, f"integrity_check: {integrity[:5]}")
            foreign = conn.execute("PRAGMA foreign_key_check").fetchall()
            if foreign:
                self.fail(number, f"foreign_key_check: {[tuple(r) for r in foreign[:5]]}")
            self.report.integrity_checks += 1
            now = readings(conn)
            box = outbox(conn, self.settings, self._marks[-2], self._marks[-1])
            rows = ledger(conn)
        conn.close()
        self.check_readings(number, now)
        self.check_alerts(number, box, final)
        self.check_topups(number, rows, box, now, final)

    def check_readings(self, number: int, now: dict[int, tuple[Any, ...]]) -> None:
        lost = [rid for rid in self.committed if rid not in now]
        changed = [rid for rid in self.committed if rid in now and now[rid] != self.committed[rid]]
        if lost:
            self.fail(number, f"{len(lost)} committed readings lost (ids {lost[:5]})")
        if changed:
            self.fail(number, f"{len(changed)} committed readings changed (ids {changed[:5]})")
        self.report.readings_checks += len(self.committed)
        balances = Counter(row[4] for row in now.values() if row[4] is not None)
        twice = [b for b, n in balances.items() if n > 1]
        if twice:
            self.fail(number, f"readings stored twice: balances {twice[:5]}")
        served = self.provider.served
        strange = [row for row in now.values() if row[4] is not None and row[4] not in served]
        if strange:
            self.fail(number, f"readings the provider never served: {strange[:3]}")
        wrong_line = [row for row in now.values() if row[4] in served and served[row[4]] != row[1]]
        if wrong_line:
            self.fail(number, f"readings stored under another line: {wrong_line[:3]}")
        self.report.readings_total = len(now)
        self.report.readings_committed = len(self.committed)
        self.committed.update(now)

    def check_alerts(self, number: int, box: Outbox, final: bool) -> None:
        received = self.receiver.copies()
        lost = {k: n - received[k] for k, n in box.sent.items() if received[k] < n}
        if lost:
            self.fail(number, f"marked sent, never received: {_sample(lost)}")
        unknown = {k: n for k, n in received.items() if k not in box.rows}
        if unknown:
            self.fail(number, f"received, no such alert in the outbox: {_sample(unknown)}")
        if not final:
            # What this trial's receiver got beyond what the trial marked sent: a send the
            # kill cut between arrival and commit, which the next daemon makes again. Each
            # channel's worker sends one message at a time (channels in parallel), so one
            # kill can cut one send per channel at most.
            cut: Counter[str] = Counter()
            for k, n in self.receiver.copies(number).items():
                cut[k[0]] += max(n - box.sent_between[k], 0)
            for channel, count in cut.items():
                if count > 1:
                    self.fail(
                        number,
                        f"{count} alerts of channel {channel} received but not marked sent "
                        "at one kill",
                    )
            self.report.in_flight_resends += sum(min(count, 1) for count in cut.values())
        doubles = sum(max(n - box.rows[k], 0) for k, n in received.items() if k in box.rows)
        self.report.doubles = doubles
        self.report.doubled = [
            f"{k[0]} {k[1] or k[2]!r}: received in trials {self.receiver.trials_of(k)}"
            for k, n in received.items()
            if n > box.rows.get(k, n)
        ]
        if final and doubles < self.report.in_flight_resends:
            self.fail(
                number, f"{self.report.in_flight_resends} sends cut by a kill, {doubles} resent"
            )
        if doubles > self.report.in_flight_resends:
            extra = {k: n - box.rows[k] for k, n in received.items() if n > box.rows.get(k, n)}
            self.fail(
                number,
                f"{doubles} alerts received twice, only {self.report.in_flight_resends} "
                f"explained by a kill in flight: {_sample(extra)}",
            )
        if final:
            unsent = {k: n - box.sent[k] for k, n in box.rows.items() if box.sent[k] < n}
            if unsent:
                self.fail(number, f"after the final run, outbox rows not sent: {_sample(unsent)}")
            missing = {k: n - received[k] for k, n in box.rows.items() if received[k] < n}
            if missing:
                self.fail(number, f"alerts never received: {_sample(missing)}")
        self.report.events_total = sum(box.events.values())
        self.report.deliveries_total = sum(box.rows.values())
        self.report.received_total = sum(received.values())
        self.report.refused_total = self.receiver.refused
        self.report.distinct_messages = len(box.rows)

    def check_topups(
        self,
        number: int,
        rows: list[dict[str, Any]],
        box: Outbox,
        now: dict[int, tuple[Any, ...]],
        final: bool,
    ) -> None:
        ran = self.topups.read_text().split() if self.topups.exists() else []
        counts = Counter(ran)
        by_key = {row["key"]: row for row in rows}
        twice = [k for k, n in counts.items() if n > 1]
        if twice:
            self.fail(number, f"top-up command ran twice for one need: {twice[:3]}")
        outside = [k for k in counts if k not in by_key]
        if outside:
            self.fail(number, f"top-ups with no ledger row: {outside[:3]}")
        for row in rows:
            runs = counts[row["key"]]
            if row["state"] in ("submitted", "confirmed", "unconfirmed") and runs != 1:
                self.fail(number, f"ledger says {row['state']}, command ran {runs}x: {row['key']}")
            if row["state"] == "failed" and runs:
                self.fail(number, f"ledger says failed, yet the command ran: {row['key']}")
            if final and row["state"] in ("requested", "submitted"):
                self.fail(number, f"after the final run, top-up still {row['state']}: {row['key']}")
        # One need is one critical spell (a line's critical readings in a row): one top-up
        # at most, each after a critical reading of its line.
        ordered = sorted((row[1], row[2], row[4]) for row in now.values() if row[4] is not None)
        spell_of: dict[tuple[str, str], int] = {}
        last: dict[str, tuple[str, int]] = {}
        for line, checked_at, balance in ordered:
            if Decimal(balance) <= CRITICAL:
                previous = last.get(line)
                spell = previous[1] if previous and previous[0] == "critical" else len(spell_of)
                spell_of[(line, checked_at)] = spell
                last[line] = ("critical", spell)
            else:
                last[line] = ("ok", -1)
        self.report.critical_readings = len(spell_of)
        self.report.critical_spells = len(set(spell_of.values()))
        per_spell: Counter[int] = Counter()
        for row in rows:
            if row["state"] in ("skipped", "dry-run"):
                continue
            before = [r for r in ordered if r[0] == row["line"] and r[1] <= row["requested_at"]]
            spell = spell_of.get(before[-1][:2]) if before else None
            if spell is None:
                self.fail(number, f"a top-up not after a critical reading: {row['key']}")
                continue
            per_spell[spell] += 1
        doubled = [n for n in per_spell.values() if n > 1]
        if doubled:
            self.fail(number, f"{len(doubled)} critical spells with more than one top-up")
        # Each ledger outcome has its alert (counted per line).
        states = Counter((row["line"], row["state"]) for row in rows)
        for line in {row["line"] for row in rows}:
            reached = sum(states[(line, s)] for s in ("submitted", "confirmed", "unconfirmed"))
            settled_bad = states[(line, "unknown")] + states[(line, "failed")]
            expected = {
                "recharge-requested": reached,
                "recharge-confirmed": states[(line, "confirmed")],
                "recharge-unconfirmed": states[(line, "unconfirmed")],
                "recharge-failed": settled_bad,
            }
            for kind, want in expected.items():
                have = box.events[(line, kind)]
                if have != want:
                    self.fail(
                        number, f"{kind} events of {line} not as in the ledger: {have}, not {want}"
                    )
        self.report.topups_run = len(ran)
        self.report.ledger_states = Counter(row["state"] for row in rows)

    # -- the end: a last daemon empties the outbox, then a clean stop

    def final(self) -> None:
        self.provider.steady = True
        self.receiver.failures = 0.0  # a refusal now would wait out a 30 s retry
        number = self.report.trials + 1
        self.receiver.trial = number
        if self.database.exists():
            with sqlite3.connect(self.database, timeout=10) as conn:  # retries: due now
                conn.execute(
                    "UPDATE deliveries SET next_attempt_at = ? WHERE status = 'pending'",
                    [self._marks[0]],
                )
            conn.close()
        log = self.folder / "daemon-final.log"
        proc = start_daemon(self.config, log)
        try:
            wait_for_log(proc, log, "esim-monitor started", START_TIMEOUT)
            deadline = time.monotonic() + DRAIN_TIMEOUT
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the final daemon exited {proc.returncode}: {tail(log)}")
                if self._settled(log):
                    break
                if time.monotonic() > deadline:
                    self.fail(number, f"the final run did not settle in {DRAIN_TIMEOUT:g} s")
                    break
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            if code != 0:
                self.fail(number, f"the final daemon exited {code} on SIGTERM: {tail(log)}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self._marks.append(ts(datetime.now(UTC)))
        self.check(number, final=True)

    def _settled(self, log: Path) -> bool:
        """Every line checked twice since the start (interrupted top-ups reconciled, the
        steady readings in), the outbox empty, no top-up in the air."""
        done = sum(1 for r in benchlib.log_events(log) if r.get("event") == "checks done")
        if done < 3:
            return False
        with read_only(self.database) as conn:
            pending = conn.execute(
                "SELECT count(*) FROM deliveries WHERE status = 'pending'"
            ).fetchone()[0]
            open_ = conn.execute(
                "SELECT count(*) FROM recharges WHERE state IN ('requested', 'submitted')"
            ).fetchone()[0]
        conn.close()
        return pending == 0 and open_ == 0


def ts(moment: datetime) -> str:
    """The store's time format (monitor.store.ts): text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _sample(found: dict[tuple[str, str, str], int], count: int = 3) -> str:
    return "; ".join(f"{n}x {k[0]} {k[1] or k[2]!r}" for k, n in list(found.items())[:count])


def run(args: argparse.Namespace) -> Report:
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="esim-crash-") as scratch:
        folder = Path(args.dir) if args.dir else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        suite = Suite(folder, args)
        try:
            for number in range(1, args.trials + 1):
                suite.trial(number)
            suite.final()
        finally:
            suite.close()
    suite.report.seconds = round(time.monotonic() - began, 1)
    return suite.report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=40, help="daemons to SIGKILL (40)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--lines", type=int, default=8, help="lines watched (8; odd ones top up)")
    parser.add_argument(
        "--window", type=float, default=2.5, help="kill within this many seconds of start (2.5)"
    )
    parser.add_argument(
        "--latency", type=float, default=0.005, help="receiver's answer delay, s (0.005)"
    )
    parser.add_argument(
        "--failures", type=float, default=0.05, help="share of posts answered 503 (0.05)"
    )
    parser.add_argument("--dir", help="keep the database, logs and top-up file here")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    report = run(args)
    if args.json:
        print(json.dumps(report.as_json(), indent=2, sort_keys=True))
    else:
        print_report(report)
    return 1 if report.violations else 0


def print_report(report: Report) -> None:
    phases = ", ".join(f"{k}: {n}" for k, n in report.kills_by_phase.most_common())
    states = ", ".join(f"{k} {n}" for k, n in sorted(report.ledger_states.items()))
    print(
        f"seed {report.seed}: {report.trials} trials, {report.kills} SIGKILLs, {report.seconds} s"
    )
    print(f"  killed after (last log line): {phases}")
    print(
        f"  readings: {report.readings_total} stored, {report.readings_checks} checks of "
        f"committed readings after kills"
    )
    print(
        f"  alerts: {report.events_total} events, {report.deliveries_total} outbox rows "
        f"({report.distinct_messages} distinct messages), {report.received_total} received, "
        f"{report.refused_total} posts refused (503) and retried"
    )
    print(
        f"  doubles: {report.doubles}, of which explained by a kill between arrival and "
        f"commit (at-least-once): {report.in_flight_resends}"
    )
    print(
        f"  top-ups: {report.topups_run} command runs, {report.critical_readings} critical "
        f"readings in {report.critical_spells} spells; ledger: {states}"
    )
    for doubled in report.doubled:
        print(f"    {doubled}")
    print(f"  integrity checks: {report.integrity_checks}")
    if report.violations:
        print(f"VIOLATIONS ({len(report.violations)}):")
        for violation in report.violations:
            print(f"  {violation}")
        for kind, count in report.repeated.items():
            print(f"  ({kind}: found again by {count} later checks)")
    else:
        print("no violation")


if __name__ == "__main__":
    sys.exit(main())
