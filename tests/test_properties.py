"""Property tests: every parser of user or provider input, fed anything, either returns a
value or raises the project's typed errors; nothing else escapes."""

from __future__ import annotations

import contextlib
import string
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.cli import load_settings
from monitor.errors import ConfigError, UnitError
from monitor.units import (
    parse_data_size,
    parse_data_threshold,
    parse_digest,
    parse_duration,
    parse_money,
    parse_quiet_hours,
)

anything = st.one_of(
    st.text(),
    st.text(alphabet="0123456789.smhdwkKMGTiB% -:,"),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
)


@given(anything)
def test_unit_parsers_raise_only_unit_errors(value: Any) -> None:
    for parser in (
        parse_duration,
        parse_data_size,
        parse_data_threshold,
        parse_money,
        parse_quiet_hours,
        parse_digest,
    ):
        with contextlib.suppress(UnitError):
            parser(value)


# up to 5000w: durations are bounded at a century (units.MAX_DURATION)
@given(st.integers(min_value=0, max_value=5000), st.sampled_from(["s", "m", "h", "d", "w"]))
def test_durations_round_trip(count: int, unit: str) -> None:
    from monitor.units import format_duration

    parsed = parse_duration(f"{count}{unit}")
    assert parse_duration(format_duration(parsed)) == parsed


toml_scalar = st.one_of(
    st.integers(min_value=-10, max_value=10**12),
    st.text(alphabet=string.ascii_letters + string.digits + " %:.-", max_size=12),
    st.booleans(),
)
keys = st.sampled_from(
    [
        "interval",
        "jitter",
        "balance_warning",
        "data_critical",
        "expiry_warning",
        "repeat",
        "url",
        "events",
        "adapter",
        "label",
        "timezone",
        "workers",
        "quiet_hours",
        "digest",
        "bogus",
        "failures_before_alert",
        "hysteresis",
    ]
)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "monitor",
                    "defaults.thresholds",
                    "defaults.alerts",
                    "channels.c",
                    "lines.a",
                    "lines.a.thresholds",
                    "Lines.B",
                ]
            ),
            keys,
            toml_scalar,
        ),
        max_size=8,
    )
)
def test_config_loading_raises_only_config_errors(entries: list[tuple[str, str, Any]]) -> None:
    tables: dict[str, dict[str, Any]] = {}
    for table, key, value in entries:
        tables.setdefault(table, {})[key] = value
    text = "\n".join(
        f"[{table}]\n" + "\n".join(f"{k} = {_toml(v)}" for k, v in items.items())
        for table, items in tables.items()
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.toml"
        path.write_text(text)
        try:
            load_settings(path)
        except ConfigError as exc:
            assert exc.problems
            assert all(str(p) for p in exc.problems)


@given(st.binary(max_size=200))
@settings(deadline=None)  # a shared machine once took 351 ms for the first example
def test_garbage_files_are_config_errors(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.toml"
        path.write_bytes(data)
        with contextlib.suppress(ConfigError):
            load_settings(path)
