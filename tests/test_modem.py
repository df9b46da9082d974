"""monitor.modem against a fake `mmcli` (tests/fake_mmcli.py) first on PATH: listing, finding a
modem by IMEI or ICCID, USSD replies, errors, timeouts, stale sessions and serialisation."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import fake_mmcli
import pytest

from monitor import modem
from monitor.errors import CheckFailed, MonitorError, UsageError

IMEI = "867000000000001"
ICCID = "8901260000000000001"
T_MOBILE = (
    "Current plan active until 08/10/2022 and will renew for $15.00. Account Balance $15.00. "
    "Add money by dialing *233 or redeem a refill card."
)


def a_modem(index: int = 0, **overrides: Any) -> dict[str, Any]:
    modem_data: dict[str, Any] = {
        "index": index,
        "equipment_id": IMEI if index == 0 else f"86700000000000{index + 1}",
        "manufacturer": "Quectel",
        "model": "EG25-G",
        "state": "registered",
        "operator": "T-Mobile",
        "numbers": ["+15550100"],
        "sim": {"index": index, "iccid": ICCID if index == 0 else f"890126000000000000{index + 1}"},
        "codes": {"#225#": {"reply": T_MOBILE}},
    }
    modem_data.update(overrides)
    return modem_data


@pytest.fixture(autouse=True)
def _quick_kill(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hung mmcli is killed this long after its --timeout (2s in production)."""
    monkeypatch.setattr(modem, "KILL_GRACE", 0.2)


@pytest.fixture
def mmcli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    return fake_mmcli.install(tmp_path, monkeypatch, {"modems": [a_modem()]})


def set_codes(fake: Any, **codes: dict[str, Any]) -> None:
    fake.scenario["modems"][0]["codes"] = {k.replace("_", "#"): v for k, v in codes.items()}
    fake.save()


# ---- listing and finding -------------------------------------------------------------------


def test_list_modems_reads_ids_sim_and_state(mmcli: Any) -> None:
    mmcli.scenario["modems"].append(a_modem(3, sim=None, state="disabled"))
    mmcli.save()
    first, second = modem.list_modems()
    assert first.index == 0
    assert first.dbus_path == "/org/freedesktop/ModemManager1/Modem/0"
    assert first.equipment_id == IMEI
    assert (first.manufacturer, first.model, first.state) == ("Quectel", "EG25-G", "registered")
    assert first.operator == "T-Mobile"
    assert first.own_numbers == ("+15550100",)
    assert first.access_technologies == ("lte",)
    assert first.sim_iccid == ICCID
    assert (second.index, second.state, second.sim_path, second.sim_iccid) == (
        3,
        "disabled",
        None,
        None,
    )
    assert mmcli.actions() == ["list", "modem", "modem", "sim"]
    assert all(call["json"] and call["timeout"] >= 1 for call in mmcli.calls() if "argv" in call)


def test_no_modems_is_an_empty_list(mmcli: Any) -> None:
    mmcli.scenario["modems"] = []
    mmcli.save()
    assert modem.list_modems() == []


def test_a_modem_that_vanishes_after_the_listing_is_left_out(mmcli: Any) -> None:
    mmcli.scenario["modems"].append(a_modem(1, gone=True))
    mmcli.save()
    assert [m.index for m in modem.list_modems()] == [0]


def test_find_by_imei_asks_no_sim(mmcli: Any) -> None:
    found = modem.find_modem(IMEI)
    assert found.index == 0
    assert found.sim_iccid == ICCID  # the chosen modem's SIM is still read
    assert mmcli.actions() == ["list", "modem", "sim"]


@pytest.mark.parametrize("wanted", [ICCID, "8901 2600 0000 0000 001", ICCID + "F"])
def test_find_by_sim_iccid_as_printed(mmcli: Any, wanted: str) -> None:
    mmcli.scenario["modems"].insert(0, a_modem(1))
    mmcli.save()
    assert modem.find_modem(wanted).equipment_id == IMEI


def test_modem_not_found_lists_what_is_there(mmcli: Any) -> None:
    with pytest.raises(modem.ModemNotFound) as info:
        modem.find_modem("351111111111111")
    message = str(info.value)
    assert "351111111111111" in message
    assert IMEI in message and ICCID in message and "EG25-G" in message
    assert [m.equipment_id for m in info.value.available] == [IMEI]


def test_no_modem_at_all_says_so(mmcli: Any) -> None:
    mmcli.scenario["modems"] = []
    mmcli.save()
    with pytest.raises(modem.ModemNotFound, match="sees no modem"):
        modem.find_modem(IMEI)


def test_mmcli_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(modem.MmcliMissing, match="ModemManager") as info:
        modem.list_modems()
    assert isinstance(info.value, MonitorError)


def test_modemmanager_not_running(mmcli: Any) -> None:
    stderr = "error: couldn't find the ModemManager process in the bus\n"
    mmcli.scenario["fail"] = {"list": {"stderr": stderr}}
    mmcli.save()
    with pytest.raises(modem.ModemManagerUnavailable, match="not running") as info:
        modem.send_ussd(IMEI, "#225#", 1)
    assert info.value.raw == stderr.strip()


# ---- USSD ----------------------------------------------------------------------------------


def test_send_ussd_returns_the_reply_text(mmcli: Any) -> None:
    assert modem.send_ussd(IMEI, "#225#", 1) == T_MOBILE
    assert mmcli.actions() == ["list", "modem", "status", "initiate #225#", "status"]
    initiate = next(c for c in mmcli.calls() if c.get("action") == "initiate #225#")
    assert "--3gpp-ussd-initiate=#225#" in initiate["argv"]
    assert "-m" in initiate["argv"] and "/org/freedesktop/ModemManager1/Modem/0" in initiate["argv"]
    assert initiate["timeout"] == 1


def test_send_ussd_by_iccid(mmcli: Any) -> None:
    assert modem.send_ussd(ICCID, "#225#", 1) == T_MOBILE


def test_multi_line_reply_ends_at_the_last_quote(mmcli: Any) -> None:
    text = "Balance: $5.00\nIt's valid until 'Dec 1'\n1. Top up\n2. Plans"
    set_codes(mmcli, _225_={"reply": text})
    assert modem.send_ussd(IMEI, "#225#", 1) == text


def test_an_error_with_exit_1_is_a_modem_error_with_mmcli_s_words(mmcli: Any) -> None:
    stderr = (
        "error: couldn't initiate USSD session: 'GDBus.Error:org.freedesktop.ModemManager1."
        "Error.Core.Failed: Network rejected the request'\n"
    )
    set_codes(mmcli, _225_={"stderr": stderr, "exit": 1})
    with pytest.raises(modem.ModemError) as info:
        modem.send_ussd(IMEI, "#225#", 1)
    assert "Network rejected the request" in str(info.value)
    assert "GDBus" not in str(info.value)
    assert info.value.raw == stderr.strip()
    assert isinstance(info.value, CheckFailed)


@pytest.mark.parametrize(
    "stderr",
    [
        "error: couldn't initiate USSD session: '+CME ERROR: 30'",
        "error: couldn't initiate USSD session: 'GDBus.Error:org.freedesktop.ModemManager1."
        "Error.MobileEquipment.NoNetwork: No network service'",
    ],
)
def test_lte_only_is_an_error_that_says_no_ussd_on_this_network(mmcli: Any, stderr: str) -> None:
    set_codes(mmcli, _225_={"stderr": stderr, "exit": 1})
    with pytest.raises(modem.UssdUnsupported, match="cannot do USSD on this network") as info:
        modem.send_ussd(IMEI, "#225#", 1)
    assert "LTE" in str(info.value)
    assert info.value.raw == stderr


def test_a_modem_without_ussd_says_so(mmcli: Any) -> None:
    mmcli.scenario["fail"] = {"status": {"stderr": "error: modem has no 3GPP USSD capabilities"}}
    mmcli.save()
    with pytest.raises(modem.UssdUnsupported, match="this modem cannot do USSD"):
        modem.send_ussd(IMEI, "#225#", 1)


def test_polkit_refusal_points_at_the_rule(mmcli: Any) -> None:
    stderr = (
        "error: couldn't initiate USSD session: 'GDBus.Error:org.freedesktop.ModemManager1."
        "Error.Core.Unauthorized: PolicyKit authorization failed: not authorized for "
        "'org.freedesktop.ModemManager1.USSD''"
    )
    set_codes(mmcli, _225_={"stderr": stderr, "exit": 1})
    with pytest.raises(modem.ModemNotAuthorized, match="polkit"):
        modem.send_ussd(IMEI, "#225#", 1)


def test_a_hung_mmcli_is_killed_and_reported_as_a_timeout(mmcli: Any) -> None:
    set_codes(mmcli, _225_={"hang": True})
    with pytest.raises(modem.ModemTimeout, match="did not answer"):
        modem.send_ussd(IMEI, "#225#", 0.5)
    hung = next(c for c in mmcli.calls() if c.get("action") == "initiate #225#")
    with pytest.raises(ProcessLookupError):
        os.kill(hung["pid"], 0)


def test_mmcli_s_own_timeout_is_a_timeout(mmcli: Any) -> None:
    set_codes(mmcli, _225_={"mmcli_timeout": 0.1})
    with pytest.raises(modem.ModemTimeout, match="no answer in time"):
        modem.send_ussd(IMEI, "#225#", 1)


def test_a_stale_session_is_cancelled_before_initiating(mmcli: Any) -> None:
    mmcli.scenario["modems"][0]["ussd_status"] = "active"
    mmcli.save()
    assert modem.send_ussd(IMEI, "#225#", 1) == T_MOBILE
    assert mmcli.actions()[2:] == ["status", "cancel", "initiate #225#", "status"]


def test_a_menu_left_open_is_cancelled_after_the_reply(mmcli: Any) -> None:
    set_codes(mmcli, _225_={"reply": "1. Balance\n2. Data", "menu": True})
    assert modem.send_ussd(IMEI, "#225#", 1) == "1. Balance\n2. Data"
    assert mmcli.actions()[-2:] == ["status", "cancel"]
    assert mmcli.status() == "idle"


def test_a_session_that_appears_after_the_check_is_cancelled_and_retried(mmcli: Any) -> None:
    mmcli.scenario["modems"][0].update(ussd_status="active", reported_status="idle")
    mmcli.save()
    assert modem.send_ussd(IMEI, "#225#", 1) == T_MOBILE
    assert mmcli.actions()[2:5] == ["status", "initiate #225#", "cancel"]
    assert mmcli.actions().count("initiate #225#") == 2


def test_a_session_that_will_not_end_is_busy(mmcli: Any) -> None:
    mmcli.scenario["modems"][0]["ussd_status"] = "active"
    mmcli.scenario["fail"] = {"cancel": {"stderr": "error: couldn't cancel USSD session: 'nope'"}}
    mmcli.save()
    with pytest.raises(modem.ModemBusy, match="could not be cancelled"):
        modem.send_ussd(IMEI, "#225#", 1)


def test_waiting_for_the_modem_is_bounded(mmcli: Any) -> None:
    lock = modem._lock(IMEI)
    lock.acquire()
    try:
        with pytest.raises(modem.ModemBusy, match="another USSD session"):
            modem.send_ussd(IMEI, "#225#", 10, wait=0.1)  # 10 s: finding it, on a busy machine
    finally:
        lock.release()
    assert "initiate #225#" not in mmcli.actions()


def test_sessions_on_one_modem_never_overlap(mmcli: Any) -> None:
    """Two lines on one modem (one names it by IMEI, one by ICCID) asked at the same time: the
    fake refuses, and logs, an initiate that starts while another runs."""
    set_codes(mmcli, _225_={"reply": T_MOBILE, "sleep": 0.2}, _932_={"reply": "2GB left"})
    start = threading.Barrier(2)
    replies: dict[str, str] = {}
    errors: list[BaseException] = []

    def ask(modem_id: str, code: str) -> None:
        start.wait()
        try:
            replies[code] = modem.send_ussd(modem_id, code, 5)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=ask, args=(IMEI, "#225#")),
        threading.Thread(target=ask, args=(ICCID, "#932#")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert replies == {"#225#": T_MOBILE, "#932#": "2GB left"}
    assert mmcli.overlaps() == 0


def test_the_fake_does_detect_overlapping_sessions(mmcli: Any) -> None:
    """The check above means something: initiates that bypass the lock do collide."""
    set_codes(mmcli, _225_={"reply": "ok", "sleep": 0.3})
    start = threading.Barrier(2)
    path = "/org/freedesktop/ModemManager1/Modem/0"

    def initiate() -> None:
        start.wait()
        modem._mmcli(["-m", path, "--3gpp-ussd-initiate=#225#"], 5, "test")

    threads = [threading.Thread(target=initiate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mmcli.overlaps() == 1


def test_a_code_that_is_not_ussd_is_a_usage_error(mmcli: Any) -> None:
    with pytest.raises(UsageError, match="not a USSD code"):
        modem.send_ussd(IMEI, "225; reboot", 1)
    assert mmcli.calls() == []


# ---- parsing mmcli's answer ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stdout", "text"),
    [
        ("USSD session initiated; new reply from network: 'Hello'\n", "Hello"),
        ("USSD session initiated; new reply from network: ''\n", ""),
        ("USSD session initiated; new reply from network: 'a\nb 'c'\n'\n", "a\nb 'c'\n"),
    ],
)
def test_parse_reply(stdout: str, text: str) -> None:
    assert modem.parse_reply(stdout) == text


@pytest.mark.parametrize(
    "stdout", ["", "successfully cancelled USSD session\n", "new reply from network: '"]
)
def test_parse_reply_refuses_what_is_not_a_reply(stdout: str) -> None:
    with pytest.raises(modem.ModemError, match="no USSD reply") as info:
        modem.parse_reply(stdout)
    assert info.value.raw == stdout


def test_modem_info_describe_and_match() -> None:
    info = modem.ModemInfo(0, "/p/0", equipment_id=IMEI, model="EG25-G", sim_iccid=ICCID)
    assert info.matches(IMEI) and info.matches(f" {ICCID} ") and not info.matches("")
    assert info.describe() == f"equipment id {IMEI} (EG25-G, SIM {ICCID})"
    assert info.key == IMEI


def test_cli_modems_and_ussd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.cli import main

    fake_mmcli.install(tmp_path, monkeypatch, {"modems": [a_modem()]})
    assert main(["modems", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["equipment_id"] == IMEI and row["sim_iccid"] == ICCID
    assert main(["modems"]) == 0
    assert IMEI in capsys.readouterr().out
    assert main(["ussd", "--modem", IMEI, "#225#"]) == 0
    assert "Account Balance $15.00" in capsys.readouterr().out
    config = tmp_path / "c.toml"
    config.write_text(
        f'[monitor]\ndatabase = "{tmp_path / "h.db"}"\n'
        f'[lines.tmo]\nadapter = "ussd"\nmodem = "{ICCID}"\npreset = "t-mobile"\n'
    )
    assert main(["--config", str(config), "ussd", "tmo", "#225#"]) == 0
    out, err = capsys.readouterr()
    assert "Account Balance $15.00" in out
    # in words, not a repr
    assert (
        err.splitlines()[-1]
        == "# tmo reads: balance 15.00 USD, renews 2022-08-10 00:00 for 15.00 USD"
    )
    assert main(["ussd", "--modem", "000", "#225#"]) == 1  # not found: says what is there
    assert IMEI in capsys.readouterr().err


# ---- one session per modem across processes ------------------------------------------------

TWO_LINES = f"""
[monitor]
database = "{{database}}"
[lines.by_imei]
adapter = "ussd"
modem = "{IMEI}"
preset = "t-mobile"
[lines.by_iccid]
adapter = "ussd"
modem = "{ICCID}"
preset = "t-mobile"
"""
TWO_LINES_IDS = ("by_imei", "by_iccid")


def esim_monitor(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_on_one_database_take_turns_on_the_modem(mmcli: Any, tmp_path: Path) -> None:
    """The daemon and an `esim-monitor ussd` at once: the fake refuses, and logs, an
    initiate that starts while another process's session runs."""
    set_codes(mmcli, _225_={"reply": T_MOBILE, "sleep": 1.0})
    config = tmp_path / "two.toml"
    config.write_text(TWO_LINES.format(database=tmp_path / "history.db"))
    runs = [esim_monitor("--config", str(config), "ussd", line, "#225#") for line in TWO_LINES_IDS]
    for run in runs:
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
        assert "Account Balance $15.00" in out
    assert mmcli.actions().count("initiate #225#") == 2
    assert mmcli.overlaps() == 0


def test_a_session_held_by_another_process_makes_a_cli_session_wait_and_give_up(
    mmcli: Any, tmp_path: Path
) -> None:
    """The lock is the file beside the database: held here (as another process would), a
    `ussd --modem` run of that config waits its bound and then sends nothing."""
    database = tmp_path / "history.db"
    config = tmp_path / "two.toml"
    config.write_text(TWO_LINES.format(database=database))
    lock = database.with_name(f"{database.name}.modem-{IMEI}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        run = esim_monitor(
            "--config", str(config), "ussd", "--modem", ICCID, "--timeout", "0.5", "#225#"
        )
        err = run.communicate(timeout=60)[1]
    finally:
        os.close(fd)
    assert run.returncode != 0 and "busy" in err and "another process" in err
    assert "initiate #225#" not in mmcli.actions()
    assert oct(lock.stat().st_mode & 0o777) == "0o600"


# ---- menus -----------------------------------------------------------------------------------

# Movistar Colombia's *611# menu and its "Saldo y consumo" submenu, verbatim as a Quectel
# RM530N-GL on ModemManager 1.24.2 printed them (CERALIVE/CeraUI,
# apps/backend/src/tests/modem-ussd.test.ts, commit 6293702). The balance text that ends the
# walk is ours: that capture stops at the submenu.
MOVISTAR_MENU = (
    "Mi Prepago\n3189590041\n1:Habla y Mensajea\n2:Combos\n3:Paquetes Ilimidatos\n"
    "4:Saldo y consumo\n5:Registra la sim a tu nombre\n6:Roaming\n"
)
MOVISTAR_SUBMENU = (
    "1: Consulta Saldo\n2: Consulta tu oferta Prepago\n3: Apagar/Prender Datos\n- - -\n"
    "00:inicio\n0:atras"
)
SALDO = "Tu saldo es $12.500 COP"


def set_menu(fake: Any, code: dict[str, Any]) -> None:
    fake.scenario["modems"][0]["codes"] = {"*611#": code}
    fake.save()


def menu_code(**submenu: Any) -> dict[str, Any]:
    return {
        "reply": MOVISTAR_MENU,
        "menu": True,
        "steps": {
            "4": {"reply": MOVISTAR_SUBMENU, "menu": True, **submenu},
            "4/1": {"reply": SALDO},
        },
    }


def test_a_menu_code_is_walked_answer_by_answer_to_its_last_reply(mmcli: Any) -> None:
    set_menu(mmcli, menu_code())
    reply = modem.send_ussd(
        IMEI, "*611#", 10, respond=["4", "1"], expect=["Saldo y consumo", "Consulta Saldo"]
    )
    assert reply == SALDO
    walked = [a for a in mmcli.actions() if a.startswith(("initiate", "respond", "cancel"))]
    assert walked == ["initiate *611#", "respond 4", "respond 1"]
    assert mmcli.status() == "idle"


def test_an_answer_mmcli_prints_empty_is_read_from_the_session_once_it_lands(mmcli: Any) -> None:
    """The board's behaviour: the respond prints '', the submenu shows in network-request
    a moment later, the first menu until then."""
    set_menu(mmcli, menu_code(silent=True, lands_after=0.5))
    assert modem.send_ussd(IMEI, "*611#", 10, respond=["4"]) == MOVISTAR_SUBMENU
    assert mmcli.status() == "idle"  # the submenu left open was cancelled
    assert mmcli.actions()[-1] == "cancel"


def test_a_menu_that_is_not_the_expected_one_is_cancelled_before_any_answer(mmcli: Any) -> None:
    set_menu(mmcli, menu_code())
    with pytest.raises(modem.UnexpectedMenu, match="does not say 'Consultar saldo'") as caught:
        modem.send_ussd(IMEI, "*611#", 10, respond=["4", "1"], expect=["Consultar saldo"])
    assert caught.value.raw == MOVISTAR_MENU
    assert not any(a.startswith("respond") for a in mmcli.actions())
    assert mmcli.status() == "idle"


def test_a_session_the_network_ends_early_fails_the_walk(mmcli: Any) -> None:
    set_menu(mmcli, menu_code())
    with pytest.raises(modem.UnexpectedMenu, match="ended the session before answer 3"):
        modem.send_ussd(IMEI, "*611#", 10, respond=["4", "1", "9"])
    assert mmcli.status() == "idle"


def test_an_answer_that_never_lands_times_out_and_the_session_is_cancelled(mmcli: Any) -> None:
    set_menu(mmcli, menu_code(silent=True, lands_after=60))
    with pytest.raises(modem.ModemTimeout):
        modem.send_ussd(IMEI, "*611#", 3, respond=["4"])
    assert mmcli.status() == "idle" and mmcli.actions()[-1] == "cancel"


@pytest.mark.parametrize(
    ("respond", "expect", "said"),
    [(["4\n1"], [], "not a menu answer"), (["4"], ["a", "b", "c"], "at most one")],
)
def test_menu_answers_are_checked_before_the_modem_is_asked(
    mmcli: Any, respond: list[str], expect: list[str], said: str
) -> None:
    with pytest.raises(UsageError, match=said):
        modem.send_ussd(IMEI, "*611#", 5, respond=respond, expect=expect)
    assert mmcli.actions() == []
