"""The rows the JSON outputs share, and the API's fleet-wide JSON kept line by line."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor import rows
from monitor.config import Settings, load
from monitor.forecast import Forecast
from monitor.model import Controls, Level
from monitor.store.views import LineStatus

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
CONFIG = """
[lines.travel]
label = "US travel"
adapter = "demo"

[lines.home]
adapter = "demo"

[lines.never]
adapter = "demo"
"""


@pytest.fixture
def settings(write_config: Callable[..., Path]) -> Settings:
    return load(write_config(CONFIG))


def fleet() -> dict[str, LineStatus]:
    return {
        "travel": LineStatus(
            "travel",
            Level.WARNING,
            checked_at=NOW - timedelta(minutes=5),
            balance=Decimal("1.50"),
            currency="USD",
            data_remaining=200 * 10**6,
            forecasts={"data": Forecast("data", Decimal(10**8), NOW + timedelta(days=2))},
            controls=Controls(snoozed_until=NOW + timedelta(hours=1)),
        ),
        "home": LineStatus("home", Level.OK, checked_at=NOW, failures=2, last_error="timeout"),
    }


def plain(settings: Settings, known: dict[str, LineStatus], now: datetime) -> str:
    return rows.dumps(rows.status_rows(settings, known, now), times=rows.iso, indent=None)


def test_status_json_is_what_status_rows_and_dumps_write(settings: Settings) -> None:
    cache = rows.StatusJson()
    body = cache.dumps(settings, fleet(), NOW)
    assert body == plain(settings, fleet(), NOW)
    assert [r["line"] for r in json.loads(body)] == ["travel", "home", "never"]
    assert cache.dumps(settings, fleet(), NOW) == body


def test_status_json_makes_again_only_the_rows_that_changed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    real = rows.status_rows

    def counting(*args: object, only: tuple[str, ...], **kwargs: object) -> object:
        made.extend(only)
        return real(*args, only=only, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rows, "status_rows", counting)
    cache = rows.StatusJson()
    cache.dumps(settings, fleet(), NOW)
    assert made == ["travel", "home", "never"]
    made.clear()
    cache.dumps(settings, fleet(), NOW + timedelta(minutes=1))  # equal statuses, new objects
    assert made == []
    changed = fleet() | {"home": fleet()["home"]._replace(failures=3)}
    monkeypatch.setattr(rows, "status_rows", real)
    body = cache.dumps(settings, changed, NOW)
    assert json.loads(body)[1]["failures"] == 3 and body == plain(settings, changed, NOW)


def test_a_snooze_that_ran_out_leaves_the_kept_row(settings: Settings) -> None:
    cache = rows.StatusJson()
    assert json.loads(cache.dumps(settings, fleet(), NOW))[0]["snoozed_until"] is not None
    later = NOW + timedelta(hours=2)
    body = cache.dumps(settings, fleet(), later)
    assert json.loads(body)[0]["snoozed_until"] is None and body == plain(settings, fleet(), later)


def test_new_settings_make_every_row_again(
    settings: Settings, write_config: Callable[..., Path]
) -> None:
    cache = rows.StatusJson()
    cache.dumps(settings, fleet(), NOW)
    renamed = load(write_config(CONFIG.replace("US travel", "Abroad")))
    assert json.loads(cache.dumps(renamed, fleet(), NOW))[0]["label"] == "Abroad"


def test_times_for_people_keep_their_seconds() -> None:
    ny = ZoneInfo("America/New_York")
    frees = datetime(2026, 12, 6, 21, 34, 56, 700_000, tzinfo=UTC)
    assert rows.exact_when(frees, ny, up=True) == "2026-12-06 16:34:57 EST"
    assert rows.exact_when(frees, ny) == "2026-12-06 16:34:56 EST"
    assert rows.exact_when(datetime(2026, 7, 1, 4, 0, tzinfo=UTC), ny) == "2026-07-01 00:00 EDT"
