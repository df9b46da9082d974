"""Reading texts a phone relays (a carrier's SMS, a USSD reply the owner copied).

Pure, like `ussd_replies`, whose readers it reuses: a line's own `relay_patterns` first,
then the patterns of its `relay_preset`. With a USSD preset (a copied `*777#` reply reads
as the modem's would) or no preset, the generic parser (a balance marked by a currency,
an expiry date) comes last; with an SMS preset below it does not: the carrier's texts its
patterns do not know ("your plan has changed to Ultra $39") are not guessed at. A text no
reader finds a figure in is not a failure: the caller keeps it as a `relay` event.

SMS presets: each sample text names its source and says whether it was captured from a
real phone; a preset is `verified` when a captured text is read to figures by it. Usage
alerts (T-Mobile near and at an allotment, Boost at 85 % of data, per their help pages)
state percentages, not figures: they become `relay` events by design.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from monitor.adapters.ussd_replies import (
    DEFAULT_DATE_FORMATS,
    PRESETS,
    CodeSpec,
    Figures,
    UnreadableReply,
    clean_reply,
    code_spec,
    generic_figures,
    read_reply,
    rejection,
)

_USD = r"-?\$\s?\d[\d,]*(?:\.\d{1,2})?"
_US_DATE = r"\d{1,2}/\d{1,2}/\d{2,4}"
_MONTH_DATE = r"[A-Za-z]{3,9}\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}"
_MONTH_DAY = r"[A-Za-z]{3,9}\.?\s+\d{1,2}(?:st|nd|rd|th)?(?:,?\s+\d{4})?"
_CLOCK = r"\d{1,2}:\d{2}\s*[AaPp]\.?[Mm]\.?"


@dataclass(frozen=True)
class Sample:
    """A carrier text, where it comes from, and whether it was captured: verbatim from a
    real phone (`captured`), or an example a carrier or its dealer published."""

    text: str
    sender: str | None
    source: str
    captured: bool


@dataclass(frozen=True)
class SmsPreset:
    """How one carrier's texts are read, and the sourced texts that show it.

    `verified` means a captured text is read to figures by these patterns; texts the
    patterns do not match become `relay` events (the generic parser is not tried: a
    carrier's prices, "renew for $40", must not be taken for its balance)."""

    carrier: str
    reads: str
    codes: tuple[CodeSpec, ...]
    samples: tuple[Sample, ...]
    verified: bool
    senders: tuple[str, ...] = ()
    """The numbers its captured texts came from (a line's `relay_senders`)."""
    currency: str | None = "USD"


@dataclass(frozen=True)
class Readers:
    """What reads a line's relayed texts: specs in order, then maybe the generic parser."""

    specs: tuple[CodeSpec, ...]
    generic: bool


_T_MOBILE_REFILL = Sample(
    "Free T-Mobile Msg: $60.00 has been added to your account. "
    "Your new balance is $61.00. Thanks for refilling!",
    "456",
    "github.com/trustdarkness/zipwhip_cli README.md (a phone's inbox listed by the tool; "
    "the text's two wrapped lines joined by a space)",
    captured=True,
)

SMS_PRESETS: dict[str, SmsPreset] = {
    "t-mobile-sms": SmsPreset(
        carrier="T-Mobile (prepaid)",
        reads=(
            "balance ('Your new balance is $61.00', not the amount added); a copied #225# "
            "reply: balance, renewal date and price; a copied #932# reply: data"
        ),
        codes=(
            code_spec(
                "sms",
                patterns=(rf"\b(?:new\s+)?balance\s+is\s+(?P<balance>{_USD})",),
                currency="USD",
            ),
            *PRESETS["t-mobile"].codes,
        ),
        samples=(
            _T_MOBILE_REFILL,
            Sample(
                "T-Mobile Free Msg: Your bill is coming due. Pay online at t-mo.co/pay, on "
                "device via the My Account app or on your cell by dialing *PAY (*729).",
                "456",
                "github.com/Shreyaskc/AackAackBE 'aackaack database backup/AackAack.sql' "
                "(an SMS app's stored inbox, row 125)",
                captured=True,
            ),
            Sample(
                "Current plan active until 08/10/2022 and will renew for $12.34. Account "
                "Balance $56.78. Add money by dialing *233 or redeem a refill card.",
                None,
                "github.com/mueller-ma/PrepaidBalance app/src/test/java/com/github/muellerma/"
                "prepaidbalance/ResponseParserTest.kt (a #225# reply, figures blotted by "
                "its user), copied and relayed",
                captured=True,
            ),
        ),
        verified=True,
        senders=("456",),
    ),
    "ultra-sms": SmsPreset(
        carrier="Ultra Mobile",
        reads=(
            "the plan's expiry ('Your $39 plan expires on May 10 at 11:59 PM'), never the "
            "plan's price"
        ),
        codes=PRESETS["ultra"].codes,
        samples=(
            Sample(
                "You just got an Awesome Upgrade to the $39 plan. Your $39 plan expires on "
                "May 10 at 11:59 PM. To switch back to the $29 plan, see your retailer or "
                "call 611.",
                None,
                "https://www.ezkonnect.com/news/index/view/?id=3 (an Ultra dealer's copy of "
                "Ultra's 'example messaging', 2014)",
                captured=False,
            ),
            Sample(
                "Your Ultra Mobile plan has changed from Ultra $29 to Ultra $39. Data plan "
                "changes can take several minutes to go into effect.",
                None,
                "https://www.ezkonnect.com/news/index/view/?id=3 (the same example messaging)",
                captured=False,
            ),
        ),
        verified=False,
    ),
    "att-prepaid-sms": SmsPreset(
        carrier="AT&T Prepaid",
        reads=(
            "balance and expiry or renewal date, as a copied *777# reply gives them; no AT&T "
            "text with a figure was found to confirm them"
        ),
        codes=(
            code_spec(
                "sms",
                patterns=(
                    rf"\b(?:balance|bal)\s*(?:is|of|:)?\s*(?P<balance>{_USD})",
                    rf"\b(?:expir\w*|renew\w*|due)\s*(?:on\b|:)?\s*"
                    rf"(?P<expiry>{_MONTH_DATE}|{_US_DATE})",
                ),
                date_formats=("%b %d %Y", "%B %d %Y", "%m/%d/%Y", "%m/%d/%y"),
                currency="USD",
            ),
        ),
        samples=(
            Sample(
                "Your account balance is $20.00 and expires on Aug 28 2021.",
                None,
                "a *777#-style prepaid reply in the project's reference (modems.md: Canada), "
                "copied and relayed",
                captured=False,
            ),
        ),
        verified=False,
    ),
}
"""SMS presets by name (`relay_preset`); a USSD preset's name is accepted too."""

NO_FIGURE_SAMPLES: tuple[Sample, ...] = (
    Sample(
        "Mint Mobile is starting maintenance on your account. We will text you once "
        "completed. If you do not get 2nd message today restart phone or contact care at 611.",
        "+17253333641",
        "https://github.com/NeverBehave/tasker-config/issues/22 (a text a Tasker task "
        "forwarded into an issue)",
        captured=True,
    ),
    Sample(
        "Mint Mobile here. To set up your data and picture messaging go to "
        "bit.ly/mintapnsetup for step by step instructions.",
        "6700",
        "https://github.com/NeverBehave/tasker-config/issues/36 (forwarded the same way)",
        captured=True,
    ),
)
"""Captured texts of carriers without a preset: they hold no figure, so a line reading them
(with any preset, or none) keeps them as `relay` events."""


def preset_names() -> tuple[str, ...]:
    return (*SMS_PRESETS, *PRESETS)


def relay_readers(patterns: Sequence[str], preset: str | None) -> Readers:
    """What reads a line's relayed texts, in order: its own patterns, then its preset's.

    The generic parser comes last unless the preset is an SMS preset: a carrier's text
    its patterns do not know is kept as an event rather than guessed at."""
    specs = [code_spec("relay", list(patterns))] if patterns else []
    if preset in SMS_PRESETS:
        return Readers((*specs, *SMS_PRESETS[preset].codes), generic=False)
    if preset is not None:
        specs.extend(PRESETS[preset].codes)
    return Readers(tuple(specs), generic=True)


def preset_currency(preset: str | None) -> str | None:
    if preset is None:
        return None
    chosen = SMS_PRESETS.get(preset) or PRESETS.get(preset)
    return chosen.currency if chosen else None


def read_relayed(
    text: str,
    readers: Readers,
    *,
    tz: tzinfo,
    now: datetime,
    currency: str | None = None,
) -> Figures | None:
    """The figures in a relayed text, or None when it holds none (or says it is none: a
    refusal such as "service unavailable" is no balance either)."""
    cleaned = clean_reply(text)
    if rejection(cleaned):
        return None
    figures = Figures()
    for spec in readers.specs:
        try:
            figures = figures.merged(read_reply(text, spec, tz=tz, now=now, currency=currency))
        except UnreadableReply:
            continue
    if not figures.empty():
        return figures
    if not readers.generic:
        return None
    try:
        found = generic_figures(cleaned, DEFAULT_DATE_FORMATS, tz, now, currency, text)
    except UnreadableReply:
        return None
    return None if found.empty() else found
