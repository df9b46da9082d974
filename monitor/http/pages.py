"""The status page's HTML, pure: typed records in, a page out; no I/O, no script.

Everything a page shows is escaped here, once. Pages work without JavaScript (filters are
a GET form, actions are POST forms carrying the CSRF token) and without anything from the
internet (the one stylesheet ships in the package, `asset`). A state is a colour and a
word, so it reads without colour. Under 600 px the lines table turns into one card per
line (style.css), so a phone never scrolls sideways.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from html import escape
from importlib.resources import files
from urllib.parse import urlencode

from monitor.config import Settings
from monitor.evaluate import describe_forecast
from monitor.http import chart
from monitor.http.auth import Link
from monitor.links import Done
from monitor.rows import data_text, decimal, money_text, when_text
from monitor.store.ledger import Recharge
from monitor.store.views import EventRow, HistoryRow, LineStatus
from monitor.units import Sizes, format_bytes, humanize_duration

STATES = ("critical", "warning", "failing", "unknown", "ok")
"""Worst first: the order of the overview and of its counts. `failing` is a line whose
last check failed (its state stands from before)."""
WINDOWS: Mapping[str, timedelta] = {
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
SNOOZES = ("1h", "12h", "24h")
PAGE_SIZE = 200
"""Lines per overview page: the worst come first, so the first page holds what needs a
look; a fleet of 10,000 lines is 50 pages, not one page of megabytes."""
ASSETS = ("style.css",)


def asset(name: str) -> bytes:
    """A file the pages use, from the package (never from the internet)."""
    if name not in ASSETS:
        raise KeyError(name)
    return files("monitor.http").joinpath("static", name).read_bytes()


@dataclass(frozen=True)
class Filter:
    """The overview's filter, as its GET form sends it."""

    state: str = ""
    account: str = ""
    text: str = ""
    page: int = 1

    @classmethod
    def of(cls, query: Mapping[str, str]) -> Filter:
        state = query.get("state", "")
        page = query.get("page", "1")
        return cls(
            state=state if state in STATES else "",
            account=query.get("account", "")[:64],
            text=query.get("q", "")[:100].strip(),
            page=max(1, int(page)) if page.isascii() and page.isdigit() and len(page) < 7 else 1,
        )

    def query(self, **change: object) -> str:
        """This filter as a query string, with `change` applied (the pager's links)."""
        values = {"state": self.state, "account": self.account, "q": self.text, "page": self.page}
        values.update(change)
        kept = {k: v for k, v in values.items() if v and not (k == "page" and v == 1)}
        return urlencode(kept)


def kind(status: LineStatus) -> str:
    """The word the page shows: the line's state, or `failing` when its last check failed."""
    if status.failures and status.state in ("ok", "unknown"):
        return "failing"
    return status.state


def layout(title: str, body: str, *, csrf: str | None = None, user: str | None = None) -> str:
    """A whole page. `csrf` and `user` (a logged-in session) add the log-out button."""
    who = ""
    if user is not None and csrf is not None:
        who = (
            f'<form class="logout" method="post" action="/logout">{_csrf(csrf)}'
            f'<span>{escape(user)}</span> <button type="submit">Log out</button></form>'
        )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{escape(title)} · esim-monitor</title>"
        '<link rel="stylesheet" href="/static/style.css"></head><body>'
        f'<header><a class="home" href="/">esim-monitor</a>{who}</header>'
        f"<main>{body}</main></body></html>\n"
    )


def overview(
    settings: Settings,
    known: Mapping[str, LineStatus],
    now: datetime,
    chosen: Filter = Filter(),
    *,
    csrf: str | None = None,
    user: str | None = None,
) -> str:
    """Every line, worst first, with counts of each state and the filter form."""
    tz = settings.tz()
    statuses = [known.get(line) or LineStatus(line) for line in settings.lines]
    counts = Counter(kind(s) for s in statuses)
    order = {state: rank for rank, state in enumerate(STATES)}
    statuses.sort(key=lambda s: (order[kind(s)], settings.label(s.line).lower(), s.line))
    shown = [s for s in statuses if _passes(settings, s, chosen)]
    badges = "".join(
        f'<a class="count {state}" href="/?{urlencode({"state": state})}">'
        f"{counts[state]} {state}</a>"
        for state in STATES
        if counts[state]
    )
    pages = max(1, -(-len(shown) // PAGE_SIZE))
    page = min(chosen.page, pages)
    first = (page - 1) * PAGE_SIZE
    rows = "".join(_overview_row(settings, s, now, tz) for s in shown[first : first + PAGE_SIZE])
    if not rows:
        rows = '<tr><td colspan="8">No line matches this filter.</td></tr>'
    pager = _pager(chosen, page, pages, first, len(shown)) if pages > 1 else ""
    body = (
        f'<h1>Lines</h1><p class="counts">{len(statuses)} lines: {badges}</p>'
        f"{_filter_form(settings, chosen)}{pager}"
        '<table class="lines"><thead><tr><th>Line</th><th>State</th><th>Balance</th>'
        "<th>Data left</th><th>Expires</th><th>Forecast</th><th>Last check</th>"
        "<th>Alerts</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>{pager}"
    )
    return layout("Lines", body, csrf=csrf, user=user)


def _pager(chosen: Filter, page: int, pages: int, first: int, shown: int) -> str:
    """Where this page stands among the filtered lines, and links to the others."""
    links = []
    if page > 1:
        links.append(f'<a href="/?{escape(chosen.query(page=page - 1))}" rel="prev">Previous</a>')
    if page < pages:
        links.append(f'<a href="/?{escape(chosen.query(page=page + 1))}" rel="next">Next</a>')
    return (
        f'<nav class="pager">Lines {first + 1:,}-{min(first + PAGE_SIZE, shown):,} of '
        f"{shown:,} (page {page} of {pages}) {' '.join(links)}</nav>"
    )


def line_page(
    settings: Settings,
    status: LineStatus,
    history: Sequence[HistoryRow],
    events: Sequence[EventRow],
    recharges: Sequence[Recharge],
    raw: str | None,
    now: datetime,
    window: str = "7d",
    *,
    csrf: str,
    user: str | None = None,
) -> str:
    """One line: its figures, charts over `window`, actions, events, ledger, raw reply."""
    from monitor.adapters import line_sizes

    tz = settings.tz()
    line = status.line
    sizes = line_sizes(settings, line)
    span = WINDOWS.get(window, WINDOWS["7d"])
    since = now - span
    windows = " ".join(
        f'<a href="/lines/{_u(line)}?window={name}"'
        + (' aria-current="page"' if name == window else "")
        + f">{name}</a>"
        for name in WINDOWS
    )
    marks = _marks(history, recharges)
    money = [
        chart.Point(r.checked_at, r.balance) for r in history if r.ok and r.balance is not None
    ]
    data = [
        chart.Point(r.checked_at, Decimal(r.data_remaining))
        for r in history
        if r.ok and r.data_remaining is not None
    ]
    charts = ""
    if money:
        currency = status.currency or ""
        charts += "<h3>Balance</h3>" + chart.svg(
            "Balance", money, since, now, marks, lambda v: f"{v:f} {currency}".strip(), tz
        )
    if data:
        charts += "<h3>Data left</h3>" + chart.svg(
            "Data left", data, since, now, marks, lambda v: format_bytes(int(v), sizes), tz
        )
    if not charts:
        charts = "<p>No readings in this period yet.</p>"
    label = settings.label(line)
    body = (
        f"<h1>{escape(label)} <small>{escape(line)}</small></h1>"
        f"{_facts(settings, status, now, tz, sizes)}"
        f'<section class="actions"><h2>Actions</h2>{_actions(line, csrf)}</section>'
        f'<section><h2>Over time</h2><p class="windows">{windows}</p>{charts}</section>'
        f"<section><h2>Recent events</h2>{_events(events, tz)}</section>"
        f"<section><h2>Recharges</h2>{_recharges(recharges, tz)}</section>"
        "<section><h2>Raw reply of the last check</h2>"
        f"<pre>{escape(raw) if raw else 'none kept'}</pre></section>"
    )
    return layout(label, body, csrf=csrf, user=user)


def login(*, failed: str | None = None, next_path: str = "/") -> str:
    error = f'<p class="error" role="alert">{escape(failed)}</p>' if failed else ""
    body = (
        f"<h1>Log in</h1>{error}"
        '<form class="login" method="post" action="/login">'
        f'<input type="hidden" name="next" value="{escape(next_path)}">'
        '<label>User <input name="user" autocomplete="username" required></label>'
        '<label>Password <input name="password" type="password" '
        'autocomplete="current-password" required></label>'
        '<button type="submit">Log in</button></form>'
    )
    return layout("Log in", body)


_LINK_DOES: Mapping[str, tuple[str, str, str]] = {
    "ack": ("Acknowledge the alert", "no reminders until the state changes", "Acknowledge"),
    "snooze": ("Snooze the alerts", "no alerts until the snooze ends", "Snooze"),
    "unsnooze": ("Turn the alerts back on", "alerts as usual", "Turn alerts on"),
}
"""A link's action: the page's heading, what it means for the lines, its button."""


def link_page(
    settings: Settings, link: Link, known: Mapping[str, LineStatus], now: datetime
) -> str:
    """What an alert's link will do, and its one button (a GET of the link never acts).
    It names the lines and their states, no figures: an alert can be forwarded."""
    tz = settings.tz()
    heading, meaning, press = _LINK_DOES[link.action]
    items = "".join(
        f"<li>{escape(settings.label(line) if line in settings.lines else line)} "
        f"{_badge(kind(known.get(line) or LineStatus(line)))}</li>"
        for line in link.lines
    )
    if link.action == "snooze":
        button = _snooze_buttons()
    else:
        button = f'<button type="submit">{press}</button>'
    body = (
        f"<h1>{escape(heading)}</h1><p>Of {'this line' if len(link.lines) == 1 else 'these lines'}"
        f' ({escape(meaning)}):</p><ul class="link-lines">{items}</ul>'
        f'<form class="link" method="post">{button}</form>'
        f"<p><small>This link works once, until {escape(when_text(link.expires, tz))}."
        " Opening it changed nothing.</small></p>"
    )
    return layout(heading, body)


def link_done(done: Done) -> str:
    """What following a link did, line by line."""
    items = "".join(f"<li>{escape(said)}</li>" for said in done.said)
    body = f"<h1>Done</h1><ul>{items}</ul><p><small>This link is used up now.</small></p>"
    return layout("Done", body)


def message(title: str, text: str, *, back: str = "/") -> str:
    """A page that says one thing (a refusal, a used link) and links back."""
    body = f'<h1>{escape(title)}</h1><p>{escape(text)}</p><p><a href="{escape(back)}">Back</a></p>'
    return layout(title, body)


# ---- pieces ------------------------------------------------------------------------------


def _passes(settings: Settings, status: LineStatus, chosen: Filter) -> bool:
    if chosen.state and kind(status) != chosen.state:
        return False
    if chosen.account and (settings.lines[status.line].account or "") != chosen.account:
        return False
    if chosen.text:
        wanted = chosen.text.lower()
        haystack = f"{status.line} {settings.label(status.line)}".lower()
        return wanted in haystack
    return True


def _filter_form(settings: Settings, chosen: Filter) -> str:
    states = "".join(
        f'<option value="{s}"{" selected" if s == chosen.state else ""}>{s}</option>'
        for s in STATES
    )
    accounts = "".join(
        f'<option value="{escape(a)}"{" selected" if a == chosen.account else ""}>'
        f"{escape(a)}</option>"
        for a in settings.accounts
    )
    account_field = (
        f'<label>Account <select name="account"><option value="">any</option>{accounts}'
        "</select></label>"
        if settings.accounts
        else ""
    )
    return (
        '<form class="filters" method="get" action="/">'
        f'<label>State <select name="state"><option value="">any</option>{states}</select>'
        f"</label>{account_field}"
        f'<label>Text <input name="q" value="{escape(chosen.text)}" type="search"></label>'
        '<button type="submit">Filter</button> <a href="/">Clear</a></form>'
    )


def _overview_row(settings: Settings, s: LineStatus, now: datetime, tz: tzinfo) -> str:
    from monitor.adapters import line_sizes

    line = s.line
    state = kind(s)
    sizes = line_sizes(settings, line)
    cells = [
        (
            "Line",
            f'<a href="/lines/{_u(line)}">{escape(settings.label(line))}</a>'
            f"<small>{escape(line)}</small>",
        ),
        ("State", _badge(state) + (f" <small>{s.failures} failed</small>" if s.failures else "")),
        ("Balance", escape(_money(s.balance, s.currency)) + _pay(settings, line)),
        ("Data left", escape(data_text(s.data_remaining, s.data_total, sizes))),
        ("Expires", _time(s.expires_at, tz)),
        ("Forecast", escape(_forecast(s, now, tz))),
        ("Last check", _time(s.checked_at, tz) + _age(s.checked_at, now)),
        ("Alerts", escape(_controls(s, now, tz))),
    ]
    tds = "".join(f'<td data-label="{name}">{value}</td>' for name, value in cells)
    return f'<tr class="{state}">{tds}</tr>'


def _facts(settings: Settings, s: LineStatus, now: datetime, tz: tzinfo, sizes: Sizes) -> str:
    facts = [
        ("State", _badge(kind(s))),
        ("Balance", escape(_money(s.balance, s.currency)) + _pay(settings, s.line)),
        ("Data left", escape(data_text(s.data_remaining, s.data_total, sizes))),
        ("Expires", _time(s.expires_at, tz)),
        ("Forecast", escape(_forecast(s, now, tz))),
        ("Last check", _time(s.checked_at, tz) + _age(s.checked_at, now)),
        ("Failures", f"{s.failures}" + (f": {escape(s.last_error)}" if s.last_error else "")),
        ("Alerts", escape(_controls(s, now, tz))),
    ]
    if s.source not in (None, "poll"):
        facts.append(("Last reading", escape(str(s.source))))
    items = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
    return f'<dl class="facts">{items}</dl>'


def _actions(line: str, csrf: str) -> str:
    base = f"/lines/{_u(line)}"
    return (
        f'<form method="post" action="{base}/snooze">{_csrf(csrf)}{_snooze_buttons()}'
        '<label>or for <input name="custom" placeholder="3d" size="5"></label>'
        '<button type="submit" name="duration" value="custom">Snooze</button></form>'
        f'<form method="post" action="{base}/ack">{_csrf(csrf)}'
        '<button type="submit">Acknowledge</button></form>'
        f'<form method="post" action="{base}/unsnooze">{_csrf(csrf)}'
        '<button type="submit">Unsnooze</button></form>'
        f'<form method="post" action="{base}/check">{_csrf(csrf)}'
        '<button type="submit">Check now</button></form>'
        f'<form class="record" method="post" action="{base}/record">{_csrf(csrf)}'
        '<label>Balance <input name="balance" placeholder="12.50" size="8"></label>'
        '<label>Data left <input name="data" placeholder="2GB" size="8"></label>'
        '<label>Expires <input name="expires" type="date"></label>'
        '<button type="submit">Record a reading</button></form>'
    )


def _snooze_buttons() -> str:
    """One submit per snooze choice (the line page's form, a snooze link's page)."""
    return "".join(
        f'<button type="submit" name="duration" value="{d}">Snooze {d}</button>' for d in SNOOZES
    )


def _events(events: Sequence[EventRow], tz: tzinfo) -> str:
    if not events:
        return "<p>None in this period.</p>"
    rows = "".join(
        f'<tr><td data-label="Time">{_time(e.created_at, tz)}</td>'
        f'<td data-label="Event">{escape(e.type)}</td>'
        f'<td data-label="Channel">{escape(e.channel or "-")}</td>'
        f'<td data-label="Delivery">{escape(_delivery(e, tz))}</td>'
        f'<td data-label="Message">{escape(e.message or "")}</td></tr>'
        for e in events
    )
    return (
        '<table class="events"><thead><tr><th>Time</th><th>Event</th><th>Channel</th>'
        f"<th>Delivery</th><th>Message</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _recharges(entries: Sequence[Recharge], tz: tzinfo) -> str:
    if not entries:
        return "<p>No top-up in the ledger.</p>"
    rows = "".join(
        f'<tr><td data-label="Requested">{_time(r.requested_at, tz)}</td>'
        f'<td data-label="State">{escape(r.state)}{" (dry run)" if r.dry_run else ""}</td>'
        f'<td data-label="Action">{escape(r.action)}</td>'
        f'<td data-label="Package">{escape(r.package or "-")}</td>'
        f'<td data-label="Amount">{escape(_money(r.amount, r.currency))}</td>'
        f'<td data-label="Price">{escape(_money(r.price, r.currency))}</td>'
        f'<td data-label="Detail">{escape(r.detail or "")}</td></tr>'
        for r in entries
    )
    return (
        '<table class="recharges"><thead><tr><th>Requested</th><th>State</th><th>Action</th>'
        "<th>Package</th><th>Amount</th><th>Price</th><th>Detail</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _marks(history: Sequence[HistoryRow], recharges: Sequence[Recharge]) -> list[chart.Mark]:
    """Top-ups the ledger confirmed, and renewals: a reading whose expiry moved later."""
    marks = [
        chart.Mark(r.settled_at or r.requested_at, "top-up")
        for r in recharges
        if r.state in ("confirmed", "submitted") and not r.dry_run
    ]
    previous: datetime | None = None
    for row in history:
        if not row.ok or row.expires_at is None:
            continue
        if previous is not None and row.expires_at > previous + timedelta(hours=1):
            marks.append(chart.Mark(row.checked_at, "renewal"))
        previous = row.expires_at
    return marks


def _delivery(e: EventRow, tz: tzinfo) -> str:
    if e.channel is None:
        return "not routed"
    if e.status == "sent":
        return f"sent {when_text(e.sent_at, tz)}"
    if e.status == "pending" and e.attempts:
        return f"pending, {e.attempts} failed, next {when_text(e.next_attempt_at, tz)}"
    return e.status or ""


def _forecast(s: LineStatus, now: datetime, tz: tzinfo) -> str:
    told = [
        f"{metric} {describe_forecast(f, now, tz)}"
        for metric, f in sorted(s.forecasts.items())
        if f.runs_out_at is not None
    ]
    return "; ".join(told) or "-"


def _controls(s: LineStatus, now: datetime, tz: tzinfo) -> str:
    said = []
    if s.controls.snoozed(now) and s.controls.snoozed_until is not None:
        said.append(f"snoozed until {when_text(s.controls.snoozed_until, tz)}")
    if s.controls.acked_level is not None:
        said.append(f"{s.controls.acked_level.label} acknowledged")
    return ", ".join(said) or "on"


def _pay(settings: Settings, line: str) -> str:
    url = settings.lines[line].payment_url
    if not url or not url.lower().startswith(("https://", "http://")):
        return ""
    return f' <a class="pay" href="{escape(url)}" rel="noopener noreferrer">top up</a>'


def _money(amount: Decimal | None, currency: str | None) -> str:
    return money_text(decimal(amount), currency)


def _time(moment: datetime | None, tz: tzinfo) -> str:
    if moment is None:
        return "-"
    return f'<time datetime="{moment.isoformat()}">{when_text(moment, tz)}</time>'


def _age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return ""
    return f" <small>({humanize_duration(now - moment)} ago)</small>"


def _badge(state: str) -> str:
    return f'<span class="badge {state}">{state}</span>'


def _csrf(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{escape(token)}">'


def _u(line: str) -> str:
    """A line id in a path: ids are [a-z0-9_-] (config), escaped anyway."""
    return escape(line)
