"""The `command` adapter against real subprocesses: small Python scripts run with the test's
own interpreter, so nothing depends on what the machine has installed."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from monitor import adapters
from monitor.adapters.command import CommandAdapter, CommandOptions, parse_output
from monitor.adapters.fields import (
    to_bytes,
    to_datetime,
    to_money,
)
from monitor.cli import load_settings, main
from monitor.cycle import Checker
from monitor.errors import CheckFailed

Script = Callable[..., list[str]]
NOW = datetime(2025, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def script(tmp_path: Path) -> Script:
    """Write a Python script into tmp_path; returns the argv that runs it."""

    def write(body: str, name: str = "reader.py") -> list[str]:
        path = tmp_path / name
        path.write_text("import json, os, sys, time\n" + textwrap.dedent(body))
        return [sys.executable, str(path)]

    return write


def adapter(argv: list[str], line: str = "travel", **options: Any) -> CommandAdapter:
    opts = CommandOptions.model_validate({"argv": argv, **options})
    return CommandAdapter(line, opts, adapters.AdapterContext())


def failure(argv: list[str], **options: Any) -> CheckFailed:
    with pytest.raises(CheckFailed) as info:
        adapter(argv, **options).read()
    return info.value


# ---- end to end through real processes ---------------------------------------------------


def test_reads_every_field_exactly(script: Script) -> None:
    argv = script(
        """
        print(json.dumps({"balance": 12.34, "currency": "usd", "data_remaining": "1.5GB",
                          "data_total": 3000000000, "expires_at": "2025-12-01T10:00:00+02:00",
                          "status": "ACTIVE"}))
        """
    )
    reading = adapter(argv).read()
    assert reading.line == "travel"
    assert reading.balance == Decimal("12.34")
    assert str(reading.balance) == "12.34"  # no float on the way
    assert reading.currency == "USD"
    assert reading.data_remaining == 1_500_000_000
    assert reading.data_total == 3_000_000_000
    assert reading.expires_at == datetime(2025, 12, 1, 8, 0, tzinfo=UTC)
    assert reading.status == "ACTIVE"
    assert reading.raw["data_remaining"] == "1.5GB"


def test_environment_has_line_timeout_and_own_env_but_not_daemon_secrets(
    script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESIM_MONITOR_CHANNELS__PHONE__URL", "tgram://secret-token/1")
    monkeypatch.setenv("HARMLESS", "kept")
    argv = script(
        """
        env = {k: v for k, v in os.environ.items()
               if k.startswith("ESIM_MONITOR_") or k in ("API_KEY", "HARMLESS")}
        print(json.dumps({"status": json.dumps(env, sort_keys=True)}))
        """
    )
    reading = adapter(argv, line="work", timeout="45s", env={"API_KEY": "k-123"}).read()
    assert json.loads(reading.status or "") == {
        "API_KEY": "k-123",
        "ESIM_MONITOR_LINE": "work",
        "ESIM_MONITOR_TIMEOUT": "45",
        "HARMLESS": "kept",
    }


def test_argv_is_not_a_shell(script: Script, tmp_path: Path) -> None:
    argv = script("print(json.dumps({'status': ' '.join(sys.argv[1:])}))")
    marker = tmp_path / "pwned"
    reading = adapter([*argv, "$(touch", f"{marker})", "; echo", "*"]).read()
    assert reading.status == f"$(touch {marker}) ; echo *"
    assert not marker.exists()


def test_nonzero_exit_is_a_failure_with_stderr_excerpt(script: Script) -> None:
    argv = script(
        """
        print('{"balance": 0}')
        print("login refused by carrier portal\\n" + "x" * 5000, file=sys.stderr)
        sys.exit(3)
        """
    )
    exc = failure(argv)
    assert "exited with status 3" in str(exc)
    assert "login refused by carrier portal" in str(exc)
    assert len(str(exc)) < 400
    assert exc.raw is not None and "stderr: login refused" in exc.raw
    assert "stdout: {" in exc.raw


def test_nonzero_exit_without_stderr_shows_stdout(script: Script) -> None:
    exc = failure(script("print('no such SIM'); sys.exit(1)"))
    assert "exited with status 1: no such SIM" in str(exc)


def test_killed_by_a_signal(script: Script) -> None:
    exc = failure(script("import signal; os.kill(os.getpid(), signal.SIGTERM)"))
    assert "was killed by SIGTERM" in str(exc)


def test_timeout_kills_the_whole_process_group(script: Script, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    argv = script(
        f"""
        import subprocess
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pidfile)!r}, "w").write(str(child.pid))
        print("waiting for the modem", file=sys.stderr, flush=True)
        time.sleep(60)
        """
    )
    exc = failure(argv, timeout="1s")
    assert "did not finish within 1s" in str(exc)
    assert "waiting for the modem" in str(exc)
    assert not _running(int(pidfile.read_text()))


def test_timeout_when_a_helper_keeps_stdout_open(script: Script, tmp_path: Path) -> None:
    """The program exits, but what it started holds the pipe: still a timeout, still killed."""
    pidfile = tmp_path / "child.pid"
    argv = script(
        f"""
        import subprocess
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pidfile)!r}, "w").write(str(child.pid))
        print('{{"balance": 1}}', flush=True)
        """
    )
    exc = failure(argv, timeout="1s")
    assert "did not finish" in str(exc)
    assert not _running(int(pidfile.read_text()))


def _running(pid: int) -> bool:
    """Alive and not a zombie (a container's init may not reap orphans). SIGKILL takes
    effect asynchronously, so a process is given a few seconds to be torn down."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return False
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("print('<html>Service unavailable</html>')", "not JSON"),
        ("print('[1, 2]')", "not a JSON object"),
        ("pass", "printed nothing"),
        ("print(json.dumps({'balence': 5}))", "unknown key(s) 'balence'"),
        ("print(json.dumps({'currency': 'USD'}))", "none of balance"),
        ("print(json.dumps({'error': 'portal is down'}))", "reported an error: portal is down"),
        ("print(json.dumps({'balance': 'n/a'}))", "'balance'"),
        ("print(json.dumps({'balance': True}))", "'balance'"),
        ("print(json.dumps({'data_remaining': 'lots'}))", "'data_remaining'"),
        ("print(json.dumps({'expires_at': 'next tuesday'}))", "'expires_at'"),
    ],
)
def test_bad_output_is_a_failure_never_a_zero(script: Script, body: str, expected: str) -> None:
    exc = failure(script(body))
    assert expected in str(exc)


def test_runaway_output_is_cut_and_fails(script: Script) -> None:
    exc = failure(script("sys.stdout.write('9' * (3 << 20))"))
    assert "printed more than" in str(exc)
    assert exc.raw is not None and len(exc.raw) < 2000


def test_missing_program(tmp_path: Path) -> None:
    exc = failure([str(tmp_path / "nope")])
    assert "cannot run nope" in str(exc)


def test_secrets_are_blotted_out_of_messages(script: Script) -> None:
    argv = script("print('bad key ' + os.environ['API_KEY'], file=sys.stderr); sys.exit(2)")
    exc = failure(argv, env={"API_KEY": "sk-live-abcdef"})
    assert "sk-live-abcdef" not in str(exc)
    assert exc.raw is not None and "sk-live-abcdef" not in exc.raw
    assert "bad key [redacted]" in str(exc)


def test_env_from_the_environment_wins_and_names_are_upper_case(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESIM_MONITOR_LINES__SCRIPTED__ENV__API_KEY", "from-environment")
    path = write_config(
        '[lines.scripted]\nadapter = "command"\nargv = ["x"]\n'
        'env = { API_KEY = "placeholder", region = "eu" }\n'
    )
    options = CommandOptions.model_validate(load_settings(path).lines["scripted"].options)
    assert {k: v.get_secret_value() for k, v in options.env.items()} == {
        "API_KEY": "from-environment",
        "REGION": "eu",
    }


def test_options_repr_hides_env_values() -> None:
    opts = CommandOptions.model_validate({"argv": ["x"], "env": {"API_KEY": "sk-live-abcdef"}})
    assert "sk-live-abcdef" not in repr(opts)
    assert opts.timeout == timedelta(seconds=30)


@pytest.mark.parametrize(
    "options",
    [
        {"argv": []},
        {"argv": [""]},
        {"argv": "python reader.py"},
        {"argv": ["x"], "timeout": "0s"},
        {"argv": ["x"], "timeout": "soon"},
        {"argv": ["x"], "env": {"1BAD": "v"}},
        {"argv": ["x"], "env": {"ESIM_MONITOR_LINE": "v"}},
        {"argv": ["x"], "shell": True},
        {},
    ],
)
def test_bad_options_are_rejected(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CommandOptions.model_validate(options)


# ---- the output format, without processes -------------------------------------------------


def test_parse_output_keeps_decimal_strings_and_extras() -> None:
    out = json.dumps(
        {
            "balance": "0.10",
            "renewal_price": 15,
            "renewal_at": "2025-12-01 00:00:00",
            "extras": {"sms_remaining": 40},
            "critical_reason": "expired",
            "data_remaining": None,
        }
    )
    reading = parse_output("l", out, NOW)
    assert str(reading.balance) == "0.10"
    assert reading.renewal_price == Decimal(15)
    assert reading.renewal_at == datetime(2025, 12, 1, tzinfo=UTC)  # no zone: UTC
    assert reading.extras == {"sms_remaining": 40}
    assert reading.critical_reason == "expired"
    assert reading.data_remaining is None
    assert reading.checked_at == NOW


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1500, 1500),
        ("1500", 1500),
        ("2GB", 2_000_000_000),
        ("2 GiB", 2 * 2**30),
        ("512MiB", 512 * 2**20),
        (Decimal("1000.0"), 1000),
    ],
)
def test_to_bytes(value: Any, expected: int) -> None:
    assert to_bytes(value) == expected


@pytest.mark.parametrize("value", [-1, "lots", True, None, [1]])
def test_to_bytes_rejects(value: Any) -> None:
    with pytest.raises(ValueError):
        to_bytes(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(12, "12"), (Decimal("12.30"), "12.30"), ("4.50", "4.50"), ("-3", "-3")],
)
def test_to_money(value: Any, expected: str) -> None:
    assert str(to_money(value)) == expected


@pytest.mark.parametrize("value", ["NaN", "twelve", True, None, [1]])
def test_to_money_rejects(value: Any) -> None:
    with pytest.raises(ValueError):
        to_money(value)


def test_to_datetime_normalises_to_utc() -> None:
    assert to_datetime("2025-01-01T00:00:00Z") == datetime(2025, 1, 1, tzinfo=UTC)
    assert to_datetime("2025-01-01T05:30:00+05:30").utcoffset() == timedelta(0)


# ---- through the config and the checker ----------------------------------------------------


def test_configured_line_is_checked_end_to_end(
    write_config: Callable[..., Path], script: Script, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = script("print(json.dumps({'balance': '7.25', 'currency': 'EUR'}))")
    path = write_config(
        f"""
        [lines.scripted]
        adapter = "command"
        argv = {json.dumps(argv)}
        timeout = "10s"
        env = {{ TOKEN = "abcd" }}
        """.replace("\n        ", "\n")
    )
    settings = load_settings(path)
    checker = Checker(settings)
    try:
        [result] = checker.read(["scripted"])
    finally:
        checker.close()
    assert result.error is None
    assert result.reading is not None and result.reading.balance == Decimal("7.25")

    assert main(["--config", str(path), "check", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["balance"] == "7.25"


def test_configured_line_with_bad_options_fails_validation(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config('[lines.scripted]\nadapter = "command"\nargv = []\ntimout = "5s"\n')
    assert main(["--config", str(path), "config", "validate"]) == 78
    err = capsys.readouterr().err
    assert "lines.scripted.argv" in err
    assert "lines.scripted.timout" in err
