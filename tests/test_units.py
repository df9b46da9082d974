from datetime import timedelta
from decimal import Decimal

import pytest

from monitor.errors import UnitError
from monitor.units import (
    Percent,
    Size,
    format_bytes,
    format_duration,
    format_size,
    humanize_duration,
    parse_address,
    parse_data_size,
    parse_data_threshold,
    parse_duration,
    parse_money,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("3d", 259200),
        ("1w", 604800),
        ("1h30m", 5400),
        ("1.5h", 5400),
        (" 10M ", 600),
        ("45", 45),
        (30, 30),
    ],
)
def test_durations(text: object, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["5 parsecs", "", "m", "10x", "-5m", "1h 2", True, None, [1]])
def test_bad_durations(text: object) -> None:
    with pytest.raises(UnitError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("500MB", 500_000_000),
        ("2GB", 2_000_000_000),
        ("2 gb", 2_000_000_000),
        ("512MiB", 512 * 2**20),
        ("2GiB", 2 * 2**30),
        ("1.5GB", 1_500_000_000),
        ("100B", 100),
        ("1KB", 1000),
        ("1KiB", 1024),
        ("1TB", 10**12),
        (1234, 1234),
    ],
)
def test_data_sizes(text: object, count: int) -> None:
    assert parse_data_size(text) == count


@pytest.mark.parametrize(
    "text", ["5 parsecs", "GB", "2 GBs", "-1MB", -1, 1.5, "1e3MB", "9" * 3000 + "TB"]
)
def test_bad_data_sizes(text: object) -> None:
    with pytest.raises(UnitError):
        parse_data_size(text)


def test_percentages_of_the_plan() -> None:
    threshold = parse_data_threshold("10%")
    assert threshold == Percent(Decimal("10"))
    assert isinstance(threshold, Percent)
    assert threshold.of(3_000_000_000) == 300_000_000
    assert str(threshold) == "10%"
    assert parse_data_threshold("1GB") == 10**9
    with pytest.raises(UnitError):
        parse_data_threshold("150%")


def test_money_is_exact() -> None:
    assert parse_money(10) == Decimal("10")
    assert parse_money("5.50") == Decimal("5.50")
    assert parse_money(Decimal("0.10")) == Decimal("0.10")
    assert parse_money(0.1) == Decimal("0.1")  # a float from TOML keeps its written digits
    for bad in ("ten", "nan", "inf", True):
        with pytest.raises(UnitError):
            parse_money(bad)


def test_formatting() -> None:
    assert format_duration(timedelta(minutes=90)) == "1h30m"
    assert format_duration(timedelta(0)) == "0s"
    assert humanize_duration(timedelta(days=2, hours=5)) == "2 days"
    assert humanize_duration(timedelta(minutes=1)) == "1 minute"
    assert humanize_duration(timedelta(seconds=5)) == "5 seconds"
    assert format_bytes(1_500_000_000) == "1.5 GB"
    assert format_bytes(999) == "999 B"
    assert format_bytes(250_000_000) == "250 MB"


# ---- size conventions: a line's sizes read as its provider's own app shows them ----------


def test_binary_sizes_read_as_the_provider_shows_them() -> None:
    # Airalo's "3 GB - 30 Days" top-up is `amount: 3072` MB (providers.md, top-up catalogue)
    assert format_bytes(3072 * 2**20, "binary") == "3 GB"
    assert format_bytes(3072 * 2**20) == "3.22 GB"
    assert format_bytes(512 * 2**20, "binary") == "512 MB"
    assert format_bytes(1536, "binary") == "1.5 KB"
    assert format_bytes(10**9, "decimal") == "1 GB"


def test_a_size_means_the_providers_gb_on_a_binary_line() -> None:
    one = parse_size("1GB")
    assert one == 10**9 and one.of("decimal") == 10**9
    assert one.of("binary") == 2**30
    assert parse_size("1.5MB").of("binary") == int(Decimal("1.5") * 2**20)
    # units with an "i", and plain bytes, mean the same on every line
    assert parse_size("1GiB").of("decimal") == parse_size("1GiB").of("binary") == 2**30
    assert parse_size(123).of("binary") == 123 and parse_size("7B").of("binary") == 7
    assert type(parse_data_size("1GB")) is int


def test_a_threshold_keeps_how_it_was_written() -> None:
    threshold = parse_data_threshold("200MB")
    assert isinstance(threshold, Size) and threshold.of("binary") == 200 * 2**20
    assert parse_data_threshold(threshold) is threshold


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("1.5GB", "1.5GB"),
        ("500MB", "500MB"),
        ("1000MB", "1000MB"),
        ("2500KB", "2500KB"),
        ("1.2345GB", "1.2345GB"),
        ("4MiB", "4MiB"),
        ("3072MiB", "3GiB"),
        (4194304, "4MiB"),
        ("1234567B", "1234567B"),
        (0, "0B"),
    ],
)
def test_format_size_writes_what_reads_back_the_same(written: object, shown: str) -> None:
    """`config show` prints sizes so: a decimal size keeps its 1024s meaning on binary lines."""
    size = parse_size(written)
    assert format_size(size) == shown
    again = parse_size(shown)
    assert (int(again), again.binary) == (int(size), size.binary)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("0.0.0.0:9464", ("0.0.0.0", 9464)),
        ("localhost:9464", ("localhost", 9464)),
        ("[::1]:9464", ("::1", 9464)),
        ("9464", ("127.0.0.1", 9464)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("127.0.0.1", "host:port"),
        (":9464", "host:port"),
        ("::1:9464", "brackets"),
        ("[::1]9464", r"\[address\]:port"),
        ("[nope]:9464", "not an IPv6 address"),
        ("127.0.0.1:http", "port must be a number"),
        ("127.0.0.1:70000", "port must be a number"),
    ],
)
def test_parse_address_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_address(text)
