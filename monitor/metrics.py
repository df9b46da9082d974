"""An optional Prometheus endpoint: per-line gauges, the daemon's health and its counters.

The daemon owns the database and the store is not shared across threads, so scrapes never
use it: after each pass the main loop builds an immutable `Snapshot` (and refreshes its
pending count after each delivery) and a scrape, on the HTTP server's threads, reads the
latest one, the process's `counters` as they are, and the pending count anew on a
read-only connection of its own (delivery threads change it between passes). Per-line
series carry the line id alone (and the currency or state where that is what they
measure); what describes a line (label, account, provider) is on one
`esim_monitor_line_info` series per line, so a renamed label neither breaks a series nor
is repeated on every sample. Never a URL or a token.

The per-line text is written here, once per snapshot (`line_text`, `Exposition`);
`prometheus_client` writes the few other families and is imported only when an endpoint
starts: a daemon without `[monitor] metrics` never loads it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import socket
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any, TypeVar
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from monitor import __version__
from monitor.config import Settings
from monitor.counters import CHECK_RESULTS, COUNTERS, DELIVERY_RESULTS, Counters, Counts
from monitor.errors import MonitorError
from monitor.model import EVENT_TYPES
from monitor.store.views import LineStatus
from monitor.units import parse_address

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

PREFIX = "esim_monitor"
STATES = ("unknown", "ok", "warning", "critical")
INFO_LABELS = ("label", "account", "provider")
"""What `esim_monitor_line_info` says of a line beside its id."""
GZIP_LEVEL = 1
"""zlib's fastest: 10,000 lines' 8 MB become 0.45 MB (0.40 MB at the default level, for
several times the CPU, on the GIL the checks share)."""
K = TypeVar("K")


class MetricsError(MonitorError):
    """The metrics endpoint could not be started (address in use, say)."""


@dataclass(frozen=True)
class LineSnapshot:
    """What Prometheus sees of one line; None figures are left out, not reported as zero.
    `label`, `account` and `provider` describe the line: they go on its info series only."""

    line: str
    label: str
    account: str = ""
    provider: str = ""
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
    channels: Sequence[str] = ()
    """The configured channels: their delivery counters are exported from zero."""

    def with_pending(self, pending: int) -> Snapshot:
        """The same snapshot with the outbox's pending count as it is now (after a delivery)."""
        return dataclasses.replace(
            self, health=dataclasses.replace(self.health, pending_alerts=pending)
        )


SnapshotSource = Callable[[], Snapshot]


def line_snapshots(status: Mapping[str, LineStatus], settings: Settings) -> list[LineSnapshot]:
    """Snapshots of the configured lines from `Store.status()`.

    A configured line the database does not know yet is reported as unknown.
    """
    lines = []
    for line_id, line in settings.lines.items():
        known = status.get(line_id) or LineStatus(line_id)
        lines.append(
            LineSnapshot(
                line=line_id,
                label=settings.label(line_id),
                account=line.account or "",
                provider=settings.adapter_name(line_id),
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


LINE_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("info", "gauge", "What describes a line (label, account, provider): join on line"),
    ("balance", "gauge", "Balance in the line's currency"),
    ("data_remaining_bytes", "gauge", "Data left on the plan"),
    ("data_total_bytes", "gauge", "Data the plan started with"),
    ("expiry_timestamp_seconds", "gauge", "When the plan or line expires"),
    ("state", "gauge", "1 for the line's current state, 0 for the others"),
    ("last_check_timestamp_seconds", "gauge", "When the line was last checked"),
    ("last_success_timestamp_seconds", "gauge", "Last successful reading"),
    ("consecutive_failures", "gauge", "Failed checks in a row"),
)
"""The per-line families `esim_monitor_line_NAME`: (name, type, help)."""


def line_text(lines: Sequence[LineSnapshot]) -> str:
    """The per-line families in the text format (0.0.4), written here rather than through
    prometheus_client's objects: for 10,000 lines (120,000 samples) its per-sample label
    validation and escaping took a second a scrape, on the GIL the checks need too."""
    rows: dict[str, list[str]] = {name: [] for name, _, _ in LINE_FAMILIES}
    for line in lines:
        key = f'line="{_escape(line.line)}"'
        described = "".join(f',{k}="{_escape(v)}"' for k, v in _descriptive(line).items())
        rows["info"].append(f"{{{key}{described}}} 1")
        if line.balance is not None:
            currency = _escape(line.currency or "")
            rows["balance"].append(f'{{{key},currency="{currency}"}} {_number(line.balance)}')
        figures = (
            ("data_remaining_bytes", line.data_remaining_bytes),
            ("data_total_bytes", line.data_total_bytes),
            ("expiry_timestamp_seconds", _seconds(line.expires_at)),
        )
        for name, value in figures:
            if value is not None:
                rows[name].append(f"{{{key}}} {_number(value)}")
        current = line.state if line.state in STATES else "unknown"
        rows["state"].extend(
            f'{{{key},state="{name}"}} {1 if name == current else 0}' for name in STATES
        )
        for name, value in (
            ("last_check_timestamp_seconds", _seconds(line.last_check_at)),
            ("last_success_timestamp_seconds", _seconds(line.last_success_at)),
        ):
            if value is not None:
                rows[name].append(f"{{{key}}} {_number(value)}")
        rows["consecutive_failures"].append(f"{{{key}}} {line.consecutive_failures}")
    out = []
    for name, kind, doc in LINE_FAMILIES:
        metric = f"{PREFIX}_line_{name}"
        out.append(f"# HELP {metric} {doc}\n# TYPE {metric} {kind}\n")
        out.extend(f"{metric}{row}\n" for row in rows[name])
    return "".join(out)


def _escape(value: str) -> str:
    """A label value as the text format writes it."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def _number(value: Decimal | float | int) -> str:
    if isinstance(value, int):
        return str(value)
    number = float(value)
    if math.isfinite(number):
        return repr(number)
    return "NaN" if math.isnan(number) else ("+Inf" if number > 0 else "-Inf")


def _seconds(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def families(snapshot: Snapshot, counters: Counts) -> Iterable[Metric]:
    """The daemon's own families: its version, health and counters (a few series)."""
    from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

    yield InfoMetricFamily(f"{PREFIX}_build", "esim-monitor version", {"version": __version__})
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
    yield from counter_families(counters, snapshot.channels)


def _descriptive(line: LineSnapshot) -> dict[str, str]:
    return {name: getattr(line, name) for name in INFO_LABELS}


def counter_families(counts: Counts, channels: Sequence[str]) -> Iterable[Metric]:
    """The `_total` counters. Every known label value is exported from zero, so `rate()`
    sees the first increase and an alert on `increase(...[1h]) > 0` has a series to read."""
    from prometheus_client.core import CounterMetricFamily

    checks = CounterMetricFamily(
        f"{PREFIX}_checks", "Checks done since the daemon started, by result", labels=["result"]
    )
    for result in _known(CHECK_RESULTS, counts.checks):
        checks.add_metric([result], counts.checks.get(result, 0))
    events = CounterMetricFamily(
        f"{PREFIX}_events", "Events raised since the daemon started, by type", labels=["type"]
    )
    for kind in _known(EVENT_TYPES, counts.events):
        events.add_metric([kind], counts.events.get(kind, 0))
    deliveries = CounterMetricFamily(
        f"{PREFIX}_deliveries",
        "Alert deliveries since the daemon started, by channel and result (sent; failed: "
        "each failed attempt; dropped: its channel left the config)",
        labels=["channel", "result"],
    )
    known = [(c, r) for c in channels for r in DELIVERY_RESULTS]
    for channel, result in _known(known, counts.deliveries):
        deliveries.add_metric([channel, result], counts.deliveries.get((channel, result), 0))
    return checks, events, deliveries


def _known(known: Iterable[K], counted: Mapping[K, int]) -> list[K]:
    """The known keys in their order, then any others counted, in the order counted."""
    keys = list(dict.fromkeys(known))
    seen = set(keys)
    return keys + [k for k in counted if k not in seen]


class Exposition:
    """What a scrape gets. The per-line text is written once per snapshot (and gzipped once,
    when a scraper asks for gzip): the compressor's state after it is kept, so a gzipped
    scrape compresses only the few families written anew each time (process figures, health,
    counters) and is still one gzip stream."""

    def __init__(
        self,
        source: SnapshotSource,
        counters: Counters = COUNTERS,
        pending: Callable[[], int] | None = None,
    ) -> None:
        from prometheus_client import (
            CollectorRegistry,
            GCCollector,
            PlatformCollector,
            ProcessCollector,
        )

        self.source = source
        self.counters = counters
        self.pending = pending
        self._process = CollectorRegistry()
        ProcessCollector(registry=self._process)
        PlatformCollector(registry=self._process)
        GCCollector(registry=self._process)
        self._lock = threading.Lock()
        self._lines: Sequence[LineSnapshot] | None = None
        self._text = b""
        self._packer: zlib._Compress | None = None
        self._packed = b""

    def render(self, gzipped: bool = False) -> bytes:
        from prometheus_client import generate_latest

        snapshot = self.source()
        if self.pending is not None:
            # the database cannot be read: the loop's last figure stands
            with contextlib.suppress(MonitorError):
                snapshot = snapshot.with_pending(self.pending())
        text, packed, packer = self._per_line(snapshot.lines, gzipped)
        rest = generate_latest(_Families(self._process, snapshot, self.counters.counts()))
        if packer is None:
            return text + rest
        return packed + packer.compress(rest) + packer.flush()

    def _per_line(
        self, lines: Sequence[LineSnapshot], gzipped: bool
    ) -> tuple[bytes, bytes, zlib._Compress | None]:
        with self._lock:
            if self._lines is not lines:
                self._lines, self._text = lines, line_text(lines).encode()
                self._packer = None
            if not gzipped:
                return self._text, b"", None
            if self._packer is None:
                self._packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
                self._packed = self._packer.compress(self._text)
            return self._text, self._packed, self._packer.copy()


@dataclass(frozen=True)
class _Families:
    """One scrape's families for prometheus_client's writer: the process's, then ours."""

    process: CollectorRegistry
    snapshot: Snapshot
    counts: Counts

    def collect(self) -> Iterable[Metric]:
        yield from self.process.collect()
        yield from families(self.snapshot, self.counts)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class MetricsServer:
    """The endpoint, served on a daemon thread; `stop()` ends it."""

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


def start(
    address: str,
    source: SnapshotSource,
    counters: Counters = COUNTERS,
    pending: Callable[[], int] | None = None,
) -> MetricsServer:
    """Serve `source`'s snapshots and the `counters` at http://ADDRESS/metrics (any path, as
    prometheus_client's server did); MetricsError if it cannot bind. `pending`, when given,
    reads the pending count at each scrape (a MonitorError: the snapshot's figure stands).

    Process metrics appear where /proc allows; under the unit's ProcSubset=pid they are
    left out. Each endpoint has its own collectors, so a reload starts a fresh one.
    """
    from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

    exposition = Exposition(source, counters, pending)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        gzipped = "gzip" in environ.get("HTTP_ACCEPT_ENCODING", "")
        body = exposition.render(gzipped)
        headers = [("Content-Type", CONTENT_TYPE_PLAIN_0_0_4), ("Content-Length", str(len(body)))]
        if gzipped:
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [body]

    host, port = parse_address(address)
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        server = type("_Bound", (_Server,), {"address_family": family[0][0]})
        httpd = make_server(host, port, app, server, handler_class=_Quiet)
    except OSError as exc:
        raise MetricsError(f"cannot serve metrics on {address}: {exc.strerror or exc}") from None
    thread = threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True)
    thread.start()
    return MetricsServer(httpd, thread)
