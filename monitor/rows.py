"""The rows commands and the JSON API print: one line's status, a history, events.

`esim-monitor status --json`, `history --format json` and `events --json` print these,
and the status page's API (`/api/...`) returns the same rows, so a script reads the same
fields from either. Values stay typed (datetimes, Decimal as exact text) until `dumps`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from monitor.units import Sizes, format_bytes

if TYPE_CHECKING:
    from monitor.config import Settings
    from monitor.store.views import EventRow, HistoryRow, LineStatus


def line_row(settings: Settings, line: str, **values: Any) -> dict[str, Any]:
    """A line's figures as every lines table and JSON shows them; further keys appended."""
    from monitor.adapters import line_sizes

    balance = values.pop("balance")
    renewal_price = values.pop("renewal_price")
    return {
        "line": line,
        "label": settings.label(line),
        "state": values.pop("state"),
        "checked_at": values.pop("checked_at"),
        "balance": decimal(balance),
        "currency": values.pop("currency"),
        "data_remaining_bytes": values.pop("data_remaining"),
        "data_total_bytes": values.pop("data_total"),
        "data_sizes": line_sizes(settings, line),
        "expires_at": values.pop("expires_at"),
        "status": values.pop("status"),
        "renewal_at": values.pop("renewal_at"),
        "renewal_price": decimal(renewal_price),
        **values,
    }


def status_rows(
    settings: Settings,
    known: Mapping[str, LineStatus],
    now: datetime,
    only: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Every configured line (or those `only` names), in config order, as `status --json`
    prints it."""
    from monitor.store.views import LineStatus

    rows = []
    for line_id in settings.lines if only is None else only:
        s = known.get(line_id) or LineStatus(line_id)
        control = s.controls
        row = line_row(
            settings,
            line_id,
            state=s.state,
            checked_at=s.checked_at,
            balance=s.balance,
            currency=s.currency,
            data_remaining=s.data_remaining,
            data_total=s.data_total,
            expires_at=s.expires_at,
            status=s.status,
            renewal_at=s.renewal_at,
            renewal_price=s.renewal_price,
        )
        row.update(
            read_at=s.read_at,
            failures=s.failures,
            error=s.last_error,
            low_since=s.low_since,
            snoozed_until=control.snoozed_until if control.snoozed(now) else None,
            acknowledged=control.acked_level.label if control.acked_level else None,
            forecast={metric: f.to_json() for metric, f in s.forecasts.items()},
            source=s.source,
            carried=sorted(s.carried),
        )
        rows.append(row)
    return rows


class StatusJson:
    """`dumps(status_rows(...), times=iso, indent=None)` for a whole fleet, made line by line
    and each line's JSON kept while its status is the same: the API's `/api/lines` answers
    10,000 lines again and again while few of them change, and making the rows is most of
    its time (bench/web.py). A row depends on `now` only through whether its snooze still
    runs, so that is part of what must be the same. Shared by the server's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings: Settings | None = None
        self._rows: dict[str, tuple[LineStatus, bool, str]] = {}

    def dumps(self, settings: Settings, known: Mapping[str, LineStatus], now: datetime) -> str:
        """Every configured line's row, in config order, as one JSON array."""
        from monitor.store.views import LineStatus

        with self._lock:
            if settings is not self._settings:
                self._settings, self._rows = settings, {}
            before = self._rows
        rows: dict[str, tuple[LineStatus, bool, str]] = {}
        for line in settings.lines:
            status = known.get(line) or LineStatus(line)
            snoozed = status.controls.snoozed(now)
            kept = before.get(line)
            if kept is not None and kept[1] == snoozed and kept[0] == status:
                rows[line] = kept
            else:
                row = status_rows(settings, {line: status}, now, only=(line,))[0]
                rows[line] = (status, snoozed, dumps(row, times=iso, indent=None))
        with self._lock:
            if settings is self._settings:
                self._rows = rows
        return "[" + ", ".join(text for _, _, text in rows.values()) + "]"


def history_rows(found: Iterable[HistoryRow]) -> list[dict[str, Any]]:
    """A line's readings, oldest first, as `history --format json` prints them."""
    return [
        {
            "checked_at": r.checked_at,
            "ok": r.ok,
            "level": r.level.label if r.level is not None else None,
            "balance": decimal(r.balance),
            "currency": r.currency,
            "data_remaining": r.data_remaining,
            "data_total": r.data_total,
            "expires_at": r.expires_at,
            "status": r.status,
            "error": r.error,
            "source": r.source,
        }
        for r in found
    ]


def event_rows(found: Iterable[EventRow]) -> list[dict[str, Any]]:
    """Events with one row per delivery, as `events --json` prints them."""
    return [
        {
            "id": e.id,
            "created_at": e.created_at,
            "line": e.line,
            "type": e.type,
            "message": e.message,
            "channel": e.channel,
            "status": e.status if e.channel is not None else "not routed",
            "attempts": e.attempts,
            "sent_at": e.sent_at,
            "next_attempt_at": e.next_attempt_at,
            "last_error": e.last_error,
        }
        for e in found
    ]


def jsonable(value: Any) -> Any:
    """JSON for what json does not know: exact decimals as text, durations as seconds."""
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    if isinstance(value, list | tuple | set):
        return list(value)
    return str(value)


def iso(moment: datetime | None) -> str | None:
    """A time as the JSON output has always shown it: ISO-8601 UTC, to the microsecond."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds") if moment else None


def decimal(amount: Decimal | None) -> str | None:
    """An amount as the JSON output shows it: exact decimal text."""
    return f"{amount:f}" if amount is not None else None


def dumps(data: Any, times: Callable[[datetime], Any] | None = None, indent: int | None = 2) -> str:
    """`data` as JSON, indented for people unless `indent` is None (the API: half the
    time on 10,000 lines); `times` writes its datetimes (rows keep them typed)."""

    def default(value: Any) -> Any:
        if times is not None and isinstance(value, datetime):
            return times(value)
        return jsonable(value)

    return json.dumps(data, indent=indent, default=default, ensure_ascii=False)


def when_text(moment: datetime | None, tz: tzinfo) -> str:
    """A time for a person: minutes, in the configured time zone; "-" when unknown."""
    if moment is None:
        return "-"
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def exact_when(moment: datetime, tz: tzinfo, *, up: bool = False) -> str:
    """A time for a person to the second when it has seconds, with its zone's name
    ("2026-12-06 21:34:56 EST"); `up` rounds a part of a second up rather than down."""
    if up and moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    local = moment.astimezone(tz)
    shape = "%Y-%m-%d %H:%M:%S %Z" if local.second or local.microsecond else "%Y-%m-%d %H:%M %Z"
    return local.strftime(shape).strip()


def money_text(amount: str | None, currency: str | None) -> str:
    if amount is None:
        return "-"
    return f"{amount} {currency}" if currency else str(amount)


def data_text(remaining: int | None, total: int | None, sizes: Sizes) -> str:
    """Data left, "of" the plan's total when known, in the line's units."""
    if remaining is None:
        return "-"
    text = format_bytes(remaining, sizes)
    return f"{text} of {format_bytes(total, sizes)}" if total else text
