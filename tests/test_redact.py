"""Secrets never leave the adapters: a provider and a program that echo every configured
secret, in every form a client sends it, reach no log, no command output, no table of the
database and no alert (issue 11.6); and a `base_url` carrying `user:password@` is a config
error (issue 11.11)."""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from fake_echo import FORMS, EchoServer, encode, every_form

from monitor.cli import load_settings, main
from monitor.daemon import Daemon
from monitor.redact import REDACTED, Redactor

PASSWORD = "pw/Sec+ret 1&a"
TOKEN = "tk/Sec+ret 2&b"
API_KEY = "ak/Sec+ret 3&c"
ARGV_TOKEN = "av/Sec+ret 4&d"
ENV_KEY = "ev/Sec+ret 5&e"
BEAT_TOKEN = "hb/Sec+ret 6&f"
BEAT_QUERY = "hq/Sec+ret 7&g"
SECRETS = (PASSWORD, TOKEN, API_KEY, ARGV_TOKEN, ENV_KEY, BEAT_TOKEN, BEAT_QUERY)
FAKE = Path(__file__).with_name("fake_echo.py")


def leaked(text: str) -> list[str]:
    """Every form of every secret found in `text` (the pair as Basic sends it, by user
    `bob` or by anyone)."""
    found = []
    for secret in SECRETS:
        for form in {*every_form(secret), *every_form(secret, "bob")}:
            if form in text:
                found.append(form)
    return found


# ---- the redactor ---------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_every_form_is_redacted(form: str) -> None:
    redactor = Redactor([PASSWORD])
    text = f"the server said {encode(PASSWORD, form, 'someone-else')} back"
    assert redactor.text(text) == f"the server said {REDACTED} back"


def test_basic_auth_of_any_user_and_json_escapes_are_redacted() -> None:
    redactor = Redactor(['s"q\\uote-secret'])
    pair = base64.b64encode(b'x:s"q\\uote-secret!').decode()
    assert redactor.text(f"Authorization: Basic {pair}") == f"Authorization: Basic {REDACTED}"
    assert redactor.text(json.dumps({"k": 's"q\\uote-secret'})) == '{"k": "[redacted]"}'


def test_a_cut_through_a_secret_leaves_no_head_of_it() -> None:
    redactor = Redactor(["0123456789-secret"])
    assert redactor.text("excerpt: 0123456…") == f"excerpt: {REDACTED}…"
    text = "x" * 30 + "0123456789-secret" * 5
    assert redactor.excerpt(text, 40) == ("x" * 30 + REDACTED)[:40]


def test_a_secret_urls_scheme_alone_is_no_head_of_it() -> None:
    """Unfixed, every text ending in `http` or `mail` (`config show`'s `[http]` table, a
    channel named `mail`) was cut as the head of a secret URL; a head past the scheme still is."""
    redactor = Redactor(
        ["https://hc-ping.com/0f3a9c2e-secret", "mailto://u:pw-secret@smtp.example.com"]
    )
    for word in ("http", "https", "mail", "mailto", "https:", "mailto%3A"):
        assert redactor.text(word) == word
    assert redactor.text("ping https://hc-ping.com/0f3a…") == f"ping {REDACTED}…"
    assert redactor.text("mailto%3A%2F%2Fu") == REDACTED


def test_payloads_are_redacted_in_keys_and_values() -> None:
    redactor = Redactor([TOKEN])
    payload = {"a": [TOKEN, 1], TOKEN: {"b": encode(TOKEN, "basic")}, "n": 5}
    assert redactor.data(payload) == {"a": [REDACTED, 1], REDACTED: {"b": REDACTED}, "n": 5}
    clean = {"balance": "1.00"}
    assert redactor.data(clean) is clean


# ---- end to end -----------------------------------------------------------------------


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer(
        {"basic": ("bob", PASSWORD), "bearer": ("", TOKEN), "header": ("", API_KEY)}
    )
    yield server
    server.close()


def _config(echo: EchoServer, sink: Any) -> str:
    beat = f"{echo.base}/beat/api/push/{encode(BEAT_TOKEN, 'quote_all')}"
    text = f"""
[monitor]
heartbeat_url = "{beat}?token={encode(BEAT_QUERY, "quote_plus")}"
breaker_after = 0

[defaults.alerts]
failures_before_alert = 1

[channels.hook]
url = "{sink.url}"
group = false  # every alert a message of its own: the text of each is checked

[accounts.basic]
provider = "http_json"
base_url = "{echo.base}/basic"
auth = "basic"
username = "bob"
password = "{PASSWORD}"
balance = "balance"
currency = "'USD'"

[accounts.bearer]
provider = "http_json"
base_url = "{echo.base}/bearer"
auth = "bearer"
token = "{TOKEN}"
balance = "balance"
currency = "'USD'"

[accounts.header]
provider = "http_json"
base_url = "{echo.base}/header"
auth = "header"
api_key_header = "X-API-Key"
api_key = "{API_KEY}"
balance = "balance"
currency = "'USD'"
"""
    for account in ("basic", "bearer", "header"):
        for kind in ("unauth", "shape", "good"):
            for form in FORMS:
                text += f'\n[lines.{account}_{kind}_{form}]\naccount = "{account}"\n'
                text += f'url = "/{kind}/{form}"\n'
    for mode in ("stderr", "stdout", "good"):
        for form in FORMS:
            argv = [sys.executable, str(FAKE), "--token", ARGV_TOKEN, mode, form]
            text += f'\n[lines.command_{mode}_{form}]\nadapter = "command"\n'
            text += f"argv = {json.dumps(argv)}\nenv = {{ API_KEY = {json.dumps(ENV_KEY)} }}\n"
    return text


def _dump(database: Path) -> dict[str, str]:
    """Every row of every table, as text per table."""
    with sqlite3.connect(database) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            t: json.dumps(db.execute(f'SELECT * FROM "{t}"').fetchall(), default=str)
            for t in tables
        }


def test_echoed_secrets_reach_no_log_output_table_or_alert(
    echo: EchoServer,
    sink: Any,
    write_config: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_config(_config(echo, sink))
    settings = load_settings(path)
    with structlog.testing.capture_logs() as captured:
        daemon = Daemon(settings, reload=lambda: settings)
        try:
            daemon.run_once()
        finally:
            daemon.close()
    logs = json.dumps(captured, default=str)

    outputs = {}
    for command in (
        ["check", "--json"],
        ["status", "--json"],
        ["config", "show"],
        ["config", "show", "--json"],
        ["events", "--json"],
    ):
        main(["--config", str(path), *command])
        outputs[" ".join(command)] = capsys.readouterr().out
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "--config",
            str(path),
            "--log-level=debug",
            "run",
            "--once",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    database = _dump(tmp_path / "history.db")
    alerts = json.dumps(sink.received)

    # The echoes happened and were recorded: the redaction is what keeps them out.
    lines = len(settings.lines)
    assert sum(p.startswith("/beat/") for p in echo.seen) == 2
    assert len(json.loads(outputs["check --json"])) == lines
    assert REDACTED in logs and REDACTED in outputs["check --json"]
    assert REDACTED in database["readings"] and REDACTED in database["events"]
    assert REDACTED in done.stderr and "heartbeat ping failed" in done.stderr
    assert len(sink.received) >= 2 * 12 + 12  # every unauth, shape and stdout/stderr line
    assert REDACTED in alerts

    places = {
        "structlog events": logs,
        **outputs,
        "stderr of run --once": done.stderr,
        **{f"table {t}": rows for t, rows in database.items()},
        "delivered alerts": alerts,
    }
    leaks = {place: len(leaked(text)) for place, text in places.items() if leaked(text)}
    assert leaks == {}, f"forms of secrets found, per place: {leaks}"


# ---- base_url with credentials ----------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "keys", "names"),
    [
        ("http_json", 'auth = "basic"\nusername = "u"\npassword = "p"\nurl = "/x"\n', "username"),
        ("hologram", 'api_key = "k"\norg_id = 1\n', "`api_key`"),
        ("twilio", f'account_sid = "AC{"0" * 32}"\nauth_token = "t"\n', "`auth_token`"),
        ("1nce", 'username = "u"\npassword = "p"\n', "`username` and `password`"),
    ],
)
def test_base_url_with_a_password_is_a_config_error_naming_the_keys(
    provider: str,
    keys: str,
    names: str,
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_config(
        f'[accounts.a]\nprovider = "{provider}"\n'
        f'base_url = "https://bob:hunter2-secret@api.example"\n{keys}'
    )
    for command in (["config", "show"], ["config", "validate"], ["run", "--once"]):
        assert main(["--config", str(path), *command]) == 78
        out, err = capsys.readouterr()
        assert "accounts.a.base_url" in err and "user or password" in err and names in err
        assert "hunter2-secret" not in out + err


def test_config_show_redacts_secrets_repeated_under_harmless_keys(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        '[lines.x]\nadapter = "command"\n'
        'argv = ["prog", "--token", "tok-en-secret", "https://h.example/x?api_key=qu-ery-secret",'
        ' "https://me:pass-word-secret@h.example/", "again tok-en-secret"]\n'
        'payment_url = "https://me:pay-url-secret@pay.example/"\n'
    )
    assert main(["--config", str(path), "config", "show"]) == 0
    out = capsys.readouterr().out
    for secret in ("tok-en-secret", "qu-ery-secret", "pass-word-secret", "pay-url-secret"):
        assert secret not in out
    assert "h.example" in out and "pay.example" in out
