"""A line's figures over time as inline SVG, pure: no script, no asset, no network.

The line page draws one small chart per figure (balance, data left: their units differ),
over the chosen window, with top-ups and renewals marked. Readings are thinned to one
point per pixel column (the lowest of the column, so a dip stays visible) so a 90-day
chart of a line checked every minute stays a few kilobytes. Coordinates are computed in
Decimal like every amount of the project; only the SVG text has decimals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from html import escape

WIDTH, HEIGHT = 600, 160
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 64, 8, 10, 22


@dataclass(frozen=True)
class Point:
    at: datetime
    value: Decimal


@dataclass(frozen=True)
class Mark:
    """A moment worth seeing on the chart: a top-up, a renewal."""

    at: datetime
    label: str


def svg(
    title: str,
    points: Sequence[Point],
    since: datetime,
    until: datetime,
    marks: Sequence[Mark] = (),
    shown: Callable[[Decimal], str] = str,
    tz: tzinfo = UTC,
) -> str:
    """The chart; `shown` writes a value for the axis and the summary ("2.1 GB"), dates
    are in `tz` (the configured time zone)."""
    label = escape(title)
    inside = [p for p in points if since <= p.at <= until]
    if not inside:
        return (
            f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            f'aria-label="{label}: no readings in this period">'
            f'<text x="{WIDTH // 2}" y="{HEIGHT // 2}" text-anchor="middle">'
            "no readings in this period</text></svg>"
        )
    span = Decimal(max((until - since).total_seconds(), 1))
    plot_w = Decimal(WIDTH - PAD_LEFT - PAD_RIGHT)
    plot_h = Decimal(HEIGHT - PAD_TOP - PAD_BOTTOM)

    def x(at: datetime) -> Decimal:
        return PAD_LEFT + Decimal((at - since).total_seconds()) / span * plot_w

    columns: dict[int, Point] = {}
    for point in inside:
        column = int(x(point.at))
        kept = columns.get(column)
        if kept is None or point.value < kept.value:
            columns[column] = point
    thinned = [columns[c] for c in sorted(columns)]
    low = min(min(p.value for p in thinned), Decimal(0))
    high = max(p.value for p in thinned)
    if high == low:
        high = low + 1

    def y(value: Decimal) -> Decimal:
        return PAD_TOP + (high - value) / (high - low) * plot_h

    path = " ".join(f"{_n(x(p.at))},{_n(y(p.value))}" for p in thinned)
    last = thinned[-1]
    summary = f"{title}: {shown(last.value)} at the last reading, from {len(inside)} readings"
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(summary)}">',
        f"<title>{escape(summary)}</title>",
        f'<line class="axis" x1="{PAD_LEFT}" y1="{HEIGHT - PAD_BOTTOM}" '
        f'x2="{WIDTH - PAD_RIGHT}" y2="{HEIGHT - PAD_BOTTOM}"/>',
        f'<text class="tick" x="{PAD_LEFT - 4}" y="{_n(y(high))}" dy="4" '
        f'text-anchor="end">{escape(shown(high))}</text>',
        f'<text class="tick" x="{PAD_LEFT - 4}" y="{_n(y(low))}" '
        f'text-anchor="end">{escape(shown(low))}</text>',
        f'<text class="tick" x="{PAD_LEFT}" y="{HEIGHT - 6}">'
        f"{since.astimezone(tz):%Y-%m-%d}</text>",
        f'<text class="tick" x="{WIDTH - PAD_RIGHT}" y="{HEIGHT - 6}" '
        f'text-anchor="end">{until.astimezone(tz):%Y-%m-%d}</text>',
    ]
    for mark in marks:
        if since <= mark.at <= until:
            at = _n(x(mark.at))
            parts.append(
                f'<line class="mark" x1="{at}" y1="{PAD_TOP}" x2="{at}" '
                f'y2="{HEIGHT - PAD_BOTTOM}"><title>{escape(mark.label)} '
                f"{mark.at.astimezone(tz):%Y-%m-%d %H:%M}</title></line>"
            )
    if len(thinned) == 1:
        parts.append(
            f'<circle class="series" cx="{_n(x(last.at))}" cy="{_n(y(last.value))}" r="3"/>'
        )
    else:
        parts.append(f'<polyline class="series" points="{path}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _n(value: Decimal) -> str:
    """A coordinate to a tenth of a unit: enough for any screen, short in the page."""
    return f"{value.quantize(Decimal('0.1')):f}"
