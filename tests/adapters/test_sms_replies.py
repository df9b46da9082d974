"""Relayed texts read by the relay's readers: presets' samples, a line's patterns, the
generic parser, and texts that hold no figure."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from monitor.adapters.sms_replies import SAMPLES, SMS_PRESETS, read_relayed, relay_specs

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_every_sms_preset_has_samples_naming_their_source() -> None:
    assert set(SAMPLES) == set(SMS_PRESETS)
    for samples in SAMPLES.values():
        assert samples and all(s.source for s in samples)


def test_the_att_sms_sample_reads_its_balance_and_expiry() -> None:
    (sample,) = SAMPLES["att-prepaid-sms"]
    figures = read_relayed(sample.text, relay_specs([], "att-prepaid-sms"), tz=UTC, now=NOW)
    assert figures is not None
    assert (figures.balance, figures.currency) == (Decimal("12.50"), "USD")
    assert figures.expires_at is not None and figures.expires_at.date().isoformat() == "2026-12-30"


def test_a_copied_ussd_reply_reads_with_the_ussd_preset() -> None:
    text = "Your account balance is $25.00 and expires on 01/15/2027. Your plan renews 01/15/2027."
    figures = read_relayed(text, relay_specs([], "att-prepaid"), tz=UTC, now=NOW)
    assert figures is not None and figures.balance == Decimal("25.00")


def test_a_lines_own_pattern_reads_data() -> None:
    specs = relay_specs([r"(?P<data>\d+(?:\.\d+)?\s?GB) of high-speed data left"], None)
    figures = read_relayed("Boost: 1.5 GB of high-speed data left", specs, tz=UTC, now=NOW)
    assert figures is not None and figures.data_remaining == 1_500_000_000


def test_without_readers_the_generic_parser_reads_a_balance() -> None:
    figures = read_relayed("Saldo: 4,50 EUR", (), tz=UTC, now=NOW)
    assert figures is not None and figures.balance == Decimal("4.50")


@pytest.mark.parametrize(
    "text",
    [
        "T-Mobile: You have used 80% of your high-speed data.",
        "Boost Mobile: you've reached 85% of your data.",
        "Service unavailable, balance $5.00. Try again later",
    ],
)
def test_a_text_without_a_figure_or_a_notice_gives_none(text: str) -> None:
    assert read_relayed(text, relay_specs([], "att-prepaid-sms"), tz=UTC, now=NOW) is None
