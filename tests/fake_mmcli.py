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
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

# Run as mmcli it imports nothing more than the above: it starts dozens of times per test run.

ENV = "FAKE_MMCLI_SCENARIO"
MODEM_PATH = "/org/freedesktop/ModemManager1/Modem/{}"
SIM_PATH = "/org/freedesktop/ModemManager1/SIM/{}"
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
    with open(path, "w") as file:
        file.write(text)


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
    directory: str, modem: dict[str, Any], code: str, timeout: int, entry: dict[str, Any]
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


def main(argv: list[str]) -> int:
    scenario_path = os.environ[ENV]
    directory = os.path.dirname(scenario_path)
    scenario = json.loads(_read(scenario_path))
    timeout = 30
    modem_arg = sim_arg = None
    action = None
    code = answer = ""
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
        elif arg == "--3gpp-ussd-status":
            action = "status"
        elif arg == "--3gpp-ussd-cancel":
            action = "cancel"
        elif arg.startswith("--3gpp-ussd-initiate="):
            action, code = "initiate", arg.split("=", 1)[1]
        elif arg.startswith("--3gpp-ussd-respond="):
            action, answer = "respond", arg.split("=", 1)[1]
    if action is None:
        action = "sim" if sim_arg else "modem"
    entry = {
        "argv": argv,
        "action": f"initiate {code}" if code else f"respond {answer}" if answer else action,
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
    result = _initiate(directory, modem, code, timeout, entry)
    _log(directory, {"action_end": entry["action"], "end": time.time()})
    return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
