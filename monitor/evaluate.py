"""Judge readings against thresholds and turn state changes into events.

Pure: previous LineState + Reading (or a failure) + policy + now -> new LineState + events.
No I/O, so every transition is tested from a table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from monitor.config import Alerts, Thresholds
from monitor.forecast import Forecast
from monitor.model import (
    Controls,
    Event,
    ExpiryNotice,
    Level,
    LineState,
    MetricResult,
    Notices,
    Reading,
)
from monitor.units import (
    Percent,
    Size,
    Sizes,
    format_bytes,
    format_duration,
    format_money,
    humanize_duration,
)

Comparable = Decimal | int | timedelta


CARRIED = ("balance", "data", "expiry")
"""Metrics whose last level stands while a reading lacks them."""


@dataclass(frozen=True)
class Policy:
    """What a line is judged by: its effective thresholds and alert settings."""

    thresholds: Thresholds
    alerts: Alerts
    sizes: Sizes = "decimal"
    """The line's provider's size convention: how its thresholds read and its sizes show."""


def judge(
    reading: Reading,
    thresholds: Thresholds,
    previous: dict[str, Level] | None = None,
    forecasts: Sequence[Forecast] = (),
    sizes: Sizes = "decimal",
) -> list[MetricResult]:
    """Each metric the reading carries, with its level. Hysteresis uses the previous levels.
    A data threshold and the figure beside it are both read and shown in `sizes`."""
    previous = previous or {}
    h = thresholds.hysteresis
    results = []
    if reading.balance is not None:
        level, threshold = _level(
            reading.balance,
            {
                Level.WARNING: thresholds.balance_warning,
                Level.CRITICAL: thresholds.balance_critical,
            },
            previous.get("balance", Level.OK),
            h,
        )
        results.append(
            MetricResult(
                "balance",
                level,
                format_money(reading.balance, reading.currency),
                format_money(threshold, reading.currency) if threshold is not None else None,
            )
        )
    if reading.data_remaining is not None:
        limits = {
            Level.WARNING: _bytes(thresholds.data_warning, reading.data_total, sizes),
            Level.CRITICAL: _bytes(thresholds.data_critical, reading.data_total, sizes),
        }
        level, threshold = _level(reading.data_remaining, limits, previous.get("data", Level.OK), h)
        results.append(
            MetricResult(
                "data",
                level,
                format_bytes(reading.data_remaining, sizes),
                format_bytes(threshold, sizes) if threshold is not None else None,
            )
        )
    if reading.expires_at is not None:
        left = reading.expires_at - reading.checked_at
        if left <= timedelta(0):
            results.append(MetricResult("expiry", Level.CRITICAL, "expired", None))
        else:
            level, threshold = _level(
                left,
                {
                    Level.WARNING: thresholds.expiry_warning,
                    Level.CRITICAL: thresholds.expiry_critical,
                },
                previous.get("expiry", Level.OK),
                h,
            )
            results.append(
                MetricResult(
                    "expiry",
                    level,
                    f"in {humanize_duration(left)}",
                    f"{humanize_duration(threshold)}" if threshold is not None else None,
                )
            )
    if reading.critical_reason:
        results.append(MetricResult("status", Level.CRITICAL, reading.critical_reason, None))
    elif reading.warning_reason:
        results.append(MetricResult("status", Level.WARNING, reading.warning_reason, None))
    results.extend(_judge_forecasts(reading, thresholds, forecasts))
    return results


def _judge_forecasts(
    reading: Reading, thresholds: Thresholds, forecasts: Sequence[Forecast]
) -> list[MetricResult]:
    """A warning when a metric will run out within `forecast`, or before the plan ends."""
    if thresholds.forecast is None:
        return []
    plan_end = reading.renewal_at or reading.expires_at
    worst: MetricResult | None = None
    for f in forecasts:
        if f.runs_out_at is None:
            continue
        text = f"{f.metric} {describe_forecast(f, reading.checked_at)}"
        if f.runs_out_at - reading.checked_at <= thresholds.forecast:
            worst = MetricResult(
                "forecast", Level.WARNING, text, humanize_duration(thresholds.forecast)
            )
        elif plan_end is not None and f.runs_out_at < plan_end and worst is None:
            worst = MetricResult("forecast", Level.WARNING, text, "before the plan ends")
    return [worst] if worst else []


def describe_forecast(f: Forecast, now: datetime, tz: tzinfo | None = None) -> str:
    """ "runs out in ~4 days (on 2026-11-30)", or "not running out"."""
    if f.runs_out_at is None:
        return "not running out at this pace"
    left = f.runs_out_at - now
    when = f.runs_out_at.astimezone(tz) if tz else f.runs_out_at
    if left <= timedelta(0):
        return "has run out"
    return f"runs out in ~{humanize_duration(left)} (on {when:%Y-%m-%d})"


def _bytes(threshold: int | Percent | None, total: int | None, sizes: Sizes) -> int | None:
    if isinstance(threshold, Percent):
        return threshold.of(total) if total else None
    if isinstance(threshold, Size):
        return threshold.of(sizes)
    return threshold


def _level(
    value: Any,
    limits: dict[Level, Any],
    previous: Level,
    hysteresis: Decimal,
) -> tuple[Level, Any]:
    """The level of one value, and the threshold that decided it (None when ok).

    A value is low at or below a threshold. Leaving a low level needs the value to rise
    above the threshold plus the hysteresis margin, so a value hovering there cannot flap.
    """
    level = Level.OK
    for candidate in (Level.CRITICAL, Level.WARNING):
        limit = limits.get(candidate)
        if limit is not None and value <= limit:
            level = candidate
            break
    for held in range(previous, level, -1):
        limit = limits.get(Level(held))
        if limit is not None and value <= _with_margin(limit, hysteresis):
            level = Level(held)
            break
    return level, limits.get(level) if level > Level.OK else _nearest(limits)


def _with_margin(limit: Comparable, hysteresis: Decimal) -> Comparable:
    if isinstance(limit, timedelta):
        return limit * float(1 + hysteresis)
    if isinstance(limit, int):
        return int(limit * (1 + hysteresis))
    return limit * (1 + hysteresis)


def _nearest(limits: dict[Level, Any]) -> Any:
    return limits.get(Level.WARNING) if limits.get(Level.WARNING) is not None else None


def evaluate_reading(
    previous: LineState,
    reading: Reading,
    policy: Policy,
    now: datetime,
    controls: Controls | None = None,
    forecasts: Sequence[Forecast] = (),
    known_balance: Decimal | None = None,
) -> tuple[LineState, list[Event], list[MetricResult]]:
    """A successful read: new state, the events it causes, and the judged metrics.
    `known_balance`: the last balance an earlier reading gave, for a reading without one
    (a plan line's check: its balance is only ever recorded by hand)."""
    controls = controls or Controls()
    metrics = judge(reading, policy.thresholds, dict(previous.metrics), forecasts, policy.sizes)
    levels = {m.metric: m.level for m in metrics}
    # A reading that lacks a figure (one USSD code of two answered) says nothing about it:
    # the metric keeps its last level, so a partial reading is no recovery.
    for metric in CARRIED:
        if metric not in levels and metric in previous.metrics:
            levels[metric] = previous.metrics[metric]
    level = max(levels.values(), default=Level.OK)
    events: list[Event] = []
    facts = _reading_facts(reading, metrics, level, previous, policy.sizes)
    low_since = previous.low_since
    last_alert_at = previous.last_alert_at

    if previous.failure_alerted:
        since = previous.last_success_at
        events.append(
            _event(
                "failure-recovered",
                reading.line,
                now,
                facts,
                failures=previous.failures,
                failed_for=humanize_duration(now - since) if since else None,
            )
        )

    was_low = previous.level is not None and previous.level > Level.OK
    if level > Level.OK:
        if not was_low:
            low_since = now
        if previous.level is None or level != previous.level:
            events.append(_event(level.label, reading.line, now, facts, **_low(low_since, now)))
            last_alert_at = now
        elif controls.acked_level != level and _repeat_due(
            last_alert_at, policy.alerts.repeat, now
        ):
            events.append(_event("repeat", reading.line, now, facts, **_low(low_since, now)))
            last_alert_at = now
    elif was_low:
        events.append(_event("recovery", reading.line, now, facts, **_low(low_since, now)))
        low_since = None
        last_alert_at = None

    notices, escalated = _escalation(
        reading.line, level, controls, policy, previous.notices, facts, now
    )
    events.extend(escalated)
    notices, reminders = _expiry_reminders(reading, policy, notices, facts, now)
    events.extend(reminders)
    risk = renewal_risk(reading, policy.thresholds, now, known_balance)
    if risk is not None and notices.renewal_risk != risk["renewal_at"]:
        events.append(_event("renewal-risk", reading.line, now, facts, **risk))
        notices = dataclasses.replace(notices, renewal_risk=risk["renewal_at"])

    state = LineState(
        line=reading.line,
        level=level,
        metrics=levels,
        low_since=low_since,
        last_alert_at=last_alert_at,
        failures=0,
        failure_alerted=False,
        last_error=None,
        checked_at=now,
        last_success_at=now,
        notices=notices,
    )
    return state, events, metrics


def _escalation(
    line: str,
    level: Level,
    controls: Controls,
    policy: Policy,
    notices: Notices,
    facts: dict[str, Any],
    now: datetime,
) -> tuple[Notices, list[Event]]:
    """A critical nobody acknowledged within `escalate_after` goes to `escalate_to` too,
    once per critical spell."""
    if level < Level.CRITICAL:
        return dataclasses.replace(notices, critical_since=None, escalated=None), []
    since = notices.critical_since or now
    notices = dataclasses.replace(notices, critical_since=since)
    after, targets = policy.alerts.escalate_after, policy.alerts.escalate_to
    if (
        after is None
        or not targets
        or controls.acked_level == Level.CRITICAL
        or notices.escalated == since
        or now - since < after
    ):
        return notices, []
    notices = dataclasses.replace(notices, escalated=since)
    critical_for = humanize_duration(now - since)
    return notices, [
        _event(
            "critical",
            line,
            now,
            facts,
            escalated=True,
            escalate_to=list(targets),
            low_for=critical_for,
        )
    ]


def _expiry_reminders(
    reading: Reading,
    policy: Policy,
    notices: Notices,
    facts: dict[str, Any],
    now: datetime,
) -> tuple[Notices, list[Event]]:
    """One `expiry` event per offset and expiry date; a new expiry date (a renewal) resets
    them. When several offsets are crossed at once, one reminder names the nearest."""
    offsets = policy.alerts.expiry_reminders
    expires = reading.expires_at
    if expires is None or not offsets:
        return notices, []
    record = notices.expiry
    sent = record.sent if record is not None and record.expires_at == expires else frozenset()
    left = expires - now
    crossed = {format_duration(o): o for o in offsets if left <= o}
    new = set(crossed) - sent
    notices = dataclasses.replace(notices, expiry=ExpiryNotice(expires, sent | set(crossed)))
    if not new or left <= timedelta(0):
        return notices, []
    nearest = min(crossed.values())
    return notices, [
        _event(
            "expiry",
            reading.line,
            now,
            facts,
            offset=format_duration(nearest),
            expires_in=humanize_duration(left),
        )
    ]


def renewal_risk(
    reading: Reading,
    thresholds: Thresholds,
    now: datetime,
    known_balance: Decimal | None = None,
) -> dict[str, Any] | None:
    """Facts for a `renewal-risk` event when the balance (the reading's, else the last
    known) will not cover an upcoming renewal (within `renewal_warning`), else None. Once
    per renewal date: the caller remembers it."""
    balance = reading.balance if reading.balance is not None else known_balance
    if (
        reading.renewal_at is None
        or reading.renewal_price is None
        or balance is None
        or thresholds.renewal_warning is None
    ):
        return None
    left = reading.renewal_at - now
    if balance >= reading.renewal_price or left > thresholds.renewal_warning:
        return None
    return {
        "renewal_at": reading.renewal_at,
        "renewal_price": format_money(reading.renewal_price, reading.currency),
        "shortfall": format_money(reading.renewal_price - balance, reading.currency),
        "renews_in": humanize_duration(left) if left > timedelta(0) else "now",
    }


def evaluate_failure(
    previous: LineState, error: str, policy: Policy, now: datetime
) -> tuple[LineState, list[Event]]:
    """A failed read. The last known state stands (never a zero balance); after
    `failures_before_alert` failures in a row, one `failure` event."""
    failures = previous.failures + 1
    events = []
    alerted = previous.failure_alerted
    if not alerted and failures >= policy.alerts.failures_before_alert:
        events.append(
            _event(
                "failure",
                previous.line,
                now,
                {"state": previous.state},
                error=error,
                failures=failures,
            )
        )
        alerted = True
    state = dataclasses.replace(
        previous,
        failures=failures,
        failure_alerted=alerted,
        last_error=error,
        checked_at=now,
    )
    return state, events


def _repeat_due(last_alert_at: datetime | None, repeat: timedelta, now: datetime) -> bool:
    if repeat <= timedelta(0):
        return False
    return last_alert_at is None or now - last_alert_at >= repeat


def _low(low_since: datetime | None, now: datetime) -> dict[str, Any]:
    if low_since is None or low_since >= now:
        return {}
    return {"low_since": low_since, "low_for": humanize_duration(now - low_since)}


def _reading_facts(
    reading: Reading,
    metrics: Sequence[MetricResult],
    level: Level,
    previous: LineState,
    sizes: Sizes,
) -> dict[str, Any]:
    low = [m for m in metrics if m.level > Level.OK]
    worst = max(low, key=lambda m: m.level, default=None)
    return {
        "state": level.label,
        "previous_state": previous.state,
        "metric": worst.metric if worst else None,
        "value": worst.value if worst else None,
        "threshold": worst.threshold if worst else None,
        "low": [dataclasses.asdict(m) | {"level": m.level.label} for m in low],
        "summary": summarize(metrics),
        "balance": format_money(reading.balance, reading.currency)
        if reading.balance is not None
        else None,
        "data_remaining": format_bytes(reading.data_remaining, sizes)
        if reading.data_remaining is not None
        else None,
        "data_total": format_bytes(reading.data_total, sizes)
        if reading.data_total is not None
        else None,
        "expires_at": reading.expires_at,
        "status": reading.status,
        "forecast": next((m.value for m in metrics if m.metric == "forecast"), None),
    }


def summarize(metrics: Sequence[MetricResult]) -> str:
    """One line for messages: "balance 4.20 USD (critical, at or below 5 USD); data 2 GB"."""
    parts = []
    for m in metrics:
        text = f"{m.metric} {m.value}"
        if m.level > Level.OK:
            text += f" ({m.level.label}" + (f", threshold {m.threshold})" if m.threshold else ")")
        parts.append(text)
    return "; ".join(parts) if parts else "no figures reported"


def _event(kind: str, line: str, now: datetime, facts: dict[str, Any], **extra: Any) -> Event:
    return Event(type=kind, line=line, created_at=now, facts={**facts, **extra})
