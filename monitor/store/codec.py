"""How the model's values are written in the database and read back: the one place that knows.

Times are UTC ISO-8601 text with microseconds (one shape, so text order is time order),
but for a reading's expiry and renewal, integer microseconds since the epoch (`instant`:
a quarter of the bytes, on the most numerous rows; no query compares them),
money is exact decimal text (`Decimal` has no SQLite type, and a float would round it),
data is integer bytes, levels are their lower-case names, and the mappings a row carries
(a line's per-metric levels, its notices, its forecasts, an event's facts, a reading's
extras and raw payload) are JSON. Every function is pure; a stored value it cannot read
raises ValueError, KeyError or InvalidOperation, which the store's door maps to
DatabaseUnusable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from monitor.forecast import Forecast
from monitor.model import TIME_FACTS, ExpiryNotice, Level, Notices

EXCERPT_BYTES = 4096
"""Most of a provider's text kept per reading (its raw answer, an error): a row is history,
not an archive, and a provider that sends megabytes must not grow the database by them."""


def clip(text: str | None, limit: int = EXCERPT_BYTES) -> str | None:
    """At most `limit` bytes of UTF-8, cut on a character boundary, marked when cut."""
    if text is None or len(text) <= limit // 4:
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    mark = "…[cut]"
    room = limit - len(mark.encode())
    return data[:room].decode("utf-8", "ignore") + mark


def ts(moment: datetime | None) -> str | None:
    """UTC ISO-8601 text with a fixed shape, so text order is time order. A naive time is
    refused: `astimezone` would read it as the machine's local time, silently."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise TypeError(f"a naive datetime cannot be stored: {moment.isoformat()}")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_ts(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def instant(moment: datetime | None) -> int | None:
    """A reading's expiry or renewal as integer microseconds since the Unix epoch (UTC):
    8 bytes a reading where the text takes 32, and exact to the microsecond as the text
    is. A naive time is refused, as `ts` refuses it."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise TypeError(f"a naive datetime cannot be stored: {moment.isoformat()}")
    return (moment - EPOCH) // timedelta(microseconds=1)


def parse_instant(value: int | str | None) -> datetime | None:
    """What `instant` wrote, or the ISO text an older version (or a row written by hand)
    holds: both read as the same aware UTC time."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return EPOCH + timedelta(microseconds=value)
    return datetime.fromisoformat(value)


def money(amount: Decimal | None) -> str | None:
    """Exact decimal text, never exponent notation (text a person and SQL both read). A
    float is refused: it has rounded the amount already."""
    if amount is None:
        return None
    if not isinstance(amount, Decimal):
        raise TypeError(f"money is stored from a Decimal, not {type(amount).__name__}")
    return f"{amount:f}"


def parse_money(text: str | None) -> Decimal | None:
    return Decimal(text) if text is not None else None


def level(value: Level | None) -> str | None:
    return value.label if value is not None else None


def parse_level(text: str | None) -> Level | None:
    return Level[text.upper()] if text else None


def metrics(levels: Mapping[str, Level]) -> str:
    return json.dumps({k: v.label for k, v in levels.items()})


def parse_metrics(text: str | None) -> dict[str, Level]:
    return {k: Level[v.upper()] for k, v in json.loads(text or "{}").items()}


def notices(value: Notices) -> str:
    """A line's one-shot notices: a JSON object of those set, keyed as they always were."""
    stored: dict[str, Any] = {}
    if value.critical_since is not None:
        stored["critical_since"] = ts(value.critical_since)
    if value.escalated is not None:
        stored["escalated"] = ts(value.escalated)
    if value.expiry is not None:
        stored["expiry"] = {
            "expires_at": ts(value.expiry.expires_at),
            "sent": sorted(value.expiry.sent),
        }
    if value.renewal_risk is not None:
        stored["renewal-risk"] = ts(value.renewal_risk)
    if value.folded is not None:
        stored["folded"] = value.folded
    return json.dumps(stored)


def parse_notices(text: str | None) -> Notices:
    """Notices as any version wrote them (before this codec, times were `isoformat()` text
    in the reading's own offset: `fromisoformat` reads both). An expiry record without its
    date (the oldest form) tells nothing: the reminders for the date start afresh."""
    stored = json.loads(text or "{}")
    record = stored.get("expiry")
    expiry = None
    if record and record.get("expires_at"):
        expiry = ExpiryNotice(
            datetime.fromisoformat(record["expires_at"]),
            frozenset(str(offset) for offset in record.get("sent", ())),
        )
    folded = stored.get("folded")
    return Notices(
        critical_since=parse_ts(stored.get("critical_since")),
        escalated=parse_ts(stored.get("escalated")),
        expiry=expiry,
        renewal_risk=parse_ts(stored.get("renewal-risk")),
        folded=str(folded) if folded is not None else None,
    )


def facts(value: Mapping[str, Any]) -> str:
    """An event's facts (its template variables): times as every time is written, anything
    else JSON lacks as text."""
    return json.dumps(dict(value), default=_fact)


def _fact(value: Any) -> Any:
    return ts(value) if isinstance(value, datetime) else str(value)


def parse_facts(text: str | None) -> dict[str, Any]:
    """Facts with their times (`TIME_FACTS`) as aware datetimes again."""
    stored = json.loads(text or "{}")
    for name in TIME_FACTS:
        if isinstance(stored.get(name), str):
            stored[name] = datetime.fromisoformat(stored[name])
    return stored


def forecasts(value: Sequence[Forecast]) -> str:
    return json.dumps(
        {
            f.metric: {
                "per_day": f"{f.per_day:f}",
                "runs_out_at": f.runs_out_at.isoformat() if f.runs_out_at else None,
            }
            for f in value
        }
    )


def parse_forecasts(text: str | None) -> dict[str, Forecast]:
    """A line's forecasts by metric."""
    return {
        metric: Forecast(metric, Decimal(data["per_day"]), parse_ts(data["runs_out_at"]))
        for metric, data in json.loads(text or "{}").items()
    }


def extras(value: Mapping[str, Any]) -> str | None:
    return json.dumps(dict(value), default=str) if value else None


def raw(value: Any) -> str | None:
    """A provider's payload, cut to `EXCERPT_BYTES`."""
    return clip(json.dumps(value, default=str)) if value is not None else None


def flag(value: bool) -> int:
    return 1 if value else 0
