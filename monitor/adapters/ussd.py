"""The `ussd` adapter: a SIM in a local modem, asked by USSD codes through ModemManager.

For prepaid lines with no API (AT&T, T-Mobile, Ultra...). Per line: the modem (IMEI or
SIM ICCID), a carrier `preset` and/or `codes` with reply patterns; each code is one session
on the modem: a USSD code, a text sent (`sms = { to, text }`) whose answer comes by SMS, or
a USSD code answered by SMS (`reply = "sms"`, `from`). The figures of every code whose
reply matched merge into one reading (the first code to give a figure wins it); the check
fails only when no code's reply matched, and then says why for each. Codes that failed
beside ones that matched are listed, with their raw replies, in the reading's
`extras["failed_codes"]`.

Reading the replies is `ussd_replies` (pure); talking to the modem is `monitor.modem`.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor import modem
from monitor.adapters import Adapter
from monitor.adapters.ussd_replies import (
    DEFAULT_DATE_FORMATS,
    PRESETS,
    CodeSpec,
    Figures,
    SmsVia,
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


class SmsQuery(BaseModel):
    """A text a code sends: the carrier answers it by SMS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    to: str = Field(description="the number or short code to text, such as '6700'")
    text: str = Field(description="the keyword, such as 'BAL'")

    @field_validator("to", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError(f'quote it, as in to = "{value}": a number loses leading zeros')
        if isinstance(value, str) and not modem.SMS_NUMBER.fullmatch(value):
            raise ValueError(f"{value!r} is not a phone number or short code (digits, maybe +)")
        return value

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        if not modem.SMS_TEXT.fullmatch(value):
            raise ValueError("the text must be 1 to 160 characters on one line")
        if "'" in value and '"' in value:
            raise ValueError("the text may hold ' or \" but not both (mmcli cannot quote it)")
        return value


class UssdCode(BaseModel):
    """One code of a line. With the code of a preset entry, it overrides that entry's
    pattern, date formats or currency (only the keys given)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    code: str | None = Field(
        default=None, pattern=CODE_PATTERN, description="the USSD code, such as '*777#'"
    )
    sms: SmsQuery | None = Field(
        default=None,
        description="instead of a code, a text to send, answered by SMS: "
        "{ to = '6700', text = 'BAL' }",
    )
    reply: Literal["ussd", "sms"] = Field(
        default="ussd",
        description="'sms': the code's answer comes as a text from `from`, not in the session",
    )
    from_: str | None = Field(
        default=None,
        alias="from",
        description="the number the answering text comes from (default for sms: its `to`)",
    )
    keep_messages: bool = Field(
        default=False,
        description="leave the query and its reply on the modem (default: both deleted)",
    )
    timeout: Duration | None = Field(
        default=None,
        description="this code's longest wait for the network, for an SMS query from the "
        "send to its answer (default: the line's timeout)",
    )
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

    @model_validator(mode="after")
    def _one_way_to_ask(self) -> UssdCode:
        if (self.code is None) == (self.sms is None):
            raise ValueError(
                "give `code` (a USSD code, '*777#') or `sms` (a text, { to = '6700', "
                "text = 'BAL' }): one of them"
            )
        by_sms = self.sms is not None or self.reply == "sms"
        if by_sms and (self.respond or self.expect):
            raise ValueError("respond and expect walk USSD menus; a reply by SMS has none")
        if self.reply == "sms" and self.code is not None and self.from_ is None:
            raise ValueError(
                "a code answered by SMS needs `from`: the number its text comes from, as in "
                '{ code = "*3282#", reply = "sms", from = "..." }'
            )
        if not by_sms and self.from_ is not None:
            raise ValueError('`from` is for replies by SMS: add reply = "sms", or use sms')
        if not by_sms and self.keep_messages:
            raise ValueError("keep_messages is for replies by SMS")
        return self

    @field_validator("from_")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        if value is not None and not modem.SMS_SENDER.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a sender: a number or short code, or a name of up to 11 "
                "letters and digits"
            )
        return value

    @field_validator("timeout")
    @classmethod
    def _code_timeout(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and not MIN_TIMEOUT <= value <= MAX_TIMEOUT:
            raise ValueError("must be between 1s and 5m")
        return value

    @property
    def key(self) -> str:
        """What names the code: the USSD code, or an SMS query's label ("sms 6700 BAL")."""
        if self.sms is not None:
            return SmsVia(self.sms.to, self.sms.to, self.sms.text).label
        assert self.code is not None
        return self.code

    def via(self, base: CodeSpec | None) -> SmsVia | None:
        """How the reply comes by text, if it does: this entry's, else its preset entry's."""
        if self.sms is not None:
            sender = self.from_ or self.sms.to
            return SmsVia(sender, self.sms.to, self.sms.text, self.keep_messages)
        if self.reply == "sms":
            assert self.from_ is not None
            return SmsVia(self.from_, keep_messages=self.keep_messages)
        if base is not None and base.sms is not None:
            return replace(base.sms, keep_messages=self.keep_messages or base.sms.keep_messages)
        return None

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
        timeout = self.timeout.total_seconds() if self.timeout else None
        return CodeSpec(
            code=self.key,
            patterns=patterns,
            date_formats=date_formats,
            currency=self.currency or (base.currency if base else None),
            respond=tuple(self.respond) or (base.respond if base else ()),
            expect=tuple(self.expect) or (base.expect if base else ()),
            sms=self.via(base),
            timeout=timeout if timeout is not None else (base.timeout if base else None),
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
            if entry.key in seen:
                raise ValueError(f"code {entry.key!r} is listed twice in `codes`")
            seen.add(entry.key)
        return self

    def specs(self) -> tuple[CodeSpec, ...]:
        """The line's codes: the preset's, each overridden by a `codes` entry of the same
        code, then the line's other codes, in order."""
        base = list(PRESETS[self.preset].codes) if self.preset else []
        own = {entry.key: entry for entry in self.codes}
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
    min_interval_why = (
        "asks the carrier, which throttles USSD sessions (and a prepaid balance moves "
        "slowly): more often than every {minimum} only costs sessions"
    )

    def read(self) -> Reading:
        o: UssdOptions = self.options
        now = utcnow()
        tz = o.zone()
        figures = Figures()
        matched: list[str] = []
        failures: list[_Failure] = []
        replies: dict[str, str] = {}
        for spec in o.specs():
            timeout = spec.timeout or o.timeout.total_seconds()
            try:
                if spec.sms is not None:
                    reply = self._by_sms(spec, spec.sms, timeout, tz, now)
                else:
                    reply = modem.send_ussd(
                        o.modem,
                        spec.code,
                        timeout,
                        lock_at=self.context.database,
                        respond=spec.respond,
                        expect=spec.expect,
                    )
            except FATAL as exc:
                failures.append(_Failure(spec.code, str(exc), exc))
                break
            except CheckFailed as exc:
                message = f"{spec.code}: {exc}" if spec.sms is not None else str(exc)
                failures.append(_Failure(spec.code, message, exc))
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

    def _by_sms(
        self, spec: CodeSpec, via: SmsVia, timeout: float, tz: tzinfo, now: datetime
    ) -> str:
        """Ask by text (or by the USSD code) and wait for the text that answers; a text from
        the number that its reader cannot read is passed over while the wait goes on."""
        o: UssdOptions = self.options

        def accept(sms: modem.Sms) -> str | None:
            try:
                read_reply(sms.text or "", spec, tz=tz, now=now, currency=o.default_currency())
            except UnreadableReply as exc:
                return str(exc)
            return None

        exchange = modem.sms_query(
            o.modem,
            via.sender,
            to=via.to,
            text=via.text,
            ussd=None if via.to is not None else spec.code,
            timeout=timeout,
            accept=accept,
            keep=via.keep_messages,
            lock_at=self.context.database,
        )
        return exchange.reply.text or ""


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
