"""Guarded auto-recharge: one top-up per need, caps, dry run, unknown outcomes never retried,
signed webhooks, refill PINs, verification, reconciliation after a crash, and the CLI."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from daemon_proc import run_argv
from freezegun import freeze_time
from logwait import wait_for_log

from monitor.adapters import demo
from monitor.cli import load_settings, main
from monitor.config import Recharge, Trigger, parse_trigger
from monitor.model import Level, Reading, TopUpRequest, TopUpResult
from monitor.recharge import Recharger, blocked, trigger_holds
from monitor.store import Recharge as Entry
from monitor.store import Store

T0 = datetime(2026, 11, 10, 15, 0, tzinfo=UTC)

DEMO = """
[recharge]
enabled = {enabled}
[defaults.thresholds]
balance_warning = 10
balance_critical = 5
[channels.hook]
url = "{url}"
[lines.a]
adapter = "demo"
balance = 9
drain = 3
[lines.a.recharge]
when = "critical"
action = "provider"
package = "demo-topup"
{extra}
"""


def cli(path: Path, *args: str) -> int:
    return main(["--config", str(path), *args])


def ledger(path: Path) -> list[Entry]:
    store = Store.open(load_settings(path).database_path())
    try:
        return store.recharges()
    finally:
        store.close()


def test_one_low_period_gives_exactly_one_top_up_then_confirmation(
    write_config: Callable[..., Path], sink: Any
) -> None:
    path = write_config(DEMO.format(enabled="true", url=sink.url, extra=""))
    with freeze_time(T0, tick=True):
        cli(path, "run", "--once")  # 9: warning
        cli(path, "run", "--once")  # 6: warning
        cli(path, "run", "--once")  # 3: critical -> top-up (the demo line starts again at 9)
        assert len(demo._top_ups) == 1
        cli(path, "run", "--once")  # 9: up again -> confirmed; critical -> warning
    titles = sink.titles()
    assert titles[1:3] == [
        "[CRITICAL] a is critical: balance 3.00 USD",
        "[RECHARGE-REQUESTED] a: top-up requested (demo-topup)",
    ]
    assert "[RECHARGE-CONFIRMED] a: top-up confirmed (demo-topup)" in titles
    (entry,) = ledger(path)
    assert entry.state == "confirmed" and entry.price == Decimal("9") and entry.currency == "USD"
    assert entry.key.startswith("a:2026-11-10T15:00")


def test_the_same_need_is_never_bought_twice(
    write_config: Callable[..., Path], sink: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(DEMO.format(enabled="true", url=sink.url, extra='cooldown = "0s"'))
    settings = load_settings(path)
    store = Store.open(settings.database_path())
    calls = []

    class Counting:
        name = "provider"

        def execute(self, request: TopUpRequest) -> TopUpResult:
            calls.append(request.key)
            return TopUpResult(reference="x")

    monkeypatch.setattr("monitor.recharge.actions.build", lambda *a, **k: Counting())
    recharger = Recharger(settings, store, lambda line: None)
    low = Reading("a", T0, balance=Decimal(1), currency="USD")
    for minutes in range(0, 60, 10):  # the line stays critical, the top-up unconfirmed
        recharger.after_check("a", Level.CRITICAL, low, T0 + timedelta(minutes=minutes))
    assert len(calls) == 1
    store.close()


def test_nothing_is_bought_until_enabled(write_config: Callable[..., Path], sink: Any) -> None:
    path = write_config(DEMO.format(enabled="false", url=sink.url, extra=""))
    for _ in range(4):
        cli(path, "run", "--once")
    assert demo._top_ups == {}
    assert ledger(path) == []


def test_dry_run_calls_nothing(write_config: Callable[..., Path], sink: Any) -> None:
    path = write_config(DEMO.format(enabled="true", url=sink.url, extra="dry_run = true"))
    for _ in range(3):
        cli(path, "run", "--once")
    assert demo._top_ups == {}
    (entry,) = ledger(path)
    assert entry.state == "dry-run"
    assert sink.titles()[-1] == (
        "[RECHARGE-REQUESTED] a: top-up would be requested (demo-topup), but this is a dry run"
    )


# ---- caps, pure ---------------------------------------------------------------------------


def booked(at: datetime, state: Any = "confirmed", price: str | None = "20") -> Entry:
    return Entry(
        line="a",
        key=f"a:{at.isoformat()}",
        state=state,
        action="provider",
        requested_at=at,
        price=Decimal(price) if price is not None else None,
        currency="USD",
    )


POLICY = Recharge(
    action="webhook",
    max_per_day=1,
    max_per_month=3,
    cooldown=timedelta(hours=6),
    max_spend_per_month=Decimal(50),
    price=Decimal(20),
    currency="USD",
)


@pytest.mark.parametrize(
    ("entries", "now", "cap", "frees_at"),
    [
        ([], T0, None, None),
        ([booked(T0 - timedelta(hours=2))], T0, "cooldown", T0 + timedelta(hours=4)),
        ([booked(T0 - timedelta(hours=7))], T0, "max_per_day", datetime(2026, 11, 11, tzinfo=UTC)),
        ([booked(T0 - timedelta(days=1), price="30")], T0, None, None),  # 30 + 20 = 50: at the cap
        (
            [booked(T0 - timedelta(days=1), price="31")],
            T0,
            "max_spend_per_month",
            datetime(2026, 12, 1, tzinfo=UTC),
        ),  # 31 spent + 20 next > 50
        (
            [booked(T0 - timedelta(days=d), price="1") for d in (1, 2, 3)],
            T0,
            "max_per_month",
            datetime(2026, 12, 1, tzinfo=UTC),
        ),
        ([booked(T0 - timedelta(days=d), state="failed") for d in (1, 2, 3)], T0, None, None),
        ([booked(T0 - timedelta(days=1), state="unknown")], T0, None, None),
        (
            [booked(T0 - timedelta(days=1), state="unknown", price="40")],
            T0,
            "max_spend_per_month",
            datetime(2026, 12, 1, tzinfo=UTC),
        ),  # unknown counts as spent
        ([booked(datetime(2026, 10, 31, tzinfo=UTC), price="45")], T0, None, None),  # last month
    ],
)
def test_caps(entries: list[Entry], now: datetime, cap: str | None, frees_at: Any) -> None:
    block = blocked(POLICY, entries, now, UTC)
    assert (block.cap if block else None) == cap
    if block:
        assert block.frees_at == frees_at


def test_caps_follow_the_configured_time_zone() -> None:
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")
    # 03:00 UTC on the 11th is still the 10th in New York: the same day as 15:00 UTC on the 10th
    block = blocked(
        POLICY.model_copy(update={"cooldown": timedelta(0)}),
        [booked(T0)],
        datetime(2026, 11, 11, 3, 0, tzinfo=UTC),
        ny,
    )
    assert block is not None and block.cap == "max_per_day"
    assert block.frees_at == datetime(2026, 11, 11, 0, 0, tzinfo=ny)


@pytest.mark.parametrize(
    ("trigger", "level", "figures", "holds"),
    [
        (Trigger(state="critical"), Level.CRITICAL, {}, True),
        (Trigger(state="critical"), Level.WARNING, {}, False),
        (Trigger(state="warning"), Level.CRITICAL, {}, True),
        (Trigger(metric="data", limit=300 * 10**6), Level.OK, {"data_remaining": 10**8}, True),
        (Trigger(metric="data", limit=300 * 10**6), Level.OK, {"data_remaining": 10**9}, False),
        (Trigger(metric="balance", limit=Decimal(5)), Level.OK, {"balance": Decimal(4)}, True),
        (
            Trigger(metric="expiry", limit=timedelta(days=2)),
            Level.OK,
            {"expires_at": T0 + timedelta(days=1)},
            True,
        ),
        (Trigger(metric="data", limit=300), Level.OK, {}, None),  # cannot tell: no figure
    ],
)
def test_triggers(
    trigger: Trigger, level: Level, figures: dict[str, Any], holds: bool | None
) -> None:
    assert trigger_holds(trigger, level, Reading("a", T0, **figures)) is holds


def test_a_data_trigger_reads_in_the_lines_size_convention() -> None:
    trigger = parse_trigger("data < 300MB")
    figure = Reading("a", T0, data_remaining=310 * 10**6)  # above 300 MB, below 300 MiB
    assert trigger_holds(trigger, Level.OK, figure) is False
    assert trigger_holds(trigger, Level.OK, figure, "binary") is True


# ---- webhook ------------------------------------------------------------------------------


class Hook:
    """A user's webhook endpoint: checks the signature, answers what the test says."""

    def __init__(self, secret: str) -> None:
        self.calls: list[dict[str, Any]] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
                hook.calls.append(
                    {
                        "body": json.loads(body),
                        "valid": hmac.compare_digest(
                            expected, self.headers["X-Esim-Monitor-Signature"]
                        ),
                        "key": self.headers["Idempotency-Key"],
                    }
                )
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/topup"


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook("s3cret-key")
    yield h
    h.server.shutdown()


WEBHOOK = """
[recharge]
enabled = true
[defaults.thresholds]
balance_critical = 5
[channels.hook]
url = "{sink}"
[lines.a]
adapter = "demo"
balance = 3
drain = 0
[lines.a.recharge]
action = "webhook"
url = "{hook}"
secret = "s3cret-key"
amount = 20
currency = "USD"
verify_within = "1h"
"""


def test_webhook_is_signed_and_unconfirmed_after_the_deadline(
    write_config: Callable[..., Path], sink: Any, hook: Hook
) -> None:
    path = write_config(WEBHOOK.format(sink=sink.url, hook=hook.url))
    with freeze_time(T0, tick=True):
        cli(path, "run", "--once")
    (call,) = hook.calls
    assert call["valid"]
    assert call["body"]["line"] == "a" and call["body"]["amount"] == "20"
    assert call["body"]["balance"] == "3.00"
    assert call["key"] == call["body"]["key"]
    assert "s3cret-key" not in json.dumps(call["body"])
    with freeze_time(T0 + timedelta(hours=2), tick=True):
        cli(path, "run", "--once")  # the balance never went up
    assert len(hook.calls) == 1
    assert ledger(path)[0].state == "unconfirmed"
    assert "[RECHARGE-UNCONFIRMED] a: top-up (20 USD) not seen within 1h" in sink.titles()


def test_an_unknown_outcome_is_not_retried_and_alerts(
    write_config: Callable[..., Path], sink: Any, hook: Hook
) -> None:
    hook.status = 502
    path = write_config(WEBHOOK.format(sink=sink.url, hook=hook.url))
    for hours in (0, 7, 30, 60):  # past the cooldown and the day cap: still the same need
        with freeze_time(T0 + timedelta(hours=hours), tick=True):
            cli(path, "run", "--once")
    assert len(hook.calls) == 1
    (entry,) = ledger(path)
    assert entry.state == "unknown"
    assert any(
        t.startswith("[RECHARGE-FAILED] a: top-up unknown: not retried") for t in sink.titles()
    )


def test_a_refused_webhook_is_a_failure(
    write_config: Callable[..., Path], sink: Any, hook: Hook
) -> None:
    hook.status = 400
    path = write_config(WEBHOOK.format(sink=sink.url, hook=hook.url))
    cli(path, "run", "--once")
    assert ledger(path)[0].state == "failed"


def test_config_errors(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        '[lines.a]\nadapter = "demo"\n[lines.a.recharge]\naction = "webhook"\n'
        'max_spend_per_month = 50\nwhen = "data < lots"\n'
    )
    assert cli(path, "config", "validate") == 78
    err = capsys.readouterr().err
    for where in ("lines.a.recharge.when",):
        assert f"At '{where}'" in err
    path = write_config(
        '[lines.a]\nadapter = "demo"\n[lines.a.recharge]\naction = "webhook"\n'
        "max_spend_per_month = 50\n"
    )
    assert cli(path, "config", "validate") == 78
    err = capsys.readouterr().err
    for where in ("url", "secret", "price", "currency"):
        assert f"At 'lines.a.recharge.{where}'" in err


# ---- refill PINs --------------------------------------------------------------------------


def test_refill_pins_each_used_once_then_exhaustion_alerted(
    write_config: Callable[..., Path],
    sink: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fake_mmcli

    from monitor import modem

    monkeypatch.setattr(modem, "KILL_GRACE", 0.2)
    fake = fake_mmcli.install(
        tmp_path,
        monkeypatch,
        {
            "modems": [
                {
                    "index": 0,
                    "equipment_id": "867000000000001",
                    "model": "EG25-G",
                    "state": "registered",
                    "sim": {"index": 0, "iccid": "8901"},
                    "codes": {
                        "*888*1111#": {"reply": "Your account has been credited."},
                        "*888*2222#": {"reply": "Your account has been credited."},
                    },
                }
            ]
        },
    )
    path = write_config(
        f'[recharge]\nenabled = true\n[channels.hook]\nurl = "{sink.url}"\n'
        "[defaults.thresholds]\nbalance_critical = 5\n"
        '[lines.a]\nadapter = "demo"\nbalance = 3\ndrain = 0\n'
        '[lines.a.recharge]\naction = "ussd-pin"\nmodem = "867000000000001"\n'
        'pins = "1111, 2222"\ncooldown = "0s"\nmax_per_day = 5\nmax_per_month = 10\n'
    )
    settings = load_settings(path)
    store = Store.open(settings.database_path())
    recharger = Recharger(settings, store, lambda line: None)
    low = Reading("a", T0, balance=Decimal(3), currency="USD")
    for i in range(3):  # three separate needs (the line recovers in between)
        now = T0 + timedelta(hours=i)
        recharger.after_check("a", Level.OK, Reading("a", now, balance=Decimal(50)), now)
        recharger.after_check("a", Level.CRITICAL, low, now + timedelta(minutes=1))
    sent = [a for a in fake.actions() if a.startswith("initiate")]
    assert sent == ["initiate *888*1111#", "initiate *888*2222#"]
    states = [r.state for r in store.recharges("a")]
    assert states == ["confirmed", "confirmed", "failed"]  # the next reading showed each
    assert store.recharges("a")[2].detail == "no unused refill PIN left"
    db_text = Path(settings.database_path()).read_bytes()
    assert b"1111" not in db_text and b"2222" not in db_text  # only hashes are kept
    store.close()


# ---- crashes ------------------------------------------------------------------------------


def test_interrupted_intent_is_reconciled_before_acting_again(
    write_config: Callable[..., Path], sink: Any
) -> None:
    path = write_config(DEMO.format(enabled="true", url=sink.url, extra=""))
    settings = load_settings(path)
    store = Store.open(settings.database_path())
    base = Entry(
        line="a",
        key="a:never-sent",
        state="requested",
        action="provider",
        requested_at=T0,
        package="demo-topup",
    )
    # the daemon died after writing the intent, before the call: the demo provider has none
    store.add_recharge(base)
    # and another time after the call, before its record: the provider has the order
    store.add_recharge(replace(base, key="a:sent"))
    demo._top_ups["a:sent"] = TopUpRequest("a", "a:sent", T0)
    recharger = Recharger(settings, store, lambda line: demo.DemoAdapter(line, None, None))  # type: ignore[arg-type]
    low = Reading("a", T0 + timedelta(minutes=5), balance=Decimal(1), currency="USD")
    recharger.after_check("a", Level.CRITICAL, low, low.checked_at)
    states = {r.key: r.state for r in store.recharges("a")}
    # nothing was bought for the first: its need's key is free again
    assert states == {"a:never-sent:interrupted": "failed", "a:sent": "submitted"}
    assert len(demo._top_ups) == 1  # reconciling bought nothing
    store.close()


def _command_config(
    sink: Any, script: Path, interval: str, timeout: str, thresholds: str = "", more: str = ""
) -> str:
    """Line a, critical from its first check, topped up by running `script`."""
    return (
        f'[monitor]\ninterval = "{interval}"\n[recharge]\nenabled = true\n'
        f'[channels.hook]\nurl = "{sink.url}"\n'
        f"[defaults.thresholds]\n{thresholds}balance_critical = 5\n"
        '[lines.a]\nadapter = "demo"\nbalance = 3\ndrain = 0\n'
        '[lines.a.recharge]\naction = "command"\n'
        f'argv = ["{sys.executable}", "{script}"]\ntimeout = "{timeout}"\n{more}'
    )


def test_sigkill_during_a_top_up_charges_no_second_time(
    write_config: Callable[..., Path], sink: Any, tmp_path: Path
) -> None:
    counter = tmp_path / "calls"
    script = tmp_path / "topup.py"
    script.write_text(
        "import pathlib, sys, time\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "p.write_text(p.read_text() + 'x' if p.exists() else 'x')\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    path = write_config(_command_config(sink, script, interval="1h", timeout="2m"))
    command = run_argv(path)
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    wait_for_log(proc, "top-up requested")
    deadline = time.monotonic() + 30
    while not counter.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert counter.read_text() == "x"
    assert [r.state for r in ledger(path)] == ["requested"]
    # restart: the interrupted intent is found, reported, and not run again
    done = subprocess.run(
        [*command[:-1], "run", "--once"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert counter.read_text() == "x"
    (entry,) = ledger(path)
    assert entry.state == "unknown"
    assert any(t.startswith("[RECHARGE-FAILED] a: top-up unknown") for t in sink.titles())


def _blocking_top_up(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A top-up command that says it started, then waits for the test's word (at most
    two minutes): its duration is the test's to choose, not a timing."""
    started, release = tmp_path / "started", tmp_path / "release"
    script = tmp_path / "topup.py"
    script.write_text(
        "import pathlib, time\n"
        f"pathlib.Path({str(started)!r}).touch()\n"
        "deadline = time.monotonic() + 120\n"
        f"while not pathlib.Path({str(release)!r}).exists() and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "print('ref-1')\n"
    )
    return script, started, release


def _daemon(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(run_argv(path), stderr=subprocess.PIPE, text=True)


def _until(condition: Callable[[], bool], what: str, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} in {timeout} s"
        time.sleep(0.05)


def test_a_slow_top_up_delays_no_other_lines_alert(
    write_config: Callable[..., Path], sink: Any, tmp_path: Path
) -> None:
    """Issue 11.11: line a's top-up command runs (and waits) while line b falls to
    critical: b's alert goes out meanwhile; a's own alert follows when its command ends."""
    script, started, release = _blocking_top_up(tmp_path)
    path = write_config(
        _command_config(
            sink,
            script,
            interval="1s",
            timeout="3m",
            thresholds="balance_warning = 10\n",
            more='[lines.b]\nadapter = "demo"\nbalance = 12\ndrain = 3\n',
        )
    )
    proc = _daemon(path)
    try:
        _until(started.exists, "top-up command start")
        _until(
            lambda: "[CRITICAL] b is critical: balance 3.00 USD" in sink.titles(),
            "critical alert for b while a's top-up runs",
        )
        assert not any(t.startswith("[RECHARGE-") for t in sink.titles())
        release.touch()
        _until(
            lambda: any(t.startswith("[RECHARGE-REQUESTED] a") for t in sink.titles()),
            "a's top-up alert once its command ended",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        release.touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    (entry,) = ledger(path)
    assert entry.state == "submitted" and entry.reference == "ref-1"


def test_run_once_waits_for_the_top_ups_its_checks_called_for(
    write_config: Callable[..., Path], sink: Any, tmp_path: Path
) -> None:
    """The top-up runs off the loop, yet `run --once` is a whole pass: it waits for the
    step and delivers the alert it wrote before it exits."""
    script, _, release = _blocking_top_up(tmp_path)

    def release_after_the_critical_alert() -> None:  # the pass's delivery is done by then
        _until(lambda: any(t.startswith("[CRITICAL] a") for t in sink.titles()), "alert")
        release.touch()

    threading.Thread(target=release_after_the_critical_alert, daemon=True).start()
    path = write_config(
        f'[recharge]\nenabled = true\n[channels.hook]\nurl = "{sink.url}"\n'
        "[defaults.thresholds]\nbalance_critical = 5\n"
        '[lines.a]\nadapter = "demo"\nbalance = 3\ndrain = 0\n'
        '[lines.a.recharge]\naction = "command"\n'
        f'argv = ["{sys.executable}", "{script}"]\n'
    )
    assert cli(path, "run", "--once") == 0
    assert [r.state for r in ledger(path)] == ["submitted"]
    assert sink.titles()[-1].startswith("[RECHARGE-REQUESTED] a")


def test_sigterm_waits_for_a_running_top_up_only_so_long(
    write_config: Callable[..., Path], sink: Any, tmp_path: Path
) -> None:
    """A top-up that will not end does not hold up the stop past its bound; its intent
    stays in the ledger, reconciled (never bought again) at the next start."""
    script, started, release = _blocking_top_up(tmp_path)
    path = write_config(_command_config(sink, script, interval="1h", timeout="3m"))
    proc = _daemon(path)
    try:
        _until(started.exists, "top-up command start")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0  # STOP_WAIT (10 s), not the command's 3 minutes
    finally:
        release.touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert [r.state for r in ledger(path)] == ["requested"]


# ---- CLI ----------------------------------------------------------------------------------


def test_manual_recharge_and_history(
    write_config: Callable[..., Path], sink: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(DEMO.format(enabled="false", url=sink.url, extra=""))
    cli(path, "run", "--once")
    capsys.readouterr()
    assert cli(path, "recharge", "a", "--dry-run") == 0
    assert "dry run" in capsys.readouterr().out
    assert demo._top_ups == {}
    assert cli(path, "recharge", "a") == 0
    assert len(demo._top_ups) == 1
    assert cli(path, "recharge", "a") == 1  # the cooldown holds manual top-ups too
    assert "cooldown" in capsys.readouterr().out
    assert cli(path, "recharge", "history", "a", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["state"], r["manual"]) for r in rows] == [
        ("dry-run", 1),
        ("submitted", 1),
        ("skipped", 1),
    ]
    assert cli(path, "recharge", "history") == 0
    assert "submitted (manual)" in capsys.readouterr().out
    assert cli(path, "recharge", "nope") == 2


# ---- review findings: races, partial readings, skips, PINs ------------------------------------


def test_manual_and_daemon_never_both_buy(
    write_config: Callable[..., Path],
    sink: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from monitor import recharge as recharge_module

    path = write_config(DEMO.format(enabled="true", url=sink.url, extra=""))
    settings = load_settings(path)
    store = Store.open(settings.database_path())
    monkeypatch.setattr(recharge_module, "MANUAL_WAIT", 0.3)
    low = Reading("a", T0, balance=Decimal(1), currency="USD")
    recharger = Recharger(settings, store, lambda line: demo.DemoAdapter(line, None, None))  # type: ignore[arg-type]
    with recharge_module.ledger_lock(store.path, wait=0) as held:  # a top-up under way
        assert held
        assert recharger.after_check("a", Level.CRITICAL, low, T0) == []  # waits its turn
        assert cli(path, "recharge", "a") == 1
        assert "another top-up holds the ledger" in capsys.readouterr().err
    assert demo._top_ups == {} and store.recharges() == []
    recharger.after_check("a", Level.CRITICAL, low, T0)  # the next check acts
    assert len(demo._top_ups) == 1
    store.close()


def test_a_reading_without_the_figure_keeps_the_need(
    write_config: Callable[..., Path], sink: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(
        DEMO.format(enabled="true", url=sink.url, extra='cooldown = "0s"').replace(
            'when = "critical"', 'when = "balance < 5"'
        )
    )
    settings = load_settings(path)
    store = Store.open(settings.database_path())
    bought = []
    monkeypatch.setattr(
        "monitor.recharge.actions.build",
        lambda *a, **k: type(
            "A", (), {"execute": lambda self, r: bought.append(r) or TopUpResult()}
        )(),
    )
    recharger = Recharger(settings, store, lambda line: None)
    recharger.after_check("a", Level.CRITICAL, Reading("a", T0, balance=Decimal(1)), T0)
    later = T0 + timedelta(hours=3)
    recharger.after_check("a", Level.OK, Reading("a", later, data_remaining=10**9), later)
    latest = T0 + timedelta(hours=4)
    recharger.after_check("a", Level.CRITICAL, Reading("a", latest, balance=Decimal(1)), latest)
    assert len(bought) == 1
    store.close()


def test_a_skipped_need_is_bought_once_the_cap_frees(
    write_config: Callable[..., Path], sink: Any
) -> None:
    path = write_config(DEMO.format(enabled="true", url=sink.url, extra='cooldown = "0s"'))
    settings = load_settings(path)
    store = Store.open(settings.database_path())
    adapter = demo.DemoAdapter("a", demo.DemoOptions(), None)  # type: ignore[arg-type]
    recharger = Recharger(settings, store, lambda line: adapter)
    low = {"balance": Decimal(1), "currency": "USD"}
    at = T0.replace(hour=10)
    recharger.after_check("a", Level.CRITICAL, Reading("a", at, **low), at)  # need 1: bought
    at = T0.replace(hour=11)
    recharger.after_check("a", Level.OK, Reading("a", at, balance=Decimal(50)), at)  # confirmed
    for hour in (18, 19):  # need 2: the day's cap is used: skipped once
        at = T0.replace(hour=hour)
        recharger.after_check("a", Level.CRITICAL, Reading("a", at, **low), at)
    next_day = T0.replace(hour=0) + timedelta(days=1, minutes=30)
    recharger.after_check("a", Level.CRITICAL, Reading("a", next_day, **low), next_day)
    states = [r.state for r in store.recharges("a")]
    assert states == ["confirmed", "skipped", "submitted"]
    # the ledger says when in the configured zone (UTC here), as the alert does
    assert store.recharges("a")[1].detail == "max_per_day (1 a day) until 2026-11-11 00:00 UTC"
    assert len(demo._top_ups) == 2
    store.close()


def test_a_pin_that_never_left_is_kept_and_never_shown(
    write_config: Callable[..., Path],
    sink: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fake_mmcli

    from monitor import modem

    monkeypatch.setattr(modem, "KILL_GRACE", 0.2)
    fake_mmcli.install(tmp_path, monkeypatch, {"modems": []})  # the modem is not plugged in
    path = write_config(
        f'[recharge]\nenabled = true\n[channels.hook]\nurl = "{sink.url}"\n'
        "[defaults.thresholds]\nbalance_critical = 5\n"
        '[lines.a]\nadapter = "demo"\nbalance = 3\ndrain = 0\n'
        '[lines.a.recharge]\naction = "ussd-pin"\nmodem = "867000000000001"\n'
        'pins = "98765432101234"\ncooldown = "0s"\n'
    )
    cli(path, "run", "--once")
    (entry,) = ledger(path)
    assert entry.state == "failed" and "was not sent" in entry.detail
    settings = load_settings(path)
    store = Store.open(settings.database_path())
    assert store.used_pins() == set()  # still good for the next need
    store.close()
    alerts = json.dumps(sink.received)
    assert "98765432101234" not in alerts and "98765432101234" not in entry.detail
