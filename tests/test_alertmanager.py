"""Alertmanager channels against the real binary (Debian's prometheus-alertmanager 0.25 on
loopback): alerts appear with their labels, resolve on recovery, obey silences; auth reaches
the wire; a down Alertmanager never stalls the loop; secrets stay out of logs. The payload is
checked against Alertmanager's own api/v2/openapi.yaml (tests/contracts/, v0.25.0)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from alertmanager_server import PASSWORD, USER, Alertmanager, Recorder

from monitor import alertmanager as am
from monitor.cli import main
from monitor.config import Settings, load
from monitor.counters import COUNTERS
from monitor.model import Controls, Level
from monitor.store.views import LineStatus, View

OPENAPI = Path(__file__).parent / "contracts" / "alertmanager-openapi.yaml"
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)

LINE = """
[defaults.thresholds]
balance_warning = 10
balance_critical = 5

[lines.travel]
label = "US travel eSIM"
adapter = "demo"
balance = 3
drain = 0
payment_url = "https://pay.example/topup"
"""


def am_channel(url: str, extra: str = "") -> str:
    return f'[channels.am]\ntype = "alertmanager"\nurl = "{url}"\n{extra}\n'


def run_once(config: Path) -> int:
    return main(["--config", str(config), "run", "--once"])


def logged(err: str) -> list[dict[str, Any]]:
    """The JSON log lines a CLI run wrote to stderr."""
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def settings_of(write_config: Callable[..., Path], text: str) -> Settings:
    return load(write_config(text))


def status(line: str = "travel", **fields: Any) -> LineStatus:
    values: dict[str, Any] = {
        "level": Level.CRITICAL,
        "checked_at": NOW - timedelta(minutes=1),
        "last_success_at": NOW - timedelta(minutes=1),
        "low_since": NOW - timedelta(hours=2),
        "read_at": NOW - timedelta(minutes=1),
        "balance": Decimal("3.00"),
        "currency": "USD",
    }
    values.update(fields)
    return LineStatus(line, **values)


class States:
    """A worker's source of line states that a test sets."""

    def __init__(self, **lines: LineStatus) -> None:
        self.lines: dict[str, LineStatus] = dict(lines)

    def __call__(self) -> Mapping[str, LineStatus]:
        return dict(self.lines)


@pytest.fixture
def worker() -> Iterator[Callable[..., am.Worker]]:
    made: list[am.Worker] = []

    def make(settings: Settings, states: States, name: str = "am") -> am.Worker:
        w = am.Worker(name, settings, states, am.channel_redactor(settings))
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


# ---- the payload, against the openapi.yaml ---------------------------------------------------


def _schema(definitions: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = definitions[node["$ref"].rsplit("/", 1)[1]]
    return node


def openapi_problems(value: Any, node: dict[str, Any], defs: dict[str, Any], at: str = "") -> list:
    """The swagger 2.0 subset the alert definitions use: $ref, allOf, object (properties,
    required, additionalProperties), array, string with date-time. Stricter than the spec
    in one way: a property the schema does not name is a problem (a typo'd startsAt)."""
    node = _schema(defs, node)
    if "allOf" in node:
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in node["allOf"]:
            part = _schema(defs, part)
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
        node = merged
    kind = node.get("type")
    if kind == "array":
        if not isinstance(value, list):
            return [f"{at}: not an array"]
        return [
            p
            for i, v in enumerate(value)
            for p in openapi_problems(v, node["items"], defs, f"{at}[{i}]")
        ]
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{at}: not an object"]
        problems = [f"{at}.{k}: required" for k in node.get("required", []) if k not in value]
        if "additionalProperties" in node:
            for k, v in value.items():
                problems += openapi_problems(v, node["additionalProperties"], defs, f"{at}.{k}")
            return problems
        for k, v in value.items():
            if k not in node.get("properties", {}):
                problems.append(f"{at}.{k}: not in the schema")
            else:
                problems += openapi_problems(v, node["properties"][k], defs, f"{at}.{k}")
        return problems
    if kind == "string":
        if not isinstance(value, str):
            return [f"{at}: not a string"]
        if node.get("format") == "date-time":
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                return [f"{at}: not a date-time"]
            if parsed.tzinfo is None:
                return [f"{at}: a date-time without its offset"]
        return []
    return [f"{at}: unchecked type {kind}"]


def postable_problems(payload: Any) -> list[str]:
    spec = yaml.safe_load(OPENAPI.read_text())
    defs = spec["definitions"]
    body = next(p for p in spec["paths"]["/alerts"]["post"]["parameters"] if p["in"] == "body")
    return openapi_problems(payload, body["schema"], defs)


def test_the_payload_is_the_openapis_postable_alerts(write_config: Callable[..., Path]) -> None:
    """Both forms (active, resolved) of every kind of alert, and the test alert."""
    settings = settings_of(
        write_config,
        am_channel("http://127.0.0.1:9", 'labels = { shard = "eu-1" }')
        + LINE
        + '[lines.travel.alerts]\nexpiry_reminders = ["7d"]\nfailures_before_alert = 1\n',
    )
    line = status(failures=2, last_error="timeout", expires_at=NOW + timedelta(days=2))
    alerts = am.line_alerts(settings, "am", {"travel": line}, NOW)
    assert {dict(k)["alertname"] for k in alerts} == set(am.ALERTNAMES)
    payload = [a.postable(NOW + timedelta(minutes=4)) for a in alerts.values()]
    payload += [a.postable(NOW) for a in alerts.values()]
    payload.append(am.test_alert(settings.channels["am"], NOW).postable(NOW))
    assert postable_problems(payload) == []


def test_the_openapi_check_finds_a_broken_payload() -> None:
    """The check above can fail: a misspelt key, a number label, a missing labels, a
    date without its offset."""
    broken = [
        {"labels": {"a": "b"}, "startAt": "2026-12-03T12:00:00Z"},
        {"labels": {"a": 1}},
        {"annotations": {}},
        {"labels": {"a": "b"}, "endsAt": "2026-12-03T12:00:00"},
    ]
    assert postable_problems(broken) == [
        "[0].startAt: not in the schema",
        "[1].labels.a: not a string",
        "[2].labels: required",
        "[3].endsAt: a date-time without its offset",
    ]


# ---- which alerts a line's state gives (pure) -------------------------------------------------


def test_labels_and_annotations_of_a_low_line(write_config: Callable[..., Path]) -> None:
    settings = Settings.model_validate(
        {
            "accounts": {"acme": {"provider": "demo"}},
            "defaults": {"thresholds": {"balance_warning": 10, "balance_critical": 5}},
            "lines": {
                "travel": {
                    "account": "acme",
                    "label": "US travel",
                    "payment_url": "https://p.example",
                }
            },
            "channels": {"am": {"type": "alertmanager", "url": "http://127.0.0.1:9"}},
        }
    )
    (alert,) = am.line_alerts(settings, "am", {"travel": status()}, NOW).values()
    assert alert.labels == {
        "alertname": "EsimLineLow",
        "line": "travel",
        "account": "acme",
        "provider": "demo",
        "severity": "critical",
    }
    assert alert.annotations["summary"] == "US travel is critical: balance 3.00 USD"
    assert alert.annotations["payment_url"] == "https://p.example"
    assert alert.starts_at == NOW - timedelta(hours=2)  # the line's low_since


def test_unreadable_after_failures_before_alert_and_expiring_within_the_reminders(
    write_config: Callable[..., Path],
) -> None:
    settings = settings_of(
        write_config,
        am_channel("http://127.0.0.1:9")
        + LINE
        + '[lines.travel.alerts]\nexpiry_reminders = ["7d", "1d"]\nfailures_before_alert = 3\n',
    )
    expires = NOW + timedelta(days=5)
    two = status(level=Level.OK, low_since=None, failures=2, expires_at=NOW + timedelta(days=8))
    assert am.line_alerts(settings, "am", {"travel": two}, NOW) == {}
    three = status(
        level=Level.OK, low_since=None, failures=3, last_error="HTTP 503", expires_at=expires
    )
    alerts = {
        dict(k)["alertname"]: a
        for k, a in am.line_alerts(settings, "am", {"travel": three}, NOW).items()
    }
    assert set(alerts) == {"EsimLineUnreadable", "EsimPlanExpiring"}
    assert alerts["EsimLineUnreadable"].labels["severity"] == "warning"
    assert alerts["EsimLineUnreadable"].annotations["error"] == "HTTP 503"
    assert alerts["EsimPlanExpiring"].labels["severity"] == "info"
    assert alerts["EsimPlanExpiring"].starts_at == expires - timedelta(days=7)


def test_the_channels_lines_and_events_select_and_a_snooze_resolves(
    write_config: Callable[..., Path],
) -> None:
    settings = settings_of(
        write_config,
        am_channel("http://127.0.0.1:9", 'events = ["critical"]\nlines = ["travel"]')
        + LINE
        + '[lines.home]\nadapter = "demo"\n',
    )
    states = {"travel": status(level=Level.WARNING), "home": status("home")}
    assert am.line_alerts(settings, "am", states, NOW) == {}  # warning, and not its line
    states["travel"] = status()
    assert len(am.line_alerts(settings, "am", states, NOW)) == 1
    states["travel"] = status(controls=Controls(snoozed_until=NOW + timedelta(hours=1)))
    assert am.line_alerts(settings, "am", states, NOW) == {}
    states["travel"] = status(controls=Controls(snoozed_until=NOW - timedelta(seconds=1)))
    assert len(am.line_alerts(settings, "am", states, NOW)) == 1


# ---- against the real Alertmanager ------------------------------------------------------------


def test_a_critical_line_appears_with_its_labels_then_resolves_on_recovery(
    write_config: Callable[..., Path], alertmanager: Alertmanager
) -> None:
    """Two `run --once` (two processes' worth of daemon): the second finds the alert the
    first posted (GET /api/v2/alerts) and resolves it, the line having recovered."""
    config = write_config(
        am_channel(alertmanager.url, 'labels = { shard = "eu-1" }')
        + LINE.replace("drain = 0", "drain = -20\ncycle = 2")
    )
    assert run_once(config) == 0  # balance 3: critical
    (alert,) = alertmanager.alerts(line="travel")
    assert alert["labels"] == {
        "alertname": "EsimLineLow",
        "line": "travel",
        "provider": "demo",
        "severity": "critical",
        "shard": "eu-1",
    }
    assert alert["annotations"]["summary"] == "US travel eSIM is critical: balance 3.00 USD"
    assert alert["annotations"]["payment_url"] == "https://pay.example/topup"
    assert alert["status"]["state"] == "active"
    view = View.open_existing(config.parent / "history.db")
    assert view is not None
    low_since = view.status()["travel"].low_since
    view.close()
    assert low_since is not None
    starts = datetime.fromisoformat(alert["startsAt"])
    assert abs(starts - low_since) < timedelta(milliseconds=1)
    ends = datetime.fromisoformat(alert["endsAt"])
    assert timedelta(minutes=3) < ends - datetime.now(UTC) <= timedelta(minutes=4)  # 4 reposts
    resolved_before = alertmanager.received("resolved")
    assert run_once(config) == 0  # balance 23: ok again
    assert alertmanager.alerts(line="travel") == []  # resolved: Alertmanager lists active ones
    assert alertmanager.received("resolved") == resolved_before + 1


def test_a_worker_resolves_what_stopped_and_fires_again_after_a_snooze(
    write_config: Callable[..., Path],
    alertmanager: Alertmanager,
    worker: Callable[..., am.Worker],
) -> None:
    settings = settings_of(write_config, am_channel(alertmanager.url) + LINE)
    now = datetime.now(UTC)
    states = States(travel=status(checked_at=now, low_since=now - timedelta(hours=1)))
    w = worker(settings, states)
    assert w.round().ok
    assert [a["labels"]["severity"] for a in alertmanager.alerts(line="travel")] == ["critical"]
    states.lines["travel"] = status(
        checked_at=now,
        low_since=now - timedelta(hours=1),
        controls=Controls(snoozed_until=now + timedelta(hours=1)),
    )
    assert w.round(full=False).ok
    assert alertmanager.alerts(line="travel") == []
    states.lines["travel"] = status(checked_at=now, low_since=now - timedelta(hours=1))
    assert w.round(full=False).ok
    (alert,) = alertmanager.alerts(line="travel")
    assert alert["status"]["state"] == "active"


def test_warning_to_critical_resolves_the_warning_and_starts_the_critical_then(
    write_config: Callable[..., Path],
    alertmanager: Alertmanager,
    worker: Callable[..., am.Worker],
) -> None:
    settings = settings_of(write_config, am_channel(alertmanager.url) + LINE)
    now = datetime.now(UTC)
    since = now - timedelta(hours=3)
    states = States(travel=status(level=Level.WARNING, checked_at=since, low_since=since))
    w = worker(settings, states)
    assert w.round().ok
    states.lines["travel"] = status(checked_at=now, low_since=since)
    assert w.round(full=False).ok
    (alert,) = alertmanager.alerts(line="travel")
    assert alert["labels"]["severity"] == "critical"
    starts = datetime.fromisoformat(alert["startsAt"])
    assert abs(starts - now) < timedelta(milliseconds=1)  # when it turned critical


def test_a_silence_in_alertmanager_suppresses_the_alert(
    write_config: Callable[..., Path], alertmanager: Alertmanager
) -> None:
    config = write_config(am_channel(alertmanager.url) + LINE)
    assert run_once(config) == 0
    assert alertmanager.alerts(line="travel")[0]["status"]["state"] == "active"
    silence = alertmanager.silence(line="travel", alertname="EsimLineLow")
    assert run_once(config) == 0  # re-posted: still silenced
    (alert,) = alertmanager.alerts(line="travel")
    assert alert["status"]["state"] == "suppressed"
    assert alert["status"]["silencedBy"] == [silence]


def test_basic_auth_reaches_alertmanager_and_a_wrong_password_is_logged_redacted(
    write_config: Callable[..., Path],
    alertmanager_with_auth: Alertmanager,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wrong = write_config(
        am_channel(alertmanager_with_auth.url, f'user = "{USER}"\npassword = "wrong-password-x9"')
        + LINE,
        name="wrong.toml",
    )
    capsys.readouterr()
    assert run_once(wrong) == 0
    out, err = capsys.readouterr()
    failed = [e for e in logged(err) if e["event"].startswith("alertmanager post failed")]
    assert failed and failed[0]["level"] == "warning" and "HTTP 401" in failed[0]["error"]
    assert alertmanager_with_auth.alerts() == []
    assert "wrong-password-x9" not in out + err
    right = write_config(
        am_channel(alertmanager_with_auth.url, f'user = "{USER}"\npassword = "{PASSWORD}"') + LINE
    )
    assert run_once(right) == 0
    assert [a["labels"]["line"] for a in alertmanager_with_auth.alerts()] == ["travel"]


def test_a_bearer_token_reaches_the_wire_and_never_a_log(
    write_config: Callable[..., Path], am_recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "am-bearer-token-5e6f7a8b"
    config = write_config(am_channel(am_recorder.url, f'token = "{token}"') + LINE)
    assert run_once(config) == 0
    assert am_recorder.requests, "nothing reached the recorder"
    for request in am_recorder.requests:
        assert request["headers"]["Authorization"] == f"Bearer {token}"
    (post,) = am_recorder.posts()
    assert post["path"] == "/api/v2/alerts"
    assert postable_problems(post["body"]) == []
    # an Alertmanager (or a proxy) that echoes the header back in its error
    am_recorder.status, am_recorder.reply = 401, f"bad token: Bearer {token}".encode()
    capsys.readouterr()
    assert run_once(config) == 0
    out, err = capsys.readouterr()
    failed = [e for e in logged(err) if e["event"].startswith("alertmanager post failed")]
    assert failed and "[redacted]" in failed[0]["error"]
    assert token not in out + err
    assert main(["--config", str(config), "config", "show"]) == 0
    shown = capsys.readouterr().out
    assert token not in shown and 'token = "**********"' in shown


def test_a_down_alertmanager_is_logged_and_retried_at_the_next_repost(
    write_config: Callable[..., Path],
    am_recorder: Recorder,
    worker: Callable[..., am.Worker],
) -> None:
    settings = settings_of(
        write_config, am_channel(am_recorder.url) + LINE + '[lines.home]\nadapter = "demo"\n'
    )
    now = datetime.now(UTC)
    states = States(travel=status(checked_at=now), home=status("home", checked_at=now))
    w = worker(settings, states)
    assert w.round().ok
    am_recorder.status = 503
    del states.lines["home"]  # home recovers while Alertmanager is down
    states.lines["home"] = status("home", level=Level.OK, low_since=None, checked_at=now)
    with structlog.testing.capture_logs() as logs:
        assert not w.round().ok
    assert [e["log_level"] for e in logs if e["event"].startswith("alertmanager post failed")] == [
        "warning"
    ]
    am_recorder.status = 200
    before = COUNTERS.counts().deliveries
    assert w.round().ok  # the next repost: travel still active, home's end is posted now
    after = COUNTERS.counts().deliveries
    assert after.get(("am", "sent"), 0) == before.get(("am", "sent"), 0) + 1
    body = am_recorder.posts()[-1]["body"]
    ends = {a["labels"]["line"]: datetime.fromisoformat(a["endsAt"]) for a in body}
    assert ends["travel"] > datetime.now(UTC) >= ends["home"]


def test_a_reload_keeps_what_was_posted_so_an_alert_that_ended_meanwhile_resolves(
    write_config: Callable[..., Path], am_recorder: Recorder
) -> None:
    """The stand-in reads back no alerts: only the old worker's memory knows travel fired."""
    settings = settings_of(write_config, am_channel(am_recorder.url) + LINE)
    now = datetime.now(UTC)
    states = States(travel=status(checked_at=now))
    hub = am.Hub(settings, states)
    assert hub.workers["am"].round().ok
    states.lines["travel"] = status(level=Level.OK, low_since=None, checked_at=now)
    reloaded = hub.reload(
        load(write_config(am_channel(am_recorder.url, 'repost = "2m"') + LINE)), states
    )
    try:
        assert reloaded.workers["am"].round().ok
    finally:
        reloaded.close()
    (resolved,) = am_recorder.posts()[-1]["body"]
    assert resolved["labels"]["line"] == "travel"
    assert datetime.fromisoformat(resolved["endsAt"]) <= datetime.now(UTC)


def test_a_hanging_alertmanager_never_stalls_the_checking_loop(
    write_config: Callable[..., Path],
) -> None:
    """An Alertmanager that takes the connection and never answers: while the worker waits
    on it (for notify_timeout, 60 s), the daemon goes on checking every second."""
    from monitor.daemon import Daemon

    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(8)
    accepted = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = hang.accept()
                held.append(conn)
                accepted.set()

    threading.Thread(target=accept, daemon=True).start()
    url = f"http://127.0.0.1:{hang.getsockname()[1]}"
    config = write_config(
        '[monitor]\ninterval = "1s"\nnotify_timeout = "60s"\n'
        + am_channel(url, 'repost = "1s"')
        + LINE
    )
    settings = load(config)
    daemon = Daemon(settings, lambda: settings)
    runner = threading.Thread(target=daemon.run, daemon=True)
    runner.start()
    try:
        assert accepted.wait(30), "the worker never reached the Alertmanager"
        first = _checks(config)
        deadline = time.monotonic() + 30
        while _checks(config) < first + 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _checks(config) >= first + 3, "checks stalled while the Alertmanager hung"
    finally:
        daemon.stop()
        runner.join(30)
        for conn in held:
            conn.close()
        hang.close()
    assert not runner.is_alive()


def _checks(config: Path) -> int:
    view = View.open_existing(config.parent / "history.db")
    if view is None:
        return 0
    try:
        return int(view.conn.execute("SELECT count(*) FROM readings").fetchone()[0])
    finally:
        view.close()


# ---- config and commands -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "where", "says"),
    [
        ('body = "{headline}"', "channels.am.body", "not used by type"),
        ('digest = "daily 08:00"', "channels.am.digest", "not used by type"),
        ('user = "ops"', "channels.am.password", "both"),
        ('user = "ops"\npassword = "p4ssw0rd"\ntoken = "t0ken-abc"', "channels.am.token", "either"),
        ('events = ["digest", "recovery"]', "channels.am.events", "name one"),
        ('labels = { severity = "x" }', "channels.am.labels.severity", "set by esim-monitor"),
        ('labels = { "bad-name" = "x" }', "channels.am.labels.bad-name", "label name"),
    ],
)
def test_wrong_combinations_are_config_errors(
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    extra: str,
    where: str,
    says: str,
) -> None:
    config = write_config(am_channel("http://127.0.0.1:9093", extra) + LINE)
    assert main(["--config", str(config), "config", "validate"]) == 78
    err = capsys.readouterr().err
    assert f"At '{where}'" in err and says in err, err


@pytest.mark.parametrize(
    ("channel", "where"),
    [
        ('[channels.am]\ntype = "alertmanager"\nurl = "ftp://host"\n', "channels.am.url"),
        (
            '[channels.am]\ntype = "alertmanager"\nurl = "http://ops:pw@host:9093"\n',
            "channels.am.url",
        ),
        ('[channels.mail]\nurl = "json://127.0.0.1:9/x"\nrepost = "1m"\n', "channels.mail.repost"),
        (
            '[channels.mail]\nurl = "json://127.0.0.1:9/x"\ntoken = "abcdefgh"\n',
            "channels.mail.token",
        ),
        (
            am_channel("http://127.0.0.1:9093") + '[defaults.alerts]\nescalate_to = ["am"]\n',
            "defaults.alerts.escalate_to",
        ),
    ],
)
def test_urls_and_keys_of_the_other_type_are_config_errors(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str], channel: str, where: str
) -> None:
    config = write_config(channel + LINE)
    assert main(["--config", str(config), "config", "validate"]) == 78
    err = capsys.readouterr().err
    assert f"At '{where}'" in err
    assert "pw@" not in err  # a URL is a secret: never echoed


def test_an_alertmanager_channel_validates_without_apprise_keys_and_takes_no_outbox_rows(
    write_config: Callable[..., Path], am_recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(am_channel(am_recorder.url, 'repost = "30s"') + LINE)
    assert main(["--config", str(config), "config", "validate"]) == 0
    assert run_once(config) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "events", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(row.get("channel") in (None, "") for row in rows), rows


def test_notify_test_posts_a_test_alert_that_resolves_itself(
    write_config: Callable[..., Path],
    alertmanager: Alertmanager,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(am_channel(alertmanager.url) + LINE)
    assert main(["--config", str(config), "notify", "test"]) == 0
    assert capsys.readouterr().out.startswith("am: delivered")
    (alert,) = alertmanager.alerts(alertname=am.TEST_ALERTNAME)
    assert alert["labels"] == {"alertname": "EsimMonitorTest", "severity": "info"}
    ends = datetime.fromisoformat(alert["endsAt"])
    assert ends - datetime.now(UTC) <= timedelta(minutes=5)


def test_notify_test_on_a_down_alertmanager_fails_naming_the_channel_only(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_config(am_channel(f"http://127.0.0.1:{port}", 'token = "tok-123456789"') + LINE)
    assert main(["--config", str(config), "notify", "test"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"am (http://127.0.0.1:{port}): FAILED: ConnectError")
    assert "tok-123456789" not in out
