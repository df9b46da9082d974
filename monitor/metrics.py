"""An optional Prometheus endpoint: per-line gauges and the daemon's health.

The daemon owns the database and the store is not shared across threads, so scrapes never
query it: after each pass the main loop builds an immutable `Snapshot` and the collector,
on the HTTP server's thread, only reads the latest one. Labels carry the line id, its label
and its currency, never a URL, account or token.

`prometheus_client` is imported here only: a daemon without `[monitor] metrics` never loads it.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from monitor import __version__
from monitor.errors import MonitorError
from monitor.store.views import LineStatus

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.metrics_core import Metric

PREFIX = "esim_monitor"
STATES = ("unknown", "ok", "warning", "critical")
DEFAULT_HOST = "127.0.0.1"


class MetricsError(MonitorError):
    """The metrics endpoint could not be started (address in use, say)."""


@dataclass(frozen=True)
class LineSnapshot:
    """What Prometheus sees of one line; None figures are left out, not reported as zero."""

    line: str
    label: str
    state: str = "unknown"
    balance: Decimal | float | None = None
    currency: str | None = None
    data_remaining_bytes: int | None = None
    data_total_bytes: int | None = None
    expires_at: datetime | None = None
    last_check_at: datetime | None = None
    last_success_at: datetime | None = None
    consecutive_failures: int = 0


@dataclass(frozen=True)
class Health:
    """The daemon's own figures; None until the first cycle has completed."""

    last_cycle_seconds: float | None = None
    last_cycle_at: datetime | None = None
    pending_alerts: int = 0


@dataclass(frozen=True)
class Snapshot:
    lines: Sequence[LineSnapshot] = ()
    health: Health = field(default_factory=Health)


SnapshotSource = Callable[[], Snapshot]


def line_snapshots(
    status: Mapping[str, LineStatus], labels: Mapping[str, str]
) -> list[LineSnapshot]:
    """Snapshots of the configured lines (`labels`: id -> label) from `Store.status()`.

    A configured line the database does not know yet is reported as unknown.
    """
    lines = []
    for line_id, label in labels.items():
        known = status.get(line_id) or LineStatus(line_id)
        lines.append(
            LineSnapshot(
                line=line_id,
                label=label,
                state=known.state,
                balance=known.balance,
                currency=known.currency,
                data_remaining_bytes=known.data_remaining,
                data_total_bytes=known.data_total,
                expires_at=known.expires_at,
                last_check_at=known.checked_at,
                last_success_at=known.last_success_at,
                consecutive_failures=known.failures,
            )
        )
    return lines


class SnapshotCollector:
    """A prometheus_client collector that turns the latest snapshot into metric families."""

    def __init__(self, source: SnapshotSource) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

        snapshot = self.source()
        yield InfoMetricFamily(f"{PREFIX}_build", "esim-monitor version", {"version": __version__})

        def line_gauge(name: str, doc: str, extra: Sequence[str] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"{PREFIX}_line_{name}", doc, labels=["line", "label", *extra])

        balance = line_gauge("balance", "Balance in the line's currency", ["currency"])
        remaining = line_gauge("data_remaining_bytes", "Data left on the plan")
        total = line_gauge("data_total_bytes", "Data the plan started with")
        expiry = line_gauge("expiry_timestamp_seconds", "When the plan or line expires")
        state = line_gauge("state", "1 for the line's current state, 0 for the others", ["state"])
        checked = line_gauge("last_check_timestamp_seconds", "When the line was last checked")
        success = line_gauge("last_success_timestamp_seconds", "Last successful reading")
        failures = line_gauge("consecutive_failures", "Failed checks in a row")
        for line in snapshot.lines:
            key = [line.line, line.label]
            if line.balance is not None:
                balance.add_metric([*key, line.currency or ""], float(line.balance))
            if line.data_remaining_bytes is not None:
                remaining.add_metric(key, line.data_remaining_bytes)
            if line.data_total_bytes is not None:
                total.add_metric(key, line.data_total_bytes)
            if line.expires_at is not None:
                expiry.add_metric(key, line.expires_at.timestamp())
            current = line.state if line.state in STATES else "unknown"
            for name in STATES:
                state.add_metric([*key, name], 1 if name == current else 0)
            if line.last_check_at is not None:
                checked.add_metric(key, line.last_check_at.timestamp())
            if line.last_success_at is not None:
                success.add_metric(key, line.last_success_at.timestamp())
            failures.add_metric(key, line.consecutive_failures)
        yield from (balance, remaining, total, expiry, state, checked, success, failures)

        health = snapshot.health
        yield GaugeMetricFamily(f"{PREFIX}_lines", "Lines configured", value=len(snapshot.lines))
        yield GaugeMetricFamily(
            f"{PREFIX}_pending_alerts",
            "Alert deliveries waiting in the outbox",
            value=health.pending_alerts,
        )
        if health.last_cycle_seconds is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_last_cycle_duration_seconds",
                "How long the last completed cycle took",
                value=health.last_cycle_seconds,
            )
        if health.last_cycle_at is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_last_cycle_timestamp_seconds",
                "When the last cycle completed",
                value=health.last_cycle_at.timestamp(),
            )


def parse_address(text: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or a bare port (on 127.0.0.1); ValueError says what is wrong.

    Meant for the config validator of `[monitor] metrics` as well as for `start`.
    """
    text = text.strip()
    if text.isdigit():
        host, port_text = DEFAULT_HOST, text
    elif text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"expected '[address]:port', got {text!r}")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"not an IPv6 address: {host!r}") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"expected 'host:port' such as '127.0.0.1:9464', got {text!r}")
        if ":" in host:
            raise ValueError(f"write an IPv6 address in brackets: '[{host}]:{port_text}'")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"port must be a number from 0 to 65535, got {port_text!r}")
    return host, int(port_text)


class MetricsServer:
    """The endpoint, served by prometheus_client on a daemon thread; `stop()` ends it."""

    def __init__(self, httpd: WSGIServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def start(address: str, source: SnapshotSource) -> MetricsServer:
    """Serve `source`'s snapshots at http://ADDRESS/metrics; MetricsError if it cannot bind.

    A private registry keeps the metrics of one daemon apart from any other code in the
    process (and lets a reload start a fresh endpoint). Process metrics appear where /proc
    allows; under the unit's ProcSubset=pid they are left out.
    """
    from prometheus_client import (
        CollectorRegistry,
        GCCollector,
        PlatformCollector,
        ProcessCollector,
        start_http_server,
    )

    host, port = parse_address(address)
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(SnapshotCollector(source))
    try:
        httpd, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise MetricsError(f"cannot serve metrics on {address}: {exc.strerror or exc}") from None
    return MetricsServer(httpd, thread)
