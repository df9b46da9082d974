"""The generic adapters' converters refuse figures out of range before they compute with
them (issue 11.1): "1e999999999" is refused at once, never expanded into a billion digits."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from monitor.adapters.fields import to_bytes, to_datetime, to_money


@pytest.mark.parametrize(
    ("convert", "value", "message"),
    [
        (to_money, "1e999999999", "is 10^12 or more: out of range for money"),
        (to_money, "1e-999999999", "more than 18 decimal places"),
        (to_money, Decimal("-5e12"), "out of range for money"),
        (to_money, "NaN", "finite"),
        (to_money, float("inf"), "finite"),
        (lambda v: to_bytes(v, "MB"), "1e999999999", "is 10^19 or more"),
        (lambda v: to_bytes(v, "TiB"), Decimal("1e7"), "is outside 0..10^18 bytes"),
        (to_bytes, 10**40, "is 10^19 or more"),
        (to_bytes, 1e300, "is 10^19 or more"),
        (to_bytes, "1e-999999999", "more than 18 decimal places"),
        (to_bytes, "9" * 3000 + "TB", "past 10^18 bytes"),
        (lambda v: to_datetime(v, "epoch"), 1e20, "seconds since 1970"),
        (lambda v: to_datetime(v, "epoch_ms"), "1e999999999", "seconds since 1970"),
    ],
)
def test_out_of_range_is_refused_before_any_arithmetic(
    convert: Any, value: Any, message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        convert(value)
    assert message in str(caught.value)


def test_plausible_figures_convert_exactly() -> None:
    assert str(to_money("12.30")) == "12.30"
    assert to_money(Decimal("-999999999999.99")) == Decimal("-999999999999.99")
    assert to_bytes("1.5", "GB") == 1_500_000_000
    assert to_bytes(10**6, "TB") == 10**18
    assert to_bytes("3GiB") == 3 * 2**30
