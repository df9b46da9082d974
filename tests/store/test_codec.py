"""The stored forms: each value the model has, written and read back exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.forecast import Forecast
from monitor.model import ExpiryNotice, Level, Notices
from monitor.store import codec

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def test_times_have_one_shape_so_text_order_is_time_order() -> None:
    east = timezone(timedelta(hours=5))
    assert codec.ts(T0) == "2026-11-01T12:00:00.000000+00:00"
    assert codec.ts(datetime(2026, 11, 1, 17, 0, 1, tzinfo=east)) == (
        "2026-11-01T12:00:01.000000+00:00"
    )
    assert codec.ts(None) is None and codec.parse_ts(None) is None and codec.parse_ts("") is None


@given(st.datetimes(timezones=st.just(UTC)), st.datetimes(timezones=st.just(UTC)))
def test_time_round_trip_and_order(a: datetime, b: datetime) -> None:
    assert codec.parse_ts(codec.ts(a)) == a
    assert (codec.ts(a) < codec.ts(b)) == (a < b)  # type: ignore[operator]


@given(st.decimals(allow_nan=False, allow_infinity=False, places=6, max_value=10**12))
def test_money_round_trip_is_exact_text(amount: Decimal) -> None:
    text = codec.money(amount)
    assert text is not None and "E" not in text.upper()
    assert codec.parse_money(text) == amount


def test_money_keeps_its_places() -> None:
    assert codec.money(Decimal("4.10")) == "4.10"
    assert codec.money(Decimal("1E+3")) == "1000"
    assert str(codec.parse_money("4.10")) == "4.10"
    assert codec.money(None) is None and codec.parse_money(None) is None


@given(st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7))])))
def test_a_readings_instants_round_trip_exactly(moment: datetime) -> None:
    """Expiry and renewal as integer microseconds: the same instant back, in UTC, and the
    ISO text older versions wrote reads as that instant too."""
    stored = codec.instant(moment)
    assert isinstance(stored, int)
    back = codec.parse_instant(stored)
    assert back == moment and back is not None and back.tzinfo is UTC
    assert codec.parse_instant(codec.ts(moment)) == moment
    assert codec.instant(None) is None and codec.parse_instant(None) is None
    with pytest.raises(TypeError, match="naive"):
        codec.instant(moment.replace(tzinfo=None))


def test_a_float_or_a_naive_time_is_never_stored() -> None:
    """A float has rounded the money already; a naive time would be read as local time."""
    with pytest.raises(TypeError, match="Decimal"):
        codec.money(9.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="naive"):
        codec.ts(datetime(2026, 11, 1, 12, 0))


@pytest.mark.parametrize("level", [*Level, None])
def test_levels_and_metrics(level: Level | None) -> None:
    assert codec.parse_level(codec.level(level)) is level
    levels = {"balance": Level.CRITICAL, "data": Level.OK}
    assert codec.metrics(levels) == '{"balance": "critical", "data": "ok"}'
    assert codec.parse_metrics(codec.metrics(levels)) == levels
    assert codec.parse_metrics(None) == {}


def test_forecasts_round_trip_in_their_stored_form() -> None:
    forecasts = [
        Forecast("balance", Decimal("0.25"), T0 + timedelta(days=3)),
        Forecast("data", Decimal("1000000"), None),
    ]
    text = codec.forecasts(forecasts)
    assert text == (
        '{"balance": {"per_day": "0.25", "runs_out_at": "2026-11-04T12:00:00+00:00"}, '
        '"data": {"per_day": "1000000", "runs_out_at": null}}'
    )
    assert codec.parse_forecasts(text) == {f.metric: f for f in forecasts}
    assert codec.parse_forecasts(None) == {}


def test_notices_round_trip_typed() -> None:
    notices = Notices(
        critical_since=T0,
        escalated=T0,
        expiry=ExpiryNotice(T0 + timedelta(days=3), frozenset({"3d", "1d"})),
        renewal_risk=T0 + timedelta(days=1),
        folded="acme",
    )
    text = codec.notices(notices)
    assert json.loads(text) == {
        "critical_since": "2026-11-01T12:00:00.000000+00:00",
        "escalated": "2026-11-01T12:00:00.000000+00:00",
        "expiry": {"expires_at": "2026-11-04T12:00:00.000000+00:00", "sent": ["1d", "3d"]},
        "renewal-risk": "2026-11-02T12:00:00.000000+00:00",
        "folded": "acme",
    }
    assert codec.parse_notices(text) == notices
    assert codec.notices(Notices()) == "{}"
    assert codec.parse_notices("") == Notices() == codec.parse_notices(None)


def test_notices_as_the_earlier_version_wrote_them() -> None:
    """Before the codec, notice times were `isoformat()` in the reading's own offset (and
    the oldest expiry record had no date): read typed, as the same instants."""
    east = timezone(timedelta(hours=2))
    text = json.dumps(
        {
            "critical_since": "2026-11-01T12:00:00+00:00",
            "escalated": "2026-11-01T12:00:00+00:00",
            "expiry": {"expires_at": "2026-11-04T14:00:00+02:00", "sent": ["3d"]},
            "renewal-risk": "2026-11-02T00:00:00+00:00",
        }
    )
    notices = codec.parse_notices(text)
    assert notices.critical_since == T0 == notices.escalated
    assert notices.expiry == ExpiryNotice(datetime(2026, 11, 4, 14, tzinfo=east), frozenset({"3d"}))
    assert notices.renewal_risk == datetime(2026, 11, 2, tzinfo=UTC)
    assert codec.parse_notices('{"expiry": {"sent": ["3d"]}}') == Notices()


def test_facts_keep_their_times_typed() -> None:
    facts = {"value": "4.10 USD", "amount": Decimal("4.10"), "n": 3, "low_since": T0}
    text = codec.facts(facts)
    assert json.loads(text)["low_since"] == "2026-11-01T12:00:00.000000+00:00"
    assert codec.parse_facts(text) == {**facts, "amount": "4.10"}
    old = '{"expires_at": "2026-11-05T00:00:00+00:00", "frees_at": null}'  # isoformat()
    assert codec.parse_facts(old) == {
        "expires_at": datetime(2026, 11, 5, tzinfo=UTC),
        "frees_at": None,
    }
    assert codec.parse_facts(None) == {}


def test_a_damaged_value_raises_what_the_door_maps() -> None:
    with pytest.raises(ValueError):
        codec.parse_ts("yesterday")
    with pytest.raises(KeyError):
        codec.parse_level("weird")
    with pytest.raises(ArithmeticError):
        codec.parse_money("four")
