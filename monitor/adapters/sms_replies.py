"""Reading texts a phone relays (a carrier's SMS, a USSD reply the owner copied).

Pure, like `ussd_replies`, whose readers it reuses: a line's own `relay_patterns` first,
then the codes' patterns of its `relay_preset` (any USSD preset: a copied `*777#` reply
reads as the modem's would, or an SMS preset below), then the generic parser (a balance
marked by a currency, an expiry date). A text no reader finds a figure in is not a
failure: the caller keeps it as a `relay` event.

SMS presets: each sample text names its source and says whether a captured message
confirmed it (`verified`). Carriers' usage texts (T-Mobile at 80 % and 100 % of an
allotment, Boost at 85 % of data) state percentages, not figures: they become `relay`
events by design, not readings.
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
    Preset,
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


@dataclass(frozen=True)
class Sample:
    """A carrier text a preset reads, where it comes from, and whether it was captured."""

    text: str
    source: str
    verified: bool


SMS_PRESETS: dict[str, Preset] = {
    "att-prepaid-sms": Preset(
        description="AT&T Prepaid texts: the balance and the date the plan expires or renews",
        currency="USD",
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
    ),
}
"""SMS presets by name (`relay_preset`); a USSD preset's name is accepted too."""

SAMPLES: dict[str, tuple[Sample, ...]] = {
    "att-prepaid-sms": (
        Sample(
            "AT&T Free Msg: Your balance is $12.50. Your plan expires on 12/30/2026.",
            "written after the *777# reply the att-prepaid USSD preset reads; not captured",
            verified=False,
        ),
    ),
}
"""Per preset, the texts its tests read (tests/adapters/test_sms_replies.py)."""


def preset_names() -> tuple[str, ...]:
    return (*SMS_PRESETS, *PRESETS)


def relay_specs(patterns: Sequence[str], preset: str | None) -> tuple[CodeSpec, ...]:
    """What reads a line's relayed texts, in order: its own patterns, then its preset's."""
    specs = [code_spec("relay", list(patterns))] if patterns else []
    if preset is not None:
        chosen = SMS_PRESETS.get(preset) or PRESETS[preset]
        specs.extend(chosen.codes)
    return tuple(specs)


def preset_currency(preset: str | None) -> str | None:
    if preset is None:
        return None
    chosen = SMS_PRESETS.get(preset) or PRESETS.get(preset)
    return chosen.currency if chosen else None


def read_relayed(
    text: str,
    specs: Sequence[CodeSpec],
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
    for spec in specs:
        try:
            figures = figures.merged(read_reply(text, spec, tz=tz, now=now, currency=currency))
        except UnreadableReply:
            continue
    if not figures.empty():
        return figures
    try:
        found = generic_figures(cleaned, DEFAULT_DATE_FORMATS, tz, now, currency, text)
    except UnreadableReply:
        return None
    return None if found.empty() else found
