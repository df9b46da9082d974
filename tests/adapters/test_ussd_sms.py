"""SMS queries on `ussd` lines: `codes = [{ sms = { to, text } }]` and `{ code, reply = "sms",
from }`, their options refused with clear messages, and whole checks against the fake `mmcli`
(tests/fake_mmcli.py), whose messaging commands print what ModemManager 1.20 prints (tag
1.20.6, commit 6aa0ff583d04aea88b4da7a1c20049f57062dab6: cli/mmcli-output.c, cli/mmcli-sms.c,
cli/mmcli-modem-messaging.c). Ultra Mobile answers "BAL" texted to 6700 (its FAQ,
https://www.ultramobile.com/faq/when-do-my-minutes-or-text-mms-messages-expire/)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import fake_mmcli
import pytest
from pydantic import ValidationError

from monitor import adapters, config, modem
from monitor.adapters.ussd import UssdAdapter, UssdOptions
from monitor.errors import CheckFailed

IMEI = "867000000000001"
ULTRA = "6700"
ULTRA_EXPIRY = (
    "You just got an Awesome Upgrade to the $39 plan. Your $39 plan expires on May 10 at "
    "11:59 PM. To switch back to the $29 plan, see your retailer or call 611."
)
"""Ultra's example messaging as a dealer copied it (2014), the only Ultra text with a
figure found, not a captured answer to BAL; the fake sends it as that answer. Source:
https://www.ezkonnect.com/news/index/view/?id=3"""
OWN_BALANCE = "Your balance is $12.34."
"""Ours: no carrier's BAL answer with a balance was found."""
MAINTENANCE = "Dear customer, the system is under maintenance. Please try again later."
"""Ours, in the words the USSD corpus's notices use."""
ATT_DATA = "AT&T Free Msg: You have used 1.2GB of 5GB of data this cycle."
"""Ours: no captured AT&T *3282# text was found (docs/modems.md, Carriers)."""
ATT_SENDER = "1111301000"
"""Ours: the number AT&T's usage texts come from was not sourced."""


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(modem, "KILL_GRACE", 0.2)
    monkeypatch.setattr(modem, "SMS_POLL", 0.05)


@pytest.fixture
def mmcli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    scenario = {
        "modems": [
            {
                "index": 0,
                "equipment_id": IMEI,
                "model": "EG25-G",
                "sim": {"index": 0, "iccid": "8901260000000000001"},
                "codes": {},
                "sms_answers": {
                    f"{ULTRA} BAL": [{"from": ULTRA, "text": ULTRA_EXPIRY, "after": 0.3}]
                },
            }
        ]
    }
    return fake_mmcli.install(tmp_path, monkeypatch, scenario)


def answers(fake: Any, *texts: dict[str, Any], key: str = f"{ULTRA} BAL") -> None:
    fake.scenario["modems"][0]["sms_answers"] = {key: list(texts)}
    fake.save()


def line(line_id: str = "ultra", **options: Any) -> UssdAdapter:
    options = {"modem": IMEI, "timeout": "3s", "timezone": "UTC", **options}
    return UssdAdapter(line_id, UssdOptions.model_validate(options), adapters.AdapterContext())


def failure(adapter: UssdAdapter) -> CheckFailed:
    with pytest.raises(CheckFailed) as info:
        adapter.read()
    return info.value


BAL = {"to": ULTRA, "text": "BAL"}


# ---- options -------------------------------------------------------------------------------


def test_an_sms_code_is_named_by_its_number_and_text() -> None:
    options = UssdOptions.model_validate(
        {"modem": IMEI, "codes": [{"sms": BAL, "pattern": r"balance is (?P<balance>\S+)"}]}
    )
    (spec,) = options.specs()
    assert spec.code == "sms 6700 BAL"
    assert spec.sms is not None
    assert (spec.sms.sender, spec.sms.to, spec.sms.text) == (ULTRA, ULTRA, "BAL")
    assert spec.sms.keep_messages is False
    assert spec.timeout is None


def test_a_ussd_code_answered_by_sms() -> None:
    options = UssdOptions.model_validate(
        {
            "modem": IMEI,
            "codes": [{"code": "*3282#", "reply": "sms", "from": ATT_SENDER, "timeout": "60s"}],
        }
    )
    (spec,) = options.specs()
    assert spec.code == "*3282#" and spec.sms is not None
    assert (spec.sms.sender, spec.sms.to) == (ATT_SENDER, None)
    assert spec.timeout == 60.0


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ({"sms": BAL, "code": "*1#"}, "give `code`"),
        ({"pattern": r"(?P<balance>\d+)"}, "give `code`"),
        ({"sms": {"to": 6700, "text": "BAL"}}, 'quote it, as in to = "6700"'),
        ({"sms": {"to": "67 00", "text": "BAL"}}, "not a phone number or short code"),
        ({"sms": {"to": ULTRA, "text": ""}}, "1 to 160 characters"),
        ({"sms": {"to": ULTRA, "text": "x" * 161}}, "1 to 160 characters"),
        ({"sms": {"to": ULTRA, "text": 'it\'s "BAL"'}}, "not both"),
        ({"sms": {"to": ULTRA}}, "text"),
        ({"sms": {"to": ULTRA, "text": "BAL", "from": ULTRA}}, "Extra inputs"),
        ({"sms": BAL, "respond": ["1"]}, "a reply by SMS has none"),
        ({"code": "*3282#", "reply": "sms"}, "needs `from`"),
        ({"code": "*3282#", "reply": "text", "from": "1"}, "'ussd' or 'sms'"),
        ({"code": "*3282#", "from": ATT_SENDER}, "`from` is for replies by SMS"),
        ({"code": "*3282#", "keep_messages": True}, "keep_messages is for replies by SMS"),
        ({"sms": BAL, "from": "not a sender!"}, "not a sender"),
        ({"sms": BAL, "timeout": "10m"}, "between 1s and 5m"),
    ],
)
def test_bad_sms_codes_are_refused_clearly(code: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        UssdOptions.model_validate({"modem": IMEI, "codes": [code]})


def test_the_same_sms_query_twice_is_refused() -> None:
    with pytest.raises(ValidationError, match="'sms 6700 BAL' is listed twice"):
        UssdOptions.model_validate({"modem": IMEI, "codes": [{"sms": BAL}, {"sms": BAL}]})


def test_config_validation_names_the_bad_sms_entry(write_config: Callable[..., Path]) -> None:
    path = write_config(
        """
        [lines.ultra]
        adapter = "ussd"
        modem = "867000000000001"
        codes = [{ sms = { to = 6700, text = "BAL" } }]
        """
    )
    with pytest.raises(config.ConfigError) as info:
        config.load(path, [adapters.validate_lines])
    text = str(info.value)
    assert "lines.ultra.codes.0.sms.to" in text and "quote it" in text


def test_the_ultra_preset_asks_by_sms_and_overrides_keep_its_query() -> None:
    options = UssdOptions.model_validate(
        {"modem": IMEI, "preset": "ultra", "codes": [{"sms": BAL, "keep_messages": True}]}
    )
    (spec,) = options.specs()
    assert spec.code == "sms 6700 BAL" and spec.sms is not None and spec.sms.keep_messages
    assert spec.patterns  # the preset's, kept: the entry changed only keep_messages


# ---- checks against the fake modem ---------------------------------------------------------


def test_ultra_end_to_end_texts_bal_reads_the_reply_and_deletes_both(mmcli: Any) -> None:
    reading = line(preset="ultra").read()
    assert reading.expires_at is not None
    assert (reading.expires_at.month, reading.expires_at.day) == (5, 10)
    assert (reading.expires_at.hour, reading.expires_at.minute) == (23, 59)
    assert reading.balance is None  # the plan's $39 price is never a balance
    assert reading.raw == {"sms 6700 BAL": ULTRA_EXPIRY}
    actions = mmcli.actions()
    assert "sms-create 6700 BAL" in actions
    assert sum(a.startswith("sms-delete") for a in actions) == 2
    assert mmcli.texts() == []
    assert mmcli.status() == "idle"


def test_keep_messages_leaves_the_query_and_its_reply(mmcli: Any) -> None:
    line(preset="ultra", codes=[{"sms": BAL, "keep_messages": True}]).read()
    assert [t["text"] for t in mmcli.texts()] == ["BAL", ULTRA_EXPIRY]


def test_an_sms_code_with_its_own_pattern(mmcli: Any) -> None:
    answers(mmcli, {"from": ULTRA, "text": OWN_BALANCE, "after": 0.2})
    pattern = r"balance is (?P<balance>\$[\d.]+)"
    reading = line(codes=[{"sms": BAL, "pattern": pattern}], currency="USD").read()
    assert reading.balance == Decimal("12.34") and reading.currency == "USD"


def test_an_sms_code_read_by_the_generic_parser(mmcli: Any) -> None:
    answers(mmcli, {"from": ULTRA, "text": OWN_BALANCE, "after": 0.2})
    reading = line(codes=[{"sms": BAL}], currency="USD").read()
    assert reading.balance == Decimal("12.34")


def test_a_notice_first_is_passed_over_for_the_balance_that_follows(mmcli: Any) -> None:
    answers(
        mmcli,
        {"from": ULTRA, "text": MAINTENANCE, "after": 0.1},
        {"from": "+12125550100", "text": "You owe me $50", "after": 0.2},
        {"from": ULTRA, "text": OWN_BALANCE, "after": 0.5},
    )
    reading = line(codes=[{"sms": BAL}], currency="USD").read()
    assert reading.balance == Decimal("12.34")
    assert [t["number"] for t in mmcli.texts()] == ["+12125550100"]  # not ours: kept


def test_a_ussd_code_answered_by_sms_end_to_end(mmcli: Any) -> None:
    mmcli.scenario["modems"][0]["codes"] = {
        "*3282#": {
            "reply": "Your request is being processed. You will receive a text shortly.",
            "sms": [{"from": ATT_SENDER, "text": ATT_DATA, "after": 0.3}],
        }
    }
    mmcli.save()
    code = {
        "code": "*3282#",
        "reply": "sms",
        "from": ATT_SENDER,
        "pattern": r"used (?P<data_used>[\d.]+GB) of (?P<data_total>[\d.]+GB)",
    }
    reading = line("att", codes=[code]).read()
    assert reading.data_remaining == 3_800_000_000
    assert reading.raw == {"*3282#": ATT_DATA}
    assert mmcli.texts() == [] and mmcli.status() == "idle"


# ---- failed checks: the reason and the raw text, never a figure, the modem left idle --------


def test_a_modem_without_messaging_fails_the_check_saying_so(mmcli: Any) -> None:
    mmcli.scenario["modems"][0]["messaging"] = False
    mmcli.save()
    error = failure(line(preset="ultra"))
    assert isinstance(error, modem.SmsUnsupported)
    assert "cannot send or receive SMS" in str(error)
    assert "no messaging capabilities" in (error.raw or "")


@pytest.mark.parametrize("step", ["create", "send"])
def test_a_full_storage_fails_the_check_saying_so(mmcli: Any, step: str) -> None:
    mmcli.scenario["modems"][0]["storage_full"] = step
    mmcli.save()
    error = failure(line(preset="ultra"))
    assert isinstance(error, modem.SmsStorageFull)
    assert "SMS storage is full" in str(error) and "MemoryFull" in (error.raw or "")
    assert mmcli.texts() == []


def test_no_reply_fails_the_check_within_the_code_s_timeout(mmcli: Any) -> None:
    answers(mmcli)
    error = failure(line(preset="ultra", codes=[{"sms": BAL, "timeout": "2s"}]))
    assert isinstance(error, modem.NoSmsReply)
    assert "no reply from 6700 within 2s" in str(error)
    assert mmcli.texts() == []


def test_an_unparsable_reply_fails_with_its_text_never_a_balance(mmcli: Any) -> None:
    answers(mmcli, {"from": ULTRA, "text": MAINTENANCE, "after": 0.1})
    error = failure(line(codes=[{"sms": BAL, "timeout": "2s"}], currency="USD"))
    assert isinstance(error, modem.UnreadableSms)
    assert "notice" in str(error) or "maintenance" in str(error).lower()
    assert error.raw == MAINTENANCE
    assert mmcli.texts() == []


def test_an_sms_failure_beside_a_ussd_code_that_matched_is_listed(mmcli: Any) -> None:
    answers(mmcli)
    mmcli.scenario["modems"][0]["codes"] = {"*777#": {"reply": "Your balance is $5.00."}}
    mmcli.save()
    reading = line(codes=[{"sms": BAL, "timeout": "2s"}, {"code": "*777#"}], currency="USD").read()
    assert reading.balance == Decimal("5.00")
    (failed,) = reading.extras["failed_codes"]
    assert failed["code"] == "sms 6700 BAL" and "no reply from 6700" in failed["error"]


def test_a_late_reply_to_one_line_is_never_read_by_the_next(mmcli: Any) -> None:
    """Line `a` times out; its answer arrives afterwards. Line `b`, on the same modem and
    asking the same number, must not take it: it was there before b's query (dropped and
    deleted), and b reads its own answer."""
    answers(mmcli, {"from": ULTRA, "text": "Your balance is $99.00.", "after": 2.5})
    with pytest.raises(CheckFailed, match="no reply"):
        line("a", codes=[{"sms": BAL, "timeout": "2s"}], currency="USD").read()
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    while not any("$99.00" in t["text"] and t["visible_at"] <= _now() for t in mmcli.texts()):
        assert datetime.now(UTC) < deadline
    answers(mmcli, {"from": ULTRA, "text": OWN_BALANCE, "after": 0.3})
    reading = line("b", codes=[{"sms": BAL}], currency="USD").read()
    assert reading.balance == Decimal("12.34")
    assert mmcli.texts() == []


def _now() -> float:
    return datetime.now(UTC).timestamp()


def test_esim_monitor_check_reads_an_ultra_line_by_sms(
    mmcli: Any, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole chain from a config file: `check --json` prints the expiry Ultra's text
    gave, and a modem without messaging is a failed check with the reason, never a zero."""
    from monitor.cli import main

    path = write_config(
        f'[lines.ultra]\nadapter = "ussd"\nmodem = "{IMEI}"\npreset = "ultra"\n'
        'timezone = "UTC"\ntimeout = "5s"\n'
    )
    assert main(["--config", str(path), "check", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["error"] is None and row["balance"] is None
    assert row["expires_at"].startswith(tuple(f"{y}-05-10T23:59" for y in range(2026, 2100)))
    mmcli.scenario["modems"][0]["messaging"] = False
    mmcli.save()
    assert main(["--config", str(path), "check", "--json"]) == 1
    (row,) = json.loads(capsys.readouterr().out)
    assert "cannot send or receive SMS" in row["error"] and row["balance"] is None


def test_the_ultra_preset_is_listed_as_not_verified(capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    assert main(["adapters", "--json"]) == 0
    (ussd,) = [a for a in json.loads(capsys.readouterr().out) if a["name"] == "ussd"]
    assert ussd["presets"]["ultra"]["verified"] is False
    assert "BAL to 6700" in ussd["presets"]["ultra"]["description"]


def test_two_processes_take_turns_for_their_sms_queries_on_one_modem(
    mmcli: Any, write_config: Callable[..., Path]
) -> None:
    """Two `esim-monitor check` runs at once, each texting BAL from the same modem: the lock
    beside the database keeps their sessions apart (no messaging call of one falls inside
    the other's session), and each reads its own answer."""
    path = write_config(
        f'[lines.ultra]\nadapter = "ussd"\nmodem = "{IMEI}"\npreset = "ultra"\n'
        'timezone = "UTC"\ntimeout = "10s"\n'
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(path), "check", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        (row,) = json.loads(out)
        assert row["error"] is None and row["expires_at"] is not None
    calls = [c for c in mmcli.calls() if c.get("action", "").startswith("sms-")]
    spans = {}
    for call in calls:
        first, last = spans.get(call["pid"], (call["start"], call["start"]))
        spans[call["pid"]] = (min(first, call["start"]), max(last, call["start"]))
    assert len({c["pid"] for c in calls if c["action"].startswith("sms-create")}) == 2
    for call in calls:
        for pid, (first, last) in spans.items():
            assert call["pid"] == pid or not first < call["start"] < last, "sessions overlap"
    assert mmcli.texts() == []
