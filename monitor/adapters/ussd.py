"""The `ussd` adapter: a SIM in a local modem, asked by USSD codes through ModemManager.

For prepaid lines with no API (AT&T, T-Mobile...). Per line: the modem (IMEI or SIM
ICCID), a carrier `preset` and/or `codes` with reply patterns; each code is one USSD
session. The figures of every code whose reply matched merge into one reading (the first
code to give a figure wins it); the check fails only when no code's reply matched, and
then says why for each. Codes that failed beside ones that matched are listed, with their
raw replies, in the reading's `extras["failed_codes"]`.

Reading the replies is `ussd_replies` (pure); talking to the modem is `monitor.modem`.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor import modem
from monitor.adapters import Adapter
from monitor.adapters.ussd_replies import (
    DEFAULT_DATE_FORMATS,
    PRESETS,
    CodeSpec,
    Figures,
    UnreadableReply,
    check_date_format,
    compile_pattern,
    read_reply,
)
from monitor.config import Duration
from monitor.errors import CheckFailed
from monitor.model import Reading, utcnow

CODE_PATTERN = r"^[*#][0-9*#+]*$"
MIN_TIMEOUT = timedelta(seconds=1)
MAX_TIMEOUT = timedelta(minutes=5)
FATAL: tuple[type[modem.ModemError], ...] = (
    modem.MmcliMissing,
    modem.ModemManagerUnavailable,
    modem.ModemNotFound,
    modem.ModemNotAuthorized,
    modem.UssdUnsupported,
)
"""Errors about the modem rather than one code: the line's other codes are not tried."""


class UssdCode(BaseModel):
    """One code of a line. With the code of a preset entry, it overrides that entry's
    pattern, date formats or currency (only the keys given)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(pattern=CODE_PATTERN, description="the USSD code, such as '*777#'")
    pattern: str | list[str] | None = Field(
        default=None,
        description="regex (or several) with named groups balance, currency, data, "
        "data_total, data_used, expiry, renewal_date, renewal_price; "
        "default: the generic money parser",
    )
    date_format: str | None = Field(default=None, description="strptime format of its dates")
    date_formats: list[str] | None = Field(default=None, description="several, tried in order")
    currency: str | None = Field(
        default=None, pattern=r"^[A-Z]{3}$", description="ISO code of its amounts"
    )
    respond: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="a menu code's answers, in order (['2', '1']); the reply read is the "
        "text after the last",
    )
    expect: list[str] = Field(
        default_factory=list,
        max_length=11,
        description="text each menu must show before its answer, '' for any (one more: "
        "in the last reply); else the session is cancelled and the check fails",
    )

    @field_validator("respond")
    @classmethod
    def _answers(cls, value: list[str]) -> list[str]:
        for answer in value:
            if not modem.MENU_ANSWER.fullmatch(answer):
                raise ValueError(f"{answer!r} is not a menu answer (1 to 160 characters)")
        return value

    @model_validator(mode="after")
    def _expect_per_answer(self) -> UssdCode:
        if len(self.expect) > len(self.respond) + 1:
            raise ValueError("expect: one text per answer in respond, and one for the reply")
        return self

    @field_validator("pattern")
    @classmethod
    def _patterns(cls, value: str | list[str] | None) -> str | list[str] | None:
        for text in [value] if isinstance(value, str) else value or []:
            compile_pattern(text)
        return value

    @field_validator("date_format")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        return check_date_format(value) if value is not None else None

    @field_validator("date_formats")
    @classmethod
    def _formats(cls, value: list[str] | None) -> list[str] | None:
        return [check_date_format(f) for f in value] if value is not None else None

    def spec(self, base: CodeSpec | None = None) -> CodeSpec:
        """This code read as a CodeSpec, over the preset's entry for the same code."""
        if self.pattern is not None:
            texts = [self.pattern] if isinstance(self.pattern, str) else self.pattern
            patterns = tuple(compile_pattern(t) for t in texts)
        else:
            patterns = base.patterns if base else ()
        formats = [*([self.date_format] if self.date_format else []), *(self.date_formats or [])]
        if formats:
            date_formats = tuple(formats)
        else:
            date_formats = base.date_formats if base else DEFAULT_DATE_FORMATS
        return CodeSpec(
            code=self.code,
            patterns=patterns,
            date_formats=date_formats,
            currency=self.currency or (base.currency if base else None),
            respond=tuple(self.respond) or (base.respond if base else ()),
            expect=tuple(self.expect) or (base.expect if base else ()),
        )


class UssdOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    modem: str = Field(
        min_length=1,
        description="the modem's equipment id (IMEI) or its SIM's ICCID, as `esim-monitor "
        "modems` shows them (never its index, which changes)",
    )
    preset: str | None = Field(
        default=None, description=f"carrier codes and patterns: {', '.join(PRESETS)}"
    )
    codes: list[UssdCode] = Field(
        default_factory=list,
        description="codes of the line's own, or overrides of the preset's codes",
    )
    currency: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{3}$",
        description="ISO code of the line's money when replies only say '$' "
        "(default: the preset's)",
    )
    timezone: str | None = Field(
        default=None, description="time zone of the dates in replies (default: the system's)"
    )
    timeout: Duration = Field(
        default=timedelta(seconds=20),
        description="longest wait for the modem and the network, per code; keep the "
        "line's codes times this under [monitor] check_timeout",
    )

    @field_validator("modem", mode="before")
    @classmethod
    def _modem(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError('quote it, as in modem = "867...": a number loses leading zeros')
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("/org/freedesktop/") or (text.isdigit() and len(text) < 6):
                raise ValueError(
                    "use the modem's equipment id (IMEI) or SIM ICCID from `esim-monitor "
                    "modems`, not its index or path: those change when the modem re-appears"
                )
            return text
        return value

    @field_validator("preset")
    @classmethod
    def _preset(cls, value: str | None) -> str | None:
        if value is not None and value not in PRESETS:
            raise ValueError(f"unknown preset {value!r}; available: {', '.join(PRESETS)}")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"unknown time zone {value!r} (use an IANA name such as 'America/Chicago')"
                ) from None
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if not MIN_TIMEOUT <= value <= MAX_TIMEOUT:
            raise ValueError("must be between 1s and 5m")
        return value

    @model_validator(mode="after")
    def _something_to_send(self) -> UssdOptions:
        if self.preset is None and not self.codes:
            raise ValueError(f"set `preset` ({', '.join(PRESETS)}) or `codes`, or both")
        seen: set[str] = set()
        for entry in self.codes:
            if entry.code in seen:
                raise ValueError(f"code {entry.code!r} is listed twice in `codes`")
            seen.add(entry.code)
        return self

    def specs(self) -> tuple[CodeSpec, ...]:
        """The line's codes: the preset's, each overridden by a `codes` entry of the same
        code, then the line's other codes, in order."""
        base = list(PRESETS[self.preset].codes) if self.preset else []
        own = {entry.code: entry for entry in self.codes}
        specs = [own.pop(s.code).spec(s) if s.code in own else s for s in base]
        specs.extend(entry.spec() for entry in own.values())
        return tuple(specs)

    def spec_for(self, code: str) -> CodeSpec:
        """How this line reads `code`'s reply (the generic parser for a code it does not
        list): for `esim-monitor ussd LINE CODE` to show what a reply would give."""
        return next((s for s in self.specs() if s.code == code), CodeSpec(code))

    def default_currency(self) -> str | None:
        return self.currency or (PRESETS[self.preset].currency if self.preset else None)

    def zone(self) -> tzinfo:
        if self.timezone:
            return zoneinfo.ZoneInfo(self.timezone)
        return datetime.now().astimezone().tzinfo or zoneinfo.ZoneInfo("UTC")


class UssdAdapter(Adapter):
    name = "ussd"
    description = "A SIM in a local modem, asked by USSD codes through ModemManager (mmcli)."
    Options = UssdOptions
    min_interval = timedelta(minutes=15)
    """Carriers throttle USSD and balances move slowly: more often only costs sessions."""

    def read(self) -> Reading:
        o: UssdOptions = self.options
        now = utcnow()
        tz = o.zone()
        figures = Figures()
        matched: list[str] = []
        failures: list[_Failure] = []
        replies: dict[str, str] = {}
        for spec in o.specs():
            try:
                reply = modem.send_ussd(
                    o.modem,
                    spec.code,
                    o.timeout.total_seconds(),
                    lock_at=self.context.database,
                    respond=spec.respond,
                    expect=spec.expect,
                )
            except FATAL as exc:
                failures.append(_Failure(spec.code, str(exc), exc))
                break
            except CheckFailed as exc:
                failures.append(_Failure(spec.code, str(exc), exc))
                continue
            replies[spec.code] = reply
            try:
                found = read_reply(reply, spec, tz=tz, now=now, currency=o.default_currency())
            except UnreadableReply as exc:
                failures.append(_Failure(spec.code, f"{spec.code}: {exc}", exc))
                continue
            figures = figures.merged(found)
            matched.append(spec.code)
        if not matched:
            raise _all_failed(failures)
        extras: dict[str, Any] = {}
        if failures:
            extras["failed_codes"] = [
                {"code": f.code, "error": f.message, "raw": f.error.raw} for f in failures
            ]
        return figures.reading(self.line_id, now, raw=replies, extras=extras)


@dataclass(frozen=True)
class _Failure:
    """A code that gave no figure: why, in words that name the code, and the error itself."""

    code: str
    message: str
    error: CheckFailed


def _all_failed(failures: list[_Failure]) -> CheckFailed:
    """One failure keeps its type (a ModemNotFound says what to do); several are listed."""
    if len(failures) == 1:
        (failure,) = failures
        if isinstance(failure.error, UnreadableReply):
            return UnreadableReply(failure.message, failure.error.raw or "")
        return failure.error
    message = "no USSD reply could be read: " + "; ".join(f.message for f in failures)
    raw = "\n\n".join(f"[{f.code}]\n{f.error.raw or ''}".rstrip() for f in failures)
    return CheckFailed(message, raw=raw)
