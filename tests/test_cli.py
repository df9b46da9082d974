"""The command line end to end on the demo adapter, with Apprise delivering over loopback."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import socket
import stat
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fake_slow import SlowProgram
from parsers import actions

from monitor.adapters import demo
from monitor.cli import build_parser, main

LINES = """
[defaults.thresholds]
balance_warning = 10
balance_critical = 5

[lines.travel]
label = "US travel eSIM"
adapter = "demo"
balance = 12
drain = 3
payment_url = "https://pay.example/topup"

[lines.home]
adapter = "demo"
balance = 50
drain = 0
data = "2GB"
"""


def cli(*args: str) -> int:
    return main([*args])


@pytest.fixture
def configured(write_config: Callable[..., Path], sink: Any) -> Path:
    return write_config(f'[channels.hook]\nurl = "{sink.url}"\n' + LINES)


def run_once(config: Path) -> int:
    return cli("--config", str(config), "run", "--once")


def test_run_once_end_to_end(
    configured: Path, sink: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_once(configured) == 0  # 12: ok, nothing sent
    assert sink.received == []
    assert run_once(configured) == 0  # 9: warning
    assert sink.titles() == ["[WARNING] US travel eSIM is low: balance 9.00 USD"]
    body = sink.received[0]["message"]
    assert "US travel eSIM (travel)" in body and "https://pay.example/topup" in body
    assert run_once(configured) == 0  # 6: still warning: nothing new
    assert run_once(configured) == 0  # 3: critical
    assert sink.titles()[1:] == ["[CRITICAL] US travel eSIM is critical: balance 3.00 USD"]
    capsys.readouterr()
    assert cli("--config", str(configured), "status", "--json") == 0
    rows = {r["line"]: r for r in json.loads(capsys.readouterr().out)}
    travel = rows["travel"]
    for key in (
        "line",
        "label",
        "state",
        "checked_at",
        "balance",
        "currency",
        "data_remaining_bytes",
        "data_total_bytes",
        "expires_at",
    ):
        assert key in travel
    assert travel["state"] == "critical"
    assert travel["balance"] == "3.00" and travel["currency"] == "USD"
    assert rows["home"]["data_remaining_bytes"] == 2 * 10**9
    assert rows["home"]["state"] == "ok"


def test_restart_does_not_realert(configured: Path, sink: Any) -> None:
    for _ in range(2):
        run_once(configured)
    assert len(sink.received) == 1
    # a "restart": a new process state, same database. The demo keeps draining from 9 to 6.
    demo._steps["travel"] = 2
    run_once(configured)
    assert len(sink.received) == 1


def test_alert_survives_a_notifier_outage_exactly_once(configured: Path, sink: Any) -> None:
    sink.down = True
    run_once(configured)
    run_once(configured)  # warning raised, delivery fails
    assert sink.received == []
    sink.down = False
    run_once(configured)  # a due retry? not yet: the first retry waits 30 s
    assert sink.received == []
    from datetime import timedelta

    from freezegun import freeze_time

    with freeze_time(timedelta(seconds=31), tick=True):
        run_once(configured)  # the pending row is due: sent first, then the new check's
    assert sink.titles() == [
        "[WARNING] US travel eSIM is low: balance 9.00 USD",
        "[CRITICAL] US travel eSIM is critical: balance 3.00 USD",
    ]
    with freeze_time(timedelta(hours=1), tick=True):
        run_once(configured)
    assert len(sink.received) == 2  # each alert exactly once


def test_check_records_and_sends_nothing(
    configured: Path, sink: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli("--config", str(configured), "check", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["line"] for r in rows] == ["travel", "home"]
    assert all(r["error"] is None for r in rows)
    assert rows[0]["balance"] == "12.00"
    assert not (tmp_path / "history.db").exists()
    assert sink.received == []
    assert cli("--config", str(configured), "check", "home") == 0
    out = capsys.readouterr().out
    assert "home" in out and "travel" not in out


def test_check_reports_failed_reads(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config('[lines.x]\nadapter = "demo"\nfail_from = 1\nfail_reads = 1\n')
    assert cli("--config", str(path), "check", "--json") == 1
    (row,) = json.loads(capsys.readouterr().out)
    assert row["error"] == "simulated outage: the demo provider did not answer"
    assert row["balance"] is None  # never a zero


def test_history_formats(configured: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(3):
        run_once(configured)
    capsys.readouterr()
    assert cli("--config", str(configured), "history", "travel", "--format", "json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["balance"] for r in rows] == ["12.00", "9.00", "6.00"]
    assert cli("--config", str(configured), "history", "travel", "--format", "csv") == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["level"] for r in table] == ["ok", "warning", "warning"]
    assert cli("--config", str(configured), "history", "travel", "--since", "1h") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == [
        "TIME",
        "STATE",
        "BALANCE",
        "DATA",
        "EXPIRES",
        "SOURCE",
        "ERROR",
    ]
    assert "9.00 USD" in out


def test_events_show_delivery(
    configured: Path, sink: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(2):
        run_once(configured)
    capsys.readouterr()
    assert cli("--config", str(configured), "events", "--json") == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["type"] == "warning" and row["channel"] == "hook" and row["status"] == "sent"
    assert cli("--config", str(configured), "events", "--line", "home") == 0
    assert len(capsys.readouterr().out.splitlines()) == 1  # only the header


def test_events_without_channels_are_kept(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        '[defaults.thresholds]\nbalance_critical = 2\n[lines.x]\nadapter = "demo"\nbalance = 1\n'
    )
    assert run_once(path) == 0
    capsys.readouterr()
    assert cli("--config", str(path), "events", "--json") == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["type"] == "critical" and row["status"] == "not routed"


def test_notify_test(
    write_config: Callable[..., Path],
    sink: Any,
    recorder: list[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_config(
        f'[channels.good]\nurl = "{sink.url}"\n[channels.bad]\nurl = "record://fail"\n' + LINES
    )
    assert cli("--config", str(path), "notify", "test") == 1
    out = capsys.readouterr().out
    assert "good: delivered" in out and "bad (record://****): FAILED" in out
    assert sink.titles() == ["[TEST] Test message from esim-monitor"]
    assert cli("--config", str(path), "notify", "test", "--channel", "good") == 0
    assert cli("--config", str(path), "notify", "test", "--channel", "nope") == 2
    assert "unknown channel 'nope'" in capsys.readouterr().err


def test_notify_test_names_the_host_that_failed_and_masks_the_credentials(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = "tok3n-secret-1234"
    path = write_config(
        f'[channels.hook]\nurl = "json://hook:{token}@127.0.0.1:{port}/hooks/{token}"\n' + LINES
    )
    assert cli("--config", str(path), "notify", "test") == 1
    out = capsys.readouterr().out
    assert out.startswith(f"hook (json://****@127.0.0.1:{port}/****): FAILED: ")
    assert "to 127.0.0.1" in out and token not in out


def test_usage_errors_exit_2(configured: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("--config", str(configured), "history", "nope") == 2
    assert "unknown line 'nope'" in capsys.readouterr().err
    assert cli("--config", str(configured), "history", "travel", "--since", "soon") == 2
    assert "--since: cannot read 'soon'" in capsys.readouterr().err
    assert cli("--config", str(configured), "frobnicate") == 2
    assert cli() == 2
    assert cli("--help") == 0


def test_unwritable_database_exits_65(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config('[monitor]\ndatabase = "/proc/nope/h.db"\n[lines.x]\nadapter = "demo"\n')
    assert run_once(path) == 65  # systemd does not restart what a restart cannot fix
    err = capsys.readouterr().err
    assert "cannot create the database at /proc/nope/h.db" in err
    assert "Traceback" not in err


def test_status_before_any_check(
    configured: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli("--config", str(configured), "status", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["state"] for r in rows] == ["unknown", "unknown"]
    assert not (tmp_path / "history.db").exists()


def test_global_options_after_the_command_mean_the_same(
    configured: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`status --config FILE` reads FILE, as `--config FILE status` does; a value given
    before the command stays unless the command repeats the option."""
    assert cli("status", "--config", str(configured), "--json") == 0
    assert [r["line"] for r in json.loads(capsys.readouterr().out)] == ["travel", "home"]
    assert cli("config", "validate", "--config", str(configured)) == 0
    assert f"{configured}: ok" in capsys.readouterr().out
    assert (
        cli("--config", str(tmp_path / "missing.toml"), "status", "--config", str(configured)) == 0
    )
    parser = build_parser()
    before = parser.parse_args(["--log-level", "debug", "--log-format", "json", "status"])
    after = parser.parse_args(["status", "--log-level", "debug", "--log-format", "json"])
    for args in (before, after):
        assert (args.log_level, args.log_format) == ("debug", "json")
    plain = parser.parse_args(["--config", "a.toml", "config", "show"])
    assert (plain.config, plain.log_level, plain.log_format) == ("a.toml", "info", "auto")


def test_commands_that_send_nothing_need_no_secrets(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 19: with the service stopped (no credentials), a channel's url is absent; the
    read commands worked only with it. Those that send or check the whole config still fail."""
    path = write_config('[channels.phone]\nformat = "short"\n' + LINES)
    assert run_once(path) == 78
    assert "At 'channels.phone.url'" in capsys.readouterr().err
    for command in (
        ["status"],
        ["history", "travel"],
        ["events"],
        ["report"],
        ["snooze", "travel", "1h"],
        ["unsnooze", "travel"],
    ):
        assert cli("--config", str(path), *command) == 0, command
    assert cli("--config", str(path), "ack", "travel") == 1  # nothing to acknowledge: not 78
    assert "nothing to acknowledge" in capsys.readouterr().err
    for command in (["run", "--once"], ["notify", "test"], ["config", "validate"], ["check"]):
        assert cli("--config", str(path), *command) == 78, command
        assert "At 'channels.phone.url'" in capsys.readouterr().err


def test_logs_go_to_stderr_only(configured: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_once(configured)
    out, err = capsys.readouterr()
    assert out == ""
    assert "checks done" in err
    cli("--config", str(configured), "status", "--json")
    out, _ = capsys.readouterr()
    json.loads(out)  # nothing but JSON on stdout


def test_adapters_lists_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("adapters", "--json") == 0
    names = {a["name"]: a for a in json.loads(capsys.readouterr().out)}
    assert "balance" in names["demo"]["options"]


def test_adapters_says_what_every_option_means_and_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli("adapters", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    undescribed = [
        (row["name"], option)
        for row in rows
        for table in ("account_options", "options")
        for option, spec in (row.get(table) or {}).items()
        if not spec["description"]
    ]
    assert undescribed == []
    assert cli("adapters") == 0
    out = capsys.readouterr().out
    assert "    drain (default 1.50): spent between two reads\n" in out
    assert "    iccid (required): " in out and "    data (optional): " in out


def test_adapters_lists_each_preset_with_whether_it_is_verified(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli("adapters", "--json") == 0
    names = {a["name"]: a for a in json.loads(capsys.readouterr().out)}
    presets = names["ussd"]["presets"]
    assert presets["att-prepaid"]["verified"] is False
    assert presets["att-prepaid"]["refill"] == "*888*{pin}#"
    assert presets["us-mobile"]["codes"] == ["sms +18888781488 BALANCE"]
    assert all(info["source"] for info in presets.values())
    assert cli("adapters") == 0
    out = capsys.readouterr().out
    for name, info in presets.items():
        state = "verified" if info["verified"] else "not verified"
        assert f"preset {name} ({state})" in out


def test_python_dash_m(configured: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(configured), "status", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["line"] == "travel"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_ctrl_c_during_run_once_stops_every_program_started_and_says_interrupted(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """Issue 19: a `command` line's program runs in a session of its own (so that its
    timeout kills all it started), which a terminal's Ctrl-C does not reach; unfixed, it
    and its own child ran on past the interrupted `run --once`, reparented to init."""
    import signal
    import subprocess
    import sys

    program = SlowProgram(tmp_path)
    path = write_config(
        f'[lines.x]\nadapter = "command"\nargv = ["{program.path}"]\ntimeout = "5m"\n'
    )
    # As a terminal's foreground job: SIGINT not ignored. A shell's background job (which
    # may be running this suite) ignores it, and an ignored signal stays so across exec.
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(path), "run", "--once"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, ignored)
    try:
        program.started(proc)
        proc.send_signal(signal.SIGINT)  # what the terminal sends its foreground group
        _, err = proc.communicate(timeout=60)
        left = program.left()
    finally:  # leave nothing behind, whatever the outcome
        if proc.poll() is None:
            proc.kill()
        program.kill()
    assert proc.returncode == 130
    assert "esim-monitor: interrupted" in err
    assert left == []


UNNEEDED = ("apprise", "httpx", "httpcore", "numpy", "sqlite_utils", "monitor.notify")
"""What a command that only reads the database has no use for (issue 18); nor has it for
the adapters' modules (monitor.adapters itself knows each built-in's size convention)."""


@pytest.mark.parametrize(
    "command",
    [("status",), ("status", "--json"), ("history", "travel"), ("events",), ("report",)],
)
def test_read_commands_import_neither_apprise_nor_http_nor_numpy(
    configured: Path, command: tuple[str, ...]
) -> None:
    """A read-only command on a config with a channel and a database: Apprise, the HTTP
    client, the adapters and sqlite-utils (numpy, with matplotlib installed) stay out.
    A behaviour, not a timing: bench/startup.py measures what it saves."""
    import subprocess

    assert run_once(configured) == 0
    code = (
        "import sys\n"
        "from monitor.cli import main\n"
        f"code = main({['--config', str(configured), *command]!r})\n"
        f"names = {UNNEEDED!r}\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(names)\n"
        "                or m.startswith('monitor.adapters.'))\n"
        "print(code, loaded, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout, "the command printed nothing"
    assert done.stderr.strip().splitlines()[-1] == "0 []"


@pytest.mark.parametrize("channel", [False, True])
def test_the_daemon_imports_apprise_only_for_a_channel(
    write_config: Callable[..., Path], sink: Any, channel: bool
) -> None:
    """`run --once` loads Apprise to check and send through a channel, and never without one."""
    import subprocess

    config = write_config((f'[channels.hook]\nurl = "{sink.url}"\n' if channel else "") + LINES)
    code = (
        "import sys\n"
        "from monitor.cli import main\n"
        f"code = main(['--config', {str(config)!r}, 'run', '--once'])\n"
        "print(code, 'apprise' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.stderr.strip().splitlines()[-1] == f"0 {channel}", done.stderr


def test_the_config_module_the_cli_defers_is_a_module_like_any() -> None:
    """The CLI loads monitor.config on first use: importing the CLI does not run it, and
    `import monitor.config` after it gives the one module, as the package's attribute."""
    import subprocess

    code = (
        "import sys\n"
        "import monitor.cli\n"
        "print('pydantic_settings' in sys.modules, file=sys.stderr)\n"
        "import monitor.config\n"
        "print(monitor.config.Settings is monitor.cli.config.Settings, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.stderr.strip().splitlines()[-2:] == ["False", "True"], done.stderr


def test_help_imports_neither_pydantic_nor_structlog() -> None:
    """`--help` builds the parser only: the config's models and the log set-up stay out."""
    import subprocess

    code = (
        "import sys\n"
        "from monitor.cli import main\n"
        "code = main(['--help'])\n"
        "names = ('pydantic', 'pydantic_settings', 'structlog', 'apprise', 'httpx')\n"
        "print(code, sorted(m for m in names if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert "usage: esim-monitor" in done.stdout
    assert done.stderr.strip().splitlines()[-1] == "0 []"


def test_validate_warns_about_polling_faster_than_useful(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        '[accounts.t]\nprovider = "airalo"\nclient_id = "x"\nclient_secret = "y"\n'
        '[lines.a]\naccount = "t"\niccid = "8944465400000267221"\ninterval = "5m"\n'
    )
    assert cli("--config", str(path), "config", "validate") == 0
    err = capsys.readouterr().err
    assert "warning: At 'lines.a.interval': airalo answers from a 20m server-side cache" in err
    ussd = write_config(
        '[lines.u]\nadapter = "ussd"\nmodem = "8901260123456789012"\npreset = "t-mobile"\n'
        'interval = "1m"\n'
    )
    assert cli("--config", str(ussd), "config", "validate") == 0
    err = capsys.readouterr().err
    assert "warning: At 'lines.u.interval': ussd asks the carrier, which throttles USSD" in err
    assert "cache" not in err


def test_validate_warns_when_no_threshold_watches_what_the_line_reads(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 19: an Airalo partner-credit line (no iccid: a balance) with data thresholds
    only, and a demo line of data alone, never alert but for failures."""
    path = write_config(
        '[accounts.t]\nprovider = "airalo"\nclient_id = "x"\nclient_secret = "y"\n'
        '[lines.credit]\naccount = "t"\n'
        '[lines.credit.thresholds]\ndata_warning = "1GB"\n'
        '[lines.esim]\naccount = "t"\niccid = "8944465400000267221"\n'
        '[lines.esim.thresholds]\ndata_warning = "1GB"\n'
        '[lines.demo]\nadapter = "demo"\nbalance = 5\n'
        '[lines.relayed]\nadapter = "demo"\nrelay_preset = "t-mobile-sms"\n'
        '[lines.watched]\nadapter = "demo"\n[lines.watched.thresholds]\nbalance_warning = 5\n'
    )
    assert cli("--config", str(path), "config", "validate") == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if ".thresholds'" in line]
    assert warned == [
        f"{path}: warning: At 'lines.credit.thresholds': no threshold watches what airalo "
        "reads for this line (balance): it alerts only on failed checks; set "
        "balance_warning here or in [defaults.thresholds]",
        f"{path}: warning: At 'lines.demo.thresholds': no threshold watches what demo "
        "reads for this line (balance): it alerts only on failed checks; set "
        "balance_warning here or in [defaults.thresholds]",
    ]


def test_status_shows_sizes_as_the_lines_provider_counts(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        '[lines.app]\nadapter = "demo"\ndata = "3072MiB"\ndata_total = "3072MiB"\n'
        'sizes = "binary"\n'
        '[lines.carrier]\nadapter = "demo"\ndata = "3072MiB"\ndata_total = "3072MiB"\n'
    )
    assert run_once(path) == 0
    capsys.readouterr()
    assert cli("--config", str(path), "status") == 0
    table = {row.split()[0]: row for row in capsys.readouterr().out.splitlines()[1:]}
    assert "3 GB of 3 GB" in table["app"]
    assert "3.22 GB of 3.22 GB" in table["carrier"]
    assert cli("--config", str(path), "status", "--json") == 0
    rows = {r["line"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["app"]["data_remaining_bytes"] == 3072 * 2**20  # bytes in JSON, always
    assert (rows["app"]["data_sizes"], rows["carrier"]["data_sizes"]) == ("binary", "decimal")


def test_check_and_status_show_when_the_plan_renews(
    write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a Hologram line's billing period end, or T-Mobile's renewal date, is its renewal
    script = tmp_path / "renews.py"
    script.write_text(
        "import json\nprint(json.dumps({'balance': '12.5', 'currency': 'USD', "
        "'renewal_at': '2026-12-30T00:00:00Z', 'renewal_price': '10'}))\n"
    )
    path = write_config(
        f'[lines.plan]\nadapter = "command"\nargv = ["{sys.executable}", "{script}"]\n'
    )
    assert cli("--config", str(path), "check", "plan", "--json") == 0
    (checked,) = json.loads(capsys.readouterr().out)
    assert cli("--config", str(path), "run", "--once") == 0
    capsys.readouterr()
    assert cli("--config", str(path), "status", "--json") == 0
    (status,) = json.loads(capsys.readouterr().out)
    for row in (checked, status):
        assert datetime.fromisoformat(row["renewal_at"]) == datetime(2026, 12, 30, tzinfo=UTC)
        assert row["renewal_price"] == "10"


def test_one_corrupt_page_anywhere_exits_65_every_time(
    write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 11.3: random bytes over one page of a populated database, 30 seeds. Unfixed,
    `run --once` exited 0 (damage unread), 1 (sqlite3.DatabaseError) or 65 by chance."""
    import random

    lines = "".join(f'[lines.l{i}]\nadapter = "demo"\nbalance = 50\n' for i in range(26))
    path = write_config("[defaults.thresholds]\nbalance_warning = 45\n" + lines)
    for _ in range(6):
        assert run_once(path) == 0
    db = tmp_path / "history.db"
    pristine = db.read_bytes()
    pages = len(pristine) // 4096
    codes = []
    for seed in range(30):
        rng = random.Random(seed)
        page = rng.randrange(pages)
        data = bytearray(pristine)
        data[page * 4096 : (page + 1) * 4096] = rng.randbytes(4096)
        db.write_bytes(bytes(data))
        codes.append(run_once(path))
        err = capsys.readouterr().err
        assert "Traceback" not in err and "internal error" not in err
    assert codes == [65] * 30


def test_report_png_is_0600_whatever_the_umask(
    configured: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 11.11: the chart shows balances; unfixed it was written 0644 (umask 022)."""
    from freezegun import freeze_time

    # frozen like test_alerting's chart: matplotlib keeps the datetime class it first saw
    with freeze_time("2026-11-04 14:00:00", tick=True):
        assert run_once(configured) == 0
        png = tmp_path / "chart.png"
        old = os.umask(0o022)
        try:
            assert cli("--config", str(configured), "report", "--png", str(png)) == 0
        finally:
            os.umask(old)
        assert stat.S_IMODE(png.stat().st_mode) == 0o600
        png.chmod(0o644)  # an existing wider file is narrowed too
        assert cli("--config", str(configured), "report", "--png", str(png)) == 0
        assert stat.S_IMODE(png.stat().st_mode) == 0o600


# ---- bad input: a one-line message and exit 78 (config) or 2 (usage), never "internal error"

HOSTILE_CONFIG_VALUES = [
    ("monitor", "interval", "nan"),
    ("monitor", "interval", "inf"),
    ("monitor", "interval", '"infs"'),
    ("monitor", "interval", '"nanm"'),
    ("monitor", "interval", "1e999999999"),
    ("monitor", "interval", '"99999999d"'),
    ("defaults.thresholds", "balance_warning", "1e999999999"),
    ("defaults.thresholds", "balance_warning", '"1e-999999999"'),
    ("defaults.thresholds", "hysteresis", '"1e999999999%"'),
    ("defaults.thresholds", "data_warning", '"99999999999999999999999999999TB"'),
    ("defaults.thresholds", "data_warning", "1e999999999"),
]


def _one_problem(err: str) -> None:
    assert "internal error" not in err and "Traceback" not in err
    problems = [line for line in err.splitlines() if not line.startswith("esim-monitor:")]
    assert len(problems) <= 1, err


@pytest.mark.parametrize(("table", "key", "value"), HOSTILE_CONFIG_VALUES)
def test_hostile_config_values_are_config_errors(
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    table: str,
    key: str,
    value: str,
) -> None:
    path = write_config(f'[{table}]\n{key} = {value}\n[lines.a]\nadapter = "demo"\nbalance = 12\n')
    assert cli("--config", str(path), "run", "--once") == 78
    err = capsys.readouterr().err
    _one_problem(err)
    assert key in err


def test_deeply_nested_config_is_a_config_error(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    for depth in (50, 5000):  # past our bound; past tomllib's recursion
        path = write_config('[lines.a]\nadapter = "demo"\nx = ' + "[" * depth + "]" * depth + "\n")
        assert cli("--config", str(path), "config", "validate") == 78
        _one_problem(capsys.readouterr().err)


@pytest.mark.parametrize("duration", ["99999999d", "1e999999999s", "nanm"])
def test_snooze_past_the_calendar_is_a_usage_error(
    configured: Path, capsys: pytest.CaptureFixture[str], duration: str
) -> None:
    assert cli("--config", str(configured), "snooze", "travel", duration) == 2
    err = capsys.readouterr().err
    _one_problem(err)
    assert "DURATION" in err
    assert cli("--config", str(configured), "history", "travel", "--since", duration) == 2


def test_report_png_into_a_missing_folder_is_a_usage_error(
    configured: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_once(configured) == 0
    target = tmp_path / "missing" / "chart.png"
    assert cli("--config", str(configured), "report", "--png", str(target)) == 2
    err = capsys.readouterr().err
    _one_problem(err)
    assert "--png" in err and "missing" in err


def test_config_that_is_not_a_regular_file(tmp_path: Path) -> None:
    """A FIFO hung the loader forever; a directory or a device is no config either."""
    import os
    import subprocess
    import sys

    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    for target in (fifo, tmp_path, Path("/dev/zero")):
        done = subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(target), "config", "validate"],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        )
        assert done.returncode == 78, (target, done.stderr)
        _one_problem(done.stderr)
        assert "not a regular file" in done.stderr


def test_http_password_prints_a_hash_of_the_password_read_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.http.auth import check_password, valid_hash

    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse\n"))
    assert main(["http", "password"]) == 0
    out, err = capsys.readouterr()
    printed = out.strip()
    assert valid_hash(printed) and check_password("correct horse", printed)
    assert "correct horse" not in out + err and "password_hash" in err
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert main(["http", "password"]) == 2
    assert "at least 8 characters" in capsys.readouterr().err


def test_http_password_asks_twice_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import getpass

    from monitor.http.auth import check_password

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = iter(["correct horse", "correct h0rse", "correct horse", "correct horse"])
    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    assert main(["http", "password"]) == 2
    assert "differ" in capsys.readouterr().err
    assert main(["http", "password"]) == 0
    assert check_password("correct horse", capsys.readouterr().out.strip())


def test_http_token_issues_a_token_kept_only_as_its_hash(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.http.auth import token_hash
    from monitor.store import Store
    from monitor.store import web as web_tables

    path = write_config('[lines.a]\nadapter = "demo"\nbalance = 5\n')
    assert main(["--config", str(path), "http", "token", "grafana"]) == 0
    token = capsys.readouterr().out.strip()
    assert len(token) >= 40
    assert main(["--config", str(path), "http", "token"]) == 0
    other = capsys.readouterr().out.strip()
    store = Store.open(path.parent / "history.db")
    try:
        assert web_tables.token_name(store, token_hash(token)) == "grafana"
        assert web_tables.token_name(store, token_hash(other)) == "api"
        assert web_tables.token_name(store, token) is None
    finally:
        store.close()


def test_http_tokens_lists_names_and_revoke_ends_every_token_of_a_name(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.http.auth import token_hash
    from monitor.store import Store
    from monitor.store import web as web_tables

    path = write_config('[lines.a]\nadapter = "demo"\nbalance = 5\n')
    issued = {}
    for name in ("grafana", "grafana", "phone"):
        assert main(["--config", str(path), "http", "token", name]) == 0
        issued.setdefault(name, []).append(capsys.readouterr().out.strip())
    assert main(["--config", str(path), "http", "tokens"]) == 0
    listed = capsys.readouterr().out
    assert [row.split("\t")[0] for row in listed.splitlines()] == ["grafana", "grafana", "phone"]
    assert not any(token in listed for tokens in issued.values() for token in tokens)
    assert main(["--config", str(path), "http", "revoke", "grafana"]) == 0
    assert "revoked 2 API tokens" in capsys.readouterr().out
    assert main(["--config", str(path), "http", "revoke", "grafana"]) == 2
    assert "no API token is named" in capsys.readouterr().err
    store = Store.open(path.parent / "history.db")
    try:
        assert [web_tables.token_name(store, token_hash(t)) for t in issued["grafana"]] == [
            None,
            None,
        ]
        assert web_tables.token_name(store, token_hash(issued["phone"][0])) == "phone"
    finally:
        store.close()


def test_help_groups_every_command_once_and_ends_with_the_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from monitor import errors
    from monitor.cli import COMMAND_GROUPS

    commands = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    grouped = [name for _, names in COMMAND_GROUPS for name in names]
    assert sorted(grouped) == sorted(commands[0].choices)  # each in one group, none missing
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    assert "commands:\n  the daemon:\n    run " in out and "\n  other:" not in out
    codes = out.split("\nexit codes:\n", 1)[1].splitlines()
    numbers = [int(row.split()[0]) for row in codes]
    assert numbers == [
        errors.EXIT_OK,
        errors.EXIT_FAILURE,
        errors.EXIT_USAGE,
        errors.EXIT_DATABASE,
        errors.EXIT_CONFIG,
        130,
    ]


def test_every_option_and_argument_has_a_help_line() -> None:

    missing = [
        (path, action.option_strings or action.dest)
        for path, action in actions(build_parser())
        if not action.help and not isinstance(action, argparse._HelpAction)
    ]
    assert missing == []


def test_every_command_that_prints_data_takes_json(
    configured: Path,
    write_config: Callable[..., Path],
    recorder: list[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_once(configured) == 0
    capsys.readouterr()
    assert cli("--config", str(configured), "config", "validate", "--json") == 0
    valid = json.loads(capsys.readouterr().out)
    assert valid["valid"] is True and valid["problems"] == [] and valid["lines"] == 2
    bad = write_config('[monitor]\ninterval = "soon"\n[lines.Bad]\nadapter = "demo"\n', "bad.toml")
    assert cli("--config", str(bad), "config", "validate", "--json") == 78
    invalid = json.loads(capsys.readouterr().out)
    assert invalid["valid"] is False
    assert {p["path"] for p in invalid["problems"]} == {"monitor.interval", "lines.Bad"}

    assert cli("--config", str(configured), "history", "travel", "--json") == 0
    as_json = capsys.readouterr().out
    assert cli("--config", str(configured), "history", "travel", "--format", "json") == 0
    assert json.loads(as_json) == json.loads(capsys.readouterr().out) != []

    low_line = write_config(LINES + '[lines.low]\nadapter = "demo"\nbalance = 4\n', "low.toml")
    assert run_once(low_line) == 0
    capsys.readouterr()
    assert cli("--config", str(low_line), "report", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    (low,) = [row for row in report["low"] if row["line"] == "low"]
    assert low["state"] == "critical" and low["why"].startswith("balance 4.00 USD (critical")
    assert set(report) == {"lines", "since", "low", "expiring", "forecasts", "failed"}

    failing = write_config('[channels.bad]\nurl = "record://fail"\n' + LINES, "failing.toml")
    assert cli("--config", str(failing), "notify", "test", "--json") == 1
    (result,) = json.loads(capsys.readouterr().out)
    assert result["channel"] == "bad" and result["ok"] is False and result["url"] == "record://****"
