"""The evaluation state machine, table-driven: thresholds, hysteresis, transitions, events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from freezegun import freeze_time

from monitor.config import Alerts, Thresholds
from monitor.evaluate import Policy, evaluate_failure, evaluate_reading, judge
from monitor.model import Level, LineState, Reading, utcnow
from monitor.units import Percent

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
THRESHOLDS = Thresholds(
    balance_warning=Decimal(10),
    balance_critical=Decimal(5),
    data_warning=10**9,
    data_critical=200 * 10**6,
    expiry_warning=timedelta(days=3),
    expiry_critical=timedelta(days=1),
)
POLICY = Policy(THRESHOLDS, Alerts(repeat=timedelta(hours=24), failures_before_alert=3))


def reading(at: datetime = T0, **figures: object) -> Reading:
    return Reading(line="l1", checked_at=at, **figures)  # type: ignore[arg-type]


def money(amount: str) -> Reading:
    return reading(balance=Decimal(amount), currency="USD")


@pytest.mark.parametrize(
    ("figures", "expected"),
    [
        ({"balance": Decimal("20")}, {"balance": Level.OK}),
        ({"balance": Decimal("10")}, {"balance": Level.WARNING}),  # at the threshold is low
        ({"balance": Decimal("9.99")}, {"balance": Level.WARNING}),
        ({"balance": Decimal("5")}, {"balance": Level.CRITICAL}),
        ({"balance": Decimal("0")}, {"balance": Level.CRITICAL}),
        ({"data_remaining": 2 * 10**9}, {"data": Level.OK}),
        ({"data_remaining": 10**9}, {"data": Level.WARNING}),
        ({"data_remaining": 10**8}, {"data": Level.CRITICAL}),
        ({"expires_at": T0 + timedelta(days=5)}, {"expiry": Level.OK}),
        ({"expires_at": T0 + timedelta(days=2)}, {"expiry": Level.WARNING}),
        ({"expires_at": T0 + timedelta(hours=5)}, {"expiry": Level.CRITICAL}),
        ({"expires_at": T0 - timedelta(hours=1)}, {"expiry": Level.CRITICAL}),
        ({"critical_reason": "expired"}, {"status": Level.CRITICAL}),
        ({"warning_reason": "disabling"}, {"status": Level.WARNING}),
        ({"critical_reason": "disabled", "warning_reason": "x"}, {"status": Level.CRITICAL}),
        ({}, {}),
    ],
)
def test_judge_levels(figures: dict[str, object], expected: dict[str, Level]) -> None:
    results = judge(reading(**figures), THRESHOLDS)
    assert {m.metric: m.level for m in results} == expected


def test_percentage_threshold_needs_the_plan_total() -> None:
    t = Thresholds(data_warning=Percent(Decimal(20)), data_critical=Percent(Decimal(5)))
    assert judge(reading(data_remaining=150, data_total=1000), t)[0].level is Level.WARNING
    assert judge(reading(data_remaining=40, data_total=1000), t)[0].level is Level.CRITICAL
    # without a total, a share of it cannot be judged: not low
    assert judge(reading(data_remaining=40), t)[0].level is Level.OK


@pytest.mark.parametrize(
    ("previous", "amount", "expected"),
    [
        (Level.WARNING, "10.40", Level.WARNING),  # within 5% above 10: stays warning
        (Level.WARNING, "10.50", Level.WARNING),
        (Level.WARNING, "10.51", Level.OK),
        (Level.CRITICAL, "5.20", Level.CRITICAL),  # within 5% above 5
        (Level.CRITICAL, "5.30", Level.WARNING),
        (Level.CRITICAL, "10.20", Level.WARNING),  # clears critical, held at warning
        (Level.CRITICAL, "11", Level.OK),
        (Level.OK, "10.20", Level.OK),  # hysteresis only delays a recovery, never an alert
    ],
)
def test_hysteresis(previous: Level, amount: str, expected: Level) -> None:
    result = judge(money(amount), THRESHOLDS, {"balance": previous})
    assert result[0].level is expected


def test_hovering_at_a_threshold_does_not_flap() -> None:
    state = LineState("l1")
    events = []
    for i, amount in enumerate(["10.00", "10.30", "9.90", "10.40", "10.10", "9.95"]):
        state, new, _ = evaluate_reading(state, money(amount), POLICY, T0 + timedelta(minutes=i))
        events += new
    assert [e.type for e in events] == ["warning"]


def run(amounts: list[str | None], policy: Policy = POLICY, step=timedelta(hours=1)):
    """Feed a sequence of readings (None = a failed read); return the event types."""
    state = LineState("l1")
    kinds = []
    for i, amount in enumerate(amounts):
        now = T0 + step * i
        if amount is None:
            state, events = evaluate_failure(state, "timeout", policy, now)
        else:
            state, events, _ = evaluate_reading(state, money(amount), policy, now)
        kinds.append([e.type for e in events])
    return state, kinds


@pytest.mark.parametrize(
    ("amounts", "expected"),
    [
        (["20", "20"], [[], []]),  # a new line that reads ok sends nothing
        (["8"], [["warning"]]),  # a new line that reads low alerts once
        (["3"], [["critical"]]),
        (["20", "8", "3"], [[], ["warning"], ["critical"]]),
        (["20", "3", "8"], [[], ["critical"], ["warning"]]),  # improvement is news too
        (["20", "8", "8", "20"], [[], ["warning"], [], ["recovery"]]),
        (["20", "3", "20"], [[], ["critical"], ["recovery"]]),
        (
            ["20", None, None, None, None, "20"],
            [[], [], [], ["failure"], [], ["failure-recovered"]],
        ),
        (["8", None, "8"], [["warning"], [], []]),  # one failure: no alert, state stands
        (
            ["20", None, None, None, "3"],
            [[], [], [], ["failure"], ["failure-recovered", "critical"]],
        ),
    ],
)
def test_transitions(amounts: list[str | None], expected: list[list[str]]) -> None:
    assert run(amounts)[1] == expected


def test_repeat_reminders_every_repeat_interval() -> None:
    hourly = [str(8)] * 30
    _, kinds = run(hourly)
    assert kinds[0] == ["warning"]
    assert kinds[24] == ["repeat"]
    assert sum(k == ["repeat"] for k in kinds) == 1
    off = Policy(THRESHOLDS, Alerts(repeat=timedelta(0)))
    assert not any(k == ["repeat"] for k in run(hourly, off)[1])


def test_failed_read_never_becomes_a_zero_balance() -> None:
    state, _ = run(["8", None, None, None])
    assert state.level is Level.WARNING
    assert state.metrics == {"balance": Level.WARNING}
    assert state.failures == 3 and state.failure_alerted
    assert state.last_error == "timeout"


def test_failure_alert_is_sent_once_per_outage() -> None:
    _, kinds = run(["20"] + [None] * 10)
    assert sum(k == ["failure"] for k in kinds) == 1


@freeze_time("2026-11-01 12:00:00")
def test_recovery_says_how_long_the_line_was_low() -> None:
    start = utcnow()
    state, events, _ = evaluate_reading(LineState("l1"), money("8"), POLICY, start)
    assert state.low_since == start
    with freeze_time("2026-11-03 15:00:00"):
        state, events, _ = evaluate_reading(state, money("50"), POLICY, utcnow())
    (recovery,) = events
    assert recovery.type == "recovery"
    assert recovery.facts["low_for"] == "2 days"
    assert state.low_since is None and state.level is Level.OK


@freeze_time("2026-11-01 12:00:00")
def test_repeat_facts_carry_duration() -> None:
    state, _, _ = evaluate_reading(LineState("l1"), money("3"), POLICY, utcnow())
    with freeze_time("2026-11-02 12:00:00"):
        _, events, _ = evaluate_reading(state, money("3"), POLICY, utcnow())
    (repeat,) = events
    assert repeat.type == "repeat"
    assert repeat.facts["low_for"] == "1 day"
    assert repeat.facts["metric"] == "balance"
    assert repeat.facts["value"] == "3 USD"
    assert repeat.facts["threshold"] == "5 USD"


def test_event_facts_name_the_worst_metric() -> None:
    r = reading(balance=Decimal("8"), currency="EUR", data_remaining=10**8)
    _, events, _ = evaluate_reading(LineState("l1"), r, POLICY, T0)
    facts = events[0].facts
    assert events[0].type == "critical"
    assert facts["metric"] == "data"
    assert [m["metric"] for m in facts["low"]] == ["balance", "data"]
    assert "balance 8 EUR (warning" in facts["summary"]


def test_expired_status_is_an_alert_not_a_failure() -> None:
    r = reading(critical_reason="expired", status="EXPIRED")
    state, events, _ = evaluate_reading(LineState("l1"), r, POLICY, T0)
    assert state.level is Level.CRITICAL
    assert [e.type for e in events] == ["critical"]
    assert events[0].facts["value"] == "expired"


def test_a_provider_warning_state_warns_whatever_the_figures() -> None:
    """A SIM being disabled (Telnyx `disabling`) warns even with plenty of data left."""
    r = reading(data_remaining=5 * 10**9, warning_reason="disabling", status="disabling")
    state, events, _ = evaluate_reading(LineState("l1"), r, POLICY, T0)
    assert state.level is Level.WARNING
    assert [e.type for e in events] == ["warning"]
    assert events[0].facts["value"] == "disabling"


def test_state_after_restart_does_not_realert() -> None:
    state, _ = run(["8"])
    # the same state read back (as the store does) gives no new event for the same reading
    again = replace(state)
    _, events, _ = evaluate_reading(again, money("8"), POLICY, T0 + timedelta(minutes=5))
    assert events == []


def test_renewal_risk_once_per_renewal_date() -> None:
    renews = T0 + timedelta(days=2)

    def tmo(balance: str, at: datetime, renewal: datetime = renews) -> Reading:
        return reading(
            at=at,
            balance=Decimal(balance),
            currency="USD",
            renewal_at=renewal,
            renewal_price=Decimal("15.00"),
        )

    policy = Policy(Thresholds(renewal_warning=timedelta(days=3)), Alerts())
    # covered: nothing
    state, events, _ = evaluate_reading(LineState("l1"), tmo("15.00", T0), policy, T0)
    assert events == []
    # not covered, within three days of the renewal: one renewal-risk event
    state, events, _ = evaluate_reading(state, tmo("10.00", T0), policy, T0)
    (risk,) = events
    assert risk.type == "renewal-risk"
    assert risk.facts["shortfall"] == "5.00 USD" and risk.facts["renews_in"] == "2 days"
    later = T0 + timedelta(hours=6)
    state, events, _ = evaluate_reading(state, tmo("10.00", later), policy, later)
    assert events == []
    # the next period's renewal is a new occasion
    nxt = renews + timedelta(days=30)
    at = nxt - timedelta(days=1)
    state, events, _ = evaluate_reading(state, tmo("1.00", at, nxt), policy, at)
    assert [e.type for e in events] == ["renewal-risk"]
    # too early to warn
    far = T0 + timedelta(days=20)
    _, events, _ = evaluate_reading(LineState("l1"), tmo("1", T0, far), policy, T0)
    assert events == []


def test_notices_and_time_facts_are_datetimes() -> None:
    """The state and the events carry times, not their text: the store alone writes them."""
    renews = T0 + timedelta(days=2)
    policy = Policy(
        THRESHOLDS.model_copy(update={"renewal_warning": timedelta(days=3)}),
        Alerts(escalate_after=timedelta(hours=1), escalate_to=["boss"]),
    )
    low = reading(
        balance=Decimal(1),
        currency="USD",
        expires_at=T0 + timedelta(days=5),
        renewal_at=renews,
        renewal_price=Decimal(15),
    )
    state, events, _ = evaluate_reading(LineState("l1"), low, policy, T0)
    assert state.notices.critical_since == T0 and state.notices.renewal_risk == renews
    facts = {e.type: e.facts for e in events}
    assert facts["critical"]["expires_at"] == T0 + timedelta(days=5)
    assert facts["renewal-risk"]["renewal_at"] == renews
    later = T0 + timedelta(hours=2)
    state, events, _ = evaluate_reading(state, replace(low, checked_at=later), policy, later)
    assert any(e.facts.get("escalated") for e in events) and state.notices.escalated == T0
    state, events, _ = evaluate_reading(state, money("50"), policy, later)
    assert [e.facts["low_since"] for e in events if e.type == "recovery"] == [T0]
    assert state.notices.critical_since is None and state.notices.escalated is None


def test_the_same_renewal_in_another_offset_is_no_new_occasion() -> None:
    """A provider stating the same renewal instant in another offset is the same occasion:
    the notice compared the dates' text before and sent the renewal risk again."""
    renews = T0 + timedelta(days=2)
    policy = Policy(Thresholds(renewal_warning=timedelta(days=3)), Alerts())
    state = LineState("l1")
    kinds = []
    for renewal in (renews.astimezone(timezone(timedelta(hours=-5))), renews):
        figures = reading(
            balance=Decimal(1), currency="USD", renewal_at=renewal, renewal_price=Decimal(15)
        )
        state, events, _ = evaluate_reading(state, figures, policy, T0)
        kinds.append([e.type for e in events])
    assert kinds == [["renewal-risk"], []]


def test_a_partial_reading_is_no_recovery() -> None:
    """T-Mobile's #225# in maintenance, #932# answering: data but no balance."""
    state, events, _ = evaluate_reading(LineState("l1"), money("3"), POLICY, T0)
    assert [e.type for e in events] == ["critical"]
    data_only = reading(at=T0 + timedelta(hours=1), data_remaining=5 * 10**9)
    state, events, _ = evaluate_reading(state, data_only, POLICY, T0 + timedelta(hours=1))
    assert events == []
    assert state.level is Level.CRITICAL and state.metrics["balance"] is Level.CRITICAL
    state, events, _ = evaluate_reading(state, money("3"), POLICY, T0 + timedelta(hours=2))
    assert events == []  # still the same critical spell: not alerted again
    state, events, _ = evaluate_reading(state, money("50"), POLICY, T0 + timedelta(hours=3))
    assert [e.type for e in events] == ["recovery"]


def test_a_binary_line_reads_its_thresholds_and_figures_as_its_provider_shows_them() -> None:
    # 1.05e9 bytes is above a decimal "1GB" but below the provider's "1 GB" (2**30 bytes)
    t = Thresholds(data_warning="1GB", data_critical="200MB")
    figure = reading(data_remaining=1_050_000_000, data_total=3072 * 2**20)
    (decimal,) = judge(figure, t)
    (binary,) = judge(figure, t, sizes="binary")
    assert decimal.level is Level.OK and decimal.value == "1.05 GB"
    assert binary.level is Level.WARNING
    # the threshold sits beside the figure in the same convention
    assert (binary.value, binary.threshold) == ("1001.36 MB", "1 GB")


def test_event_facts_show_sizes_in_the_lines_convention() -> None:
    policy = replace(
        POLICY, thresholds=Thresholds(data_warning="1GB", data_critical="200MB"), sizes="binary"
    )
    _, events, _ = evaluate_reading(
        LineState("l1", level=Level.OK, metrics={"data": Level.OK}),
        reading(data_remaining=150 * 2**20, data_total=3072 * 2**20),
        policy,
        T0,
    )
    (event,) = events
    assert event.type == "critical"
    assert (event.facts["data_remaining"], event.facts["data_total"]) == ("150 MB", "3 GB")
    assert event.facts["threshold"] == "200 MB"
