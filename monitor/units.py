"""Human units in the config and in messages: durations, data sizes, percentages, money.

Pure functions, no I/O. Parsers raise `UnitError` with a message a user can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Literal

from monitor.errors import UnitError
from monitor.model import DATA_LIMIT

Sizes = Literal["decimal", "binary"]
"""How a provider counts a "GB": in 1000s (Twilio, most carriers) or in 1024s (Airalo, 1NCE)."""

MAX_DURATION = timedelta(days=36525)
"""A century: longer spans mean nothing here, and would overflow a date added to them."""

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")

_DATA_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_DATA = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)", re.IGNORECASE)
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")


def parse_duration(value: object) -> timedelta:
    """Parse "90s", "15m", "2h", "3d", "1w" or combinations ("1h30m"); a bare number is seconds."""
    try:
        delta = _duration(value)
    except (OverflowError, ValueError, ArithmeticError) as exc:
        if isinstance(exc, UnitError):
            raise
        raise UnitError(f"{value!r} is not a duration this program can hold") from None
    if delta > MAX_DURATION:
        raise UnitError(f"{value!r} is longer than a century, more than this program can hold")
    return delta


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise UnitError(f"expected a duration such as '15m', got {value!r}")
    if isinstance(value, int | Decimal | float):
        if isinstance(value, Decimal | float) and not Decimal(value).is_finite():
            raise UnitError(f"a duration must be a finite number, got {value}")
        if value < 0:
            raise UnitError(f"a duration cannot be negative, got {value}")
        return timedelta(seconds=float(value))
    if not isinstance(value, str):
        raise UnitError(f"expected a duration such as '15m', got {value!r}")
    text = value.strip().lower()
    if re.fullmatch(r"\d+", text):
        return timedelta(seconds=int(text))
    pos = 0
    seconds = Decimal(0)
    for match in _DURATION_PART.finditer(text):
        if text[pos : match.start()].strip():
            break
        seconds += Decimal(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or text[pos:].strip():
        raise UnitError(
            f"cannot read {value!r} as a duration: use a number with s, m, h, d or w, such as '15m'"
        )
    return timedelta(seconds=float(seconds))


def format_duration(delta: timedelta) -> str:
    """The shortest exact spelling of a duration in the config's own units ("1h30m")."""
    total = int(delta.total_seconds())
    if total == 0:
        return "0s"
    sign = "-" if total < 0 else ""
    total = abs(total)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


def humanize_duration(delta: timedelta) -> str:
    """A rounded, readable span for messages: "3 days", "5 hours", "12 minutes"."""
    seconds = abs(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    count = int(seconds)
    return f"{count} second{'s' if count != 1 else ''}"


class Size(int):
    """A data size as the config wrote it. Its int value is the decimal reading ("1GB" is
    10**9 bytes); `of(sizes)` is what the same words mean on a line whose provider counts
    in 1024s, where the user reads "1 GB" in the provider's app for 2**30 bytes. Units with
    an "i" (GiB) and plain bytes mean the same on every line."""

    binary: int

    def __new__(cls, decimal: int, binary: int | None = None) -> Size:
        size = super().__new__(cls, decimal)
        size.binary = decimal if binary is None else binary
        return size

    def of(self, sizes: Sizes) -> int:
        return self.binary if sizes == "binary" else int(self)


_CONFIG_UNITS = {
    "decimal": (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)),
    "binary": (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)),
}


def format_size(size: int) -> str:
    """A size as a config writes it, exact, so it reads back as the same `Size`: in
    decimal units when it was written so ("1.5GB"), else in binary ones ("4MiB"), whichever
    unit holds it in at most three decimals; bytes ("1000B") when none does."""
    count = int(size)
    written_decimal = isinstance(size, Size) and size.binary != count
    for unit, factor in _CONFIG_UNITS["decimal" if written_decimal else "binary"]:
        amount = Decimal(count) / factor
        text = f"{amount.normalize():f}{unit}"
        if written_decimal:
            # "1000MB" is not "1GB" on a binary line (1000 MiB, not 1 GiB): the unit is
            # the one whose words give both meanings back
            if parse_size(text).binary == size.binary:
                return text
        elif count >= factor and amount == amount.quantize(Decimal("0.001")):
            return text
    return f"{count}B"


def parse_data_size(value: object) -> int:
    """Parse "500MB", "2GB" (decimal) or "512MiB", "2GiB" (binary) into bytes; an int is bytes."""
    return int(parse_size(value))


def parse_size(value: object) -> Size:
    """A data size that remembers how it was written, for thresholds that must read on each
    line in its provider's convention (see `Size`)."""
    if isinstance(value, Size):
        return value
    if isinstance(value, bool):
        raise UnitError(f"expected a data size such as '500MB', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise UnitError(f"a data size cannot be negative, got {value}")
        return _bounded_size(value, Size(value))
    if not isinstance(value, str):
        raise UnitError(f"expected a data size such as '500MB', got {value!r}")
    match = _DATA.fullmatch(value.strip())
    if not match:
        raise UnitError(
            f"cannot read {value!r} as a data size: use a number with B, KB, MB, GB, TB "
            "(decimal) or KiB, MiB, GiB, TiB (binary), such as '500MB'"
        )
    amount, unit = Decimal(match.group(1)), match.group(2).lower()
    if amount.adjusted() >= 19:  # checked before multiplying: the digits are unbounded
        raise UnitError(f"a data size past 10^18 bytes is not one, got {value[:40]!r}")
    binary_unit = unit if unit.endswith("ib") or unit == "b" else unit[0] + "ib"
    size = Size(int(amount * _DATA_UNITS[unit]), int(amount * _DATA_UNITS[binary_unit]))
    return _bounded_size(value, size)


def _bounded_size(value: object, size: Size) -> Size:
    if max(size, size.binary) > DATA_LIMIT:
        raise UnitError(f"{value!r} is larger than {DATA_LIMIT} bytes, more than any plan holds")
    return size


@dataclass(frozen=True)
class Percent:
    """A share of a line's plan, for data thresholds such as "10%"."""

    value: Decimal

    def of(self, total: int) -> int:
        return int(Decimal(total) * self.value / 100)

    def __str__(self) -> str:
        return f"{self.value.normalize():f}%"


def parse_data_threshold(value: object) -> Size | Percent:
    """A data threshold: a size, or a percentage of the plan's total ("10%")."""
    if isinstance(value, Size | Percent):
        return value
    if isinstance(value, str):
        match = _PERCENT.fullmatch(value.strip())
        if match:
            pct = Decimal(match.group(1))
            if pct > 100:
                raise UnitError(f"a percentage of the plan cannot exceed 100%, got {value!r}")
            return Percent(pct)
    return parse_size(value)


def format_bytes(count: int, sizes: Sizes = "decimal") -> str:
    """A size as the line's provider shows it in its own app: decimal units as carriers and
    plans speak (1500000000 -> "1.5 GB"), or, for a provider that counts in 1024s, the same
    names for powers of 1024 (Airalo's 3072 MB package, 3 * 2**30 bytes -> "3 GB")."""
    size = Decimal(count)
    base = 1024 if sizes == "binary" else 1000
    for unit, factor in (("TB", base**4), ("GB", base**3), ("MB", base**2), ("KB", base)):
        if abs(size) >= factor:
            scaled = (size / factor).quantize(Decimal("0.01")).normalize()
            return f"{scaled:f} {unit}"
    return f"{count} B"


def parse_money(value: object) -> Decimal:
    """Money is a plain number in the config; kept exact as Decimal, never a float."""
    if isinstance(value, bool):
        raise UnitError(f"expected an amount of money such as 10 or 5.50, got {value!r}")
    if isinstance(value, float):
        value = repr(value)
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise UnitError(f"expected an amount of money such as 10 or 5.50, got {value!r}") from None
    if not amount.is_finite():
        raise UnitError(f"expected a finite amount of money, got {value!r}")
    return amount


def format_money(amount: Decimal, currency: str | None) -> str:
    """ "12.50 USD"; the currency is left out when unknown."""
    text = f"{amount:f}"
    return f"{text} {currency}" if currency else text


_CLOCK = r"([01]?\d|2[0-3]):([0-5]\d)"
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class QuietHours:
    """A daily window in local time, such as 22:00-07:00; it may cross midnight."""

    start: time
    end: time

    def contains(self, moment: datetime) -> bool:
        """Whether an aware local time falls in the window."""
        now = moment.timetz().replace(tzinfo=None)
        if self.start <= self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end

    def end_after(self, moment: datetime) -> datetime:
        """When the window that holds `moment` ends (an aware time in moment's zone)."""
        end = datetime.combine(moment.date(), self.end, tzinfo=moment.tzinfo)
        if end <= moment:
            end += timedelta(days=1)
        return _normalise(end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_quiet_hours(value: object) -> QuietHours | None:
    """ "22:00-07:00"; "off" (or "") for none."""
    if isinstance(value, QuietHours) or value is None:
        return value
    text = str(value).strip().lower()
    if text in ("", "off", "none"):
        return None
    match = re.fullmatch(rf"{_CLOCK}\s*-\s*{_CLOCK}", text)
    if not match:
        raise UnitError(
            f"cannot read {value!r} as quiet hours: use 'HH:MM-HH:MM', such as '22:00-07:00'"
        )
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if (h1, m1) == (h2, m2):
        raise UnitError(f"quiet hours {value!r} start and end at the same time")
    return QuietHours(time(h1, m1), time(h2, m2))


@dataclass(frozen=True)
class DigestSchedule:
    """ "daily 08:00" or "weekly mon 08:00", in the configured time zone."""

    at: time
    weekday: int | None = None

    def next_after(self, moment: datetime) -> datetime:
        """The first digest time strictly after an aware local `moment`."""
        candidate = datetime.combine(moment.date(), self.at, tzinfo=moment.tzinfo)
        while candidate <= moment or (
            self.weekday is not None and candidate.weekday() != self.weekday
        ):
            candidate += timedelta(days=1)
        return _normalise(candidate)

    def __str__(self) -> str:
        if self.weekday is None:
            return f"daily {self.at:%H:%M}"
        return f"weekly {_WEEKDAYS[self.weekday]} {self.at:%H:%M}"


def parse_digest(value: object) -> DigestSchedule | None:
    if isinstance(value, DigestSchedule) or value is None:
        return value
    text = str(value).strip().lower()
    if text in ("", "off", "none"):
        return None
    match = re.fullmatch(rf"(daily|weekly\s+(mon|tue|wed|thu|fri|sat|sun)\w*)\s+{_CLOCK}", text)
    if not match:
        raise UnitError(
            f"cannot read {value!r} as a digest schedule: use 'daily HH:MM' or "
            "'weekly DAY HH:MM', such as 'weekly mon 08:00'"
        )
    weekday = _WEEKDAYS.index(match.group(2)) if match.group(2) else None
    return DigestSchedule(time(int(match.group(3)), int(match.group(4))), weekday)


def _normalise(moment: datetime) -> datetime:
    """Round-trip through UTC so a wall time in a DST gap or fold gets a real offset."""
    tz = moment.tzinfo
    return moment.astimezone(UTC).astimezone(tz)


def parse_address(text: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or a bare port (on 127.0.0.1); ValueError says what is wrong.

    For the config's validators of `[monitor] metrics` and `[http] listen` and for the
    servers that bind them; here, not in monitor.metrics, so validating a config does not
    import the servers.
    """
    text = text.strip()
    if text.isdigit():
        host, port_text = "127.0.0.1", text
    elif text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"expected '[address]:port', got {text!r}")
        import ipaddress  # here: every command imports this module, few parse an address

        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"not an IPv6 address: {host!r}") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"expected 'host:port' such as '127.0.0.1:9464', got {text!r}")
        if ":" in host:
            raise ValueError(f"write an IPv6 address in brackets: '[{host}]:{port_text}'")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"port must be a number from 0 to 65535, got {port_text!r}")
    return host, int(port_text)
