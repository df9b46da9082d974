"""The daemon as a real subprocess: signals, reload, and the loop's schedule."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from daemon_proc import run_argv
from fake_slow import SlowProgram

CONFIG = """
[monitor]
interval = "1s"
[lines.a]
adapter = "demo"
"""


class Daemon:
    """`esim-monitor run` in a subprocess, its JSON log lines collected from stderr."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            run_argv(config, "--log-level", "debug"),
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.logs: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                self.logs.put(json.loads(line))
            except ValueError:
                self.logs.put({"event": line.strip()})

    def wait_for(self, event: str, timeout: float = 40, **fields: Any) -> dict[str, Any]:
        seen = []
        while True:
            try:
                entry = self.logs.get(timeout=timeout)
            except queue.Empty:
                tail = "\n".join(json.dumps(e) for e in seen[-30:])
                raise AssertionError(
                    f"no {event} {fields} in {timeout} s; last logs:\n{tail}"
                ) from None
            seen.append(entry)
            if entry.get("event") == event and all(entry.get(k) == v for k, v in fields.items()):
                return entry

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def daemon(write_config: Callable[..., Path]) -> Any:
    started: list[Daemon] = []

    def start(text: str = CONFIG) -> tuple[Daemon, Path]:
        path = write_config(text)
        d = Daemon(path)
        started.append(d)
        return d, path

    yield start
    for d in started:
        d.stop()


def test_checks_at_startup_and_on_schedule_then_sigterm(daemon: Any) -> None:
    d, _ = daemon()
    d.wait_for("esim-monitor started")
    d.wait_for("line checked", line="a")  # first check at startup
    d.wait_for("line checked", line="a")  # and again a second later
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=10) == 0
    d.wait_for("esim-monitor stopped", timeout=5)


def test_sigint_stops_cleanly(daemon: Any) -> None:
    d, _ = daemon()
    d.wait_for("line checked", line="a")
    d.proc.send_signal(signal.SIGINT)
    assert d.proc.wait(timeout=10) == 0


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_ends_the_program_of_a_check_under_way(
    daemon: Any, tmp_path: Path, signum: int
) -> None:
    """Issue 19: a `command` line's program runs in a session of its own (so its timeout
    kills all it started), which the daemon's SIGTERM or a terminal's Ctrl-C does not
    reach; unfixed, it and its own child ran on after the daemon, reparented to init."""
    program = SlowProgram(tmp_path)
    d, _ = daemon(f'[lines.x]\nadapter = "command"\nargv = ["{program.path}"]\ntimeout = "5m"\n')
    try:
        program.started(d.proc)
        d.proc.send_signal(signum)
        assert d.proc.wait(timeout=60) == 0
        left = program.left()
    finally:
        program.kill()
    assert left == []
    d.wait_for("programs still running at the stop were killed", programs=1, timeout=5)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_a_stop_ends_a_top_up_command_past_its_wait_and_never_calls_it_failed(
    daemon: Any, tmp_path: Path
) -> None:
    """A top-up under way is waited for (STOP_WAIT), then killed with the daemon, not left
    running; its intent stays open or is settled unknown (it may have paid), never failed
    (which would let the next low reading buy again)."""
    from monitor.store import Store

    program = SlowProgram(tmp_path)
    d, _ = daemon(
        "[recharge]\nenabled = true\n[defaults.thresholds]\nbalance_critical = 5\n"
        '[lines.a]\nadapter = "demo"\nbalance = 3\ndrain = 0\n'
        f'[lines.a.recharge]\naction = "command"\nargv = ["{program.path}"]\ntimeout = "5m"\n'
    )
    try:
        program.started(d.proc)
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(timeout=60) == 0
        left = program.left()
    finally:
        program.kill()
    assert left == []
    d.wait_for("stopping with a top-up step under way", line="a", timeout=5)
    store = Store.open(tmp_path / "history.db")  # where write_config puts it
    try:
        (entry,) = store.recharges()
    finally:
        store.close()
    assert entry.state in ("requested", "unknown")


def test_sighup_reloads_and_an_invalid_config_is_rejected(daemon: Any) -> None:
    d, path = daemon()
    d.wait_for("line checked", line="a")
    path.write_text(path.read_text() + '[lines.b]\nadapter = "demo"\n')
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for("config reloaded", lines=2)
    d.wait_for("line checked", line="b")  # a new line is checked at once
    good = path.read_text()
    path.write_text(good.replace('interval = "1s"', 'interval = "5 parsecs"'))
    d.proc.send_signal(signal.SIGHUP)
    rejected = d.wait_for("new config rejected, keeping the running one")
    assert "monitor.interval" in rejected["problems"]
    d.wait_for("line checked", line="b")  # the old config runs on
    assert d.proc.poll() is None
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=10) == 0


def test_invalid_config_at_start_exits_78(write_config: Callable[..., Path]) -> None:
    path = write_config('[monitor]\ninterval = "soon"\n[lines.a]\nadapter = "demo"\n')
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(path), "run"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 78
    assert "At 'monitor.interval'" in done.stderr
    assert "Traceback" not in done.stderr


def test_systemd_notify_watchdog_reload_stop_metrics_heartbeat(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    import socket
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    beats: list[str] = []

    class Beat(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            beats.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    hb = ThreadingHTTPServer(("127.0.0.1", 0), Beat)
    threading.Thread(target=hb.serve_forever, daemon=True).start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = write_config(
        f'[monitor]\ninterval = "1s"\nmetrics = "127.0.0.1:{port}"\n'
        f'heartbeat_url = "http://127.0.0.1:{hb.server_address[1]}/ping/abc"\n'
        '[lines.a]\nadapter = "demo"\nbalance = 3\n[defaults.thresholds]\nbalance_warning = 5\n'
    )
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(15)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(path), "run"],
        env=env,
        stderr=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )

    def until(field: str) -> list[str]:
        seen = []
        while True:
            message = sock.recv(4096).decode()
            seen.append(message)
            if field in message.split("\n"):
                return seen

    try:
        assert any("READY=1" in m for m in until("READY=1"))
        seen = []
        for _ in range(4):  # pings keep coming, every half of WATCHDOG_USEC
            seen += until("WATCHDOG=1")
        assert any(m.startswith("STATUS=1 lines, 1 low, next check") for m in seen)
        scrape = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        assert b'esim_monitor_line_info{line="a",label="a",account="",provider="demo"} 1' in scrape
        checks = re.search(rb'^esim_monitor_checks_total\{result="ok"\} (\S+)$', scrape, re.M)
        assert checks and float(checks[1]) >= 1  # counted in the daemon's own process
        assert beats and beats[0] == "/ping/abc"
        proc.send_signal(signal.SIGHUP)
        seen = until("READY=1")
        assert any(m.startswith("RELOADING=1") for m in seen)
        path.write_text(path.read_text().replace('interval = "1s"', 'interval = "soon"'))
        proc.send_signal(signal.SIGHUP)
        until("READY=1")  # rejected, the old config keeps running
        until("WATCHDOG=1")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        until("STOPPING=1")
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
        hb.shutdown()


def test_a_storm_of_signals_never_wedges_the_loop(daemon: Any) -> None:
    """Signal handlers take no lock: a burst of SIGHUPs lands anywhere in the loop,
    including inside a lock the loop holds (with Event.set in the handler, this wedged the
    daemon for good, every time)."""
    d, _ = daemon()
    d.wait_for("line checked", line="a")
    for _ in range(20000):
        d.proc.send_signal(signal.SIGHUP)
    d.wait_for("config reloaded")
    d.wait_for("line checked", line="a")  # still checking
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=20) == 0


class Supervised:
    """`esim-monitor run` under a stand-in for systemd: a real notify socket (datagrams
    collected), a watchdog, JSON logs on stderr; `patch` is Python run before `main` (a
    fault to inject)."""

    def __init__(self, config: Path, sock_path: Path, patch: str = "", watchdog: bool = True):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(sock_path))
        self.sock.settimeout(0.2)
        self.datagrams: queue.Queue[str] = queue.Queue()
        self.logs: queue.Queue[dict[str, Any]] = queue.Queue()
        env = {**os.environ, "NOTIFY_SOCKET": str(sock_path)}
        if watchdog:
            env["WATCHDOG_USEC"] = "1000000"
        boot = f"import sys; import monitor.daemon as d; {patch or 'pass'}; "
        boot += "from monitor.cli import main; "
        boot += "sys.exit(main(sys.argv[1:]))"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                boot,
                "--config",
                str(config),
                "--log-format",
                "json",
                "--log-level",
                "debug",
                "run",
            ],
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self._open = True
        threading.Thread(target=self._read_socket, daemon=True).start()
        threading.Thread(target=self._read_logs, daemon=True).start()

    def _read_socket(self) -> None:
        while self._open:
            try:
                self.datagrams.put(self.sock.recv(4096).decode())
            except (TimeoutError, OSError):
                continue

    def _read_logs(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                self.logs.put(json.loads(line))
            except ValueError:
                self.logs.put({"event": line.strip()})

    def notified(self, prefix: str, timeout: float = 40) -> list[str]:
        """Datagrams until one with a field starting with `prefix`, that one last."""
        seen = []
        while True:
            try:
                message = self.datagrams.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {prefix!r} in {timeout} s; saw {seen[-10:]}") from None
            seen.append(message)
            if any(f.startswith(prefix) for f in message.split("\n")):
                return seen

    def logged(self, event: str, timeout: float = 40) -> dict[str, Any]:
        seen: list[dict[str, Any]] = []
        while True:
            try:
                entry = self.logs.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no log {event!r} in {timeout} s; saw {seen[-5:]}") from None
            seen.append(entry)
            if entry.get("event") == event:
                return entry

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._open = False
        self.sock.close()


@pytest.fixture
def supervised() -> Any:
    started: list[Supervised] = []
    folder = Path(tempfile.mkdtemp(prefix="sd"))  # AF_UNIX paths are short: not tmp_path

    def start(config: Path, **kw: Any) -> Supervised:
        s = Supervised(config, folder / f"notify{len(started)}.sock", **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()
    shutil.rmtree(folder, ignore_errors=True)


FAULT = "d.ERROR_PAUSE = 0.1; d.queue_digests = lambda *a: 1 / 0"
"""Every pass fails unexpectedly, at its first step."""


def test_a_loop_failing_three_times_stops_the_watchdog_and_alerts(
    write_config: Callable[..., Path], supervised: Any, sink: Any
) -> None:
    """Issue 11.2: unfixed, the loop logged "loop pass failed unexpectedly" for ever and
    kept pinging, so systemd never restarted it and nobody heard."""
    path = write_config(CONFIG + f'[channels.hook]\nurl = "{sink.url}"\n')
    d = supervised(path, patch=FAULT)
    d.notified("READY=1")
    d.notified("WATCHDOG=1")
    (status,) = [
        f for f in d.notified("STATUS=loop failing")[-1].split("\n") if f.startswith("STATUS=")
    ]
    assert status.startswith("STATUS=loop failing: 3 passes in a row failed unexpectedly")
    assert "ZeroDivisionError" in status and status.endswith("watchdog pings stopped")
    entry = d.logged("daemon loop failing")
    assert entry["level"] == "error" and entry["action"] == "watchdog pings stopped"
    after = []
    with contextlib.suppress(AssertionError):  # four ping intervals: not one ping
        after = d.notified("WATCHDOG=1", timeout=2)
    assert not any("WATCHDOG=1" in m for m in after)
    assert d.proc.poll() is None  # systemd, not the daemon, ends it
    (alert,) = [m for m in sink.received if "DAEMON-FAILURE" in m["title"]]
    assert alert["title"].startswith("[DAEMON-FAILURE] esim-monitor is failing: loop failing")


def test_without_a_watchdog_a_failing_loop_alerts_and_exits_1(
    write_config: Callable[..., Path], supervised: Any, sink: Any
) -> None:
    path = write_config(CONFIG + f'[channels.hook]\nurl = "{sink.url}"\n')
    d = supervised(path, patch=FAULT, watchdog=False)
    assert d.proc.wait(timeout=60) == 1
    assert [m["title"] for m in sink.received if "DAEMON-FAILURE" in m["title"]]


def _corrupt_copy(db: Path) -> None:
    """Put a damaged copy of the database in its place (a new file: another inode)."""
    data = bytearray(db.read_bytes())
    data[4096:] = bytes(range(256)) * ((len(data) - 4096) // 256)
    spare = db.with_name("spare.db")
    spare.write_bytes(bytes(data))
    spare.replace(db)


DAMAGE = {
    "vanished": lambda db: db.unlink(),
    "read-only": lambda db: db.chmod(0o400),
    "replaced by a corrupt file": _corrupt_copy,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_an_unusable_database_keeps_the_daemon_checking_alerting_and_pinging(
    write_config: Callable[..., Path], supervised: Any, sink: Any, tmp_path: Path, damage: str
) -> None:
    """Issues 11.3 and 11.9: unfixed, a deleted or read-only file went unnoticed (writes into
    a deleted inode), and a corrupt one silenced the daemon."""
    path = write_config(
        f'[monitor]\ninterval = "1s"\n[channels.hook]\nurl = "{sink.url}"\n'
        "[defaults.thresholds]\nbalance_warning = 10\nbalance_critical = 2\n"
        '[lines.a]\nadapter = "demo"\nbalance = 12\ndrain = 1\n'
    )
    d = supervised(path)
    d.logged("line checked")
    DAMAGE[damage](tmp_path / "history.db")
    seen = d.notified("STATUS=database unusable: ")
    assert d.logged("database unusable")["level"] == "error"
    assert d.logged("database unusable")["level"] == "error"  # on each pass
    d.logged("line checked")  # checks go on
    d.notified("WATCHDOG=1")  # and so do the pings
    d.notified("WATCHDOG=1")
    assert d.proc.poll() is None
    alerts = [m["title"] for m in sink.received if "DAEMON-FAILURE" in m["title"]]
    assert alerts and "database unusable" in alerts[0]
    d.logged("alert delivered")  # the lines' own alerts go on too (from memory)
    assert any("database unusable" in m for m in seen)


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_one_daemon_per_database_and_a_reload_moves_the_lock(
    daemon: Any, tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """Issue 11.7: unfixed, a second `run --once` beside a daemon exited 0 (doubling it)."""
    d, path = daemon()
    d.wait_for("line checked", line="a")
    lock = tmp_path / "history.db.lock"
    assert lock.read_text().strip() == str(d.proc.pid)
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    for args in (["run", "--once"], ["run"]):
        second = _cli(path, *args)
        assert second.returncode == 1
        assert f"another esim-monitor (PID {d.proc.pid}) is running on" in second.stderr
    assert _cli(path, "status").returncode == 0  # other commands work beside it
    old = write_config(CONFIG, name="old.toml")  # the first database, in another config
    path.write_text(path.read_text().replace("history.db", "moved.db"))
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for("config reloaded")
    assert _cli(old, "run", "--once").returncode == 0  # the old database is free again
    moved = _cli(path, "run", "--once")
    assert moved.returncode == 1 and f"PID {d.proc.pid}" in moved.stderr
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=10) == 0


def test_reload_reports_the_daemons_verdict(
    write_config: Callable[..., Path], supervised: Any
) -> None:
    """Issue 14.5: `esim-monitor reload` (the unit's ExecReload=) exits 0 when the daemon
    applied the new config; a rejected one exits 78 with the reason, is logged at err and
    shows in STATUS= (unfixed: `kill -HUP` succeeded whatever the daemon thought)."""
    path = write_config(CONFIG)
    d = supervised(path)
    d.notified("READY=1")
    pid = str(d.proc.pid)
    path.write_text(path.read_text() + '[lines.b]\nadapter = "demo"\n')
    ok = _cli(path, "reload", "--pid", pid)
    assert ok.returncode == 0, ok.stderr
    assert "config reloaded: 2 lines" in ok.stdout
    assert _cli(path, "reload").returncode == 0  # the PID from the database's lock
    path.write_text(path.read_text().replace('interval = "1s"', 'interval = "5 parsecs"'))
    bad = _cli(path, "reload", "--pid", pid)
    assert bad.returncode == 78
    assert "new config rejected" in bad.stderr and "At 'monitor.interval'" in bad.stderr
    assert d.logged("new config rejected, keeping the running one")["level"] == "error"
    (status,) = [
        f for f in d.notified("STATUS=reload rejected")[-1].split("\n") if f.startswith("STATUS=")
    ]
    assert "At 'monitor.interval'" in status and "running the previous config: 2 lines" in status
    assert d.proc.poll() is None


def test_reload_without_a_daemon_fails(write_config: Callable[..., Path]) -> None:
    path = write_config(CONFIG)
    assert _cli(path, "run", "--once").returncode == 0  # a lock file, nobody listening
    done = _cli(path, "reload", "--timeout", "5s")
    assert done.returncode == 1 and "listens for reloads" in done.stderr


def _journal_run(config: Path, *args: str) -> tuple[int, str]:
    """A command whose stderr is a stand-in journal stream: JOURNAL_STREAM names it."""
    read, write = os.pipe()
    st = os.fstat(write)
    env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(config), *args],
        env=env,
        stderr=write,
        stdout=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as stream:
        text = stream.read()
    return proc.wait(timeout=30), text


def test_under_journald_a_failing_start_is_logged_at_err(
    write_config: Callable[..., Path], daemon: Any
) -> None:
    """Issue 14.5: unfixed, a broken config was priority 6 (info), so `journalctl -p
    warning` showed nothing of why the service failed."""
    bad = write_config('[monitor]\ninterval = "soon"\n[lines.a]\nadapter = "demo"\n')
    code, text = _journal_run(bad, "run")
    assert code == 78 and "At 'monitor.interval'" in text
    assert all(line.startswith("<3>") for line in text.splitlines()), text
    code, text = _journal_run(bad, "run", "--bogus")  # a usage error, exit 2
    assert code == 2 and text and all(line.startswith("<3>") for line in text.splitlines())
    d, path = daemon()
    d.wait_for("line checked", line="a")
    code, text = _journal_run(path, "run")  # another daemon holds the database: exit 1
    assert code == 1 and f"PID {d.proc.pid}" in text
    assert [line[:3] for line in text.splitlines() if "another esim-monitor" in line] == ["<3>"]
