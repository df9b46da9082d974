"""ModemManager through `mmcli`: list modems, find one by IMEI or SIM ICCID, send USSD codes
and SMS queries.

`mmcli` (on PATH) with its JSON output rather than the D-Bus API: no new dependency, and the
commands a user can type to see what the daemon sees. A modem is found by its equipment id
(IMEI) or its SIM's ICCID, never by index: indexes change when the modem re-appears.

Every call has a timeout twice over: mmcli's own `--timeout`, and a kill of its process
group when it outlives that by `KILL_GRACE`. A modem runs one USSD session at a time, so
sessions are serialised per modem: across the process's threads (lines checked in parallel
may share a modem) and, given the database (`lock_at`), across processes too, by an flock
on `<database>.modem-<key>.lock` beside it, as the recharge ledger's lock is (the daemon and
an `esim-monitor ussd` run at once would otherwise cancel each other's session). A stale
session (a reply that never came, a menu nobody answered) is cancelled before a new one
starts.

An SMS query (`sms_query`) is a session too: it sends a text (or a USSD code whose answer
comes as a text) and waits for the reply from the carrier's number, matched on the sender
AND a time after the send, so a reply that came late for an earlier query is never taken
for this one's; both messages are deleted afterwards unless kept. The JSON shapes read are
ModemManager 1.20's (cli/mmcli-output.c, cli/mmcli-sms.c, cli/mmcli-modem-messaging.c at
tag 1.20.6, commit 6aa0ff583d04aea88b4da7a1c20049f57062dab6).

Failures raise `ModemError` subclasses; they are `CheckFailed`, carrying mmcli's own words
as `raw`, so a check that meets one fails with the reason and never reads as a zero.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from monitor import children
from monitor.errors import CheckFailed, UsageError
from monitor.locks import file_lock

log = structlog.get_logger("monitor.modem")

MMCLI = "mmcli"
USSD_TIMEOUT = 30.0
"""Seconds a USSD exchange may take, by default (mmcli's own default)."""
QUERY_TIMEOUT = 10.0
"""Seconds for listing modems, by default: a modem that does not answer within this is hung."""
KILL_GRACE = 2.0
"""Seconds mmcli gets beyond its own `--timeout` to report it, before it is killed."""
STALE_STATES = frozenset({"active", "user-response"})
"""USSD session states left over from an earlier exchange; cancelled before initiating."""

_REPLY_MARKER = "new reply from network:"
MENU_ANSWER = re.compile(r"[^\x00-\x1f\x7f]{1,160}")
"""A menu answer: what a person would type (a digit, mostly), on one line."""
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


# ---- errors ------------------------------------------------------------------------------


class ModemError(CheckFailed):
    """A modem could not be asked. `raw` holds what mmcli said."""


class MmcliMissing(ModemError):
    """`mmcli` is not on PATH: ModemManager's command-line tool is not installed."""


class ModemManagerUnavailable(ModemError):
    """ModemManager is not running, or the system bus cannot be reached."""


class ModemNotFound(ModemError):
    """No modem has that equipment id or SIM ICCID; `available` lists what was found."""

    def __init__(
        self, message: str, *, available: Sequence[ModemInfo] = (), raw: str | None = None
    ) -> None:
        super().__init__(message, raw=raw)
        self.available = tuple(available)


class ModemNotAuthorized(ModemError):
    """Polkit refused: the service user may not use USSD (docs/modems.md has the rule)."""


class UssdUnsupported(ModemError):
    """The modem, or the network it is on, cannot do USSD (+CME ERROR: 30, LTE-only)."""


class ModemBusy(ModemError):
    """Another USSD session holds the modem and did not end in time, or would not cancel."""


class UnexpectedMenu(ModemError):
    """A menu code's walk met a text it did not expect, or a session the network ended."""


class ModemTimeout(ModemError):
    """mmcli or the network did not answer in time."""


class SmsUnsupported(ModemError):
    """The modem has no Messaging interface in ModemManager: it cannot send or list texts."""


class SmsStorageFull(ModemError):
    """The modem's SMS storage is full (ModemManager's Message.MemoryFull, +CMS ERROR: 322)."""


class NoSmsReply(ModemError):
    """No text from the expected number arrived after the send within the timeout."""


class UnreadableSms(ModemError):
    """Texts came from the expected number, but none could be read; `raw` holds them."""


# ---- modems --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModemInfo:
    """One modem as ModemManager sees it. `index` is for display only: it changes."""

    index: int | None
    dbus_path: str
    equipment_id: str | None = None
    imei: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    state: str | None = None
    operator: str | None = None
    access_technologies: tuple[str, ...] = ()
    own_numbers: tuple[str, ...] = ()
    sim_path: str | None = None
    sim_iccid: str | None = None
    sim_operator: str | None = None

    @property
    def key(self) -> str:
        """What identifies the modem across reboots (its lock is keyed by this)."""
        return self.equipment_id or self.imei or self.dbus_path

    def matches(self, modem_id: str) -> bool:
        """Whether `modem_id` is this modem's equipment id, IMEI or SIM ICCID."""
        wanted = _normalised(modem_id)
        ids = (self.equipment_id, self.imei, self.sim_iccid)
        return bool(wanted) and any(i is not None and _normalised(i) == wanted for i in ids)

    def describe(self) -> str:
        """ "equipment id 8670... (Quectel EG25, SIM 8901..., registered)" for messages."""
        parts = [" ".join(p for p in (self.manufacturer, self.model) if p)]
        parts.append(f"SIM {self.sim_iccid}" if self.sim_iccid else "no SIM")
        if self.state:
            parts.append(self.state)
        details = ", ".join(p for p in parts if p)
        return f"equipment id {self.equipment_id or '?'} ({details})"


def _normalised(identifier: str) -> str:
    """IMEIs and ICCIDs as printed on labels: spaces, dashes and an ICCID's trailing F do not
    count."""
    return re.sub(r"[\s-]", "", identifier).lower().rstrip("f")


def list_modems(timeout: float = QUERY_TIMEOUT) -> list[ModemInfo]:
    """Every modem ModemManager knows, with its SIM's ICCID; `timeout` bounds the listing."""
    deadline = _Deadline(timeout, "listing modems")
    return [_with_sim(modem, deadline) for modem in _modems(deadline)]


def find_modem(modem_id: str, timeout: float = QUERY_TIMEOUT) -> ModemInfo:
    """The modem with this equipment id (IMEI) or SIM ICCID; ModemNotFound lists the others.

    SIMs are only asked for when no equipment id matched."""
    deadline = _Deadline(timeout, "finding the modem")
    return _with_sim(_find(modem_id, deadline), deadline)


def _find(modem_id: str, deadline: _Deadline) -> ModemInfo:
    """The modem, its SIM unread when its equipment id matched: one mmcli call fewer per
    USSD code."""
    modems = _modems(deadline)
    for modem in modems:
        if modem.matches(modem_id):
            return modem
    modems = [_with_sim(modem, deadline) for modem in modems]
    for modem in modems:
        if modem.matches(modem_id):
            return modem
    if not modems:
        message = (
            f"no modem with equipment id or SIM ICCID {modem_id!r}: ModemManager sees no "
            "modem (is it plugged in and enabled?)"
        )
    else:
        found = "; ".join(m.describe() for m in modems)
        message = f"no modem with equipment id or SIM ICCID {modem_id!r}; found: {found}"
    raise ModemNotFound(message, available=modems)


def _modems(deadline: _Deadline) -> list[ModemInfo]:
    listing = _json(_call(["-J", "-L"], deadline, "listing modems"), "listing modems")
    paths = listing.get("modem-list") or []
    modems = []
    for path in paths:
        if not isinstance(path, str):
            continue
        try:
            data = _json(_call(["-J", "-m", path], deadline, f"reading modem {path}"), path)
        except ModemNotFound:
            continue  # it went away between the listing and now
        modems.append(_modem_info(path, data))
    return modems


def _modem_info(path: str, data: dict[str, Any]) -> ModemInfo:
    modem = data.get("modem") or {}
    generic = modem.get("generic") or {}
    gpp = modem.get("3gpp") or {}
    index = path.rsplit("/", 1)[-1]
    return ModemInfo(
        index=int(index) if index.isdigit() else None,
        dbus_path=_value(modem.get("dbus-path")) or path,
        equipment_id=_value(generic.get("equipment-identifier")),
        imei=_value(gpp.get("imei")),
        manufacturer=_value(generic.get("manufacturer")),
        model=_value(generic.get("model")),
        state=_value(generic.get("state")),
        operator=_value(gpp.get("operator-name")),
        access_technologies=_values(generic.get("access-technologies")),
        own_numbers=_values(generic.get("own-numbers")),
        sim_path=_value(generic.get("sim")),
    )


def _with_sim(modem: ModemInfo, deadline: _Deadline) -> ModemInfo:
    """The modem with its SIM's ICCID; a SIM that cannot be read leaves it unknown."""
    if modem.sim_path is None or modem.sim_iccid is not None:
        return modem
    try:
        data = _json(_call(["-J", "-i", modem.sim_path], deadline, "reading the SIM"), "SIM")
    except ModemTimeout:
        raise
    except ModemError as exc:
        log.debug("SIM not readable", sim=modem.sim_path, error=str(exc))
        return modem
    props = (data.get("sim") or {}).get("properties") or {}
    return replace(
        modem,
        sim_iccid=_value(props.get("iccid")),
        sim_operator=_value(props.get("operator-name")),
    )


def _value(value: Any) -> str | None:
    """mmcli prints "--" for an unknown value."""
    if not isinstance(value, str) or value.strip() in ("", "--"):
        return None
    return value.strip()


def _values(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    if not isinstance(value, list):
        return ()
    return tuple(v for v in (_value(item) for item in value) if v is not None)


# ---- USSD ----------------------------------------------------------------------------------


def shown(code: str) -> str:
    """A code as messages and logs may show it: long digit runs (refill PINs, which are
    money) cut to their last two digits."""
    return re.sub(r"\d{6,}", lambda m: "…" + m.group()[-2:], code)


def send_ussd(
    modem_id: str,
    code: str,
    timeout: float = USSD_TIMEOUT,
    *,
    wait: float | None = None,
    lock_at: Path | None = None,
    respond: Sequence[str] = (),
    expect: Sequence[str] = (),
) -> str:
    """Send one USSD code to the modem with this IMEI or ICCID; the network's reply text.

    A menu code walks its menu: each of `respond` answers the menu before it (the
    network's next text), and `expect[i]`, when given and not empty, must appear in the
    text answer i replies to (`expect[len(respond)]`: in the last reply), or the session
    is cancelled and UnexpectedMenu raised. The reply is the text after the last answer.

    `timeout` bounds finding the modem, and then the exchange (stale session check, cancel,
    initiate, the answers). Waiting for another session on the same modem to end (in this
    process, or in another one using the database `lock_at`) is bounded by `wait`, by
    default twice the timeout (time for one session ahead to run its course); then
    ModemBusy.
    """
    _check_code(code)
    for answer in respond:
        if not MENU_ANSWER.fullmatch(answer):
            raise UsageError(f"{shown(answer)!r} is not a menu answer (1 to 160 characters)")
    if len(expect) > len(respond) + 1:
        raise UsageError("expect has one text per answer, and at most one for the last reply")
    modem = _find(modem_id, _Deadline(timeout, "finding the modem"))
    if wait is None:
        wait = 2 * timeout + KILL_GRACE
    with session(modem.key, wait, lock_at):
        deadline = _Deadline(timeout, f"USSD {shown(code)}")
        return _exchange(modem, code, deadline, tuple(respond), tuple(expect))


@contextlib.contextmanager
def session(key: str, wait: float, lock_at: Path | None = None) -> Iterator[None]:
    """Hold the modem `key` for one session: its lock in this process and, with a database
    `lock_at`, the lock file beside it; ModemBusy when either is not free within `wait`."""
    busy = f"modem {key} is busy: another USSD session on it did not end within {wait:g}s"
    deadline = time.monotonic() + wait
    lock = _lock(key)
    if not lock.acquire(timeout=wait):
        raise ModemBusy(busy)
    try:
        if lock_at is None:
            yield
            return
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:100]
        path = lock_at.with_name(f"{lock_at.name}.modem-{name}.lock")
        left = max(0.0, deadline - time.monotonic())
        with file_lock(path, left, poll=0.05) as held:
            if not held:
                raise ModemBusy(busy + " (in another process)")
            yield
    finally:
        lock.release()


def _lock(key: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


def _exchange(
    modem: ModemInfo,
    code: str,
    deadline: _Deadline,
    respond: tuple[str, ...] = (),
    expect: tuple[str, ...] = (),
) -> str:
    path = modem.dbus_path
    if _session_state(path, deadline) in STALE_STATES:
        log.warning("cancelling a stale USSD session", modem=modem.key)
        _cancel(path, deadline)
    initiate = ["-m", path, f"--3gpp-ussd-initiate={code}"]
    what = f"sending {shown(code)}"
    try:
        run = _call(initiate, deadline, what)
    except ModemBusy:
        # A session began between the check and the initiate (or the state was unknown).
        log.warning("USSD session active at initiate: cancelling and retrying", modem=modem.key)
        _cancel(path, deadline)
        run = _call(initiate, deadline, what)
    try:
        reply = parse_reply(run.stdout)
        for step, answer in enumerate(respond):
            _expected(expect, step, reply, last=False)
            if _session_state(path, deadline) != "user-response":
                raise UnexpectedMenu(
                    f"the network ended the session before answer {step + 1} "
                    f"({shown(answer)!r}) could be sent",
                    raw=reply,
                )
            answered = _call(
                ["-m", path, f"--3gpp-ussd-respond={answer}"], deadline, f"answering {step + 1}"
            )
            reply = parse_reply(answered.stdout) or _landed(path, reply, deadline)
        _expected(expect, len(respond), reply, last=True)
        return reply
    finally:
        # A menu still open (the reply was one, or the walk failed, its deadline too): end
        # it, on a bound of its own, rather than leave the modem waiting for an answer.
        ending = _Deadline(QUERY_TIMEOUT, "ending the USSD session")
        with contextlib.suppress(ModemError):
            if _session_state(path, ending) == "user-response":
                _cancel(path, ending)


def _expected(expect: tuple[str, ...], step: int, text: str, last: bool) -> None:
    wanted = expect[step] if step < len(expect) else ""
    if wanted and wanted.casefold() not in text.casefold():
        where = "the last reply" if last else f"the text answer {step + 1} replies to"
        raise UnexpectedMenu(
            f"{where} does not say {wanted!r}: the menu is not the one expected", raw=text
        )


def _landed(path: str, previous: str, deadline: _Deadline) -> str:
    """The network's answer to a menu response when mmcli printed none: some modems
    (a Quectel RM530N-GL on ModemManager 1.24.2, in CERALIVE/CeraUI's captures) print an
    empty reply and set the session's `network-request` (a further menu) or
    `network-notification` (the end) a moment later, and keep the last text until then:
    wait, within the deadline, for a text other than the previous one."""
    while True:
        ussd = _ussd(path, deadline)
        for key in ("network-request", "network-notification"):
            text = _value(ussd.get(key))
            if text is not None and text != previous.strip():  # _value strips
                return text
        time.sleep(min(0.1, deadline.left()))


def parse_reply(stdout: str) -> str:
    """The text in `USSD session initiated; new reply from network: '<text>'`; the text may
    span lines and hold quotes: it ends at the last quote."""
    at = stdout.find(_REPLY_MARKER)
    rest = stdout[at + len(_REPLY_MARKER) :].lstrip(" ") if at >= 0 else ""
    end = rest.rfind("'")
    if not rest.startswith("'") or end < 1:
        raise ModemError("mmcli's answer holds no USSD reply", raw=stdout)
    return rest[1:end]


def _session_state(path: str, deadline: _Deadline) -> str:
    return _value(_ussd(path, deadline).get("status")) or "unknown"


def _ussd(path: str, deadline: _Deadline) -> dict[str, Any]:
    """The session as `--3gpp-ussd-status -J` shows it: status, network-request,
    network-notification."""
    run = _call(["-J", "-m", path, "--3gpp-ussd-status"], deadline, "reading the USSD state")
    data = _json(run, "USSD state")
    ussd = ((data.get("modem") or {}).get("3gpp") or {}).get("ussd") or {}
    return ussd if isinstance(ussd, dict) else {}


def _cancel(path: str, deadline: _Deadline) -> None:
    try:
        _call(["-m", path, "--3gpp-ussd-cancel"], deadline, "cancelling the USSD session")
    except (ModemTimeout, ModemNotAuthorized, ModemManagerUnavailable):
        raise
    except ModemError as exc:
        raise ModemBusy(
            f"modem is busy: its earlier USSD session could not be cancelled ({exc})",
            raw=exc.raw,
        ) from None


# ---- SMS -----------------------------------------------------------------------------------

SMS_TIMEOUT = 60.0
"""Seconds an SMS query may wait for its reply, by default: carriers answer within seconds
to a minute."""
SMS_POLL = 0.5
"""Seconds between listings of the modem's texts while waiting for a reply."""
CLOCK_SLACK = timedelta(seconds=10)
"""How far a reply's network timestamp may lie before the send and still be its answer: the
SMSC's clock and ours differ by this much at most (whole seconds, and some drift). A text
stamped earlier answers an earlier query that timed out: it is dropped, never matched."""
SMS_NUMBER = re.compile(r"\+?[0-9]{2,20}")
SMS_SENDER = re.compile(r"\+?[0-9]{2,20}|[A-Za-z0-9][A-Za-z0-9 .&-]{0,10}")
"""A reply's sender: a number or short code, or an alphanumeric sender id (11 characters)."""
SMS_TEXT = re.compile(r"[^\x00-\x1f\x7f]{1,160}")
"""An outgoing query text: one line, one SMS."""


@dataclass(frozen=True)
class Sms:
    """One text as `mmcli -s S -J` shows it. `timestamp` is the network's (the SMSC's) for a
    received text, None for one we created."""

    path: str
    number: str | None = None
    text: str | None = None
    state: str | None = None
    pdu_type: str | None = None
    timestamp: datetime | None = None
    storage: str | None = None

    @property
    def index(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def received(self) -> bool:
        """A text that came in whole (`receiving` is a multi-part one still arriving)."""
        return self.state == "received" and self.pdu_type in (None, "deliver", "cdma-deliver")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for `esim-monitor sms list --json`."""
        return {
            "index": self.index,
            "path": self.path,
            "number": self.number,
            "text": self.text,
            "state": self.state,
            "pdu_type": self.pdu_type,
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
            "storage": self.storage,
        }


@dataclass(frozen=True)
class SmsExchange:
    """An SMS query's outcome: the reply, when the query was sent (our clock), the text sent
    (None for a USSD code answered by text) and the USSD code's own reply, if any."""

    reply: Sms
    sent_at: datetime
    sent: Sms | None = None
    ussd_reply: str | None = None
    ignored: tuple[Sms, ...] = field(default=())
    """Texts from the number that were not this query's answer (too old, unreadable)."""


def same_sender(number: str | None, wanted: str) -> bool:
    """Whether a text's sender is `wanted`: a short code as is, a phone number with or
    without its country code (the last 10 digits decide), a sender name in any case."""
    if number is None:
        return False
    a, b = re.sub(r"[\s()-]", "", number), re.sub(r"[\s()-]", "", wanted)
    da, db = a.lstrip("+"), b.lstrip("+")
    if da.isdigit() and db.isdigit():
        if min(len(da), len(db)) >= 10:
            return da[-10:] == db[-10:]
        return da == db
    return a.casefold() == b.casefold()


def list_sms(
    modem_id: str,
    timeout: float = QUERY_TIMEOUT,
    *,
    wait: float | None = None,
    lock_at: Path | None = None,
) -> list[Sms]:
    """Every text the modem holds, read one by one, oldest index first."""
    modem = _find(modem_id, _Deadline(timeout, "finding the modem"))
    with session(modem.key, 2 * timeout + KILL_GRACE if wait is None else wait, lock_at):
        deadline = _Deadline(timeout, "listing SMS")
        return [_read_sms(path, deadline) for path in _sms_paths(modem.dbus_path, deadline)]


def send_sms(
    modem_id: str,
    number: str,
    text: str,
    timeout: float = USSD_TIMEOUT,
    *,
    wait: float | None = None,
    lock_at: Path | None = None,
) -> Sms:
    """Create and send one text; the sent message, which stays on the modem (`sms list`
    shows it and any reply)."""
    properties = _sms_properties(number, text)
    modem = _find(modem_id, _Deadline(timeout, "finding the modem"))
    with session(modem.key, 2 * timeout + KILL_GRACE if wait is None else wait, lock_at):
        deadline = _Deadline(timeout, f"sending an SMS to {number}")
        path = _create_sms(modem.dbus_path, properties, deadline)
        _send_created(path, deadline)
        return _read_sms(path, deadline)


def sms_query(
    modem_id: str,
    sender: str,
    *,
    to: str | None = None,
    text: str | None = None,
    ussd: str | None = None,
    timeout: float = SMS_TIMEOUT,
    accept: Callable[[Sms], str | None] | None = None,
    keep: bool = False,
    wait: float | None = None,
    lock_at: Path | None = None,
) -> SmsExchange:
    """Ask by text (`to`, `text`) or by a USSD code answered by text (`ussd`), and wait for
    the reply from `sender` within `timeout`, in one session on the modem.

    The reply is the first text from `sender` that the modem did not hold before the send,
    stamped no earlier than the send (less CLOCK_SLACK), and that `accept` (given the text)
    does not refuse: it returns None, or why the text cannot be read; a refused text is
    passed over and the wait goes on (a carrier may send a notice first), and when nothing
    else comes, UnreadableSms says why with the texts as raw. Texts from `sender` already
    there, or stamped before the send, are late replies to earlier queries: logged and,
    unless `keep`, deleted. The query and the reply are deleted unless `keep`.
    """
    if (ussd is None) == (to is None or text is None):
        raise UsageError("an SMS query sends either a text (to and text) or a USSD code")
    if not SMS_SENDER.fullmatch(sender):
        raise UsageError(f"{sender!r} is not a sender number or name")
    properties = _sms_properties(to, text) if to is not None and text is not None else None
    if ussd is not None:
        _check_code(ussd)
    modem = _find(modem_id, _Deadline(QUERY_TIMEOUT, "finding the modem"))
    if wait is None:
        wait = 2 * (timeout + QUERY_TIMEOUT) + KILL_GRACE
    with session(modem.key, wait, lock_at):
        return _sms_exchange(modem, sender, properties, ussd, timeout, accept, keep)


def _sms_exchange(
    modem: ModemInfo,
    sender: str,
    properties: str | None,
    ussd: str | None,
    timeout: float,
    accept: Callable[[Sms], str | None] | None,
    keep: bool,
) -> SmsExchange:
    """List, send, wait, delete. Listing and sending a text have a bound of their own
    (QUERY_TIMEOUT): `timeout` is the carrier's, from the send to its answer; a USSD code's
    session counts in it (its answer is part of the carrier's)."""
    path = modem.dbus_path
    deadline = _Deadline(QUERY_TIMEOUT, "preparing the SMS query")
    known: set[str] = set()
    ours: list[str] = []
    ignored: list[Sms] = []
    try:
        for old in (_read_sms(p, deadline) for p in _sms_paths(path, deadline)):
            known.add(old.path)
            if old.received and same_sender(old.number, sender):
                _drop(old, "it came before this query (a late reply to an earlier one?)", keep)
                ignored.append(old)
        sent: Sms | None = None
        ussd_reply: str | None = None
        if properties is not None:
            created = _create_sms(path, properties, deadline)
            ours.append(created)
            known.add(created)
            sent_at = _now()
            _send_created(created, deadline)
            sent = Sms(created, state="sent", pdu_type="submit")
            deadline = _Deadline(timeout, f"waiting for a reply from {sender}")
        else:
            assert ussd is not None
            deadline = _Deadline(timeout, f"waiting for a reply from {sender}")
            sent_at = _now()
            ussd_reply = _exchange(modem, ussd, deadline)
        try:
            reply = _await_reply(path, sender, sent_at, known, deadline, accept, keep, ignored)
        except NoSmsReply as exc:
            if ussd_reply is None:
                raise
            said = f"the code's own reply: {ussd_reply}"
            raise NoSmsReply(
                f"{exc}; {said}", raw="\n\n".join(t for t in (exc.raw, said) if t)
            ) from None
        ours.append(reply.path)
        return SmsExchange(reply, sent_at, sent, ussd_reply, tuple(ignored))
    finally:
        if not keep:
            _delete_all(path, [*ours, *(s.path for s in ignored)])


def _await_reply(
    path: str,
    sender: str,
    sent_at: datetime,
    known: set[str],
    deadline: _Deadline,
    accept: Callable[[Sms], str | None] | None,
    keep: bool,
    ignored: list[Sms],
) -> Sms:
    """Poll the modem's texts for the reply; the texts from `sender` passed over are added
    to `ignored` as they are met (deleted with the query's, even when it fails)."""
    seen = set(known)
    early: list[Sms] = []  # stamped before the send: late answers to earlier queries
    unread: list[tuple[Sms, str]] = []  # refused by `accept`, with why
    while True:
        try:
            paths = _sms_paths(path, deadline)
        except ModemTimeout:
            paths = []
        fresh: list[Sms] = []
        for new in (p for p in paths if p not in seen):
            try:
                sms = _read_sms(new, deadline)
            except ModemTimeout:
                break
            except ModemError as exc:
                log.debug("SMS not readable", sms=new, error=str(exc))
                continue
            if sms.state == "receiving":
                continue  # read again once whole
            seen.add(new)
            if not sms.received or not same_sender(sms.number, sender):
                log.debug("SMS from another number ignored", sms=sms.index, sender=sms.number)
                continue
            if sms.timestamp is not None and sms.timestamp < sent_at - CLOCK_SLACK:
                _drop(sms, f"it is stamped {sms.timestamp.isoformat()}, before the send", keep)
                early.append(sms)
                ignored.append(sms)
                continue
            fresh.append(sms)
        fresh.sort(key=lambda s: s.timestamp or datetime.max.replace(tzinfo=UTC))
        for at, sms in enumerate(fresh):
            why = accept(sms) if accept is not None else None
            if why is None:
                ignored.extend(fresh[at + 1 :])  # came with it: met, so deleted with it
                return sms
            log.info("SMS reply passed over", sms=sms.index, sender=sender, reason=why)
            unread.append((sms, why))
            ignored.append(sms)
        try:
            time.sleep(min(SMS_POLL, deadline.left()))
            deadline.left()
        except ModemTimeout:
            if unread:
                raise UnreadableSms(
                    f"no text from {sender} could be read: {unread[-1][1]}",
                    raw="\n\n".join(s.text or "" for s, _ in unread),
                ) from None
            why = (
                f"{len(early)} text(s) from it were stamped before the send: late answers to "
                "earlier queries, or the network's clock is off"
                if early
                else "is the number right? a full SMS storage also keeps replies out"
            )
            raise NoSmsReply(
                f"no reply from {sender} within {deadline.seconds:g}s of the query ({why})",
                raw="\n\n".join(s.text or "" for s in early) or None,
            ) from None


def _drop(sms: Sms, why: str, keep: bool) -> None:
    log.warning(
        "SMS dropped: not this query's reply",
        sms=sms.index,
        sender=sms.number,
        reason=why,
        kept=keep,
        text=shown(sms.text or ""),
    )


def _delete_all(path: str, sms_paths: Sequence[str]) -> None:
    """Delete the query's texts, on a bound of their own: a failed or timed-out query still
    leaves the storage as it found it (a full one keeps replies out)."""
    ending = _Deadline(QUERY_TIMEOUT, "deleting the query's SMS")
    for sms_path in dict.fromkeys(sms_paths):
        try:
            _call(
                ["-m", path, f"--messaging-delete-sms={sms_path}"],
                ending,
                "deleting an SMS",
                "Messaging",
            )
        except ModemError as exc:
            log.warning("SMS not deleted", sms=sms_path, error=str(exc))


def _now() -> datetime:
    return datetime.now(UTC)


def _check_code(code: str) -> None:
    if not re.fullmatch(r"[0-9*#+]+", code):
        raise UsageError(f"{shown(code)!r} is not a USSD code (digits, * and #, such as '*777#')")


def _sms_properties(number: str, text: str) -> str:
    """mmcli's `number='...',text='...'`: its parser (libmm-glib/mm-common-helpers.c,
    mm_common_parse_key_value_string) takes a value up to the next quote of the same kind,
    with no escapes, so a text may hold one kind of quote but not both."""
    if not SMS_NUMBER.fullmatch(number):
        raise UsageError(f"{number!r} is not a phone number or short code (digits, maybe +)")
    if not SMS_TEXT.fullmatch(text):
        raise UsageError(f"{shown(text)!r} is not an SMS text (1 to 160 characters, one line)")
    quote = "'" if "'" not in text else '"'
    if quote in text:
        raise UsageError("an SMS text may hold ' or \" but not both (mmcli cannot quote it)")
    return f"number='{number}',text={quote}{text}{quote}"


def _sms_paths(path: str, deadline: _Deadline) -> list[str]:
    """`--messaging-list-sms -J` prints {"modem.messaging.sms": [paths]}: the list's key is
    the field's whole dotted name (cli/mmcli-output.c, dump_output_list_json)."""
    run = _call(["-J", "-m", path, "--messaging-list-sms"], deadline, "listing SMS", "Messaging")
    listing = _json(run, "the SMS list").get("modem.messaging.sms")
    if not isinstance(listing, list):
        raise ModemError("mmcli's SMS list holds no modem.messaging.sms", raw=run.stdout)
    return [p for p in listing if isinstance(p, str)]


def _read_sms(sms_path: str, deadline: _Deadline) -> Sms:
    run = _call(["-J", "-s", sms_path], deadline, "reading an SMS", "Messaging")
    return sms_from_json(_json(run, "an SMS"), sms_path)


def sms_from_json(data: dict[str, Any], sms_path: str = "") -> Sms:
    """An Sms from `mmcli -s S -J`: {"sms": {"dbus-path", "content": {number, text, data},
    "properties": {pdu-type, state, storage, timestamp, ...}}}, "--" for an unknown value
    (cli/mmcli-sms.c print_sms_info; timestamps as ISO 8601 with an offset of hours,
    "2011-02-28T11:50:50-05", src/tests/test-sms-part-3gpp.c)."""
    sms = data.get("sms") or {}
    content = sms.get("content") or {}
    props = sms.get("properties") or {}
    text = content.get("text")
    return Sms(
        path=_value(sms.get("dbus-path")) or sms_path,
        number=_value(content.get("number")),
        text=text if isinstance(text, str) and text != "--" else None,
        state=_value(props.get("state")),
        pdu_type=_value(props.get("pdu-type")),
        timestamp=_timestamp(props.get("timestamp")),
        storage=_value(props.get("storage")),
    )


def _timestamp(value: Any) -> datetime | None:
    """The network's ISO 8601 time read as the adapters read a provider's (aware, UTC);
    None when unknown or unreadable (the text is then matched by its path alone)."""
    from monitor.adapters.fields import to_datetime

    text = _value(value)
    if text is None:
        return None
    try:
        return to_datetime(text)
    except ValueError:
        log.debug("SMS timestamp not read", timestamp=text)
        return None


def _create_sms(path: str, properties: str, deadline: _Deadline) -> str:
    """`--messaging-create-sms` with -J prints {"modem": {"messaging": {"created-sms":
    PATH}}} (MMC_F_MESSAGING_CREATED_SMS in cli/mmcli-output.c)."""
    run = _call(
        ["-J", "-m", path, f"--messaging-create-sms={properties}"],
        deadline,
        "creating the SMS",
        "Messaging",
    )
    data = _json(run, "the created SMS")
    created = _value(((data.get("modem") or {}).get("messaging") or {}).get("created-sms"))
    if created is None:
        raise ModemError("mmcli named no created SMS", raw=run.stdout)
    return created


def _send_created(sms_path: str, deadline: _Deadline) -> None:
    """`mmcli -s S --send`: "successfully sent the SMS" (cli/mmcli-sms.c)."""
    _call(["-s", sms_path, "--send"], deadline, "sending the SMS", "Messaging")


# ---- running mmcli ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    returncode: int
    stdout: str
    stderr: str


class _Deadline:
    """The time left for one step (a listing, an exchange) across its mmcli calls."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds = seconds
        self.what = what
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise ModemTimeout(f"{self.what} took longer than {self.seconds:g}s")
        return left


def _call(args: list[str], deadline: _Deadline, what: str, polkit: str = "USSD") -> _Run:
    """Run mmcli; a failure becomes the ModemError that says what went wrong (`polkit`:
    the ModemManager action a refusal names)."""
    run = _mmcli(args, deadline.left(), what)
    if run.returncode != 0:
        raise _failure(run, what, polkit)
    return run


def _mmcli(args: list[str], timeout: float, what: str) -> _Run:
    """mmcli with `--timeout`, in its own process group, killed if it outlives that."""
    program = shutil.which(MMCLI)
    if program is None:
        raise MmcliMissing(
            "mmcli is not installed (it comes with ModemManager: apt install modemmanager)"
        )
    seconds = max(1, math.ceil(timeout))
    argv = [program, f"--timeout={seconds}", *args]
    # mmcli prints through the locale: a UTF-8 one keeps a reply's non-ASCII text intact.
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    started = time.monotonic()
    try:
        proc = children.start(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
    except OSError as exc:
        raise ModemError(f"cannot run mmcli: {exc.strerror or exc}") from None
    try:
        out, err = proc.communicate(timeout=timeout + KILL_GRACE)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise ModemTimeout(
            f"{what}: mmcli did not answer within {seconds}s and was stopped"
        ) from None
    except BaseException:  # an interrupt must not leave mmcli running on the modem
        _kill(proc)
        raise
    finally:
        children.release(proc)
    run = _Run(
        proc.returncode,
        out.decode("utf-8", errors="replace"),
        err.decode("utf-8", errors="replace"),
    )
    log.debug(
        "mmcli",
        args=[shown(arg) for arg in args],
        returncode=run.returncode,
        seconds=round(time.monotonic() - started, 3),
    )
    return run


def _kill(proc: subprocess.Popen[bytes]) -> None:
    children.kill(proc)  # before it is reaped below
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=KILL_GRACE)


def _json(run: _Run, what: str) -> dict[str, Any]:
    try:
        data = json.loads(run.stdout)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise ModemError(f"mmcli gave no JSON for {what}", raw=run.stdout or run.stderr)
    return data


_GDBUS_PREFIX = re.compile(r"GDBus\.Error:[\w.]+:\s*")


def _failure(run: _Run, what: str, polkit: str = "USSD") -> ModemError:
    """The typed error for a failed mmcli call, from what it printed."""
    raw = (run.stderr.strip() or run.stdout.strip()) or f"mmcli exited with {run.returncode}"
    said = re.sub(r": '(.*)'$", r": \1", raw.removeprefix("error: "), flags=re.DOTALL)
    said = _GDBUS_PREFIX.sub("", said).strip()
    text = raw.lower()
    if "couldn't find the modemmanager process" in text or "serviceunknown" in text:
        return ModemManagerUnavailable(
            "ModemManager is not running (systemctl start ModemManager)", raw=raw
        )
    if "couldn't get bus" in text:
        return ModemManagerUnavailable(f"the system bus cannot be reached: {said}", raw=raw)
    if "couldn't find modem" in text:
        return ModemNotFound(f"{what}: the modem is gone ({said})", raw=raw)
    if "unauthorized" in text or "not authorized" in text or "accessdenied" in text:
        return ModemNotAuthorized(
            f"{what}: not allowed ({said}); the service user needs the polkit rule for "
            f"org.freedesktop.ModemManager1.{polkit} (see docs/modems.md)",
            raw=raw,
        )
    if "no messaging capabilities" in text:
        return SmsUnsupported(
            f"{what}: this modem cannot send or receive SMS in ModemManager ({said})", raw=raw
        )
    if "memoryfull" in text or "memory full" in text or re.search(r"\+cms error:?\s*322\b", text):
        return SmsStorageFull(
            f"{what}: the modem's SMS storage is full ({said}); delete texts with "
            "esim-monitor sms list / mmcli -m N --messaging-delete-sms=S",
            raw=raw,
        )
    if "session is already active" in text:
        return ModemBusy(f"{what}: the modem is busy with another USSD session", raw=raw)
    if "no 3gpp ussd capabilities" in text:
        return UssdUnsupported(f"{what}: this modem cannot do USSD ({said})", raw=raw)
    if (
        re.search(r"\+?cme error:?\s*30\b", text)
        or "mobileequipment.nonetwork" in text
        or "no network service" in text
    ):
        return UssdUnsupported(
            f"{what}: the modem cannot do USSD on this network ({said}); USSD needs a "
            "2G/3G connection, which LTE-only modems and IMS (VoLTE) lines often lack",
            raw=raw,
        )
    if "timeout was reached" in text or "timed out" in text or "noreply" in text:
        return ModemTimeout(f"{what}: no answer in time ({said})", raw=raw)
    if "not enabled" in text:
        return ModemError(
            f"{what}: the modem is not enabled ({said}); enable it with mmcli -m N -e", raw=raw
        )
    return ModemError(f"{what} failed: {said}", raw=raw)
