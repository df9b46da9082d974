"""Delivery off the loop (issue 14.2): one worker per channel, against real SMTP receivers
on loopback, one of them slow (it holds each message until the test lets it go)."""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from daemon_proc import run_argv
from logwait import wait_for_log
from mailbox_server import Mailbox

from monitor.cli import load_settings, main
from monitor.daemon import Daemon
from monitor.dispatch import Dispatcher
from monitor.model import Event
from monitor.notify import Notifier, deliver_due
from monitor.store import OutboxEntry, Store

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)

CRITICAL = """
[monitor]
interval = "{interval}"
notify_timeout = "90s"
[defaults.thresholds]
balance_critical = 5
[lines.a]
adapter = "demo"
balance = 3
drain = 0
"""


def _channel(name: str, url: str) -> str:
    return f'[channels.{name}]\nurl = "{url}"\ngroup_wait = "0s"\n'


def _until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Wait on a condition with a generous deadline (a hung suite is worse than a failure)."""
    done = threading.Event()
    for _ in range(int(timeout * 20)):
        if condition():
            return
        done.wait(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def _rows(path: Path, channel: str) -> list[Any]:
    store = Store.open(path)
    try:
        return [r for r in store.events(LONG_AGO) if r.channel == channel]
    finally:
        store.close()


def test_a_slow_channel_delays_neither_the_checks_nor_another_channel(
    write_config: Callable[..., Path], mailbox: Mailbox
) -> None:
    """Before, the loop sent each channel in turn: the fast channel and every check waited
    for the slow receiver's answer."""
    fast = Mailbox()
    try:
        settings = load_settings(
            write_config(
                CRITICAL.format(interval="1s")
                + _channel("slow", mailbox.url(timeout=90))
                + _channel("fast", fast.url())
            )
        )
        mailbox.gate.clear()
        daemon = Daemon(settings, reload=lambda: settings)
        loop = threading.Thread(target=daemon.run, daemon=True)
        loop.start()
        try:
            assert mailbox.holding.wait(60), "the slow receiver never got its message"
            fast.wait_for(1, timeout=30)  # the other channel did not wait for the slow one
            store = Store.open(settings.database_path())
            try:
                checked = len(store.history("a", LONG_AGO))
                # two more passes of checks while the slow send is still under way
                _until(lambda: len(store.history("a", LONG_AGO)) >= checked + 2, "checks")
            finally:
                store.close()
            assert mailbox.holding.is_set() and mailbox.messages == []
            (row,) = _rows(settings.database_path(), "slow")
            assert (row.status, row.attempts) == ("pending", 0)  # its send is unfinished
        finally:
            mailbox.gate.set()
            mailbox.wait_for(1)
            _until(lambda: _rows(settings.database_path(), "slow")[0].status == "sent", "mark")
            daemon.stop()
            loop.join(60)
        assert not loop.is_alive()
        assert [str(m["Subject"]) for m in fast.messages] == [
            "[CRITICAL] a is critical: balance 3.00 USD"
        ]
    finally:
        fast.close()


def test_nothing_overtakes_a_message_waiting_for_its_retry(
    write_config: Callable[..., Path], mailbox: Mailbox
) -> None:
    """A channel's messages go strictly in order. Before, a new alert went out while an
    older one on the same channel waited for its retry, and arrived first."""
    settings = load_settings(write_config(_channel("mail", mailbox.url()) + "group = false\n"))
    store = Store.open(settings.database_path())
    notifier = Notifier(settings)
    now = datetime.now(UTC)
    first = Event("critical", "a", now, {"metric": "balance", "value": "1 USD"})
    second = Event("recovery", "b", now, {"low_for": "1 hour"})
    mailbox.refuse = True
    store.add_events([OutboxEntry(first, "m", ("mail",))], now)
    assert deliver_due(store, notifier, now) == (0, 1)
    mailbox.refuse = False
    store.add_events([OutboxEntry(second, "m", ("mail",))], now)
    assert deliver_due(store, notifier, now + timedelta(seconds=5)) == (0, 0)  # behind `first`
    assert deliver_due(store, notifier, now + timedelta(minutes=5)) == (2, 0)
    assert mailbox.subjects() == [
        "[CRITICAL] a is critical: balance 1 USD",
        "[RECOVERY] b is ok again after 1 hour",
    ]
    store.close()


def test_a_worker_that_fails_logs_at_error_and_goes_on(
    write_config: Callable[..., Path], mailbox: Mailbox
) -> None:
    settings = load_settings(write_config(_channel("mail", mailbox.url())))
    path = settings.database_path()
    store = Store.open(path)
    now = datetime.now(UTC)
    event = Event("critical", "a", now, {"metric": "balance", "value": "1 USD"})
    store.add_events([OutboxEntry(event, "m", ("mail",))], now)
    store.db.execute("UPDATE events SET facts = '{'")  # a row its worker cannot read
    with structlog.testing.capture_logs() as logs:
        dispatcher = Dispatcher(settings, path)
        try:
            _until(lambda: any(e["log_level"] == "error" for e in logs), "an error logged")
            store.db.execute("UPDATE events SET facts = '{}'")
            dispatcher.wake(at_once=True)
            mailbox.wait_for(1)
        finally:
            assert dispatcher.close(wait=30)
    failed = [e for e in logs if e["log_level"] == "error"]
    assert failed[0]["event"] == "delivery failed unexpectedly; the worker goes on"
    assert failed[0]["channel"] == "mail"
    assert _rows(path, "mail")[0].status == "sent"
    store.close()


def test_sigterm_with_a_message_in_flight_stops_and_the_restart_sends_it(
    write_config: Callable[..., Path], mailbox: Mailbox
) -> None:
    """Before, SIGTERM waited for the loop's send to end, however long the receiver took."""
    path = write_config(CRITICAL.format(interval="1h") + _channel("slow", mailbox.url(timeout=90)))
    command = run_argv(path)
    mailbox.gate.clear()
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert mailbox.holding.wait(60), "the receiver never got the message"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=45) == 0  # the stop waits 10 s for the send, not for ever
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    database = load_settings(path).database_path()
    (row,) = _rows(database, "slow")
    assert (row.status, row.attempts) == ("pending", 0)  # nothing lost: it is still owed
    mailbox.gate.set()
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_log(proc, "alert delivered")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=45) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    (row,) = _rows(database, "slow")
    assert row.status == "sent"
    # at least once: a copy cut off by the stop may have reached the receiver too
    assert mailbox.wait_for(1)[-1]["Subject"] == "[CRITICAL] a is critical: balance 3.00 USD"


def test_run_once_sends_a_group_at_once_without_waiting_group_wait(
    write_config: Callable[..., Path], mailbox: Mailbox
) -> None:
    """Issue 14.3: `run --once` groups what is due and sends it before it exits."""
    lines = "".join(f'[lines.l{i}]\nadapter = "demo"\nbalance = 3\n' for i in range(3))
    path = write_config(
        "[defaults.thresholds]\nbalance_critical = 5\n"
        f'[channels.mail]\nurl = "{mailbox.url()}"\ngroup_wait = "1h"\n' + lines
    )
    assert main(["--config", str(path), "run", "--once"]) == 0
    assert mailbox.subjects() == ["[CRITICAL] 3 lines critical"]
    assert {r.status for r in _rows(load_settings(path).database_path(), "mail")} == {"sent"}


def test_a_reload_never_has_two_workers_send_one_channels_row(
    write_config: Callable[..., Path], mailbox: Mailbox
) -> None:
    """The reload's new worker waits for the old one's send under way, then finds the row
    sent: the receiver gets it once."""
    settings = load_settings(write_config(_channel("mail", mailbox.url(timeout=90))))
    path = settings.database_path()
    store = Store.open(path)
    now = datetime.now(UTC)
    event = Event("critical", "a", now, {"metric": "balance", "value": "1 USD"})
    store.add_events([OutboxEntry(event, "m", ("mail",))], now)
    store.close()
    mailbox.gate.clear()
    old = Dispatcher(settings, path)
    assert mailbox.holding.wait(60), "the receiver never got the message"
    new = Dispatcher(settings, path, previous=old)
    assert not old.close(wait=0.0)  # its send is under way
    new.wake(at_once=True)
    mailbox.gate.set()
    mailbox.wait_for(1)
    _until(lambda: _rows(path, "mail")[0].status == "sent", "the old worker's mark")
    assert new.flush()
    assert new.close(wait=30)
    assert len(mailbox.messages) == 1
