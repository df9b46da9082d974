"""Loading the config: sources and precedence, units, defaults, and every kind of bad input."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from monitor import config
from monitor.cli import load_settings, main
from monitor.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

GOOD = """
[monitor]
interval = "30m"
jitter = "2m"
timezone = "America/New_York"

[defaults.thresholds]
balance_warning = 10
balance_critical = 5.5
data_warning = "1GB"
data_critical = "10%"

[defaults.alerts]
repeat = "12h"

[channels.phone]
url = "json://127.0.0.1:9/hook?token=supersecret"
events = ["critical", "recovery"]

[lines.us-travel]
label = "US travel eSIM"
adapter = "demo"
interval = "10m"
balance = 3

[lines.us-travel.thresholds]
data_warning = "2GB"

[lines.home]
adapter = "demo"
"""


def test_loads_units_and_inheritance(write_config: Callable[..., Path]) -> None:
    s = load_settings(write_config(GOOD))
    assert s.monitor.interval == timedelta(minutes=30)
    assert s.interval("us-travel") == timedelta(minutes=10)
    assert s.interval("home") == timedelta(minutes=30)
    assert s.jitter("us-travel") == timedelta(minutes=2)
    t = s.thresholds("us-travel")
    assert t.data_warning == 2 * 10**9  # the line's own
    assert t.balance_critical == Decimal("5.5")  # inherited, exact
    assert str(t.data_critical) == "10%"
    assert s.thresholds("home").data_warning == 10**9
    assert s.alerts("home").repeat == timedelta(hours=12)
    assert s.label("home") == "home"
    assert s.label("us-travel") == "US travel eSIM"
    assert s.lines["us-travel"].options == {"balance": 3}


def test_environment_overrides_the_file(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESIM_MONITOR_MONITOR__INTERVAL", "5m")
    monkeypatch.setenv("ESIM_MONITOR_CHANNELS__PHONE__URL", "json://127.0.0.1:9/from-env")
    monkeypatch.setenv("ESIM_MONITOR_LINES__HOME__LABEL", "Home")
    s = load_settings(write_config(GOOD))
    assert s.monitor.interval == timedelta(minutes=5)
    assert s.channels["phone"].url.get_secret_value() == "json://127.0.0.1:9/from-env"
    assert s.channels["phone"].events == ["critical", "recovery"]  # the rest still from the file
    assert s.label("home") == "Home"


def test_secrets_from_the_credentials_directory(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "channels__phone__url").write_text("json://127.0.0.1:9/from-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    text = GOOD.replace('url = "json://127.0.0.1:9/hook?token=supersecret"\n', "")
    s = load_settings(write_config(text))
    assert s.channels["phone"].url.get_secret_value() == "json://127.0.0.1:9/from-credential"
    # the environment still wins over a credential file
    monkeypatch.setenv("ESIM_MONITOR_CHANNELS__PHONE__URL", "json://127.0.0.1:9/env")
    s = load_settings(write_config(text))
    assert s.channels["phone"].url.get_secret_value() == "json://127.0.0.1:9/env"


NO_SECRETS = """
[channels.phone]
format = "short"

[channels.am]
type = "alertmanager"
url = "http://127.0.0.1:9093"
user = "monitor"

[lines.a]
adapter = "demo"

[lines.a.recharge]
action = "webhook"
url = "https://topup.example/hook"
"""


def test_without_secrets_an_absent_secret_is_no_problem(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The commands that send nothing load the config so: the phone channel's url, the
    Alertmanager's password and the recharge webhook's secret are absent, and a broken
    credentials folder is skipped; a given secret still counts, the file's other checks too."""
    path = write_config(NO_SECRETS)
    with pytest.raises(ConfigError) as strict:
        config.load(path)
    assert "channels.phone.url" in {p.path for p in strict.value.problems}
    s = config.load(path, secrets=False)
    assert s.channels["phone"].url.get_secret_value() == config.UNLOADED_SECRET
    assert s.lines["a"].recharge is not None and s.lines["a"].recharge.secret is None
    monkeypatch.setenv("ESIM_MONITOR_CHANNELS__PHONE__URL", "json://127.0.0.1:9/env")
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "not-a-folder"))
    with pytest.raises(ConfigError, match="cannot read the credentials"):
        config.load(path)
    s = config.load(path, secrets=False)
    assert s.channels["phone"].url.get_secret_value() == "json://127.0.0.1:9/env"
    broken = write_config(NO_SECRETS.replace('user = "monitor"', 'user = "monitor"\nrepost = "0s"'))
    with pytest.raises(ConfigError) as other:
        config.load(broken, secrets=False)
    assert [p.path for p in other.value.problems] == ["channels.am.repost"]


def test_path_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    assert config.config_path("a.toml") == Path("a.toml")
    monkeypatch.setenv("ESIM_MONITOR_CONFIG", "/x/b.toml")
    assert config.config_path(None) == Path("/x/b.toml")
    assert config.config_path("a.toml") == Path("a.toml")
    monkeypatch.delenv("ESIM_MONITOR_CONFIG")
    assert config.config_path(None) == Path("/etc/esim-monitor/config.toml")


def test_database_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/esim-monitor:/other")
    assert config.default_database() == Path("/var/lib/esim-monitor/history.db")
    monkeypatch.delenv("STATE_DIRECTORY")
    assert config.default_database() == tmp_path / "state" / "esim-monitor" / "history.db"


def test_relative_database_is_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[monitor]\ndatabase = "h.db"\n[lines.a]\nadapter = "demo"\n')
    s = load_settings(tmp_path / "c.toml")
    assert s.database_path() == tmp_path / "h.db"


def test_lines_without_channels_are_valid(write_config: Callable[..., Path]) -> None:
    s = load_settings(write_config('[lines.a]\nadapter = "demo"\n'))
    assert s.channels == {}


@pytest.mark.parametrize("name", ["example.toml", "demo.toml"])
def test_bundled_configs_validate(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(ROOT / "config" / name), "config", "validate"]) == 0
    assert "ok" in capsys.readouterr().out


def test_the_demo_serves_its_status_page_on_loopback_where_its_links_point() -> None:
    """The README's demo opens its page without a login, beside a daemon of your own (the
    docs' examples listen on 8750), and its alerts' links reach it."""
    http = load_settings(ROOT / "config" / "demo.toml").http
    assert http.listen == "127.0.0.1:8757" and http.auth == "none"
    assert http.public_url == f"http://{http.listen}"


def test_config_example_command_prints_the_bundled_example(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["config", "example"]) == 0
    assert capsys.readouterr().out == (ROOT / "config" / "example.toml").read_text()


def test_show_masks_secrets_and_round_trips(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_config(GOOD)
    assert main(["--config", str(path), "config", "show"]) == 0
    out = capsys.readouterr().out
    assert "supersecret" not in out
    assert 'url = "json://127.0.0.1:9/****"' in out
    assert 'hysteresis = "5%"' in out
    assert 'data_critical = "10%"' in out
    # what `show` prints is itself a valid config (with the secret given again)
    shown = tmp_path / "shown.toml"
    shown.write_text(out.replace('"json://127.0.0.1:9/****"', '"json://127.0.0.1:9/x"'))
    again = load_settings(shown)
    assert again.thresholds("us-travel") == load_settings(path).thresholds("us-travel")
    assert main(["--config", str(path), "config", "show", "--json"]) == 0
    assert "supersecret" not in capsys.readouterr().out


SHOWN = """
[monitor]
database = "state/h.db"

[http]
max_body = "1MiB"

[defaults.thresholds]
data_warning = "1.5GB"
data_critical = "10%"

[channels.tg]
url = "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-1001234567890"

[channels.mail]
url = "mailto://alerts:Mail-Pass-9x@smtp.example.com/?to=owner@example.org"

[channels.push]
url = "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi/phone"

[channels.am]
type = "alertmanager"
url = "http://127.0.0.1:9093"
user = "monitor"
password = "am-Pass-77q"

[lines.a]
adapter = "demo"

[lines.a.thresholds]
data_warning = "512MiB"
"""
"""Apprise URL shapes from its wiki (github.com/caronc/apprise/wiki: Notify_telegram,
Notify_email, Notify_pushover): a bot token, a password, a user and app key."""


def test_show_masks_each_channel_url_but_its_scheme_and_host(
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from monitor.redact import base64_cores, forms

    write_config(SHOWN, database=False)
    monkeypatch.chdir(tmp_path)  # a relative --config: the database is shown absolute
    outputs = []
    for extra in ([], ["--json"]):
        assert main(["--config", "config.toml", "config", "show", *extra]) == 0
        outputs.append(capsys.readouterr().out)
    toml, as_json = outputs
    assert 'url = "tgram://****"' in toml
    assert 'url = "mailto://****@smtp.example.com/****"' in toml
    assert 'url = "pover://****"' in toml
    assert 'url = "http://127.0.0.1:9093"' in toml  # an Alertmanager's address hides nothing
    assert 'password = "**********"' in toml
    assert 'max_body = "1MiB"' in toml and 'data_warning = "1.5GB"' in toml
    assert 'data_warning = "512MiB"' in toml and "[http]" in toml and "[channels.mail]" in toml
    assert f'database = "{tmp_path / "state" / "h.db"}"' in toml
    shown = json.loads(as_json)
    assert shown["channels"]["mail"]["url"] == "mailto://****@smtp.example.com/****"
    assert shown["monitor"]["database"] == str(tmp_path / "state" / "h.db")
    secrets = [
        "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
        "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
        "-1001234567890",
        "Mail-Pass-9x",
        "owner@example.org",
        "uQiRzpo4DXghDmr9QzzfQu27cmVRsG",
        "azGDORePK8gMaC0QOYAMyEEuzJnyUi",
        "am-Pass-77q",
    ]
    for secret in secrets:
        for form in forms(secret) | base64_cores(secret):
            assert form not in toml and form not in as_json, (secret, form)


BAD = [
    ("[monitor]\ninterval = \n", "", "line 2, column"),
    ('[monitor]\ninterval = "5 parsecs"\n', "monitor.interval", "cannot read '5 parsecs'"),
    ('[monitor]\nintreval = "5m"\n', "monitor.intreval", "unknown key"),
    (
        "[defaults.thresholds]\nbalance_warning = 5\nbalance_critical = 10\n",
        "defaults.thresholds.balance_critical",
        "must not be above warning",
    ),
    (
        '[lines.a.thresholds]\nexpiry_warning = "1d"\nexpiry_critical = "3d"\n',
        "lines.a.thresholds.expiry_critical",
        "must not be longer than warning",
    ),
    (
        '[lines.b]\nadapter = "carrier-pigeon"\n',
        "lines.b.adapter",
        "unknown adapter 'carrier-pigeon'",
    ),
    (
        '[channels.mail]\nurl = "json://127.0.0.1:9/x"\nlines = ["nope"]\n',
        "channels.mail.lines",
        "unknown line 'nope'",
    ),
    (
        '[channels.mail]\nurl = "carrier-pigeon://coop"\n',
        "channels.mail.url",
        "Apprise does not accept",
    ),
    (
        '[channels.mail]\nurl = "json://127.0.0.1:9/x"\nevents = ["boom"]\n',
        "channels.mail.events.0",
        "Input should be",
    ),
    ('[lines.Bad]\nadapter = "demo"\n', "lines.Bad", "ids must be lowercase"),
    (
        '[lines.history]\nadapter = "demo"\n',
        "lines.history",
        "'history' is a word of `esim-monitor recharge history`",
    ),
    ('[lines.c]\nadapter = "demo"\nbalanse = 3\n', "lines.c.balanse", "unknown key"),
    ('[lines.c]\nlabel = "x"\n', "lines.c", "set `adapter`"),
    ('[monitor]\ntimezone = "Mars/Olympus"\n', "monitor.timezone", "unknown time zone"),
    (
        "[defaults.alerts]\nfailures_before_alert = 0\n",
        "defaults.alerts.failures_before_alert",
        "greater than or equal to 1",
    ),
]


@pytest.mark.parametrize(("text", "path", "message"), BAD)
def test_bad_config_exits_78_with_file_and_key_path(
    text: str,
    path: str,
    message: str,
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = '[lines.a]\nadapter = "demo"\n' if "[lines.a" not in text else ""
    file = write_config(text + base, database=False)
    assert main(["--config", str(file), "config", "validate"]) == 78
    err = capsys.readouterr().err
    expected = f"{file}: At '{path}': " if path else f"{file}: "
    assert expected in err
    assert message in err
    assert "Traceback" not in err


def test_all_problems_are_reported_at_once(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        '[monitor]\ninterval = "5 parsecs"\nbogus = 1\n'
        '[lines.Bad]\nadapter = "demo"\n[lines.ok]\nlabel = "no adapter"\n'
        '[lines.ok.thresholds]\ndata_warning = "lots"\n'
    )
    assert main(["--config", str(write_config(text, database=False)), "run", "--once"]) == 78
    err = capsys.readouterr().err
    for where in (
        "lines.Bad",
        "monitor.interval",
        "monitor.bogus",
        "lines.ok.thresholds.data_warning",
        "lines.ok",  # found with the keys above left out: no adapter
    ):
        assert f"At '{where}'" in err
    assert "invalid config (5 problem(s))" in err


def test_an_unknown_key_hides_no_other_problem_and_gets_the_nearest_known_one(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 19: unfixed, `intreval` alone was reported; the threshold order, the line's
    typo and the channel's URL came out only once it was fixed."""
    text = (
        '[monitor]\nintreval = "5m"\n'
        "[defaults.thresholds]\nbalance_warning = 5\nbalance_critical = 10\n"
        '[channels.x]\nurl = "carrier-pigeon://coop"\nevnts = ["critical"]\n'
        '[lines.a]\nadapter = "demo"\nbalanse = 3\nlines = ["zz"]\n'
        '[lines.b]\nadapter = "nope"\n'
    )
    assert main(["--config", str(write_config(text)), "config", "validate"]) == 78
    err = capsys.readouterr().err
    for where, message in (
        ("monitor.intreval", "unknown key; did you mean 'interval'?"),
        ("defaults.thresholds.balance_critical", "must not be above warning"),
        ("channels.x.evnts", "unknown key; did you mean 'events'?"),
        ("channels.x.url", "Apprise does not accept"),
        ("lines.a.balanse", "unknown key; did you mean 'balance'?"),
        ("lines.b.adapter", "unknown adapter 'nope'"),
    ):
        assert any(f"At '{where}': " in line and message in line for line in err.splitlines())
    assert "At 'lines.a.lines': unknown key\n" in err  # `sizes` is no near miss
    assert "invalid config (7 problem(s))" in err


def test_a_value_from_the_environment_that_is_refused_is_reported_alone(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file cannot do without a key it does not hold: the rest goes unchecked."""
    monkeypatch.setenv("ESIM_MONITOR_MONITOR__INTERVAL", "soon")
    path = write_config('[monitor]\ninterval = "5m"\n[lines.a]\nlabel = "no adapter"\n')
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert [p.path for p in caught.value.problems] == ["monitor.interval"]


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    assert main(["--config", str(missing), "status"]) == 78
    assert f"{missing}: config file not found" in capsys.readouterr().err


def test_debug_variable_shows_the_traceback(
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    file = write_config('[monitor]\ninterval = "5 parsecs"\n', database=False)
    monkeypatch.setenv("ESIM_MONITOR_DEBUG", "1")
    assert main(["--config", str(file), "config", "validate"]) == 78
    assert "Traceback" in capsys.readouterr().err


def test_config_error_lists_problems() -> None:
    exc = ConfigError("f.toml", [config.ConfigProblem("a.b", "bad")])
    assert str(exc) == "f.toml: At 'a.b': bad"
    assert exc.exit_code == 78


def test_show_masks_secrets_in_adapter_options(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        '[lines.s]\nadapter = "command"\n'
        'argv = ["/bin/balance", "--token", "tok-123", "--api-key=k-456", "--line", "home"]\n'
        'env = { REGION = "eu", API_KEY = "k-789" }\n'
    )
    assert main(["--config", str(path), "config", "show"]) == 0
    out = capsys.readouterr().out
    for secret in ("tok-123", "k-456", "k-789"):
        assert secret not in out
    assert '"--line", "home"' in out
    settings = load_settings(path)
    assert "k-789" not in repr(settings.lines["s"])


TELNYX_PUBLIC_KEY = base64.b64encode(bytes(range(100, 132))).decode()

WEBHOOK_KEYS = {
    "1nce": (
        'username = "api-user"\npassword = "api-pw-1"\n',
        {"webhook_username": "hook-user-1nce", "webhook_password": "hook-password-1nce"},
        'iccid = "8988280666000000001"\n',
    ),
    "telnyx": ('api_key = "KEY0123telnyx"\n', {"webhook_public_key": TELNYX_PUBLIC_KEY}, ""),
}
"""Per provider: its other account keys, its webhook keys with values (each a secret), and
what its line needs."""


@pytest.mark.parametrize("provider", sorted(WEBHOOK_KEYS))
def test_webhook_keys_are_secrets_masked_and_redacted(
    provider: str, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """`config show` masks each webhook key and the redactor knows its value (logs, pages,
    stored replies), 1NCE's webhook user name too, while an API user name stays shown."""
    others, values, line = WEBHOOK_KEYS[provider]
    given = "".join(f'{key} = "{value}"\n' for key, value in values.items())
    path = write_config(
        f'[accounts.acct]\nprovider = "{provider}"\n{others}{given}'
        f'[lines.l]\naccount = "acct"\n{line}'
    )
    assert main(["--config", str(path), "config", "show"]) == 0
    out = capsys.readouterr().out
    for key, value in values.items():
        assert value not in out
        assert f'{key} = "**********"' in out
    found = config.secret_values(load_settings(path))
    assert set(values.values()) <= set(found)
    if provider == "1nce":
        assert 'username = "api-user"' in out
        assert "api-user" not in found


@pytest.mark.parametrize(
    ("account", "problem"),
    [
        ('provider = "1nce"\nusername = "u"\npassword = "p"\nwebhook_username = "h"\n', "set both"),
        ('provider = "telnyx"\napi_key = "k"\nwebhook_public_key = "c2hvcnQ="\n', "Ed25519"),
    ],
)
def test_a_half_or_malformed_webhook_key_is_a_config_error(
    account: str,
    problem: str,
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Caught by `config validate`, not by a 401 on every push; the value is not echoed."""
    line = 'iccid = "8988280666000000001"\n' if "1nce" in account else ""
    path = write_config(f'[accounts.acct]\n{account}[lines.l]\naccount = "acct"\n{line}')
    assert main(["--config", str(path), "config", "validate"]) == 78
    err = capsys.readouterr().err
    assert problem in err and "c2hvcnQ=" not in err


# ---- fuzz: whatever the file holds, the loader answers 0 or 78, never an internal error

from hypothesis import HealthCheck, given  # noqa: E402
from hypothesis import settings as hsettings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_HOSTILE_SCALARS = [
    "nan",
    "inf",
    "-inf",
    "1e999999999",
    "-1e999999999",
    "1E-999999999",
    "0e-99999999",
    "99999999999999999999999999999",
    "-1",
    "0",
    "true",
    '""',
    '"infs"',
    '"nanm"',
    '"1e999999999s"',
    '"99999999d"',
    '"99999999999999999999w"',
    '"1e999999999GB"',
    '"99999999999999999999999999999TB"',
    '"1e999999999%"',
    '"nan%"',
    '"101%"',
    '"balance < 1e999999999"',
    '"data < 1e999999999GB"',
    '"expiry < 99999999d"',
    '"25:99-99:00"',
    '"weekly xyz 08:00"',
    '"\\u0000"',
    '"http://user:pw@x"',
    '"::::"',
    "1979-05-27T07:32:00Z",
    "[]",
    "[[[[[[]]]]]]",
    "{}",
    '["critical", 1e999999999]',
]


def _schema_keys(model: type, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path the real schema knows, with a line, channel and account of each kind."""
    from pydantic import BaseModel

    keys = []
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        path = (*prefix, name)
        keys.append(path)
        for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                keys.extend(_schema_keys(arg, path))
    return keys


_KEYS = (
    [k for k in _schema_keys(config.Settings) if k[0] not in ("lines", "channels", "accounts")]
    + [("lines", "a", *k) for k in _schema_keys(config.Line)]
    + [("lines", "a", "recharge", *k) for k in _schema_keys(config.Recharge)]
    + [("channels", "c", *k) for k in _schema_keys(config.Channel)]
    + [("accounts", "x", *k) for k in _schema_keys(config.Account)]
)


def _document(assignments: list[tuple[tuple[str, ...], str]]) -> str:
    tables: dict[tuple[str, ...], dict[str, str]] = {("lines", "a"): {"adapter": '"demo"'}}
    for path, value in assignments:
        tables.setdefault(path[:-1], {})[path[-1]] = value
    out = []
    for table, values in tables.items():
        out.append("[" + ".".join(table) + "]" if table else "")
        out.extend(f"{key} = {value}" for key, value in values.items())
    return "\n".join(out) + "\n"


def _validate(text: str | bytes) -> tuple[int, str]:
    import contextlib
    import io
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.toml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["--config", str(path), "config", "validate"])
    return code, err.getvalue()


@hsettings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_KEYS),
            st.one_of(st.sampled_from(_HOSTILE_SCALARS), st.integers().map(str)),
        ),
        max_size=6,
    )
)
def test_fuzz_schema_keys_with_hostile_values(
    assignments: list[tuple[tuple[str, ...], str]],
) -> None:
    code, err = _validate(_document(assignments))
    assert code in (0, 78), err
    assert "internal error" not in err and "Traceback" not in err


@hsettings(max_examples=100, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_fuzz_random_bytes(text: bytes | str) -> None:
    code, err = _validate(text)
    assert code in (0, 78), err
    assert "internal error" not in err


@pytest.mark.parametrize(
    "value", ["1e-999999999", "1e999999999", "-1e-999999999", "9" * 5000, "1e41"]
)
def test_a_count_with_an_absurd_number_is_refused_at_once(
    write_config: Callable[..., Path], value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # found by the config fuzz: pydantic turning 1e-999999999 into an int ran for minutes
    path = write_config(
        '[lines.a]\nadapter = "demo"\nbalance = 1\n'
        f'[lines.a.recharge]\naction = "command"\nargv = ["true"]\nmax_per_day = {value}\n'
    )
    assert main(["--config", str(path), "config", "validate"]) == 78
    assert "internal error" not in capsys.readouterr().err


def test_grouping_keys_default_parse_and_are_bounded(write_config: Callable[..., Path]) -> None:
    s = config.load(
        write_config(
            '[channels.a]\nurl = "json://h/x"\n'
            '[channels.b]\nurl = "json://h/x"\ngroup = false\ngroup_wait = "2m"\n'
        )
    )
    assert (s.channels["a"].group, s.channels["a"].group_wait) == (True, timedelta(seconds=30))
    assert (s.channels["b"].group, s.channels["b"].group_wait) == (False, timedelta(minutes=2))
    with pytest.raises(ConfigError) as caught:
        config.load(write_config('[channels.a]\nurl = "json://h/x"\ngroup_wait = "2h"\n'))
    assert "channels.a.group_wait" in str(caught.value) and "at most 1h" in str(caught.value)


def test_trusted_proxies_take_addresses_and_networks(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = config.load(write_config('[http]\ntrusted_proxies = ["127.0.0.1", "10.1.2.3/8", "::1"]\n'))
    assert [str(n) for n in s.http.trusted_proxies] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]
    assert config.load(write_config("")).http.trusted_proxies == []
    with pytest.raises(ConfigError) as caught:
        config.load(write_config('[http]\ntrusted_proxies = ["127.0.0.1", "10.0.0.0/33", 5]\n'))
    problems = {p.path: p.message for p in caught.value.problems}
    assert "not an IP address or a CIDR network" in problems["http.trusted_proxies.1"]
    assert "http.trusted_proxies.2" in problems
    monkeypatch.setenv("ESIM_MONITOR_HTTP__TRUSTED_PROXIES", '["192.0.2.0/24"]')
    s = config.load(write_config(""))
    assert [str(n) for n in s.http.trusted_proxies] == ["192.0.2.0/24"]


@pytest.mark.parametrize(
    ("listen", "ok"),
    [
        ("127.0.0.1:8750", True),
        ("8750", True),
        ("[::1]:8750", True),
        ("localhost:8750", True),
        ("0.0.0.0:8750", False),
        ("[::]:8750", False),
        ("192.168.1.5:8750", False),
        ("monitor.lan:8750", False),
    ],
)
def test_auth_none_is_accepted_only_on_a_loopback_listen(
    write_config: Callable[..., Path], listen: str, ok: bool
) -> None:
    path = write_config(f'[http]\nlisten = "{listen}"\nauth = "none"\n')
    if ok:
        assert config.load(path).http.auth == "none"
        return
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert "http.auth" in str(caught.value) and "loopback" in str(caught.value)


def test_a_password_hash_that_is_none_is_refused_without_echoing_it(
    write_config: Callable[..., Path],
) -> None:
    path = write_config('[http]\nlisten = "127.0.0.1:1"\nuser = "me"\npassword_hash = "hunter22"\n')
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert "http.password_hash" in str(caught.value) and "http password" in str(caught.value)
    assert "hunter22" not in str(caught.value)


def test_validate_warns_when_the_page_has_no_login_yet(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.http.auth import hash_password

    path = write_config('[http]\nlisten = "127.0.0.1:1"\n')
    assert main(["--config", str(path), "config", "validate"]) == 0
    assert "esim-monitor http password" in capsys.readouterr().err
    done = f'[http]\nlisten = "127.0.0.1:1"\nuser = "me"\npassword_hash = "{hash_password("x")}"\n'
    assert main(["--config", str(write_config(done)), "config", "validate"]) == 0
    assert "http password" not in capsys.readouterr().err


def test_auth_proxy_needs_trusted_proxies(write_config: Callable[..., Path]) -> None:
    path = write_config('[http]\nlisten = "0.0.0.0:8750"\nauth = "proxy"\n')
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert "http.auth" in str(caught.value) and "trusted_proxies" in str(caught.value)
    ok = '[http]\nlisten = "0.0.0.0:8750"\nauth = "proxy"\ntrusted_proxies = ["10.0.0.1"]\n'
    assert config.load(write_config(ok)).http.proxy_user_header == "Remote-User"
