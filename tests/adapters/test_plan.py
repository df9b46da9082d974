"""Plan lines end to end: reminded on the right days, moved on by themselves, renewal
risk against a balance recorded by hand, `record --renewed`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from freezegun import freeze_time

from monitor.cli import load_settings, main
from monitor.cycle import Checker
from monitor.errors import ConfigError
from monitor.store import Store

PLAN = """
[monitor]
timezone = "America/New_York"

[defaults.thresholds]
expiry_warning = "3d"
expiry_critical = "12h"

[defaults.alerts]
expiry_reminders = ["7d", "1d"]

[lines.phone]
label = "AT&T prepaid"
adapter = "plan"
renews = "monthly 5"
price = 15
currency = "USD"
payment_url = "https://www.att.com/prepaid/pay"
"""


def check_at(config: Path, moment: str) -> list[tuple[str, dict[str, object]]]:
    """One pass of the loop at a local New York time: the events it raised."""
    settings = load_settings(config)
    with freeze_time(datetime.fromisoformat(moment).astimezone(UTC)):
        store = Store.open(settings.database_path())
        checker = Checker(settings)
        try:
            [judged] = checker.run(store, ["phone"])
        finally:
            checker.close()
            store.close()
    return [(e.type, dict(e.facts)) for e in judged.events]


def test_a_plan_line_reminds_on_the_right_days_and_moves_on(
    write_config: Callable[..., Path],
) -> None:
    config = write_config(PLAN)
    zone = "-05:00"
    assert check_at(config, f"2026-11-27T12:00{zone}") == []  # 7.5 days before the 5th
    [(kind, facts)] = check_at(config, f"2026-11-28T12:00{zone}")
    assert kind == "expiry" and facts["offset"] == "7d"
    assert facts["expires_at"] == datetime(2026, 12, 5, 5, tzinfo=UTC)  # 00:00 in New York
    assert facts["payment_url"] == "https://www.att.com/prepaid/pay"
    assert check_at(config, f"2026-11-30T12:00{zone}") == []
    assert [k for k, _ in check_at(config, f"2026-12-02T12:00{zone}")] == ["warning"]
    assert [k for k, _ in check_at(config, f"2026-12-04T12:00{zone}")] == ["critical", "expiry"]
    # the 5th began: renewed by itself, on to 5 January; the reminders start again
    assert [k for k, _ in check_at(config, f"2026-12-05T01:00{zone}")] == ["recovery"]
    [(kind, facts)] = check_at(config, f"2026-12-29T12:00{zone}")
    assert kind == "expiry" and facts["expires_at"] == datetime(2027, 1, 5, 5, tzinfo=UTC)


def test_a_recorded_balance_below_the_price_is_a_renewal_risk(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(PLAN)
    with freeze_time("2026-12-03T17:00:00+00:00"):
        assert main(["--config", str(config), "record", "phone", "--balance", "10"]) == 0
    out = capsys.readouterr().out
    assert "renewal-risk raised" in out
    # the daemon's next check of the plan knows that balance too: no second notice
    assert check_at(config, "2026-12-03T13:00-05:00") == []
    with freeze_time("2026-12-03T18:00:00+00:00"):
        capsys.readouterr()
        assert main(["--config", str(config), "status", "--json"]) == 0
    import json

    [row] = json.loads(capsys.readouterr().out)
    assert row["balance"] == "10" and row["currency"] == "USD" and row["carried"] == ["balance"]
    assert row["expires_at"] == "2026-12-05T05:00:00.000000+00:00"
    assert row["renewal_price"] == "15"


def test_record_renewed_moves_the_plan_on_early(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(PLAN)
    assert [k for k, _ in check_at(config, "2026-12-04T12:00-05:00")] == ["critical", "expiry"]
    with freeze_time("2026-12-04T18:00:00+00:00"):
        assert main(["--config", str(config), "record", "phone", "--renewed"]) == 0
    assert "recovery raised" in capsys.readouterr().out
    # the plan now renews on 5 January, also for the daemon's own checks (another process)
    assert check_at(config, "2026-12-04T14:00-05:00") == []
    settings = load_settings(config)
    store = Store.open(settings.database_path())
    assert store.status()["phone"].expires_at == datetime(2027, 1, 5, 5, tzinfo=UTC)
    store.close()


def test_renewed_is_only_for_plan_lines_with_renews(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(PLAN + '\n[lines.other]\nadapter = "demo"\n')
    assert main(["--config", str(config), "record", "other", "--renewed"]) == 2
    assert "no plan line with `renews`" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ('renews = "weekly"', "At 'lines.p.renews': cannot read 'weekly'"),
        ('renews = "monthly 32"', "At 'lines.p.renews': 'monthly 32'"),
        ('renews = "every 30d"', "renews = 'every 30d' counts from renewed_at"),
        ("", "set either renews"),
        ('renews = "monthly 5"\nexpires_at = 2026-12-30', "set either renews"),
        ('renews = "monthly 5"\nprice = 15', "price needs the currency"),
        ('renews = "monthly 5"\nprice = -1\ncurrency = "USD"', "At 'lines.p.price'"),
    ],
)
def test_bad_plan_options_are_config_problems(
    write_config: Callable[..., Path], keys: str, problem: str
) -> None:
    config = write_config(f'[lines.p]\nadapter = "plan"\n{keys}\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert problem in str(caught.value)


def test_a_fixed_expiry_is_the_end_of_that_day(write_config: Callable[..., Path]) -> None:
    config = write_config(
        '[monitor]\ntimezone = "America/New_York"\n[lines.phone]\n'
        'adapter = "plan"\nexpires_at = 2026-12-30\n'
    )
    check_at(config, "2026-12-01T12:00-05:00")
    store = Store.open(load_settings(config).database_path())
    assert store.status()["phone"].expires_at == datetime(2026, 12, 31, 4, 59, 59, tzinfo=UTC)
    store.close()


def test_a_balance_recorded_early_is_weighed_when_the_renewal_comes_near(
    write_config: Callable[..., Path],
) -> None:
    """The plan's own checks carry no balance: the last one recorded stands for it."""
    config = write_config(PLAN)
    with freeze_time("2026-11-20T17:00:00+00:00"):  # 15 days out: no risk yet
        assert main(["--config", str(config), "record", "phone", "--balance", "10"]) == 0
    assert check_at(config, "2026-11-28T12:00-05:00")[0][0] == "expiry"
    events = check_at(config, "2026-12-02T12:00-05:00")  # within renewal_warning (3d)
    risk = [facts for kind, facts in events if kind == "renewal-risk"]
    assert len(risk) == 1 and risk[0]["shortfall"] == "5 USD", events
