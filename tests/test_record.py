"""`esim-monitor record`: a reading the owner has, judged and alerted as a polled one, and
never lost beside a running daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from monitor.adapters.demo import DemoAdapter
from monitor.cli import load_settings, main
from monitor.cycle import Checker
from monitor.errors import ReadingRejected
from monitor.model import Reading, utcnow
from monitor.store import Store

LINES = """
[monitor]
timezone = "America/New_York"

[defaults.thresholds]
balance_warning = 10
balance_critical = 5

[lines.phone]
label = "AT&T phone"
adapter = "demo"
balance = 12
drain = 0
data = "3GB"
"""


@pytest.fixture
def configured(write_config: Callable[..., Path], sink: Any) -> Path:
    return write_config(LINES + f'\n[channels.hook]\nurl = "{sink.url}"\n')


def cli(config: Path, *args: str) -> int:
    return main(["--config", str(config), *args])


def status(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert cli(config, "status", "--json") == 0
    [row] = json.loads(capsys.readouterr().out)
    return row


def test_a_recorded_balance_is_judged_alerted_and_shown(
    configured: Path, sink: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(configured, "record", "phone", "--balance", "4.50") == 0
    out = capsys.readouterr().out
    assert "phone: recorded (balance 4.50" in out and "state critical" in out
    assert "critical raised" in out
    assert cli(configured, "run", "--once") == 0  # delivers the outbox; the poll reads 12
    # no currency known yet: the first reading of the line, and none configured
    assert sink.titles()[0] == "[CRITICAL] AT&T phone is critical: balance 4.50"
    capsys.readouterr()
    assert cli(configured, "history", "phone", "--format", "json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["source"], r["balance"]) for r in rows] == [("manual", "4.50"), ("poll", "12.00")]
    assert cli(configured, "history", "phone") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[5] == "SOURCE" and table[1].split()[-1] == "manual"


def test_figures_left_out_keep_their_last_known_values(
    configured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(configured, "run", "--once") == 0  # the poll: 12 USD, 3 GB
    assert cli(configured, "record", "phone", "--balance", "8") == 0
    row = status(configured, capsys)
    assert row["source"] == "manual" and row["balance"] == "8" and row["currency"] == "USD"
    assert row["data_remaining_bytes"] == 3_000_000_000
    assert row["carried"] == ["data_remaining"]
    assert row["state"] == "warning"
    assert cli(configured, "status") == 0
    assert "phone: last reading manual (data_remaining from an earlier reading)" in (
        capsys.readouterr().out
    )


def test_expires_is_the_end_of_that_day_in_the_configured_zone(
    configured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with freeze_time("2026-12-01 12:00:00"):
        assert cli(configured, "record", "phone", "--expires", "2026-12-30", "--data", "2GB") == 0
        row = status(configured, capsys)
    # 23:59:59 in New York (EST, UTC-5)
    assert row["expires_at"] == "2026-12-31T04:59:59.000000+00:00"
    assert row["data_remaining_bytes"] == 2_000_000_000 and row["balance"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["phone"], "give at least one of --balance, --data, --expires"),
        (["phone", "--balance", "-1"], "--balance '-1' cannot be negative"),
        (["phone", "--balance", "lots"], "--balance: expected an amount of money"),
        (["phone", "--balance", "1e20"], "out of range for money"),
        (["phone", "--data", "2"], "--data: cannot read '2' as a data size"),
        (["phone", "--expires", "2026-02-30"], "is not a date such as 2026-12-30"),
        (["phone", "--expires", "2020-01-01"], "that day is over"),
        (["nope", "--balance", "1"], "unknown line 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    configured: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    capsys.readouterr()
    assert cli(configured, "record", *args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    store = Store.open(load_settings(configured).database_path())
    assert store.history("phone", datetime(2000, 1, 1, tzinfo=UTC)) == []
    store.close()


def test_record_refuses_figures_out_of_range(configured: Path) -> None:
    settings = load_settings(configured)
    store = Store.open(settings.database_path())
    checker = Checker(settings)
    try:
        with pytest.raises(ReadingRejected, match="data_remaining"):
            checker.record(
                store, Reading("phone", utcnow(), data_remaining=10**19, source="manual")
            )
    finally:
        checker.close()
        store.close()


def test_a_reading_recorded_while_the_daemon_checks_is_not_lost(
    configured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes: the daemon's pass reads its states, then (while its check is under
    way) `esim-monitor record` writes a critical balance from its own process. The daemon's
    check must be judged after the recorded one: a recovery, not a silent overwrite that
    leaves the critical alert standing with an ok line."""
    read = DemoAdapter.read
    record = ("record", "phone", "--balance", "2")

    def read_while_recorded(self: DemoAdapter) -> Reading:
        done = subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(configured), *record],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return read(self)

    monkeypatch.setattr(DemoAdapter, "read", read_while_recorded)
    settings = load_settings(configured)
    store = Store.open(settings.database_path())
    checker = Checker(settings)
    try:
        [judged] = checker.run(store, ["phone"])
    finally:
        checker.close()
    since = datetime(2000, 1, 1, tzinfo=UTC)
    readings = [(r.source, r.balance) for r in store.history("phone", since)]
    assert readings == [("manual", Decimal("2")), ("poll", Decimal("12.00"))]
    assert [e.type for e in store.events(since)] == ["critical", "recovery"]
    assert judged.state.level is not None and store.state("phone") == judged.state
    assert store.status()["phone"].source == "poll"
    store.close()
