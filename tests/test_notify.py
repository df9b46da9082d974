"""Routing, templates, delivery through real Apprise plugins, retries with backoff."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from mailbox_server import Mailbox

from monitor import config
from monitor.cli import load_settings, main
from monitor.errors import ConfigError
from monitor.model import Event, Level, LineState
from monitor.notify import (
    Notifier,
    batches,
    deliver_channel,
    deliver_due,
    outbox_entries,
    render,
    render_group,
    retry_at,
    route,
    validate_channels,
    variables,
)
from monitor.store import Check, Delivery, OutboxEntry, Store

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
        "expires_at": datetime(2026, 11, 5, tzinfo=UTC),
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
    frees = datetime(2026, 11, 5, 2, 34, 56, 250_000, tzinfo=UTC)
    skipped = event("recharge-skipped", cap="cooldown", cap_detail="6h", frees_at=frees)
    title, _ = render(skipped, None, s)
    assert title.endswith("top-up skipped: cooldown (6h) until 2026-11-04 21:34:57 EST")


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
            f'[channels.down]\nurl = "{sink.url}"\ngroup = false\n'
            '[channels.up]\nurl = "record://up"\ngroup = false\n'
            '[lines.travel]\nadapter = "demo"\n'
        )
    )
    store = Store.open(s.database_path())
    for i in range(5):  # five messages: these channels do not group
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


# ---- body format: text bodies, escaped values (issue 14.1) -------------------------------

EVIL = '<a href="http://evil.example/">login here</a>'


def _parts(message: EmailMessage) -> dict[str, str]:
    """Each text part of a mail by content type, as the receiver decodes it."""
    return {
        part.get_content_type(): part.get_content()
        for part in message.walk()
        if part.get_content_maintype() == "text"
    }


def test_a_mail_body_arrives_as_text_plain_with_its_lines(
    write_config: Callable[..., Path], mailbox: Mailbox, recorder: list[dict[str, Any]]
) -> None:
    s = load_settings(write_config(CONFIG + f'[channels.mail]\nurl = "{mailbox.url()}"\n'))
    assert Notifier(s).send("mail", event()).ok
    [message] = mailbox.messages
    assert message.get_content_type() == "text/plain"
    lines = message.get_content().strip().splitlines()
    assert lines[:3] == [
        "Line: US travel eSIM (travel)",
        "State: critical",
        event().facts["summary"],
    ]
    assert "Top up: https://pay.example/topup" in lines


def test_command_output_arrives_inert_in_text_html_and_markdown_mail(
    write_config: Callable[..., Path], mailbox: Mailbox, tmp_path: Path
) -> None:
    script = tmp_path / "portal.py"
    script.write_text(f"print({EVIL!r})\nraise SystemExit(1)\n")
    config = write_config(
        "[defaults.alerts]\nfailures_before_alert = 1\n"
        f'[channels.text]\nurl = "{mailbox.url("text@example.com")}"\n'
        f'[channels.html]\nurl = "{mailbox.url("html@example.com")}"\nbody_format = "html"\n'
        'body = "<p>Cannot read <b>{label}</b>: {error}</p>"\n'
        f'[channels.md]\nurl = "{mailbox.url("md@example.com")}"\nbody_format = "markdown"\n'
        'body = "Cannot read **{label}**: {error}"\n'
        f'[lines.portal]\nadapter = "command"\nlabel = "AT&T <prepaid>"\n'
        f'argv = ["{sys.executable}", "{script}"]\n'
    )
    assert main(["--config", str(config), "run", "--once"]) == 0
    [text] = mailbox.to("text@example.com")
    assert text.get_content_type() == "text/plain"
    assert EVIL in text.get_content()  # shown as written: a text/plain part has no links
    for address, own_markup in (("html@example.com", "<b>"), ("md@example.com", "<strong>")):
        [message] = mailbox.to(address)
        html_part = _parts(message)["text/html"]
        assert "<a " not in html_part  # the link arrives as text
        assert "&lt;a href=" in html_part and "login here&lt;/a&gt;" in html_part
        assert f"{own_markup}AT&amp;T &lt;prepaid&gt;" in html_part  # the user's markup is live
        assert message["Subject"].startswith("[FAILURE] Cannot read AT&T <prepaid>")


def test_markdown_values_are_escaped_and_the_template_is_not(
    write_config: Callable[..., Path], recorder: list[dict[str, Any]]
) -> None:
    from apprise import NotifyFormat
    from apprise.conversion.format import convert_between

    text = CONFIG + (
        '[channels.md]\nurl = "record://md"\nbody_format = "markdown"\n'
        'body = "# {label}\\n*{error}*\\n[top up]({payment_url})"\n'
    )
    s = load_settings(write_config(text.replace("US travel eSIM", "_US_ [travel](x) #1")))
    hostile = "**bold** `code` | ~gone~ \\ ![img](http://evil.example/i.png) " + EVIL
    _, body = render(event("failure", error=hostile), s.channels["md"], s)
    html = convert_between(NotifyFormat.MARKDOWN, NotifyFormat.HTML, body)
    assert "<h1>_US_ [travel](x) #1</h1>" in html
    assert '<a href="https://pay.example/topup">top up</a>' in html
    for live in ("<strong>", "<code>", "<img", '<a href="http://evil', "<del>", '<a href="x"'):
        assert live not in html
    assert "**bold** `code` | ~gone~ \\ ![img](http://evil.example/i.png)" in html
    assert '&lt;a href="http://evil.example/"&gt;login here&lt;/a&gt;' in html


def test_text_channels_and_default_bodies_are_not_escaped(
    write_config: Callable[..., Path], recorder: list[dict[str, Any]]
) -> None:
    s = load_settings(
        write_config(CONFIG + '[channels.h]\nurl = "record://h"\nbody_format = "html"\n')
    )
    for name in ("all", "h"):  # "h" has no body template of its own: the default is text
        _, body = render(event("failure", error=EVIL), s.channels[name], s)
        assert f"Error: {EVIL}" in body


def test_body_format_is_validated(write_config: Callable[..., Path]) -> None:
    path = write_config('[channels.c]\nurl = "json://127.0.0.1/x"\nbody_format = "rtf"\n')
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert "channels.c.body_format" in str(caught.value)


# ---- grouping (issue 14.3) ------------------------------------------------------------------


def _lines(count: int) -> str:
    return "".join(f'[lines.l{i:02d}]\nadapter = "demo"\n' for i in range(1, count + 1))


def _critical(line: str, at: datetime = T0, **facts: Any) -> Event:
    return Event("critical", line, at, {"metric": "balance", "value": "1 USD", **facts})


def _queue(store: Store, events: list[Event], channels: tuple[str, ...], now: datetime) -> None:
    store.add_events([OutboxEntry(e, "m", channels) for e in events], now)


def test_forty_critical_lines_go_out_as_one_mail_and_their_recovery_as_another(
    write_config: Callable[..., Path], mailbox: Mailbox
) -> None:
    """Before, each event was a mail of its own: 80 here, 5.5 s apart."""
    s = load_settings(write_config(f'[channels.mail]\nurl = "{mailbox.url()}"\n' + _lines(40)))
    store = Store.open(s.database_path())
    now = datetime.now(UTC)
    lines = [f"l{i:02d}" for i in range(1, 41)]
    _queue(store, [_critical(line, now) for line in lines], ("mail",), now)
    ok = [Event("recovery", line, now, {"low_for": "1 hour"}) for line in lines]
    _queue(store, ok, ("mail",), now)
    assert deliver_due(store, Notifier(s), now) == (2, 0)
    critical, recovery = mailbox.wait_for(2)
    assert critical["Subject"] == "[CRITICAL] 40 lines critical"
    listed = _parts(critical)["text/plain"].strip().splitlines()
    assert listed[:2] == ["l01 is critical: balance 1 USD", "l02 is critical: balance 1 USD"]
    assert len(listed) == 21 and listed[-1] == "and 20 more"
    assert recovery["Subject"] == "[RECOVERY] 40 lines ok again"
    assert {r.status for r in store.events(now - timedelta(days=1))} == {"sent"}
    store.close()


def test_a_short_channel_gets_the_headline_and_the_count(
    write_config: Callable[..., Path], recorder: list[dict[str, Any]]
) -> None:
    s = load_settings(write_config('[channels.sms]\nurl = "record://sms"\nformat = "short"\n'))
    store = Store.open(s.database_path())
    _queue(store, [_critical(f"l{i}") for i in range(37)], ("sms",), T0)
    assert deliver_due(store, Notifier(s), T0) == (1, 0)
    assert [(m["title"], m["body"]) for m in recorder] == [("", "37 lines critical")]
    store.close()


def test_group_false_sends_each_event_alone_as_it_reads_today(
    write_config: Callable[..., Path], recorder: list[dict[str, Any]]
) -> None:
    s = load_settings(write_config('[channels.r]\nurl = "record://r"\ngroup = false\n'))
    store = Store.open(s.database_path())
    _queue(store, [_critical("a"), _critical("b")], ("r",), T0)
    assert deliver_due(store, Notifier(s), T0) == (2, 0)
    assert [m["title"] for m in recorder] == [
        "[CRITICAL] a is critical: balance 1 USD",
        "[CRITICAL] b is critical: balance 1 USD",
    ]
    assert [m["body"] for m in recorder] == [
        render(_critical(x), s.channels["r"], s)[1] for x in "ab"
    ]
    store.close()


def test_escalations_go_out_one_a_line_beside_a_group(
    write_config: Callable[..., Path], recorder: list[dict[str, Any]]
) -> None:
    s = load_settings(write_config('[channels.boss]\nurl = "record://boss"\n'))
    store = Store.open(s.database_path())
    escalated = [_critical(x, escalated=True, low_for="2 hours") for x in "abc"]
    _queue(store, [*escalated, *(_critical(x) for x in "def")], ("boss",), T0)
    assert deliver_due(store, Notifier(s), T0) == (4, 0)
    titles = [m["title"] for m in recorder]
    assert [t.split(":")[0] for t in titles[:3]] == ["[CRITICAL] ESCALATED" for _ in "abc"]
    assert [t.split(" is critical")[0][-1] for t in titles[:3]] == list("abc")
    assert titles[3] == "[CRITICAL] 3 lines critical"
    store.close()


def test_a_failed_group_is_recorded_and_retried_as_one(
    write_config: Callable[..., Path], sink: Any
) -> None:
    s = load_settings(write_config(f'[channels.hook]\nurl = "{sink.url}"\n'))
    store = Store.open(s.database_path())
    _queue(store, [_critical(f"l{i}") for i in range(5)], ("hook",), T0)
    sink.down = True
    assert deliver_due(store, Notifier(s), T0) == (0, 1)
    rows = store.events(T0 - timedelta(days=1))
    assert [r.attempts for r in rows] == [1] * 5 and len({r.next_attempt_at for r in rows}) == 1
    sink.down = False
    assert deliver_due(store, Notifier(s), datetime.now(UTC) + timedelta(minutes=1)) == (1, 0)
    assert sink.titles() == ["[CRITICAL] 5 lines critical"]
    assert {r.status for r in store.events(T0 - timedelta(days=1))} == {"sent"}
    store.close()


def test_a_group_waits_group_wait_for_more_then_goes_as_one(
    write_config: Callable[..., Path], recorder: list[dict[str, Any]]
) -> None:
    s = load_settings(write_config('[channels.r]\nurl = "record://r"\ngroup_wait = "30s"\n'))
    store = Store.open(s.database_path())
    notifier = Notifier(s)
    _queue(store, [_critical("a")], ("r",), T0)
    assert deliver_channel(
        store, notifier, "r", T0 + timedelta(seconds=10)
    ).next_at == T0 + timedelta(seconds=30)
    _queue(store, [_critical("b", T0 + timedelta(seconds=20))], ("r",), T0 + timedelta(seconds=20))
    assert recorder == []
    assert deliver_channel(store, notifier, "r", T0 + timedelta(seconds=30)).sent == 1
    assert [m["title"] for m in recorder] == ["[CRITICAL] 2 lines critical"]
    store.close()


def test_batches_never_let_a_lines_events_overtake_each_other(
    write_config: Callable[..., Path], recorder: list[dict[str, Any]]
) -> None:
    s = load_settings(write_config('[channels.r]\nurl = "record://r"\n'))
    kinds = [("recovery", "b"), ("critical", "a"), ("recovery", "a"), ("recovery", "c")]
    queue = [
        Delivery(i, i, "r", 0, Event(kind, line, T0, {})) for i, (kind, line) in enumerate(kinds)
    ]
    got = [[(d.event.type, d.event.line) for d in b.rows] for b in batches(queue, s.channels["r"])]
    assert got == [
        [("recovery", "b"), ("recovery", "c")],  # a's recovery may not pass a's critical
        [("critical", "a")],
        [("recovery", "a")],
    ]


def test_a_template_names_count_and_lines_or_the_group_gets_the_default(
    write_config: Callable[..., Path], recorder: list[dict[str, Any]]
) -> None:
    s = load_settings(
        write_config(
            '[channels.own]\nurl = "record://own"\ntitle = "{count} x {event} ({state})"\n'
            'body = "{lines}\\nvalue: {value}"\n'
            '[channels.sms]\nurl = "record://sms"\n'
            'title = "{EVENT} {line}"\nbody = "{label}: {value}"\n'
        )
    )
    events = [_critical("a", state="critical"), _critical("b", state="critical", value="2 USD")]
    title, body = render_group(events, s.channels["own"], s)
    assert title == "2 x critical (critical)"  # the same for both: kept
    assert body == "a is critical: balance 1 USD\nb is critical: balance 2 USD"  # value differs
    assert render_group(events, s.channels["sms"], s) == (
        "[CRITICAL] 2 lines critical",
        "a is critical: balance 1 USD\nb is critical: balance 2 USD",
    )
    single = variables(events[0], s)
    assert (single["count"], single["lines"]) == ("1", single["headline"])
