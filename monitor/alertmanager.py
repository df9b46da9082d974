"""Alertmanager channels: each line's state posted to Alertmanager's v2 API, as Prometheus does.

An Apprise channel is sent events (a message per change); an Alertmanager channel is given
states, and Alertmanager (clustered, deduplicating, routing, silencing) decides whom to tell.
Per channel a worker of its own posts, every `repost`, every alert that is active:
`EsimLineLow` (severity warning or critical), `EsimLineUnreadable` (failed reads past
`failures_before_alert`), `EsimPlanExpiring` (within the line's `expiry_reminders`), each
with `endsAt` = now + 4 reposts (Prometheus' rule: the alerts of an instance that dies
resolve by themselves), and an alert that stopped once more with `endsAt` = when it stopped
(resolved). After each check pass the loop wakes the workers, which then post only what
changed. The loop never waits on them: a down Alertmanager is logged at warning and tried
again at the next repost.

The payload is Alertmanager's `postableAlerts` (`POST /api/v2/alerts`) of its
api/v2/openapi.yaml (https://github.com/prometheus/alertmanager/blob/v0.25.0/api/v2/openapi.yaml):
a list of {labels, annotations: labelSet (string to string), startsAt, endsAt: date-time}.
Its first round after a start also reads `GET /api/v2/alerts` for this channel's alerts, so
a line that recovered while the daemon was down is resolved, and startsAt survives restarts.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import structlog

from monitor import __version__
from monitor.adapters.http import parse_time
from monitor.config import Channel, Settings, secret_values
from monitor.counters import COUNTERS
from monitor.errors import CheckFailed
from monitor.evaluate import judge, summarize
from monitor.model import Event, Level, utcnow
from monitor.notify import Outcome, variables
from monitor.redact import Redactor
from monitor.store.views import LineStatus, View
from monitor.units import format_duration, humanize_duration

log = structlog.get_logger("monitor.alertmanager")

LOW, UNREADABLE, EXPIRING = "EsimLineLow", "EsimLineUnreadable", "EsimPlanExpiring"
ALERTNAMES = (LOW, UNREADABLE, EXPIRING)
TEST_ALERTNAME = "EsimMonitorTest"
TEST_LIFETIME = timedelta(minutes=5)
"""A test alert resolves by itself after this: long enough for Alertmanager's group_wait."""
DEFAULT_REPOST = timedelta(minutes=1)
LIFETIME_REPOSTS = 4
"""endsAt of an active alert is this many reposts ahead (Prometheus: 4 x resend delay)."""
BATCH = 500
"""Alerts per request: 10,000 low lines are 20 posts, not one body of megabytes."""
UNREADABLE_SEVERITY = "warning"
"""Like the `failure` event, which quiet hours hold by default (only critical is urgent)."""
EXPIRING_SEVERITY = "info"

States = Callable[[], Mapping[str, LineStatus]]
"""Where a worker reads each line's state (the database, on the worker's own thread)."""
Key = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Alert:
    """One alert as Alertmanager identifies it (by its labels) with what it says."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime

    @property
    def key(self) -> Key:
        return tuple(sorted(self.labels.items()))

    def postable(self, ends_at: datetime) -> dict[str, Any]:
        """The openapi.yaml's `postableAlert`."""
        return {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": timestamp(self.starts_at),
            "endsAt": timestamp(max(ends_at, self.starts_at)),
        }


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC, as the openapi's `format: date-time` reads it."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def repost_interval(channel: Channel) -> timedelta:
    return channel.repost or DEFAULT_REPOST


def channels(settings: Settings) -> list[str]:
    return [name for name, ch in settings.channels.items() if ch.type == "alertmanager"]


# ---- what is active: pure ---------------------------------------------------------------


def line_alerts(
    settings: Settings,
    name: str,
    states: Mapping[str, LineStatus],
    now: datetime,
    previous: Mapping[Key, Alert] | None = None,
    cache: dict[str, tuple[Any, list[Alert]]] | None = None,
) -> dict[Key, Alert]:
    """The alerts the channel `name` has active now, from each configured line's state.

    A snoozed line has none (so its alerts resolve until the snooze ends); the channel's
    `lines` and `events` select lines and alert kinds. An alert that was active before
    keeps its startsAt (`previous`); a new one starts when its state began: the line's
    `low_since`, or, for a line that was low at another severity, or that cannot be read,
    the check that found it so. `cache` keeps each line's alerts until its state changes
    (a round of 10,000 low lines costs 1.6 s of CPU to build, next to nothing to re-post)."""
    channel = settings.channels[name]
    previous = previous or {}
    low_before: dict[str, set[str]] = {}
    for old in previous.values():
        if old.labels.get("alertname") == LOW:
            low_before.setdefault(old.labels.get("line", ""), set()).add(
                old.labels.get("severity", "")
            )
    found: dict[Key, Alert] = {}
    for line_id in settings.lines:
        status = states.get(line_id)
        if status is None or (channel.lines is not None and line_id not in channel.lines):
            continue
        if status.controls.snoozed(now):
            continue
        before = low_before.get(line_id, set())
        expiring = _expiring(settings, status, now)
        mark = (*status[:8], status.expires_at, status.controls, expiring, frozenset(before))
        cached = cache.get(line_id) if cache is not None else None
        if cached is not None and cached[0] == mark:
            alerts = cached[1]
        else:
            alerts = _alerts_of(settings, channel, status, now, before, expiring)
            if cache is not None:
                cache[line_id] = (mark, alerts)
        for alert in alerts:
            old = previous.get(alert.key)
            if old is not None:
                alert = Alert(alert.labels, alert.annotations, old.starts_at)
            found[alert.key] = alert
    return found


def _alerts_of(
    settings: Settings,
    channel: Channel,
    status: LineStatus,
    now: datetime,
    low_before: set[str],
    expiring: datetime | None,
) -> list[Alert]:
    """The line's active alerts; `low_before`: the severities it was posted low at."""
    line_id = status.line
    alerts = settings.alerts(line_id)
    checked = status.checked_at or now
    found = []
    level = status.level
    if level is not None and level > Level.OK and level.label in channel.events:
        other = bool(low_before - {level.label})
        since = checked if other or status.low_since is None else status.low_since
        facts = _figures(settings, status)
        facts["state"] = level.label
        acked = status.controls.acked_level == level
        found.append(
            _alert(settings, channel, status, LOW, level.label, since, level.label, facts, acked)
        )
    if status.failures >= alerts.failures_before_alert and "failure" in channel.events:
        facts = {"error": status.last_error or "", "failures": status.failures}
        found.append(
            _alert(
                settings,
                channel,
                status,
                UNREADABLE,
                UNREADABLE_SEVERITY,
                checked,
                "failure",
                facts,
            )
        )
    if expiring is not None and status.expires_at is not None and "expiry" in channel.events:
        left = status.expires_at - now
        facts = {
            "expires_at": status.expires_at,
            "expires_in": humanize_duration(left) if left > timedelta(0) else "0s (expired)",
        }
        found.append(
            _alert(
                settings, channel, status, EXPIRING, EXPIRING_SEVERITY, expiring, "expiry", facts
            )
        )
    return found


def _expiring(settings: Settings, status: LineStatus, now: datetime) -> datetime | None:
    """When the line's plan entered its reminder window (the largest offset), if it has."""
    offsets = settings.alerts(status.line).expiry_reminders
    if not offsets or status.expires_at is None:
        return None
    window = status.expires_at - max(offsets)
    return window if now >= window else None


def _figures(settings: Settings, status: LineStatus) -> dict[str, Any]:
    """The last reading's worst low metric and every figure, as an event's facts."""
    reading = status.reading
    if reading is None:
        return {}
    from monitor.adapters import line_sizes

    metrics = judge(
        reading, settings.thresholds(status.line), sizes=line_sizes(settings, status.line)
    )
    low = [m for m in metrics if m.level > Level.OK]
    worst = max(low, key=lambda m: m.level, default=None)
    facts: dict[str, Any] = {"summary": summarize(metrics)}
    if worst is not None:
        facts.update(metric=worst.metric, value=worst.value, threshold=worst.threshold)
    return facts


def _alert(
    settings: Settings,
    channel: Channel,
    status: LineStatus,
    alertname: str,
    severity: str,
    since: datetime,
    kind: str,
    facts: dict[str, Any],
    acknowledged: bool = False,
) -> Alert:
    line_id = status.line
    line = settings.lines[line_id]
    labels = {
        "alertname": alertname,
        "line": line_id,
        "provider": settings.adapter_name(line_id),
        "severity": severity,
        **(channel.labels or {}),
    }
    if line.account:
        labels["account"] = line.account
    values = variables(Event(kind, line_id, status.checked_at or since, facts), settings)
    headline = values["headline"]
    if kind in ("warning", "critical") and not facts.get("metric"):
        headline = f"{values['label']} is {kind}"  # within the hysteresis band: no figure is low
    annotations = {
        "summary": headline,
        "description": str(facts.get("summary") or ""),
        "label": values["label"],
        "payment_url": values["payment_url"],
        "error": str(facts.get("error") or ""),
        "expires_at": status.expires_at.isoformat() if status.expires_at else "",
        "low_since": status.low_since.isoformat() if status.low_since and kind != "expiry" else "",
        "acknowledged": "true" if acknowledged else "",
    }
    return Alert(labels, {k: v for k, v in annotations.items() if v}, since)


def test_alert(channel: Channel, now: datetime) -> Alert:
    labels = {"alertname": TEST_ALERTNAME, "severity": "info", **(channel.labels or {})}
    annotations = {
        "summary": "Test message from esim-monitor",
        "description": "If you read this, alerts reach you here.",
    }
    return Alert(labels, annotations, now)


# ---- posting ------------------------------------------------------------------------------


class Poster:
    """The HTTP side of one Alertmanager channel, on httpx like the adapters' sessions;
    each request bounded by `[monitor] notify_timeout`. Errors name the channel, never its
    URL or credentials."""

    def __init__(self, name: str, settings: Settings, redactor: Redactor) -> None:
        channel = settings.channels[name]
        self.name = name
        self.error: str | None = None
        """Why the last read failed."""
        self.base = channel.url.get_secret_value().rstrip("/")
        self.redactor = redactor
        auth: httpx.Auth | None = None
        headers = {"User-Agent": f"esim-monitor/{__version__}"}
        if channel.user is not None and channel.password is not None:
            auth = httpx.BasicAuth(channel.user, channel.password.get_secret_value())
        if channel.token is not None:
            headers["Authorization"] = f"Bearer {channel.token.get_secret_value()}"
        self.client = httpx.Client(
            auth=auth,
            headers=headers,
            timeout=settings.monitor.notify_timeout.total_seconds(),
            follow_redirects=False,
            trust_env=False,
        )

    def post(self, alerts: Sequence[dict[str, Any]]) -> Outcome:
        """POST /api/v2/alerts, in batches; the first failure ends the round."""
        for start in range(0, len(alerts), BATCH):
            outcome = self._request(
                "POST", "/api/v2/alerts", json=list(alerts[start : start + BATCH])
            )
            if not outcome.ok:
                return outcome
        return Outcome(self.name, True)

    def active(self, matchers: Sequence[str]) -> list[dict[str, Any]] | None:
        """GET /api/v2/alerts with these filters: the `gettableAlerts` there, or None."""
        answer: list[Any] = []
        outcome = self._request(
            "GET", "/api/v2/alerts", params=[("filter", m) for m in matchers], answer=answer
        )
        if not outcome.ok:
            self.error = outcome.error
            return None
        return [a for a in answer if isinstance(a, dict) and isinstance(a.get("labels"), dict)]

    def _request(
        self, method: str, path: str, answer: list[Any] | None = None, **kw: Any
    ) -> Outcome:
        try:
            response = self.client.request(method, self.base + path, **kw)
        except Exception as exc:  # whatever the transport raised: the round fails, nothing more
            return Outcome(self.name, False, self._clean(f"{type(exc).__name__}: {exc}"))
        if response.status_code != 200:
            body = response.text[:200].strip()
            return Outcome(self.name, False, self._clean(f"HTTP {response.status_code}: {body}"))
        if answer is not None:
            try:
                data = response.json()
            except ValueError:
                return Outcome(self.name, False, "the answer is not JSON")
            if isinstance(data, list):
                answer.extend(data)
        return Outcome(self.name, True)

    def _clean(self, text: str) -> str:
        return self.redactor.text(text.replace(self.base, f"<channel {self.name}>"))[:300]

    def close(self) -> None:
        self.client.close()


def channel_redactor(settings: Settings) -> Redactor:
    """Every configured secret, and each channel's `user:password` as Basic auth sends it."""
    secrets = secret_values(settings)
    for name in channels(settings):
        channel = settings.channels[name]
        if channel.user is not None and channel.password is not None:
            secrets.append(f"{channel.user}:{channel.password.get_secret_value()}")
    return Redactor(secrets)


def _matcher(name: str, value: str) -> str:
    return f"{name}={json.dumps(value)}"


class Worker:
    """Posts one channel's alerts on a thread of its own: every `repost` all active ones,
    on `wake()` what changed. `round()` is one such post, also callable from another thread
    (run --once); rounds never overlap."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        states: States,
        redactor: Redactor,
        memory: tuple[dict[Key, Alert], dict[Key, tuple[Alert, datetime]]] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.states = states
        self.poster = Poster(name, settings, redactor)
        self.repost = repost_interval(settings.channels[name])
        self.firing: dict[Key, Alert] = {}
        """What was last posted as active."""
        self.resolving: dict[Key, tuple[Alert, datetime]] = {}
        """Alerts that stopped (with when), until a post of their end went through."""
        self.reconciled = False
        self._cache: dict[str, tuple[Any, list[Alert]]] = {}
        """Each line's alerts until its state changes (line_alerts)."""
        if memory is not None:
            self.firing, self.resolving = dict(memory[0]), dict(memory[1])
            self.reconciled = True
        self.failing = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"alertmanager-{self.name}", daemon=True
        )
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def close(self) -> None:
        """Close the client, unless the thread is still in a request: then it does, when
        that request ends (closing under it would only turn its wait into an error)."""
        if self._thread is None or not self._thread.is_alive():
            self.poster.close()

    def _run(self) -> None:
        full = True
        try:
            while not self._stop.is_set():
                try:
                    self.round(full=full)
                except Exception:  # a bug here must not end the channel's posting for good
                    log.exception("alertmanager round failed", channel=self.name)
                woken = self._wake.wait(self.repost.total_seconds())
                self._wake.clear()
                full = not woken
        finally:
            self.poster.close()

    def round(self, full: bool = True) -> Outcome:
        """Read the states, post what is active (all of it when `full`, else what began)
        and what stopped. A failed read of the states re-posts the last known alerts."""
        with self._lock:
            try:
                states = self.states()
            except Exception as exc:
                log.warning(
                    "line states unreadable: last known alerts re-posted",
                    channel=self.name,
                    error=type(exc).__name__,
                )
                states = None
            now = utcnow()
            if not self.reconciled and states is not None:
                self._reconcile()
            new: set[Key] = set()
            if states is not None:
                active = line_alerts(
                    self.settings, self.name, states, now, self.firing, self._cache
                )
                for line in set(self._cache) - set(states):
                    del self._cache[line]
                for key, alert in self.firing.items():
                    if key not in active:
                        self.resolving[key] = (alert, now)
                for key in active:
                    self.resolving.pop(key, None)
                new = set(active) - set(self.firing)
                self.firing = active
            ends = now + self.repost * LIFETIME_REPOSTS
            payload = [
                alert.postable(ends) for key, alert in self.firing.items() if full or key in new
            ]
            payload += [alert.postable(at) for alert, at in self.resolving.values()]
            if not payload:
                return Outcome(self.name, True)
            outcome = self.poster.post(payload)
            if self._stop.is_set():
                return outcome  # the daemon has moved on (stopped, reloaded): nothing to say
            COUNTERS.delivery(self.name, "sent" if outcome.ok else "failed")
            if outcome.ok:
                if self.failing:
                    log.info("alertmanager reachable again", channel=self.name)
                log.debug(
                    "alerts posted",
                    channel=self.name,
                    firing=len(self.firing),
                    resolved=len(self.resolving),
                )
                self.resolving.clear()
                self.failing = False
            else:
                self.failing = True
                log.warning(
                    "alertmanager post failed, retried at the next repost",
                    channel=self.name,
                    error=outcome.error,
                    retry_in=format_duration(self.repost),
                )
            return outcome

    def _reconcile(self) -> None:
        """Alerts Alertmanager has active for this channel's lines (from before a restart):
        they join `firing`, so those no longer active are resolved and startsAt is kept."""
        channel = self.settings.channels[self.name]
        matchers = [f"alertname=~{json.dumps('|'.join(ALERTNAMES))}"]
        matchers += [_matcher(k, v) for k, v in (channel.labels or {}).items()]
        found = self.poster.active(matchers)
        if self._stop.is_set():
            return
        if found is None:
            log.warning(
                "alertmanager alerts could not be read, tried again at the next repost",
                channel=self.name,
                error=self.poster.error,
            )
            return
        self.reconciled = True
        for item in found:
            labels = {str(k): str(v) for k, v in item["labels"].items()}
            line = labels.get("line")
            if line not in self.settings.lines or (
                channel.lines is not None and line not in channel.lines
            ):
                continue
            try:  # Alertmanager's reply read as a provider's is: by the shared HTTP layer
                starts = parse_time(item.get("startsAt"), "startsAt")
            except CheckFailed:
                starts = utcnow()
            notes = item.get("annotations")
            notes = {str(k): str(v) for k, v in notes.items()} if isinstance(notes, dict) else {}
            alert = Alert(labels, notes, starts)
            self.firing.setdefault(alert.key, alert)


class Hub:
    """The workers of every Alertmanager channel of one config."""

    def __init__(self, settings: Settings, states: States, previous: Hub | None = None) -> None:
        """`previous`: the hub of the config before a reload; a channel kept keeps what it
        posted, so an alert that stopped meanwhile is still resolved."""
        self.settings = settings
        self.redactor = channel_redactor(settings)
        self.workers = {}
        for name in channels(settings):
            old = previous.workers.get(name) if previous is not None else None
            memory = (old.firing, old.resolving) if old is not None and old.reconciled else None
            self.workers[name] = Worker(name, settings, states, self.redactor, memory)
        self.started = False

    def __bool__(self) -> bool:
        return bool(self.workers)

    def start(self) -> None:
        for worker in self.workers.values():
            worker.start()
        self.started = True

    def wake(self) -> None:
        """After a check pass: post what changed soon, off the caller's thread."""
        for worker in self.workers.values():
            worker.wake()

    def flush(self) -> None:
        """One full round of every channel now, in parallel, waited for at most
        `notify_timeout` in all (run --once posts before it exits; a round still under way
        then is a daemon thread's, which does not hold up the exit)."""
        threads = [
            threading.Thread(target=w.round, name=f"alertmanager-{n}", daemon=True)
            for n, w in self.workers.items()
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + self.settings.monitor.notify_timeout.total_seconds()
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))

    def reload(self, settings: Settings, states: States) -> Hub:
        """This hub's successor for a new config, started if this one was."""
        self.close()
        new = Hub(settings, states, previous=self)
        if self.started:
            new.start()
        return new

    def close(self) -> None:
        """Stop the workers without waiting for a post under way (bounded by its timeout;
        the thread is a daemon thread)."""
        for worker in self.workers.values():
            worker.stop()
        for worker in self.workers.values():
            worker.join(0.5)
            worker.close()


class StoredStates:
    """Each line's state from the database file, on a connection of the calling thread's
    own, opened for each read: a worker thread never shares the loop's connection."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self) -> Mapping[str, LineStatus]:
        view = View.open_existing(self.path)
        if view is None:  # gone (the daemon runs on a store in memory): not "all is well"
            raise FileNotFoundError(self.path)
        try:
            return view.status()
        finally:
            view.close()


def send_test(settings: Settings, name: str) -> Outcome:
    """`notify test` on an Alertmanager channel: a test alert that resolves itself."""
    poster = Poster(name, settings, channel_redactor(settings))
    try:
        now = utcnow()
        return poster.post([test_alert(settings.channels[name], now).postable(now + TEST_LIFETIME)])
    finally:
        poster.close()
