"""Logging: stderr only, JSON or console, journald priorities, and no secrets."""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog

from monitor import logs
from monitor.cli import main


def lines_logged(fmt: str, monkeypatch: pytest.MonkeyPatch, journal: bool) -> list[str]:
    if journal:
        monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    stream = io.StringIO()
    logs.setup("info", fmt, stream)  # type: ignore[arg-type]
    log = structlog.get_logger("test")
    log.info("fine", line="a")
    log.warning("low", line="a")
    log.error("broken", line="a")
    import logging

    logging.getLogger("apprise").warning("from a library")
    return stream.getvalue().splitlines()


def test_journald_priorities(monkeypatch: pytest.MonkeyPatch) -> None:
    out = lines_logged("auto", monkeypatch, journal=True)
    assert [line[:3] for line in out] == ["<6>", "<4>", "<3>", "<4>"]
    assert "low" in out[1] and "from a library" in out[3]


def test_journald_is_the_stream_journal_stream_names_and_gets_no_stamp_or_level(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """systemd.exec(5): `$JOURNAL_STREAM` is stderr's `device:inode`; a child writing to
    another file inherited the variable but is not journald's. journald records the time
    and the priority: the line repeats neither."""
    journal, other = tmp_path / "journal", tmp_path / "other"
    with open(journal, "w") as to_journal, open(other, "w") as to_file:
        st = os.fstat(to_journal.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        for stream in (to_journal, to_file):
            logs.setup("info", "auto", stream)
            structlog.get_logger("test").warning("low", line="a")
            assert logs.journal(stream) is (stream is to_journal)
    assert journal.read_text() == "<4>low [test] line=a\n"
    (record,) = [json.loads(line) for line in other.read_text().splitlines()]
    assert record["level"] == "warning" and "timestamp" in record


def test_journald_keeps_the_routine_lines_and_their_empty_fields(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What a terminal leaves out, journald records: an admin's `journalctl` has every pass."""
    with open(tmp_path / "journal", "w") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        logs.setup("info", "auto", stream)
        structlog.get_logger("test").info("checks done", routine=True, failed=0, raw=None)
    assert (tmp_path / "journal").read_text() == "<6>checks done [test] failed=0 raw=None\n"


def test_json_lines_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    out = lines_logged("auto", monkeypatch, journal=False)
    records = [json.loads(line) for line in out]
    assert [r["level"] for r in records] == ["info", "warning", "error", "warning"]
    assert records[0]["line"] == "a" and "timestamp" in records[0]


def test_console_format_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    out = lines_logged("console", monkeypatch, journal=False)
    assert "low" in out[1] and "warning" in out[1]
    with pytest.raises(ValueError):
        json.loads(out[0])


def logged_on_a_terminal() -> str:
    """What one warning looks like on a real terminal (a pty), escapes included."""
    master, slave = os.openpty()
    try:
        with open(slave, "w", buffering=1, closefd=False) as stream:
            logs.setup("info", "auto", stream)
            structlog.get_logger("test").warning("low", line="a")
        return os.read(master, 65536).decode()
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize(("no_color", "coloured"), [(None, True), ("", True), ("1", False)])
def test_colour_only_on_a_terminal_and_never_with_no_color(
    monkeypatch: pytest.MonkeyPatch, no_color: str | None, coloured: bool
) -> None:
    """no-color.org: `NO_COLOR` set to any non-empty value turns colour off."""
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    out = logged_on_a_terminal()
    assert "low" in out and "warning" in out
    assert ("\x1b[" in out) is coloured
    assert not any("\x1b[" in line for line in lines_logged("console", monkeypatch, False))


def on_a_terminal(argv: list[str], cwd: Path, tty: bool = True) -> str:
    """What `esim-monitor ARGV` writes, stdout and stderr together, on a real terminal (a
    pty, colour off), or with `tty` False into a pipe."""
    env = {**os.environ, "NO_COLOR": "1", "TMPDIR": str(cwd)}
    command = [sys.executable, "-m", "monitor", *argv]
    if not tty:
        done = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=True
        )
        return done.stdout + done.stderr
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave)
    finally:
        os.close(slave)
    out = b""
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError as exc:  # EIO: the child closed the terminal's last end
                if exc.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
    assert proc.wait(timeout=120) == 0, out
    return out.decode().replace("\r\n", "\n")


BOOKKEEPING = ("event raised", "alert delivered", "checks done")


def test_a_demo_pass_on_a_terminal_shows_its_alerts_and_no_bookkeeping(tmp_path: Path) -> None:
    """issue 19: each alert came with an "event raised" and an "alert delivered" line, and
    each pass with "checks done". On a terminal at the default level the alerts show
    (console://) and those lines do not; JSON lines (journald, a pipe) keep every one."""
    shown = on_a_terminal(["demo", "--once"], tmp_path)
    assert "--- [WARNING] Home number (2FA) is low: balance 8.50 USD" in shown
    assert "--- [CRITICAL] IoT sensor 07 is critical: expiry in 20 hours" in shown
    for bookkeeping in BOOKKEEPING:
        assert bookkeeping not in shown, shown
    assert "=None" not in shown and "routine" not in shown

    piped = on_a_terminal(["demo", "--once"], tmp_path, tty=False)
    records = [json.loads(line) for line in piped.splitlines() if line.startswith("{")]
    logged = [r["event"] for r in records]
    assert logged.count("event raised") == 2 and logged.count("alert delivered") == 2
    assert "checks done" in logged
    assert not any("routine" in r for r in records)


def test_a_failed_check_on_a_terminal_shows_no_empty_fields(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """A failed check without a reply logged `raw=None` at the end of its line; a terminal
    shows the fields that hold something (a debug level shows the bookkeeping too), where
    JSON keeps the field, null, for whatever reads it."""
    path = write_config('[lines.a]\nadapter = "demo"\nbalance = 5\nfail_from = 1\nfail_reads = 1\n')
    argv = ["--config", str(path), "run", "--once"]
    (failed,) = [line for line in on_a_terminal(argv, tmp_path).splitlines() if "check" in line]
    assert "check failed" in failed and "warning" in failed
    assert "error='simulated outage: the demo provider did not answer'" in failed
    assert "failures=1" in failed and "line=a" in failed
    assert "raw" not in failed and "None" not in failed

    debug = on_a_terminal(["--log-level", "debug", *argv], tmp_path)
    assert "checks done" in debug and "failed=1" in debug

    piped = on_a_terminal(argv, tmp_path, tty=False)
    (record,) = [json.loads(x) for x in piped.splitlines() if '"check failed"' in x]
    assert record["raw"] is None and record["failures"] == 3  # its third failure in a row


def test_a_run_never_logs_its_secrets(
    write_config: Callable[..., Path],
    sink: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret_url = sink.url.replace("/alerts", "/alerts/t0ps3cr3tt0ken?key=k3y")
    monkeypatch.setenv("ESIM_MONITOR_CHANNELS__HOOK__URL", secret_url)
    path = write_config(
        '[channels.hook]\nurl = "json://placeholder"\n'
        "[defaults.thresholds]\nbalance_critical = 5\n"
        '[lines.a]\nadapter = "demo"\nbalance = 1\n'
        '[lines.b]\nadapter = "command"\nargv = ["/nonexistent/x", "--token", "s3cretarg"]\n'
        'env = { API_KEY = "envs3cret" }\n'
    )
    sink.down = True  # delivery fails: its error is logged and stored
    assert main(["--config", str(path), "--log-level", "debug", "run", "--once"]) == 0
    assert main(["--config", str(path), "config", "show"]) == 0
    assert main(["--config", str(path), "events", "--json"]) == 0
    out, err = capsys.readouterr()
    for secret in ("t0ps3cr3tt0ken", "k3y", "s3cretarg", "envs3cret"):
        assert secret not in err, secret
        assert secret not in out, secret
    assert "alert delivery failed" in err


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_traceback_carrying_a_secret_is_scrubbed(fmt: str) -> None:
    """The last wall: an exception message that echoes a configured secret (here as HTTP
    Basic carries it) is redacted from the rendered traceback."""
    import base64

    from monitor.redact import Redactor

    redactor = Redactor(["tr4ceback-secret"])
    echoed = base64.b64encode(b"user:tr4ceback-secret").decode()
    stream = io.StringIO()
    logs.setup("info", fmt, stream)  # type: ignore[arg-type]
    try:
        raise KeyError(f"Basic {echoed}")
    except KeyError:
        structlog.get_logger("test").exception("adapter raised", echo="tr4ceback-secret")
    out = stream.getvalue()
    assert "adapter raised" in out and "KeyError" in out and "[redacted]" in out
    assert echoed not in out and "tr4ceback-secret" not in out
    assert redactor  # alive while the line is logged
