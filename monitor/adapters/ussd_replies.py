"""Reading USSD reply texts: carrier presets, reply patterns, a generic money parser, dates.

Pure functions, no modem: everything here is tested on reply texts alone.

A reply is read in three steps:

1. `clean_reply` keeps the network's words: the text of `+CUSD:` lines when a modem gave
   raw AT output, without a leading "Initiating Release" notice.
2. `rejection` refuses what must never become a figure: an empty reply, a `+CME ERROR`,
   hex (UCS2) or garbled text, and any reply that says it is not one ("unavailable",
   "maintenance", "try again", "error"..., and the same in the corpus's other languages),
   even when it also holds a number.
3. The code's patterns (regexes with named groups, see `GROUPS`) are searched; a code
   without patterns uses `generic_figures`, which reads money amounts marked by a currency
   symbol or ISO code (before or after, comma or point decimals) and sums sub-balances,
   leaving out prices and parts restated after "of which"; when it is unsure (a currency
   code it does not know, a price beside an unlabelled amount) it fails the read.

Adding a preset: add an entry to `PRESETS` below, built with `code_spec`, and a test with a
real reply text. Users need no preset to read another carrier: a line's `codes` list gives
codes and patterns of its own, and entries with a preset's code override that code's
pattern, date formats or currency.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from monitor.errors import CheckFailed, UnitError
from monitor.model import Reading
from monitor.units import parse_data_size

GROUPS: Mapping[str, str] = {
    "balance": "money left on the line ('$15.00', '1.234,56 EUR')",
    "currency": "ISO code or symbol of the balance ('USD', '$', '€')",
    "data": "data left, with its unit ('1.5GB', '500 MB')",
    "data_total": "the plan's data, with its unit",
    "data_used": "data used, with its unit (with data_total: what is left)",
    "expiry": "when the line or plan expires (a date in one of the date formats)",
    "renewal_date": "when the plan renews",
    "renewal_price": "what the renewal costs",
}
"""The named groups a pattern may use; any other name is a config error (typos must fail)."""

PATTERN_FLAGS = re.IGNORECASE | re.DOTALL
"""Carriers change capitalisation and wrap lines; `(?-i:...)` in a pattern undoes this."""

DEFAULT_DATE_FORMATS: tuple[str, ...] = (
    "%m/%d/%Y",
    "%m/%d/%y",
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y/%m/%d",
    "%b %d %Y",
    "%B %d %Y",
    "%d %b %Y",
    "%d %B %Y",
    "%d.%m.%Y",
)
"""Tried in order when a code names none. US order first ("08/10/2022" is August 10): set
`date_format` for carriers that write the day first."""

# ---- money ---------------------------------------------------------------------------------

_ISO_LIST = """
    AED AFN AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOV BRL BSD BTN BWP BYN
    BZD CAD CDF CHF CLP CNY COP CRC CUC CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL
    GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF
    KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MRU MUR MVR MWK MXN MYR
    MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR
    SDG SEK SGD SHP SLE SLL SRD SSP STN SVC SYP SZL THB TJS TMT TND TRY TTD TWD TZS UAH UGX USD
    UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWG ZWL
"""
ISO_CODES: frozenset[str] = frozenset(_ISO_LIST.split())
"""ISO 4217's active currency codes (2024), read as currencies when they stand next to a
number. Codes that are also English words in capitals (ALL, TOP, CUP, BOB, MOP, SOS) are left
out on purpose; a three-capital code the parser does not know fails the read (`generic_figures`)."""

SYMBOLS: Mapping[str, str | None] = {
    "US$": "USD",
    "CA$": "CAD",
    "C$": "CAD",
    "AU$": "AUD",
    "A$": "AUD",
    "NZ$": "NZD",
    "HK$": "HKD",
    "S$": "SGD",
    "R$": "BRL",
    "MX$": "MXN",
    "$": None,
    "€": "EUR",
    "£": "GBP",
    "¥": None,
    "₹": "INR",
    "Rs.": "INR",
    "Rs": "INR",
    "Rp": "IDR",
    "₦": "NGN",
    "₱": "PHP",
    "₩": "KRW",
    "₺": "TRY",
    "₽": "RUB",
    "₴": "UAH",
    "₪": "ILS",
    "₫": "VND",
    "฿": "THB",
    "GH₵": "GHS",
    "₵": "GHS",
    "KSh": "KES",
    "Ksh": "KES",
    "zł": "PLN",
    "zl": "PLN",
    "Kč": "CZK",
    "Kc": "CZK",
    "Ft": "HUF",
    "euros": "EUR",
    "euro": "EUR",
    "Euro": "EUR",
    "EURO": "EUR",
    "kr": None,
    "R": "ZAR",
}
"""Currency symbols; None where a symbol is shared ($, ¥, kr): the line's `currency` then
says which. A currency code in the reply beats both. "zl" is "zł" and "Kc" "Kč" as GSM 7-bit
text spells them (Polish and Czech replies drop the diacritic); "euro" is spelled out by Dutch
Vodafone."""

_BALANCE_WORDS = r"balance|bal|credit|airtime|bonus|main|account|wallet|saldo|solde|remaining"
_PRICE_WORDS = (
    r"renew\w*|price|costs?|fees?|charg\w*|pay\w*|paid|due|for|plan|recharg\w*|top[\s-]?up"
    r"|refill|add|added|buy|purchase|advance|loan|borrow|deposit|offer|get|dial|last"
    r"|min(?:imum)?|up\s+to|save"
)
_KEYWORD = re.compile(
    rf"\b(?:(?P<balance>{_BALANCE_WORDS})|(?P<price>{_PRICE_WORDS}))\b", re.IGNORECASE
)
_PER_PERIOD = re.compile(r"\s*(?:/|per\b|a\b|an\b)\s*(?:month|mo|week|wk|day|30\s*days)\b", re.I)
_PRICE_AFTER = re.compile(
    r"\s*(?:plans?|bundles?|packs?|packages?|tariffs?|add-?ons?|offers?)\b", re.IGNORECASE
)
"""An amount naming a plan or bundle ("the $39 plan") is its price, not a balance."""
_PART_WORDS = re.compile(
    r"\b(?:of\s+which|davon|z\s+toho|ebb[őöo]l|w\s+tym|waarvan|dont|de\s+los\s+cuales)\b",
    re.IGNORECASE,
)
"""'Of which' in the languages of the corpus: the amount after it is a part of the one
before (Czech "300 Kc, z toho bonusovy kredit je 0 Kc"), not one more sub-balance."""
_UNKNOWN_CODE = re.compile(r"\s?(?P<code>[A-Z]{3})(?![A-Za-z])")
_SENTENCE_END = re.compile(r"[.!?;\n](?=\s|$)")
_CONTEXT = 48
"""How far back (characters) a money amount's label is looked for."""

_END = r"(?!\d|[.,]\d)"
_NUM = rf"\d{{1,3}}(?:[.,']\d{{3}})+(?:[.,]\d{{1,2}})?{_END}|\d+(?:[.,]\d{{1,3}})?{_END}"
"""A figure: digits, maybe grouped, maybe decimals; never the head of a longer number."""


def _marker_regex() -> str:
    parts = []
    for symbol in sorted(SYMBOLS, key=len, reverse=True):
        escaped = re.escape(symbol)
        parts.append(rf"(?<![A-Za-z]){escaped}" if symbol[0].isalpha() else escaped)
    parts.append(r"(?<![A-Za-z])(?:" + "|".join(sorted(ISO_CODES)) + r")(?![A-Za-z])")
    return "|".join(parts)


_MARKER = _marker_regex()
_MONEY = re.compile(
    rf"""
    (?P<sign>[-−])?
    (?:
        (?P<pre>{_MARKER})(?:\s?:)?\s?(?P<sign2>[-−])?(?<![\d.,])(?P<num1>{_NUM})
      | (?<![\d.,])(?P<num2>{_NUM})\s?(?P<post>{_MARKER})(?![A-Za-z])
    )
    """,
    re.VERBOSE,
)
_UNITS_AFTER = (
    r"\s*(?:[KMGT]i?B|bytes?|B\b|min\w*|sms|texts?|msgs?|messages?|units?|pts|points?|days?|%)"
)
_LABELLED = re.compile(
    rf"\b(?:balance|bal|credit|saldo|solde)\b\s*(?:is|of|:|=)?\s*"
    rf"(?P<sign>[-−])?(?<![\d.,])(?P<num>{_NUM})(?!{_UNITS_AFTER})",
    re.IGNORECASE,
)
_MARKER_ONLY = re.compile(rf"^\s*(?:{_MARKER})\s*|\s*(?:{_MARKER})\s*$")


def currency_of(marker: str | None) -> str | None:
    """An ISO code for a symbol or code; None when it is shared or unknown."""
    if not marker:
        return None
    text = marker.strip()
    if text.upper() in ISO_CODES and len(text) == 3:
        return text.upper()
    return SYMBOLS.get(text)


def parse_number(text: str) -> Decimal:
    """ "1,234.56", "1.234,56", "20,00", "15" -> Decimal. A single separator before exactly
    three digits groups thousands ("50.000" is fifty thousand, as Indonesian carriers write),
    unless the whole part is 0 ("0.500")."""
    s = re.sub(r"[\s'\u00a0\u202f]", "", text)
    if not re.fullmatch(r"\d[\d.,]*", s) or not s[-1].isdigit():
        raise ValueError(f"{text!r} is not a number")
    if "," in s and "." in s:
        decimal = "," if s.rfind(",") > s.rfind(".") else "."
        grouping = "." if decimal == "," else ","
        whole, _, fraction = s.rpartition(decimal)
        if decimal in whole or not re.fullmatch(
            rf"\d{{1,3}}(?:{re.escape(grouping)}\d{{3}})*", whole
        ):
            raise ValueError(f"{text!r} is not a number")
        s = whole.replace(grouping, "") + "." + fraction
    elif "," in s or "." in s:
        sep = "," if "," in s else "."
        head, *tail = s.split(sep)
        if len(tail) > 1:
            if not all(len(part) == 3 for part in tail) or len(head) > 3:
                raise ValueError(f"{text!r} is not a number")
            s = head + "".join(tail)
        elif len(tail[0]) == 3 and head != "0" and len(head) <= 3:
            s = head + tail[0]
        else:
            s = f"{head}.{tail[0]}"
    try:
        return Decimal(s)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None


def parse_amount(text: str) -> tuple[Decimal, str | None]:
    """ "$15.00", "-R49.96", "1.234,56 EUR", "USD 20" -> (amount, ISO code or None)."""
    s = text.strip()
    negative = False
    currency = None
    for _ in range(3):  # a sign and a marker, in either order, around the figure
        if s[:1] in ("-", "−"):
            negative = True
            s = s[1:].strip()
            continue
        found = _MARKER_ONLY.search(s)
        if found and found.group().strip():
            currency = currency or currency_of(found.group())
            s = (s[: found.start()] + s[found.end() :]).strip()
            continue
        break
    amount = parse_number(s)
    return (-amount if negative else amount), currency


# ---- data ----------------------------------------------------------------------------------

_DATA = re.compile(r"\s*(?P<num>\d[\d.,' ]*?)\s*(?P<unit>[KMGT]i?B|[KMGT]|B|bytes?)\s*", re.I)


def parse_data(text: str) -> int:
    """ "1.5GB", "500 MB", "1,5 GB", "512MiB" -> bytes (decimal units, as carriers count)."""
    match = _DATA.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not a data size with a unit (such as '1.5GB')")
    number = parse_number(match["num"])
    unit = match["unit"].upper()
    unit = {"K": "KB", "M": "MB", "G": "GB", "T": "TB", "BYTE": "B", "BYTES": "B"}.get(unit, unit)
    try:
        return parse_data_size(f"{number:f}{unit}")
    except UnitError as exc:
        raise ValueError(str(exc)) from None


# ---- dates ---------------------------------------------------------------------------------

_ORDINAL = re.compile(r"(?<=\d)(?:st|nd|rd|th)\b", re.I)
_ABBREVIATION_DOT = re.compile(r"(?<=[A-Za-z]{2})\.")
_NAME_DIRECTIVE_DOT = re.compile(r"(%[aAbB])\.")


def _tidy_date(text: str) -> str:
    """ "Aug. 28th, 2021." -> "Aug 28 2021": what carriers vary, and strptime cannot skip."""
    text = _ABBREVIATION_DOT.sub("", _ORDINAL.sub("", text)).replace(",", " ")
    return " ".join(text.split()).strip(" .;:")


def _tidy_format(fmt: str) -> str:
    """A date format tidied the way `_tidy_date` tidies the text it reads."""
    text = _NAME_DIRECTIVE_DOT.sub(r"\1", fmt).replace(",", " ")
    return " ".join(text.split()).strip(" .;:")


def _has_year(fmt: str) -> bool:
    return "%Y" in fmt or "%y" in fmt


def parse_date(text: str, formats: Sequence[str], tz: tzinfo, now: datetime) -> datetime:
    """A reply's date or time, in the carrier's zone `tz`, as an aware UTC datetime.

    A date alone means the start of that day (alerts come early rather than late). A
    format without a year takes the next such date, counting back at most half a year, so
    "expires on Aug 28" read in December is next August, read in September last month."""
    cleaned = _tidy_date(text)
    local_now = now.astimezone(tz).replace(tzinfo=None)
    for fmt in formats:
        f = _tidy_format(fmt)
        try:
            if _has_year(f):
                moment = datetime.strptime(cleaned, f)
            else:
                moment = datetime.strptime(f"{cleaned} {local_now.year}", f"{f} %Y")
                if moment < local_now - timedelta(days=183):
                    moment = datetime.strptime(f"{cleaned} {local_now.year + 1}", f"{f} %Y")
        except ValueError:
            continue
        return moment.replace(tzinfo=tz).astimezone(UTC)
    raise ValueError(f"{text.strip()!r} matches none of the date formats {', '.join(formats)}")


def check_date_format(fmt: str) -> str:
    """Refuse a format strptime cannot use, or one that holds no date at all."""
    sample = datetime(2021, 8, 28, 13, 45, 30)
    f = _tidy_format(fmt)
    if not _has_year(f):
        f += " %Y"
    try:
        parsed = datetime.strptime(sample.strftime(f), f)
    except ValueError as exc:
        raise ValueError(f"date format {fmt!r} cannot be used: {exc}") from None
    if parsed.day != sample.day and parsed.month != sample.month:
        raise ValueError(f"date format {fmt!r} holds no day or month (use %d, %m, %b...)")
    return fmt


_DATE_TOKEN = (
    r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?)?"
    r"|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}(?!\d)"
    r"|\d{1,2}\.\s\d{1,2}\.\s\d{4}"
    r"|[A-Za-z]{3,9}\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}"
    r"|\d{1,2}(?:st|nd|rd|th)?\s+[A-Za-z]{3,9}\.?,?\s+\d{4}"
)
_EXPIRY = re.compile(
    r"(?<![\w.])(?:(?P<english>expir\w*(?:\s+date)?|valid\s+(?:until|till|through|thru|to)"
    r"|active\s+until|until|till)"
    r"|(?P<day_first>geldig\s+tot|g[üu]ltig\s+bis|wa[żz]ne\s+do(?:\s+dnia)?|s\.d\."
    r"|platnost(?:\s+\w+){0,3}\s*:|valable\s+jusqu'au|v[áa]lid[oa]\s+hasta))"
    rf"(?!\w)\s*(?:on\b|:)?\s*(?P<date>{_DATE_TOKEN})",
    re.IGNORECASE,
)
"""An expiry date after its phrase. The phrase tells the order of a numeric date: English
ones read month first (the US carriers' order) unless the first number cannot be a month;
the others (Dutch, German, Polish, Indonesian, Czech, French, Spanish) day first."""
_DAY_FIRST_FORMATS: tuple[str, ...] = (
    "%d/%m/%Y",
    "%d/%m/%y",
    "%d-%m-%Y",
    "%d-%m-%y",
    "%d.%m.%Y",
    "%d.%m.%y",
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%d %b %Y",
    "%d %B %Y",
)


def _expiry_formats(match: re.Match[str], formats: Sequence[str]) -> Sequence[str]:
    """The formats for an expiry the generic parser found: a code's own formats as given;
    with the defaults, day first after a day-first phrase or a first number over 12."""
    if tuple(formats) != DEFAULT_DATE_FORMATS:
        return formats
    first = re.match(r"\d{1,2}(?=[/.-])", match["date"])
    if match["day_first"] or (first and int(first.group()) > 12):
        return _DAY_FIRST_FORMATS
    return formats


# ---- what a reply says -----------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """What one or more replies said; any figure may be missing."""

    balance: Decimal | None = None
    currency: str | None = None
    data_remaining: int | None = None
    data_total: int | None = None
    data_used: int | None = None
    expires_at: datetime | None = None
    renewal_at: datetime | None = None
    renewal_price: Decimal | None = None

    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self) if f.name != "currency")

    def reading(
        self,
        line: str,
        now: datetime,
        *,
        raw: Any,
        extras: Mapping[str, Any] | None = None,
        source: str = "poll",
    ) -> Reading:
        """These figures as `line`'s reading; the currency only goes with an amount."""
        money = self.balance is not None or self.renewal_price is not None
        more = {"data_used": self.data_used} if self.data_used is not None else {}
        return Reading(
            line=line,
            checked_at=now,
            balance=self.balance,
            currency=self.currency if money else None,
            data_remaining=self.data_remaining,
            data_total=self.data_total,
            expires_at=self.expires_at,
            renewal_at=self.renewal_at,
            renewal_price=self.renewal_price,
            extras={**more, **(extras or {})},
            raw=raw,
            source=source,
        )

    def merged(self, other: Figures) -> Figures:
        """Figures missing here taken from `other` (the first code to give a figure wins)."""
        update = {
            f.name: getattr(other, f.name)
            for f in fields(self)
            if getattr(self, f.name) is None and getattr(other, f.name) is not None
        }
        if self.balance is not None:
            update.pop("currency", None)  # the currency belongs to the balance it came with
        return replace(self, **update).completed()

    def completed(self) -> Figures:
        """Data left from data used of the total, when the reply says it that way."""
        if (
            self.data_remaining is None
            and self.data_total is not None
            and self.data_used is not None
        ):
            return replace(self, data_remaining=max(self.data_total - self.data_used, 0))
        return self


class UnreadableReply(CheckFailed):
    """A reply that gives no figure: refused, unmatched, or a figure that cannot be read."""

    def __init__(self, message: str, reply: str) -> None:
        super().__init__(message, raw=reply)


@dataclass(frozen=True)
class SmsVia:
    """A query answered by SMS: a text sent (`to`, `text`), or the code's USSD request when
    both are None, and the number whose text answers it (`sender`)."""

    sender: str
    to: str | None = None
    text: str | None = None
    keep_messages: bool = False
    """Leave the query and its reply on the modem (deleted by default)."""

    @property
    def label(self) -> str:
        """How messages, raw replies and overrides name an SMS query: "sms 6700 BAL"."""
        return f"sms {self.to} {self.text}"


@dataclass(frozen=True)
class CodeSpec:
    """One USSD code or SMS query and how to read its reply: no patterns means the generic
    parser. An SMS query's `code` is its label ("sms 6700 BAL")."""

    code: str
    patterns: tuple[re.Pattern[str], ...] = ()
    date_formats: tuple[str, ...] = DEFAULT_DATE_FORMATS
    currency: str | None = None
    respond: tuple[str, ...] = ()
    """A menu code's answers, in order: the reply read is the text after the last."""
    expect: tuple[str, ...] = ()
    """Text each menu must show before its answer (and the last reply), "" for any."""
    sms: SmsVia | None = None
    """How the reply comes by text; None: it is the USSD session's own reply."""
    timeout: float | None = None
    """Seconds this code may take (None: the line's timeout)."""


@dataclass(frozen=True)
class Preset:
    """A carrier's codes and patterns: a default that a line's `codes` may override."""

    description: str
    codes: tuple[CodeSpec, ...]
    currency: str | None = None
    verified: bool = False
    """True only when every code's patterns were checked against a sourced, real reply."""
    refill: str | None = None
    """The carrier's code to redeem a refill PIN, `{pin}` standing for it (for `ussd-pin`)."""
    source: str = ""
    """Where the codes (and any reply sample) come from: a URL, or repo+path+commit."""


def compile_pattern(text: str) -> re.Pattern[str]:
    """A user's or a preset's regex, checked: it compiles and names known groups only."""
    try:
        pattern = re.compile(text, PATTERN_FLAGS)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    unknown = sorted(set(pattern.groupindex) - set(GROUPS))
    if unknown:
        raise ValueError(f"unknown group name(s) {', '.join(unknown)}; use {', '.join(GROUPS)}")
    if not set(pattern.groupindex) - {"currency"}:
        raise ValueError(
            "the pattern names no figure: use a named group such as (?P<balance>...) "
            f"({', '.join(GROUPS)})"
        )
    return pattern


def code_spec(
    code: str,
    patterns: str | Iterable[str] = (),
    date_formats: Iterable[str] = DEFAULT_DATE_FORMATS,
    currency: str | None = None,
    sms: SmsVia | None = None,
) -> CodeSpec:
    """A CodeSpec from plain strings, every pattern and date format checked; with `sms` a
    text query, `code` ignored for its label."""
    texts = [patterns] if isinstance(patterns, str) else list(patterns)
    return CodeSpec(
        code=sms.label if sms is not None and sms.to is not None else code,
        patterns=tuple(compile_pattern(p) for p in texts),
        date_formats=tuple(check_date_format(f) for f in date_formats),
        currency=currency,
        sms=sms,
    )


# ---- presets ---------------------------------------------------------------------------------

_USD = r"-?\$\s?\d[\d,]*(?:\.\d{1,2})?"
_US_DATE = r"\d{1,2}/\d{1,2}/\d{2,4}"
_MONTH_DATE = r"[A-Za-z]{3,9}\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}"
_SIZE = r"\d[\d.,]*\s?[KMGT]B"
_MONTH_DAY = r"[A-Za-z]{3,9}\.?\s+\d{1,2}(?:st|nd|rd|th)?(?:,?\s+\d{4})?"
_CLOCK = r"\d{1,2}:\d{2}\s*[AaPp]\.?[Mm]\.?"

PRESETS: dict[str, Preset] = {
    "att-prepaid": Preset(
        description="AT&T Prepaid: *777# gives the balance and when it expires",
        currency="USD",
        verified=False,
        refill="*888*{pin}#",
        source=(
            "https://gist.github.com/mortonfox/27969b2f5ed77ab5450bcfd34f49343d (AT&T's "
            "GoPhone star codes: *777# balance and expiry, *888*PIN# refill); "
            "https://www.att.com/support/article/wireless/KM1008656/ (*888* + PIN + #)"
        ),
        codes=(
            code_spec(
                "*777#",
                patterns=(
                    rf"\bbalance\s*(?:is|of|:)?\s*(?P<balance>{_USD})",
                    rf"\bexpir\w*\s*(?:on\b|:)?\s*(?P<expiry>{_MONTH_DATE}|{_US_DATE})",
                ),
                date_formats=("%b %d %Y", "%B %d %Y", "%m/%d/%Y", "%m/%d/%y"),
            ),
        ),
    ),
    "t-mobile": Preset(
        description=(
            "T-Mobile prepaid: #225# gives the balance and the plan's renewal date and price; "
            "#932# the data used and the plan's expiry"
        ),
        currency="USD",
        verified=False,
        source=(
            "#225# reply: mueller-ma/PrepaidBalance app/src/test/java/com/github/muellerma/"
            "prepaidbalance/ResponseParserTest.kt @ 098d79398d1e7cce87d01af56f19e6ced1134fea; "
            "#932#: https://www.chieftain.com/story/business/2012/10/04/cipriani-keep-eye-on-"
            "smartphone/8494699007/ (no reply sample)"
        ),
        codes=(
            code_spec(
                "#225#",
                patterns=(
                    rf"\buntil\s+(?P<renewal_date>{_US_DATE})\s+and\s+will\s+renew\s+for\s+"
                    rf"(?P<renewal_price>{_USD})",
                    rf"\bbalance\s*(?:is|of|:)?\s*(?P<balance>{_USD})",
                ),
                date_formats=("%m/%d/%Y", "%m/%d/%y"),
            ),
            code_spec(
                "#932#",
                patterns=(
                    rf"(?P<data_used>{_SIZE})\s*(?:used\s+)?(?:of|out\s+of|/)\s*(?:your\s+)?"
                    rf"(?P<data_total>{_SIZE})",
                    rf"(?P<data>{_SIZE})\s+(?:[\w-]+\s+){{0,3}}?(?:remaining|left)\b",
                    rf"\b(?:expir\w*|ends?|valid\s+(?:until|through|thru))\s*(?:on\b|:)?\s*"
                    rf"(?P<expiry>{_US_DATE})",
                ),
                date_formats=("%m/%d/%Y", "%m/%d/%y"),
            ),
        ),
    ),
    "ultra": Preset(
        description=(
            "Ultra Mobile: text BAL to 6700, answered by SMS (the plan and its expiry); "
            "no captured reply, so its pattern reads the expiry as Ultra's example texts "
            "phrase it"
        ),
        currency="USD",
        verified=False,
        source=(
            "https://www.ultramobile.com/faq/when-do-my-minutes-or-text-mms-messages-expire/ "
            "(text BAL to 6700); pattern: https://www.ezkonnect.com/news/index/view/?id=3"
        ),
        codes=(
            code_spec(
                "sms",
                patterns=(
                    rf"\bplan\s+expires\s+on\s+(?P<expiry>{_MONTH_DAY}(?:\s+at\s+{_CLOCK})?)",
                ),
                date_formats=(
                    "%b %d at %I:%M %p",
                    "%B %d at %I:%M %p",
                    "%b %d %Y at %I:%M %p",
                    "%B %d %Y at %I:%M %p",
                    "%b %d",
                    "%B %d",
                    "%b %d %Y",
                    "%B %d %Y",
                ),
                currency="USD",
                sms=SmsVia(sender="6700", to="6700", text="BAL"),
            ),
        ),
    ),
    "us-mobile": Preset(
        description=(
            "US Mobile (unlimited plans): text BALANCE to +1 888 878 1488, answered by SMS; "
            "no reply was found, so its patterns (data left, a balance in $) are a guess"
        ),
        currency="USD",
        verified=False,
        source=(
            "https://www.usmobile.com/help/docs/managing-lines/check-usage-balance (text "
            "BALANCE to +1(888)878-1488 on an unlimited plan)"
        ),
        codes=(
            code_spec(
                "sms",
                patterns=(
                    rf"(?P<data>{_SIZE})\s+(?:[\w-]+\s+){{0,3}}?(?:remaining|left)\b",
                    rf"\bbalance\s*(?:is|of|:)?\s*(?P<balance>{_USD})",
                ),
                currency="USD",
                sms=SmsVia(sender="+18888781488", to="+18888781488", text="BALANCE"),
            ),
        ),
    ),
}
"""Carrier presets by name, each naming its `source`. `ultra` and `us-mobile` ask by SMS;
`ultra`'s pattern is the relay preset `ultra-sms`'s (one table: monitor/adapters/sms_replies.py),
written from Ultra's example messaging, not from a captured reply to BAL. `verified` is False
for all (docs/modems.md, "Carriers"): the *777# sample is 7-Eleven Speakout Canada's reply,
not AT&T's; #932# and US Mobile's answer were never captured, so their patterns are written
from the carriers' descriptions: verify them with `esim-monitor ussd` or `sms send`."""

NOT_SUPPORTED: dict[str, str] = {
    "Verizon Prepaid": (
        "#BAL (#225) and #DATA (#3282) are dialled as calls (no closing #, so not USSD), "
        "answered by a free text per third-party pages; the monitor has no voice path yet"
    ),
    "Boost Mobile": (
        "#BAL (#225) is dialled as a call (boostmobile.com FAQ), answered by text per a "
        "third-party page; the monitor has no voice path yet"
    ),
    "Cricket": "no balance code or keyword found (*PAY, *729, is a payment call)",
    "Metro by T-Mobile": "no balance code or keyword found (611 is a voice menu)",
    "Mint Mobile": "no balance code or keyword found (its texts come from 6700, as Ultra's)",
    "Tracfone / Straight Talk / Total": "no balance code or keyword found in a source",
    "Lycamobile US": (
        "no US balance code found (the *136# found is Lycamobile Netherlands' bundle code)"
    ),
    "H2O Wireless": "no balance code found (its refill page gives only 611, a voice menu)",
}
"""Carriers of issue 17 without a preset, and why (docs/modems.md lists them too)."""


# ---- reading a reply -------------------------------------------------------------------------

_CUSD = re.compile(
    r'^\s*\+CUSD:\s*(?P<m>\d)\s*(?:,\s*"(?P<text>.*)"\s*(?:,\s*(?P<dcs>\d+))?)?\s*$',
    re.MULTILINE,
)
_RELEASE_LINE = re.compile(
    r"^\s*(?:initiating\s+release|release|session\s+(?:released|terminated|ended))\.?\s*$",
    re.IGNORECASE,
)
_CME = re.compile(r"\+CM[ES] ERROR:?\s*(?P<what>[^\n]*)", re.IGNORECASE)
_REFUSALS = re.compile(
    r"\b(?:unavailable|not\s+available|maintenance|try\s+(?:again|later)|retry|error|errors"
    r"|fail(?:ed|ure)?|invalid|not\s+(?:allowed|permitted|supported|recogni[sz]ed)"
    r"|unable|temporar(?:y|ily)|out\s+of\s+service|busy|cannot\s+(?:be\s+)?process\w*"
    r"|could\s+not\s+be\s+processed|unknown\s+application|connection\s+problem|mmi"
    r"|no\s+response|time[sd]?\s*out|denied|barred"
    # German, Spanish, Dutch, French, Polish, Portuguese, Italian:
    r"|wartung\w*|nicht\s+bearbeiten|später\s+erneut|nicht\s+verfügbar|derzeit\s+nicht"
    r"|no\s+puede\s+ser\s+tramitad[ao]|no\s+disponible|mantenimiento|m[áa]s\s+tarde"
    r"|onderhoud|niet\s+beschikbaar|later\s+opnieuw|indisponible|r[ée]essayer"
    r"|niedost[ęe]pn\w*|spr[óo]buj|indispon[íi]vel|tente\s+novamente|non\s+disponibile"
    r"|riprova\w*)\b",
    re.IGNORECASE,
)
"""What notices say, in English and the languages of the corpus: any of it refuses a reply."""


def clean_reply(reply: str) -> str:
    """The network's own words: the text of raw `+CUSD:` lines (a terminate line with m=2
    may precede the real reply), without a leading "Initiating Release" notice."""
    text = reply.replace("\r\n", "\n").replace("\r", "\n").strip()
    lines = list(_CUSD.finditer(text))
    if lines:
        answers = [m["text"] for m in lines if m["m"] in ("0", "1") and m["text"]]
        text = "\n".join(answers or [m["text"] for m in lines if m["text"]])
    kept = text.split("\n")
    while len(kept) > 1 and _RELEASE_LINE.match(kept[0]):
        kept.pop(0)
    return "\n".join(kept).strip()


def rejection(text: str) -> str | None:
    """Why a (cleaned) reply must not be read as figures, or None when it may be."""
    if not text.strip():
        return "the network's reply is empty"
    cme = _CME.search(text)
    if cme:
        code = cme["what"].strip().strip('"')
        hint = (
            ": no network service for USSD (often an LTE-only or IMS line)" if code == "30" else ""
        )
        return f"the modem answered with an error (+CME ERROR: {code}){hint}"
    compact = re.sub(r"\s", "", text)
    if len(compact) >= 8 and re.fullmatch(r"[0-9A-Fa-f]+", compact):
        return "the reply is hex-encoded, not text (UCS2?)" + _ucs2_hint(compact)
    if any(_garbled(char) for char in text):
        return "the reply is garbled (characters that are not text)"
    if not any(char.isalpha() for char in text):
        return "the reply holds no words"
    refusal = _REFUSALS.search(text)
    if refusal:
        return f"the reply is a notice, not a balance (it says {refusal.group()!r})"
    return None


def _garbled(char: str) -> bool:
    if char in "\n\t":
        return False
    return char == "\ufffd" or unicodedata.category(char) in ("Cc", "Cs", "Co", "Cn")


def _ucs2_hint(compact: str) -> str:
    if len(compact) % 4:
        return ""
    try:
        decoded = bytes.fromhex(compact).decode("utf-16-be")
    except (ValueError, UnicodeDecodeError):
        return ""
    if decoded.isprintable():
        return f"; decoded it would read {decoded[:80]!r}"
    return ""


def read_reply(
    reply: str,
    spec: CodeSpec,
    *,
    tz: tzinfo,
    now: datetime,
    currency: str | None = None,
) -> Figures:
    """The figures in one code's reply; UnreadableReply (with the raw reply) otherwise.

    `currency` is what the line says ("$" alone does not tell USD from CAD); a code in the
    reply, or an unambiguous symbol, wins over it."""
    text = clean_reply(reply)
    reason = rejection(text)
    if reason:
        raise UnreadableReply(reason, reply)
    currency = spec.currency or currency
    if spec.patterns:
        figures = _pattern_figures(text, spec, tz, now, currency, reply)
        if figures.empty():
            raise UnreadableReply("the reply matches none of the code's patterns", reply)
        return figures
    figures = generic_figures(text, spec.date_formats, tz, now, currency, reply)
    if figures.balance is None:
        raise UnreadableReply(
            "no balance found in the reply: the generic parser needs an "
            "amount with a currency symbol or code, or after the word 'balance'; give the "
            "code a `pattern`",
            reply,
        )
    return figures


def _pattern_figures(
    text: str,
    spec: CodeSpec,
    tz: tzinfo,
    now: datetime,
    currency: str | None,
    reply: str,
) -> Figures:
    found: dict[str, str] = {}
    for pattern in spec.patterns:
        match = pattern.search(text)
        if match:
            for name, value in match.groupdict().items():
                value = (value or "").strip().rstrip(".,;:!?")  # a loose \S+ takes these
                if value:
                    found.setdefault(name, value)
    amounts: dict[str, Decimal] = {}
    sizes: dict[str, int] = {}
    dates: dict[str, datetime] = {}
    markers: list[str | None] = []
    for name, value in found.items():
        try:
            if name in ("balance", "renewal_price"):
                amounts[name], marker = parse_amount(value)
                markers.append(marker)
            elif name in ("data", "data_total", "data_used"):
                sizes[name] = parse_data(value)
            elif name in ("expiry", "renewal_date"):
                dates[name] = parse_date(value, spec.date_formats, tz, now)
        except ValueError as exc:
            raise UnreadableReply(f"{name} {value!r} cannot be read: {exc}", reply) from None
    money = currency_of(found.get("currency")) or next(filter(None, markers), None) or currency
    return Figures(
        balance=amounts.get("balance"),
        currency=money if amounts else None,
        data_remaining=sizes.get("data"),
        data_total=sizes.get("data_total"),
        data_used=sizes.get("data_used"),
        expires_at=dates.get("expiry"),
        renewal_at=dates.get("renewal_date"),
        renewal_price=amounts.get("renewal_price"),
    ).completed()


_BUNDLE_LINE = re.compile(r"\s*\d{1,2}[.)]?\s.*\d\s?[KMGT]B\b.*", re.IGNORECASE)
"""A numbered menu option offering a data bundle ("2 25GB,Rp50rb/30hr"): its amount is the
bundle's price, not part of the balance."""


def _line_of(text: str, index: int) -> str:
    """The line of `text` that holds position `index`."""
    start = text.rfind("\n", 0, index) + 1
    end = text.find("\n", index)
    return text[start : end if end >= 0 else len(text)]


def generic_figures(
    text: str,
    date_formats: Sequence[str],
    tz: tzinfo,
    now: datetime,
    currency: str | None,
    reply: str | None = None,
) -> Figures:
    """The default pattern: the sum of the reply's balances, and its expiry date if it
    states one. Amounts labelled as prices ("renews for $15", "recharge with R10", "$5 per
    month") are not balances; the label nearest before an amount decides."""
    amounts: list[tuple[Decimal, str | None, int, bool]] = []
    priced: set[int] = set()
    """The sentences (by their start) that name a price: their unlabelled amounts are suspect."""
    previous_end = 0
    for match in _MONEY.finditer(text):
        start = match.start()
        sentence = max((m.end() for m in _SENTENCE_END.finditer(text, 0, start)), default=0)
        context_start = max(previous_end, start - _CONTEXT, sentence)
        previous_end = match.end()
        labels = list(_KEYWORD.finditer(text, context_start, start))
        if (
            (labels and labels[-1]["price"])
            or _PER_PERIOD.match(text, match.end())
            or _PRICE_AFTER.match(text, match.end())
            or _BUNDLE_LINE.fullmatch(_line_of(text, start))
        ):
            priced.add(sentence)
            continue
        if _PART_WORDS.search(text, context_start, start):
            continue
        try:
            number = parse_number(match["num1"] or match["num2"])
        except ValueError:
            continue
        negative = bool(match["sign"] or match["sign2"])
        marker = match["pre"] or match["post"]
        labelled = bool(labels and labels[-1]["balance"])
        amounts.append((-number if negative else number, currency_of(marker), sentence, labelled))
    amounts = [a for a in amounts if a[3] or a[2] not in priced]
    if not amounts:
        labelled_match = _LABELLED.search(text)
        before = labelled_match.start() if labelled_match else 0
        sentence = max((m.end() for m in _SENTENCE_END.finditer(text, 0, before)), default=0)
        if labelled_match and sentence not in priced:
            code = _UNKNOWN_CODE.match(text, labelled_match.end())
            if code and code["code"] not in ISO_CODES:
                raise UnreadableReply(
                    f"the balance is in {code['code']!r}, a currency code the parser does not "
                    "know: give the code a `pattern` and the line its `currency`",
                    reply if reply is not None else text,
                )
            number = parse_number(labelled_match["num"])
            amounts.append((-number if labelled_match["sign"] else number, None, 0, True))
    balance = None
    found_currency = currency
    if amounts:
        currencies = {c or currency for _, c, _, _ in amounts} - {None}
        if len(currencies) > 1:
            raise UnreadableReply(
                f"the reply holds amounts in several currencies ({', '.join(sorted(currencies))})",
                reply if reply is not None else text,
            )
        balance = sum((a for a, _, _, _ in amounts), Decimal(0))
        found_currency = next(iter(currencies), None)
    expires_at = None
    expiry = _EXPIRY.search(text)
    if expiry:
        try:
            day = re.sub(r"(?<=\d)\.\s+(?=\d)", ".", expiry["date"])  # "30. 1. 2024"
            expires_at = parse_date(day, _expiry_formats(expiry, date_formats), tz, now)
        except ValueError:
            expires_at = None  # the balance stands; an unreadable date is not a figure
    return Figures(
        balance=balance,
        currency=found_currency if balance is not None else None,
        expires_at=expires_at,
    )
