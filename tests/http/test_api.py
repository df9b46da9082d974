"""The status page's JSON API: the same rows as the CLI's JSON on the same database, and
never a configured secret, in any form, whatever the database holds."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from web_site import PASSWORD, Site, basic, config_text, html

from monitor.cli import main
from monitor.config import secret_values
from monitor.redact import MIN_LENGTH, forms


@pytest.fixture
def site(write_config: Callable[..., Path]) -> Iterator[Site]:
    made = Site(write_config(config_text()))
    made.read("phone", "7", data_remaining=2 * 10**9)
    made.read("phone", "6.50")
    made.read("tablet", "40")
    made.dashboard.snooze("tablet", timedelta(hours=2))
    yield made
    made.close()


def _api(site: Site, path: str) -> Any:
    answer = site.browser().get(path, authorization=basic("admin", PASSWORD))
    assert answer.status == 200, answer.text
    assert answer.content_type == "application/json"
    return json.loads(answer.body or b"")


def _cli(site: Site, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    capsys.readouterr()
    assert main(["--config", str(site.config), *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_api_returns_the_fields_of_the_cli_json(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _api(site, "/api/lines")
    assert lines == _cli(site, capsys, "status", "--json")
    assert [row["line"] for row in lines] == ["phone", "tablet"]
    assert lines[1]["snoozed_until"] is not None
    assert _api(site, "/api/lines/phone") == lines[0]
    history = _api(site, "/api/lines/phone/history?since=7d")
    assert history == _cli(site, capsys, "history", "phone", "--since", "7d", "--format", "json")
    assert [row["balance"] for row in history] == ["7", "6.50"]
    events = _api(site, "/api/events")
    assert events == _cli(site, capsys, "events", "--json")
    assert events and {row["line"] for row in events} == {"phone"}
    assert _api(site, "/api/events?line=tablet") == _cli(
        site, capsys, "events", "--line", "tablet", "--json"
    )


def test_a_bad_since_is_refused_with_its_reason(site: Site) -> None:
    answer = site.browser().get(
        "/api/lines/phone/history?since=lately", authorization=basic("admin", PASSWORD)
    )
    assert answer.status == 400 and answer.text.startswith("since: ")


SECRETS = """
[accounts.travel]
provider = "airalo"
client_id = "travel-client"
client_secret = "cl!ent/secret+value=="
webhook_secret = "whsec_0123456789abcdef"

[channels.phone]
url = "ntfys://ntfy.example/topic?token=tk_9f8e7d6c5b4a"

[lines.phone]
label = "Phone"
adapter = "demo"
balance = 7
drain = 0
api_key = 'k3y&<value>/+="quoted"'

[lines.esim]
account = "travel"
iccid = "8944465400000267221"
"""


def test_no_api_answer_or_page_holds_a_secret_in_any_form(
    write_config: Callable[..., Path],
) -> None:
    site = Site(write_config(config_text(lines=SECRETS)))
    try:
        site.read("phone", "7")
        secrets = [s for s in secret_values(site.settings) if len(s) >= MIN_LENGTH]
        assert len(secrets) >= 5
        every = [form for secret in secrets for form in sorted(forms(secret))]
        planted = " ".join(every)  # what a provider could have echoed, stored before redaction
        conn = sqlite3.connect(site.database)
        with conn:
            conn.execute("UPDATE events SET message = ?", [planted])
            conn.execute("UPDATE line_state SET last_error = ?", [planted])
            conn.execute("UPDATE readings SET error = ?, raw = ?, status = ?", [planted] * 3)
        conn.close()
        browser = site.browser()
        browser.login()
        answers = [
            browser.get(path)
            for path in (
                "/",
                "/lines/phone",
                "/api/lines",
                "/api/lines/phone",
                "/api/lines/phone/history",
                "/api/events",
                "/api/events?line=phone",
            )
        ]
        for answer in answers:
            assert answer.status == 200
            text = html(answer)
            leaked = [form for form in every if form in text]
            assert leaked == [], answer
        assert "[redacted]" in html(answers[1]) and "[redacted]" in html(answers[2])
    finally:
        site.close()
