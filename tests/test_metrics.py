"""The Prometheus endpoint scraped over loopback, and the snapshot it is fed."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor import metrics
from monitor.model import Level
from monitor.store.views import LineStatus

EXPIRES = datetime(2026, 12, 31, 12, 0, tzinfo=UTC)
CHECKED = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def sample_snapshot() -> metrics.Snapshot:
    return metrics.Snapshot(
        lines=[
            metrics.LineSnapshot(
                line="travel",
                label="US travel eSIM",
                state="warning",
                balance=Decimal("4.50"),
                currency="USD",
                data_remaining_bytes=2_000_000_000,
                data_total_bytes=3_000_000_000,
                expires_at=EXPIRES,
                last_check_at=CHECKED,
                last_success_at=CHECKED,
            ),
            metrics.LineSnapshot(line="tmo", label="tmo", consecutive_failures=3),
        ],
        health=metrics.Health(last_cycle_seconds=1.25, last_cycle_at=CHECKED, pending_alerts=2),
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


def scrape(server: metrics.MetricsServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    host, port = server.address
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def line_labels(line: str, label: str, **extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"line": line, "label": label, **extra}.items()))


def test_scrape_per_line_gauges_and_health(endpoint: Endpoint) -> None:
    server, latest = endpoint
    latest[0] = sample_snapshot()
    got = scrape(server)
    travel = line_labels("travel", "US travel eSIM")
    assert (
        got[("esim_monitor_line_balance", line_labels("travel", "US travel eSIM", currency="USD"))]
        == 4.5
    )
    assert got[("esim_monitor_line_data_remaining_bytes", travel)] == 2e9
    assert got[("esim_monitor_line_data_total_bytes", travel)] == 3e9
    assert got[("esim_monitor_line_expiry_timestamp_seconds", travel)] == EXPIRES.timestamp()
    assert got[("esim_monitor_line_last_check_timestamp_seconds", travel)] == CHECKED.timestamp()
    assert got[("esim_monitor_line_last_success_timestamp_seconds", travel)] == CHECKED.timestamp()
    assert got[("esim_monitor_line_consecutive_failures", travel)] == 0
    states = {
        state: got[
            ("esim_monitor_line_state", line_labels("travel", "US travel eSIM", state=state))
        ]
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
    tmo = line_labels("tmo", "tmo")
    names = {name for name, labels in got if dict(labels).get("line") == "tmo"}
    assert names == {"esim_monitor_line_state", "esim_monitor_line_consecutive_failures"}
    assert got[("esim_monitor_line_consecutive_failures", tmo)] == 3
    assert got[("esim_monitor_line_state", line_labels("tmo", "tmo", state="unknown"))] == 1


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


def test_labels_are_line_id_label_currency_and_state_only(endpoint: Endpoint) -> None:
    server, latest = endpoint
    latest[0] = sample_snapshot()
    for name, labels in scrape(server):
        if name.startswith("esim_monitor_line_"):
            assert {key for key, _ in labels} <= {"line", "label", "currency", "state"}


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
    lines = metrics.line_snapshots(status, {"travel": "Travel", "new": "new"})
    assert lines == [
        metrics.LineSnapshot(
            line="travel",
            label="Travel",
            state="critical",
            balance=Decimal("1.20"),
            currency="EUR",
            data_remaining_bytes=5,
            data_total_bytes=10,
            expires_at=EXPIRES,
            last_check_at=CHECKED,
            last_success_at=CHECKED,
        ),
        metrics.LineSnapshot(line="new", label="new"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("0.0.0.0:9464", ("0.0.0.0", 9464)),
        ("localhost:9464", ("localhost", 9464)),
        ("[::1]:9464", ("::1", 9464)),
        ("9464", ("127.0.0.1", 9464)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert metrics.parse_address(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("127.0.0.1", "host:port"),
        (":9464", "host:port"),
        ("::1:9464", "brackets"),
        ("[::1]9464", r"\[address\]:port"),
        ("[nope]:9464", "not an IPv6 address"),
        ("127.0.0.1:http", "port must be a number"),
        ("127.0.0.1:70000", "port must be a number"),
    ],
)
def test_parse_address_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        metrics.parse_address(text)
