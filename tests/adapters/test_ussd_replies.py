"""Reading USSD replies without a modem: the reference's real reply texts, presets, patterns,
the generic money parser, dates, and replies that must never become a balance."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from monitor.adapters.ussd_replies import (
    PRESETS,
    CodeSpec,
    Figures,
    UnreadableReply,
    check_date_format,
    clean_reply,
    code_spec,
    compile_pattern,
    parse_amount,
    parse_data,
    parse_date,
    parse_number,
    read_reply,
    rejection,
)
from monitor.errors import CheckFailed

NOW = datetime(2021, 8, 1, 12, 0, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")

# Real reply texts (../shared/reference/modems.md).
T_MOBILE = (
    "Current plan active until 08/10/2022 and will renew for $15.00. Account\n"
    "Balance $15.00. Add money by dialing *233 or redeem a refill card."
)
CANADA_777 = "Your account balance is $20.00 and expires on Aug 28 2021."
AIRTIME_AT = (
    '+CUSD: 2,"Initiating Release",15\n'
    '+CUSD: 0,"Your balance is R49.96. Out of Airtime? Dial *111# for Airtime Advance.",15'
)
AIRTIME_TEXT = "Your balance is R49.96. Out of Airtime? Dial *111# for Airtime Advance."

GENERIC = CodeSpec("*100#")


def read(reply: str, spec: CodeSpec = GENERIC, currency: str | None = None) -> Figures:
    return read_reply(reply, spec, tz=UTC, now=NOW, currency=currency)


def refused(reply: str, spec: CodeSpec = GENERIC) -> UnreadableReply:
    with pytest.raises(UnreadableReply) as info:
        read(reply, spec, currency="USD")
    assert info.value.raw == reply  # the user sees exactly what the network said
    assert isinstance(info.value, CheckFailed)
    return info.value


def preset_code(preset: str, code: str) -> CodeSpec:
    return next(spec for spec in PRESETS[preset].codes if spec.code == code)


# ---- the reference's replies ---------------------------------------------------------------


def test_t_mobile_renewal_text_with_its_preset() -> None:
    figures = read_reply(
        T_MOBILE, preset_code("t-mobile", "#225#"), tz=NEW_YORK, now=NOW, currency="USD"
    )
    assert figures.balance == Decimal("15.00")
    assert figures.currency == "USD"
    assert figures.renewal_price == Decimal("15.00")
    assert figures.renewal_at == datetime(2022, 8, 10, 4, 0, tzinfo=UTC)  # midnight in New York
    assert figures.expires_at is None


def test_canada_777_text_with_the_att_preset() -> None:
    figures = read(CANADA_777, preset_code("att-prepaid", "*777#"), currency="CAD")
    assert (figures.balance, figures.currency) == (Decimal("20.00"), "CAD")
    assert figures.expires_at == datetime(2021, 8, 28, tzinfo=UTC)


def test_canada_777_text_with_the_generic_parser() -> None:
    figures = read(CANADA_777, currency="CAD")
    assert (figures.balance, figures.currency) == (Decimal("20.00"), "CAD")
    assert figures.expires_at == datetime(2021, 8, 28, tzinfo=UTC)


def test_t_mobile_text_with_the_generic_parser_skips_the_renewal_price() -> None:
    figures = read(T_MOBILE, currency="USD")
    assert figures.balance == Decimal("15.00")  # not 30.00: "renew for $15.00" is a price


@pytest.mark.parametrize("reply", [AIRTIME_AT, AIRTIME_TEXT, f"Initiating Release\n{AIRTIME_TEXT}"])
def test_airtime_reply_after_initiating_release(reply: str) -> None:
    figures = read(reply)
    assert (figures.balance, figures.currency) == (Decimal("49.96"), "ZAR")


def test_clean_reply_keeps_the_network_s_words() -> None:
    assert clean_reply(AIRTIME_AT) == AIRTIME_TEXT
    assert clean_reply(f"Initiating Release\r\n{AIRTIME_TEXT}\r\n") == AIRTIME_TEXT
    assert clean_reply('+CUSD: 2,"Initiating Release",15') == "Initiating Release"
    assert clean_reply("Initiating Release") == "Initiating Release"


# ---- never a balance -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        ("System maintenance in progress. Your balance is $0.00.", "maintenance"),
        ("Service unavailable", "unavailable"),
        ("Service temporarily unavailable, balance $5.00", "temporarily"),
        ("Please try again later. Balance: $12.00", "try again"),
        ("Error 23: balance $3.00", "Error"),
        ("Connection problem or invalid MMI code.", "Connection problem"),
        ("UNKNOWN APPLICATION", "UNKNOWN APPLICATION"),
        ("Request failed, balance 10 USD", "failed"),
        ("Network busy. Your balance is $5.00", "busy"),
    ],
)
def test_notices_are_refused_even_with_a_number(reply: str, says: str) -> None:
    error = refused(reply)
    assert says in str(error)


def test_cme_error_30_says_no_ussd_here() -> None:
    error = refused("+CME ERROR: 30")
    assert "+CME ERROR: 30" in str(error) and "LTE-only" in str(error)


def test_ucs2_hex_is_refused_and_decoded_for_the_user() -> None:
    hex_reply = "Your balance is $5.00".encode("utf-16-be").hex().upper()
    error = refused(hex_reply)
    assert "hex-encoded" in str(error)
    assert "'Your balance is $5.00'" in str(error)


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "   ",
        "\ufffd\ufffd balance \ufffd5.00",
        "Balance\x00\x01 $5.00",
        "12345678",
        "$ 15.00",
        "Initiating Release",
        "Balance: 1.5 GB",
        "You have 120 minutes left",
    ],
)
def test_garbled_empty_or_figureless_replies_are_refused(reply: str) -> None:
    refused(reply)


def test_rejection_passes_the_reference_texts() -> None:
    for text in (T_MOBILE, CANADA_777, AIRTIME_TEXT):
        assert rejection(clean_reply(text)) is None


def test_a_pattern_that_does_not_match_is_a_failure_not_a_zero() -> None:
    error = refused("Welcome to T-Mobile! Dial 611.", preset_code("t-mobile", "#225#"))
    assert "matches none of the code's patterns" in str(error)


def test_a_matched_figure_that_cannot_be_read_fails_the_code() -> None:
    spec = code_spec("*1#", r"expires (?P<expiry>\S+ \S+)", date_formats=["%d/%m/%Y"])
    error = refused("Your line expires next week.", spec)
    assert "expiry 'next week' cannot be read" in str(error)


# ---- the generic money parser ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "balance", "currency"),
    [
        ("Your balance is $12.50.", "12.50", "USD"),
        ("Saldo: 12,50 EUR", "12.50", "EUR"),
        ("Credit EUR 7,25 until 01.09.2021", "7.25", "EUR"),
        ("Balance €1.234,56", "1234.56", "EUR"),
        ("Balance 1,234.56 USD", "1234.56", "USD"),
        ("Main: 10,50 EUR, Bonus: 2,00 EUR.", "12.50", "EUR"),
        ("Main balance $5.00; bonus balance $2.50", "7.50", "USD"),
        ("Balance: $5.00. Recharge with $10 to get 1GB", "5.00", "USD"),
        ("Balance $8.00, plan $25/month", "8.00", "USD"),
        ("Your balance is -$3.20", "-3.20", "USD"),
        ("Balance: 9.99", "9.99", "USD"),
        ("Balance is 15.00 and expires on Aug 28 2021", "15.00", "USD"),
        ("Saldo Rp 50.000", "50000", "IDR"),
        ("Your balance is 20USD", "20", "USD"),
        ("You have £3.10 credit", "3.10", "GBP"),
    ],
)
def test_generic_money(reply: str, balance: str, currency: str) -> None:
    figures = read(reply, currency="USD")
    assert figures.balance == Decimal(balance)
    assert figures.currency == currency


def test_generic_dollar_without_a_configured_currency_is_unknown() -> None:
    figures = read("Your balance is $12.50.")
    assert (figures.balance, figures.currency) == (Decimal("12.50"), None)


def test_generic_refuses_amounts_in_several_currencies() -> None:
    error = refused("Balance 5.00 EUR and 3.00 GBP")
    assert "several currencies" in str(error)


def test_generic_reads_no_code_as_money() -> None:
    refused("Dial *111# for 100 SMS")


def test_generic_fails_on_a_currency_code_it_does_not_know() -> None:
    error = refused("Balance 20 ABC")
    assert "'ABC', a currency code the parser does not know" in str(error)


def test_generic_reads_a_labelled_figure_beside_a_price_in_another_sentence() -> None:
    assert read("Balance: 9.99. Recharge with $10 to get 1GB", currency="USD").balance == Decimal(
        "9.99"
    )
    refused("Your plan is now the $25 plan, balance 9.99")


def test_generic_skips_the_part_of_a_balance_restated_after_of_which() -> None:
    figures = read("Balance 30.00 EUR, of which bonus 10.00 EUR.")
    assert (figures.balance, figures.currency) == (Decimal("30.00"), "EUR")


# ---- patterns ------------------------------------------------------------------------------


def test_patterns_merge_their_groups() -> None:
    spec = code_spec(
        "*2#",
        [
            r"used (?P<data_used>\S+) of (?P<data_total>\S+)",
            r"valid until (?P<expiry>\d\d/\d\d/\d{4})",
            r"Credit (?P<currency>[A-Z]{3}) (?P<balance>[\d,]+)",
        ],
        date_formats=["%d/%m/%Y"],
    )
    figures = read("You used 1.5GB of 5GB, valid until 02/09/2021. Credit EUR 3,40", spec)
    assert figures.data_used == 1_500_000_000
    assert figures.data_total == 5_000_000_000
    assert figures.data_remaining == 3_500_000_000
    assert figures.expires_at == datetime(2021, 9, 2, tzinfo=UTC)
    assert (figures.balance, figures.currency) == (Decimal("3.40"), "EUR")


def test_patterns_ignore_case_and_span_lines() -> None:
    spec = code_spec("*3#", r"balance:.*?(?P<balance>\$[\d.]+)")
    assert read("BALANCE:\n $4.20", spec, currency="USD").balance == Decimal("4.20")


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (r"balance (?P<balance>[\d.]+", "not a valid regular expression"),
        (r"balance (?P<amount>[\d.]+)", "unknown group name(s) amount"),
        (r"balance [\d.]+", "names no figure"),
        (r"(?P<currency>USD)", "names no figure"),
    ],
)
def test_bad_patterns_are_refused(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compile_pattern(pattern)


def test_t_mobile_932_reads_data() -> None:
    spec = preset_code("t-mobile", "#932#")
    used = read("You have used 1.2GB of your 5GB high-speed data. Plan expires 09/15/2021.", spec)
    assert used.data_remaining == 3_800_000_000
    assert used.expires_at == datetime(2021, 9, 15, tzinfo=UTC)
    left = read("2.5GB of high-speed data remaining.", spec)
    assert left.data_remaining == 2_500_000_000


def test_every_preset_code_has_patterns_and_formats() -> None:
    assert set(PRESETS) >= {"att-prepaid", "t-mobile"}
    assert [s.code for s in PRESETS["att-prepaid"].codes] == ["*777#"]
    assert [s.code for s in PRESETS["t-mobile"].codes] == ["#225#", "#932#"]
    for preset in PRESETS.values():
        assert preset.description and preset.codes
        for spec in preset.codes:
            assert spec.patterns and spec.date_formats


def test_every_preset_names_its_source_and_refill_takes_a_pin() -> None:
    for name, preset in PRESETS.items():
        assert re.search(r"https://|@ [0-9a-f]{40}", preset.source), name
        assert preset.refill is None or "{pin}" in preset.refill, name


def test_us_mobile_asks_by_text_and_reads_data_or_dollars() -> None:
    (spec,) = PRESETS["us-mobile"].codes
    assert spec.sms is not None
    assert (spec.sms.to, spec.sms.text, spec.sms.sender) == (
        "+18888781488",
        "BALANCE",
        "+18888781488",
    )
    # No US Mobile answer was found: these wordings only show what the guessed patterns read.
    assert read("You have 12.5GB of high-speed data left.", spec).data_remaining == 12_500_000_000
    assert read("Your balance is $3.00.", spec).balance == Decimal("3.00")
    with pytest.raises(UnreadableReply):
        read("Thanks for being a US Mobile customer.", spec)


def test_figures_merge_first_wins_and_fills_gaps() -> None:
    first = Figures(balance=Decimal("5"), currency="USD")
    second = Figures(balance=Decimal("9"), currency="EUR", data_total=10, data_used=4)
    merged = first.merged(second)
    assert (merged.balance, merged.currency) == (Decimal("5"), "USD")
    assert (merged.data_total, merged.data_remaining) == (10, 6)
    assert Figures().empty() and not merged.empty()


# ---- numbers, amounts, data, dates ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("15", "15"),
        ("15.00", "15.00"),
        ("20,00", "20.00"),
        ("1,234.56", "1234.56"),
        ("1.234,56", "1234.56"),
        ("1,234", "1234"),
        ("50.000", "50000"),
        ("0.500", "0.500"),
        ("1,234,567", "1234567"),
        ("12345.678", "12345.678"),
        ("1'234.50", "1234.50"),
    ],
)
def test_parse_number(text: str, value: str) -> None:
    assert parse_number(text) == Decimal(value)


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "1,23,4", "12.", "1.234.5"])
def test_parse_number_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_number(text)


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("$15.00", "15.00", None),
        ("-$5.00", "-5.00", None),
        ("$-5.00", "-5.00", None),
        ("US$ 5", "5", "USD"),
        ("1.234,56 EUR", "1234.56", "EUR"),
        ("USD 20", "20", "USD"),
        ("R49.96", "49.96", "ZAR"),
        ("€ 3,50", "3.50", "EUR"),
        ("12.30", "12.30", None),
    ],
)
def test_parse_amount(text: str, amount: str, currency: str | None) -> None:
    assert parse_amount(text) == (Decimal(amount), currency)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1.5GB", 1_500_000_000),
        ("500 MB", 500_000_000),
        ("1,5 GB", 1_500_000_000),
        ("512MiB", 512 * 2**20),
        ("2G", 2_000_000_000),
        ("100 bytes", 100),
        ("1,024 MB", 1_024_000_000),
    ],
)
def test_parse_data(text: str, size: int) -> None:
    assert parse_data(text) == size


@pytest.mark.parametrize("text", ["1.5", "lots", "Unlimited", "5 GBP"])
def test_parse_data_needs_a_unit(text: str) -> None:
    with pytest.raises(ValueError):
        parse_data(text)


@pytest.mark.parametrize(
    ("text", "formats", "when"),
    [
        ("08/10/2022", ["%m/%d/%Y"], datetime(2022, 8, 10, 4, tzinfo=UTC)),
        ("Aug 28 2021", ["%b %d %Y"], datetime(2021, 8, 28, 4, tzinfo=UTC)),
        ("Aug. 28th, 2021.", ["%b %d %Y"], datetime(2021, 8, 28, 4, tzinfo=UTC)),
        ("August 28, 2021", ["%m/%d/%Y", "%B %d, %Y"], datetime(2021, 8, 28, 4, tzinfo=UTC)),
        ("28.08.2021", ["%d.%m.%Y"], datetime(2021, 8, 28, 4, tzinfo=UTC)),
        ("2021-08-28 23:59", ["%Y-%m-%d %H:%M"], datetime(2021, 8, 29, 3, 59, tzinfo=UTC)),
        ("Aug 28", ["%b %d"], datetime(2021, 8, 28, 4, tzinfo=UTC)),
        ("Jan 5", ["%b %d"], datetime(2022, 1, 5, 5, tzinfo=UTC)),
        ("Jul 20", ["%b %d"], datetime(2021, 7, 20, 4, tzinfo=UTC)),
    ],
)
def test_parse_date_in_the_carrier_s_zone(text: str, formats: list[str], when: datetime) -> None:
    assert parse_date(text, formats, NEW_YORK, NOW) == when


def test_parse_date_names_the_formats_it_tried() -> None:
    with pytest.raises(ValueError, match="none of the date formats %m/%d/%Y"):
        parse_date("28/08/2021", ["%m/%d/%Y"], UTC, NOW)


@pytest.mark.parametrize("fmt", ["%Q", "%H:%M", "%Y"])
def test_check_date_format_refuses_unusable_formats(fmt: str) -> None:
    with pytest.raises(ValueError, match="date format"):
        check_date_format(fmt)


@pytest.mark.parametrize("fmt", ["%m/%d/%Y", "%b %d", "%d.%m.%Y", "%B %d, %Y"])
def test_check_date_format_accepts_dates(fmt: str) -> None:
    assert check_date_format(fmt) == fmt
