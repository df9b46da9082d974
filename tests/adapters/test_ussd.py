"""The `ussd` adapter: options, presets and overrides, and whole checks against the fake `mmcli`
(tests/fake_mmcli.py) first on PATH, two lines on one modem included."""

from __future__ import annotations

import re
import tomllib
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
from monitor.cycle import Checker
from monitor.errors import CheckFailed

IMEI = "867000000000001"
ICCID = "8901260000000000001"
T_MOBILE = (
    "Current plan active until 08/10/2022 and will renew for $15.00. Account Balance $15.00. "
    "Add money by dialing *233 or redeem a refill card."
)
T_MOBILE_DATA = "You have used 1.2GB of your 5GB high-speed data. Plan expires 08/10/2022."
CANADA_777 = "Your account balance is $20.00 and expires on Aug 28 2021."
AIRTIME = (
    "Initiating Release\nYour balance is R49.96. Out of Airtime? Dial *111# for Airtime Advance."
)
MAINTENANCE = "Dear customer, the system is under maintenance. Please try again later."


@pytest.fixture(autouse=True)
def _quick_kill(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(modem, "KILL_GRACE", 0.2)


@pytest.fixture
def mmcli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    scenario = {
        "modems": [
            {
                "index": 0,
                "equipment_id": IMEI,
                "model": "EG25-G",
                "sim": {"index": 0, "iccid": ICCID},
                "codes": {
                    "#225#": {"reply": T_MOBILE},
                    "#932#": {"reply": T_MOBILE_DATA},
                    "*777#": {"reply": CANADA_777},
                    "*111#": {"reply": AIRTIME},
                },
            }
        ]
    }
    return fake_mmcli.install(tmp_path, monkeypatch, scenario)


def answer(fake: Any, code: str, **behaviour: Any) -> None:
    fake.scenario["modems"][0]["codes"][code] = behaviour
    fake.save()


def line(line_id: str = "tmo", **options: Any) -> UssdAdapter:
    options = {"modem": IMEI, "timeout": "1s", "timezone": "UTC", **options}
    return UssdAdapter(line_id, UssdOptions.model_validate(options), adapters.AdapterContext())


def failure(adapter: UssdAdapter) -> CheckFailed:
    with pytest.raises(CheckFailed) as info:
        adapter.read()
    return info.value


# ---- options -------------------------------------------------------------------------------


def test_registered_as_ussd() -> None:
    assert adapters.load("ussd") is UssdAdapter
    assert UssdAdapter.min_interval is not None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"preset": "t-mobile"}, "modem"),
        ({"modem": 867000000000001, "preset": "t-mobile"}, "quote it"),
        ({"modem": "0", "preset": "t-mobile"}, "not its index"),
        ({"modem": "/org/freedesktop/ModemManager1/Modem/0", "preset": "t-mobile"}, "index"),
        ({"modem": IMEI}, "set `preset`"),
        ({"modem": IMEI, "preset": "verizon"}, "unknown preset 'verizon'; available: att"),
        ({"modem": IMEI, "codes": [{"code": "225"}]}, "String should match pattern"),
        ({"modem": IMEI, "codes": [{"code": "*1#", "pattern": "(?P<amount>\\d+)"}]}, "amount"),
        ({"modem": IMEI, "codes": [{"code": "*1#", "pattern": "("}]}, "regular expression"),
        ({"modem": IMEI, "codes": [{"code": "*1#", "date_format": "%Q"}]}, "date format"),
        ({"modem": IMEI, "codes": [{"code": "*1#"}, {"code": "*1#"}]}, "listed twice"),
        ({"modem": IMEI, "preset": "t-mobile", "timeout": "10m"}, "between 1s and 5m"),
        ({"modem": IMEI, "preset": "t-mobile", "timezone": "Mars/Olympus"}, "time zone"),
        ({"modem": IMEI, "preset": "t-mobile", "currency": "usd"}, "pattern"),
        ({"modem": IMEI, "preset": "t-mobile", "code": "*1#"}, "Extra inputs"),
        ({"modem": IMEI, "codes": [{"code": "*1#", "respond": ["1\n2"]}]}, "not a menu answer"),
        ({"modem": IMEI, "codes": [{"code": "*1#", "expect": ["a", "b"]}]}, "one text per"),
    ],
)
def test_options_refuse_mistakes(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        UssdOptions.model_validate(options)


def test_a_preset_fills_in_codes_and_currency() -> None:
    options = UssdOptions.model_validate({"modem": ICCID, "preset": "t-mobile"})
    assert [s.code for s in options.specs()] == ["#225#", "#932#"]
    assert options.default_currency() == "USD"
    assert options.timeout == timedelta(seconds=20)


def test_codes_override_the_preset_code_by_code_and_key_by_key() -> None:
    options = UssdOptions.model_validate(
        {
            "modem": IMEI,
            "preset": "t-mobile",
            "currency": "CAD",
            "codes": [
                {"code": "#932#", "pattern": r"(?P<data>\S+B) left"},
                {"code": "#225#", "date_format": "%d/%m/%Y"},
                {"code": "*100#"},
            ],
        }
    )
    preset = {s.code: s for s in preset_codes("t-mobile")}
    tmo_225, tmo_932, own = options.specs()
    assert tmo_225.patterns == preset["#225#"].patterns  # only its date format changed
    assert tmo_225.date_formats == ("%d/%m/%Y",)
    assert [p.pattern for p in tmo_932.patterns] == [r"(?P<data>\S+B) left"]
    assert tmo_932.date_formats == preset["#932#"].date_formats
    assert (own.code, own.patterns) == ("*100#", ())  # the generic money parser
    assert options.default_currency() == "CAD"


def test_spec_for_a_code_the_line_does_not_list_is_the_generic_parser() -> None:
    options = UssdOptions.model_validate({"modem": IMEI, "preset": "t-mobile"})
    assert options.spec_for("#225#") == options.specs()[0]
    assert options.spec_for("*999#").patterns == ()


def preset_codes(name: str) -> Any:
    from monitor.adapters.ussd_replies import PRESETS

    return PRESETS[name].codes


def test_config_validation_reports_ussd_problems_with_their_path(
    write_config: Callable[..., Path],
) -> None:
    path = write_config(
        """
        [lines.tmo]
        adapter = "ussd"
        modem = "0"
        preset = "t-mobile"
        """
    )
    with pytest.raises(config.ConfigError) as info:
        config.load(path, [adapters.validate_lines])
    assert "At 'lines.tmo.modem'" in str(info.value)


# ---- checks against the fake modem -----------------------------------------------------------


def test_t_mobile_line_merges_both_codes(mmcli: Any) -> None:
    reading = line(preset="t-mobile", timezone="America/New_York").read()
    assert reading.line == "tmo"
    assert (reading.balance, reading.currency) == (Decimal("15.00"), "USD")
    assert reading.renewal_price == Decimal("15.00")
    assert reading.renewal_at == datetime(2022, 8, 10, 4, 0, tzinfo=UTC)
    assert reading.data_total == 5_000_000_000
    assert reading.data_remaining == 3_800_000_000
    assert reading.extras == {"data_used": 1_200_000_000}
    assert reading.expires_at == datetime(2022, 8, 10, 4, 0, tzinfo=UTC)
    assert reading.raw == {"#225#": T_MOBILE, "#932#": T_MOBILE_DATA}
    assert mmcli.actions().count("list") == 2  # each code is found anew: indexes change


def test_att_preset_with_the_canada_text(mmcli: Any) -> None:
    reading = line(preset="att-prepaid", currency="CAD", modem=ICCID).read()
    assert (reading.balance, reading.currency) == (Decimal("20.00"), "CAD")
    assert reading.expires_at == datetime(2021, 8, 28, tzinfo=UTC)


def test_generic_code_reads_the_airtime_reply(mmcli: Any) -> None:
    reading = line(codes=[{"code": "*111#"}]).read()
    assert (reading.balance, reading.currency) == (Decimal("49.96"), "ZAR")


# A menu: Movistar Colombia's *611# and its "Saldo y consumo" submenu, verbatim from a
# Quectel RM530N-GL on ModemManager 1.24.2 (CERALIVE/CeraUI,
# apps/backend/src/tests/modem-ussd.test.ts, commit 6293702); the balance text is ours.
MOVISTAR_MENU = "Mi Prepago\n3189590041\n1:Habla y Mensajea\n2:Combos\n4:Saldo y consumo\n"
MOVISTAR_SUBMENU = "1: Consulta Saldo\n2: Consulta tu oferta Prepago\n00:inicio\n0:atras"


def movistar(mmcli: Any, balance_text: str) -> None:
    steps = {
        "4": {"reply": MOVISTAR_SUBMENU, "menu": True, "silent": True, "lands_after": 0.2},
        "4/1": {"reply": balance_text},
    }
    answer(mmcli, "*611#", reply=MOVISTAR_MENU, menu=True, steps=steps)


def test_a_menu_code_walks_its_answers_and_reads_the_last_reply(mmcli: Any) -> None:
    movistar(mmcli, "Tu saldo es $ 12.50")
    code = {
        "code": "*611#",
        "respond": ["4", "1"],
        "expect": ["Saldo y consumo", "Consulta Saldo"],
        "currency": "USD",
    }
    reading = line(codes=[code], timeout="10s").read()
    assert (reading.balance, reading.currency) == (Decimal("12.50"), "USD")
    assert reading.raw == {"*611#": "Tu saldo es $ 12.50"}
    assert mmcli.status() == "idle"


def test_a_changed_menu_fails_the_check_with_it_as_the_raw_reply_never_a_balance(
    mmcli: Any,
) -> None:
    movistar(mmcli, "Tu saldo es $ 12.50")
    code = {"code": "*611#", "respond": ["4", "1"], "expect": ["Consulta de saldo"]}
    error = failure(line(codes=[code], timeout="10s"))
    assert "does not say 'Consulta de saldo'" in str(error)
    assert error.raw == MOVISTAR_MENU
    assert not any(a.startswith("respond") for a in mmcli.actions())
    assert mmcli.status() == "idle"


def test_one_code_matching_is_enough_and_the_other_is_reported(mmcli: Any) -> None:
    answer(mmcli, "#932#", reply=MAINTENANCE)
    reading = line(preset="t-mobile").read()
    assert reading.balance == Decimal("15.00")
    assert reading.data_remaining is None
    (failed,) = reading.extras["failed_codes"]
    assert failed["code"] == "#932#"
    assert "maintenance" in failed["error"]
    assert failed["raw"] == MAINTENANCE
    assert reading.raw["#932#"] == MAINTENANCE


def test_every_code_failing_is_a_failed_check_with_each_raw_reply(mmcli: Any) -> None:
    answer(mmcli, "#225#", reply="Service unavailable")
    answer(mmcli, "#932#", stderr="error: couldn't initiate USSD session: 'rejected'", exit=1)
    error = failure(line(preset="t-mobile"))
    assert "no USSD reply could be read" in str(error)
    assert "#225#: the reply is a notice" in str(error)
    assert "; sending #932# failed: couldn't initiate USSD session: rejected" in str(error)
    assert error.raw == (
        "[#225#]\nService unavailable\n\n[#932#]\nerror: couldn't initiate USSD session: 'rejected'"
    )


def test_a_single_failure_keeps_its_type_and_reply(mmcli: Any) -> None:
    answer(mmcli, "*777#", reply="0059006F00750072")
    error = failure(line(preset="att-prepaid"))
    assert str(error).startswith("*777#: the reply is hex-encoded")
    assert error.raw == "0059006F00750072"


def test_lte_only_modem_fails_once_for_the_line(mmcli: Any) -> None:
    answer(mmcli, "#225#", stderr="error: couldn't initiate USSD session: '+CME ERROR: 30'")
    error = failure(line(preset="t-mobile"))
    assert isinstance(error, modem.UssdUnsupported)
    assert "cannot do USSD on this network" in str(error)
    assert "initiate #932#" not in mmcli.actions()  # the other code would fail the same way


def test_missing_modem_names_the_modems_there_are(mmcli: Any) -> None:
    error = failure(line(preset="t-mobile", modem="351111111111111"))
    assert isinstance(error, modem.ModemNotFound)
    assert IMEI in str(error)
    assert mmcli.actions() == ["list", "modem", "sim"]


def test_a_hung_code_times_out_and_the_next_code_still_runs(mmcli: Any) -> None:
    answer(mmcli, "#225#", hang=True)
    reading = line(preset="t-mobile").read()
    assert reading.data_remaining == 3_800_000_000
    (failed,) = reading.extras["failed_codes"]
    assert failed["code"] == "#225#" and "did not answer" in failed["error"]
    # the killed session was left active: it was cancelled before #932# was sent
    actions = mmcli.actions()
    assert actions.index("cancel") < actions.index("initiate #932#")


def test_two_lines_on_one_modem_are_checked_at_once_one_session_at_a_time(
    mmcli: Any, write_config: Callable[..., Path]
) -> None:
    answer(mmcli, "#225#", reply=T_MOBILE, sleep=0.2)
    answer(mmcli, "#932#", reply=T_MOBILE_DATA, sleep=0.2)
    path = write_config(
        f"""
        [monitor]
        workers = 4

        [lines.money]
        adapter = "ussd"
        modem = "{IMEI}"
        codes = [{{ code = "#225#", pattern = 'Balance (?P<balance>\\$[\\d.]+)' }}]
        currency = "USD"
        timeout = "5s"

        [lines.data]
        adapter = "ussd"
        modem = "{ICCID}"
        preset = "t-mobile"
        codes = [{{ code = "#932#" }}]
        timeout = "5s"
        """
    )
    settings = config.load(path, [adapters.validate_lines])
    checker = Checker(settings)
    try:
        money, data = checker.read(["money", "data"])
    finally:
        checker.close()
    assert money.error is None and data.error is None
    assert money.reading is not None and money.reading.balance == Decimal("15.00")
    assert data.reading is not None and data.reading.data_remaining == 3_800_000_000
    assert mmcli.overlaps() == 0
    assert sorted(a for a in mmcli.actions() if a.startswith("initiate")) == [
        "initiate #225#",
        "initiate #225#",
        "initiate #932#",
    ]


def test_the_documented_examples_are_valid_configs(write_config: Callable[..., Path]) -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "modems.md"
    blocks = re.findall(r"```toml\n(.*?)```", docs.read_text(), re.DOTALL)
    lines = [block for block in blocks if block.startswith("[lines.")]
    assert len(lines) >= 5
    settings = config.load(write_config("\n".join(lines)), [adapters.validate_lines])
    for line_id in settings.lines:
        options = UssdOptions.model_validate(settings.lines[line_id].options)
        assert options.specs()
    override = tomllib.loads(next(b for b in blocks if b.startswith("codes = ")))
    tmo_225, tmo_932 = UssdOptions.model_validate(
        {**settings.lines["tmo"].options, **override}
    ).specs()
    assert tmo_225.patterns == preset_codes("t-mobile")[0].patterns
    assert [p.pattern for p in tmo_932.patterns] == [override["codes"][0]["pattern"]]
