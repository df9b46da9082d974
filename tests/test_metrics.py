"""The Prometheus endpoint scraped over loopback, and the snapshot it is fed."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor import metrics
from monitor.cli import load_settings
from monitor.config import Settings
from monitor.counters import Counters
from monitor.daemon import Daemon
from monitor.errors import DatabaseUnusable
from monitor.model import EVENT_TYPES, Level, utcnow
from monitor.store import Store
from monitor.store.views import LineStatus

EXPIRES = datetime(2026, 12, 31, 12, 0, tzinfo=UTC)
CHECKED = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def sample_snapshot() -> metrics.Snapshot:
    return metrics.Snapshot(
        lines=[
            metrics.LineSnapshot(
                line="travel",
                label='US "travel" eSIM\\',
                account="airalo-main",
                provider="airalo",
                state="warning",
                balance=Decimal("4.50"),
                currency="USD",
                data_remaining_bytes=2_000_000_000,
                data_total_bytes=3_000_000_000,
                expires_at=EXPIRES,
                last_check_at=CHECKED,
                last_success_at=CHECKED,
            ),
            metrics.LineSnapshot(line="tmo", label="tmo", provider="ussd", consecutive_failures=3),
        ],
        health=metrics.Health(last_cycle_seconds=1.25, last_cycle_at=CHECKED, pending_alerts=2),
        channels=("phone", "mail"),
    )


Endpoint = tuple[metrics.MetricsServer, list[metrics.Snapshot]]


@pytest.fixture(scope="module")
def running() -> Iterator[Endpoint]:
    """One endpoint on a free loopback port for the module (stopping one takes half a second)."""
    latest = [metrics.Snapshot()]
    server = metrics.start("127.0.0.1:0", lambda: latest[0])
    yield server, latest
    server.stop()


@pytest.fixture
def endpoint(running: Endpoint) -> Endpoint:
    """The endpoint serving an empty snapshot; the test swaps in the one it wants."""
    running[1][0] = metrics.Snapshot()
    return running


def scrape_text(server: metrics.MetricsServer) -> str:
    host, port = server.address
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def scrape(server: metrics.MetricsServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scrape_text(server))
        for s in family.samples
    }


def line_labels(line: str, **extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"line": line, **extra}.items()))


def test_scrape_per_line_gauges_and_health(endpoint: Endpoint) -> None:
    server, latest = endpoint
    latest[0] = sample_snapshot()
    got = scrape(server)
    travel = line_labels("travel")
    assert got[("esim_monitor_line_balance", line_labels("travel", currency="USD"))] == 4.5
    assert got[("esim_monitor_line_data_remaining_bytes", travel)] == 2e9
    assert got[("esim_monitor_line_data_total_bytes", travel)] == 3e9
    assert got[("esim_monitor_line_expiry_timestamp_seconds", travel)] == EXPIRES.timestamp()
    assert got[("esim_monitor_line_last_check_timestamp_seconds", travel)] == CHECKED.timestamp()
    assert got[("esim_monitor_line_last_success_timestamp_seconds", travel)] == CHECKED.timestamp()
    assert got[("esim_monitor_line_consecutive_failures", travel)] == 0
    states = {
        state: got[("esim_monitor_line_state", line_labels("travel", state=state))]
        for state in metrics.STATES
    }
    assert states == {"unknown": 0, "ok": 0, "warning": 1, "critical": 0}
    assert got[("esim_monitor_last_cycle_duration_seconds", ())] == 1.25
    assert got[("esim_monitor_last_cycle_timestamp_seconds", ())] == CHECKED.timestamp()
    assert got[("esim_monitor_pending_alerts", ())] == 2
    assert got[("esim_monitor_lines", ())] == 2
    assert got[("esim_monitor_build_info", (("version", metrics.__version__),))] == 1


def test_unknown_figures_are_absent_not_zero(endpoint: Endpoint) -> None:
    server, latest = endpoint
    latest[0] = sample_snapshot()
    got = scrape(server)
    tmo = line_labels("tmo")
    names = {name for name, labels in got if dict(labels).get("line") == "tmo"}
    assert names == {
        "esim_monitor_line_info",
        "esim_monitor_line_state",
        "esim_monitor_line_consecutive_failures",
    }
    assert got[("esim_monitor_line_consecutive_failures", tmo)] == 3
    assert got[("esim_monitor_line_state", line_labels("tmo", state="unknown"))] == 1


def test_before_the_first_cycle(endpoint: Endpoint) -> None:
    server, _ = endpoint
    got = scrape(server)
    assert got[("esim_monitor_pending_alerts", ())] == 0
    assert ("esim_monitor_last_cycle_duration_seconds", ()) not in got


def test_each_scrape_reads_the_latest_snapshot(endpoint: Endpoint) -> None:
    server, latest = endpoint
    assert scrape(server)[("esim_monitor_lines", ())] == 0
    latest[0] = sample_snapshot()
    assert scrape(server)[("esim_monitor_lines", ())] == 2


def test_what_describes_a_line_is_on_its_info_series_alone(endpoint: Endpoint) -> None:
    """Per-line series carry the line id (and the currency or state they measure): a
    renamed label starts no new series, and 10,000 lines do not repeat their labels on
    eleven series each (issue 14.6). The info series holds the label as written."""
    server, latest = endpoint
    latest[0] = sample_snapshot()
    got = scrape(server)
    info = {
        dict(labels)["line"]: dict(labels)
        for name, labels in got
        if name == "esim_monitor_line_info"
    }
    assert info == {
        "travel": {
            "line": "travel",
            "label": 'US "travel" eSIM\\',
            "account": "airalo-main",
            "provider": "airalo",
        },
        "tmo": {"line": "tmo", "label": "tmo", "account": "", "provider": "ussd"},
    }
    assert all(
        got[("esim_monitor_line_info", tuple(sorted(i.items())))] == 1 for i in info.values()
    )
    for name, labels in got:
        if name.startswith("esim_monitor_line_") and name != "esim_monitor_line_info":
            assert {key for key, _ in labels} <= {"line", "currency", "state"}, name


SAMPLE = re.compile(r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^\n]*)\})? (?P<value>\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
SUFFIXES = {"counter": ("",), "gauge": ("",), "summary": ("_sum", "_count", "")}
"""The sample names a family of each type has in the text format, after its TYPE's name."""


def validate(text: str) -> dict[str, str]:
    """Check the text format (0.0.4) strictly, as Prometheus reads it: HELP and TYPE once
    per family, before its samples, which come together; names and label pairs well formed,
    values floats, no series twice. Returns each family's type."""
    types: dict[str, str] = {}
    helped: set[str] = set()
    series: set[tuple[str, str]] = set()
    current = None
    done: set[str] = set()
    assert text.endswith("\n")
    for row in text.splitlines():
        if row.startswith("# HELP "):
            name = row.split(" ", 3)[2]
            assert name not in helped, row
            helped.add(name)
            continue
        if row.startswith("# TYPE "):
            _, _, name, kind = row.split(" ")
            assert name in helped and name not in types and name not in done, row
            types[name] = kind
            assert (kind == "counter") == name.endswith("_total"), row
            if current is not None:
                done.add(current)
            current = name
            continue
        match = SAMPLE.fullmatch(row)
        assert match, row
        assert current is not None and types[current] in SUFFIXES, row
        assert any(match["name"] == current + end for end in SUFFIXES[types[current]]), row
        labels = match["labels"] or ""
        pairs = [m.group(1) for m in LABEL.finditer(labels)]
        assert "".join(m.group(0) for m in LABEL.finditer(labels)) == labels, row
        assert len(pairs) == len(set(pairs)), row
        float(match["value"])
        assert (match["name"], labels) not in series, row
        series.add((match["name"], labels))
    return types


@pytest.fixture
def counting() -> Iterator[tuple[metrics.MetricsServer, Counters]]:
    """An endpoint on counters of its own, serving the sample snapshot."""
    counters = Counters()
    server = metrics.start("127.0.0.1:0", sample_snapshot, counters)
    yield server, counters
    server.stop()


def test_counters_start_at_zero_and_count_live(
    counting: tuple[metrics.MetricsServer, Counters],
) -> None:
    """`rate()` alerting needs counters (issue 14.6): every known result, event type and
    configured channel is there from the start, and a scrape reads the counts as they are
    now, not as they were at the last snapshot."""
    server, counters = counting
    text = scrape_text(server)
    types = validate(text)
    for name in ("checks", "events", "deliveries"):
        assert types[f"esim_monitor_{name}_total"] == "counter"
        assert f"# HELP esim_monitor_{name}_total " in text
    got = scrape(server)
    assert {labels: v for (n, labels), v in got.items() if n == "esim_monitor_checks_total"} == {
        (("result", "ok"),): 0,
        (("result", "failed"),): 0,
        (("result", "skipped"),): 0,
    }
    events = {dict(labels)["type"] for n, labels in got if n == "esim_monitor_events_total"}
    assert events == set(EVENT_TYPES)
    deliveries = {
        tuple(dict(labels).values()) for n, labels in got if n == "esim_monitor_deliveries_total"
    }
    assert deliveries == {(c, r) for c in ("phone", "mail") for r in ("sent", "failed", "dropped")}

    counters.check("ok")
    counters.check("ok")
    counters.check("skipped")
    counters.event("critical", 3)
    counters.delivery("phone", "sent", 2)
    counters.delivery("gone", "dropped")  # a channel no longer configured keeps its count
    got = scrape(server)
    assert got[("esim_monitor_checks_total", (("result", "ok"),))] == 2
    assert got[("esim_monitor_checks_total", (("result", "skipped"),))] == 1
    assert got[("esim_monitor_events_total", (("type", "critical"),))] == 3
    phone = (("channel", "phone"), ("result", "sent"))
    assert got[("esim_monitor_deliveries_total", phone)] == 2
    gone = (("channel", "gone"), ("result", "dropped"))
    assert got[("esim_monitor_deliveries_total", gone)] == 1
    validate(scrape_text(server))


def test_the_exposition_of_many_lines_is_well_formed(endpoint: Endpoint) -> None:
    """Labels with quotes, backslashes and newlines, lines without figures, unknown
    states: all of it in the strict text format, each family once."""
    server, latest = endpoint
    odd = [
        metrics.LineSnapshot(line=f"l{i}", label=f'a "b"\\ c\nd {i}', state="weird")
        for i in range(50)
    ]
    latest[0] = metrics.Snapshot(
        [*sample_snapshot().lines, *odd], sample_snapshot().health, ("phone",)
    )
    types = validate(scrape_text(server))
    assert types["esim_monitor_line_info"] == "gauge"
    assert scrape(server)[("esim_monitor_line_state", line_labels("l7", state="unknown"))] == 1


def steady(text: str) -> list[str]:
    """A scrape without the process's own figures, which move between two scrapes."""
    return [row for row in text.splitlines() if not row.startswith(("process_", "python_gc"))]


def test_gzip_is_one_stream_of_the_same_text_and_follows_the_snapshot(
    endpoint: Endpoint,
) -> None:
    """Prometheus asks for gzip: the per-line text is compressed once per snapshot and the
    rest after it, into one gzip member (any client reads it), for each new snapshot."""
    server, latest = endpoint
    host, port = server.address
    for snapshot in (sample_snapshot(), metrics.Snapshot([metrics.LineSnapshot("x", "x")])):
        latest[0] = snapshot
        for _ in range(2):  # the second from what was kept
            request = urllib.request.Request(
                f"http://{host}:{port}/metrics", headers={"Accept-Encoding": "gzip"}
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.headers["Content-Encoding"] == "gzip"
                assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                packed = response.read()
            unpacker = zlib.decompressobj(16 + zlib.MAX_WBITS)
            text = unpacker.decompress(packed).decode()
            assert unpacker.eof and unpacker.unused_data == b""
            assert steady(text) == steady(scrape_text(server))
            validate(text)
    assert 'esim_monitor_line_info{line="x",label="x",account="",provider=""} 1' in text
    assert 'line="travel"' not in text


def test_stop_frees_the_port() -> None:
    server = metrics.start("127.0.0.1:0", metrics.Snapshot)
    host, port = server.address
    server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5)


def test_address_in_use_is_a_metrics_error(endpoint: Endpoint) -> None:
    server, _ = endpoint
    host, port = server.address
    with pytest.raises(metrics.MetricsError, match="cannot serve metrics"):
        metrics.start(f"{host}:{port}", metrics.Snapshot)


def test_line_snapshots_from_store_status() -> None:
    status = {
        "travel": LineStatus(
            "travel",
            level=Level.CRITICAL,
            checked_at=CHECKED,
            last_success_at=CHECKED,
            failures=0,
            balance=Decimal("1.20"),
            currency="EUR",
            data_remaining=5,
            data_total=10,
            expires_at=EXPIRES,
        ),
        "gone": LineStatus("gone", level=Level.OK),
    }
    settings = Settings(
        accounts={"main": {"provider": "airalo", "client_id": "x", "client_secret": "y"}},
        lines={"travel": {"account": "main", "label": "Travel"}, "new": {"adapter": "demo"}},
    )
    lines = metrics.line_snapshots(status, settings)
    assert lines == [
        metrics.LineSnapshot(
            line="travel",
            label="Travel",
            account="main",
            provider="airalo",
            state="critical",
            balance=Decimal("1.20"),
            currency="EUR",
            data_remaining_bytes=5,
            data_total_bytes=10,
            expires_at=EXPIRES,
            last_check_at=CHECKED,
            last_success_at=CHECKED,
        ),
        metrics.LineSnapshot(line="new", label="new", provider="demo"),
    ]


def test_pending_alerts_is_read_after_delivery(
    write_config: Callable[..., Path], sink: Any, recorder: list[dict[str, Any]]
) -> None:
    """The snapshot was built before the pass's alerts went out, so the gauge showed them
    pending until the next check (issue 14.6): it is read again after each delivery."""
    settings = load_settings(
        write_config(
            '[monitor]\ninterval = "1h"\n[defaults.thresholds]\nbalance_critical = 5\n'
            f'[channels.up]\nurl = "{sink.url}"\n[channels.down]\nurl = "record://fail"\n'
            '[lines.low]\nadapter = "demo"\nbalance = 3\n'
        )
    )
    daemon = Daemon(settings, reload=lambda: settings)
    try:
        daemon.run_once()
        assert len(sink.received) == 1
        assert [m["host"] for m in recorder] == ["fail"]
        assert daemon.snapshot.health.pending_alerts == 1  # the failed one, waiting to retry
        assert [line.label for line in daemon.snapshot.lines] == ["low"]
        assert daemon.snapshot.channels == ("up", "down")
        # a delivery thread sends it between the loop's passes: a scrape reads it anew
        server = metrics.start(
            "127.0.0.1:0", lambda: daemon.snapshot, pending=daemon.pending_alerts
        )
        try:
            assert scrape(server)[("esim_monitor_pending_alerts", ())] == 1
            worker = Store.open(settings.database_path())
            (row,) = worker.due_deliveries(utcnow() + timedelta(hours=1))
            worker.delivered(row.id, utcnow())
            worker.close()
            assert scrape(server)[("esim_monitor_pending_alerts", ())] == 0
            assert daemon.snapshot.health.pending_alerts == 1  # the loop has not passed since
        finally:
            server.stop()
    finally:
        daemon.close()


def test_a_pending_count_that_cannot_be_read_leaves_the_snapshots() -> None:
    """On the store in memory (the file unusable) the endpoint shows the loop's figure."""

    def unreadable() -> int:
        raise DatabaseUnusable("history.db vanished")

    flaky = metrics.start("127.0.0.1:0", sample_snapshot, pending=unreadable)
    try:
        assert scrape(flaky)[("esim_monitor_pending_alerts", ())] == 2
    finally:
        flaky.stop()
