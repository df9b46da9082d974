"""A fake `mmcli` that replays a JSON scenario, for tests of monitor.modem and the ussd adapter.

`install(tmp_path, monkeypatch, scenario)` writes this file as an executable `mmcli` (run by
the test's own interpreter) first on PATH, and the scenario beside it. Run as a program, it
answers what monitor.modem asks (`-L -J`, `-m PATH -J`, `-i PATH -J`, `--3gpp-ussd-status`,
`--3gpp-ussd-cancel`, `--3gpp-ussd-initiate=CODE`) the way mmcli does, from the scenario:

    {"modems": [{"index": 0, "equipment_id": "867...", "model": "EG25-G", "state": "registered",
                 "sim": {"index": 0, "iccid": "8901..."}, "ussd_status": "idle",
                 "codes": {"#225#": {"reply": "Account Balance $15.00."}}}],
     "fail": {"list": {"stderr": "error: ...", "exit": 1}}}

A code's answer: `reply` (printed as mmcli does), `stdout`/`stderr`/`exit` verbatim, `sleep`
seconds first, `hang` (never answers), `mmcli_timeout` (answers, after at most that many
seconds, as mmcli does when its own --timeout passes), `menu` (leaves the session waiting
for a user response), and `steps` for a menu walked by `--3gpp-ussd-respond=ANSWER`: keyed
by the answers so far joined with "/" ("2", "2/1"), each `{"reply": ..., "menu": bool,
"sleep": s, "silent": bool, "lands_after": s}`; an answer with no step ends the session
with "Invalid input" (as a network does; our wording). `silent` prints the empty reply
that a Quectel RM530N-GL on ModemManager 1.24.2 prints on this path (CERALIVE/CeraUI,
apps/backend/src/tests/modem-ussd.test.ts, commit 6293702: "mmcli prints an EMPTY reply
on this path"), the text landing in the status's `network-request` (a menu) or
`network-notification` (the end) `lands_after` seconds later, the old text kept until
then (that board measured ~570 ms); a response outside a menu is refused (our wording of
ModemManager's WrongState error). A modem's `reported_status` is what the status query
says whatever the state (a race); `gone` makes it vanish after the listing; `fail` makes an action
("list", "modem", "sim", "status", "cancel") fail. The USSD session state lives in a file,
so a cancel is seen by the next call. Every call is logged to calls.jsonl; an initiate that
starts while another on the same modem is still running is logged as an overlap and refused
as ModemManager refuses it.

Messaging, as ModemManager 1.20 prints it (tag 1.20.6, commit
6aa0ff583d04aea88b4da7a1c20049f57062dab6): `-m M --messaging-list-sms -J` prints
`{"modem.messaging.sms": [paths]}` (the field's dotted key whole: cli/mmcli-output.c,
dump_output_list_json); `-m M --messaging-create-sms="number='N',text='T'" -J` prints
`{"modem": {"messaging": {"created-sms": PATH}}}` (MMC_F_MESSAGING_CREATED_SMS); `-s S -J`
prints `{"sms": {"dbus-path", "content": {"number", "text", "data"}, "properties":
{"pdu-type", "state", "storage", "timestamp", ...}}}` with "--" for unknown values
(cli/mmcli-sms.c print_sms_info), timestamps as "2011-02-28T11:50:50-05"
(src/tests/test-sms-part-3gpp.c); `-s S --send` prints "successfully sent the SMS" and
`--messaging-delete-sms=S` "successfully deleted SMS from modem"; a modem without the
interface gets "error: modem has no messaging capabilities" (cli/mmcli-modem-messaging.c,
ensure_modem_messaging). A modem's `messaging: false` removes the interface;
`storage_full: "create"` or `"send"` fails that step with Message.MemoryFull ("Memory
full" is ModemManager's text for +CMS ERROR: 322, src/mm-error-helpers.c; ModemManager
1.20 creates a text in memory, src/mm-iface-modem-messaging.c handle_create_auth_ready, so
which step meets a full storage depends on the modem: both are offered); `sms` lists texts
already on the modem (`{"from", "text", "stamp": ISO}`); `sms_answers`, keyed by
"NUMBER TEXT" of a text sent, lists the texts that come back, each `{"from", "text",
"after": seconds after the send it is listed, "stamp": seconds from the send its network
timestamp says (default: after), "receiving_for": seconds listed as "receiving" first}`;
a USSD code's `sms` lists the same for the code. A text nobody answers gets nothing back.
Texts live in sms.json beside the scenario, so a reply that comes after its query's
timeout is still there for the next one.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

# Run as mmcli it imports nothing more than the above: it starts dozens of times per test run.

ENV = "FAKE_MMCLI_SCENARIO"
MODEM_PATH = "/org/freedesktop/ModemManager1/Modem/{}"
SIM_PATH = "/org/freedesktop/ModemManager1/SIM/{}"
SMS_PATH = "/org/freedesktop/ModemManager1/SMS/{}"
SMS_ZONE = timezone(timedelta(hours=-5))
"""The zone of the network's timestamps: ModemManager prints the SMSC's offset."""
NO_MESSAGING = "error: modem has no messaging capabilities\n"
MEMORY_FULL = "'GDBus.Error:org.freedesktop.ModemManager1.Error.Message.MemoryFull: Memory full'"
ALREADY_ACTIVE = (
    "error: couldn't initiate USSD session: 'GDBus.Error:org.freedesktop.ModemManager1.Error."
    "Core.WrongState: Cannot initiate USSD: a session is already active'\n"
)


# ---- the test side -------------------------------------------------------------------------


class FakeMmcli:
    """The installed fake: change `scenario` and call `save()`; read what it was asked."""

    def __init__(self, directory: Path, scenario: dict[str, Any]) -> None:
        self.directory = directory
        self.scenario = scenario

    @property
    def scenario_path(self) -> Path:
        return self.directory / "scenario.json"

    def save(self) -> None:
        self.scenario_path.write_text(json.dumps(self.scenario))

    def calls(self) -> list[dict[str, Any]]:
        log = self.directory / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines() if line]

    def actions(self) -> list[str]:
        """What each call did: "list", "modem", "sim", "status", "cancel", "initiate #225#"."""
        return [c["action"] for c in self.calls() if "action" in c]

    def overlaps(self) -> int:
        return sum(1 for c in self.calls() if c.get("overlap"))

    def status(self, index: int = 0) -> str:
        return _status(str(self.directory), self.scenario["modems"][index])

    def texts(self, index: int = 0) -> list[dict[str, Any]]:
        """The texts the modem holds now (arrived or not yet), as the fake keeps them."""
        modem = self.scenario["modems"][index]
        return [
            m for m in _messages(str(self.directory), self.scenario) if m["modem"] == modem["index"]
        ]


def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scenario: dict[str, Any]) -> FakeMmcli:
    from pathlib import Path

    directory = tmp_path / "fake-mmcli"
    directory.mkdir()
    program = directory / "mmcli"
    program.write_text(f"#!{sys.executable} -S\n" + Path(__file__).read_text())
    program.chmod(0o755)
    fake = FakeMmcli(directory, scenario)
    fake.save()
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv(ENV, str(fake.scenario_path))
    return fake


# ---- the mmcli side -------------------------------------------------------------------------


def _read(path: str) -> str:
    with open(path) as file:
        return file.read()


def _write(path: str, text: str) -> None:
    """Whole or not at all, as ModemManager's own state changes: an mmcli killed mid-call
    (a timeout on a loaded machine) must not leave a cut file for the next call to read."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as file:
        file.write(text)
    os.replace(temporary, path)


def _status(directory: str, modem: dict[str, Any]) -> str:
    path = os.path.join(directory, f"status-{modem['index']}")
    return _read(path) if os.path.exists(path) else modem.get("ussd_status", "idle")


def _set_status(directory: str, modem: dict[str, Any], status: str) -> None:
    _write(os.path.join(directory, f"status-{modem['index']}"), status)


def _log(directory: str, entry: dict[str, Any]) -> None:
    with open(os.path.join(directory, "calls.jsonl"), "a") as log:
        log.write(json.dumps(entry) + "\n")


def _answer(out: str = "", err: str = "", code: int = 0) -> int:
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


def _modem_json(modem: dict[str, Any]) -> dict[str, Any]:
    sim = modem.get("sim")
    return {
        "modem": {
            "dbus-path": MODEM_PATH.format(modem["index"]),
            "3gpp": {
                "imei": modem.get("imei", modem.get("equipment_id", "--")),
                "operator-name": modem.get("operator", "--"),
                "registration-state": "home",
                "enabled-locks": [],
            },
            "generic": {
                "equipment-identifier": modem.get("equipment_id", "--"),
                "manufacturer": modem.get("manufacturer", "QUALCOMM INCORPORATED"),
                "model": modem.get("model", "--"),
                "state": modem.get("state", "registered"),
                "sim": SIM_PATH.format(sim["index"]) if sim else "--",
                "access-technologies": modem.get("access", ["lte"]),
                "own-numbers": modem.get("numbers", []),
                "signal-quality": {"recent": "yes", "value": "60"},
            },
        }
    }


def _find(scenario: dict[str, Any], wanted: str) -> dict[str, Any] | None:
    for modem in scenario.get("modems", []):
        gone = modem.get("gone", False)
        if not gone and wanted in (str(modem["index"]), MODEM_PATH.format(modem["index"])):
            return modem
    return None


def _claim(busy: str) -> bool:
    """Mark the modem as in a session; False while another live initiate holds it (one that
    was killed, for a timeout, no longer counts)."""
    for _ in range(2):
        try:
            fd = os.open(busy, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = _read(busy) if os.path.exists(busy) else ""
            try:
                os.kill(int(holder), 0)
            except ProcessLookupError:
                if os.path.exists(busy):
                    os.unlink(busy)
                continue
            except ValueError:
                pass  # being claimed right now: live
            return False
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True
    return False


def _menu_path(directory: str, modem: dict[str, Any]) -> str:
    return os.path.join(directory, f"menu-{modem['index']}.json")


def _menu(directory: str, modem: dict[str, Any]) -> dict[str, Any]:
    path = _menu_path(directory, modem)
    return json.loads(_read(path)) if os.path.exists(path) else {}


def _set_menu(directory: str, modem: dict[str, Any], **menu: Any) -> None:
    _write(_menu_path(directory, modem), json.dumps(menu))


def _texts(directory: str, modem: dict[str, Any]) -> tuple[str, str]:
    """What the status shows: (network-request, network-notification), "--" for none."""
    menu = _menu(directory, modem)
    landed = time.time() >= menu.get("lands_at", 0)
    shown = menu.get("now" if landed else "before", {})
    return shown.get("request") or "--", shown.get("notification") or "--"


def _respond(directory: str, modem: dict[str, Any], answer: str) -> int:
    if _status(directory, modem) != "user-response":
        return _answer(
            err="error: couldn't send response in USSD session: 'GDBus.Error:org.freedesktop."
            "ModemManager1.Error.Core.WrongState: Cannot respond USSD: no active session'\n",
            code=1,
        )
    menu = _menu(directory, modem)
    walked = [*menu.get("path", []), answer]
    steps = modem.get("codes", {}).get(menu.get("code", ""), {}).get("steps", {})
    step = steps.get("/".join(walked), {"reply": "Invalid input"})
    time.sleep(step.get("sleep", 0))
    is_menu = bool(step.get("menu"))
    _set_status(directory, modem, "user-response" if is_menu else "idle")
    text = {"request" if is_menu else "notification": step["reply"]}
    before = menu.get("now", {})
    lands_at = time.time() + step.get("lands_after", 0)
    _set_menu(
        directory,
        modem,
        code=menu.get("code"),
        path=walked,
        before=before,
        now=text,
        lands_at=lands_at,
    )
    shown = "" if step.get("silent") else step["reply"]
    return _answer(
        f"response successfully sent in USSD session; new reply from network: '{shown}'\n"
    )


def _initiate(
    directory: str,
    scenario: dict[str, Any],
    modem: dict[str, Any],
    code: str,
    timeout: int,
    entry: dict[str, Any],
) -> int:
    busy = os.path.join(directory, f"busy-{modem['index']}")
    if not _claim(busy):
        _log(directory, {**entry, "overlap": True})
        return _answer(err=ALREADY_ACTIVE, code=1)
    if _status(directory, modem) in ("active", "user-response"):
        os.unlink(busy)
        return _answer(err=ALREADY_ACTIVE, code=1)
    _set_status(directory, modem, "active")
    try:
        answer = modem.get("codes", {}).get(code)
        if answer is None:
            _set_status(directory, modem, "idle")
            return _answer(
                err="error: couldn't initiate USSD session: 'GDBus.Error:org.freedesktop."
                "ModemManager1.Error.Core.Failed: unknown USSD code'\n",
                code=1,
            )
        time.sleep(answer.get("sleep", 0))
        if answer.get("hang"):
            time.sleep(3600)
        if answer.get("mmcli_timeout"):
            time.sleep(min(timeout, answer["mmcli_timeout"]))
            return _answer(
                err="error: couldn't initiate USSD session: 'Timeout was reached'\n", code=1
            )
        if answer.get("sms"):
            store = _store(directory, scenario)
            _incoming(store, modem, answer["sms"])
            _save_store(directory, store)
        if "reply" in answer:
            _set_status(directory, modem, "user-response" if answer.get("menu") else "idle")
            first = {"request": answer["reply"]} if answer.get("menu") else {}
            _set_menu(directory, modem, code=code, path=[], now=first)
            return _answer(f"USSD session initiated; new reply from network: '{answer['reply']}'\n")
        _set_status(directory, modem, "idle")
        return _answer(
            answer.get("stdout", ""),
            answer.get("stderr", ""),
            answer.get("exit", 1 if answer.get("stderr") else 0),
        )
    finally:
        os.unlink(busy)


# ---- messaging --------------------------------------------------------------------------------


def _stamp(at: float) -> str:
    """A network timestamp as ModemManager prints one: local time and an offset of hours."""
    local = datetime.fromtimestamp(at, UTC).astimezone(SMS_ZONE)
    hours = int(SMS_ZONE.utcoffset(None).total_seconds() // 3600)
    return f"{local:%Y-%m-%dT%H:%M:%S}{hours:+03d}"


def _sms_file(directory: str) -> str:
    return os.path.join(directory, "sms.json")


def _store(directory: str, scenario: dict[str, Any]) -> dict[str, Any]:
    path = _sms_file(directory)
    if os.path.exists(path):
        return json.loads(_read(path))
    store: dict[str, Any] = {"next": 0, "messages": []}
    for modem in scenario.get("modems", []):
        for text in modem.get("sms", []):
            stamp = datetime.fromisoformat(text["stamp"]).timestamp() if "stamp" in text else 0
            _add(store, modem, number=text["from"], text=text["text"], stamp=stamp)
    return store


def _save_store(directory: str, store: dict[str, Any]) -> None:
    _write(_sms_file(directory), json.dumps(store))


def _messages(directory: str, scenario: dict[str, Any]) -> list[dict[str, Any]]:
    return list(_store(directory, scenario)["messages"])


def _add(store: dict[str, Any], modem: dict[str, Any], **fields: Any) -> dict[str, Any]:
    message = {
        "index": store["next"],
        "modem": modem["index"],
        "number": None,
        "text": None,
        "pdu_type": "deliver",
        "state": "received",
        "storage": "me",
        "stamp": None,
        "visible_at": 0,
        "whole_at": 0,
        **fields,
    }
    store["next"] += 1
    store["messages"].append(message)
    return message


def _incoming(store: dict[str, Any], modem: dict[str, Any], answers: list[Any]) -> None:
    """Schedule the texts that answer a send (or a USSD code) made now."""
    now = time.time()
    for answer in answers:
        after = answer.get("after", 0)
        _add(
            store,
            modem,
            number=answer["from"],
            text=answer["text"],
            stamp=now + answer.get("stamp", after),
            visible_at=now + after,
            whole_at=now + after + answer.get("receiving_for", 0),
        )


def _visible(store: dict[str, Any], modem: dict[str, Any]) -> list[dict[str, Any]]:
    now = time.time()
    return [m for m in store["messages"] if m["modem"] == modem["index"] and m["visible_at"] <= now]


def _lookup(store: dict[str, Any], wanted: str) -> dict[str, Any] | None:
    now = time.time()
    for message in store["messages"]:
        shown = wanted in (str(message["index"]), SMS_PATH.format(message["index"]))
        if shown and message["visible_at"] <= now:
            return message
    return None


def _sms_json(message: dict[str, Any]) -> dict[str, Any]:
    state = message["state"]
    if state == "received" and time.time() < message["whole_at"]:
        state = "receiving"
    submit = message["pdu_type"] == "submit"
    props = {
        "class": "--",
        "delivery-report": "not requested" if submit else "--",
        "delivery-state": "--",
        "discharge-timestamp": "--",
        "message-reference": "--",
        "pdu-type": message["pdu_type"],
        "service-category": "--",
        "smsc": "--" if submit else "+12063130004",
        "state": state,
        "storage": message["storage"] if message["storage"] else "unknown",
        "teleservice-id": "--",
        "timestamp": _stamp(message["stamp"]) if message["stamp"] else "--",
        "validity": "--",
    }
    content = {"data": "--", "number": message["number"] or "--", "text": message["text"] or "--"}
    return {
        "sms": {
            "content": content,
            "dbus-path": SMS_PATH.format(message["index"]),
            "properties": props,
        }
    }


def _properties(text: str) -> dict[str, str]:
    """`number='6700',text='BAL'` as libmm-glib reads it: a quoted value ends at the same
    quote, no escapes (mm_common_parse_key_value_string)."""
    found: dict[str, str] = {}
    rest = text
    while rest:
        key, _, rest = rest.partition("=")
        quote = rest[:1]
        if quote in ("'", '"'):
            value, _, rest = rest[1:].partition(quote)
        else:
            value, _, rest = rest.partition(",")
            rest = "," + rest if rest else ""
        found[key.strip()] = value
        rest = rest.lstrip(" ").removeprefix(",").lstrip(" ")
    return found


def _messaging(
    directory: str,
    scenario: dict[str, Any],
    modem: dict[str, Any],
    action: str,
    value: str,
    json_out: bool,
) -> int:
    if not modem.get("messaging", True):
        return _answer(err=NO_MESSAGING, code=1)
    store = _store(directory, scenario)
    if action == "sms-list":
        paths = [SMS_PATH.format(m["index"]) for m in _visible(store, modem)]
        _save_store(directory, store)
        return _answer(json.dumps({"modem.messaging.sms": paths}) + "\n")
    if action == "sms-create":
        if modem.get("storage_full") == "create":
            return _answer(err=f"error: couldn't create new SMS: {MEMORY_FULL}\n", code=1)
        props = _properties(value)
        message = _add(
            store,
            modem,
            number=props.get("number"),
            text=props.get("text"),
            pdu_type="submit",
            state="unknown",
            storage=None,
        )
        _save_store(directory, store)
        path = SMS_PATH.format(message["index"])
        if json_out:
            return _answer(json.dumps({"modem": {"messaging": {"created-sms": path}}}) + "\n")
        return _answer(f"  -----------------------\n  Messaging | created sms: {path}\n")
    message = _lookup(store, value)
    if message is None or message["modem"] != modem["index"]:
        return _answer(
            err=f"error: couldn't find SMS at '{value}': 'not found in any modem'\n", code=1
        )
    store["messages"].remove(message)
    _save_store(directory, store)
    return _answer("successfully deleted SMS from modem\n")


def _sms(directory: str, scenario: dict[str, Any], wanted: str, send: bool) -> int:
    store = _store(directory, scenario)
    message = _lookup(store, wanted)
    if message is None:
        return _answer(
            err=f"error: couldn't find SMS at '{wanted}': 'not found in any modem'\n", code=1
        )
    if not send:
        return _answer(json.dumps(_sms_json(message)) + "\n")
    modem = next(m for m in scenario["modems"] if m["index"] == message["modem"])
    if modem.get("storage_full") == "send":
        return _answer(err=f"error: couldn't send the SMS: {MEMORY_FULL}\n", code=1)
    message["state"] = "sent"
    answers = modem.get("sms_answers", {}).get(f"{message['number']} {message['text']}", [])
    _incoming(store, modem, answers)
    _save_store(directory, store)
    return _answer("successfully sent the SMS\n")


def main(argv: list[str]) -> int:
    scenario_path = os.environ[ENV]
    directory = os.path.dirname(scenario_path)
    scenario = json.loads(_read(scenario_path))
    timeout = 30
    modem_arg = sim_arg = sms_arg = None
    action = None
    code = answer = value = ""
    json_out = False
    args = iter(argv)
    for arg in args:
        if arg.startswith("--timeout="):
            timeout = int(arg.split("=", 1)[1])
        elif arg == "-J":
            json_out = True
        elif arg == "-L":
            action = "list"
        elif arg == "-m":
            modem_arg = next(args)
        elif arg == "-i":
            sim_arg = next(args)
        elif arg == "-s":
            sms_arg = next(args)
        elif arg == "--send":
            action = "sms-send"
        elif arg == "--messaging-list-sms":
            action = "sms-list"
        elif arg.startswith("--messaging-create-sms="):
            action, value = "sms-create", arg.split("=", 1)[1]
        elif arg.startswith("--messaging-delete-sms="):
            action, value = "sms-delete", arg.split("=", 1)[1]
        elif arg == "--3gpp-ussd-status":
            action = "status"
        elif arg == "--3gpp-ussd-cancel":
            action = "cancel"
        elif arg.startswith("--3gpp-ussd-initiate="):
            action, code = "initiate", arg.split("=", 1)[1]
        elif arg.startswith("--3gpp-ussd-respond="):
            action, answer = "respond", arg.split("=", 1)[1]
    if action is None:
        action = "sms-read" if sms_arg else "sim" if sim_arg else "modem"
    shown = f"initiate {code}" if code else f"respond {answer}" if answer else action
    if action in ("sms-read", "sms-send"):
        shown = f"{action} {sms_arg.rsplit('/', 1)[-1] if sms_arg else ''}"
    elif action == "sms-delete":
        shown = f"{action} {value.rsplit('/', 1)[-1]}"
    elif action == "sms-create":
        props = _properties(value)
        shown = f"{action} {props.get('number')} {props.get('text')}"
    entry = {
        "argv": argv,
        "action": shown,
        "timeout": timeout,
        "json": json_out,
        "start": time.time(),
        "pid": os.getpid(),
    }
    _log(directory, entry)
    failure = scenario.get("fail", {}).get(action)
    if failure:
        return _answer(failure.get("stdout", ""), failure.get("stderr", ""), failure.get("exit", 1))
    if action == "list":
        paths = [MODEM_PATH.format(m["index"]) for m in scenario.get("modems", [])]
        return _answer(json.dumps({"modem-list": paths}) + "\n")
    if action in ("sms-read", "sms-send"):
        return _sms(directory, scenario, sms_arg or "", action == "sms-send")
    if action == "sim":
        for modem in scenario.get("modems", []):
            sim = modem.get("sim")
            if sim and sim_arg in (str(sim["index"]), SIM_PATH.format(sim["index"])):
                props = {
                    "iccid": sim.get("iccid", "--"),
                    "operator-name": sim.get("operator", "--"),
                }
                body = {"sim": {"dbus-path": SIM_PATH.format(sim["index"]), "properties": props}}
                return _answer(json.dumps(body) + "\n")
        return _answer(err="error: couldn't find SIM\n", code=1)
    modem = _find(scenario, modem_arg or "")
    if modem is None:
        return _answer(err="error: couldn't find modem\n", code=1)
    if action == "modem":
        return _answer(json.dumps(_modem_json(modem)) + "\n")
    if action == "status":
        status = modem.get("reported_status") or _status(directory, modem)
        request, notification = _texts(directory, modem)
        ussd = {
            "status": status,
            "network-request": request,
            "network-notification": notification,
        }
        return _answer(json.dumps({"modem": {"3gpp": {"ussd": ussd}}}) + "\n")
    if action == "cancel":
        _set_status(directory, modem, "idle")
        _set_menu(directory, modem)
        return _answer("successfully cancelled USSD session\n")
    if action == "respond":
        return _respond(directory, modem, answer)
    if action.startswith("sms-"):
        return _messaging(directory, scenario, modem, action, value, json_out)
    result = _initiate(directory, scenario, modem, code, timeout, entry)
    _log(directory, {"action_end": entry["action"], "end": time.time()})
    return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
