"""Alerts through Apprise: routing, templates, and durable delivery from the outbox.

Every event is written to the outbox (store) before anything is sent; this module sends
what is due, records each channel's outcome and schedules retries with backoff, so an
alert survives a notifier outage and a restart. Channel URLs carry tokens: only channel
names are ever logged.
"""

from __future__ import annotations

import logging
import string
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import structlog

from monitor.config import Channel, Settings, plain_host
from monitor.counters import COUNTERS
from monitor.errors import ConfigProblem
from monitor.markup import BodyFormat, escape
from monitor.model import Event, utcnow
from monitor.rows import exact_when
from monitor.store import Delivery, OutboxEntry

if TYPE_CHECKING:
    import apprise

    from monitor.store import Store  # sqlite-utils: not for `config validate`

log = structlog.get_logger("monitor.notify")

FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(minutes=30)

TEMPLATE_VARIABLES: dict[str, str] = {
    "line": "the line's id",
    "label": "the line's label (its id when no label is set)",
    "event": "the event type (warning, critical, recovery, repeat, failure, ...)",
    "headline": "a one-line description of the event",
    "state": "the line's state: ok, warning, critical (unknown before its first reading)",
    "previous_state": "the state before this event",
    "metric": "the worst low metric: balance, data, expiry or status",
    "value": "that metric's value, with its unit",
    "threshold": "the threshold it crossed, with its unit",
    "summary": "every metric of the reading in one line",
    "balance": "the money balance with its currency",
    "data_remaining": "data left",
    "data_total": "the plan's data",
    "expires_at": "when the plan expires, in the configured time zone",
    "status": "the provider's status text",
    "low_since": "since when the line is low, in the configured time zone",
    "low_for": "how long the line has been low (recovery, repeat)",
    "error": "why the line could not be read (failure)",
    "text": "what a phone relayed, redacted (relay)",
    "sender": "who sent the relayed text, when the phone said (relay)",
    "failures": "failed checks in a row (failure, failure-recovered)",
    "failed_for": "how long reads failed (failure-recovered)",
    "payment_url": "where a person tops this line up, when configured",
    "expires_in": "how long until the plan expires (expiry)",
    "what": "the package or amount of a top-up (recharge-*)",
    "outcome": "failed, or unknown: not retried (recharge-failed)",
    "reference": "the provider's order reference (recharge-requested)",
    "price": "what the top-up cost, when the provider says (recharge-requested)",
    "pins_left": "refill PINs left after this one (ussd-pin)",
    "cap": "which cap stopped a top-up: max_per_day, max_per_month, max_spend_per_month, "
    "cooldown (recharge-skipped)",
    "cap_detail": "the cap's figure (recharge-skipped)",
    "frees_at": "when the cap frees up (recharge-skipped)",
    "verify_within": "how long a top-up had to show (recharge-unconfirmed)",
    "offset": "which reminder this is, such as 3d (expiry)",
    "forecast": "when the line runs out at its recent pace, if it does",
    "renewal_at": "when the plan renews (renewal-risk), in the configured time zone",
    "renewal_price": "what the renewal costs (renewal-risk)",
    "shortfall": "how much the balance lacks to cover it (renewal-risk)",
    "renews_in": "how long until the renewal (renewal-risk)",
    "time": "when the event happened, in the configured time zone",
    "count": "how many events a grouped message holds (1 for a single event)",
    "lines": "a grouped message's events, one headline a line (a single event: its headline)",
    "ack_url": "a signed link that acknowledges the line (a group: every line of it), once; "
    "set with [http] public_url",
    "snooze_url": "a signed link that snoozes the line (a group: every line of it), once; "
    "set with [http] public_url",
    "line_url": "the line's status page (behind its login); set with [http] public_url",
}

Links = Callable[[Sequence[str]], Mapping[str, str]]
"""The action links of an alert about these lines (`monitor.links.Linker.urls`)."""
UNLINKED = frozenset(
    {"test", "digest", "daemon-failure", "recovery", "failure-recovered", "recharge-confirmed"}
)
"""Event types whose messages carry no action links: nothing there to acknowledge."""

_HEADLINES = {
    "warning": "{label} is low: {metric} {value}",
    "critical": "{label} is critical: {metric} {value}",
    "repeat": "{label} is still {state}: {metric} {value} (for {low_for})",
    "recovery": "{label} is ok again after {low_for}",
    "failure": "Cannot read {label}: {error}",
    "failure-recovered": "{label} can be read again",
    "renewal-risk": "{label} renews in {renews_in} for {renewal_price}: balance {balance} "
    "is {shortfall} short",
    "test": "Test message from esim-monitor",
    "expiry": "{label} expires in {expires_in} ({expires_at})",
    "recharge-requested": "{label}: top-up requested ({what})",
    "recharge-confirmed": "{label}: top-up confirmed ({what})",
    "recharge-failed": "{label}: top-up {outcome}: {error}",
    "recharge-unconfirmed": "{label}: top-up ({what}) not seen within {verify_within}",
    "recharge-skipped": "{label}: top-up skipped: {cap} ({cap_detail}) until {frees_at}",
    "daemon-failure": "esim-monitor is failing: {error}",
    "relay": "{label}: {text}",
    # A digest's message is its own title and body (report.summary); this names it where a
    # headline is listed (a quiet-hours catch-up never holds one, but the table stays whole).
    "digest": "esim-monitor digest",
}
_IMPROVED = "{label} improved to {state}: {metric} {value}"
_ESCALATED = (
    "ESCALATED: {label} is critical for {low_for} and nobody acknowledged it: {metric} {value}"
)

DEFAULT_TITLE = "[{EVENT}] {headline}"
DEFAULT_BODY = "\n".join(
    (
        "Line: {label} ({line})",
        "State: {state}",
        "{summary}",
        "Low for: {low_for}",
        "Expires: {expires_at}",
        "Error: {error}",
        "Top up: {payment_url}",
        "Acknowledge: {ack_url}",
        "Snooze: {snooze_url}",
        "Details: {line_url}",
    )
)

SHORT_TITLE = ""
SHORT_BODY = "{headline} [{line}]\nTop up: {payment_url}\nAck: {ack_url}"
"""For SMS: no title (most SMS gateways prepend it), the headline and where to pay."""

NEVER_GROUPED = frozenset({"digest", "test", "daemon-failure", "relay"})
"""Event types that always go out alone (see `groupable` for the others that do)."""
_GROUP_HEADLINES = {
    "warning": "{count} lines low",
    "critical": "{count} lines critical",
    "repeat": "{count} lines still low",
    "recovery": "{count} lines ok again",
    "failure": "Cannot read {count} lines",
    "failure-recovered": "{count} lines can be read again",
    "renewal-risk": "{count} lines short of their renewal price",
    "expiry": "{count} plans expire soon",
    "recharge-requested": "{count} top-ups requested",
    "recharge-confirmed": "{count} top-ups confirmed",
    "recharge-failed": "{count} top-ups failed",
    "recharge-unconfirmed": "{count} top-ups not seen in time",
    "recharge-skipped": "{count} top-ups skipped",
}
"""The headline of a grouped message, for every event type that may be grouped (tests/
test_docs.py checks)."""
GROUP_BODY = "{lines}\nAcknowledge all: {ack_url}\nSnooze all: {snooze_url}"
GROUP_SHORT_BODY = "{headline}\nAck all: {ack_url}"
"""A grouped message for SMS: the headline with its count, nothing else."""
GROUP_LIST = {"full": 20, "short": 5}
"""Events a grouped message lists in `{lines}`, by the channel's format; then "and N more"."""

_NOTIFY_TYPES: dict[str, str] = {
    "critical": "failure",
    "failure": "failure",
    "recharge-failed": "failure",
    "daemon-failure": "failure",
    "renewal-risk": "warning",
    "warning": "warning",
    "repeat": "warning",
    "recovery": "success",
    "failure-recovered": "success",
    "recharge-confirmed": "success",
    # Information on purpose: a reminder, a step of a top-up under way, a summary, a test.
    "expiry": "info",
    "recharge-requested": "info",
    "recharge-unconfirmed": "info",
    "recharge-skipped": "info",
    "digest": "info",
    "test": "info",
    "relay": "info",
}
"""Apprise's notify type (a service's icon or colour) of every event type, each listed: a
new event type must be given one (tests/test_docs.py checks). Apprise's NotifyType values,
as text: this module is imported by every command that judges lines, Apprise only to send
or to check a channel URL."""

_apprise_lock = threading.Lock()
_apprise_module: list[ModuleType] = []


def _apprise() -> ModuleType:
    """Apprise, imported on first use (half a second of imports): a daemon or a command
    without a channel never loads it. `console://` is registered with it then."""
    with _apprise_lock:
        if not _apprise_module:
            import apprise
            from apprise.decorators import notify as apprise_notify

            apprise_notify(on="console", name="esim-monitor console")(_console)
            _apprise_module.append(apprise)
        return _apprise_module[0]


def _console(body: str, title: str, notify_type: str, meta: Mapping[str, Any], **_: Any) -> bool:
    """`console://` prints alerts on stdout (`console://stderr`: on stderr), for the demo."""
    stream = sys.stderr if meta.get("host") == "stderr" else sys.stdout
    print(f"--- {title}" if title else "---", file=stream)
    print(body, file=stream, flush=True)
    return True


def route(settings: Settings, event: Event) -> list[str]:
    """The channels an event goes to: those whose `events` and `lines` select it; an
    escalation goes to its `escalate_to` channels instead. Alertmanager channels take no
    events: they are given line states (monitor.alertmanager)."""
    channels = {name: ch for name, ch in settings.channels.items() if ch.type == "apprise"}
    if event.facts.get("escalated"):
        return [name for name in event.facts.get("escalate_to", []) if name in channels]
    if event.type == "daemon-failure":  # it concerns every line: a `lines` filter does not apply
        return [name for name, ch in channels.items() if event.type in ch.events]
    return [name for name, ch in channels.items() if ch.wants(event.type, event.line)]


def outbox_entries(settings: Settings, events: Iterable[Event]) -> list[OutboxEntry]:
    """Events as the outbox takes them: each with its one-line message (the title a
    channel without templates gets) and the channels it is routed to."""
    return [OutboxEntry(e, render(e, None, settings)[0], tuple(route(settings, e))) for e in events]


def retry_at(attempts: int, now: datetime) -> datetime:
    """After the n-th failed attempt: 30 s, 1 min, 2 min, ... capped at 30 min."""
    delay = FIRST_RETRY * (2 ** max(attempts - 1, 0))
    return now + min(delay, MAX_RETRY)


class _Blank(dict[str, Any]):
    """Template variables: a missing or empty one renders as nothing rather than failing."""

    def __missing__(self, key: str) -> str:
        return ""


def variables(event: Event, settings: Settings, links: Links | None = None) -> dict[str, Any]:
    tz = settings.tz()
    facts = dict(event.facts)
    line = settings.lines.get(event.line)
    values: dict[str, Any] = {k: "" for k in TEMPLATE_VARIABLES}
    values.update({k: v for k, v in facts.items() if v is not None and not isinstance(v, list)})
    values.update(
        line=event.line,
        label=(line.label if line and line.label else facts.get("label") or event.line),
        event=event.type,
        EVENT=event.type.upper(),
        payment_url=(line.payment_url if line else None) or facts.get("payment_url") or "",
        time=_local(event.created_at, tz),
        expires_at=_local(facts.get("expires_at"), tz),
        low_since=_local(facts.get("low_since"), tz),
        renewal_at=_local(facts.get("renewal_at"), tz),
        frees_at=_local(facts.get("frees_at"), tz, up=True),
    )
    improved = event.type == "warning" and facts.get("previous_state") == "critical"
    if facts.get("headline"):  # already written out: its text is not a template
        headline = str(facts["headline"]).replace("{", "{{").replace("}", "}}")
    elif facts.get("dry_run"):
        headline = "{label}: top-up would be requested ({what}), but this is a dry run"
    elif facts.get("escalated"):
        headline = _ESCALATED
    elif improved:
        headline = _IMPROVED
    else:
        headline = _HEADLINES.get(event.type, "{label}: {event}")
    values["headline"] = string.Formatter().vformat(headline, (), _Blank(values)).strip()
    values.update(count="1", lines=values["headline"])
    if links is not None and linked(event, settings):
        values.update(links([event.line]))
    return values


def linked(event: Event, settings: Settings) -> bool:
    """Whether the event's message carries action links (given a public URL)."""
    return event.type not in UNLINKED and event.line in settings.lines


def group_variables(
    events: Sequence[Event],
    settings: Settings,
    listed: int,
    links: Links | None = None,
    each_linked: bool = False,
) -> dict[str, Any]:
    """A grouped message's variables: `count`, `lines` (the first `listed` events'
    headlines, then "and N more"), the group's headline, and the events' own variables
    where all of them agree (the type, a state); one that differs between them is empty,
    so no template shows one line's figures for the whole group. With `links`, the group's
    `ack_url` and `snooze_url` act on every line of it; `each_linked` also lists each
    line's own acknowledge link under its headline."""
    each = [variables(event, settings) for event in events]
    first = each[0]
    values = {k: v if all(o.get(k) == v for o in each[1:]) else "" for k, v in first.items()}
    headlines = [v["headline"] for v in each[:listed]]
    lines = [e.line for e in events if linked(e, settings)]
    if links is not None and lines:
        if each_linked:
            headlines = [
                f"{h}\n  acknowledge: {links([e.line])['ack_url']}" if linked(e, settings) else h
                for h, e in zip(headlines, events, strict=False)
            ]
        group = links(list(dict.fromkeys(lines)))
        values.update(ack_url=group["ack_url"], snooze_url=group["snooze_url"], line_url="")
    more = len(each) - len(headlines)
    if more:
        headlines.append(f"and {more} more")
    values.update(count=str(len(each)), lines="\n".join(headlines))
    template = _GROUP_HEADLINES.get(events[0].type, "{count} {event} events")
    values["headline"] = string.Formatter().vformat(template, (), _Blank(values)).strip()
    return values


def body_format(event: Event, channel: Channel | None) -> BodyFormat:
    """The markup of the message `render` makes: the channel's `body_format` when its own
    `body` template is used; text otherwise (the default templates and the digest are text,
    whatever markup the channel's own template would be in)."""
    if channel is None or not channel.body or event.type == "digest":
        return "text"
    return channel.body_format


def render(
    event: Event,
    channel: Channel | None,
    settings: Settings,
    title_apart: bool = False,
    links: Links | None = None,
) -> tuple[str, str]:
    """Title and body for one channel. Body lines whose variables are all empty are left out.
    In an html or markdown message every value is escaped for that markup, in the title too
    unless the service shows it `title_apart` as text (a mail subject): Apprise puts the
    title of chat services into the body, as markup."""
    if event.type == "digest":
        return str(event.facts.get("title", "")), str(event.facts.get("body", ""))
    short = channel is not None and channel.format == "short"
    title_template = (channel and channel.title) or (SHORT_TITLE if short else DEFAULT_TITLE)
    body_template = (channel and channel.body) or (SHORT_BODY if short else DEFAULT_BODY)
    plain = variables(event, settings, links)
    return _fill(plain, title_template, body_template, body_format(event, channel), title_apart)


def render_group(
    events: Sequence[Event],
    channel: Channel,
    settings: Settings,
    title_apart: bool = False,
    links: Links | None = None,
) -> tuple[str, str]:
    """Title and body of one message for several events of one type. The channel's own
    `title` and `body` are used where they name `{count}` or `{lines}` (a template
    written for one line would misread a group); otherwise the grouped defaults."""
    short = channel.format == "short"
    plain = group_variables(
        events, settings, GROUP_LIST[channel.format], links, each_linked=not short
    )
    title_template = SHORT_TITLE if short else DEFAULT_TITLE
    body_template = GROUP_SHORT_BODY if short else GROUP_BODY
    if channel.title and _names_group(channel.title):
        title_template = channel.title
    if channel.body and _names_group(channel.body):
        body_template = channel.body
    return _fill(plain, title_template, body_template, group_format(channel), title_apart)


def group_format(channel: Channel) -> BodyFormat:
    """The markup of the message `render_group` makes for the channel."""
    return channel.body_format if channel.body and _names_group(channel.body) else "text"


def _names_group(template: str) -> bool:
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    return bool(fields & {"count", "lines"})


def _fill(
    plain: Mapping[str, Any],
    title_template: str,
    body_template: str,
    markup: BodyFormat,
    title_apart: bool,
) -> tuple[str, str]:
    values = _Blank({k: escape(v, markup) if isinstance(v, str) else v for k, v in plain.items()})
    if markup == "html" and values.get("lines"):  # one listed event a line there too
        values["lines"] = values["lines"].replace("\n", "<br>\n")
    formatter = string.Formatter()
    title = formatter.vformat(title_template, (), _Blank(plain) if title_apart else values)
    lines = []
    for template_line in body_template.splitlines():
        fields = [f for _, f, _, _ in formatter.parse(template_line) if f]
        if fields and not any(values.get(f) for f in fields):
            continue
        lines.append(formatter.vformat(template_line, (), values))
    return title.strip(), "\n".join(lines).strip()


def _local(moment: datetime | None, tz: tzinfo, *, up: bool = False) -> str:
    """A time in the configured zone, to the second when it has seconds: "until 21:34" for
    a cooldown that ends at 21:34:56 would send a person back too early (`up`: a moment
    no one should act before, rounded up to its second)."""
    if moment is None:
        return ""
    return exact_when(moment, tz, up=up)


@dataclass(frozen=True)
class Outcome:
    channel: str
    ok: bool
    error: str | None = None
    printed: bool = False
    """Sent by printing it here (`console://`): a log line saying so repeats what is shown."""


class Notifier:
    """Sends through Apprise, one Apprise object per channel, each call bounded in time."""

    def __init__(self, settings: Settings, links: Links | None = None) -> None:
        self.settings = settings
        self.links = links
        """Signs the action links messages carry (None: no `[http] public_url`)."""
        self._apprise: dict[str, apprise.Apprise] = {}

    def _target(self, name: str) -> apprise.Apprise:
        if name not in self._apprise:
            target = _apprise().Apprise()
            if not target.add(self.settings.channels[name].url.get_secret_value(), tag=name):
                raise ValueError("Apprise rejected the channel URL")
            self._apprise[name] = target
        return self._apprise[name]

    def send(self, name: str, event: Event, attach: Sequence[str] = ()) -> Outcome:
        channel = self.settings.channels[name]
        title, body = render(event, channel, self.settings, self._title_apart(name), self.links)
        kind = _NOTIFY_TYPES[event.type]
        return self.send_text(name, title, body, kind, attach, body_format(event, channel))

    def send_group(self, name: str, events: Sequence[Event]) -> Outcome:
        """One message for several events of one type (see `render_group`)."""
        channel = self.settings.channels[name]
        title, body = render_group(
            events, channel, self.settings, self._title_apart(name), self.links
        )
        kind = _NOTIFY_TYPES[events[0].type]
        return self.send_text(name, title, body, kind, (), group_format(channel))

    def _title_apart(self, name: str) -> bool:
        """Whether the service shows the title apart from the body (a mail subject), where
        Apprise leaves it as written; chat services get it put into the body as markup."""
        try:
            return all(service.title_maxlen > 0 for service in self._target(name))
        except ValueError:  # a rejected URL: send_text reports it
            return False

    def send_text(
        self,
        name: str,
        title: str,
        body: str,
        kind: str = "info",
        attach: Sequence[str] = (),
        markup: BodyFormat = "text",
    ) -> Outcome:
        """Send a written message. Its `markup` is said to Apprise: without it the mail
        plugin takes text as HTML (its lines run into one, markup in it is live)."""
        library = _apprise()
        try:
            result = self._target(name).notify(
                body=body,
                title=title,
                body_format=library.NotifyFormat(markup),
                notify_type=library.NotifyType(kind),
                tag=name,
                attach=list(attach) or None,
                timeout=self.settings.monitor.notify_timeout.total_seconds(),
            )
        except Exception as exc:  # a plugin's bug must not stop the loop
            return Outcome(name, False, self._redact(name, f"{type(exc).__name__}: {exc}"))
        if result:
            return Outcome(name, True, printed=self._printed(name))
        messages = [
            entry.message
            for service in result
            for entry in service.logs()
            if getattr(entry, "message", None)
        ]
        error = "; ".join(messages[-3:]) or f"delivery {result.status.name.lower()}"
        return Outcome(name, False, self._redact(name, error))

    def _printed(self, name: str) -> bool:
        return urlsplit(self.settings.channels[name].url.get_secret_value()).scheme == "console"

    def _redact(self, name: str, text: str) -> str:
        """Strip any part of the channel's URL (tokens) from an error text."""
        url = self.settings.channels[name].url.get_secret_value()
        pieces = {url}
        parts = urlsplit(url)
        # the user part and query values are credentials whatever their length
        pieces.update(p for p in (parts.username, parts.password) if p)
        pieces.update(value for _, value in parse_qsl(parts.query) if len(value) >= 2)
        rest = url.split("://", 1)[-1]
        for sep in "/?&=:@#":
            rest = rest.replace(sep, " ")
        pieces.update(p for p in rest.split() if len(p) >= 6)
        # a host name or address is where it failed, not a credential: `notify test` and
        # the logs name it (a token standing in the host's place, as in tgram://, is kept out)
        named = [parts.hostname, *(v for k, v in parse_qsl(parts.query) if k in _HOST_KEYS)]
        hosts = {h for h in named if h and plain_host(h)} - {parts.username, parts.password}
        for piece in sorted(pieces - hosts, key=len, reverse=True):
            text = text.replace(piece, "***")
        return text[:500]


_HOST_KEYS = frozenset({"smtp", "host", "server"})
"""Apprise query keys that name a server (mailto's `smtp=`): shown in errors like the host."""


@dataclass(frozen=True)
class Batch:
    """The rows of one message: one event, or several of one type (a group)."""

    rows: tuple[Delivery, ...]
    ready_at: datetime | None = None
    """When a group may go: its first event's time plus `group_wait` (None: at once)."""


def groupable(delivery: Delivery, channel: Channel) -> bool:
    """Whether the row may share a message: not on a `group = false` channel, nor an
    escalation (it concerns one line), nor an account's alert (one for many lines already)."""
    event = delivery.event
    return (
        channel.group
        and event.type not in NEVER_GROUPED
        and bool(event.line)
        and not event.facts.get("escalated")
    )


def batches(queue: Sequence[Delivery], channel: Channel) -> list[Batch]:
    """Split a channel's queue (in event order) into its messages, in the order they go.

    A message starts at the first row not yet taken; a groupable one takes every later
    row of its event type, except a line's row behind one of that line's rows it does not
    take: a line's events never overtake each other. Pure."""
    out: list[Batch] = []
    rest = deque(queue)
    while rest:
        head = rest.popleft()
        if not groupable(head, channel):
            out.append(Batch((head,)))
            continue
        members, left, passed = [head], deque[Delivery](), set()
        for row in rest:
            line = row.event.line
            if row.event.type == head.event.type and groupable(row, channel) and line not in passed:
                members.append(row)
            else:
                passed.add(line)
                left.append(row)
        rest = left
        out.append(Batch(tuple(members), head.event.created_at + channel.group_wait))
    return out


@dataclass(frozen=True)
class ChannelPass:
    """What one delivery pass over a channel did, and when the channel wants another."""

    sent: int = 0
    failed: int = 0
    next_at: datetime | None = None


def deliver_channel(
    store: Store,
    notifier: Notifier,
    name: str,
    now: datetime,
    wait: bool = True,
    tick: Callable[[], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> ChannelPass:
    """Send what is due on one channel, strictly in order: the catch-up of quiet hours
    that ended, then its queue as messages (`batches`), holding what quiet hours keep
    back. A group waits for its `group_wait` unless `wait` is False (`run --once`), and
    the rows behind it wait with it. When a message fails, the channel's other rows wait
    for its retry: a stalled service costs one timeout a pass, not one per alert. `tick`
    runs after each send; once `stop` says so, no further message is begun."""
    settings = notifier.settings
    channel = settings.channels[name]
    sent = failed = 0
    for held in store.held_due(now, name).values():
        title, body = catch_up(held, settings)
        outcome = notifier.send_text(name, title, body)
        ok = _record(store, held, outcome, f"catch-up of {len(held)}") is None
        sent, failed = sent + ok, failed + (not ok)
        if tick is not None:
            tick()
    queue = store.channel_queue(name, now)
    quiet = settings.quiet_hours(name)
    local = now.astimezone(settings.tz())
    if quiet is not None and quiet.contains(local):
        through = set(settings.urgent(name)) | {"digest", "test"}
        kept = [d for d in queue if d.event.type not in through]
        if kept:
            store.hold_all([d.id for d in kept], quiet.end_after(local))
            log.info("alerts held for quiet hours", channel=name, count=len(kept))
        queue = [d for d in queue if d.event.type in through]
    for batch in batches(queue, channel):
        if stop is not None and stop():
            return ChannelPass(sent, failed, now)
        if wait and batch.ready_at is not None and batch.ready_at > now:
            return ChannelPass(sent, failed, batch.ready_at)
        retry = _send_batch(store, notifier, name, batch)
        sent, failed = sent + (retry is None), failed + (retry is not None)
        if tick is not None:
            tick()
        if retry is not None:
            store.defer_channel(name, retry)
            return ChannelPass(sent, failed, retry)
    return ChannelPass(sent, failed, store.channel_next_at(name))


def _send_batch(store: Store, notifier: Notifier, name: str, batch: Batch) -> datetime | None:
    """Send one message and record it for all of its rows; the retry time if it failed."""
    if len(batch.rows) == 1:
        (row,) = batch.rows
        with _attachments(row.event, notifier.settings.channels[name], store) as attach:
            outcome = notifier.send(name, row.event, attach)
        return _record(store, batch.rows, outcome, row.event.type)
    outcome = notifier.send_group(name, [row.event for row in batch.rows])
    return _record(store, batch.rows, outcome, batch.rows[0].event.type)


def message_channels(settings: Settings) -> list[str]:
    """The channels that get messages from the outbox (an Alertmanager one gets states)."""
    return [name for name, channel in settings.channels.items() if channel.type == "apprise"]


def drop_gone(store: Store, settings: Settings) -> None:
    """Pending rows of channels that left the config (or take no messages now) are
    dropped: kept, never sent."""
    gone = store.pending_channels() - set(message_channels(settings))
    if not gone:
        return
    dropped = store.drop_channels(gone, "channel no longer configured")
    for channel, count in dropped.items():
        COUNTERS.delivery(channel, "dropped", count)
    if dropped:
        log.warning(
            "pending alerts dropped: their channel left the config", count=sum(dropped.values())
        )


def deliver_due(
    store: Store,
    notifier: Notifier,
    now: datetime | None = None,
    tick: Callable[[], None] | None = None,
    wait: bool = False,
) -> tuple[int, int]:
    """Send what is due on every channel, one channel after the other, on the calling
    thread (`dispatch` sends from workers instead). Groups go at once unless `wait`.
    Returns the messages (sent, failed)."""
    now = now or utcnow()
    drop_gone(store, notifier.settings)
    sent = failed = 0
    for name in message_channels(notifier.settings):
        done = deliver_channel(store, notifier, name, now, wait, tick)
        sent, failed = sent + done.sent, failed + done.failed
    return sent, failed


def send_now(notifier: Notifier, event: Event) -> list[str]:
    """Send an event to its channels without the outbox: the database cannot be written.
    Returns the channels it reached (the others get it from the outbox once it can be)."""
    reached = []
    for channel in route(notifier.settings, event):
        outcome = notifier.send(channel, event)
        COUNTERS.delivery(channel, "sent" if outcome.ok else "failed")
        if outcome.ok:
            reached.append(channel)
        log.log(
            logging.INFO if outcome.ok else logging.ERROR,
            "alert sent directly"
            if outcome.ok
            else "direct send failed: the outbox retries it once it can",
            channel=channel,
            line=event.line,
            kind=event.type,
            error=outcome.error,
        )
    return reached


def _record(store: Store, rows: Sequence[Delivery], outcome: Outcome, what: str) -> datetime | None:
    """Record a send's outcome; when it failed, the time of its retry."""
    done_at = utcnow()
    line = rows[0].event.line if len(rows) == 1 else None
    count = len(rows) if len(rows) > 1 else None
    ids = [row.id for row in rows]
    if outcome.ok:
        store.delivered_all(ids, done_at)
        COUNTERS.delivery(outcome.channel, "sent", len(rows))
        log.info(
            "alert delivered",
            channel=outcome.channel,
            line=line,
            kind=what,
            count=count,
            routine=outcome.printed,
        )
        return None
    attempts = max(row.attempts for row in rows) + 1
    when = retry_at(attempts, done_at)
    store.deliveries_failed(ids, outcome.error or "failed", done_at, when)
    COUNTERS.delivery(outcome.channel, "failed", len(rows))
    log.warning(
        "alert delivery failed, will retry",
        channel=outcome.channel,
        line=line,
        kind=what,
        count=count,
        attempts=attempts,
        retry_at=when.isoformat(timespec="seconds"),
        error=outcome.error,
    )
    return when


def catch_up(held: Sequence[Delivery], settings: Settings) -> tuple[str, str]:
    """One message for everything quiet hours held back on a channel."""
    lines = []
    for row in held:
        values = variables(row.event, settings)
        lines.append(f"{values['time']}: {values['headline']}")
    title = f"While quiet hours lasted: {len(held)} alert{'s' if len(held) != 1 else ''}"
    return title, "\n".join(lines)


@contextmanager
def _attachments(event: Event, channel: Channel, store: Store) -> Iterator[list[str]]:
    """The digest's PNG chart, when the channel wants one and the charts extra is there."""
    if event.type != "digest" or not channel.digest_chart:
        yield []
        return
    try:
        from monitor import report

        with tempfile.TemporaryDirectory(prefix="esim-monitor-") as folder:
            path = Path(folder) / "lines.png"
            made = report.write_chart(store, list(event.facts.get("lines", [])), path)
            yield [str(path)] if made else []
    except report.ChartsUnavailable:
        log.info("digest sent without a chart: install esim-monitor[charts]")
        yield []


def validate_channels(settings: Settings) -> Iterable[ConfigProblem]:
    """Config-time check that Apprise understands every channel URL."""
    for name, channel in settings.channels.items():
        if channel.type != "apprise":
            continue
        if not _accepted(channel.url.get_secret_value()):
            yield ConfigProblem(
                f"channels.{name}.url",
                "Apprise does not accept this URL (unknown scheme or malformed); see "
                "https://github.com/caronc/apprise/wiki for the URL of each service",
            )
        for field in ("title", "body"):
            template = getattr(channel, field)
            if template:
                yield from _template_problems(f"channels.{name}.{field}", template)


def _accepted(url: str) -> bool:
    """Whether Apprise takes the URL; its own complaint is muted: we report the key path."""
    apprise_log = logging.getLogger("apprise")
    level = apprise_log.level
    apprise_log.setLevel(logging.CRITICAL)
    try:
        return bool(_apprise().Apprise().add(url))
    finally:
        apprise_log.setLevel(level)


def _template_problems(path: str, template: str) -> Iterable[ConfigProblem]:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        yield ConfigProblem(path, f"bad template: {exc}")
        return
    known = set(TEMPLATE_VARIABLES) | {"EVENT"}
    for field in fields:
        if field not in known:
            yield ConfigProblem(path, f"unknown template variable {{{field}}}")
