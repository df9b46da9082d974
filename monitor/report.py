"""Summaries of all lines: the digest a channel receives at a set time, `esim-monitor
report`, and the optional PNG chart (the `charts` extra: matplotlib, imported only here)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from monitor.adapters import line_sizes
from monitor.config import Settings
from monitor.evaluate import describe_forecast, judge, summarize
from monitor.model import Event, Level
from monitor.store.views import LineStatus, Views
from monitor.units import Sizes, format_bytes

if TYPE_CHECKING:
    from monitor.store import Store  # sqlite-utils: not for `report`, which only reads

log = structlog.get_logger("monitor.report")

EXPIRING_SOON = timedelta(days=7)
CHART_DAYS = 14
CHART_LINES = 12


class ChartsUnavailable(Exception):
    """matplotlib is not installed: `pip install 'esim-monitor[charts]'`."""


def summary_rows(
    settings: Settings, store: Views | None, now: datetime, since: datetime
) -> dict[str, Any]:
    """What the digest says, as data (`report --json`): the lines low (and why), expiring
    within EXPIRING_SOON, with a forecast, and with failed checks since `since`."""
    tz = settings.tz()
    status = store.status() if store else {}
    failures = store.failures_since(since) if store else {}
    low, expiring, forecasts, failed = [], [], [], []
    for line_id in settings.lines:
        line = status.get(line_id) or LineStatus(line_id)
        who = {"line": line_id, "label": settings.label(line_id)}
        if line.level in (Level.WARNING, Level.CRITICAL):
            low.append({**who, "state": line.state, "why": _why(settings, line)})
        if line.expires_at is not None and line.expires_at - now <= EXPIRING_SOON:
            expiring.append({**who, "expires_at": line.expires_at})
        for metric, f in line.forecasts.items():
            if f.runs_out_at is not None:
                said = describe_forecast(f, now, tz)
                forecasts.append(
                    {**who, "metric": metric, "runs_out_at": f.runs_out_at, "forecast": said}
                )
        if line_id in failures:
            count, error = failures[line_id]
            failed.append({**who, "failures": count, "error": error})
    return {
        "lines": len(settings.lines),
        "since": since,
        "low": low,
        "expiring": expiring,
        "forecasts": forecasts,
        "failed": failed,
    }


def summary(
    settings: Settings, store: Views | None, now: datetime, since: datetime
) -> tuple[str, str]:
    """A title and a plain-text body: low lines, expiring soon, forecasts, failed checks."""
    tz = settings.tz()
    rows = summary_rows(settings, store, now, since)

    def label(row: dict[str, Any]) -> str:
        return f"{row['label']} ({row['line']})"

    sections = [
        ("Low", [f"- {label(r)}: {r['state']}: {r['why']}" for r in rows["low"]]),
        (
            "Expiring within 7 days",
            [
                f"- {label(r)}: expires {r['expires_at'].astimezone(tz):%Y-%m-%d %H:%M}"
                for r in rows["expiring"]
            ],
        ),
        (
            "Forecasts",
            [f"- {label(r)}: {r['metric']} {r['forecast']}" for r in rows["forecasts"]],
        ),
        (
            f"Failed checks since {since.astimezone(tz):%Y-%m-%d %H:%M}",
            [
                f"- {label(r)}: {r['failures']} failed check{'s' if r['failures'] != 1 else ''}: "
                f"{r['error']}"
                for r in rows["failed"]
            ],
        ),
    ]
    body = []
    for heading, items in sections:
        body.append(f"{heading}: {'none' if not items else ''}".rstrip())
        body.extend(items)
    counts = f"{rows['lines']} lines, {len(rows['low'])} low, {len(rows['expiring'])} expiring soon"
    return f"esim-monitor digest: {counts}", "\n".join(body)


def _why(settings: Settings, line: LineStatus) -> str:
    """What makes a line low, as its alert said it: each metric past its threshold, judged
    again from its last reading ("expiry in 20 hours (critical, threshold 1 day)"); its
    figures when none is (a state held by hysteresis, or one the provider's status set)."""
    sizes = line_sizes(settings, line.line)
    reading = line.reading
    if reading is not None:
        judged = judge(
            reading, settings.thresholds(line.line), None, list(line.forecasts.values()), sizes
        )
        past = [m for m in judged if m.level > Level.OK]
        if past:
            return summarize(past)
    status = f"status {line.status}, " if line.status else ""
    return status + _figures(line, sizes)


def _figures(line: LineStatus, sizes: Sizes) -> str:
    parts = []
    if line.balance is not None:
        parts.append(f"balance {line.balance:f} {line.currency or ''}".rstrip())
    if line.data_remaining is not None:
        parts.append(f"data {format_bytes(line.data_remaining, sizes)}")
    return ", ".join(parts) or "no figures"


def queue_digests(settings: Settings, store: Store, now: datetime) -> int:
    """Put a digest in the outbox for every channel whose digest time has come.

    A channel's first digest is the first scheduled time after the daemon first saw it,
    never one at startup."""
    queued = 0
    tz = settings.tz()
    for name, channel in settings.channels.items():
        if channel.digest is None:
            continue
        last = store.digest_sent(name)
        if last is None:
            store.add_digest_baseline(name, now)
            continue
        if now < channel.digest.next_after(last.astimezone(tz)):
            continue
        title, body = summary(settings, store, now, since=last)
        lines = _chart_lines(settings, store)
        event = Event("digest", "", now, {"title": title, "body": body, "lines": lines})
        store.add_digest(name, event, title, now)
        queued += 1
        log.info("digest queued", channel=name, routine=True)
    return queued


def _chart_lines(settings: Settings, store: Store) -> list[str]:
    """The lines worth charting: low ones first, at most CHART_LINES."""
    status = store.status()
    order = {Level.CRITICAL: 0, Level.WARNING: 1}

    def rank(line: str) -> int:
        known = status.get(line)
        return order.get(known.level, 2) if known and known.level is not None else 2

    ranked = sorted(settings.lines, key=rank)
    return ranked[:CHART_LINES]


def write_chart(store: Views, lines: Sequence[str], path: Path, days: int = CHART_DAYS) -> bool:
    """A PNG of each line's balance and data over the last days; False when nothing to draw."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ChartsUnavailable() from None
    since = datetime.now().astimezone() - timedelta(days=days)
    series = {line: store.series(line, since) for line in lines}
    series = {line: rows for line, rows in series.items() if rows}
    if not series:
        return False
    fig, (money, data) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for line, rows in series.items():
        balance = [(p.at, float(p.balance)) for p in rows if p.balance is not None]  # plotting
        if balance:
            money.plot([t for t, _ in balance], [v for _, v in balance], label=line)
        remaining = [(p.at, p.data / 1e9) for p in rows if p.data is not None]
        if remaining:
            data.plot([t for t, _ in remaining], [v for _, v in remaining], label=line)
    money.set_ylabel("balance")
    data.set_ylabel("data left (GB)")
    money.set_title(f"esim-monitor: the last {days} days")
    for axes in (money, data):
        axes.grid(True, alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="small")
    fig.autofmt_xdate()
    fig.tight_layout()
    # 0600 whatever the umask (and an existing file is narrowed): the chart shows balances
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        fig.savefig(path, format="png", dpi=100)  # truncates the file, keeping its mode
    finally:
        plt.close(fig)
    return True
