"""The line page's inline SVG chart: thinned per pixel column, dips kept, marks drawn."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from monitor.http.chart import Mark, Point, svg

NOW = datetime(2026, 12, 3, tzinfo=UTC)
SINCE = NOW - timedelta(days=90)


def test_a_minute_by_minute_quarter_stays_a_few_kilobytes_and_keeps_its_dip() -> None:
    points = [
        Point(SINCE + timedelta(minutes=m), Decimal(50) if m != 60_000 else Decimal(1))
        for m in range(0, 90 * 24 * 60, 1)
    ]
    drawn = svg("Balance", points, SINCE, NOW)
    assert len(drawn) < 20_000
    pairs = drawn.split('points="')[1].split('"')[0].split()
    assert len(pairs) <= 600
    lowest = max(float(p.split(",")[1]) for p in pairs)  # SVG y grows downwards
    assert lowest > 100  # the one reading of 1 among 50s is drawn, near the bottom


def test_no_readings_say_so() -> None:
    assert "no readings in this period" in svg("Data left", [], SINCE, NOW)


def test_marks_outside_the_window_are_left_out() -> None:
    points = [Point(NOW - timedelta(days=1), Decimal(5)), Point(NOW, Decimal(4))]
    marks = [Mark(NOW - timedelta(hours=2), "top-up"), Mark(SINCE - timedelta(days=1), "renewal")]
    drawn = svg("Balance", points, SINCE, NOW, marks)
    assert drawn.count('class="mark"') == 1 and "top-up" in drawn


def test_titles_and_values_are_escaped() -> None:
    drawn = svg("<b>", [Point(NOW, Decimal(1))], SINCE, NOW, shown=lambda v: f"{v} <&>")
    assert "<b>" not in drawn and "&lt;b&gt;" in drawn and "&lt;&amp;&gt;" in drawn
