"""Relayed texts read by the relay's readers: each SMS preset's sourced samples to their
exact figures, a line's patterns, the generic parser, and texts that hold no figure."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from monitor.adapters.sms_replies import (
    NO_FIGURE_SAMPLES,
    SMS_PRESETS,
    Sample,
    read_relayed,
    relay_readers,
)
from monitor.adapters.ussd_replies import Figures

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")


def read(text: str, preset: str | None, tz: ZoneInfo = NEW_YORK) -> Figures | None:
    currency = SMS_PRESETS[preset].currency if preset in SMS_PRESETS else None
    return read_relayed(text, relay_readers([], preset), tz=tz, now=NOW, currency=currency)


def sample(preset: str, start: str) -> Sample:
    (found,) = [s for s in SMS_PRESETS[preset].samples if s.text.startswith(start)]
    return found


EXPECTED: list[tuple[str, str, Figures | None]] = [
    (
        "t-mobile-sms",
        "Free T-Mobile Msg: $60.00 has been added",
        Figures(balance=Decimal("61.00"), currency="USD"),
    ),
    ("t-mobile-sms", "T-Mobile Free Msg: Your bill is coming due", None),
    (
        "t-mobile-sms",
        "Current plan active until 08/10/2022",
        Figures(
            balance=Decimal("56.78"),
            currency="USD",
            renewal_at=datetime(2022, 8, 10, 4, 0, tzinfo=UTC),  # midnight in New York
            renewal_price=Decimal("12.34"),
        ),
    ),
    (
        "ultra-sms",
        "You just got an Awesome Upgrade",
        # 11:59 PM on May 10 in New York (EDT); a date without a year is the next one
        Figures(expires_at=datetime(2027, 5, 11, 3, 59, tzinfo=UTC)),
    ),
    ("ultra-sms", "Your Ultra Mobile plan has changed", None),
    (
        "att-prepaid-sms",
        "Your account balance is $20.00",
        Figures(
            balance=Decimal("20.00"),
            currency="USD",
            expires_at=datetime(2021, 8, 28, 4, 0, tzinfo=UTC),
        ),
    ),
]


@pytest.mark.parametrize(
    ("preset", "start", "expected"), EXPECTED, ids=[f"{p}:{s[:24]}" for p, s, _ in EXPECTED]
)
def test_each_sample_reads_to_its_figures(
    preset: str, start: str, expected: Figures | None
) -> None:
    figures = read(sample(preset, start).text, preset)
    assert figures == expected
    if figures is not None:
        for money in (figures.balance, figures.renewal_price):
            assert money is None or isinstance(money, Decimal)
        for moment in (figures.expires_at, figures.renewal_at):
            assert moment is None or moment.tzinfo is UTC


def test_every_sample_is_expected_and_names_its_source() -> None:
    expected = {(p, s) for p, s, _ in EXPECTED}
    for name, preset in SMS_PRESETS.items():
        assert preset.samples, name
        for s in preset.samples:
            assert s.source
            assert sum(1 for p, start in expected if p == name and s.text.startswith(start)) == 1


def test_a_preset_is_verified_exactly_when_a_captured_sample_gives_figures() -> None:
    for name, preset in SMS_PRESETS.items():
        backed = any(s.captured and read(s.text, name) is not None for s in preset.samples)
        assert preset.verified == backed, name


def test_the_amount_added_is_not_the_balance() -> None:
    figures = read(sample("t-mobile-sms", "Free T-Mobile Msg").text, "t-mobile-sms")
    assert figures is not None and figures.balance != Decimal("60.00")


def test_a_plan_price_is_never_a_balance_with_an_sms_preset() -> None:
    """Ultra's plan-change text names two prices and no balance. Before SMS presets stopped
    the generic parser, it read "$39" as the balance."""
    text = sample("ultra-sms", "Your Ultra Mobile plan has changed").text
    for preset in SMS_PRESETS:
        assert read(text, preset) is None
    upgraded = read(sample("ultra-sms", "You just got").text, "ultra-sms")
    assert upgraded is not None and upgraded.balance is None


def test_the_expiry_is_read_in_the_configured_time_zone() -> None:
    text = sample("ultra-sms", "You just got").text
    in_utc = read(text, "ultra-sms", tz=ZoneInfo("UTC"))
    assert in_utc is not None and in_utc.expires_at == datetime(2027, 5, 10, 23, 59, tzinfo=UTC)


@pytest.mark.parametrize("preset", [None, *SMS_PRESETS, "t-mobile", "att-prepaid"])
@pytest.mark.parametrize(
    "text", [s.text for s in NO_FIGURE_SAMPLES], ids=[f"no-figure{i}" for i in range(2)]
)
def test_captured_texts_without_a_figure_give_none_with_any_reader(
    text: str, preset: str | None
) -> None:
    assert read(text, preset) is None


def test_no_figure_samples_are_captured_and_sourced() -> None:
    assert NO_FIGURE_SAMPLES and all(s.captured and s.source for s in NO_FIGURE_SAMPLES)


def test_a_copied_ussd_reply_reads_with_the_ussd_preset() -> None:
    text = "Your account balance is $25.00 and expires on 01/15/2027. Your plan renews 01/15/2027."
    figures = read(text, "att-prepaid", tz=ZoneInfo("UTC"))
    assert figures is not None and figures.balance == Decimal("25.00")


def test_a_lines_own_pattern_reads_data() -> None:
    readers = relay_readers([r"(?P<data>\d+(?:\.\d+)?\s?GB) of high-speed data left"], None)
    figures = read_relayed("Boost: 1.5 GB of high-speed data left", readers, tz=UTC, now=NOW)
    assert figures is not None and figures.data_remaining == 1_500_000_000


def test_without_readers_the_generic_parser_reads_a_balance() -> None:
    figures = read_relayed("Saldo: 4,50 EUR", relay_readers([], None), tz=UTC, now=NOW)
    assert figures is not None and figures.balance == Decimal("4.50")


@pytest.mark.parametrize(
    "text",
    [  # shaped after the help pages' descriptions of usage alerts, not captured texts
        "T-Mobile: You have used 80% of your high-speed data.",
        "Boost Mobile: you've reached 85% of your data.",
        "Service unavailable, balance $5.00. Try again later",
    ],
)
def test_a_percentage_or_a_notice_gives_none(text: str) -> None:
    assert read(text, "att-prepaid-sms") is None
    assert read(text, None) is None
