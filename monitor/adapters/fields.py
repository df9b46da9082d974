"""Reading fields from loosely typed sources (a program's JSON, a provider's JSON).

Shared by the generic adapters (`command`, `http_json`), whose input is whatever a user's
script or a provider sends: every converter takes any JSON value and either returns the
normalised figure (Decimal money, int bytes, aware UTC time) or raises ValueError saying
what it got. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from monitor.errors import UnitError
from monitor.model import FIGURE_DIGITS, bytes_problem, money_problem, size_problem
from monitor.units import parse_data_size, parse_money

DATA_UNITS: dict[str, int] = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
"""Decimal units as carriers usually count, binary ones (KiB...) as Airalo does."""

_NUMBER = re.compile(r"\s*[+-]?\d+(\.\d+)?([eE][+-]?\d+)?\s*")


def unit_factor(unit: str) -> int:
    """Bytes in one `unit` ("MB" -> 10**6, "MiB" -> 2**20); ValueError for anything else."""
    factor = DATA_UNITS.get(unit.strip().upper())
    if factor is None:
        raise ValueError(f"unknown data unit {unit!r}; use one of {', '.join(units_spelled())}")
    return factor


def units_spelled() -> list[str]:
    return [u if not u.endswith("IB") else u[0] + "iB" for u in DATA_UNITS]


def to_money(value: Any) -> Decimal:
    """A number or a decimal string, exactly ("12.30" stays 12.30; a float goes through its
    shortest repr, so 12.34 is 12.34, not 12.339999...)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise ValueError(f"expected a number or a numeric string, got {_short(value)}")
    try:
        amount = parse_money(value)
    except UnitError as exc:
        raise ValueError(str(exc)) from None
    problem = money_problem(amount)
    if problem:
        raise ValueError(f"{_short(value)} {problem}")
    return amount


def to_currency(value: Any) -> str:
    """An ISO 4217 code, upper-cased."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z]{3}", value.strip()):
        raise ValueError(f"expected an ISO 4217 code such as 'USD', got {_short(value)}")
    return value.strip().upper()


def to_bytes(value: Any, unit: str = "B") -> int:
    """Bytes from a number of `unit`s, a numeric string, a size with its own unit ("2GB"),
    or an `{"amount": ..., "unit": ...}` object (Telnyx's shape)."""
    if isinstance(value, Mapping) and {"amount", "unit"} <= set(value):
        return to_bytes(value["amount"], str(value["unit"]))
    if isinstance(value, bool):
        raise ValueError(f"expected a data size, got {_short(value)}")
    given = value
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        value = Decimal(value.strip())
    if isinstance(value, int | float | Decimal):
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        if not amount.is_finite() or amount < 0:
            raise ValueError(f"expected a non-negative data size, got {_short(value)}")
        problem = size_problem(amount, FIGURE_DIGITS)  # before multiplying: 1e999999999
        if problem:
            raise ValueError(f"data size {_short(given)} {problem}")
        return _bounded_bytes(int(amount * unit_factor(unit)), given)
    if isinstance(value, str):
        try:
            return _bounded_bytes(parse_data_size(value), value)
        except UnitError as exc:
            raise ValueError(str(exc)) from None
    raise ValueError(f"expected a data size such as 1500000000 or '1.5GB', got {_short(value)}")


def _bounded_bytes(count: int, value: Any) -> int:
    problem = bytes_problem(count)
    if problem:
        raise ValueError(f"data size {_short(value)} {problem}")
    return count


def to_datetime(value: Any, fmt: str = "iso") -> datetime:
    """A moment as an aware UTC datetime. `fmt`: "iso" (ISO-8601), "epoch" (seconds),
    "epoch_ms" (milliseconds), or a strptime format. A time without a zone is UTC."""
    if isinstance(value, bool):
        raise ValueError(f"expected a time, got {_short(value)}")
    if fmt in ("epoch", "epoch_ms"):
        try:
            seconds = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
            if fmt == "epoch_ms":
                seconds /= 1000
            return datetime.fromtimestamp(float(seconds), UTC)
        except (ArithmeticError, TypeError, ValueError, OSError):  # Decimal overflow too
            raise ValueError(f"expected seconds since 1970, got {_short(value)}") from None
    if not isinstance(value, str):
        raise ValueError(f"expected a time as text, got {_short(value)}")
    try:
        if fmt == "iso":
            moment = datetime.fromisoformat(value.strip())
        else:
            moment = datetime.strptime(value.strip(), fmt)
    except ValueError:
        wanted = "an ISO-8601 time" if fmt == "iso" else f"a time in the format {fmt!r}"
        raise ValueError(f"expected {wanted}, got {_short(value)}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def to_text(value: Any) -> str:
    """A status or reason: a string, or a number spelled as one."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError(f"expected a string, got {_short(value)}")
    return str(value)


def excerpt(data: bytes | str, limit: int = 300) -> str:
    """A short, single-line excerpt of what a program or server said, for messages."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(value: Any) -> str:
    return excerpt(str(value) if isinstance(value, Decimal) else repr(value), 80)
