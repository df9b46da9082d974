"""Routing, templates, delivery through real Apprise plugins, retries with backoff."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor import config
from monitor.cli import load_settings
from monitor.model import Event, Level, LineState
from monitor.notify import (
    Notifier,
    deliver_due,
    outbox_entries,
    render,
    retry_at,
    route,
    validate_channels,
)
from monitor.store import Check, OutboxEntry, Store

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

CONFIG = """
[monitor]
timezone = "America/New_York"
[channels.all]
url = "record://all"
[channels.urgent]
url = "record://urgent"
events = ["critical", "failure"]
[channels.travel-only]
url = "record://travel"
lines = ["travel"]
[channels.sms]
url = "record://sms"
title = "{EVENT} {line}"
body = "{label}: {value} (top up: {payment_url})"
[lines.travel]
adapter = "demo"
label = "US travel eSIM"
payment_url = "https://pay.example/topup"
[lines.home]
adapter = "demo"
"""


def event(kind: str = "critical", line: str = "travel", **facts: Any) -> Event:
    base = {
        "state": "critical",
        "metric": "balance",
        "value": "4.00 USD",
        "threshold": "5 USD",
        "summary": "balance 4.00 USD (critical, threshold 5 USD)",
        "expires_at": "2026-11-05T00:00:00+00:00",
    }
    return Event(kind, line, T0, {**base, **facts})


def test_routing_by_event_type_and_line(
    write_config: Callable[..., Path], recorder: list[dict[str, Any]]
) -> None:
    s = load_settings(write_config(CONFIG))
    assert route(s, event("critical", "travel")) == ["all", "urgent", "travel-only", "sms"]
    assert route(s, event("warning", "home")) == ["all", "sms"]
    assert route(s, event("recovery", "home")) == ["all", "sms"]


def test_outbox_entries_carry_the_title_and_the_route(
    write_config: Callable[..., Path], recorder: list[dict[str, Any]]
) -> None:
    s = load_settings(write_config(CONFIG))
    critical, warning = event("critical", "travel"), event("warning", "home")
    assert outbox_entries(s, [critical, warning]) == [
        OutboxEntry(critical, render(critical, None, s)[0], tuple(route(s, critical))),
        OutboxEntry(warning, render(warning, None, s)[0], ("all", "sms")),
    ]
    assert outbox_entries(s, [])[:1] == []


def test_default_message_names_the_line_and_payment_url(
    write_config: Callable[..., Path], recorder: list[dict[str, Any]]
) -> None:
    s = load_settings(write_config(CONFIG))
    title, body = render(event(), s.channels["all"], s)
    assert title == "[CRITICAL] US travel eSIM is critical: balance 4.00 USD"
    assert "Line: US travel eSIM (travel)" in body
    assert "Top up: https://pay.example/topup" in body
    assert "Expires: 2026-11-04 19:00 EST" in body  # in the configured time zone
    assert "Error:" not in body  # lines whose variables are empty are left out
    title, body = render(event("recovery", low_for="3 hours"), s.channels["all"], s)
    assert title == "[RECOVERY] US travel eSIM is ok again after 3 hours"
    title, body = render(event("failure", error="timeout"), None, s)
    assert "Cannot read US travel eSIM: timeout" in title
    title, body = render(event("warning", previous_state="critical"), None, s)
    assert "improved to" in title


def test_custom_templates(
    write_config: Callable[..., Path], recorder: list[dict[str, Any]]
) -> None:
    s = load_settings(write_config(CONFIG))
    title, body = render(event(), s.channels["sms"], s)
    assert title == "CRITICAL travel"
    assert body == "US travel eSIM: 4.00 USD (top up: https://pay.example/topup)"


def test_unknown_template_variable_is_a_config_problem(
    write_config: Callable[..., Path], recorder: list[dict[str, Any]]
) -> None:
    s = config.load(write_config(CONFIG.replace("{value}", "{valeu}")))
    problems = list(validate_channels(s))
    assert [str(p) for p in problems] == [
        "At 'channels.sms.body': unknown template variable {valeu}"
    ]


def test_backoff_doubles_from_30s_to_30min() -> None:
    delays = [(retry_at(n, T0) - T0).total_seconds() for n in range(1, 10)]
    assert delays == [30, 60, 120, 240, 480, 960, 1800, 1800, 1800]


def test_outbox_retries_until_the_sink_is_up(
    write_config: Callable[..., Path], sink: Any, tmp_path: Path
) -> None:
    s = load_settings(
        write_config(f'[channels.hook]\nurl = "{sink.url}"\n[lines.travel]\nadapter = "demo"\n')
    )
    store = Store.open(s.database_path())
    store.record_checks(
        [
            Check(
                line="travel",
                checked_at=T0,
                state=LineState("travel", Level.CRITICAL),
                events=[OutboxEntry(event(), "m", ["hook"])],
            )
        ],
        now=T0,
    )
    notifier = Notifier(s)
    sink.down = True
    assert deliver_due(store, notifier, T0) == (0, 1)
    (row,) = store.events(T0 - timedelta(days=1))
    assert row.status == "pending" and row.attempts == 1
    assert row.last_error is not None
    assert "503" in row.last_error or "error" in row.last_error.lower()
    # not due again before its backoff
    assert deliver_due(store, notifier, T0 + timedelta(seconds=5)) == (0, 0)
    sink.down = False
    assert deliver_due(store, notifier, datetime.now(UTC) + timedelta(minutes=1)) == (1, 0)
    assert deliver_due(store, notifier, datetime.now(UTC) + timedelta(hours=1)) == (0, 0)
    assert len(sink.received) == 1
    assert sink.received[0]["title"].startswith("[CRITICAL]")
    store.close()


def test_errors_never_carry_the_channel_url(write_config: Callable[..., Path]) -> None:
    s = load_settings(write_config('[channels.hook]\nurl = "json://127.0.0.1:9/tok3nsecret"\n'))
    outcome = Notifier(s).send("hook", event())
    assert not outcome.ok
    assert "tok3nsecret" not in (outcome.error or "")
    redacted = Notifier(s)._redact("hook", "failed json://127.0.0.1:9/tok3nsecret tok3nsecret")
    assert "tok3nsecret" not in redacted


def test_deliveries_for_a_removed_channel_are_dropped(
    write_config: Callable[..., Path], recorder: list[dict[str, Any]]
) -> None:
    s = load_settings(write_config('[channels.a]\nurl = "record://a"\n'))
    store = Store.open(s.database_path())
    store.record_checks(
        [
            Check(
                line="x",
                checked_at=T0,
                state=LineState("x"),
                events=[OutboxEntry(event(), "m", ["gone"])],
            )
        ],
        now=T0,
    )
    assert deliver_due(store, Notifier(s), T0) == (0, 0)
    assert store.events(T0 - timedelta(days=1))[0].status == "dropped"
    store.close()


def test_a_failing_channel_costs_one_attempt_per_pass(
    write_config: Callable[..., Path], sink: Any, recorder: list[Any]
) -> None:
    s = load_settings(
        write_config(
            f'[channels.down]\nurl = "{sink.url}"\n[channels.up]\nurl = "record://up"\n'
            '[lines.travel]\nadapter = "demo"\n'
        )
    )
    store = Store.open(s.database_path())
    for i in range(5):
        e = event(value=f"{i} USD")
        store.add_events([OutboxEntry(e, "m", ["down", "up"])], T0)
    sink.down = True
    ticks: list[int] = []
    assert deliver_due(store, Notifier(s), T0, tick=lambda: ticks.append(1)) == (5, 1)
    assert len(ticks) == 6  # the watchdog is fed after every send
    rows = [r for r in store.events(T0 - timedelta(days=1)) if r.channel == "down"]
    assert [r.attempts for r in rows] == [1, 0, 0, 0, 0]
    assert len({r.next_attempt_at for r in rows}) == 1  # all wait for the same retry
    sink.down = False
    assert deliver_due(store, Notifier(s), datetime.now(UTC) + timedelta(minutes=1)) == (5, 0)
    assert len(sink.received) == 5
    store.close()
