"""Alerts people live with: quiet hours, snooze and ack, escalation, expiry reminders,
short templates, forecasts in evaluation, and the digest with its chart."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from monitor.cli import load_settings, main
from monitor.config import Alerts, Thresholds
from monitor.evaluate import Policy, evaluate_reading
from monitor.forecast import Forecast
from monitor.model import Controls, Event, Level, LineState, Reading
from monitor.notify import Notifier, deliver_due, render, route
from monitor.store import Check, OutboxEntry, Store
from monitor.units import parse_digest, parse_quiet_hours

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
NY = ZoneInfo("America/New_York")


# ---- quiet hours -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "inside"),
    [
        ("21:59", False),
        ("22:00", True),
        ("23:59", True),
        ("00:00", True),
        ("06:59", True),
        ("07:00", False),
        ("12:00", False),
    ],
)
def test_quiet_hours_across_midnight(local: str, inside: bool) -> None:
    quiet = parse_quiet_hours("22:00-07:00")
    assert quiet is not None
    h, m = map(int, local.split(":"))
    moment = datetime(2026, 11, 1, h, m, tzinfo=NY)
    assert quiet.contains(moment) is inside


def test_quiet_hours_end_and_daytime_windows() -> None:
    quiet = parse_quiet_hours("22:00-07:00")
    assert quiet is not None
    late = datetime(2026, 11, 1, 23, 0, tzinfo=NY)
    assert quiet.end_after(late) == datetime(2026, 11, 2, 7, 0, tzinfo=NY)
    early = datetime(2026, 11, 2, 3, 0, tzinfo=NY)
    assert quiet.end_after(early) == datetime(2026, 11, 2, 7, 0, tzinfo=NY)
    lunch = parse_quiet_hours("12:00-13:30")
    assert lunch is not None and lunch.contains(datetime(2026, 11, 1, 12, 45, tzinfo=NY))
    assert parse_quiet_hours("off") is None


CHANNELS = """
[monitor]
timezone = "America/New_York"
[defaults.alerts]
quiet_hours = "22:00-07:00"
[channels.hook]
url = "{url}"
[channels.night-owl]
url = "record://owl"
quiet_hours = "off"
[lines.a]
adapter = "demo"
label = "Line A"
"""


def test_quiet_hours_hold_then_one_catch_up(
    write_config: Callable[..., Path], sink: Any, recorder: list[dict[str, Any]]
) -> None:
    settings = load_settings(write_config(CHANNELS.format(url=sink.url)))
    assert settings.quiet_hours("night-owl") is None
    store = Store.open(settings.database_path())
    notifier = Notifier(settings)
    night = datetime(2026, 11, 2, 3, 30, tzinfo=UTC)  # 22:30 in New York
    events = [
        Event("warning", "a", night, {"metric": "balance", "value": "8 USD"}),
        Event("critical", "a", night, {"metric": "balance", "value": "4 USD"}),
        Event("recovery", "a", night + timedelta(hours=2), {"low_for": "2 hours"}),
    ]
    for event in events:
        store.add_events([OutboxEntry(event, "m", route(settings, event))], event.created_at)
    assert deliver_due(store, notifier, night + timedelta(hours=2)) == (4, 0)
    # critical is urgent: through at once; the others wait; the night owl got all three
    assert sink.titles() == ["[CRITICAL] Line A is critical: balance 4 USD"]
    assert len(recorder) == 3
    assert deliver_due(store, notifier, datetime(2026, 11, 2, 11, 59, tzinfo=UTC)) == (0, 0)
    assert deliver_due(store, notifier, datetime(2026, 11, 2, 12, 0, tzinfo=UTC)) == (1, 0)
    assert len(sink.received) == 2
    catch_up = sink.received[1]
    assert catch_up["title"] == "While quiet hours lasted: 2 alerts"
    assert "Line A is low: balance 8 USD" in catch_up["message"]
    assert "Line A is ok again after 2 hours" in catch_up["message"]
    rows = store.events(night - timedelta(days=1))
    assert {r.status for r in rows if r.channel == "hook"} == {"sent"}
    assert deliver_due(store, notifier, datetime(2026, 11, 3, tzinfo=UTC)) == (0, 0)
    store.close()


# ---- snooze and acknowledge -----------------------------------------------------------------

DRAINING = """
[defaults.thresholds]
balance_warning = 10
balance_critical = 5
[defaults.alerts]
repeat = "1h"
[channels.hook]
url = "{url}"
[lines.a]
adapter = "demo"
balance = 12
drain = 1
"""


def cli(config: Path, *args: str) -> int:
    return main(["--config", str(config), *args])


def test_snooze_silences_until_it_expires(
    write_config: Callable[..., Path], sink: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(DRAINING.format(url=sink.url))
    with freeze_time("2026-11-01 12:00:00", tick=True):
        assert cli(path, "snooze", "a", "2h") == 0
        for _ in range(4):  # 12, 11, 10 (warning), 9
            assert cli(path, "run", "--once") == 0
        assert sink.received == []
        capsys.readouterr()
        assert cli(path, "status", "--json") == 0
        (row,) = json.loads(capsys.readouterr().out)
        assert row["snoozed_until"].startswith("2026-11-01T14:00")
        assert cli(path, "events", "--json") == 0
        assert [e["status"] for e in json.loads(capsys.readouterr().out)] == ["snoozed"]
    with freeze_time("2026-11-01 14:30:00", tick=True):
        assert cli(path, "run", "--once") == 0  # 8: still warning; the reminder is due
    assert sink.titles() == ["[REPEAT] a is still warning: balance 8.00 USD (for 2 hours)"]


def test_ack_stops_reminders_until_the_state_changes(
    write_config: Callable[..., Path], sink: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(DRAINING.format(url=sink.url).replace("drain = 1", "drain = 0.5"))
    with freeze_time("2026-11-01 12:00:00", tick=True):
        assert cli(path, "ack", "a") == 1  # nothing to acknowledge yet
        for _ in range(5):  # 12 ... 10: warning
            cli(path, "run", "--once")
        assert cli(path, "ack", "a") == 0
        capsys.readouterr()
        cli(path, "status", "--json")
        assert json.loads(capsys.readouterr().out)[0]["acknowledged"] == "warning"
    with freeze_time("2026-11-01 14:00:00", tick=True):
        cli(path, "run", "--once")  # 9.50: warning, acknowledged: no reminder
    assert sink.titles() == ["[WARNING] a is low: balance 10.00 USD"]
    with freeze_time("2026-11-01 15:00:00", tick=True):
        for _ in range(9):  # down to 5: critical, a change: alerted, and the ack is gone
            cli(path, "run", "--once")
    assert sink.titles()[-1] == "[CRITICAL] a is critical: balance 5.00 USD"
    capsys.readouterr()
    cli(path, "status", "--json")
    assert json.loads(capsys.readouterr().out)[0]["acknowledged"] is None
    assert cli(path, "unsnooze", "a") == 0


# ---- escalation ---------------------------------------------------------------------------


def test_escalation_after_an_unacknowledged_critical() -> None:
    policy = Policy(
        Thresholds(balance_critical=Decimal(5)),
        Alerts(escalate_after=timedelta(hours=2), escalate_to=["boss"], repeat=timedelta(0)),
    )
    state = LineState("a")
    kinds = []
    for hours in (0, 1, 2, 3):
        now = T0 + timedelta(hours=hours)
        reading = Reading("a", now, balance=Decimal(3), currency="USD")
        state, events, _ = evaluate_reading(state, reading, policy, now)
        kinds.append([(e.type, bool(e.facts.get("escalated"))) for e in events])
    assert kinds == [[("critical", False)], [], [("critical", True)], []]
    # acknowledged in time: no escalation
    state = LineState("a")
    acked = Controls(acked_level=Level.CRITICAL)
    for hours in (0, 3):
        now = T0 + timedelta(hours=hours)
        reading = Reading("a", now, balance=Decimal(3))
        state, events, _ = evaluate_reading(state, reading, policy, now, acked)
    assert events == []


def test_escalations_route_to_escalate_to(
    write_config: Callable[..., Path], recorder: list[Any]
) -> None:
    settings = load_settings(
        write_config(
            '[defaults.alerts]\nescalate_after = "1h"\nescalate_to = ["boss"]\n'
            '[channels.me]\nurl = "record://me"\n[channels.boss]\nurl = "record://boss"\n'
            'events = ["failure"]\n[lines.a]\nadapter = "demo"\n'
        )
    )
    escalated = Event(
        "critical",
        "a",
        T0,
        {
            "escalated": True,
            "escalate_to": ["boss"],
            "low_for": "1 hour",
            "metric": "balance",
            "value": "3 USD",
        },
    )
    assert route(settings, escalated) == ["boss"]
    assert render(escalated, None, settings)[0].startswith("[CRITICAL] ESCALATED: a is critical")


def test_escalate_to_must_name_a_channel(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        '[defaults.alerts]\nescalate_to = ["nobody"]\n[lines.a]\nadapter = "demo"\n'
    )
    assert cli(path, "config", "validate") == 78
    assert "At 'defaults.alerts.escalate_to': unknown channel 'nobody'" in capsys.readouterr().err


# ---- expiry reminders ---------------------------------------------------------------------


def test_expiry_reminders_once_per_offset_and_date() -> None:
    policy = Policy(
        Thresholds(expiry_warning=None, expiry_critical=None),
        Alerts(expiry_reminders=[timedelta(days=7), timedelta(days=3), timedelta(days=1)]),
    )
    expires = T0 + timedelta(days=10)
    state = LineState("a")
    sent = []
    for at_days_left, expiry in [
        (8, expires),
        (6, expires),
        (5, expires),
        (2, expires),
        (2, expires),
        (0.5, expires),
        (6, expires + timedelta(days=30)),  # renewed: the reminders start again
    ]:
        now = expiry - timedelta(days=at_days_left)
        state, events, _ = evaluate_reading(
            state, Reading("a", now, expires_at=expiry), policy, now
        )
        sent.append([e.facts["offset"] for e in events if e.type == "expiry"])
    assert sent == [[], ["7d"], [], ["3d"], [], ["1d"], ["7d"]]


def test_the_same_expiry_in_another_offset_is_no_new_date(tmp_path: Path) -> None:
    """The notice keeps the expiry's instant: a provider stating the same date in another
    offset (its state read back from the store between checks) is no renewal, and no
    reminder goes out twice. The notice compared text before, and sent "7d" again."""
    policy = Policy(
        Thresholds(expiry_warning=None, expiry_critical=None),
        Alerts(expiry_reminders=[timedelta(days=7)]),
    )
    expires = T0 + timedelta(days=10)
    store = Store.open(tmp_path / "h.db")
    state = LineState("a")
    sent = []
    for days_left, expiry in [(6, expires.astimezone(timezone(timedelta(hours=2)))), (5, expires)]:
        now = expires - timedelta(days=days_left)
        state, events, _ = evaluate_reading(
            state, Reading("a", now, expires_at=expiry), policy, now
        )
        store.record_checks([Check("a", now, state)], now=now)
        assert store.state("a") == state
        state = store.state("a")
        sent.append([e.facts["offset"] for e in events if e.type == "expiry"])
    store.close()
    assert sent == [["7d"], []]
    assert state.notices.expiry is not None and state.notices.expiry.expires_at == expires


def test_a_new_line_close_to_expiry_gets_one_reminder() -> None:
    policy = Policy(Thresholds(), Alerts(expiry_reminders=[timedelta(days=7), timedelta(days=3)]))
    r = Reading("a", T0, expires_at=T0 + timedelta(days=2))
    state, events, _ = evaluate_reading(LineState("a"), r, policy, T0)
    assert [(e.type, e.facts["offset"]) for e in events if e.type == "expiry"] == [("expiry", "3d")]
    _, events, _ = evaluate_reading(state, r, policy, T0 + timedelta(hours=1))
    assert [e for e in events if e.type == "expiry"] == []


# ---- forecast in evaluation -----------------------------------------------------------------


def test_forecast_threshold_warns_before_the_line_runs_out() -> None:
    policy = Policy(Thresholds(forecast=timedelta(days=3)), Alerts())
    soon = Forecast("data", Decimal(10**9), T0 + timedelta(days=2))
    r = Reading("a", T0, data_remaining=2 * 10**9)
    state, events, metrics = evaluate_reading(LineState("a"), r, policy, T0, forecasts=[soon])
    assert state.level is Level.WARNING
    assert events[0].facts["metric"] == "forecast"
    assert "runs out in ~2 days (on 2026-11-03)" in events[0].facts["value"]
    # later than the threshold but before the plan ends: still a warning
    later = Forecast("data", Decimal(10**8), T0 + timedelta(days=10))
    r = Reading("a", T0, data_remaining=10**9, expires_at=T0 + timedelta(days=20))
    _, _, metrics = evaluate_reading(LineState("a"), r, policy, T0, forecasts=[later])
    assert [(m.metric, m.level) for m in metrics][-1] == ("forecast", Level.WARNING)
    # the plan ends first: fine
    r = Reading("a", T0, data_remaining=10**9, expires_at=T0 + timedelta(days=5))
    _, _, metrics = evaluate_reading(LineState("a"), r, policy, T0, forecasts=[later])
    assert "forecast" not in [m.metric for m in metrics]


# ---- templates ----------------------------------------------------------------------------


def test_short_format_for_sms(write_config: Callable[..., Path], recorder: list[Any]) -> None:
    settings = load_settings(
        write_config(
            '[channels.sms]\nurl = "record://sms"\nformat = "short"\n'
            '[lines.a]\nadapter = "demo"\nlabel = "Home"\npayment_url = "https://pay.example"\n'
        )
    )
    event = Event("critical", "a", T0, {"metric": "balance", "value": "4 USD"})
    title, body = render(event, settings.channels["sms"], settings)
    assert title == ""
    assert body == "Home is critical: balance 4 USD [a]\nTop up: https://pay.example"
    assert len(body) <= 160


# ---- digest -------------------------------------------------------------------------------


def test_digest_schedule() -> None:
    daily = parse_digest("daily 08:00")
    weekly = parse_digest("weekly mon 08:00")
    assert daily is not None and weekly is not None
    start = datetime(2026, 11, 4, 9, 0, tzinfo=NY)  # a Wednesday
    assert daily.next_after(start) == datetime(2026, 11, 5, 8, 0, tzinfo=NY)
    assert weekly.next_after(start) == datetime(2026, 11, 9, 8, 0, tzinfo=NY)
    assert str(weekly) == "weekly mon 08:00"


def test_digest_through_a_sink_with_its_chart(
    write_config: Callable[..., Path], sink: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    path = write_config(
        '[monitor]\ntimezone = "America/New_York"\n'
        "[defaults.thresholds]\nbalance_warning = 10\n"
        f'[channels.hook]\nurl = "{sink.url}"\nevents = ["digest"]\ndigest = "daily 08:00"\n'
        '[lines.a]\nadapter = "demo"\nbalance = 12\ndrain = 1\ndata = "3GB"\n'
        'data_drain = "100MB"\nexpires_in = "5d"\n'
    )
    with freeze_time("2026-11-04 10:00:00", tick=True):  # 05:00 in New York
        for _ in range(4):
            cli(path, "run", "--once")  # the first pass also starts the digest clock
    assert sink.received == []
    with freeze_time("2026-11-04 13:00:01", tick=True):  # 08:00 in New York
        cli(path, "run", "--once")
        cli(path, "run", "--once")  # once per slot
    (digest,) = sink.received
    assert digest["title"] == "esim-monitor digest: 1 lines, 1 low, 1 expiring soon"
    # queued at the start of the 08:00 pass, from the readings before it
    # why it is low, as its alert said it
    assert "- a (a): warning: balance 9.00 USD (warning, threshold 10 USD)" in digest["message"]
    assert "- a (a): expires 2026-11-09 05:00" in digest["message"]
    (attachment,) = digest["attachments"]
    assert attachment["mimetype"] == "image/png"
    image = Image.open(io.BytesIO(base64.b64decode(attachment["base64"])))
    assert image.format == "PNG" and image.size == (800, 600)
    capsys.readouterr()
    assert cli(path, "report") == 0
    assert "esim-monitor digest" in capsys.readouterr().out
    png = path.parent / "chart.png"
    with freeze_time("2026-11-04 14:00:00"):
        assert cli(path, "report", "--png", str(png)) == 0
    assert Image.open(png).size == (800, 600)


def test_in_quiet_hours_urgent_events_group_and_the_catch_up_stays_one_message(
    write_config: Callable[..., Path], sink: Any, recorder: list[dict[str, Any]]
) -> None:
    """Issue 14.3: grouping changes neither quiet hours' hold nor their one catch-up."""
    text = (
        CHANNELS.format(url=sink.url) + '[lines.b]\nadapter = "demo"\n[lines.c]\nadapter = "demo"\n'
    )
    settings = load_settings(write_config(text))
    store = Store.open(settings.database_path())
    notifier = Notifier(settings)
    night = datetime(2026, 11, 2, 3, 30, tzinfo=UTC)  # 22:30 in New York
    events = [
        *(Event("critical", x, night, {"metric": "balance", "value": "4 USD"}) for x in "abc"),
        *(Event("warning", x, night, {"metric": "data", "value": "9 MB"}) for x in "abc"),
    ]
    for event in events:
        store.add_events([OutboxEntry(event, "m", ("hook",))], night)
    assert deliver_due(store, notifier, night) == (1, 0)
    assert sink.titles() == ["[CRITICAL] 3 lines critical"]
    assert deliver_due(store, notifier, datetime(2026, 11, 2, 12, 0, tzinfo=UTC)) == (1, 0)
    assert sink.titles()[1] == "While quiet hours lasted: 3 alerts"
    assert sink.received[1]["message"].count("is low: data 9 MB") == 3
    store.close()
