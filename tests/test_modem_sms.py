"""monitor.modem's SMS queries against the fake `mmcli` (tests/fake_mmcli.py), which prints
the messaging commands as ModemManager 1.20 does (cli/mmcli-output.c, cli/mmcli-sms.c,
cli/mmcli-modem-messaging.c at tag 1.20.6, commit 6aa0ff583d04aea88b4da7a1c20049f57062dab6):
send, list and delete; a reply matched on its sender and a time after the send, late,
out of order or from another number; a modem without messaging, a full storage, no reply."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fake_mmcli
import pytest

from monitor import modem
from monitor.errors import UsageError

IMEI = "867000000000001"
ULTRA = "6700"
BALANCE = "Your balance is $12.34. Your $29 plan expires on May 10 at 11:59 PM."
"""An answer in the shape of Ultra's example messaging (ezkonnect.com/news/index/view/?id=3);
no captured BAL reply was found, so the figure is ours."""


def a_modem(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "index": 0,
        "equipment_id": IMEI,
        "model": "EG25-G",
        "sim": {"index": 0, "iccid": "8901260000000000001"},
        "codes": {},
        "sms_answers": {f"{ULTRA} BAL": [{"from": ULTRA, "text": BALANCE, "after": 0.3}]},
    }
    data.update(overrides)
    return data


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(modem, "KILL_GRACE", 0.2)
    monkeypatch.setattr(modem, "SMS_POLL", 0.05)


@pytest.fixture
def mmcli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    return fake_mmcli.install(tmp_path, monkeypatch, {"modems": [a_modem()]})


def answers(fake: Any, *texts: dict[str, Any], key: str = f"{ULTRA} BAL") -> None:
    fake.scenario["modems"][0]["sms_answers"] = {key: list(texts)}
    fake.save()


def query(**kwargs: Any) -> modem.SmsExchange:
    options: dict[str, Any] = {"to": ULTRA, "text": "BAL", "timeout": 5.0}
    options.update(kwargs)
    return modem.sms_query(IMEI, ULTRA, **options)


# ---- the JSON ModemManager prints -----------------------------------------------------------


def test_an_sms_is_read_from_mmcli_s_json() -> None:
    """The shape of `mmcli -s S -J` (cli/mmcli-sms.c print_sms_info, keys of
    cli/mmcli-output.c), with a timestamp as src/tests/test-sms-part-3gpp.c expects one."""
    data = {
        "sms": {
            "content": {"data": "--", "number": "+12404862637", "text": "Hello"},
            "dbus-path": "/org/freedesktop/ModemManager1/SMS/3",
            "properties": {
                "class": "--",
                "delivery-report": "--",
                "pdu-type": "deliver",
                "smsc": "+12063130004",
                "state": "received",
                "storage": "me",
                "timestamp": "2011-02-28T11:50:50-05",
                "validity": "--",
            },
        }
    }
    sms = modem.sms_from_json(data)
    assert sms.index == "3"
    assert (sms.number, sms.text, sms.state, sms.storage) == (
        "+12404862637",
        "Hello",
        "received",
        "me",
    )
    assert sms.timestamp == datetime(2011, 2, 28, 16, 50, 50, tzinfo=UTC)
    assert sms.received


def test_a_text_still_arriving_or_sent_is_no_reply() -> None:
    receiving = modem.sms_from_json({"sms": {"properties": {"state": "receiving"}}}, "/x/1")
    sent = modem.sms_from_json(
        {"sms": {"properties": {"state": "sent", "pdu-type": "submit", "timestamp": "--"}}}
    )
    assert not receiving.received and not sent.received
    assert sent.timestamp is None


@pytest.mark.parametrize(
    ("number", "wanted", "same"),
    [
        ("6700", "6700", True),
        ("67000", "6700", False),
        ("+12125550100", "2125550100", True),
        ("+1 (212) 555-0100", "12125550100", True),
        ("+12125550100", "+12125550199", False),
        ("VERIZON", "Verizon", True),
        (None, "6700", False),
    ],
)
def test_the_sender_is_matched_as_numbers_are_written(
    number: str | None, wanted: str, same: bool
) -> None:
    assert modem.same_sender(number, wanted) is same


# ---- send, list, delete ----------------------------------------------------------------------


def test_send_sms_creates_and_sends(mmcli: Any) -> None:
    sent = modem.send_sms(IMEI, ULTRA, "BAL")
    assert sent.state == "sent" and sent.pdu_type == "submit"
    assert (sent.number, sent.text) == (ULTRA, "BAL")
    actions = mmcli.actions()
    assert f"sms-create {ULTRA} BAL" in actions
    assert f"sms-send {sent.index}" in actions
    create = next(c for c in mmcli.calls() if c["action"].startswith("sms-create"))
    assert f"--messaging-create-sms=number='{ULTRA}',text='BAL'" in create["argv"]


def test_list_sms_shows_the_sent_text_and_its_reply(mmcli: Any) -> None:
    modem.send_sms(IMEI, ULTRA, "BAL")
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    texts: list[modem.Sms] = []
    while datetime.now(UTC) < deadline and len(texts) < 2:
        texts = modem.list_sms(IMEI)
    assert [(t.number, t.text, t.state) for t in texts] == [
        (ULTRA, "BAL", "sent"),
        (ULTRA, BALANCE, "received"),
    ]
    assert texts[1].timestamp is not None
    assert texts[1].as_dict()["timestamp"].endswith("+00:00")


@pytest.mark.parametrize(
    ("number", "text"),
    [("67 00", "BAL"), ("6700", ""), ("6700", "two\nlines"), ("6700", 'it\'s "both"')],
)
def test_bad_numbers_and_texts_are_refused_before_mmcli(mmcli: Any, number: str, text: str) -> None:
    with pytest.raises(UsageError):
        modem.send_sms(IMEI, number, text)
    assert mmcli.calls() == []


def test_a_text_with_a_quote_is_quoted_with_the_other(mmcli: Any) -> None:
    modem.send_sms(IMEI, ULTRA, "it's BAL")
    create = next(c for c in mmcli.calls() if c["action"].startswith("sms-create"))
    assert f"--messaging-create-sms=number='{ULTRA}',text=\"it's BAL\"" in create["argv"]
    assert mmcli.texts()[0]["text"] == "it's BAL"


# ---- the query -------------------------------------------------------------------------------


def test_the_reply_is_read_and_both_texts_deleted(mmcli: Any) -> None:
    exchange = query()
    assert exchange.reply.text == BALANCE
    assert exchange.reply.number == ULTRA
    assert exchange.sent is not None
    assert exchange.reply.timestamp is not None
    assert exchange.reply.timestamp >= exchange.sent_at - modem.CLOCK_SLACK
    deleted = {a.split()[-1] for a in mmcli.actions() if a.startswith("sms-delete")}
    assert deleted == {exchange.sent.index, exchange.reply.index}
    assert mmcli.texts() == []


def test_keep_messages_leaves_both(mmcli: Any) -> None:
    query(keep=True)
    assert [t["text"] for t in mmcli.texts()] == ["BAL", BALANCE]
    assert not any(a.startswith("sms-delete") for a in mmcli.actions())


def test_a_text_from_another_number_is_not_the_reply_and_is_kept(mmcli: Any) -> None:
    answers(
        mmcli,
        {"from": "+12125550100", "text": "Call me back, $5 owed", "after": 0.1},
        {"from": ULTRA, "text": BALANCE, "after": 0.5},
    )
    assert query().reply.text == BALANCE
    assert [t["number"] for t in mmcli.texts()] == ["+12125550100"]


def test_texts_out_of_order_the_readable_one_is_taken(mmcli: Any) -> None:
    """A notice first and the balance stamped earlier but listed later: the notice is
    passed over (accept refuses it), the balance taken."""
    answers(
        mmcli,
        {"from": ULTRA, "text": "Thanks for using Ultra!", "after": 0.1, "stamp": 2},
        {"from": ULTRA, "text": BALANCE, "after": 0.6, "stamp": 1},
    )

    def accept(sms: modem.Sms) -> str | None:
        return None if "$" in (sms.text or "") else "no balance in it"

    exchange = query(accept=accept)
    assert exchange.reply.text == BALANCE
    assert [s.text for s in exchange.ignored] == ["Thanks for using Ultra!"]
    assert mmcli.texts() == []


def test_a_second_text_from_the_number_is_deleted_with_the_reply(mmcli: Any) -> None:
    answers(
        mmcli,
        {"from": ULTRA, "text": BALANCE, "after": 0.2, "stamp": 0.1},
        {"from": ULTRA, "text": "Refill now at ultra.me", "after": 0.2, "stamp": 0.2},
    )
    exchange = query()
    assert exchange.reply.text == BALANCE
    assert [s.text for s in exchange.ignored] == ["Refill now at ultra.me"]
    assert mmcli.texts() == []


def test_a_reply_stamped_before_the_send_is_dropped_not_matched(mmcli: Any) -> None:
    """It came after the send but the network stamped it two minutes before: the answer to
    an earlier query, delivered late. It is deleted and the wait goes on."""
    answers(
        mmcli,
        {"from": ULTRA, "text": "Your balance is $99.00.", "after": 0.1, "stamp": -120},
        {"from": ULTRA, "text": BALANCE, "after": 0.5},
    )
    exchange = query()
    assert exchange.reply.text == BALANCE
    assert [s.text for s in exchange.ignored] == ["Your balance is $99.00."]
    assert mmcli.texts() == []


def test_a_reply_after_the_timeout_is_never_matched_to_the_next_query(mmcli: Any) -> None:
    answers(mmcli, {"from": ULTRA, "text": "Your balance is $99.00.", "after": 2.5})
    with pytest.raises(modem.NoSmsReply, match="no reply from 6700 within 2s"):
        query(timeout=2.0)
    wait_until = datetime.now(UTC) + timedelta(seconds=5)
    while not any(t["text"].endswith("$99.00.") for t in modem_texts(mmcli)):
        assert datetime.now(UTC) < wait_until
    answers(mmcli, {"from": ULTRA, "text": BALANCE, "after": 0.3})
    exchange = query()
    assert exchange.reply.text == BALANCE
    assert [s.text for s in exchange.ignored] == ["Your balance is $99.00."]
    assert mmcli.texts() == []


def modem_texts(fake: Any) -> list[dict[str, Any]]:
    """The texts listed now (arrived), not those still on their way."""
    now = datetime.now(UTC).timestamp()
    return [t for t in fake.texts() if t["visible_at"] <= now]


def test_a_multi_part_reply_is_read_once_whole(mmcli: Any) -> None:
    answers(mmcli, {"from": ULTRA, "text": BALANCE, "after": 0.1, "receiving_for": 0.5})
    assert query().reply.text == BALANCE


def test_only_texts_stamped_before_the_send_say_so(mmcli: Any) -> None:
    answers(mmcli, {"from": ULTRA, "text": "Your balance is $99.00.", "after": 0.1, "stamp": -120})
    with pytest.raises(
        modem.NoSmsReply, match=r"1 text\(s\) from it were stamped before"
    ) as caught:
        query(timeout=2.0)
    assert caught.value.raw == "Your balance is $99.00."
    assert mmcli.texts() == []


def test_no_reply_fails_and_deletes_the_query(mmcli: Any) -> None:
    answers(mmcli)
    with pytest.raises(modem.NoSmsReply) as caught:
        query(timeout=2.0)
    assert "no reply from 6700" in str(caught.value)
    assert mmcli.texts() == []


def test_only_unreadable_texts_fail_with_the_reason_and_the_texts(mmcli: Any) -> None:
    answers(mmcli, {"from": ULTRA, "text": "Service unavailable, try later", "after": 0.1})
    with pytest.raises(modem.UnreadableSms) as caught:
        query(timeout=2.0, accept=lambda sms: "the reply is a notice")
    assert "the reply is a notice" in str(caught.value)
    assert caught.value.raw == "Service unavailable, try later"
    assert mmcli.texts() == []


def test_a_modem_without_messaging_says_so_and_sends_nothing(mmcli: Any) -> None:
    mmcli.scenario["modems"][0]["messaging"] = False
    mmcli.save()
    with pytest.raises(modem.SmsUnsupported, match="cannot send or receive SMS") as caught:
        query()
    assert "no messaging capabilities" in (caught.value.raw or "")
    assert not any(a.startswith("sms-create") for a in mmcli.actions())


@pytest.mark.parametrize("step", ["create", "send"])
def test_a_full_storage_says_so_and_leaves_nothing(mmcli: Any, step: str) -> None:
    mmcli.scenario["modems"][0]["storage_full"] = step
    mmcli.save()
    with pytest.raises(modem.SmsStorageFull, match="SMS storage is full") as caught:
        query()
    assert "MemoryFull" in (caught.value.raw or "")
    assert mmcli.texts() == []


def test_a_ussd_code_answered_by_text(mmcli: Any) -> None:
    mmcli.scenario["modems"][0]["codes"] = {
        "*3282#": {
            "reply": "Your request is being processed. You will receive a text shortly.",
            "sms": [{"from": "1111301000", "text": "AT&T Free Msg: 1.2GB used", "after": 0.3}],
        }
    }
    mmcli.save()
    exchange = modem.sms_query(IMEI, "1111301000", ussd="*3282#", timeout=5.0)
    assert exchange.reply.text == "AT&T Free Msg: 1.2GB used"
    assert exchange.ussd_reply is not None and "being processed" in exchange.ussd_reply
    assert exchange.sent is None
    assert mmcli.texts() == []
    assert mmcli.status() == "idle"


def test_a_ussd_code_whose_text_never_comes_fails_with_the_code_s_own_reply(mmcli: Any) -> None:
    mmcli.scenario["modems"][0]["codes"] = {"*3282#": {"reply": "Invalid MMI code"}}
    mmcli.save()
    with pytest.raises(modem.NoSmsReply, match="the code's own reply: Invalid MMI code") as caught:
        modem.sms_query(IMEI, "1111301000", ussd="*3282#", timeout=2.0)
    assert "Invalid MMI code" in (caught.value.raw or "")
    assert mmcli.status() == "idle"


def test_a_query_needs_a_text_or_a_code(mmcli: Any) -> None:
    with pytest.raises(UsageError):
        modem.sms_query(IMEI, ULTRA, timeout=2.0)
    with pytest.raises(UsageError):
        modem.sms_query(IMEI, ULTRA, to=ULTRA, text="BAL", ussd="*3282#", timeout=2.0)
    assert mmcli.calls() == []


def test_a_polkit_refusal_names_the_messaging_rule(mmcli: Any) -> None:
    mmcli.scenario["fail"] = {
        "sms-list": {
            "stderr": "error: couldn't list SMS: 'GDBus.Error:org.freedesktop.ModemManager1."
            "Error.Core.Unauthorized: PolicyKit authorization failed: not authorized for "
            "'org.freedesktop.ModemManager1.Messaging''\n"
        }
    }
    mmcli.save()
    with pytest.raises(modem.ModemNotAuthorized, match=r"ModemManager1\.Messaging \(see"):
        modem.list_sms(IMEI)


# ---- the CLI ---------------------------------------------------------------------------------


def test_cli_sms_send_and_list(
    mmcli: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.cli import main

    assert main(["sms", "send", "--modem", IMEI, ULTRA, "BAL"]) == 0
    assert "sent SMS 0 to 6700" in capsys.readouterr().out
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    rows: list[dict[str, Any]] = []
    while len(rows) < 2:
        assert datetime.now(UTC) < deadline
        assert main(["sms", "list", "--modem", IMEI, "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
    assert [(r["index"], r["state"], r["number"], r["text"]) for r in rows] == [
        ("0", "sent", ULTRA, "BAL"),
        ("1", "received", ULTRA, BALANCE),
    ]
    assert main(["sms", "list", "--modem", IMEI]) == 0
    table = capsys.readouterr().out
    assert "received" in table and BALANCE in table
    mmcli.scenario["modems"][0]["messaging"] = False
    mmcli.save()
    assert main(["sms", "list", "--modem", IMEI]) == 1
    assert "cannot send or receive SMS" in capsys.readouterr().err


def test_a_modem_held_by_another_process_makes_sms_send_wait_and_give_up(
    mmcli: Any, tmp_path: Path
) -> None:
    """`sms send` takes the modem's lock beside the config's database, as `ussd` does: held
    here (as the daemon would hold it), the run waits its bound and sends nothing."""
    database = tmp_path / "history.db"
    config = tmp_path / "c.toml"
    config.write_text(f'[monitor]\ndatabase = "{database}"\n')
    lock = database.with_name(f"{database.name}.modem-{IMEI}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        args = ["--config", str(config), "sms", "send", "--modem", IMEI, "--timeout", "0.5"]
        run = subprocess.run(
            [sys.executable, "-m", "monitor", *args, ULTRA, "BAL"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        os.close(fd)
    assert run.returncode != 0 and "busy" in run.stderr and "another process" in run.stderr
    assert not any(a.startswith("sms-") for a in mmcli.actions())
